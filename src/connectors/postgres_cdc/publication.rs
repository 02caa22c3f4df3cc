//! The publication the slot streams through: Debezium's `publication.name` and
//! `publication.autocreate.mode` (`all_tables` | `filtered` | `disabled`), so that one job per
//! table on one database — every job on the default `dbz_publication` — works as it does with
//! Flink CDC.
//!
//! Debezium's meanings, with two deliberate differences:
//! * `filtered` only ever adds the job's missing tables (`ALTER PUBLICATION … ADD TABLE`).
//!   Debezium replaces the publication's tables with its own (`SET TABLE`), which drops the
//!   tables of every other job on the same publication: their changes silently stop arriving.
//! * `filtered` accepts an existing `FOR ALL TABLES` publication (it already covers the tables;
//!   Debezium refuses it), and `all_tables` refuses an existing publication that misses a
//!   captured table (Debezium streams on and the table's changes never arrive).
//!
//! Ordering. pgoutput decodes every change against the catalog as it was when the change was
//! written, publication membership included (checked on PostgreSQL 15: a row inserted before
//! `ALTER PUBLICATION … ADD TABLE` is not sent, one inserted after is; a slot created before its
//! publication fails with "publication … does not exist" on its older changes). So the
//! publication is settled — created or extended, committed — before the job's slot is created
//! or its snapshot exported, and a start that streams from an existing slot's older position
//! never relies on a change made now ([`StreamFrom`]).
//!
//! Concurrency. Jobs started together race to create or extend the same publication. A create
//! that loses gets `unique_violation` (the catalog's unique name index, after waiting for the
//! winner to commit) or `duplicate_object`; an add of a table another job just added gets
//! `duplicate_object`; adds of different tables do not conflict. A lost race is therefore read
//! again and decided anew, until the publication covers the job's tables.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::checks::{pg_error, quote_ident, CapturedTable};
use super::Config;
use crate::error::{Error, Result};

/// Debezium's `publication.autocreate.mode`: how a job makes the publication it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCreate {
    /// Missing: created `FOR ALL TABLES` (superuser). Existing: used as it is.
    AllTables,
    /// Missing: created `FOR TABLE` the captured tables. Existing: the captured tables it lacks
    /// are added (owner of the publication and of the tables).
    Filtered,
    /// Never created or changed: it must exist and cover the captured tables.
    Disabled,
}

impl AutoCreate {
    /// The option's values, as Debezium spells them (its `no_tables`, a publication without
    /// tables, would stream nothing here and is refused).
    pub const CHOICES: &'static [&'static str] = &["all_tables", "filtered", "disabled"];

    pub fn parse(choice: &str) -> AutoCreate {
        match choice {
            "filtered" => AutoCreate::Filtered,
            "disabled" => AutoCreate::Disabled,
            _ => AutoCreate::AllTables,
        }
    }

    fn option(self) -> &'static str {
        match self {
            AutoCreate::AllTables => "'debezium.publication.autocreate.mode' = 'all_tables' (the default)",
            AutoCreate::Filtered => "'debezium.publication.autocreate.mode' = 'filtered'",
            AutoCreate::Disabled => "'debezium.publication.autocreate.mode' = 'disabled'",
        }
    }
}

/// Where the stream of the starting job begins, which decides what may still be changed in the
/// publication for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFrom {
    /// A slot created after the publication is settled, or the current end of WAL: every change
    /// streamed is decoded against the publication as settled.
    Later,
    /// An existing slot's confirmed LSN, under a snapshot exported after the publication is
    /// settled: a table added now has older changes the stream will not send, but the snapshot
    /// holds their effect. A publication created now cannot serve: the slot's older changes
    /// would not decode.
    SlotUnderNewSnapshot,
    /// An existing slot's position (a checkpoint's, or its confirmed LSN), nothing read again:
    /// the publication must have covered every captured table all along.
    Slot,
}

/// The publication as the server describes it.
#[derive(Debug, Clone)]
struct Published {
    all_tables: bool,
    /// Publishes insert, update, delete, truncate.
    kinds: [bool; 4],
    /// (schema, table) of every table it publishes.
    tables: Vec<(String, String)>,
}

/// The change the publication needs next.
#[derive(Debug, PartialEq)]
enum Change {
    Create { all_tables: bool, sql: String },
    Add { tables: Vec<String>, sql: String },
}

/// How many times a start reads the publication again after losing a race with another session
/// changing it. Each lost race means another job made progress, so a few are plenty.
const ATTEMPTS: usize = 10;

