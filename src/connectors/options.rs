//! The WITH options of one table, consumed key by key as a connector reads them. What is left at
//! the end is an error naming the unknown key and the nearest valid one, so a typo never turns
//! into a silently ignored setting. Values of secret keys never appear in messages.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{nearest, Error, Result};
use crate::sql::table::{is_secret_key, MASK};
use crate::sql::TableSpec;

pub struct ConnectorOptions {
    table: String,
    connector: String,
    remaining: BTreeMap<String, String>,
    known: Vec<String>,
    /// Keys the table set that have no effect here, with the warning given for each.
    warned: Vec<(String, String)>,
}

impl ConnectorOptions {
    /// Takes the table's options; the `connector` key is consumed here.
    pub fn new(spec: &TableSpec) -> Result<Self> {
        let mut remaining: BTreeMap<String, String> =
            spec.options.iter().map(|o| (o.key.clone(), o.value.clone())).collect();
        let Some(connector) = remaining.remove("connector") else {
            return Err(Error::user(format!(
                "table `{}` has no 'connector' option; add 'connector' = '…' to its WITH clause",
                spec.name
            )));
        };
        Ok(ConnectorOptions {
            table: spec.name.clone(),
            connector,
            remaining,
            known: vec!["connector".into()],
            warned: Vec::new(),
        })
    }

