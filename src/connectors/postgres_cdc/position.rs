//! The position postgres-cdc tags batches with, as stored in checkpoint records and offsets
//! tables (the shape every release so far has written):
//!
//! * `{"phase": "snapshot", "slot": …, "chunks_done": n, "chunks_total": n, "rows": n}` while the
//!   snapshot runs, with `"bounded": true` in 'snapshot' mode (left out otherwise);
//! * `{"phase": "stream", "slot": …, "lsn": "X/Y"}` afterwards.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::pgoutput::{format_lsn, parse_lsn};
use crate::connectors::Position;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
pub enum PgPosition {
    /// Progress only: a restart reads the tables again, then streams from the slot.
    Snapshot {
        slot: String,
        chunks_done: usize,
        chunks_total: usize,
        rows: u64,
        /// A 'snapshot' mode run, which has no slot: no streaming run can continue from it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        bounded: bool,
    },
    /// Every transaction committed before `lsn` is in this or an earlier batch.
    Stream { slot: String, lsn: Lsn },
}

impl PgPosition {
    /// The position as the runtime stores it.
    pub fn to_position(&self) -> Position {
        serde_json::to_value(self).expect("a postgres-cdc position is plain JSON")
    }

    /// Reads a stored position of table `table`; one this connector did not write (or that was
    /// edited) is the user's to clear.
    pub fn from_position(position: &Position, table: &str) -> Result<Self> {
        PgPosition::deserialize(position).map_err(|e| {
            Error::user(format!(
                "postgres-cdc table `{table}` cannot resume from position {position}: {e}; it is not a position this \
                 connector writes. Start the job over with --fresh"
            ))
        })
    }
}

/// A WAL position, stored as PostgreSQL writes it (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lsn(pub u64);

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format_lsn(self.0))
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        parse_lsn(&text)
            .map(Lsn)
            .ok_or_else(|| serde::de::Error::custom(format_args!("\"{text}\" is not an LSN such as \"16/B374D848\"")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions as the release before typed positions wrote them (its `json!` builders, keys in
    /// the order `serde_json` stores them), as checkpoint records and offsets tables hold them.
    const STORED: &[&str] = &[
        r#"{"chunks_done":3,"chunks_total":10,"phase":"snapshot","rows":12345,"slot":"flink"}"#,
        r#"{"bounded":true,"chunks_done":3,"chunks_total":3,"phase":"snapshot","rows":10,"slot":"s1"}"#,
        r#"{"lsn":"16/B374D848","phase":"stream","slot":"flink"}"#,
        r#"{"lsn":"0/0","phase":"stream","slot":"flink"}"#,
    ];

    #[test]
    fn positions_stored_by_the_previous_release_read_and_write_back_identically() {
        let (slot, chunks_done, chunks_total, rows) = ("flink", 3usize, 10usize, 12345u64);
        let old_snapshot = serde_json::json!({
            "phase": "snapshot", "slot": slot, "chunks_done": chunks_done, "chunks_total": chunks_total, "rows": rows,
        });
        let lsn = 0x16_B374_D848;
        let old_stream = serde_json::json!({ "phase": "stream", "slot": slot, "lsn": format_lsn(lsn) });
        assert_eq!(old_snapshot.to_string(), STORED[0]);
        assert_eq!(old_stream.to_string(), STORED[2]);
        let written = [
            PgPosition::Snapshot { slot: slot.into(), chunks_done, chunks_total, rows, bounded: false },
            PgPosition::Snapshot { slot: "s1".into(), chunks_done: 3, chunks_total: 3, rows: 10, bounded: true },
            PgPosition::Stream { slot: slot.into(), lsn: Lsn(lsn) },
            PgPosition::Stream { slot: slot.into(), lsn: Lsn(0) },
        ];
        for (position, stored) in written.iter().zip(STORED) {
            assert_eq!(position.to_position().to_string(), *stored);
            let read = PgPosition::from_position(&serde_json::from_str(stored).unwrap(), "t").unwrap();
            assert_eq!(&read, position);
            assert_eq!(read.to_position().to_string(), *stored);
        }
    }

    #[test]
    fn an_unreadable_position_names_the_table_and_the_fix() {
        let unreadable = [
            r#"{"phase":"stream","slot":"flink"}"#,
            r#"{"phase":"stream","slot":"flink","lsn":"nowhere"}"#,
            r#"{"phase":"stream","slot":"flink","lsn":12}"#,
            r#"{"phase":"replay","slot":"flink","lsn":"0/1"}"#,
            r#"{"phase":"snapshot","slot":"flink","chunks_done":1}"#,
            r#"{"file":"mysql-bin.000003","pos":4711}"#,
        ];
        for text in unreadable {
            let err = PgPosition::from_position(&serde_json::from_str(text).unwrap(), "orders").unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, Error::User(_)), "{err:?}");
            assert!(message.contains("table `orders`") && message.contains("--fresh"), "{message}");
        }
    }
}
