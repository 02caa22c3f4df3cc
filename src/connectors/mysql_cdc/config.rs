//! The `mysql-cdc` WITH options, with Flink CDC's names and defaults, validated without I/O.

use std::time::Duration;

use chrono_tz::Tz;
use regex::Regex;

use crate::connectors::selection::{TablePattern, TableSelection};
use crate::connectors::{ConnectorOptions, SourceIdentity};
use crate::error::{Error, Result};
use crate::sql::TableSpec;

/// Where reading starts (`scan.startup.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    /// Snapshot, then the binlog from where the snapshot started.
    Initial,
    /// Snapshot only: the job ends when it is done.
    Snapshot,
    EarliestOffset,
    LatestOffset,
    SpecificFile {
        file: String,
        pos: u64,
    },
    SpecificGtid(String),
    /// Streaming from the first transaction committed at or after this second (epoch seconds:
    /// binlog timestamps have second precision; 'scan.startup.timestamp-millis' / 1000, rounded down).
    Timestamp {
        millis: i64,
    },
}

impl StartupMode {
    /// Whether reading begins with a snapshot of the tables.
    pub fn snapshots(&self) -> bool {
        matches!(self, StartupMode::Initial | StartupMode::Snapshot)
    }

    /// The mode as 'scan.startup.mode' names it, with the offset options that fix where it
    /// starts: a checkpoint's binlog positions belong to one such start.
    pub fn describe(&self) -> String {
        match self {
            StartupMode::Initial => "initial".into(),
            StartupMode::Snapshot => SourceIdentity::SNAPSHOT.into(),
            StartupMode::EarliestOffset => "earliest-offset".into(),
            StartupMode::LatestOffset => "latest-offset".into(),
            StartupMode::SpecificFile { file, pos } => format!("specific-offset file={file} pos={pos}"),
            StartupMode::SpecificGtid(gtid) => format!("specific-offset gtid-set={gtid}"),
            StartupMode::Timestamp { millis } => format!("timestamp {millis}"),
        }
    }
}

/// TLS for the snapshot and binlog connections (`jdbc.properties.sslMode`, MySQL Connector/J names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Required,
    VerifyCa,
    VerifyIdentity,
}

#[derive(Debug, Clone)]
pub struct MySqlCdcConfig {
    pub table: String,
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// The captured tables: 'database-name' and 'table-name', or a pipeline source's `tables`.
    pub tables: TableSelection,
    /// Inclusive range; the binlog reader uses the first id, chunk backfills the following ones.
    pub server_ids: (u32, u32),
    pub server_time_zone: Tz,
    pub startup: StartupMode,
    /// `false`: Flink CDC's legacy snapshot — one reader, one consistent transaction, tables
    /// without a key allowed (`scan.incremental.snapshot.enabled`).
    pub incremental: bool,
    pub chunk_size: u64,
    pub chunk_key_column: Option<String>,
    /// Most rows in one snapshot batch (`scan.snapshot.fetch.size`).
    pub fetch_size: usize,
    pub connect_timeout: Duration,
    pub connect_max_retries: u32,
    pub heartbeat_interval: Duration,
    pub ssl_mode: SslMode,
    /// Parallel snapshot readers (`scan.incremental.snapshot.parallelism`, ours).
    pub snapshot_parallelism: usize,
    /// Every change arrives as `+I`, its kind kept in the `row_kind` metadata column
    /// (`scan.read-changelog-as-append-only.enabled`).
    pub append_only: bool,
}

/// What Flink CDC's start options that cdc-sql does not offer would need.
const NO_SKIP: &str =
    "a start position here is a transaction boundary (a binlog file and position, or a GTID set) and \
                       skipping events or rows after it is not offered; give the position after what is to be skipped";

/// Refused `scan.newly-added-table.enabled` = `true`, shared with postgres-cdc.
pub(crate) const NO_NEWLY_ADDED_TABLES: &str = "a checkpoint resumes only the tables it was taken with (a changed \
     'database-name', 'schema-name' or 'table-name' is refused on resume); to capture added tables start the job \
     afresh (--fresh) or run another job for them";

/// Why Flink CDC's incremental-snapshot tuning changes nothing here, shared with postgres-cdc.
pub(crate) const CLOSE_IDLE_READERS: &str =
    "snapshot readers end as soon as the snapshot is done, and checkpoints go on without them";