    pub fn connector(&self) -> &str {
        &self.connector
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn shown(key: &str, value: &str) -> String {
        if is_secret_key(key) {
            MASK.to_string()
        } else {
            value.to_string()
        }
    }

    /// An error about option `key` with value `value`, saying what was expected.
    pub fn invalid(&self, key: &str, value: &str, expected: &str) -> Error {
        Error::user(format!(
            "option '{key}' = '{}' of table `{}` is not valid; expected {expected}",
            Self::shown(key, value),
            self.table
        ))
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        self.known.push(key.to_string());
        self.remaining.remove(key)
    }

    pub fn required(&mut self, key: &str) -> Result<String> {
        self.string(key).ok_or_else(|| {
            Error::user(format!(
                "table `{}` (connector '{}') needs option '{key}'; add '{key}' = '…' to its WITH clause",
                self.table, self.connector
            ))
        })
    }

    pub fn parse<T: FromStr>(&mut self, key: &str, expected: &str) -> Result<Option<T>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| self.invalid(key, &v, expected)),
        }
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.invalid(key, &v, "true or false")),
            },
        }
    }

    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => parse_duration(&v)
                .map(Some)
                .ok_or_else(|| self.invalid(key, &v, "a duration such as '500ms', '5s', '1 min' or '2h'")),
        }
    }

    /// Flink's memory size syntax (`MemorySize`): bytes, or a number with a unit of 1024s —
    /// `'104857600'`, `'100mb'`, `'10 MB'`, `'1g'`.
    pub fn memory_size(&mut self, key: &str) -> Result<Option<u64>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => parse_memory_size(&v).map(Some).ok_or_else(|| {
                self.invalid(key, &v, "a size in bytes, or with a unit such as '10mb', '512kb' or '1g'")
            }),
        }
    }

    /// One of `choices`, compared without case; returned as listed in `choices`.
    pub fn choice(&mut self, key: &str, choices: &[&'static str]) -> Result<Option<&'static str>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(v.trim()))
                .copied()
                .map(Some)
                .ok_or_else(|| self.invalid(key, &v, &format!("one of {}", choices.join(", ")))),
        }
    }

    /// Consumes `key`, a Flink option accepted so job files run unchanged although it changes
    /// nothing here, warning with `why` when the table sets it. Returns whether it was set.
    pub fn no_effect(&mut self, key: &str, why: &str) -> bool {
        let set = self.string(key).is_some();
        if set {
            let warning = format!("'{key}' has no effect in cdc-sql: {why}");
            tracing::warn!(table = %self.table, "{warning}");
            self.warned.push((key.to_string(), warning));
        }
        set
    }

    /// Consumes `key`, a Flink option cdc-sql does not offer because ignoring it would change
    /// what the job delivers or guarantees: setting it fails, saying `why` (and what to do).
    pub fn refused(&mut self, key: &str, why: &str) -> Result<()> {
        self.refused_unless(key, &[], why).map(|_| ())
    }

    /// Consumes `key`, accepting only the values in `accepted` (compared without case; what
    /// cdc-sql does anyway, typically Flink's default) and refusing any other with `why`.
    pub fn refused_unless(&mut self, key: &str, accepted: &[&str], why: &str) -> Result<Option<String>> {
        match self.string(key) {
            Some(v) if !accepted.iter().any(|a| a.eq_ignore_ascii_case(v.trim())) => Err(self.refusal(key, &v, why)),
            other => Ok(other),
        }
    }

    /// Consumes every key starting with `prefix` that is still unread (so read the ones of the
    /// family cdc-sql understands first) and refuses the first with `why` — or, when it is a
    /// near miss of a key read before, as a typo of that key.
    pub fn refused_prefix(&mut self, prefix: &str, why: &str) -> Result<()> {
        let Some(key) = self.remaining.keys().find(|k| k.starts_with(prefix)).cloned() else {
            self.known.push(format!("{prefix}*"));
            return Ok(());
        };
        // Within the family, compare what follows the prefix: 'jdbc.properties.serverTimezone'
        // is no typo of 'jdbc.properties.useUnicode', 'debezium.slot.drop.on.stp' is one.
        let rest = &key[prefix.len()..];
        let family = self.known.iter().filter_map(|k| k.strip_prefix(prefix)).filter(|k| !k.ends_with('*'));
        if nearest(rest, family).is_some() {
            return self.unsupported(&key);
        }
        let value = self.remaining.get(&key).cloned().unwrap_or_default();
        self.prefixed(prefix);
        Err(self.refusal(&key, &value, why))
    }

    fn refusal(&self, key: &str, value: &str, why: &str) -> Error {
        Error::user(format!(
            "option '{key}' = '{}' of table `{}` (connector '{}') is not supported by cdc-sql: {why}",
            Self::shown(key, value),
            self.table,
            self.connector
        ))
    }

    /// The Flink options the table set that have no effect here, each with its warning.
    pub fn warned(&self) -> &[(String, String)] {
        &self.warned
    }

    /// Consumes every key starting with `prefix` (e.g. `sink.properties.`), returned without the
    /// prefix, for connectors that pass such keys through to the server.
    pub fn prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        self.known.push(format!("{prefix}*"));
        let keys: Vec<String> = self.remaining.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.into_iter().filter_map(|k| self.remaining.remove(&k).map(|v| (k[prefix.len()..].to_string(), v))).collect()
    }

    /// Every key read so far (set or not), as a connector's or format's documentation lists them.
    pub fn known_keys(&self) -> &[String] {
        &self.known
    }

    /// Fails if any option was not consumed, naming it and the nearest key the connector knows.
    pub fn finish(self) -> Result<()> {
        match self.remaining.keys().next() {
            Some(key) => self.unsupported(&key.clone()),
            None => Ok(()),
        }
    }

    /// The known key `key` is most likely a typo of, if any.
    fn nearest_known(&self, key: &str) -> Option<String> {
        nearest(key, self.known.iter().map(String::as_str).filter(|k| !k.ends_with('*'))).map(str::to_string)
    }

    fn unsupported(&self, key: &str) -> Result<()> {
        let mut known = self.known.clone();
        known.sort();
        known.dedup();
        let hint = match self.nearest_known(key) {
            Some(k) => format!(" (did you mean '{k}'?)"),
            None => String::new(),
        };
        Err(Error::user(format!(
            "unsupported option '{key}' for connector '{}' in table `{}`{hint}. Supported options: {}",
            self.connector,
            self.table,
            known.join(", ")
        )))
    }
}

/// A whole number and the unit after it (lowercase, maybe empty), as Flink writes sizes and
/// durations: `'100mb'`, `'10 s'`.
fn number_and_unit(text: &str) -> Option<(u64, String)> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim().to_ascii_lowercase()))
}

