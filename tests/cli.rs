//! The command line as a user drives it: flags, the shell fed through stdin, signals, exit codes,
//! and every example job under `sql/`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn cdc_sql() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdc-sql"));
    cmd.env("RUST_LOG", "warn").env("HOME", std::env::temp_dir());
    cmd
}

fn run_shell(input: &str) -> (String, String, i32) {
    let mut child = cdc_sql().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
        out.status.code().unwrap_or(-1),
    )
}

const NUMBERS: &str = "CREATE TABLE numbers (n INT) WITH ('connector' = 'datagen', \
    'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '3');";

#[test]
fn help_explains_every_mode() {
    let out = cdc_sql().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in
        ["-f, --file", "-e, --execute", "-i, --init", "interactive SQL shell", "Ctrl-C", "Ctrl-D", "Exit codes"]
    {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn execute_flag_runs_statements() {
    let out = cdc_sql().arg("-e").arg(format!("{NUMBERS} SELECT n * 10 AS tens FROM numbers;")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| tens |") && stdout.contains("| 30   |") && stdout.contains("3 rows in set"), "{stdout}");
}

#[test]
fn init_file_runs_before_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("tables.sql");
    std::fs::write(&init, NUMBERS).unwrap();
    let out = cdc_sql().arg("-i").arg(&init).arg("-e").arg("SELECT n FROM numbers WHERE n = 2;").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 row in set"));
}

#[test]
fn shell_runs_multi_line_statements_and_survives_errors() {
    let input = format!(
        "{NUMBERS}\nSELECT n,\n       n * n AS sq\nFROM numbers\nWHERE n > 1;\nSELECT nope FROM numbers;\nSHOW TABLES;\n"
    );
    let (stdout, stderr, code) = run_shell(&input);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| 3 | 9  |"), "{stdout}");
    assert!(stderr.contains("[ERROR] <shell>:6:1:") && stderr.contains("nope"), "{stderr}");
    assert!(stdout.contains("| numbers    |"), "the shell went on after the error:\n{stdout}");
}

#[test]
fn shell_collects_a_statement_set_until_end() {
    let input = format!(
        "{NUMBERS}\nCREATE TABLE a (n INT) WITH ('connector' = 'print', 'print-identifier' = 'a');\n\
         CREATE TABLE b (n INT) WITH ('connector' = 'print', 'print-identifier' = 'b');\n\
         BEGIN STATEMENT SET;\nINSERT INTO a SELECT n FROM numbers;\nINSERT INTO b SELECT n + 100 FROM numbers;\nEND;\n"
    );
    let (stdout, stderr, code) = run_shell(&input);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Add SQL update statement to the statement set."), "{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["a> +I[1]", "a> +I[2]", "a> +I[3]", "b> +I[101]", "b> +I[102]", "b> +I[103]"]);
}

#[test]
fn quit_ends_the_shell() {
    let (stdout, _, code) = run_shell("QUIT;\nSHOW TABLES;\n");
    assert_eq!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn errors_exit_non_zero_and_run_nothing() {
    let out = cdc_sql()
        .arg("-e")
        .arg(format!(
            "{NUMBERS} CREATE TABLE out (n INT) WITH ('connector' = 'print'); INSERT INTO out SELECT n FROM numbers; SELEC 1;"
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing may run when a later statement is broken");
}

#[test]
fn missing_job_file_is_a_clear_error() {
    let out = cdc_sql().arg("-f").arg("/nonexistent/job.sql").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read job file /nonexistent/job.sql"));
}

/// Starts an unbounded job, waits until it has printed `lines` lines, then sends `signal`.
fn stop_streaming_job_with(signal: &str) -> (i32, String) {
    let job = "CREATE TABLE src (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen', \
        'changelog-mode' = 'all', 'rows-per-second' = '200'); \
        CREATE TABLE out (id BIGINT, v INT) WITH ('connector' = 'print'); \
        INSERT INTO out SELECT id, v FROM src;";
    let mut child = cdc_sql().arg("-e").arg(job).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    while seen < 20 {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).expect("the streaming job printed too few rows before the deadline").unwrap();
        seen += 1;
    }
    Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn sigterm_stops_a_streaming_job_cleanly() {
    let (code, stderr) = stop_streaming_job_with("TERM");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("INSERT INTO out:") && stderr.contains("rows written"), "{stderr}");
}

#[test]
fn ctrl_c_stops_a_streaming_job_cleanly() {
    let (code, stderr) = stop_streaming_job_with("INT");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn every_example_job_runs() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("out"))
            .unwrap_or_else(|_| panic!("{} has no expected output file", path.display()));
        let out = cdc_sql().arg("-f").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{}", path.display());
        ran += 1;
    }
    assert!(ran > 0);
}

/// A pseudo-terminal whose slave side becomes the controlling terminal of the child, so Ctrl-C
/// typed on it raises SIGINT as on a real terminal.
struct Pty {
    master: std::fs::File,
    child: std::process::Child,
}

fn spawn_on_pty(program: &str) -> Pty {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize { ws_row: 40, ws_col: 200, ws_xpixel: 0, ws_ypixel: 0 };
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty failed");
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let mut cmd = Command::new(program);
    cmd.env("HOME", std::env::temp_dir())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    Pty { master: unsafe { std::fs::File::from_raw_fd(master) }, child }
}

/// The shell on a real terminal: Ctrl-C cancels a streaming query and returns to the prompt,
/// Ctrl-D quits.
#[test]
fn shell_on_a_terminal_cancels_with_ctrl_c_and_quits_with_ctrl_d() {
    use std::io::Read;
    let Pty { mut master, mut child } = spawn_on_pty(env!("CARGO_BIN_EXE_cdc-sql"));
    let mut reader = master.try_clone().unwrap();
    let (tx, rx) = mpsc::channel::<u8>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if buf[..n].iter().any(|b| tx.send(*b).is_err()) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // EIO once the child closed the terminal.
                Err(e) => {
                    eprintln!("terminal read ended: {e}");
                    break;
                }
            }
        }
    });
    // Waits until `needle` shows up in what the terminal printed since the last wait.
    let wait_for = |needle: &str| {
        let mut screen = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !screen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let byte =
                rx.recv_timeout(left).unwrap_or_else(|_| panic!("never saw {needle:?} on the terminal:\n{screen}"));
            screen.push(byte as char);
        }
    };
    wait_for("cdc-sql> ");
    master
        .write_all(b"CREATE TABLE s (id BIGINT, v INT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen', 'changelog-mode' = 'all', 'rows-per-second' = '50', 'seed' = '1');\r")
        .unwrap();
    wait_for("Execute statement succeeded.");
    wait_for("cdc-sql> ");
    master.write_all(b"SELECT id FROM s;\r").unwrap();
    wait_for("+I[");
    master.write_all(b"\x03").unwrap();
    wait_for("cdc-sql> ");
    master.write_all(b"SHOW TABLES;\r").unwrap();
    wait_for("1 row in set");
    wait_for("cdc-sql> ");
    master.write_all(b"\x04").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
