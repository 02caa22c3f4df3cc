//! A Flink CDC pipeline definition read into typed blocks, in data-flow order: `source`,
//! `route`, `sink`, `pipeline`. Every key is checked here against what cdc-sql builds: an unknown
//! key is an error at its line naming the nearest valid one; a Flink CDC block or value cdc-sql
//! does not offer (`transform`, an `oracle` source, a `doris` sink, …) is refused by name,
//! never read and ignored. The blocks' connector options are checked by their connectors (see
//! [`super::plan`]).

use crate::connectors::selection::TablePattern;
use crate::error::{nearest, Error, Location, Result};
use crate::sql::env::substitute;

use super::yaml::{self, Entry, Node, Value};

/// The top-level blocks of Flink CDC 3.6 (`YamlPipelineDefinitionParser`).
const BLOCKS: &[&str] = &["source", "sink", "route", "transform", "pipeline"];
/// Source types cdc-sql reads, and Flink CDC's others, refused by name.
const SOURCES: &[&str] = &["mysql", "postgres"];
const FLINK_SOURCES: &[&str] = &["oracle", "db2", "mongodb", "oceanbase", "sqlserver", "tidb", "values"];
const SINKS: &[&str] = &["jdbc", "print"];
const FLINK_SINKS: &[&str] =
    &["doris", "starrocks", "kafka", "paimon", "elasticsearch", "iceberg", "maxcompute", "fluss", "hudi", "values"];
const ROUTE_KEYS: &[&str] = &["source-table", "sink-table", "replace-symbol", "description"];

/// A `source` or `sink` block: its type, optional name, and the connector options.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: String,
    pub name: Option<String>,
    /// Where the block starts.
    pub at: Location,
    pub options: Vec<BlockOption>,
}

#[derive(Debug, Clone)]
pub struct BlockOption {
    pub key: String,
    /// With `${NAME}` references filled from the environment.
    pub value: String,
    pub at: Location,
}

impl Block {
    /// Pins `error` to the option it names (connectors quote keys as `'key'`), else to the block.
    pub fn locate(&self, error: Error) -> Error {
        let text = error.to_string();
        let at = self
            .options
            .iter()
            .find(|o| text.contains(&format!("'{}'", o.key)))
            .map(|o| o.at.clone())
            .unwrap_or_else(|| self.at.clone());
        error.at(at)
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub source_table: TablePattern,
    /// The sink table, with `replace-symbol` and `$1`… still in it.
    pub sink_table: String,
    pub replace_symbol: Option<String>,
    pub at: Location,
}

/// The `pipeline` block: the job's name and settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub name: Option<String>,
    /// Snapshot readers, when the source does not set 'scan.incremental.snapshot.parallelism'.
    pub parallelism: Option<(String, Location)>,
    /// cdc-sql's job settings (checkpoints, restarts, REST), as `SET` takes them.
    pub job: Vec<BlockOption>,
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub source: Block,
    pub routes: Vec<Route>,
    pub sink: Block,
    pub settings: Settings,
}

fn unknown(what: &str, key: &str, valid: &[&str]) -> String {
    let hint = nearest(key, valid.iter().copied()).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
    format!("unknown {what} `{key}`{hint}; expected one of {}", valid.join(", "))
}