/// Flink's memory size syntax: a whole number and an optional unit (default bytes), 1024-based.
pub fn parse_memory_size(text: &str) -> Option<u64> {
    let (n, unit) = number_and_unit(text)?;
    let shift = match unit.as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// Flink's duration syntax: a number and an optional unit (default milliseconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (n, unit) = number_and_unit(text)?;
    let ms = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n.checked_mul(1_000)?,
        "m" | "min" | "minute" | "minutes" => n.checked_mul(60_000)?,
        "h" | "hour" | "hours" => n.checked_mul(3_600_000)?,
        "d" | "day" | "days" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::TableOption;

    fn spec(opts: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "t".into(),
            columns: vec![],
            primary_key: vec![],
            options: opts
                .iter()
                .map(|(k, v)| TableOption { key: k.to_string(), value: v.to_string(), written: v.to_string() })
                .collect(),
            comment: None,
            computed: Vec::new(),
        }
    }

    #[test]
    fn leftover_key_names_the_nearest_valid_one() {
        let mut o = ConnectorOptions::new(&spec(&[("connector", "x"), ("hostnme", "h")])).unwrap();
        assert_eq!(o.string("hostname"), None);
        o.string("port");
        let err = o.finish().unwrap_err().to_string();
        assert!(err.contains("unsupported option 'hostnme'"), "{err}");
        assert!(err.contains("did you mean 'hostname'?"), "{err}");
    }

    #[test]
    fn invalid_secret_values_are_masked() {
        let mut o = ConnectorOptions::new(&spec(&[("connector", "x"), ("password", "hunter2")])).unwrap();
        let err = o.bool("password").unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains(MASK), "{err}");
    }

    #[test]
    fn choices_and_missing_required() {
        let mut o = ConnectorOptions::new(&spec(&[("connector", "x"), ("mode", "Inital")])).unwrap();
        let err = o.choice("mode", &["initial", "latest-offset"]).unwrap_err().to_string();
        assert!(err.contains("'mode' = 'Inital'") && err.contains("one of initial, latest-offset"), "{err}");
        assert!(o.required("url").unwrap_err().to_string().contains("needs option 'url'"));
        assert!(ConnectorOptions::new(&spec(&[])).is_err());
    }

    #[test]
    fn prefixed_keys_are_consumed_without_their_prefix() {
        let mut o = ConnectorOptions::new(&spec(&[
            ("connector", "x"),
            ("sink.properties.format", "json"),
            ("sink.properties.max_filter_ratio", "0.1"),
            ("sink.propertie.typo", "1"),
        ]))
        .unwrap();
        let mut props = o.prefixed("sink.properties.");
        props.sort();
        assert_eq!(props, vec![("format".into(), "json".into()), ("max_filter_ratio".into(), "0.1".into())]);
        let err = o.finish().unwrap_err().to_string();
        assert!(err.contains("unsupported option 'sink.propertie.typo'"), "{err}");
    }

    #[test]
    fn no_effect_warns_and_refusals_say_why() {
        let mut o = ConnectorOptions::new(&spec(&[
            ("connector", "x"),
            ("idle", "true"),
            ("mode", "FALSE"),
            ("debezium.a", "1"),
            ("debezium.known", "2"),
        ]))
        .unwrap();
        assert!(o.no_effect("idle", "nothing idles"));
        assert!(!o.no_effect("unset", "never warned"));
        assert_eq!(o.warned(), [("idle".to_string(), "'idle' has no effect in cdc-sql: nothing idles".to_string())]);
        assert_eq!(o.refused_unless("mode", &["false"], "true would drop rows").unwrap().as_deref(), Some("FALSE"));
        o.refused("absent", "never set").unwrap();
        assert_eq!(o.string("debezium.known").as_deref(), Some("2"));
        let err = o.refused_prefix("debezium.", "Debezium is not embedded").unwrap_err().to_string();
        assert!(
            err.contains("option 'debezium.a' = '1' of table `t`")
                && err.ends_with("not supported by cdc-sql: Debezium is not embedded"),
            "{err}"
        );
        assert!(o.known_keys().iter().any(|k| k == "debezium.*"));
        o.finish().unwrap();
        let mut o = ConnectorOptions::new(&spec(&[("connector", "x"), ("mode", "true")])).unwrap();
        let err = o.refused_unless("mode", &["false"], "true would drop rows").unwrap_err().to_string();
        assert!(err.contains("'mode' = 'true'") && err.ends_with("true would drop rows"), "{err}");
    }

    #[test]
    fn memory_sizes_follow_flink() {
        assert_eq!(parse_memory_size("104857600"), Some(104_857_600));
        assert_eq!(parse_memory_size("100mb"), Some(100 << 20));
        assert_eq!(parse_memory_size("10 MB"), Some(10 << 20));
        assert_eq!(parse_memory_size("1g"), Some(1 << 30));
        assert_eq!(parse_memory_size("512kb"), Some(512 << 10));
        assert_eq!(parse_memory_size("1.5g"), None);
        assert_eq!(parse_memory_size("10 parsecs"), None);
    }

    #[test]
    fn durations_follow_flink() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1 min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration(""), None);
    }
}