/// Makes sure the publication exists and covers every captured table for all kinds of change,
/// creating or extending it as `config.publication_mode` allows.
pub async fn ensure_publication(
    config: &Config,
    client: &Client,
    tables: &[CapturedTable],
    from: StreamFrom,
) -> Result<()> {
    for _ in 0..ATTEMPTS {
        let published = match read(config, client).await? {
            Read::Changing => continue,
            Read::Found(published) => Some(published),
            Read::Absent => None,
        };
        let Some(change) = plan(config, published.as_ref(), tables, from)? else { return Ok(()) };
        let (sql, done) = match &change {
            Change::Create { all_tables: true, sql } => (sql, "created it FOR ALL TABLES".to_string()),
            Change::Create { all_tables: false, sql } => (sql, "created it for the captured tables".to_string()),
            Change::Add { tables, sql } => (sql, format!("added {} to it", tables.join(", "))),
        };
        match client.batch_execute(sql).await {
            // Read again: the next round confirms the publication now covers the tables.
            Ok(()) => {
                tracing::info!(table = %config.table, statement = %sql, "postgres-cdc publication '{}': {done}", config.publication)
            }
            Err(e)
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) || e.code() == Some(&SqlState::DUPLICATE_OBJECT) =>
            {
                tracing::debug!(table = %config.table, statement = %sql, error = %e, "another session changed publication '{}' first; reading it again", config.publication);
            }
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                let server = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
                return Err(not_allowed(config, &change, &server));
            }
            Err(e) => return Err(pg_error(config, &format!("running `{sql}`"), e)),
        }
    }
    Err(Error::external(format!(
        "publication '{}' on {} kept being changed by other sessions while table `{}` tried to settle it ({ATTEMPTS} attempts); \
         starting again will read it anew",
        config.publication,
        config.where_(),
        config.table
    )))
}

/// What reading the publication found.
enum Read {
    Absent,
    Found(Published),
    /// Another session changed it between the two queries of one read.
    Changing,
}

async fn read(config: &Config, client: &Client) -> Result<Read> {
    let row = client
        .query_opt(
            "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1",
            &[&config.publication],
        )
        .await
        .map_err(|e| pg_error(config, "reading publications", e))?;
    let Some(row) = row else { return Ok(Read::Absent) };
    let tables = match client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&config.publication],
        )
        .await
    {
        Ok(rows) => rows,
        // Seen with five jobs starting together: the row was just read, yet the view's catalog
        // lookup by name says the publication does not exist. Another session is changing it:
        // a lost race like the others, read again.
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
            tracing::debug!(table = %config.table, error = %e, "publication '{}' changed between two reads; reading it again", config.publication);
            return Ok(Read::Changing);
        }
        Err(e) => return Err(pg_error(config, "reading publication tables", e)),
    };
    let tables = tables.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(Read::Found(Published {
        all_tables: row.get(0),
        kinds: [row.get(1), row.get(2), row.get(3), row.get(4)],
        tables,
    }))
}

