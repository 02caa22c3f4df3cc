//! The position mysql-cdc tags batches with, as stored in checkpoint records and offsets tables:
//!
//! ```json
//! {"file": "mysql-bin.000003", "pos": 4711,          // after the last complete transaction
//!  "gtid": "0-1-42,1-2-7",                           // MariaDB, when known
//!  "legacy_snapshot": true,                          // taken during the legacy snapshot
//!  "skip_before_second": 1767225600,                 // a 'timestamp' start still skipping
//!  "snapshot": {"tables": ["db.t", …],               // the incremental snapshot, while it
//!               "chunks": [[0, null, "80640", {"file": …, "pos": …}], …]}}  // matters
//! ```
//!
//! Every field after `pos` is left out when it does not apply. A chunk is `[table index, lower
//! bound, upper bound, high watermark]`, bounds as decimal strings (keys may exceed what JSON
//! numbers hold exactly) and `null` when open or not yet read. Positions written by earlier
//! releases have this same shape and resume unchanged.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::server::BinlogPos;
use super::snapshot::Chunk;
use super::stream::GtidState;
use crate::connectors::Position;
use crate::error::{Error, Result};

/// Borrows what it writes (`Cow::Borrowed`), so building a batch's position copies nothing
/// first; read positions own their parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MySqlPosition<'a> {
    pub file: Cow<'a, str>,
    pub pos: u64,
    #[serde(default, skip_serializing_if = "GtidState::is_empty")]
    pub gtid: Cow<'a, GtidState>,
    /// Only ever `true` when present: a restart cannot continue the legacy snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_snapshot: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_before_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotChunks<'a>>,
}

/// The incremental snapshot's chunks; their `table` indices refer to `tables`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotChunks<'a> {
    /// `database.table` of each captured table.
    pub tables: Cow<'a, [String]>,
    pub chunks: Cow<'a, ChunkList>,
}

impl<'a> MySqlPosition<'a> {
    /// At `binlog`, with nothing else to say yet.
    pub fn at(binlog: &'a BinlogPos, gtid: &'a GtidState) -> Self {
        MySqlPosition {
            file: Cow::Borrowed(&binlog.file),
            pos: binlog.pos,
            gtid: Cow::Borrowed(gtid),
            legacy_snapshot: false,
            skip_before_second: None,
            snapshot: None,
        }
    }

    pub fn with_chunks(self, tables: &'a [String], chunks: &'a ChunkList) -> Self {
        let snapshot = SnapshotChunks { tables: Cow::Borrowed(tables), chunks: Cow::Borrowed(chunks) };
        MySqlPosition { snapshot: Some(snapshot), ..self }
    }

    pub fn binlog(&self) -> BinlogPos {
        BinlogPos { file: self.file.to_string(), pos: self.pos }
    }

    /// The position as the runtime stores it: what serializing it gives, built faster while it
    /// carries a chunk list. Every batch of a snapshot carries the whole list, and copying each
    /// chunk's JSON kept by [`ChunkList`] is about a tenth cheaper than serializing the chunk
    /// again (both allocate the same; a snapshot of 124 chunks, release build).
    pub fn to_position(&self) -> Position {
        let Some(snapshot) = &self.snapshot else { return to_value(self) };
        let mut position = to_value(&MySqlPosition {
            file: Cow::Borrowed(&self.file),
            gtid: Cow::Borrowed(&self.gtid),
            snapshot: None,
            ..*self
        });
        let mut fields = serde_json::Map::new();
        fields.insert("tables".into(), to_value(&snapshot.tables));
        fields.insert("chunks".into(), Value::Array(snapshot.chunks.json.clone()));
        position["snapshot"] = Value::Object(fields);
        position
    }
}

fn to_value(position: &impl Serialize) -> Value {
    serde_json::to_value(position).expect("a mysql-cdc position is plain JSON")
}

/// The snapshot's chunks with the JSON of each kept alongside, for [`MySqlPosition::to_position`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkList {
    chunks: Vec<Chunk>,
    json: Vec<Value>,
}

