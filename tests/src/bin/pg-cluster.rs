//! A private PostgreSQL cluster ([`PgCluster`]) for tests written in another
//! language (the e2e suite, in Python), which start it, stop and start its
//! server, and remove it through this program.
//!
//! ```text
//! pg-cluster start DIR [--owner PID]  starts a cluster and one database; prints its JSON and returns,
//!                                     the cluster left running (DIR: this program's state, 0700 root)
//! pg-cluster info DIR                 prints the same JSON again
//! pg-cluster down DIR                 stops the server (fast shutdown), data kept
//! pg-cluster up DIR                   starts it again: same data, port and socket
//! pg-cluster stop DIR                 stops the cluster and removes it and DIR
//! ```
//!
//! A [`PgCluster`] lives as long as the process that made it: its drop, or
//! its watchdog when the process dies, stops the server and removes its
//! folder. So `start` does not make it itself: it runs this program again
//! as a holder (`serve`), detached in a process group of its own, which
//! makes the cluster and its database, writes `DIR/cluster.json`, then
//! answers `down`, `up` and `stop` on the Unix socket `DIR/control.sock`
//! by calling the cluster's own `stop`, `start_again` and drop. The holder
//! also ends, removing the cluster and DIR, when the owner (`--owner`, by
//! default the process that ran `start`; 0: none) is gone or on SIGTERM; a
//! holder that is killed outright leaves the cluster to its watchdog (and
//! DIR to `stop`).
//!
//! The JSON: `port`, `socket_dir`, `database`, `ca_cert`, `key_file` (where
//! `mfa-ctl store init` would make the key, in a root 0700 folder of the
//! database), `login` and `admin` (each `role`, `url` over the socket,
//! `tcp_url`, `tls_url` (verify-full, the test CA), `password_file`,
//! `config_toml`), and `pid` (the holder), `root`, `data_dir`, `log_file`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa_tests::pg::{PgCluster, PgDatabase, Role};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: pg-cluster start DIR [--owner PID] | info DIR | down DIR | up DIR | stop DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, dir) = match (args.first(), args.get(1)) {
        (Some(c), Some(d)) => (c.as_str(), absolute(Path::new(d))),
        _ => return usage(),
    };
    let rest = &args[2..];
    match cmd {
        "start" => {
            let owner = match rest {
                [] => std::os::unix::process::parent_id(),
                [flag, pid] if flag == "--owner" => match pid.parse() {
                    Ok(p) => p,
                    Err(_) => return usage(),
                },
                _ => return usage(),
            };
            start(&dir, owner)
        }
        "serve" if rest.len() == 1 => serve(&dir, rest[0].parse().unwrap()),
        "info" if rest.is_empty() => match std::fs::read_to_string(dir.join("cluster.json")) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("no cluster in {}: {e}", dir.display())),
        },
        "down" | "up" if rest.is_empty() => match ask(&dir, cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{cmd}: {e}")),
        },
        "stop" if rest.is_empty() => stop(&dir),
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("pg-cluster: {msg}");
    ExitCode::FAILURE
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap().join(p)
    }
}

// ---- start: run the holder, wait for its JSON --------------------------