/// The change `published` (`None`: it does not exist) needs, if any, or why the job cannot go on.
fn plan(
    config: &Config,
    published: Option<&Published>,
    tables: &[CapturedTable],
    from: StreamFrom,
) -> Result<Option<Change>> {
    let name = quote_ident(&config.publication);
    let list = |tables: &[&CapturedTable]| tables.iter().map(|t| t.qualified()).collect::<Vec<_>>().join(", ");
    let all: Vec<&CapturedTable> = tables.iter().collect();
    let Some(published) = published else {
        if from != StreamFrom::Later {
            return Err(Error::user(format!(
                "publication '{}' does not exist in database '{}', and table `{}` streams on from replication slot '{}', whose \
                 older changes PostgreSQL decodes against the publication as it was when they were written: a publication \
                 created now cannot serve them. Start over with a new slot: SELECT pg_drop_replication_slot('{}'), then \
                 run the job with --fresh, which settles the publication first ({}), then creates the slot",
                config.publication,
                config.database,
                config.table,
                config.slot,
                config.slot,
                match config.publication_mode {
                    AutoCreate::Disabled => format!(
                        "with {} create it yourself beforehand: CREATE PUBLICATION {name} FOR TABLE {} as the tables' owner",
                        AutoCreate::Disabled.option(),
                        list(&all)
                    ),
                    mode => format!("{} creates it", mode.option()),
                }
            )));
        }
        return match config.publication_mode {
            AutoCreate::Disabled => Err(Error::user(format!(
                "publication '{}' does not exist in database '{}', and {} leaves creating it to you: run \
                 CREATE PUBLICATION {name} FOR TABLE {} as the tables' owner (or CREATE PUBLICATION {name} FOR ALL TABLES \
                 as a superuser), or name an existing one with 'debezium.publication.name'",
                config.publication,
                config.database,
                AutoCreate::Disabled.option(),
                list(&all)
            ))),
            AutoCreate::AllTables => {
                Ok(Some(Change::Create { all_tables: true, sql: format!("CREATE PUBLICATION {name} FOR ALL TABLES") }))
            }
            AutoCreate::Filtered => Ok(Some(Change::Create {
                all_tables: false,
                sql: format!("CREATE PUBLICATION {name} FOR TABLE {}", list(&all)),
            })),
        };
    };
    let [insert, update, delete, truncate] = published.kinds;
    if !(insert && update && delete && truncate) {
        return Err(Error::user(format!(
            "publication '{}' does not publish every kind of change (insert {insert}, update {update}, delete {delete}, truncate {truncate}); \
             run ALTER PUBLICATION {name} SET (publish = 'insert, update, delete, truncate')",
            config.publication
        )));
    }
    if published.all_tables {
        return Ok(None);
    }
    let missing: Vec<&CapturedTable> = tables
        .iter()
        .filter(|t| !published.tables.iter().any(|(schema, table)| *schema == t.schema && *table == t.name))
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let shown = missing.iter().map(|t| t.shown()).collect::<Vec<_>>().join(", ");
    let add = format!("ALTER PUBLICATION {name} ADD TABLE {}", list(&missing));
    if from == StreamFrom::Slot {
        return Err(Error::user(format!(
            "publication '{}' does not include {shown}, and table `{}` streams on from replication slot '{}' where it left off: \
             PostgreSQL decodes each change against the publication as it was when the change was written, so the changes of \
             {shown} made before it is added would never arrive (if it was published before, someone removed it — Debezium's \
             'filtered' mode, for one, replaces a publication's tables with its own). Run {add} as the tables' owner, then \
             take a new snapshot: run the job with --fresh in 'scan.startup.mode' = 'initial'",
            config.publication, config.table, config.slot
        )));
    }
    match config.publication_mode {
        AutoCreate::Filtered => Ok(Some(Change::Add { tables: missing.iter().map(|t| t.shown()).collect(), sql: add })),
        AutoCreate::Disabled => Err(Error::user(format!(
            "publication '{}' does not include {shown}: its changes would never arrive. {} leaves the publication to you: \
             run {add} as the tables' owner",
            config.publication,
            AutoCreate::Disabled.option()
        ))),
        AutoCreate::AllTables => Err(Error::user(format!(
            "publication '{}' does not include {shown}: its changes would never arrive. It was not created FOR ALL TABLES, and \
             {} uses an existing publication as it is. Run {add} as the tables' owner, or set \
             'debezium.publication.autocreate.mode' = 'filtered' to have each job add its own tables (its user then needs to \
             own the publication and the tables)",
            config.publication,
            AutoCreate::AllTables.option()
        ))),
    }
}

