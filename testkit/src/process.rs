//! Processes, directories, ports, shutdown and the stale-server cleanup shared by both servers.
//!
//! Layout of a temporary server directory (`<temp>/cdc-sql-testkit/<pid>-<n>-<kind>/`):
//!
//! * `testkit-owner`: `<owner pid> <owner start time> <owner pid namespace>`, written right after
//!   the directory is created; the stale cleanup removes directories whose owner is gone.
//! * `testkit-server`: `kind=…`, `pid=…`, `port=…` of the server process, written after spawning.
//! * `data/`: the server's data directory (its path is on the server's command line, which is how
//!   the cleanup recognises the process before killing it).
//! * the server's log and unix socket.

use crate::error::{Error, Result, ServerKind};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

const ROOT_DIR_NAME: &str = "cdc-sql-testkit";
const OWNER_FILE: &str = "testkit-owner";
const SERVER_FILE: &str = "testkit-server";

/// Interval between readiness / exit polls. Polling always has a deadline.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a temporary server gets to shut down before it is SIGKILLed.
const FAST_STOP_GRACE: Duration = Duration::from_secs(5);
/// Executables of server processes and their children.
const SERVER_EXECUTABLES: &[&str] = &["mariadbd", "mysqld", "postgres", "postmaster"];
/// Longest usable unix socket path (sun_path is 108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The directory under which all temporary servers live: `<temp dir>/cdc-sql-testkit`.
pub fn temp_root() -> PathBuf {
    std::env::temp_dir().join(ROOT_DIR_NAME)
}

// ---------------------------------------------------------------------------------------------
// /proc helpers