impl ChunkList {
    pub fn new(chunks: Vec<Chunk>) -> Self {
        let json = chunks.iter().map(to_value).collect();
        ChunkList { chunks, json }
    }

    pub fn set(&mut self, index: usize, chunk: Chunk) {
        self.json[index] = to_value(&chunk);
        self.chunks[index] = chunk;
    }

    pub fn push(&mut self, chunk: Chunk) {
        self.json.push(to_value(&chunk));
        self.chunks.push(chunk);
    }

    pub fn pop(&mut self) {
        self.json.pop();
        self.chunks.pop();
    }
}

impl std::ops::Deref for ChunkList {
    type Target = [Chunk];

    fn deref(&self) -> &[Chunk] {
        &self.chunks
    }
}

impl Serialize for ChunkList {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.chunks.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ChunkList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Vec::<Chunk>::deserialize(d).map(ChunkList::new)
    }
}

impl MySqlPosition<'static> {
    /// Reads a stored position of table `table`; one this connector did not write (or that was
    /// edited) is the user's to clear.
    pub fn from_position(position: &Position, table: &str) -> Result<Self> {
        MySqlPosition::deserialize(position).map_err(|e| {
            Error::user(format!(
                "mysql-cdc table `{table}` cannot resume from position {position}: {e}; it is not a position this \
                 connector writes. Start the job over with --fresh"
            ))
        })
    }
}

/// A chunk is stored as the array `[table, lo, hi, high]`, not as an object: every snapshot
/// batch's position holds every chunk, so its keys would be repeated thousands of times.
impl Serialize for Chunk {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.table, self.lo.map(KeyText), self.hi.map(KeyText), &self.high).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (table, lo, hi, high) = <(usize, Option<KeyText>, Option<KeyText>, Option<BinlogPos>)>::deserialize(d)?;
        Ok(Chunk { table, lo: lo.map(|k| k.0), hi: hi.map(|k| k.0), high })
    }
}

/// A chunk bound as a decimal string.
struct KeyText(i128);

impl Serialize for KeyText {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(itoa::Buffer::new().format(self.0))
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        text.parse()
            .map(KeyText)
            .map_err(|_| serde::de::Error::custom(format_args!("chunk bound \"{text}\" is not an integer")))
    }
}

