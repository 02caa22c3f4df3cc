//! A kafka source's position: the next offset to read of every partition it has read or been
//! assigned, so a restart resumes each partition exactly after the last record a checkpoint
//! covered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::connectors::Position;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KafkaPosition {
    /// topic → partition → the offset of the next record to read.
    pub next: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl KafkaPosition {
    pub fn to_position(&self) -> Position {
        serde_json::json!({ "kafka": self })
    }

    pub fn from_position(position: &Position) -> Result<KafkaPosition> {
        let inner = position.get("kafka").ok_or_else(|| {
            Error::user(format!(
                "the checkpoint's position {position} was not stored by a kafka source; start the job with --fresh, or \
                 point it at the checkpoints of this table's job"
            ))
        })?;
        serde_json::from_value(inner.clone())
            .map_err(|e| Error::internal(format!("a stored kafka position does not parse ({e}): {inner}")))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next.get(topic)?.get(&partition).copied()
    }

    pub fn set(&mut self, topic: &str, partition: i32, next: i64) {
        match self.next.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, next);
            }
            None => {
                self.next.insert(topic.to_string(), BTreeMap::from([(partition, next)]));
            }
        }
    }

    /// `orders[0]=42 orders[1]=7`, for the status line and REST job details.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (topic, partitions) in &self.next {
            for (p, next) in partitions {
                parts.push(format!("{topic}[{p}]={next}"));
            }
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions round-trip through the checkpoint's JSON unchanged.
    #[test]
    fn a_position_survives_the_checkpoint_record() {
        let mut p = KafkaPosition::default();
        p.set("orders", 1, 7);
        p.set("orders", 0, 42);
        p.set("users", 0, 0);
        let stored = p.to_position();
        assert_eq!(KafkaPosition::from_position(&stored).unwrap(), p);
        assert_eq!(p.describe(), "orders[0]=42 orders[1]=7 users[0]=0");
    }

    /// A checkpoint of another connector is refused with what to do, not misread.
    #[test]
    fn a_position_of_another_source_is_refused() {
        let err = KafkaPosition::from_position(&serde_json::json!({"lsn": "0/16B3748"})).unwrap_err();
        assert!(err.to_string().contains("--fresh"), "{err}");
    }
}