pub(crate) const CHUNK_ORDER: &str = "the order in which snapshot chunks are read changes nothing in what is delivered";
pub(crate) const CHUNK_META: &str =
    "chunk metadata is not shipped between tasks: one process plans and reads the whole snapshot";
pub(crate) const NO_POOL: &str =
    "there is no connection pool: each snapshot reader and the change reader hold one connection each";

/// Refused `debezium.*` properties, shared with postgres-cdc.
pub(crate) const DEBEZIUM: &str = "cdc-sql does not embed Debezium, so its properties have no meaning here; the \
     connector's page lists the Debezium properties it reads and what each Flink CDC option does";

/// A whole-string match, as Flink CDC (Java `Pattern.matches`) does.
fn anchored(o: &ConnectorOptions, key: &str, text: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{text})$"))
        .map_err(|e| o.invalid(key, text, &format!("a regular expression ({})", e.to_string().replace('\n', " "))))
}

fn parse_server_ids(o: &ConnectorOptions, text: &str) -> Result<(u32, u32)> {
    let expected = "a server id such as '5400' or a range such as '5400-5404' (whole numbers from 1 to 4294967295)";
    let num = |s: &str| s.trim().parse::<u32>().ok().filter(|n| *n > 0);
    let ids = match text.split_once('-') {
        Some((a, b)) => num(a).zip(num(b)).filter(|(a, b)| a <= b),
        None => num(text).map(|n| (n, n)),
    };
    ids.ok_or_else(|| o.invalid("server-id", text, expected))
}

pub fn parse_time_zone(text: &str) -> Option<Tz> {
    let t = text.trim();
    if let Ok(tz) = t.parse::<Tz>() {
        return Some(tz);
    }
    // MySQL-style fixed offsets ('+08:00') map onto the IANA Etc zones, whose signs are inverted.
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if m != 0 {
        return None;
    }
    if h == 0 {
        return Some(Tz::UTC);
    }
    format!("Etc/GMT{}{}", if sign > 0 { '-' } else { '+' }, h).parse().ok()
}