struct ProcStat {
    state: char,
    ppid: i32,
    start_time: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` names a live (not zombie) process.
pub(crate) fn is_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some(stat) if !matches!(stat.state, 'Z' | 'X' | 'x'))
}

fn cmdline_contains(pid: u32, needle: &str) -> bool {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            text.contains(needle)
        }
        Err(_) => false,
    }
}

fn exe_name(pid: u32) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

fn pid_namespace() -> Option<String> {
    fs::read_link("/proc/self/ns/pid").ok().map(|p| p.to_string_lossy().into_owned())
}

/// Live child processes of `pid` that run a database server executable (the PostgreSQL
/// postmaster's checkpointer, WAL writer, backends, …). They are found by parent pid, so only
/// while the parent is alive: PostgreSQL children put themselves in their own session and
/// process group, and exit by themselves soon after their postmaster dies.
fn server_children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| matches!(proc_stat(p), Some(s) if s.ppid == pid as i32 && !matches!(s.state, 'Z' | 'X' | 'x')))
        .filter(|&p| exe_name(p).is_some_and(|n| SERVER_EXECUTABLES.contains(&n.as_str())))
        .collect()
}

fn send_signal(pid: u32, signal: libc::c_int) {
    // Never signal pid 0/1 or, worse, -1 (every process we may signal).
    if pid > 1 && pid <= i32::MAX as u32 {
        // SAFETY: plain syscall.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    }
}

fn send_group_signal(pgid: u32, signal: libc::c_int) {
    if pgid > 1 && pgid <= i32::MAX as u32 {
        // SAFETY: plain syscall; the negative pid addresses the process group.
        unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
    }
}

/// SIGKILLs a server (and its process group: it was started with `setsid`) and its children.
fn kill_server_processes(pid: u32, children: &[u32]) {
    send_group_signal(pid, libc::SIGKILL);
    send_signal(pid, libc::SIGKILL);
    for &child in children {
        send_signal(child, libc::SIGKILL);
    }
}

fn wait_until_dead(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|&p| !is_alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

pub(crate) fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

/// `(uid, gid)` of a system user.
pub(crate) fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy the two ids out
    // immediately. It is not thread-safe against concurrent getpw* calls, which this crate only
    // makes here, under a lock.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// directories

/// Creates a fresh temporary server directory owned by this process.
pub(crate) fn create_temp_dir(kind: ServerKind) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let root = temp_root();
    fs::create_dir_all(&root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    // Shared by all users of the machine, like /tmp itself.
    if let Ok(meta) = fs::metadata(&root) {
        if meta.permissions().mode() & 0o7777 != 0o1777 {
            let _ = fs::set_permissions(&root, fs::Permissions::from_mode(0o1777));
        }
    }
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("{pid}-{n}-{}", kind.as_str()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                write_owner_file(&dir)?;
                return Ok(dir);
            }
            // Left over by an earlier process with the same pid: take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
}

fn write_owner_file(dir: &Path) -> Result<()> {
    let pid = std::process::id();
    let start = proc_stat(pid).map(|s| s.start_time).unwrap_or(0);
    let ns = pid_namespace().unwrap_or_else(|| "-".into());
    write_atomically(&dir.join(OWNER_FILE), &format!("{pid} {start} {ns}\n"))
}

fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The directory for a server: `Some(dir)` is persistent (created if needed, must not host a
/// running server), `None` makes a fresh temporary one. Returns the directory and whether it is
/// temporary.
pub(crate) fn server_dir(kind: ServerKind, persistent: Option<&Path>) -> Result<(PathBuf, bool)> {
    match persistent {
        Some(dir) => {
            let dir = std::path::absolute(dir).map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
            fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            if let Some(running) = running_server(&dir) {
                return Err(Error::AlreadyRunning { server: kind, dir, pid: running.pid });
            }
            Ok((dir, false))
        }
        None => Ok((create_temp_dir(kind)?, true)),
    }
}

/// Removes a temporary directory unless disarmed (start-up failed half way).
pub(crate) struct DirGuard {
    dir: PathBuf,
    armed: bool,
}

impl DirGuard {
    pub(crate) fn new(dir: &Path, temporary: bool) -> Self {
        DirGuard { dir: dir.to_path_buf(), armed: temporary }
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub(crate) fn check_socket_path(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::Setup(format!(
            "unix socket path {} is {len} bytes long, the limit is {MAX_SOCKET_PATH}; \
             use a shorter TMPDIR or server directory",
            path.display()
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// server records

/// A server process recorded in a server directory and verified to be running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningServer {
    /// Which server it is.
    pub kind: ServerKind,
    /// Process id of `mariadbd` / the postmaster.
    pub pid: u32,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its directory.
    pub dir: PathBuf,
}

pub(crate) fn write_server_record(dir: &Path, kind: ServerKind, pid: u32, port: u16) -> Result<()> {
    write_atomically(&dir.join(SERVER_FILE), &format!("kind={}\npid={pid}\nport={port}\n", kind.as_str()))
}

fn read_server_record(dir: &Path) -> Option<RunningServer> {
    let text = fs::read_to_string(dir.join(SERVER_FILE)).ok()?;
    let (mut kind, mut pid, mut port) = (None, None, None);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("kind", "mariadb")) => kind = Some(ServerKind::MariaDb),
            Some(("kind", "postgres")) => kind = Some(ServerKind::Postgres),
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("port", v)) => port = v.parse().ok(),
            _ => {}
        }
    }
    Some(RunningServer { kind: kind?, pid: pid?, port: port?, dir: dir.to_path_buf() })
}

/// The data directory as it appears on the server's command line.
pub(crate) fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// The server recorded in `dir`, if its process is alive and really is that server (its command
/// line names the directory's data directory, so a recycled pid is not mistaken for it).
pub fn running_server(dir: &Path) -> Option<RunningServer> {
    let dir = std::path::absolute(dir).ok()?;
    let record = read_server_record(&dir)?;
    let needle = data_dir(&dir);
    (is_alive(record.pid) && cmdline_contains(record.pid, &needle.to_string_lossy())).then_some(record)
}

/// Stops the server recorded in `dir` cleanly (MariaDB: SIGTERM; PostgreSQL: SIGINT, a "fast"
/// shutdown), waiting up to `timeout` before SIGKILLing its process group. The directory is
/// kept. Returns the server that was stopped, `None` when none was running.
///
/// This is how `dev-services stop` stops servers started by an earlier invocation.
pub fn stop_server(dir: &Path, timeout: Duration) -> Result<Option<RunningServer>> {
    let Some(running) = running_server(dir) else {
        return Ok(None);
    };
    let signal = match running.kind {
        ServerKind::MariaDb => libc::SIGTERM,
        ServerKind::Postgres => libc::SIGINT,
    };
    send_signal(running.pid, signal);
    if !wait_until_dead(&[running.pid], timeout) {
        let children = server_children(running.pid);
        kill_server_processes(running.pid, &children);
        let mut all = children;
        all.push(running.pid);
        if !wait_until_dead(&all, Duration::from_secs(10)) {
            return Err(Error::Setup(format!("{} (pid {}) did not exit after SIGKILL", running.kind, running.pid)));
        }
        if running.kind == ServerKind::Postgres {
            remove_postgres_shm(&running.dir, running.pid);
        }
    }
    Ok(Some(running))
}

/// PostgreSQL keeps a small System V shared memory segment whose id it records in
/// `postmaster.pid`. It removes it on any orderly shutdown (even "immediate"), but not when the
/// postmaster is SIGKILLed; remove it then, if it is really that postmaster's and unused.
fn remove_postgres_shm(dir: &Path, postmaster_pid: u32) {
    let Ok(text) = fs::read_to_string(data_dir(dir).join("postmaster.pid")) else {
        return;
    };
    let Some(shmid) =
        text.lines().nth(6).and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse::<libc::c_int>().ok())
    else {
        return;
    };
    // (creator pid, attach count) of the segment, if it exists.
    let stat = || {
        // SAFETY: shmid_ds is plain data that shmctl fills in.
        unsafe {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            (libc::shmctl(shmid, libc::IPC_STAT, &mut ds) == 0).then_some((ds.shm_cpid, ds.shm_nattch))
        }
    };
    // The postmaster's children detach as they notice its death: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stat() {
            Some((creator, attached)) if creator == postmaster_pid as libc::pid_t => {
                if attached == 0 {
                    // SAFETY: plain syscall on the segment we just inspected.
                    unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
                    return;
                }
                if Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// spawning

/// How to spawn a server or helper process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpawnOptions {
    /// `(uid, gid)` to switch to before exec (PostgreSQL under root).
    pub run_as: Option<(u32, u32)>,
    /// Start a new session (and process group) so the server can be stopped as a group and does
    /// not receive the terminal's signals.
    pub new_session: bool,
    /// Have the kernel SIGKILL the server when this process dies (`PR_SET_PDEATHSIG`).
    pub die_with_process: bool,
}

/// Sets up identity, session and parent-death signal for `cmd`.
fn configure(cmd: &mut Command, options: SpawnOptions) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe system calls and builds errors from raw
    // OS codes (no allocation).
    unsafe {
        cmd.pre_exec(move || {
            if options.new_session && libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            if let Some((uid, gid)) = options.run_as {
                if libc::setgroups(0, std::ptr::null()) == -1 || libc::setgid(gid) == -1 || libc::setuid(uid) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            // After setuid: a credential change clears the parent-death signal.
            if options.die_with_process {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            Ok(())
        });
    }
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd`, configured with `options`.
///
/// The parent-death signal fires when the *thread* that forked the child ends, not the process;
/// test threads end after every test, so servers that must die with the process are forked by a
/// dedicated thread that lives as long as the process.
pub(crate) fn spawn(mut cmd: Command, options: SpawnOptions) -> io::Result<Child> {
    configure(&mut cmd, options);
    if !options.die_with_process {
        return cmd.spawn();
    }
    static KEEPER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("cdc-sql-testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cdc-sql-testkit: cannot start the spawner thread");
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper.send((cmd, reply_tx)).map_err(|_| io::Error::other("the spawner thread is gone"))?;
    reply_rx.recv().map_err(|_| io::Error::other("the spawner thread is gone"))?
}

/// A command line for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs a helper command (`initdb`, `mariadb-install-db`) to completion; a failure carries its
/// output. With `options.die_with_process` the helper is killed if this process dies, and the
/// single-user server it drives sees end-of-input and exits cleanly.
pub(crate) fn run_command(mut cmd: Command, options: SpawnOptions) -> Result<Output> {
    let command = describe(&cmd);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let output = spawn(cmd, options)
        .and_then(Child::wait_with_output)
        .map_err(|e| Error::io(format!("running `{command}`"), e))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.trim().is_empty() {
            text.push_str("\n--- stdout ---\n");
            text.push_str(stdout.trim());
        }
        return Err(Error::CommandFailed {
            command,
            status: output.status.to_string(),
            output: last_chars(&text, 6000),
        });
    }
    Ok(output)
}