struct Reader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn value(&self, entry: &Entry, what: &str) -> Result<String> {
        let text = entry.value.scalar(&format!("{what} `{}`", entry.key))?;
        substitute(text, self.env).map_err(|var| {
            Error::user(format!("`{}` uses ${{{var}}}, but environment variable {var} is not set", entry.key))
                .at(entry.value.at.clone())
        })
    }

    /// A `source` or `sink` block: `type` and `name` taken out, the rest its options.
    fn block(&self, entry: &Entry, supported: &[&str], flink: &[&str]) -> Result<Block> {
        let what = entry.key.as_str();
        let mut kind = None;
        let mut name = None;
        let mut options = Vec::new();
        for e in entry.value.entries(&format!("the `{what}` block"))? {
            match e.key.as_str() {
                "type" => kind = Some((self.value(e, what)?, e.value.at.clone())),
                "name" => name = Some(self.value(e, what)?),
                "include.schema.changes" | "exclude.schema.changes" if what == "sink" => {
                    return Err(Error::user(format!(
                        "`{}` is not supported: no schema change reaches the sink, a change of a source table's \
                         columns stops the pipeline (see docs/pipeline.md)",
                        e.key
                    ))
                    .at(e.key_at.clone()))
                }
                _ => {
                    options.push(BlockOption { key: e.key.clone(), value: self.value(e, what)?, at: e.key_at.clone() })
                }
            }
        }
        let Some((kind, kind_at)) = kind else {
            return Err(Error::user(format!("the `{what}` block needs a `type` (one of {})", supported.join(", ")))
                .at(entry.key_at.clone()));
        };
        if !supported.contains(&kind.as_str()) {
            let why = if flink.contains(&kind.as_str()) {
                format!("{what} type `{kind}` is not supported by cdc-sql yet; supported: {}", supported.join(", "))
            } else {
                unknown(&format!("{what} type"), &kind, supported)
            };
            return Err(Error::user(why).at(kind_at));
        }
        Ok(Block { kind, name, at: entry.key_at.clone(), options })
    }

    fn routes(&self, entry: &Entry) -> Result<Vec<Route>> {
        let Value::Seq(items) = &entry.value.value else {
            return Err(Error::user(format!(
                "the `route` block must be a list of rules (`- source-table: …`), not {}",
                entry.value.kind()
            ))
            .at(entry.value.at.clone()));
        };
        items.iter().map(|item| self.route(item)).collect()
    }

    fn route(&self, item: &Node) -> Result<Route> {
        let mut source = None;
        let mut sink = None;
        let mut replace_symbol = None;
        for e in item.entries("a route rule")? {
            match e.key.as_str() {
                "source-table" => source = Some((self.value(e, "route")?, e.value.at.clone())),
                "sink-table" => sink = Some(self.value(e, "route")?),
                "replace-symbol" => replace_symbol = Some(self.value(e, "route")?),
                "description" => {
                    self.value(e, "route")?;
                }
                other => return Err(Error::user(unknown("route key", other, ROUTE_KEYS)).at(e.key_at.clone())),
            }
        }
        let missing = |key: &str| Error::user(format!("this route rule needs `{key}`")).at(item.at.clone());
        let (text, source_at) = source.ok_or_else(|| missing("source-table"))?;
        let sink_table = sink.ok_or_else(|| missing("sink-table"))?;
        let source_table = TablePattern::parse(&text, 2, "database.table")
            .map_err(|why| Error::user(format!("`source-table`: {why}")).at(source_at))?;
        if replace_symbol.as_deref() == Some("") {
            return Err(Error::user("`replace-symbol` must not be empty").at(item.at.clone()));
        }
        Ok(Route { source_table, sink_table, replace_symbol, at: item.at.clone() })
    }

    fn settings(&self, entry: &Entry, job_keys: &[&str]) -> Result<Settings> {
        let mut settings = Settings::default();
        for e in entry.value.entries("the `pipeline` block")? {
            match e.key.as_str() {
                "name" => settings.name = Some(self.value(e, "pipeline")?),
                "parallelism" => settings.parallelism = Some((self.value(e, "pipeline")?, e.value.at.clone())),
                "schema.change.behavior" => {
                    let value = self.value(e, "pipeline")?;
                    if !value.eq_ignore_ascii_case("exception") {
                        return Err(Error::user(format!(
                            "`schema.change.behavior: {value}` is not supported yet: a change of a source table's \
                             columns stops the pipeline with a message, as `exception` does; write `exception` or \
                             leave the key out"
                        ))
                        .at(e.value.at.clone()));
                    }
                }
                "local-time-zone" => {
                    return Err(Error::user(
                        "`local-time-zone` is not supported: only `transform` expressions would read it, and \
                         transforms are not supported yet; time values are copied as they are",
                    )
                    .at(e.key_at.clone()))
                }
                "user-defined-function" | "model" => {
                    return Err(Error::user(format!(
                        "`{}` is not supported: it serves `transform` blocks, which are not supported yet",
                        e.key
                    ))
                    .at(e.key_at.clone()))
                }
                key if job_keys.contains(&key) => settings.job.push(BlockOption {
                    key: key.to_string(),
                    value: self.value(e, "pipeline")?,
                    at: e.key_at.clone(),
                }),
                other => {
                    let mut valid = vec!["name", "parallelism", "schema.change.behavior"];
                    valid.extend(job_keys);
                    return Err(Error::user(unknown("`pipeline` key", other, &valid)).at(e.key_at.clone()));
                }
            }
        }
        Ok(settings)
    }
}