impl MySqlCdcConfig {
    /// Reads the options of a table declared `spec`. `tables` is a pipeline source's own
    /// selection; without it the tables are 'database-name' and 'table-name'.
    pub fn parse(spec: &TableSpec, o: &mut ConnectorOptions, tables: Option<TableSelection>) -> Result<Self> {
        let hostname = o.required("hostname")?;
        let port = o.parse::<u16>("port", "a TCP port number")?.unwrap_or(3306);
        let username = o.required("username")?;
        let password = o.required("password")?;
        let tables = match tables {
            Some(tables) => tables,
            None => {
                let database_text = o.required("database-name")?;
                let table_text = o.required("table-name")?;
                let levels =
                    vec![anchored(o, "database-name", &database_text)?, anchored(o, "table-name", &table_text)?];
                let whole = anchored(o, "table-name", &format!("(?:{database_text})\\.(?:{table_text})"))?;
                let text = format!("{database_text}.{table_text}");
                let written = format!(
                    "'database-name' = '{database_text}' and 'table-name' = '{table_text}' (both are regular expressions \
                     matched against whole names)"
                );
                TableSelection::single(TablePattern::of_levels(levels, whole, text.clone()), text, written)
            }
        };
        let server_ids = match o.string("server-id") {
            Some(text) => parse_server_ids(o, &text)?,
            // Flink CDC picks a random id in 5400–6400 when none is given.
            None => {
                let id = 5400 + (std::process::id() % 1000);
                (id, id)
            }
        };
        let server_time_zone = match o.string("server-time-zone") {
            Some(text) => parse_time_zone(&text).ok_or_else(|| {
                o.invalid("server-time-zone", &text, "a time zone such as 'UTC', 'Asia/Shanghai' or '+08:00'")
            })?,
            None => Tz::UTC,
        };
        let mode = o
            .choice(
                "scan.startup.mode",
                &["initial", "snapshot", "earliest-offset", "latest-offset", "specific-offset", "timestamp"],
            )?
            .unwrap_or("initial");
        let file = o.string("scan.startup.specific-offset.file");
        let pos = o.parse::<u64>("scan.startup.specific-offset.pos", "a binlog byte position")?;
        let gtid = o.string("scan.startup.specific-offset.gtid-set");
        if mode != "specific-offset" && (file.is_some() || pos.is_some() || gtid.is_some()) {
            return Err(Error::user(format!(
                "table `{}`: 'scan.startup.specific-offset.*' options need 'scan.startup.mode' = 'specific-offset' (it is '{mode}')",
                spec.name
            )));
        }
        let timestamp = o.parse::<i64>(
            "scan.startup.timestamp-millis",
            "milliseconds since 1970-01-01 00:00:00 UTC, such as '1700000000000'",
        )?;
        if mode != "timestamp" && timestamp.is_some() {
            return Err(Error::user(format!(
                "table `{}`: 'scan.startup.timestamp-millis' needs 'scan.startup.mode' = 'timestamp' (it is '{mode}')",
                spec.name
            )));
        }
        let startup = match mode {
            "initial" => StartupMode::Initial,
            "snapshot" => StartupMode::Snapshot,
            "earliest-offset" => StartupMode::EarliestOffset,
            "latest-offset" => StartupMode::LatestOffset,
            "specific-offset" => match (gtid, file, pos) {
                (Some(g), None, None) if !g.trim().is_empty() => StartupMode::SpecificGtid(g.trim().to_string()),
                (None, Some(f), Some(p)) if !f.trim().is_empty() => {
                    StartupMode::SpecificFile { file: f.trim().to_string(), pos: p.max(4) }
                }
                _ => {
                    return Err(Error::user(format!(
                        "table `{}`: 'scan.startup.mode' = 'specific-offset' needs either 'scan.startup.specific-offset.gtid-set' or both 'scan.startup.specific-offset.file' and 'scan.startup.specific-offset.pos'",
                        spec.name
                    )))
                }
            },
            _ => match timestamp {
                // Binlog timestamps are 32-bit epoch seconds.
                Some(millis) if (0..=u32::MAX as i64 * 1000).contains(&millis) => StartupMode::Timestamp { millis },
                Some(millis) => {
                    return Err(o.invalid(
                        "scan.startup.timestamp-millis",
                        &millis.to_string(),
                        "milliseconds since 1970-01-01 00:00:00 UTC, from 0 to 4294967295999",
                    ))
                }
                None => {
                    return Err(Error::user(format!(
                        "table `{}`: 'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis' (milliseconds since 1970-01-01 00:00:00 UTC)",
                        spec.name
                    )))
                }
            },
        };
        let incremental = o.bool("scan.incremental.snapshot.enabled")?.unwrap_or(true);
        let fetch_size =
            o.parse::<usize>("scan.snapshot.fetch.size", "a positive whole number of rows")?.unwrap_or(1024);
        if fetch_size == 0 {
            return Err(o.invalid("scan.snapshot.fetch.size", "0", "a positive whole number of rows"));
        }
        let given_chunk_size =
            o.parse::<u64>("scan.incremental.snapshot.chunk.size", "a positive whole number of rows")?;
        let chunk_size = given_chunk_size.unwrap_or(8096);
        if chunk_size == 0 {
            return Err(o.invalid("scan.incremental.snapshot.chunk.size", "0", "a positive whole number of rows"));
        }
        let chunk_key_column = o.string("scan.incremental.snapshot.chunk.key-column");
        let given_parallelism =
            o.parse::<usize>("scan.incremental.snapshot.parallelism", "a whole number from 1 to 64")?;
        // One reader per core, two to four, as the postgres-cdc snapshot (where four readers on
        // two cores measurably cost more CPU per row); here 2 and 4 measured within noise.
        let snapshot_parallelism = given_parallelism
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4));
        if !(1..=64).contains(&snapshot_parallelism) {
            return Err(o.invalid(
                "scan.incremental.snapshot.parallelism",
                &snapshot_parallelism.to_string(),
                "a whole number from 1 to 64",
            ));
        }
        if !incremental {
            let given: Vec<&str> = [
                (given_chunk_size.is_some(), "scan.incremental.snapshot.chunk.size"),
                (chunk_key_column.is_some(), "scan.incremental.snapshot.chunk.key-column"),
                (given_parallelism.is_some(), "scan.incremental.snapshot.parallelism"),
            ]
            .into_iter()
            .filter_map(|(given, key)| given.then_some(key))
            .collect();
            if !given.is_empty() {
                return Err(Error::user(format!(
                    "table `{}`: {} only apply to the incremental snapshot, but 'scan.incremental.snapshot.enabled' = 'false' reads the tables in one pass; remove {}",
                    spec.name,
                    given.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "),
                    if given.len() == 1 { "it" } else { "them" }
                )));
            }
        }
        // Flink CDC options that change nothing here, or that are refused because ignoring them
        // would change what the job delivers.
        for key in ["scan.startup.specific-offset.skip-events", "scan.startup.specific-offset.skip-rows"] {
            o.refused(key, NO_SKIP)?;
        }
        o.no_effect(
            "debezium.min.row.count.to.stream.result",
            "no table is read into memory whole: the incremental snapshot reads chunks of \
             'scan.incremental.snapshot.chunk.size' rows and the legacy snapshot streams its rows",
        );
        o.no_effect("connection.pool.size", NO_POOL);
        o.no_effect("scan.incremental.close-idle-reader.enabled", CLOSE_IDLE_READERS);
        o.no_effect(
            "scan.parse.online.schema.changes.enabled",
            "any DDL naming a captured table (the RENAME of gh-ost and pt-osc too) makes it be described again, so a \
             table swapped in by those tools is read by its new columns either way",
        );
        o.no_effect("scan.incremental.snapshot.unbounded-chunk-first.enabled", CHUNK_ORDER);
        o.no_effect(
            "scan.incremental.snapshot.backfill.skip",
            "snapshot chunks are always reconciled with the binlog, which delivers each change once; skipping that \
             would only allow duplicates",
        );
        o.no_effect("chunk-meta.group.size", CHUNK_META);
        for key in ["chunk-key.even-distribution.factor.upper-bound", "chunk-key.even-distribution.factor.lower-bound"]
        {
            o.no_effect(
                key,
                "chunk boundaries change nothing in what is delivered; an integer chunk key is split evenly when its \
                 span is below twice the table's estimated row count, by the key's index otherwise",
            );
        }
        o.refused_unless("scan.newly-added-table.enabled", &["false"], NO_NEWLY_ADDED_TABLES)?;
        o.refused_unless(
            "use.legacy.json.format",
            &["true"],
            "MySQL's binary JSON in the binlog is printed compactly, as Flink CDC's legacy format; the spacing of the \
             server's JSON text is not reproduced",
        )?;
        o.refused_unless(
            "debezium.binary.handling.mode",
            &["none"],
            "binary columns are read as bytes: declare them BYTES and convert them in the query, e.g. \
             encode(c, 'base64') or encode(c, 'hex')",
        )?;
        o.refused_prefix("debezium.", DEBEZIUM)?;
        let append_only = o.bool("scan.read-changelog-as-append-only.enabled")?.unwrap_or(false);

        let connect_timeout = o.duration("connect.timeout")?.unwrap_or(Duration::from_secs(30));
        let connect_max_retries = o.parse::<u32>("connect.max-retries", "a whole number")?.unwrap_or(3);
        let heartbeat_interval = o.duration("heartbeat.interval")?.unwrap_or(Duration::from_secs(30));
        if heartbeat_interval.is_zero() {
            return Err(o.invalid("heartbeat.interval", "0", "a positive duration such as '30s'"));
        }
        for key in ["jdbc.properties.useUnicode", "jdbc.properties.characterEncoding"] {
            o.no_effect(key, "text is decoded by each column's own character set, not by MySQL Connector/J settings");
        }
        let use_ssl = o.bool("jdbc.properties.useSSL")?;
        let ssl_mode = match o.string("jdbc.properties.sslMode") {
            None => match use_ssl {
                Some(true) => SslMode::Required,
                _ => SslMode::Disabled,
            },
            Some(text) => {
                let mode = match text.trim().to_ascii_uppercase().as_str() {
                    "DISABLED" => SslMode::Disabled,
                    "REQUIRED" => SslMode::Required,
                    "VERIFY_CA" => SslMode::VerifyCa,
                    "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
                    _ => {
                        return Err(o.invalid(
                            "jdbc.properties.sslMode",
                            &text,
                            "one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY",
                        ))
                    }
                };
                if use_ssl.is_some_and(|u| u != (mode != SslMode::Disabled)) {
                    return Err(Error::user(format!(
                        "table `{}`: 'jdbc.properties.useSSL' and 'jdbc.properties.sslMode' disagree; keep only 'jdbc.properties.sslMode'",
                        spec.name
                    )));
                }
                mode
            }
        };
        o.refused_prefix(
            "jdbc.properties.",
            "cdc-sql does not use MySQL Connector/J: of its URL properties it reads useSSL and sslMode (and accepts \
             useUnicode and characterEncoding without effect)",
        )?;
        Ok(MySqlCdcConfig {
            table: spec.name.clone(),
            hostname,
            port,
            username,
            password,
            tables,
            server_ids,
            server_time_zone,
            startup,
            incremental,
            chunk_size,
            chunk_key_column,
            fetch_size,
            connect_timeout,
            connect_max_retries,
            heartbeat_interval,
            ssl_mode,
            snapshot_parallelism,
            append_only,
        })
    }

    /// The server id of the binlog reader.
    pub fn binlog_server_id(&self) -> u32 {
        self.server_ids.0
    }

    /// Server ids for the short binlog reads that reconcile snapshot chunks: a range gives each
    /// parallel reader its own; a single id is shared in turn (the server drops an older dump
    /// with the same id, so backfills then run one at a time).
    pub fn backfill_server_id(&self, reader: usize) -> u32 {
        let (first, last) = self.server_ids;
        let span = (last - first) as usize;
        if span == 0 {
            first
        } else {
            first + 1 + (reader % span) as u32
        }
    }

    /// What the source's positions are positions in: binlog offsets and GTIDs belong to the
    /// server (so the database is part of what is read, not of where), chunk lists to the
    /// captured tables. No user or password: this is stored and shown.
    pub fn source_identity(&self) -> SourceIdentity {
        SourceIdentity {
            connector: "mysql-cdc".into(),
            location: format!("{}:{}", self.hostname, self.port),
            tables: self.tables.text().to_string(),
            startup_mode: self.startup.describe(),
        }
    }

    pub fn matches(&self, database: &str, table: &str) -> bool {
        self.tables.matches(&[database, table])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::TableOption;

    fn parse(opts: &[(&str, &str)]) -> Result<MySqlCdcConfig> {
        let mut all = vec![
            ("connector", "mysql-cdc"),
            ("hostname", "h"),
            ("username", "u"),
            ("password", "secret-pw"),
            ("database-name", "shop"),
            ("table-name", "user_[0-9]+"),
        ];
        all.extend_from_slice(opts);
        let spec = TableSpec {
            name: "t".into(),
            columns: vec![],
            primary_key: vec![],
            options: all
                .iter()
                .map(|(k, v)| TableOption { key: k.to_string(), value: v.to_string(), written: v.to_string() })
                .collect(),
            comment: None,
            computed: Vec::new(),
        };
        let mut o = ConnectorOptions::new(&spec)?;
        let config = MySqlCdcConfig::parse(&spec, &mut o, None)?;
        o.finish()?;
        Ok(config)
    }

    #[test]
    fn defaults_follow_flink_cdc() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 3306);
        assert_eq!(c.startup, StartupMode::Initial);
        assert_eq!(c.chunk_size, 8096);
        assert_eq!(c.fetch_size, 1024);
        assert!(c.incremental);
        assert_eq!(c.connect_timeout, Duration::from_secs(30));
        assert_eq!(c.connect_max_retries, 3);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.ssl_mode, SslMode::Disabled);
        assert!((5400..6400).contains(&c.server_ids.0));
    }

    #[test]
    fn table_and_database_names_are_whole_regex_matches() {
        let c = parse(&[]).unwrap();
        assert!(c.matches("shop", "user_1"));
        assert!(c.matches("shop", "user_42"));
        assert!(!c.matches("shop", "user_x"));
        assert!(!c.matches("shop", "super_user_1"));
        assert!(!c.matches("shop2", "user_1"));
        let err = parse(&[("table-name", "user_(")]).unwrap_err().to_string();
        assert!(err.contains("'table-name' = 'user_('") && err.contains("regular expression"), "{err}");
    }

    #[test]
    fn server_id_single_or_range() {
        assert_eq!(parse(&[("server-id", "5401")]).unwrap().server_ids, (5401, 5401));
        let c = parse(&[("server-id", "5400-5404")]).unwrap();
        assert_eq!(c.server_ids, (5400, 5404));
        assert_eq!(c.binlog_server_id(), 5400);
        assert_eq!((c.backfill_server_id(0), c.backfill_server_id(3), c.backfill_server_id(4)), (5401, 5404, 5401));
        for bad in ["0", "5404-5400", "abc", "1-"] {
            let err = parse(&[("server-id", bad)]).unwrap_err().to_string();
            assert!(err.contains("'server-id'"), "{bad}: {err}");
        }
    }

    #[test]
    fn startup_modes() {
        assert_eq!(parse(&[("scan.startup.mode", "snapshot")]).unwrap().startup, StartupMode::Snapshot);
        assert_eq!(parse(&[("scan.startup.mode", "latest-offset")]).unwrap().startup, StartupMode::LatestOffset);
        let c = parse(&[
            ("scan.startup.mode", "specific-offset"),
            ("scan.startup.specific-offset.file", "mariadb-bin.000002"),
            ("scan.startup.specific-offset.pos", "1234"),
        ])
        .unwrap();
        assert_eq!(c.startup, StartupMode::SpecificFile { file: "mariadb-bin.000002".into(), pos: 1234 });
        let c = parse(&[("scan.startup.mode", "specific-offset"), ("scan.startup.specific-offset.gtid-set", "0-1-42")])
            .unwrap();
        assert_eq!(c.startup, StartupMode::SpecificGtid("0-1-42".into()));
        let err = parse(&[("scan.startup.mode", "specific-offset")]).unwrap_err().to_string();
        assert!(err.contains("needs either"), "{err}");
        let err = parse(&[("scan.startup.specific-offset.pos", "4")]).unwrap_err().to_string();
        assert!(err.contains("need 'scan.startup.mode' = 'specific-offset'"), "{err}");
        let c =
            parse(&[("scan.startup.mode", "timestamp"), ("scan.startup.timestamp-millis", "1700000000123")]).unwrap();
        assert_eq!(c.startup, StartupMode::Timestamp { millis: 1_700_000_000_123 });
        let err = parse(&[("scan.startup.mode", "timestamp")]).unwrap_err().to_string();
        assert!(err.contains("needs 'scan.startup.timestamp-millis'"), "{err}");
        let err = parse(&[("scan.startup.timestamp-millis", "1700000000123")]).unwrap_err().to_string();
        assert!(err.contains("needs 'scan.startup.mode' = 'timestamp'"), "{err}");
        for bad in ["-1", "4294967296000", "yesterday"] {
            let err = parse(&[("scan.startup.mode", "timestamp"), ("scan.startup.timestamp-millis", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("'scan.startup.timestamp-millis' = '{bad}'")), "{err}");
        }
        let err = parse(&[("scan.startup.mode", "inital")]).unwrap_err().to_string();
        assert!(err.contains("one of initial"), "{err}");
    }

    #[test]
    fn the_source_identity_names_server_tables_and_start_without_credentials() {
        let identity = |opts: &[(&str, &str)]| parse(opts).unwrap().source_identity();
        let initial = identity(&[("port", "3307")]);
        assert_eq!(
            initial,
            SourceIdentity {
                connector: "mysql-cdc".into(),
                location: "h:3307".into(),
                tables: "shop.user_[0-9]+".into(),
                startup_mode: "initial".into(),
            }
        );
        let shown = serde_json::to_string(&initial).unwrap();
        assert!(!shown.contains("secret-pw") && !shown.contains("\"u\""), "{shown}");
        let snapshot = identity(&[("port", "3307"), ("scan.startup.mode", "snapshot")]);
        assert_eq!(snapshot.startup_mode, SourceIdentity::SNAPSHOT);
        assert!(initial.continues_snapshot(&snapshot) && !snapshot.continues_snapshot(&initial));
        let modes = [
            (vec![("scan.startup.mode", "latest-offset")], "latest-offset"),
            (vec![("scan.startup.mode", "earliest-offset")], "earliest-offset"),
            (
                vec![
                    ("scan.startup.mode", "specific-offset"),
                    ("scan.startup.specific-offset.file", "mariadb-bin.000002"),
                    ("scan.startup.specific-offset.pos", "1234"),
                ],
                "specific-offset file=mariadb-bin.000002 pos=1234",
            ),
            (
                vec![("scan.startup.mode", "specific-offset"), ("scan.startup.specific-offset.gtid-set", "0-1-42")],
                "specific-offset gtid-set=0-1-42",
            ),
            (
                vec![("scan.startup.mode", "timestamp"), ("scan.startup.timestamp-millis", "1700000000000")],
                "timestamp 1700000000000",
            ),
        ];
        for (opts, mode) in modes {
            assert_eq!(identity(&opts).startup_mode, mode);
        }
        // Whatever changes what is read or where refuses the continuation.
        assert!(!identity(&[("table-name", "orders")]).continues_snapshot(&snapshot));
        assert!(!identity(&[("hostname", "other")]).continues_snapshot(&snapshot));
        // Logins and tuning do not change the positions.
        let tuned = identity(&[("port", "3307"), ("username", "v"), ("password", "p2"), ("server-id", "5401")]);
        assert_eq!(tuned, initial);
    }

    #[test]
    fn unsupported_and_invalid_options_are_rejected() {
        let err = parse(&[("scan.snapshot.fetch.size", "0")]).unwrap_err().to_string();
        assert!(err.contains("'scan.snapshot.fetch.size' = '0'"), "{err}");
        let err = parse(&[("jdbc.properties.serverTimezone", "UTC")]).unwrap_err().to_string();
        assert!(err.contains("'jdbc.properties.serverTimezone' = 'UTC'") && err.contains("Connector/J"), "{err}");
        parse(&[("jdbc.properties.useUnicode", "true")]).unwrap();
        let err = parse(&[("password", "x"), ("port", "99999")]).unwrap_err().to_string();
        assert!(err.contains("'port' = '99999'"), "{err}");
        assert_eq!(parse(&[("jdbc.properties.sslMode", "required")]).unwrap().ssl_mode, SslMode::Required);
        assert_eq!(parse(&[("jdbc.properties.useSSL", "true")]).unwrap().ssl_mode, SslMode::Required);
        let both = [("jdbc.properties.useSSL", "true"), ("jdbc.properties.sslMode", "VERIFY_CA")];
        assert_eq!(parse(&both).unwrap().ssl_mode, SslMode::VerifyCa);
        let err = parse(&[("jdbc.properties.useSSL", "true"), ("jdbc.properties.sslMode", "DISABLED")]).unwrap_err();
        assert!(err.to_string().contains("disagree"), "{err}");
    }

    #[test]
    fn legacy_snapshot_rejects_the_incremental_snapshot_options() {
        let c = parse(&[("scan.incremental.snapshot.enabled", "false"), ("scan.snapshot.fetch.size", "10")]).unwrap();
        assert!(!c.incremental);
        assert_eq!(c.fetch_size, 10);
        let err = parse(&[
            ("scan.incremental.snapshot.enabled", "false"),
            ("scan.incremental.snapshot.chunk.size", "10"),
            ("scan.incremental.snapshot.parallelism", "2"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("'scan.incremental.snapshot.chunk.size', 'scan.incremental.snapshot.parallelism' only apply")
                && err.ends_with("remove them"),
            "{err}"
        );
        let err = parse(&[
            ("scan.incremental.snapshot.enabled", "false"),
            ("scan.incremental.snapshot.chunk.key-column", "id"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("remove it"), "{err}");
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_time_zone("Asia/Shanghai"), Some(Tz::Asia__Shanghai));
        assert_eq!(parse_time_zone("+08:00"), Some(Tz::Etc__GMTMinus8));
        assert_eq!(parse_time_zone("-05:00"), Some(Tz::Etc__GMTPlus5));
        assert_eq!(parse_time_zone("+00:00"), Some(Tz::UTC));
        assert_eq!(parse_time_zone("Mars/Olympus"), None);
        assert!(parse(&[("server-time-zone", "Mars/Olympus")]).is_err());
    }
}