// The holder is meant to outlive this process (it is not waited for once
// it is up): whoever adopts it reaps it.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, owner: u32) -> ExitCode {
    if let Some(pid) = holder_pid(dir)
        && alive(pid)
    {
        return fail(&format!(
            "{} already has a running cluster (holder pid {pid})",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    for stale in ["cluster.json", "control.sock", "holder.pid", "holder.done"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let log_path = dir.join("holder.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("serve")
        .arg(dir)
        .arg(owner.to_string())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Not in the caller's process group: a Ctrl-C meant for it must not
        // kill the holder (the owner check ends it soon after).
        .process_group(0)
        .spawn()
        .unwrap();
    std::fs::write(dir.join("holder.pid"), format!("{}\n", child.id())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("cluster.json")) {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return fail(&format!("the cluster did not start ({status}):\n{log}"));
        }
        if Instant::now() > deadline {
            // Ours to end; its cluster's watchdog removes what it made.
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return fail(&format!("the cluster did not start within 180 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- serve: the holder -------------------------------------------------

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_sig: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

fn serve(dir: &Path, owner: u32) -> ExitCode {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; no other code of this process sets handlers.
        unsafe {
            libc::signal(sig, on_term as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
    let cluster = PgCluster::start();
    let db = cluster.create_database("e2e");
    let sock_path = dir.join("control.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).unwrap();
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let json = describe(&cluster, &db);
    let tmp = dir.join("cluster.json.tmp");
    std::fs::write(&tmp, &json).unwrap();
    std::fs::rename(&tmp, dir.join("cluster.json")).unwrap();
    eprintln!(
        "pg-cluster: serving {} (port {}), owner {owner}",
        cluster.root().display(),
        cluster.port()
    );

    let why = loop {
        if TERM.load(Ordering::SeqCst) {
            break "signal".to_string();
        }
        if owner != 0 && !alive(owner) {
            break format!("owner {owner} is gone");
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if handle(&cluster, stream) {
                    break "stop".to_string();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break format!("control socket: {e}"),
        }
    };
    eprintln!("pg-cluster: ending ({why}): removing the cluster");
    drop(listener);
    let _ = std::fs::remove_file(&sock_path);
    drop(db);
    drop(cluster);
    if why == "stop" {
        // `stop` waits for this, then removes DIR.
        std::fs::write(dir.join("holder.done"), format!("{why}\n")).unwrap();
    } else {
        // Nobody may come for DIR: the owner is gone, or we were told to end.
        let _ = std::fs::remove_dir_all(dir);
    }
    ExitCode::SUCCESS
}

/// One request: a line `down`, `up`, `stop` or `ping`; answers `ok` or
/// `error: ...`. True for `stop` (answered before the cluster goes: the
/// client waits for `holder.done`).
fn handle(cluster: &PgCluster, stream: UnixStream) -> bool {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return false;
    }
    let cmd = line.trim();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cmd {
        "down" => cluster.stop(),
        "up" => cluster.start_again(),
        "stop" | "ping" => {}
        other => panic!("unknown request {other:?}"),
    }));
    let answer = match result {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            format!("error: {}", msg.replace('\n', "\n  "))
        }
    };
    let _ = writeln!(&stream, "{answer}");
    cmd == "stop"
}

// ---- clients of the holder ---------------------------------------------

fn ask(dir: &Path, request: &str) -> Result<(), String> {
    let stream = UnixStream::connect(dir.join("control.sock"))
        .map_err(|e| format!("no cluster running in {}: {e}", dir.display()))?;
    // A stop or start waits up to 60 s in pg_ctl.
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    writeln!(&stream, "{request}").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_to_string_lossy(&mut answer)
        .map_err(|e| e.to_string())?;
    let answer = answer.trim();
    if answer == "ok" {
        Ok(())
    } else {
        Err(answer.to_string())
    }
}

trait ReadAll {
    fn read_to_string_lossy(&mut self, out: &mut String) -> std::io::Result<()>;
}

impl<R: std::io::Read> ReadAll for R {
    fn read_to_string_lossy(&mut self, out: &mut String) -> std::io::Result<()> {
        let mut buf = Vec::new();
        self.read_to_end(&mut buf)?;
        out.push_str(&String::from_utf8_lossy(&buf));
        Ok(())
    }
}

/// Stops the cluster and removes it and DIR. Without a holder (it died),
/// stops what its `cluster.json` names with pg_ctl and removes it.
fn stop(dir: &Path) -> ExitCode {
    if !dir.exists() {
        return ExitCode::SUCCESS;
    }
    let pid = holder_pid(dir);
    let mut problems = Vec::new();
    if let Some(pid) = pid
        && alive(pid)
    {
        if let Err(e) = ask(dir, "stop") {
            problems.push(format!("asking the holder to stop: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while alive(pid) && !dir.join("holder.done").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !dir.join("holder.done").exists() {
            problems.push(format!("the holder (pid {pid}) did not finish"));
        }
    }
    if !dir.join("holder.done").exists() {
        // The holder died without cleaning up (or never answered): stop and
        // remove what it made ourselves.
        if let Ok(text) = std::fs::read_to_string(dir.join("cluster.json")) {
            let (root, data, bin) = (
                json_field(&text, "root"),
                json_field(&text, "data_dir"),
                json_field(&text, "bin_dir"),
            );
            if let (Some(data), Some(bin)) = (&data, &bin)
                && Path::new(data).join("postmaster.pid").exists()
            {
                let pg_ctl = format!("{bin}/pg_ctl");
                let r = Command::new("runuser")
                    .args([
                        "-u",
                        "postgres",
                        "--",
                        &pg_ctl,
                        "-D",
                        data,
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ])
                    .stdin(Stdio::null())
                    .output();
                // The cluster's watchdog may have stopped it meanwhile.
                if !matches!(&r, Ok(o) if o.status.success()) && Path::new(data).join("postmaster.pid").exists() {
                    problems.push(format!("pg_ctl stop -D {data}: {r:?}"));
                }
            }
            if let Some(root) = root {
                let _ = std::fs::remove_dir_all(root);
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        problems.push(format!("removing {}: {e}", dir.display()));
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        fail(&problems.join("; "))
    }
}

fn holder_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("holder.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The process exists and is not a zombie (a holder whose parent has gone
/// is reaped by whoever adopted it, which may be slow or never).
fn alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let exists =
        unsafe { libc::kill(pid_t, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

// ---- the JSON ----------------------------------------------------------

fn describe(cluster: &PgCluster, db: &PgDatabase<'_>) -> String {
    let role = |r: Role| {
        obj(&[
            ("role", s(r.name())),
            ("url", s(&db.socket_url(r))),
            ("tcp_url", s(&db.tcp_url(r))),
            ("tls_url", s(&db.tls_url(r, "verify-full"))),
            ("password_file", s(&cluster.password_file(r).display().to_string())),
            ("config_toml", s(&db.config_toml(r))),
        ])
    };
    let bin = std::fs::read_link(format!("/proc/{}/exe", cluster.postmaster_pid().unwrap_or(0)))
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_default();
    let text = obj(&[
        ("pid", std::process::id().to_string()),
        ("port", cluster.port().to_string()),
        ("socket_dir", s(&cluster.socket_dir().display().to_string())),
        ("database", s(db.name())),
        ("ca_cert", s(&cluster.ca_cert().display().to_string())),
        ("key_file", s(&db.key_file().display().to_string())),
        ("login", role(Role::Login)),
        ("admin", role(Role::Admin)),
        ("root", s(&cluster.root().display().to_string())),
        ("data_dir", s(&cluster.data_dir().display().to_string())),
        ("log_file", s(&cluster.log_file().display().to_string())),
        ("bin_dir", s(&bin)),
    ]);
    text + "\n"
}

fn obj(fields: &[(&str, String)]) -> String {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{}: {v}", s(k))).collect();
    format!("{{{}}}", inner.join(", "))
}

/// A JSON string.
fn s(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A top-level string field of the JSON above (no escapes in paths we made).
fn json_field(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("{}: \"", s(key)))? + key.len() + 5;
    let end = text[at..].find('"')?;
    Some(text[at..at + end].to_string())
}
