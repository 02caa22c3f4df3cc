//! `datagen`: generates rows with Flink's datagen options, plus a changelog mode of ours that also
//! emits updates and deletes over a bounded key space, so CDC-shaped streams exist without a
//! database (demos, tests, benchmarks).
//!
//! Flink options: `rows-per-second` (default 10000), `number-of-rows` (default unbounded),
//! `fields.<f>.kind` (`random` | `sequence`), `.min`/`.max` (random numbers), `.length` (random
//! strings and bytes, default 100), `.var-len`, `.max-past` (random temporal values: now minus up
//! to this duration), `.start`/`.end` (sequences), `.null-rate`.
//!
//! Ours: `seed` (same seed → same rows, except temporal values, which are relative to now);
//! `changelog-mode` = `insert-only` (default) | `all` (`+I`, `-U`/`+U`, `-D`) | `upsert` (`+U`
//! without `-U`), which needs a single integer PRIMARY KEY whose values are drawn from
//! `1..=changelog.key-space` (default 1000); a live key is deleted with probability
//! `changelog.delete-ratio` (default 0.2) and updated otherwise. `number-of-rows` then counts
//! change events (an update is one event and two rows).
//!
//! Limits: ARRAY, MAP and ROW columns are not generated; random DECIMAL values stay within
//! i128; no metadata columns. A source with a sequence field ends when the first
//! sequence is exhausted, as in Flink.

mod generate;
mod rng;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::time::Instant;

use generate::{FieldGen, RowGenerator};

use super::{
    Connector, ConnectorOptions, ConnectorTable, Position, ResumeFrom, Source, SourceBatch, SourceContext,
    SourceIdentity, SourceProgress,
};
use crate::changelog::ChangelogMode;
use crate::error::{Error, Result};
use crate::sql::TableSpec;

pub struct Datagen;

impl Connector for Datagen {
    fn name(&self) -> &'static str {
        "datagen"
    }

    fn open_table(&self, spec: &TableSpec, options: &mut ConnectorOptions) -> Result<Box<dyn ConnectorTable>> {
        Ok(Box::new(DatagenTable {
            config: Arc::new(DatagenConfig::parse(spec, options)?),
            identity: source_identity(spec),
        }))
    }
}

#[derive(Debug)]
struct ChangelogConfig {
    mode: ChangelogMode,
    key_column: usize,
    key_space: u64,
    delete_ratio: f64,
}

#[derive(Debug)]
pub(crate) struct DatagenConfig {
    schema: SchemaRef,
    rows_per_second: u64,
    number_of_rows: Option<u64>,
    fields: Vec<FieldGen>,
    seed: Option<u64>,
    changelog: Option<ChangelogConfig>,
}