fn last_chars(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// A free TCP port on 127.0.0.1 (free now; the caller retries if a race takes it).
pub(crate) fn free_port() -> Result<u16> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("picking a free port on 127.0.0.1", e))
}

pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The last `lines` lines of `path` from byte `offset` on.
pub(crate) fn log_tail(path: &Path, offset: u64, lines: usize) -> String {
    let read = || -> io::Result<String> {
        let mut file = fs::File::open(path)?;
        let len = file.metadata()?.len();
        let start = offset.max(len.saturating_sub(64 * 1024));
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

pub(crate) fn open_log(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Result of waiting for a freshly spawned server.
pub(crate) enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// Polls `ready` until it succeeds, the child exits, or `timeout` passes.
pub(crate) fn wait_until_ready(
    child: &mut Child,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<Startup> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::io("waiting for the server process", e))? {
            return Ok(Startup::Exited(status));
        }
        if ready() {
            return Ok(Startup::Ready);
        }
        if Instant::now() >= deadline {
            return Ok(Startup::TimedOut);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// SIGKILLs a child that never became ready (and its process group) and reaps it.
pub(crate) fn kill_child(child: &mut Child) {
    send_group_signal(child.id(), libc::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// running servers and their shutdown

/// A server process started by this process.
pub(crate) struct ServerProcess {
    pub kind: ServerKind,
    pub dir: PathBuf,
    pub pid: u32,
    /// Temporary servers are stopped fast and their directory removed; persistent ones (dev
    /// services) are left running when the handle goes away.
    pub temporary: bool,
    child: Mutex<Option<Child>>,
    stopping: AtomicBool,
    finished: AtomicBool,
}

impl ServerProcess {
    pub(crate) fn new(kind: ServerKind, dir: PathBuf, child: Child, temporary: bool) -> Arc<Self> {
        let process = Arc::new(ServerProcess {
            kind,
            dir,
            pid: child.id(),
            temporary,
            child: Mutex::new(Some(child)),
            stopping: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        });
        if temporary {
            register(&process);
        }
        process
    }

    fn has_exited(&self) -> bool {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => !is_alive(self.pid),
        }
    }

    /// Sends the shutdown signal: SIGTERM to MariaDB; to PostgreSQL SIGQUIT ("immediate": the
    /// data is thrown away anyway) for a temporary server, SIGINT ("fast") for a persistent one.
    fn begin_stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let signal = match (self.kind, self.temporary) {
            (ServerKind::MariaDb, _) => libc::SIGTERM,
            (ServerKind::Postgres, true) => libc::SIGQUIT,
            (ServerKind::Postgres, false) => libc::SIGINT,
        };
        send_signal(self.pid, signal);
    }

    /// Waits for the exit (SIGKILLing the process group after `grace`), reaps the child and
    /// removes the directory of a temporary server.
    fn finish_stop(&self, grace: Duration) {
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + grace;
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL / 5);
        }
        let killed = !self.has_exited();
        let mut children = Vec::new();
        if killed {
            children = server_children(self.pid);
            kill_server_processes(self.pid, &children);
        }
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.wait();
        }
        if killed {
            wait_until_dead(&children, Duration::from_secs(5));
            if self.kind == ServerKind::Postgres {
                remove_postgres_shm(&self.dir, self.pid);
            }
        }
        if self.temporary {
            remove_dir(&self.dir);
        }
    }

    pub(crate) fn stop(self: &Arc<Self>) {
        unregister(self);
        self.begin_stop();
        self.finish_stop(FAST_STOP_GRACE);
    }
}

fn remove_dir(dir: &Path) {
    for _ in 0..3 {
        match fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            // A server still writing while we delete: try again.
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess")
            .field("kind", &self.kind)
            .field("pid", &self.pid)
            .field("dir", &self.dir)
            .field("temporary", &self.temporary)
            .finish()
    }
}

static REGISTRY: Mutex<Vec<Arc<ServerProcess>>> = Mutex::new(Vec::new());

fn register(process: &Arc<ServerProcess>) {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(stop_all_at_exit) };
    });
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(process));
}

