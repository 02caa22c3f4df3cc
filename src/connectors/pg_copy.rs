//! PostgreSQL's binary `COPY` stream (`COPY … TO STDOUT (FORMAT binary)`) split into tuples of
//! field values, for everything that reads one: the postgres-cdc snapshot and the jdbc scan.
//! Pure parsing over bytes, no I/O; decoding the values is the reader's.

use crate::error::{Error, Result};

/// What every binary COPY stream starts with.
pub const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Splits `COPY … TO STDOUT (FORMAT binary)` output into tuples of field values; the messages it
/// arrives in may cut tuples anywhere.
pub struct BinaryTuples {
    fields: usize,
    pending: Vec<u8>,
    header_done: bool,
    ended: bool,
}

impl BinaryTuples {
    pub fn new(fields: usize) -> Self {
        BinaryTuples { fields, pending: Vec::new(), header_done: false, ended: false }
    }

    /// Whether the end-of-data marker has arrived.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Calls `row` with the values (`None` = NULL) of each tuple completed by `data`.
    pub fn feed(&mut self, data: &[u8], mut row: impl FnMut(&[Option<&[u8]>]) -> Result<()>) -> Result<()> {
        if self.pending.is_empty() {
            let used = self.parse(data, &mut row)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(data);
            let used = self.parse(&pending, &mut row)?;
            pending.drain(..used);
            self.pending = pending;
        }
        Ok(())
    }

    /// Parses the complete tuples at the start of `buf`; returns how many bytes they took.
    fn parse(&mut self, buf: &[u8], row: &mut impl FnMut(&[Option<&[u8]>]) -> Result<()>) -> Result<usize> {
        let mut at = 0;
        if !self.header_done {
            let Some(ext) = buf.get(15..19) else { return Ok(0) };
            if !buf.starts_with(SIGNATURE) {
                return Err(Error::external("PostgreSQL sent a COPY stream without the binary signature"));
            }
            let ext = i32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]).max(0) as usize;
            if buf.len() < 19 + ext {
                return Ok(0);
            }
            at = 19 + ext;
            self.header_done = true;
        }
        let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(self.fields);
        while let Some(count) = buf.get(at..at + 2) {
            if self.ended {
                return Err(Error::external("PostgreSQL sent data after the binary COPY trailer"));
            }
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                self.ended = true;
                at += 2;
                continue;
            }
            if count as usize != self.fields {
                return Err(Error::internal(format!(
                    "PostgreSQL sent {count} fields per row, expected {}",
                    self.fields
                )));
            }
            values.clear();
            let mut end = at + 2;
            for _ in 0..self.fields {
                let Some(len) = buf.get(end..end + 4) else { break };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                end += 4;
                if len < 0 {
                    values.push(None);
                    continue;
                }
                let Some(value) = buf.get(end..end + len as usize) else { break };
                values.push(Some(value));
                end += len as usize;
            }
            if values.len() < self.fields {
                break;
            }
            row(&values)?;
            at = end;
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_tuples_survive_any_message_boundary() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        for (id, name) in [(1i32, Some("a")), (2, None), (3, Some("long enough"))] {
            stream.extend_from_slice(&2i16.to_be_bytes());
            stream.extend_from_slice(&4i32.to_be_bytes());
            stream.extend_from_slice(&id.to_be_bytes());
            match name {
                Some(n) => {
                    stream.extend_from_slice(&(n.len() as i32).to_be_bytes());
                    stream.extend_from_slice(n.as_bytes());
                }
                None => stream.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        for piece in [1, 3, 7, stream.len()] {
            let mut tuples = BinaryTuples::new(2);
            let mut rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            for data in stream.chunks(piece) {
                tuples
                    .feed(data, |values| {
                        rows.push((values[0].unwrap().to_vec(), values[1].map(<[u8]>::to_vec)));
                        Ok(())
                    })
                    .unwrap();
            }
            assert!(tuples.is_ended(), "piece {piece}");
            let expected = vec![
                (vec![0, 0, 0, 1], Some(b"a".to_vec())),
                (vec![0, 0, 0, 2], None),
                (vec![0, 0, 0, 3], Some(b"long enough".to_vec())),
            ];
            assert_eq!(rows, expected, "piece {piece}");
        }
        let mut wrong = BinaryTuples::new(3);
        assert!(wrong.feed(&stream, |_| Ok(())).unwrap_err().to_string().contains("2 fields per row, expected 3"));
    }
}