/// The server refused `change` for lack of a privilege (`server` is its message): which one the
/// statement takes, and who can run it instead.
fn not_allowed(config: &Config, change: &Change, server: &str) -> Error {
    let (user, publication) = (&config.user, &config.publication);
    Error::user(match change {
        Change::Create { all_tables: true, sql } => format!(
            "user '{user}' may not create publication '{publication}' FOR ALL TABLES ({server}): {} creates it that way, which \
             takes a superuser. Have a superuser run `{sql}` once, or set 'debezium.publication.autocreate.mode' = 'filtered' \
             to publish only the captured tables (which takes owning them and CREATE on database '{}')",
            config.publication_mode.option(),
            config.database
        ),
        Change::Create { all_tables: false, sql } => format!(
            "user '{user}' may not create publication '{publication}' for the captured tables ({server}): that takes owning \
             each of them and CREATE on database '{}'. Run `{sql}` as the tables' owner, or name an existing publication \
             with 'debezium.publication.name'",
            config.database
        ),
        Change::Add { tables, sql } => format!(
            "user '{user}' may not add {} to publication '{publication}' ({server}): ALTER PUBLICATION … ADD TABLE takes \
             owning both the publication (whoever created it owns it) and the tables. Run `{sql}` as their owner or a \
             superuser",
            tables.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::postgres_cdc::tests::parse;

    fn table(name: &str) -> CapturedTable {
        CapturedTable {
            schema: "public".into(),
            name: name.into(),
            identity: 'd',
            columns: Vec::new(),
            estimated_rows: 0.0,
            shape: crate::connectors::postgres_cdc::tests::shape(),
        }
    }

    fn config(mode: &str) -> Config {
        parse(&[("debezium.publication.autocreate.mode", mode)], &["id"]).unwrap()
    }

    fn published(all_tables: bool, tables: &[&str]) -> Published {
        Published {
            all_tables,
            kinds: [true; 4],
            tables: tables.iter().map(|t| ("public".to_string(), t.to_string())).collect(),
        }
    }

    fn error(result: Result<Option<Change>>) -> String {
        match result {
            Err(e @ Error::User(_)) => e.to_string(),
            other => panic!("expected a user error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_publication_is_created_as_the_mode_says() {
        let tables = [table("a"), table("B")];
        assert_eq!(
            plan(&config("all_tables"), None, &tables, StreamFrom::Later).unwrap(),
            Some(Change::Create {
                all_tables: true,
                sql: "CREATE PUBLICATION \"dbz_publication\" FOR ALL TABLES".into()
            })
        );
        assert_eq!(
            plan(&config("filtered"), None, &tables, StreamFrom::Later).unwrap(),
            Some(Change::Create {
                all_tables: false,
                sql: "CREATE PUBLICATION \"dbz_publication\" FOR TABLE \"public\".\"a\", \"public\".\"B\"".into()
            })
        );
        let disabled = error(plan(&config("disabled"), None, &tables, StreamFrom::Later));
        assert!(disabled.contains("does not exist") && disabled.contains("leaves creating it to you"), "{disabled}");
    }

    #[test]
    fn filtered_mode_adds_only_the_missing_tables_and_drops_none() {
        let tables = [table("a"), table("b")];
        let others = published(false, &["a", "other_jobs_table"]);
        for from in [StreamFrom::Later, StreamFrom::SlotUnderNewSnapshot] {
            assert_eq!(
                plan(&config("filtered"), Some(&others), &tables, from).unwrap(),
                Some(Change::Add {
                    tables: vec!["public.b".into()],
                    sql: "ALTER PUBLICATION \"dbz_publication\" ADD TABLE \"public\".\"b\"".into()
                })
            );
        }
        let covering = published(false, &["b", "a", "other_jobs_table"]);
        assert_eq!(plan(&config("filtered"), Some(&covering), &tables, StreamFrom::Slot).unwrap(), None);
        let everything = published(true, &[]);
        assert_eq!(plan(&config("filtered"), Some(&everything), &tables, StreamFrom::Slot).unwrap(), None);
    }

    #[test]
    fn all_tables_and_disabled_modes_never_change_an_existing_publication() {
        let tables = [table("a"), table("b")];
        let partial = published(false, &["a"]);
        let all = error(plan(&config("all_tables"), Some(&partial), &tables, StreamFrom::Later));
        assert!(
            all.contains("publication 'dbz_publication' does not include public.b")
                && all.contains("not created FOR ALL TABLES")
                && all.contains("ALTER PUBLICATION \"dbz_publication\" ADD TABLE \"public\".\"b\"")
                && all.contains("'filtered'"),
            "{all}"
        );
        let disabled = error(plan(&config("disabled"), Some(&partial), &tables, StreamFrom::Later));
        assert!(disabled.contains("does not include public.b") && disabled.contains("'disabled'"), "{disabled}");
        assert_eq!(plan(&config("disabled"), Some(&published(true, &[])), &tables, StreamFrom::Slot).unwrap(), None);
    }

    /// The slot decodes older changes against the publication as it was: what is created or
    /// added now would leave them unsent (a gap) or undecodable.
    #[test]
    fn a_stream_continuing_an_older_slot_position_is_not_served_by_a_change_made_now() {
        let tables = [table("a"), table("b")];
        let partial = published(false, &["a"]);
        let gap = error(plan(&config("filtered"), Some(&partial), &tables, StreamFrom::Slot));
        assert!(gap.contains("would never arrive") && gap.contains("--fresh") && gap.contains("ADD TABLE"), "{gap}");
        for from in [StreamFrom::Slot, StreamFrom::SlotUnderNewSnapshot] {
            let missing = error(plan(&config("all_tables"), None, &tables, from));
            assert!(
                missing.contains("created now cannot serve them") && missing.contains("pg_drop_replication_slot('s1')"),
                "{missing}"
            );
        }
    }

    #[test]
    fn a_publication_without_every_kind_of_change_is_refused_in_every_mode() {
        let tables = [table("a")];
        let mut no_truncate = published(true, &[]);
        no_truncate.kinds[3] = false;
        for mode in AutoCreate::CHOICES {
            let text = error(plan(&config(mode), Some(&no_truncate), &tables, StreamFrom::Later));
            assert!(text.contains("truncate false") && text.contains("SET (publish"), "{text}");
        }
    }

    #[test]
    fn refusals_name_the_privilege_the_statement_takes() {
        let tables = [table("a")];
        let refused = |mode: &str, published: Option<&Published>| {
            let config = config(mode);
            let change = plan(&config, published, &tables, StreamFrom::Later).unwrap().unwrap();
            not_allowed(&config, &change, "permission denied").to_string()
        };
        let all = refused("all_tables", None);
        assert!(all.contains("takes a superuser") && all.contains("'filtered'"), "{all}");
        let create = refused("filtered", None);
        assert!(create.contains("owning each of them and CREATE on database 'd'"), "{create}");
        let add = refused("filtered", Some(&published(false, &[])));
        assert!(add.contains("owning both the publication") && add.contains("permission denied"), "{add}");
        assert!(!add.contains("secret-pw"), "{add}");
    }
}
