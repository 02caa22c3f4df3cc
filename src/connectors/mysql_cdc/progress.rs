//! What the source tells `/metrics`, the REST API, the dashboard and the status line
//! ([`crate::connectors::Source::progress`]): kept up to date as batches are handed out, so that
//! reporting it costs no I/O and nothing proportional to the number of chunks.

use super::server::BinlogPos;
use super::snapshot::Chunk;
use super::stream::GtidState;
use crate::connectors::SnapshotProgress;

/// Chunks and tables of an incremental snapshot still to read. A chunk counts as read once all
/// its rows are handed out (the last piece of a chunk cut into pieces).
#[derive(Debug, Clone)]
pub struct ChunkCounts {
    /// Per table (index as in the chunk list): chunks not read yet.
    left: Vec<usize>,
    tables_done: u64,
    chunks_done: u64,
    chunks_total: u64,
}

impl ChunkCounts {
    /// The counts for a chunk list of `tables` tables, chunks with a high watermark being read
    /// (a list resumed from a position counts what the earlier run finished).
    pub fn new(chunks: &[Chunk], tables: usize) -> Self {
        let mut left = vec![0; tables];
        let mut chunks_done = 0;
        for chunk in chunks {
            match (&chunk.high, left.get_mut(chunk.table)) {
                (Some(_), _) => chunks_done += 1,
                (None, Some(n)) => *n += 1,
                // The caller checked the indices; a stray one is simply not counted.
                (None, None) => {}
            }
        }
        let tables_done = left.iter().filter(|n| **n == 0).count() as u64;
        ChunkCounts { left, tables_done, chunks_done, chunks_total: chunks.len() as u64 }
    }

    /// A chunk of table `table` is read.
    pub fn chunk_done(&mut self, table: usize) {
        let Some(left) = self.left.get_mut(table) else { return };
        if *left == 0 {
            return;
        }
        *left -= 1;
        self.chunks_done += 1;
        if *left == 0 {
            self.tables_done += 1;
        }
    }

    pub fn progress(&self, finished: bool) -> SnapshotProgress {
        SnapshotProgress {
            tables_done: self.tables_done,
            tables_remaining: self.left.len() as u64 - self.tables_done,
            chunks_done: self.chunks_done,
            chunks_remaining: self.chunks_total - self.chunks_done,
            finished,
        }
    }

    /// `snapshot, 3/13 chunks`, as postgres-cdc says it.
    pub fn describe(&self) -> String {
        format!("snapshot, {}/{} chunks", self.chunks_done, self.chunks_total)
    }
}

/// The legacy snapshot reads each table whole, so its tables are its chunks.
pub fn legacy_progress(tables_done: usize, tables: usize, finished: bool) -> SnapshotProgress {
    let (done, left) = (tables_done as u64, tables.saturating_sub(tables_done) as u64);
    SnapshotProgress { tables_done: done, tables_remaining: left, chunks_done: done, chunks_remaining: left, finished }
}

/// A streaming position for people: `file:pos`, and the GTID position where known (a stream
/// started from a GTID learns its file from the first event).
pub fn describe_binlog(at: &BinlogPos, gtid: &GtidState) -> String {
    match (at.file.is_empty(), gtid.is_empty()) {
        (false, true) => at.to_string(),
        (false, false) => format!("{at} GTID {gtid}"),
        (true, _) => format!("GTID {gtid}"),
    }
}

/// The binlog event time of the newest captured change read, and how long after it the change
/// arrived (Flink's `currentFetchEventTimeLag`). Binlog event headers carry whole seconds, so
/// the lag reads up to a second high.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    pub event_ms: i64,
    pub fetch_lag_ms: u64,
}

impl EventTime {
    /// An event stamped `second` (epoch seconds), arriving at `now_ms`.
    pub fn at(second: u32, now_ms: i64) -> Self {
        let event_ms = i64::from(second) * 1000;
        EventTime { event_ms, fetch_lag_ms: now_ms.saturating_sub(event_ms).max(0) as u64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(table: usize, read: bool) -> Chunk {
        Chunk { table, lo: None, hi: None, high: read.then(|| BinlogPos { file: "b.000001".into(), pos: 4 }) }
    }

    #[test]
    fn chunks_and_tables_count_down_as_chunks_are_read() {
        let mut counts = ChunkCounts::new(&[chunk(0, false), chunk(0, false), chunk(1, false)], 2);
        let p = counts.progress(false);
        assert_eq!((p.tables_done, p.tables_remaining, p.chunks_done, p.chunks_remaining), (0, 2, 0, 3));
        counts.chunk_done(1);
        counts.chunk_done(0);
        assert_eq!(counts.describe(), "snapshot, 2/3 chunks");
        let p = counts.progress(false);
        assert_eq!((p.tables_done, p.tables_remaining, p.chunks_done, p.chunks_remaining), (1, 1, 2, 1));
        counts.chunk_done(0);
        counts.chunk_done(0);
        let p = counts.progress(true);
        assert_eq!(
            (p.tables_done, p.tables_remaining, p.chunks_done, p.chunks_remaining),
            (2, 0, 3, 0),
            "no chunk counts twice"
        );
        assert!(p.finished);
    }

    #[test]
    fn a_resumed_list_counts_what_the_earlier_run_read() {
        let counts = ChunkCounts::new(&[chunk(0, true), chunk(0, false), chunk(1, true)], 2);
        let p = counts.progress(false);
        assert_eq!((p.tables_done, p.tables_remaining, p.chunks_done, p.chunks_remaining), (1, 1, 2, 1));
    }

    #[test]
    fn legacy_tables_are_its_chunks() {
        let p = legacy_progress(1, 3, false);
        assert_eq!((p.tables_done, p.tables_remaining, p.chunks_done, p.chunks_remaining), (1, 2, 1, 2));
    }

    #[test]
    fn positions_read_as_file_offset_and_gtid() {
        let at = BinlogPos { file: "mysql-bin.000003".into(), pos: 4711 };
        let gtid = GtidState::parse("0-1-42,1-2-7").unwrap();
        assert_eq!(describe_binlog(&at, &GtidState::default()), "mysql-bin.000003:4711");
        assert_eq!(describe_binlog(&at, &gtid), "mysql-bin.000003:4711 GTID 0-1-42,1-2-7");
        assert_eq!(describe_binlog(&BinlogPos { file: String::new(), pos: 4 }, &gtid), "GTID 0-1-42,1-2-7");
    }

    #[test]
    fn fetch_lag_is_arrival_minus_the_event_second() {
        assert_eq!(
            EventTime::at(1_700_000_000, 1_700_000_000_250),
            EventTime { event_ms: 1_700_000_000_000, fetch_lag_ms: 250 }
        );
        assert_eq!(EventTime::at(1_700_000_001, 1_700_000_000_250).fetch_lag_ms, 0, "a clock behind the server's");
    }
}