/// A GTID position as MariaDB writes it, `domain-server-sequence` per domain, comma-separated.
impl Serialize for GtidState {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GtidState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        GtidState::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format_args!("\"{text}\" is not a MariaDB GTID position such as \"0-1-42\""))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions as the release before typed positions wrote them (captured from its builders),
    /// as checkpoint records and offsets tables hold them.
    const STORED: &[&str] = &[
        r#"{"file":"mysql-bin.000003","pos":4711}"#,
        r#"{"file":"mysql-bin.000003","gtid":"0-1-42,1-2-7","pos":4711}"#,
        r#"{"file":"mysql-bin.000003","gtid":"0-1-42,1-2-7","legacy_snapshot":true,"pos":4711}"#,
        r#"{"file":"mysql-bin.000003","pos":4711,"skip_before_second":1767225600}"#,
        r#"{"file":"mysql-bin.000003","gtid":"0-1-42,1-2-7","pos":4711,"snapshot":{"chunks":[[0,null,"-170141183460469231731687303715884105728",{"file":"mysql-bin.000003","pos":5000}],[0,"-170141183460469231731687303715884105728","18446744073709551615",null],[1,"18446744073709551615",null,{"file":"mysql-bin.000004","pos":4}],[1,null,null,null]],"tables":["shop.orders_0","shop.orders_1"]}}"#,
        r#"{"file":"mysql-bin.000003","pos":4711,"skip_before_second":1767225600,"snapshot":{"chunks":[[0,null,"-170141183460469231731687303715884105728",{"file":"mysql-bin.000003","pos":5000}],[0,"-170141183460469231731687303715884105728","18446744073709551615",null],[1,"18446744073709551615",null,{"file":"mysql-bin.000004","pos":4}],[1,null,null,null]],"tables":["shop.orders_0","shop.orders_1"]}}"#,
    ];

    fn chunks() -> Vec<Chunk> {
        let at = |file: &str, pos| Some(BinlogPos { file: file.into(), pos });
        vec![
            Chunk { table: 0, lo: None, hi: Some(i128::MIN), high: at("mysql-bin.000003", 5000) },
            Chunk { table: 0, lo: Some(i128::MIN), hi: Some(u64::MAX.into()), high: None },
            Chunk { table: 1, lo: Some(u64::MAX.into()), hi: None, high: at("mysql-bin.000004", 4) },
            Chunk { table: 1, lo: None, hi: None, high: None },
        ]
    }

    #[test]
    fn positions_stored_by_the_previous_release_read_and_write_back_identically() {
        for stored in STORED {
            let value: Position = serde_json::from_str(stored).unwrap();
            let read = MySqlPosition::from_position(&value, "t").unwrap();
            assert_eq!(read.to_position().to_string(), *stored);
        }
    }

    #[test]
    fn positions_are_written_as_the_previous_release_wrote_them() {
        let start = BinlogPos { file: "mysql-bin.000003".into(), pos: 4711 };
        let none = GtidState::default();
        let gtid = GtidState::parse("0-1-42,1-2-7").unwrap();
        let tables = ["shop.orders_0".to_string(), "shop.orders_1".to_string()];
        let chunks = ChunkList::new(chunks());
        let skipping = MySqlPosition { skip_before_second: Some(1_767_225_600), ..MySqlPosition::at(&start, &none) };
        let written = [
            MySqlPosition::at(&start, &none),
            MySqlPosition::at(&start, &gtid),
            MySqlPosition { legacy_snapshot: true, ..MySqlPosition::at(&start, &gtid) },
            skipping.clone(),
            MySqlPosition::at(&start, &gtid).with_chunks(&tables, &chunks),
            skipping.with_chunks(&tables, &chunks),
        ];
        for (position, stored) in written.iter().zip(STORED) {
            assert_eq!(position.to_position().to_string(), *stored);
            assert_eq!(position.to_position(), to_value(position), "the shortcut gives what serializing gives");
        }
        let read = MySqlPosition::from_position(&serde_json::from_str(STORED[4]).unwrap(), "t").unwrap();
        assert_eq!(read.snapshot.unwrap().chunks.as_ref(), &chunks);
        assert_eq!(read.gtid.as_ref(), &gtid);
    }

    #[test]
    fn the_chunk_list_keeps_its_json_in_step() {
        let mut list = ChunkList::new(chunks());
        let mut chunk = list[1].clone();
        chunk.high = Some(BinlogPos { file: "mysql-bin.000009".into(), pos: 77 });
        list.set(1, chunk.clone());
        list.push(chunk);
        list.pop();
        list.push(Chunk { table: 1, lo: Some(-3), hi: None, high: None });
        assert_eq!(list.json, list.chunks.iter().map(to_value).collect::<Vec<_>>());
    }

    #[test]
    fn an_unreadable_position_names_the_table_and_the_fix() {
        let unreadable = [
            r#"{"pos":4711}"#,
            r#"{"file":"mysql-bin.000003","pos":"4711"}"#,
            r#"{"file":"mysql-bin.000003","pos":4711,"gtid":"zero"}"#,
            r#"{"file":"mysql-bin.000003","pos":4711,"skip_before_second":4294967296}"#,
            r#"{"file":"f.1","pos":4,"snapshot":{"tables":["db.t"],"chunks":[[0,"x",null,null]]}}"#,
            r#"{"file":"f.1","pos":4,"snapshot":{"tables":["db.t"],"chunks":[[0,null,null]]}}"#,
            r#"{"phase":"stream","lsn":"0/16B3748"}"#,
        ];
        for text in unreadable {
            let err = MySqlPosition::from_position(&serde_json::from_str(text).unwrap(), "orders").unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, Error::User(_)), "{err:?}");
            assert!(message.contains("table `orders`") && message.contains("--fresh"), "{message}");
        }
    }
}