fn unregister(process: &Arc<ServerProcess>) {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| !Arc::ptr_eq(p, process));
}

/// Stops every temporary server still running: all are signalled first, then awaited.
pub(crate) fn stop_all() {
    let servers = std::mem::take(&mut *REGISTRY.lock().unwrap_or_else(|e| e.into_inner()));
    for server in &servers {
        server.begin_stop();
    }
    for server in &servers {
        server.finish_stop(FAST_STOP_GRACE);
    }
}

extern "C" fn stop_all_at_exit() {
    // Unwinding out of an extern "C" function aborts: contain any panic.
    let _ = std::panic::catch_unwind(stop_all);
}

// ---------------------------------------------------------------------------------------------
// stale cleanup

/// What [`cleanup_stale`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaleCleanup {
    /// Server processes that were killed.
    pub killed_pids: Vec<u32>,
    /// Directories that were removed.
    pub removed_dirs: Vec<PathBuf>,
}

enum Owner {
    Alive,
    Dead,
    /// Not ours to judge: another pid namespace (a container sharing /tmp) or an unknown entry.
    Unknown,
}

fn owner_of(dir: &Path, my_namespace: Option<&str>) -> Owner {
    if let Ok(text) = fs::read_to_string(dir.join(OWNER_FILE)) {
        let mut fields = text.split_whitespace();
        let pid = fields.next().and_then(|p| p.parse::<u32>().ok());
        let start = fields.next().and_then(|s| s.parse::<u64>().ok());
        let namespace = fields.next();
        let (Some(pid), Some(start)) = (pid, start) else {
            return Owner::Unknown;
        };
        if let (Some(theirs), Some(mine)) = (namespace, my_namespace) {
            if theirs != "-" && theirs != mine {
                return Owner::Unknown;
            }
        }
        return match proc_stat(pid) {
            Some(stat) if !matches!(stat.state, 'Z' | 'X' | 'x') && stat.start_time == start => Owner::Alive,
            _ => Owner::Dead,
        };
    }
    // No owner file (yet): the owner pid is the name's prefix.
    let name = dir.file_name().and_then(OsStr::to_str).unwrap_or("");
    match name.split('-').next().and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) if is_alive(pid) => Owner::Alive,
        Some(_) => Owner::Dead,
        None => Owner::Unknown,
    }
}

