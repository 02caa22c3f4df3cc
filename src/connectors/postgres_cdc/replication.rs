//! The replication session: `CREATE_REPLICATION_SLOT`, then `START_REPLICATION … LOGICAL` and
//! its CopyBoth stream of XLogData and keepalive messages, with standby status updates going
//! back.
//!
//! The source reads and decodes the stream in its own task, in place from one buffer: a
//! change costs no allocation and no hand-over between threads. Status updates go out from a
//! small writer task instead, so they keep flowing while the source waits on its sink: the
//! walsender counts any status update as a sign of life (`wal_sender_timeout`) even when it is
//! blocked sending, so a slow sink never gets the connection cut.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::checks::{quote_ident, quote_literal};
use super::pgoutput::{format_lsn, parse_lsn};
use super::session::{io_error, server_error, unexpected, Inbox, Purpose, Session, Stream};
use super::values::PG_EPOCH_MICROS;
use super::Config;
use crate::error::{Error, Result};

/// The longest a connection goes without a status update, below any sensible
/// `wal_sender_timeout` (60 s by default).
const MAX_SILENCE: Duration = Duration::from_secs(10);

/// A replication session that has authenticated but not started streaming.
pub(super) struct SlotSession {
    session: Session,
}

impl SlotSession {
    pub async fn connect(config: Arc<Config>) -> Result<SlotSession> {
        Ok(SlotSession { session: Session::connect(config, Purpose::Replication).await? })
    }

    /// `CREATE_REPLICATION_SLOT`; returns the consistent point and the exported snapshot's
    /// name (empty without `export`).
    pub async fn create_slot(&mut self, export: bool) -> Result<(u64, String)> {
        let config = self.session.config().clone();
        let sql = format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {}",
            quote_ident(&config.slot),
            if export { "EXPORT_SNAPSHOT" } else { "NOEXPORT_SNAPSHOT" }
        );
        let rows = self.session.query_rows(&sql, "creating the replication slot").await?;
        let text = |i: usize| rows.first().and_then(|r| r.get(i)).cloned().flatten();
        let consistent = text(1)
            .and_then(|t| parse_lsn(&t))
            .ok_or_else(|| Error::external("CREATE_REPLICATION_SLOT answered without a consistent point"))?;
        tracing::info!(slot = %config.slot, lsn = %format_lsn(consistent), "postgres-cdc created replication slot");
        Ok((consistent, text(2).unwrap_or_default()))
    }

    /// `START_REPLICATION` of the slot at `from` with pgoutput v1 over the publication; status
    /// updates confirm `from` until [`ReplicationStream::acknowledge`] raises it.
    pub async fn start(self, from: u64) -> Result<ReplicationStream> {
        let config = self.session.config();
        let cadence = config.heartbeat.min(MAX_SILENCE);
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {})",
            quote_ident(&config.slot),
            format_lsn(from),
            quote_literal(&quote_ident(&config.publication))
        );
        let copy = self.session.into_copy_both(&sql, "starting replication").await?;
        let feedback = Arc::new(Feedback {
            acked: AtomicU64::new(from),
            reply_requested: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        });
        let writer = tokio::spawn(send_status_updates(copy.out, feedback.clone(), from, cadence));
        let wakeups = copy.tcp.map(Wakeups::new);
        Ok(ReplicationStream { config: copy.config, inbox: copy.inbox, feedback, writer: Some(writer), wakeups })
    }
}

/// What the reader tells the status writer.
struct Feedback {
    /// The LSN up to which changes are safe (checkpointed): the slot may release WAL before it.
    acked: AtomicU64,
    /// The server asked for a status update (a keepalive with its reply flag set).
    reply_requested: AtomicBool,
    /// Send the last status update, end the stream and the session.
    closing: AtomicBool,
    wake: tokio::sync::Notify,
}

/// A message of the replication stream (the payload of a CopyData).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum WalMessage<'a> {
    /// A pgoutput message.
    XLogData(&'a [u8]),
    KeepAlive {
        wal_end: u64,
        reply_requested: bool,
    },
}

/// The session's sending half, which the status writer owns until the stream closes.
type Outbound = WriteHalf<Box<dyn Stream>>;

pub(super) struct ReplicationStream {
    config: Arc<Config>,
    inbox: Inbox<ReadHalf<Box<dyn Stream>>>,
    feedback: Arc<Feedback>,
    writer: Option<JoinHandle<Option<Outbound>>>,
    wakeups: Option<Wakeups>,
}

/// While changes pour in, the reader asks the kernel to wake it only once `BATCHED_READ` bytes
/// wait in the socket (`SO_RCVLOWAT`), and reads what is there after `BATCH_WAIT` at the latest.
/// Otherwise every message the walsender sends (about 100 bytes for a small row) wakes the
/// reader, and the walsender itself pays for each wake-up on the core it decodes on, the
/// bottleneck of the whole stream on a small machine. At a trickle the mark stays at one byte,
/// so a lone change is read at once.
struct Wakeups {
    fd: RawFd,
    raised: bool,
    window_start: Instant,
    window_bytes: usize,
}