impl DatagenConfig {
    fn parse(spec: &TableSpec, o: &mut ConnectorOptions) -> Result<Self> {
        let rows_per_second = o.parse::<u64>("rows-per-second", "a positive whole number")?.unwrap_or(10_000);
        if rows_per_second == 0 {
            return Err(o.invalid("rows-per-second", "0", "a positive whole number"));
        }
        let number_of_rows = o.parse::<u64>("number-of-rows", "a whole number")?;
        let seed = o.parse::<u64>("seed", "a whole number")?;
        let mode = o.choice("changelog-mode", &["insert-only", "all", "upsert"])?.unwrap_or("insert-only");
        let key_space = o.parse::<u64>("changelog.key-space", "a positive whole number")?;
        let delete_ratio = o.parse::<f64>("changelog.delete-ratio", "a number between 0 and 1")?;

        let changelog = match mode {
            "insert-only" => {
                if key_space.is_some() || delete_ratio.is_some() {
                    return Err(Error::user(format!(
                        "table `{}`: 'changelog.key-space' and 'changelog.delete-ratio' need 'changelog-mode' = 'all' or 'upsert'",
                        spec.name
                    )));
                }
                None
            }
            _ => {
                let key_column = match spec.primary_key.as_slice() {
                    [k] => spec.columns.iter().position(|c| &c.name == k),
                    _ => None,
                }
                .filter(|i| spec.columns[*i].data_type.is_integer())
                .ok_or_else(|| {
                    Error::user(format!(
                        "table `{}`: 'changelog-mode' = '{mode}' needs a PRIMARY KEY of one integer column, whose values are the generated keys",
                        spec.name
                    ))
                })?;
                let key_space = key_space.unwrap_or(1000);
                if key_space == 0 {
                    return Err(o.invalid("changelog.key-space", "0", "a positive whole number"));
                }
                let delete_ratio = delete_ratio.unwrap_or(0.2);
                if !(0.0..=1.0).contains(&delete_ratio) {
                    return Err(o.invalid(
                        "changelog.delete-ratio",
                        &delete_ratio.to_string(),
                        "a number between 0 and 1",
                    ));
                }
                Some(ChangelogConfig {
                    mode: if mode == "all" { ChangelogMode::All } else { ChangelogMode::Upsert },
                    key_column,
                    key_space,
                    delete_ratio,
                })
            }
        };

        let mut fields = Vec::with_capacity(spec.columns.len());
        for (i, column) in spec.columns.iter().enumerate() {
            let is_key = changelog.as_ref().is_some_and(|c| c.key_column == i);
            fields.push(FieldGen::parse(column, is_key, o)?);
        }
        Ok(DatagenConfig { schema: spec.schema(), rows_per_second, number_of_rows, fields, seed, changelog })
    }

    fn changelog_mode(&self) -> ChangelogMode {
        self.changelog.as_ref().map(|c| c.mode).unwrap_or(ChangelogMode::InsertOnly)
    }

    fn is_bounded(&self) -> bool {
        self.number_of_rows.is_some() || self.fields.iter().any(|f| f.sequence_len().is_some())
    }
}

/// What determines the generated rows, and so what a position (a seed and a count of events)
/// means: the options for the seed, the number of rows, the changelog and each field, as given.
/// Pacing ('rows-per-second') changes when rows come, not which.
fn source_identity(spec: &TableSpec) -> SourceIdentity {
    let mut determining: Vec<String> = spec
        .options
        .iter()
        .filter(|o| {
            ["seed", "number-of-rows", "changelog-mode"].contains(&o.key.as_str())
                || o.key.starts_with("changelog.")
                || o.key.starts_with("fields.")
        })
        .map(|o| format!("{}={}", o.key, o.value))
        .collect();
    determining.sort();
    let startup_mode = if determining.is_empty() { "defaults".to_string() } else { determining.join(", ") };
    SourceIdentity { connector: "datagen".into(), location: "-".into(), tables: "-".into(), startup_mode }
}

struct DatagenTable {
    config: Arc<DatagenConfig>,
    identity: SourceIdentity,
}

impl ConnectorTable for DatagenTable {
    fn source(&self, ctx: &SourceContext) -> Result<Option<Box<dyn Source>>> {
        Ok(Some(Box::new(DatagenSource {
            config: self.config.clone(),
            batch_size: ctx.batch_size.max(1),
            generator: None,
            started: Instant::now(),
            rows_this_run: 0,
            last_batch_ms: None,
        })))
    }

    fn source_changelog_mode(&self) -> ChangelogMode {
        self.config.changelog_mode()
    }

    fn source_identity(&self) -> Option<SourceIdentity> {
        Some(self.identity.clone())
    }
}

struct DatagenSource {
    config: Arc<DatagenConfig>,
    batch_size: usize,
    generator: Option<RowGenerator>,
    started: Instant,
    rows_this_run: u64,
    /// When the last batch was generated: generated rows have no other event time.
    last_batch_ms: Option<i64>,
}

#[async_trait]
impl Source for DatagenSource {
    fn schema(&self) -> SchemaRef {
        self.config.schema.clone()
    }

    fn is_bounded(&self) -> bool {
        self.config.is_bounded()
    }