/// Removes what killed test processes left behind under [`temp_root`]: for every server
/// directory whose owner process is gone, kills the server it recorded (after checking that the
/// process's command line names that directory) and deletes the directory.
///
/// Runs automatically once per process before the first server starts. Directories of live
/// processes (including this one), of other users and of other pid namespaces are never
/// touched; a directory that cannot be removed is skipped (and tried again next time).
pub fn cleanup_stale() -> Result<StaleCleanup> {
    let root = temp_root();
    let mut report = StaleCleanup::default();
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(Error::io(format!("reading {}", root.display()), e)),
    };
    let namespace = pid_namespace();
    let root_user = is_root();
    // SAFETY: plain syscall.
    let euid = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_dir() || !(root_user || meta.uid() == euid) {
            continue;
        }
        let dir = entry.path();
        if !matches!(owner_of(&dir, namespace.as_deref()), Owner::Dead) {
            continue;
        }
        if let Some(record) = read_server_record(&dir) {
            report.killed_pids.extend(kill_stale_server(&record));
        }
        // NotFound: another process cleaned it up concurrently; other errors: next time.
        if fs::remove_dir_all(&dir).is_ok() {
            report.removed_dirs.push(dir);
        }
    }
    Ok(report)
}

fn kill_stale_server(record: &RunningServer) -> Vec<u32> {
    let mut killed = Vec::new();
    let needle = data_dir(&record.dir).to_string_lossy().into_owned();
    if is_alive(record.pid) {
        if !cmdline_contains(record.pid, &needle) {
            // The pid was recycled by an unrelated process: nothing of ours runs under it.
            return killed;
        }
        let children = server_children(record.pid);
        kill_server_processes(record.pid, &children);
        killed.push(record.pid);
        killed.extend(children);
    }
    wait_until_dead(&killed, Duration::from_secs(10));
    if record.kind == ServerKind::Postgres {
        remove_postgres_shm(&record.dir, record.pid);
    }
    killed
}

/// Runs [`cleanup_stale`] once per process (errors are ignored: it is housekeeping).
pub(crate) fn cleanup_stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = cleanup_stale();
    });
}