const BATCHED_READ: usize = 32 * 1024;
const BATCH_WAIT: Duration = Duration::from_millis(2);

impl Wakeups {
    fn new(fd: RawFd) -> Self {
        Wakeups { fd, raised: false, window_start: Instant::now(), window_bytes: 0 }
    }

    /// Sets the socket's receive low-water mark; lowering it wakes a reader for bytes already
    /// waiting.
    fn set_mark(&mut self, bytes: usize) -> std::io::Result<()> {
        let value = bytes as libc::c_int;
        // SAFETY: `fd` is the socket of the stream this struct belongs to, open for as long as
        // the stream is, and the option value is a c_int as SO_RCVLOWAT expects.
        let done = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        } == 0;
        if !done {
            return Err(std::io::Error::last_os_error());
        }
        self.raised = bytes > 1;
        Ok(())
    }

    /// Counts a read at one byte's mark: whether `BATCHED_READ` bytes arrived within
    /// `BATCH_WAIT`, so that waiting for that many delays nothing by more than that.
    fn pouring(&mut self, read: usize) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) > BATCH_WAIT {
            self.window_start = now;
            self.window_bytes = 0;
        }
        self.window_bytes += read;
        self.window_bytes >= BATCHED_READ
    }
}

impl ReplicationStream {
    /// The next message already read, if any. A keepalive that asks for a reply gets one.
    pub fn next_buffered(&mut self) -> Result<Option<WalMessage<'_>>> {
        let (tag, body) = loop {
            match self.inbox.take_message() {
                None => return Ok(None),
                Some((b'N' | b'S', _)) => continue,
                Some(message) => break message,
            }
        };
        let doing = "streaming changes";
        let body = self.inbox.body(body);
        match tag {
            b'd' => {
                let message = parse_copy_data(body)
                    .map_err(|e| Error::external(format!("{doing} on {}: {e}", self.config.where_())))?;
                if let WalMessage::KeepAlive { reply_requested: true, .. } = message {
                    self.feedback.reply_requested.store(true, Ordering::Release);
                    self.feedback.wake.notify_one();
                }
                Ok(Some(message))
            }
            b'E' => Err(server_error(&self.config, doing, body)),
            b'c' => Err(Error::external(format!(
                "the replication stream of slot '{}' on {} ended",
                self.config.slot,
                self.config.where_()
            ))),
            other => Err(unexpected(&self.config, doing, other)),
        }
    }

    /// Waits for more of the stream. Cancel-safe.
    pub async fn fill(&mut self) -> Result<()> {
        let failed = |e| io_error(&self.config, "streaming changes", e);
        let Some(wakeups) = self.wakeups.as_mut() else {
            return self.inbox.fill().await.map(drop).map_err(failed);
        };
        if wakeups.raised {
            if let Ok(read) = tokio::time::timeout(BATCH_WAIT, self.inbox.fill()).await {
                return read.map(drop).map_err(failed);
            }
            // Left raised, the mark would hold back the last bytes of a burst for good.
            wakeups
                .set_mark(1)
                .map_err(|e| io_error(&self.config, "lowering the socket's receive low-water mark (SO_RCVLOWAT)", e))?;
            return self.inbox.fill().await.map(drop).map_err(failed);
        }
        let read = self.inbox.fill().await.map_err(failed)?;
        // A mark that cannot be raised only costs wake-ups: read on without batching.
        if wakeups.pouring(read) && wakeups.set_mark(BATCHED_READ).is_err() {
            self.wakeups = None;
        }
        Ok(())
    }

    /// Lets the slot release WAL before `lsn`: the next status update confirms it.
    pub fn acknowledge(&self, lsn: u64) {
        if self.feedback.acked.fetch_max(lsn, Ordering::AcqRel) < lsn {
            self.feedback.wake.notify_one();
        }
    }

    /// Sends the last confirmation and ends the session, waiting at most `wait` in all.
    ///
    /// The session ends only once the server has answered the CopyDone that follows the last
    /// status update, so it has read that update: closing a socket with the server's unread
    /// changes still in it resets the connection, and the server may then drop what it had not
    /// read yet, the confirmation among it.
    pub async fn close(mut self, wait: Duration) {
        self.feedback.closing.store(true, Ordering::Release);
        self.feedback.wake.notify_one();
        // The server's last messages may be fewer bytes than a raised mark.
        if let Some(wakeups) = self.wakeups.as_mut().filter(|w| w.raised) {
            // At worst the close waits out its bound.
            let _ = wakeups.set_mark(1);
        }
        let Some(mut writer) = self.writer.take() else { return };
        let ending = async {
            let mut out = (&mut writer).await.ok().flatten()?;
            loop {
                match self.inbox.take_message() {
                    Some((b'Z' | b'E', _)) => break,
                    Some(_) => {}
                    None => self.inbox.fill().await.ok().map(drop)?,
                }
            }
            let mut terminate = BytesMut::new();
            frontend::terminate(&mut terminate);
            out.write_all(&terminate).await.ok()?;
            out.shutdown().await.ok()
        };
        if tokio::time::timeout(wait, ending).await.is_err() {
            writer.abort();
        }
    }
}

