//! What a connector offers lookup joins (`JOIN dim FOR SYSTEM_TIME AS OF s.proc ON s.k = dim.id`):
//! a client that finds a table's rows by key, a batch of keys at a time, and Flink's lookup options
//! (`lookup.cache`, `lookup.partial-cache.*`, `lookup.max-retries`, and the deprecated
//! `lookup.cache.max-rows` / `lookup.cache.ttl` / `lookup.cache.caching-missing-key`), read here
//! once for every connector that offers lookups. The cache and the retries are the lookup join
//! operator's (`operators::lookup`), the same for every connector.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;

use super::ConnectorOptions;
use crate::error::{Error, Result};

/// Why a connector that offers no lookups accepts Flink's lookup options and does nothing with them.
pub const NOT_OFFERED: &str = "lookup joins (FOR SYSTEM_TIME AS OF) are not offered for this connector's tables, so a \
                               table's lookup options have nothing to configure";

/// Finds rows of one table by key.
#[async_trait]
pub trait Lookup: Send {
    /// Every row of the table whose columns `key` (indices into its declared columns) equal those
    /// of one of `keys`' rows (one column per key column, of the declared column's type, without
    /// NULLs), in the table's declared columns. One round trip for the whole batch.
    async fn lookup(&mut self, key: &[usize], keys: &RecordBatch) -> Result<RecordBatch>;
}

pub type LookupFactory = Arc<dyn Fn() -> Result<Box<dyn Lookup>> + Send + Sync>;

/// How a table is looked up: a client per pipeline run (connecting when first used), and the
/// table's lookup options.
#[derive(Clone)]
pub struct LookupTable {
    pub open: LookupFactory,
    pub options: LookupOptions,
}

impl std::fmt::Debug for LookupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupTable").field("options", &self.options).finish_non_exhaustive()
    }
}

/// Flink's lookup options of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupOptions {
    /// `lookup.cache` = `PARTIAL`: keys looked up are kept; `None` for `NONE`.
    pub cache: Option<CacheOptions>,
    /// `lookup.max-retries`: a lookup failing for a reason outside the job (the database went
    /// away) is tried again this many times, reconnecting, before the job fails.
    pub max_retries: u32,
    /// `lookup.missing-key` (cdc-sql's own): what an INNER lookup join does with a change whose
    /// key the table has no row for.
    pub missing_key: MissingKey,
}

/// What an INNER lookup join does with a change whose key the table has no row for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// Nothing comes out for it: Flink's INNER JOIN.
    Drop,
    /// It is an error: the change goes to the dead letters, or stops the job without them.
    Error,
}

/// The option choosing [`MissingKey`].
pub const MISSING_KEY: &str = "lookup.missing-key";

/// Flink's `PARTIAL` cache: what is kept, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// Keys kept at most; beyond it the least recently used go.
    pub max_rows: Option<usize>,
    pub expire_after_write: Option<Duration>,
    pub expire_after_access: Option<Duration>,
    /// Whether a key the table does not have is remembered as missing.
    pub cache_missing_key: bool,
}

/// Flink's default for `lookup.max-retries`.
const MAX_RETRIES: u32 = 3;