/// Reads a pipeline definition. `source` names the file in locations; `env` fills `${NAME}`;
/// `job_keys` are the job settings the `pipeline` block may also hold (as `SET` takes them).
pub fn parse(source: &str, text: &str, env: &dyn Fn(&str) -> Option<String>, job_keys: &[&str]) -> Result<Definition> {
    let root = yaml::parse(source, text)?;
    let reader = Reader { env };
    let (mut source_block, mut sink, mut routes, mut settings) = (None, None, Vec::new(), Settings::default());
    for entry in root.entries("a pipeline definition")? {
        match entry.key.as_str() {
            "source" => source_block = Some(reader.block(entry, SOURCES, FLINK_SOURCES)?),
            "sink" => sink = Some(reader.block(entry, SINKS, FLINK_SINKS)?),
            "route" => routes = reader.routes(entry)?,
            "pipeline" => settings = reader.settings(entry, job_keys)?,
            "transform" => {
                return Err(Error::user(
                    "the `transform` block is not supported by cdc-sql yet (projections, filters, computed and \
                     metadata columns); remove it, or write the job in SQL",
                )
                .at(entry.key_at.clone()))
            }
            other => return Err(Error::user(unknown("block", other, BLOCKS)).at(entry.key_at.clone())),
        }
    }
    let start = || Location { source: source.to_string(), line: 1, column: 1 };
    let source_block =
        source_block.ok_or_else(|| Error::user("the pipeline definition has no `source` block").at(start()))?;
    let sink = sink.ok_or_else(|| Error::user("the pipeline definition has no `sink` block").at(start()))?;
    Ok(Definition { source: source_block, routes, sink, settings })
}