impl Drop for ReplicationStream {
    fn drop(&mut self) {
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

/// Sends a status update when a confirmation moved, when the server asks, and at least every
/// `cadence` (asking the server for a keepalive, whose WAL position moves an idle source on).
/// Closing sends a last one and CopyDone, and hands the connection back to end the session.
async fn send_status_updates(
    mut out: Outbound,
    feedback: Arc<Feedback>,
    mut sent: u64,
    cadence: Duration,
) -> Option<Outbound> {
    let mut last_sent = Instant::now();
    loop {
        let due = last_sent + cadence;
        tokio::select! {
            _ = feedback.wake.notified() => {}
            _ = tokio::time::sleep_until(due) => {}
        }
        let acked = feedback.acked.load(Ordering::Acquire);
        let closing = feedback.closing.load(Ordering::Acquire);
        let reply = feedback.reply_requested.swap(false, Ordering::AcqRel);
        let heartbeat = Instant::now() >= due;
        if !(acked > sent || reply || heartbeat || closing) {
            continue;
        }
        let mut message = BytesMut::new();
        let status = status_update(acked, now_pg_micros(), heartbeat);
        let framed = frontend::CopyData::new(&status[..]).map(|data| data.write(&mut message));
        if closing {
            frontend::copy_done(&mut message);
        }
        let written = async {
            framed?;
            out.write_all(&message).await?;
            out.flush().await
        };
        if let Err(e) = written.await {
            tracing::debug!(error = %e, "postgres-cdc could not send a status update; the reader sees the connection fail");
            return None;
        }
        sent = acked;
        last_sent = Instant::now();
        if closing {
            return Some(out);
        }
    }
}

fn now_pg_micros() -> i64 {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    unix.as_micros() as i64 - PG_EPOCH_MICROS
}

/// A Standby Status Update: written, flushed and applied all at `lsn`.
fn status_update(lsn: u64, now_pg_micros: i64, reply_requested: bool) -> [u8; 34] {
    let mut message = [0u8; 34];
    let mut at = &mut message[..];
    at.put_u8(b'r');
    for _ in 0..3 {
        at.put_u64(lsn);
    }
    at.put_i64(now_pg_micros);
    at.put_u8(u8::from(reply_requested));
    message
}

/// XLogData (`w`) or Primary keepalive (`k`).
fn parse_copy_data(data: &[u8]) -> std::result::Result<WalMessage<'_>, String> {
    let u64_at = |at: usize| data.get(at..at + 8).map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()));
    match data.first() {
        Some(b'w') if data.len() >= 25 => Ok(WalMessage::XLogData(&data[25..])),
        Some(b'k') if data.len() >= 18 => {
            Ok(WalMessage::KeepAlive { wal_end: u64_at(1).unwrap_or_default(), reply_requested: data[17] != 0 })
        }
        Some(tag) => Err(format!(
            "a replication message '{}' of {} bytes that cdc-sql cannot read",
            tag.escape_ascii(),
            data.len()
        )),
        None => Err("an empty replication message".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xlogdata_hands_over_the_pgoutput_message_after_its_header() {
        let mut data = vec![b'w'];
        data.extend_from_slice(&0x16B3748u64.to_be_bytes());
        data.extend_from_slice(&0x16B3790u64.to_be_bytes());
        data.extend_from_slice(&7i64.to_be_bytes());
        data.extend_from_slice(b"B...");
        assert_eq!(parse_copy_data(&data), Ok(WalMessage::XLogData(b"B...")));
        assert!(parse_copy_data(&data[..20]).is_err(), "a header cut short");
    }

    #[test]
    fn a_keepalive_carries_the_wal_end_and_whether_to_reply() {
        let mut data = vec![b'k'];
        data.extend_from_slice(&0x1_0000_0010u64.to_be_bytes());
        data.extend_from_slice(&0i64.to_be_bytes());
        data.push(1);
        assert_eq!(parse_copy_data(&data), Ok(WalMessage::KeepAlive { wal_end: 0x1_0000_0010, reply_requested: true }));
        data[17] = 0;
        assert_eq!(
            parse_copy_data(&data),
            Ok(WalMessage::KeepAlive { wal_end: 0x1_0000_0010, reply_requested: false })
        );
        assert!(parse_copy_data(b"q").is_err());
    }

    #[test]
    fn a_status_update_confirms_one_lsn_three_times() {
        let message = status_update(0x0000_0001_0203_0405, 0x10, true);
        assert_eq!(message[0], b'r');
        for field in 0..3 {
            assert_eq!(&message[1 + field * 8..9 + field * 8], &[0, 0, 0, 1, 2, 3, 4, 5]);
        }
        assert_eq!(&message[25..33], &0x10i64.to_be_bytes());
        assert_eq!(message[33], 1);
    }
}