impl LookupOptions {
    /// Reads the lookup options of a table's WITH clause.
    pub fn parse(o: &mut ConnectorOptions) -> Result<LookupOptions> {
        let max_retries = o.parse::<u32>("lookup.max-retries", "a whole number")?.unwrap_or(MAX_RETRIES);
        let missing_key = match o.choice(MISSING_KEY, &["drop", "error"])? {
            Some("error") => MissingKey::Error,
            _ => MissingKey::Drop,
        };
        let mode = o.choice("lookup.cache", &["NONE", "PARTIAL", "FULL"])?;
        let max_rows = o.parse::<usize>("lookup.partial-cache.max-rows", "a whole number of rows")?;
        let after_write = o.duration("lookup.partial-cache.expire-after-write")?;
        let after_access = o.duration("lookup.partial-cache.expire-after-access")?;
        let missing = o.bool("lookup.partial-cache.cache-missing-key")?;
        // Flink 1.15's options, still read by Flink when 'lookup.cache' is not set.
        let legacy_rows = o.parse::<usize>("lookup.cache.max-rows", "a whole number of rows")?;
        let legacy_ttl = o.duration("lookup.cache.ttl")?;
        let legacy_missing = o.bool("lookup.cache.caching-missing-key")?;
        let cache =
            match mode {
                Some("FULL") => return Err(Error::user(
                    "'lookup.cache' = 'FULL' is not supported by cdc-sql: it would load the whole table and reload it \
                     on a schedule; use 'PARTIAL', which keeps the keys looked up",
                )),
                Some("PARTIAL") => {
                    if max_rows.is_none() && after_write.is_none() && after_access.is_none() {
                        return Err(Error::user(
                        "'lookup.cache' = 'PARTIAL' needs a bound, as in Flink: set 'lookup.partial-cache.max-rows', \
                         'lookup.partial-cache.expire-after-write' or 'lookup.partial-cache.expire-after-access'",
                    ));
                    }
                    Some(CacheOptions {
                        max_rows,
                        expire_after_write: after_write,
                        expire_after_access: after_access,
                        cache_missing_key: missing.unwrap_or(true),
                    })
                }
                _ if mode.is_none() && legacy_rows.is_some() && legacy_ttl.is_some() => Some(CacheOptions {
                    max_rows: legacy_rows,
                    expire_after_write: legacy_ttl,
                    expire_after_access: None,
                    cache_missing_key: legacy_missing.unwrap_or(true),
                }),
                _ => {
                    let set = [
                        ("lookup.partial-cache.max-rows", max_rows.is_some()),
                        ("lookup.partial-cache.expire-after-write", after_write.is_some()),
                        ("lookup.partial-cache.expire-after-access", after_access.is_some()),
                        ("lookup.partial-cache.cache-missing-key", missing.is_some()),
                    ];
                    if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                        return Err(Error::user(format!(
                        "'{key}' is set but the cache is off; add 'lookup.cache' = 'PARTIAL' to use it, or remove it"
                    )));
                    }
                    if legacy_rows.is_some() != legacy_ttl.is_some() {
                        return Err(Error::user(
                        "the deprecated 'lookup.cache.max-rows' and 'lookup.cache.ttl' turn the cache on together, as \
                         in Flink; set both, or use 'lookup.cache' = 'PARTIAL' with 'lookup.partial-cache.*'",
                    ));
                    }
                    None
                }
            };
        Ok(LookupOptions { cache, max_retries, missing_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{parse_script, Statement};

    fn options(with: &str) -> Result<LookupOptions> {
        let sql = format!("CREATE TABLE d (id INT) WITH ('connector' = 'jdbc'{with});");
        let Statement::CreateTable { spec, .. } = &parse_script("t", &sql, &|_| None).unwrap()[0].statement else {
            unreachable!()
        };
        let mut o = ConnectorOptions::new(spec)?;
        LookupOptions::parse(&mut o)
    }

    #[test]
    fn the_cache_is_off_unless_partial_or_both_legacy_options_say_otherwise() {
        assert_eq!(options("").unwrap(), LookupOptions { cache: None, max_retries: 3, missing_key: MissingKey::Drop });
        assert_eq!(options(", 'lookup.missing-key' = 'ERROR'").unwrap().missing_key, MissingKey::Error);
        assert!(options(", 'lookup.missing-key' = 'fail'").unwrap_err().to_string().contains("one of drop, error"));
        let partial = options(
            ", 'lookup.cache' = 'PARTIAL', 'lookup.partial-cache.max-rows' = '100', \
             'lookup.partial-cache.expire-after-write' = '10s', 'lookup.max-retries' = '0'",
        )
        .unwrap();
        assert_eq!(
            partial,
            LookupOptions {
                cache: Some(CacheOptions {
                    max_rows: Some(100),
                    expire_after_write: Some(Duration::from_secs(10)),
                    expire_after_access: None,
                    cache_missing_key: true,
                }),
                max_retries: 0,
                missing_key: MissingKey::Drop,
            }
        );
        let legacy = options(", 'lookup.cache.max-rows' = '5', 'lookup.cache.ttl' = '1 min'").unwrap();
        assert_eq!(legacy.cache.unwrap().expire_after_write, Some(Duration::from_secs(60)));
    }

    #[test]
    fn error_cache_options_that_would_change_nothing_are_refused_with_the_fix() {
        for (with, says) in [
            (", 'lookup.cache' = 'PARTIAL'", "needs a bound"),
            (", 'lookup.partial-cache.max-rows' = '10'", "add 'lookup.cache' = 'PARTIAL'"),
            (", 'lookup.cache.max-rows' = '10'", "set both"),
            (", 'lookup.cache' = 'FULL'", "use 'PARTIAL'"),
        ] {
            let message = options(with).unwrap_err().to_string();
            assert!(message.contains(says), "{with}: {message}");
        }
    }
}