    async fn start(&mut self, resume_from: Option<ResumeFrom>) -> Result<()> {
        let (seed, events) = match resume_from.as_ref().map(|r| &r.position) {
            Some(p) => {
                let seed = p.get("seed").and_then(|v| v.as_u64());
                let events = p.get("events").and_then(|v| v.as_u64());
                match (seed, events) {
                    (Some(s), Some(e)) => (s, e),
                    _ => {
                        return Err(Error::user(format!(
                            "datagen cannot resume from position {p}: expected {{\"seed\": …, \"events\": …}}"
                        )))
                    }
                }
            }
            None => (self.config.seed.unwrap_or_else(rng::seed_from_clock), 0),
        };
        let mut generator = RowGenerator::new(self.config.clone(), seed);
        generator.skip(events);
        self.generator = Some(generator);
        self.started = Instant::now();
        self.rows_this_run = 0;
        Ok(())
    }

    fn start_position(&self) -> Option<Position> {
        self.generator.as_ref().map(RowGenerator::position)
    }

    async fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        let Some(generator) = self.generator.as_mut() else {
            return Err(Error::internal("datagen read before start"));
        };
        let rate = self.config.rows_per_second;
        // Aim for about ten batches a second at low rates so rows arrive steadily.
        let target = ((rate / 10).max(1) as usize).min(self.batch_size);
        let due = self.started + Duration::from_secs_f64(self.rows_this_run as f64 / rate as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let Some(changes) = generator.next_batch(target)? else {
            return Ok(None);
        };
        self.rows_this_run += changes.num_rows() as u64;
        self.last_batch_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as i64);
        Ok(Some(SourceBatch::new(changes, generator.position())))
    }

    fn progress(&self) -> Option<SourceProgress> {
        let generator = self.generator.as_ref()?;
        let (events, total) = generator.events();
        Some(SourceProgress {
            event_time_ms: self.last_batch_ms,
            fetch_event_time_lag_ms: self.last_batch_ms.map(|_| 0),
            position: Some(format!("events={events}")),
            events: Some(events),
            events_total: total,
            ..SourceProgress::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::connectors::{open_table, SourceIdentity};
    use crate::sql::{parse_script, Statement};

    fn identity(with: &str) -> SourceIdentity {
        let sql = format!(
            "CREATE TABLE g (id INT, v STRING, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen'{with});"
        );
        let statement = parse_script("test", &sql, &|_| None).unwrap().into_iter().next().unwrap().statement;
        let Statement::CreateTable { spec, .. } = statement else { panic!("not a CREATE TABLE") };
        open_table(&spec).unwrap().source_identity().unwrap()
    }

    #[test]
    fn the_identity_holds_what_determines_the_rows_and_not_the_pace() {
        let plain = identity("");
        assert_eq!(
            plain,
            SourceIdentity {
                connector: "datagen".into(),
                location: "-".into(),
                tables: "-".into(),
                startup_mode: "defaults".into(),
            }
        );
        let seeded = identity(
            ", 'seed' = '7', 'number-of-rows' = '100', 'rows-per-second' = '5', 'changelog-mode' = 'all', \
             'changelog.key-space' = '10', 'fields.v.length' = '3'",
        );
        assert_eq!(
            seeded.startup_mode,
            "changelog-mode=all, changelog.key-space=10, fields.v.length=3, number-of-rows=100, seed=7"
        );
        let faster = identity(
            ", 'rows-per-second' = '500', 'fields.v.length' = '3', 'seed' = '7', 'number-of-rows' = '100', \
             'changelog.key-space' = '10', 'changelog-mode' = 'all'",
        );
        assert_eq!(faster, seeded, "the pace and the order of the options change no row");
        assert_ne!(identity(", 'seed' = '8'"), identity(", 'seed' = '7'"));
        assert_ne!(identity(", 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '9'"), plain);
        assert!(!seeded.continues_snapshot(&plain));
    }
}