/// Whether a job file is a pipeline definition rather than SQL: by its extension, or, for any
/// other name, by starting (after comments and blank lines) with a top-level `source:` or
/// `sink:` key, which no SQL statement does.
pub fn is_pipeline(path: &std::path::Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") => true,
        Some(ext) if ext.eq_ignore_ascii_case("sql") => false,
        _ => text
            .lines()
            .map(str::trim_end)
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && !l.trim_start().starts_with("--"))
            .is_some_and(|l| BLOCKS.iter().any(|b| l.strip_prefix(b).is_some_and(|rest| rest.starts_with(':')))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB_KEYS: &[&str] = &["execution.checkpointing.interval"];

    fn env(name: &str) -> Option<String> {
        (name == "PW").then(|| "secret".to_string())
    }

    fn parsed(text: &str) -> Result<Definition> {
        parse("p.yaml", text, &env, JOB_KEYS)
    }

    const GOOD: &str = "\
source:
  type: mysql
  name: MySQL Source
  hostname: 127.0.0.1
  password: ${PW}
  tables: app_db.\\.*
route:
  - source-table: app_db.order_([0-9]+)
    sink-table: ods.orders_$1
    description: shards
  - source-table: app_db.\\.*
    sink-table: ods.<>
    replace-symbol: <>
sink:
  type: jdbc
  url: jdbc:postgresql://db/x
pipeline:
  name: sync
  parallelism: 2
  schema.change.behavior: exception
  execution.checkpointing.interval: 5s
";

    #[test]
    fn a_definition_reads_into_its_blocks() {
        let d = parsed(GOOD).unwrap();
        assert_eq!((d.source.kind.as_str(), d.source.name.as_deref()), ("mysql", Some("MySQL Source")));
        let options: Vec<(&str, &str, usize)> =
            d.source.options.iter().map(|o| (o.key.as_str(), o.value.as_str(), o.at.line)).collect();
        assert_eq!(options, [("hostname", "127.0.0.1", 4), ("password", "secret", 5), ("tables", "app_db.\\.*", 6)]);
        assert_eq!(d.routes.len(), 2);
        assert_eq!((d.routes[0].sink_table.as_str(), d.routes[0].at.line), ("ods.orders_$1", 8));
        assert_eq!(d.routes[1].replace_symbol.as_deref(), Some("<>"));
        assert_eq!(d.sink.kind, "jdbc");
        assert_eq!(d.settings.name.as_deref(), Some("sync"));
        assert_eq!(d.settings.parallelism.as_ref().map(|p| p.0.as_str()), Some("2"));
        assert_eq!(d.settings.job.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), JOB_KEYS);
    }

    /// Each bad definition and the located error it gives.
    #[test]
    fn bad_definitions_are_located_errors_naming_the_fix() {
        let cases = [
            ("sorce:\n  type: mysql\n", "p.yaml:1:1: unknown block `sorce` (did you mean `source`?)"),
            (
                "source:\n  type: mysql\nsink:\n  type: print\ntransform:\n  - source-table: a.b\n",
                "p.yaml:5:1: the `transform` block is not supported",
            ),
            (
                "source:\n  type: oracle\nsink:\n  type: print\n",
                "p.yaml:2:9: source type `oracle` is not supported by cdc-sql yet; supported: mysql, postgres",
            ),
            (
                "source:\n  type: mysq\nsink:\n  type: print\n",
                "p.yaml:2:9: unknown source type `mysq` (did you mean `mysql`?)",
            ),
            (
                "source:\n  type: mysql\nsink:\n  type: doris\n",
                "p.yaml:4:9: sink type `doris` is not supported by cdc-sql yet; supported: jdbc, print",
            ),
            ("source:\n  name: x\nsink:\n  type: print\n", "p.yaml:1:1: the `source` block needs a `type`"),
            ("source:\n  type: mysql\n", "p.yaml:1:1: the pipeline definition has no `sink` block"),
            (
                "source:\n  type: mysql\nsink:\n  type: print\nroute:\n  - source-table: a.b\n    sink-tabel: c.d\n",
                "p.yaml:7:5: unknown route key `sink-tabel` (did you mean `sink-table`?)",
            ),
            (
                "source:\n  type: mysql\nsink:\n  type: print\nroute:\n  - source-table: a.(\n    sink-table: c.d\n",
                "p.yaml:6:19: `source-table`: 'a.(' is not a valid table pattern",
            ),
            (
                "source:\n  type: mysql\nsink:\n  type: print\nroute:\n  - sink-table: c.d\n",
                "p.yaml:6:5: this route rule needs `source-table`",
            ),
            (
                "source:\n  type: mysql\nsink:\n  type: print\npipeline:\n  parallelsm: 2\n",
                "p.yaml:6:3: unknown `pipeline` key `parallelsm` (did you mean `parallelism`?)",
            ),
            (
                "source:\n  type: mysql\nsink:\n  type: print\npipeline:\n  schema.change.behavior: lenient\n",
                "p.yaml:6:27: `schema.change.behavior: lenient` is not supported yet",
            ),
            (
                "source:\n  type: mysql\n  password: ${NOPE}\nsink:\n  type: print\n",
                "p.yaml:3:13: `password` uses ${NOPE}, but environment variable NOPE is not set",
            ),
            (
                "source:\n  type: mysql\nsink:\n  type: jdbc\n  exclude.schema.changes: [drop.table]\n",
                "p.yaml:5:3: `exclude.schema.changes` is not supported",
            ),
            (
                "source: mysql\nsink:\n  type: print\n",
                "p.yaml:1:9: the `source` block must be a mapping of keys to values, not a single value",
            ),
        ];
        for (text, expected) in cases {
            let error = parsed(text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text}\n→ {error}\nexpected {expected}");
        }
    }

    #[test]
    fn pipeline_files_are_told_by_extension_or_content() {
        use std::path::Path;
        assert!(is_pipeline(Path::new("x.yaml"), "whatever"));
        assert!(is_pipeline(Path::new("x.YML"), ""));
        assert!(!is_pipeline(Path::new("x.sql"), "source:\n"));
        assert!(is_pipeline(Path::new("job"), "# sync\n\nsource:\n  type: mysql\n"));
        assert!(!is_pipeline(Path::new("job"), "-- sql\nCREATE TABLE source (id INT);\n"));
        assert!(!is_pipeline(Path::new("job"), "SET 'a' = 'b';\n"));
    }
}
