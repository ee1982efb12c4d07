//! Runs the admin's delivery command, which sends a code by text message
//! (or by whatever channel it reaches): pam_mfa never talks to a gateway
//! itself. The command runs inside the login, in the host process
//! (Dovecot's auth worker, sshd), so it is started with care:
//!
//! - only a program the admin alone controls: an absolute path to a
//!   regular, executable file owned by root (or by the user the module runs
//!   as), writable by nobody else, in folders nobody else can write to (a
//!   root-owned sticky folder such as /tmp is fine: nobody else can rename
//!   what is in it). Anything else is refused before it runs, with what to fix;
//! - no shell, no arguments: the code is never on a command line, where
//!   `ps` shows it to every user. Its environment holds only
//!   `PAM_MFA_MAILBOX`, `PAM_MFA_TO`, `PAM_MFA_MESSAGE`, `PAM_MFA_CODE`,
//!   `PAM_MFA_PURPOSE` and a fixed `PATH`; stdin is /dev/null, the working
//!   folder `/`, and no descriptor of the host is inherited but 0, 1 and 2;
//! - stdout and stderr are read by this process, a few KiB kept (the first
//!   line of stderr goes into the log, with the code cut out), the rest
//!   drained so the command never blocks on a full pipe;
//! - it is its own process group's leader; at `timeout` the whole group is
//!   killed (a shell script's curl with it), and so is anything of the
//!   group still running when the command itself has ended;
//! - it is always reaped, and by this code alone: its end is watched with
//!   `waitid(WNOWAIT)` on its own pid, never `wait(-1)`, so the host's other
//!   children and its SIGCHLD handling are left alone, and no thread is
//!   started. If the host reaps it first (SIGCHLD ignored, or a handler
//!   that waits for any child), its exit status is lost: that is "could not
//!   tell whether it was sent", a failure.
//!
//! Exit status 0 means sent; anything else, a timeout, or a command that
//! is missing or not trusted means not sent.

use crate::config::SmsConfig;
use crate::sms::Purpose;
use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `PATH` the command gets: the system's folders, nothing of the host's.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Bytes of stdout and of stderr kept; the rest is read and dropped.
const CAPTURE: usize = 4096;
/// Characters of stderr's first line that go into the log.
const LOG_LINE: usize = 200;

/// One message to send.
pub struct Delivery<'a> {
    pub mailbox: &'a str,
    /// The number (E.164).
    pub to: &'a str,
    pub code: &'a str,
    /// The whole text, code included.
    pub message: &'a str,
    pub purpose: Purpose,
}

/// Why a message was not sent. Never holds the code: stderr's line has it
/// cut out.
#[derive(Debug)]
pub enum DeliveryError {
    /// The command, or a folder on its way, could be changed by someone
    /// other than root; `why` says what and how to fix it.
    Untrusted {
        path: PathBuf,
        why: String,
    },
    Missing {
        path: PathBuf,
    },
    Start {
        path: PathBuf,
        error: std::io::Error,
    },
    /// It ran and ended unsuccessfully.
    Failed {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    /// Killed at the timeout.
    TimedOut {
        path: PathBuf,
        secs: u64,
        stderr: String,
    },
    /// Its end could not be observed (the host process reaped it).
    Unknown {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn said(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(", saying: {stderr}")
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Untrusted { path, why } => write!(
                f,
                "the delivery command {} is not run: {why} (sms.command must be a program only root can change)",
                path.display()
            ),
            DeliveryError::Missing { path } => write!(
                f,
                "the delivery command {} does not exist; install it or fix sms.command",
                path.display()
            ),
            DeliveryError::Start { path, error } => write!(
                f,
                "the delivery command {} could not be started: {error}; check that it is a program (#! line) it can run",
                path.display()
            ),
            DeliveryError::Failed { path, status, stderr } => write!(
                f,
                "the delivery command {} ended with {status}{}; check the command and its gateway",
                path.display(),
                said(stderr)
            ),
            DeliveryError::TimedOut { path, secs, stderr } => write!(
                f,
                "the delivery command {} did not finish within sms.timeout = {secs}s and was killed{}; check its gateway, or raise the timeout",
                path.display(),
                said(stderr)
            ),
            DeliveryError::Unknown { path, error } => write!(
                f,
                "whether the delivery command {} succeeded is unknown ({error}): this process reaps its children itself (SIGCHLD ignored or handled), so their exit status is lost",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Sends one message with the configured command; `Ok` when it exited 0.
/// `trusted_uid`: besides root, who may own the command and its folders
/// (the user the module runs as).
pub fn deliver(cfg: &SmsConfig, d: &Delivery<'_>, trusted_uid: u32) -> Result<(), DeliveryError> {
    let path = cfg.command.as_path();
    check_trusted(path, trusted_uid)?;
    let start = |error: std::io::Error| DeliveryError::Start {
        path: path.to_path_buf(),
        error,
    };
    let (out_read, out_write) = UnixStream::pair().map_err(start)?;
    let (err_read, err_write) = UnixStream::pair().map_err(start)?;
    out_read.set_nonblocking(true).map_err(start)?;
    err_read.set_nonblocking(true).map_err(start)?;
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env("PATH", PATH)
        .env("PAM_MFA_MAILBOX", d.mailbox)
        .env("PAM_MFA_TO", d.to)
        .env("PAM_MFA_MESSAGE", d.message)
        .env("PAM_MFA_CODE", d.code)
        .env("PAM_MFA_PURPOSE", d.purpose.as_str())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(OwnedFd::from(out_write)))
        .stderr(Stdio::from(OwnedFd::from(err_write)))
        .process_group(0);
    crate::ffi::sys::close_inherited_fds_on_exec(&mut cmd);
    let spawned = cmd.spawn();
    // The child's ends of the sockets, still held by `cmd`, are closed here.
    drop(cmd);
    // The file was there a moment ago: "not found" now means its #! line
    // names an interpreter that is not.
    let child = spawned.map_err(start)?;
    let mut running = Running { child: Some(child) };
    let (mut out, mut err) = (Capture::default(), Capture::default());
    let started = Instant::now();
    let deadline = started.checked_add(Duration::from_secs(cfg.timeout)).unwrap_or(started);
    let end = loop {
        out.drain(&out_read);
        err.drain(&err_read);
        match running.exited() {
            Ok(true) => break End::Exited,
            Ok(false) => {}
            Err(e) => break End::Unknown(e),
        }
        let now = Instant::now();
        if now >= deadline {
            break End::TimedOut;
        }
        std::thread::sleep(deadline.saturating_duration_since(now).min(Duration::from_millis(10)));
    };
    let stderr_line = |out: &Capture, err: &Capture| first_line(&err.bytes, d).or_else(|| first_line(&out.bytes, d));
    match end {
        End::Exited => {
            let status = running.finish();
            out.drain(&out_read);
            err.drain(&err_read);
            match status {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(DeliveryError::Failed {
                    path: path.to_path_buf(),
                    status: describe(s),
                    stderr: stderr_line(&out, &err).unwrap_or_default(),
                }),
                Err(error) => Err(DeliveryError::Unknown {
                    path: path.to_path_buf(),
                    error,
                }),
            }
        }
        End::TimedOut => {
            let _ = running.finish();
            Err(DeliveryError::TimedOut {
                path: path.to_path_buf(),
                secs: cfg.timeout,
                stderr: stderr_line(&out, &err).unwrap_or_default(),
            })
        }
        End::Unknown(error) => {
            running.forget();
            Err(DeliveryError::Unknown {
                path: path.to_path_buf(),
                error,
            })
        }
    }
}

enum End {
    Exited,
    TimedOut,
    Unknown(std::io::Error),
}

/// A started command that has not been reaped yet. Dropped on any path
/// (an early return, a panic caught at the PAM boundary), it kills the
/// command's group and reaps it: no zombie is left in the host.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn exited(&self) -> std::io::Result<bool> {
        match &self.child {
            Some(c) => crate::ffi::sys::child_has_exited(c.id()),
            None => Ok(true),
        }
    }

    /// Kills what is left of the group (all of it, at a timeout), then reaps
    /// the command. Its pid is still held (not reaped), so the group id
    /// cannot have been given to anyone else.
    fn finish(&mut self) -> std::io::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(std::io::ErrorKind::NotFound.into());
        };
        let _ = crate::ffi::sys::kill_process_group(child.id());
        child.wait()
    }

    /// Someone else reaped it: its pid may already be another process's,
    /// so nothing is sent to it.
    fn forget(&mut self) {
        self.child = None;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.finish();
        }
    }
}

/// The first bytes of one output stream.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
}

impl Capture {
    /// Reads whatever is there now without blocking; keeps the first
    /// [`CAPTURE`] bytes.
    fn drain(&mut self, mut from: &UnixStream) {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let room = CAPTURE.saturating_sub(self.bytes.len());
                    self.bytes.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// The first non-empty line of an output, for the log: at most [`LOG_LINE`]
/// characters, the code cut out (a command may echo what it was given) and
/// the number masked.
fn first_line(bytes: &[u8], d: &Delivery<'_>) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut line = text.lines().map(str::trim).find(|l| !l.is_empty())?.to_string();
    // Before the line is shortened, so no part of either is left at its
    // end. The number first, as given and as bare digits (gateways take
    // both), then the code: a code that happens to be part of the number
    // must not break the number up before it is masked.
    if !d.to.is_empty() {
        let masked = crate::sms::mask(d.to);
        line = line.replace(d.to, &masked);
        if let Some(bare) = d.to.strip_prefix('+').filter(|b| !b.is_empty()) {
            line = line.replace(bare, &masked);
        }
    }
    if !d.code.is_empty() {
        line = line.replace(d.code, "[code]");
    }
    Some(line.chars().take(LOG_LINE).collect())
}

fn describe(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => s.to_string(),
    }
}

/// Whether the command may run: see the module's opening words.
pub fn check_trusted(path: &Path, trusted_uid: u32) -> Result<(), DeliveryError> {
    let untrusted = |why: String| DeliveryError::Untrusted {
        path: path.to_path_buf(),
        why,
    };
    if !path.is_absolute() {
        return Err(untrusted("it is not an absolute path".into()));
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DeliveryError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(untrusted(format!("it cannot be looked at: {e}"))),
    };
    let owner_ok = |uid: u32| uid == 0 || uid == trusted_uid;
    let shown = path.display();
    if !meta.is_file() {
        return Err(untrusted("it is not a regular file".into()));
    }
    if !owner_ok(meta.uid()) {
        return Err(untrusted(format!(
            "it belongs to uid {}, not root; run: chown root {shown}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(format!(
            "it is writable by group or others (mode {:04o}); run: chmod go-w {shown}",
            meta.mode() & 0o7777
        )));
    }
    if meta.mode() & 0o100 == 0 {
        return Err(untrusted(format!(
            "it is not executable (mode {:04o}); run: chmod 0755 {shown}",
            meta.mode() & 0o7777
        )));
    }
    // Every folder on the way, as named (a symbolic link there could be
    // pointed elsewhere) and as resolved.
    let real = std::fs::canonicalize(path).map_err(|e| untrusted(format!("it cannot be resolved: {e}")))?;
    for p in [path, real.as_path()] {
        for (i, entry) in p.ancestors().enumerate() {
            let Ok(m) = std::fs::symlink_metadata(entry) else {
                return Err(untrusted(format!("{} cannot be looked at", entry.display())));
            };
            let shown = entry.display();
            if !owner_ok(m.uid()) {
                return Err(untrusted(format!(
                    "{shown} belongs to uid {}, not root; run: chown root {shown}",
                    m.uid()
                )));
            }
            // The file itself was checked above (a link's own mode means nothing).
            if i == 0 || m.file_type().is_symlink() {
                continue;
            }
            let sticky_root = m.mode() & 0o1000 != 0 && m.uid() == 0;
            if m.mode() & 0o022 != 0 && !sticky_root {
                return Err(untrusted(format!(
                    "the folder {shown} is writable by group or others (mode {:04o}); run: chmod go-w {shown}",
                    m.mode() & 0o7777
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Real commands (shell scripts in a temp folder) started by the real
    //! code: environment, command line, output, time limit, reaping.
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct World {
        dir: tempfile::TempDir,
    }

    impl World {
        fn new() -> World {
            let dir = tempfile::Builder::new().prefix("pam_mfa-deliver").tempdir().unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            World { dir }
        }

        /// A `/bin/sh` script with `body`; OUT is replaced by the folder.
        fn script(&self, name: &str, body: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            let body = body.replace("OUT", &self.dir.path().display().to_string());
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        }

        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
        }
    }

    fn cfg(command: &Path, timeout: u64) -> SmsConfig {
        SmsConfig {
            command: command.to_path_buf(),
            timeout,
            ..SmsConfig::default()
        }
    }

    const D: Delivery<'static> = Delivery {
        mailbox: "alice@example.org",
        to: "+4915112344567",
        code: "493817",
        message: "493817 is your Mail login code.",
        purpose: Purpose::Login,
    };

    fn uid() -> u32 {
        crate::ffi::sys::effective_uid()
    }

    /// The command gets exactly the PAM_MFA_* variables and PATH, no
    /// argument but its own path, /dev/null as stdin, `/` as its folder.
    #[test]
    fn the_command_gets_only_its_environment() {
        let w = World::new();
        let cmd = w.script(
            "send",
            "tr '\\0' '\\n' < /proc/$$/environ > OUT/env\n\
             tr '\\0' ' ' < /proc/$$/cmdline > OUT/cmdline\n\
             readlink /proc/$$/fd/0 > OUT/stdin\n\
             pwd > OUT/pwd",
        );
        deliver(&cfg(&cmd, 10), &D, uid()).unwrap();
        let mut env: Vec<String> = w.read("env").lines().map(str::to_string).collect();
        env.sort();
        assert_eq!(
            env,
            [
                "PAM_MFA_CODE=493817",
                "PAM_MFA_MAILBOX=alice@example.org",
                "PAM_MFA_MESSAGE=493817 is your Mail login code.",
                "PAM_MFA_PURPOSE=login",
                "PAM_MFA_TO=+4915112344567",
                &format!("PATH={PATH}"),
            ]
        );
        let cmdline = w.read("cmdline");
        assert_eq!(cmdline.trim(), format!("/bin/sh {}", cmd.display()));
        assert!(!cmdline.contains("493817"));
        assert_eq!(w.read("stdin").trim(), "/dev/null");
        assert_eq!(w.read("pwd").trim(), "/");
    }

    #[test]
    fn a_failure_says_the_status_and_stderr_without_the_code() {
        let w = World::new();
        let cmd = w.script(
            "send",
            "echo ok-on-stdout\necho \"gateway refused $PAM_MFA_TO: $PAM_MFA_CODE\" >&2\necho second line >&2\nexit 3",
        );
        let e = deliver(&cfg(&cmd, 10), &D, uid()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("exit status 3, saying: gateway refused +49 *** *** 4567: [code]"),
            "{text}"
        );
        assert!(!text.contains("493817") && !text.contains("second line"), "{text}");
        let killed = w.script("die", "kill -TERM $$");
        let e = deliver(&cfg(&killed, 10), &D, uid()).unwrap_err();
        assert!(e.to_string().contains("signal 15"), "{e}");
    }

    /// At the timeout the command and what it started are killed, and the
    /// command is reaped: no process of it is left.
    #[test]
    fn a_slow_command_is_killed_with_its_children_and_reaped() {
        let w = World::new();
        let cmd = w.script(
            "send",
            "echo $$ > OUT/pid\nsleep 60 &\necho $! > OUT/child\necho waiting for the gateway >&2\nsleep 60",
        );
        let t = Instant::now();
        let e = deliver(&cfg(&cmd, 1), &D, uid()).unwrap_err();
        let took = t.elapsed();
        assert!(matches!(e, DeliveryError::TimedOut { .. }), "{e}");
        assert!(e.to_string().contains("saying: waiting for the gateway"), "{e}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let pid: u32 = w.read("pid").trim().parse().unwrap();
        let child: u32 = w.read("child").trim().parse().unwrap();
        // Reaped by deliver: it is no child of this process any more.
        assert!(crate::ffi::sys::child_has_exited(pid).is_err(), "pid {pid} not reaped");
        assert!(gone(child), "the command's own child {child} survived");
    }

    /// Anything of the command's group still running when it ends is killed.
    #[test]
    fn what_a_command_leaves_running_is_killed() {
        let w = World::new();
        let cmd = w.script("send", "sleep 60 &\necho $! > OUT/child\nexit 0");
        deliver(&cfg(&cmd, 10), &D, uid()).unwrap();
        let child: u32 = w.read("child").trim().parse().unwrap();
        assert!(gone(child), "{child} survived");
    }

    /// Killed, or at least dead (a zombie waiting for init).
    fn gone(pid: u32) -> bool {
        for _ in 0..100 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(s) if s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) => return true,
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    /// Endless output does not fill memory or block the command.
    #[test]
    fn output_is_drained_and_bounded() {
        let w = World::new();
        let cmd = w.script(
            "send",
            "head -c 5000000 /dev/zero\nhead -c 5000000 /dev/zero >&2\nexit 0",
        );
        deliver(&cfg(&cmd, 20), &D, uid()).unwrap();
    }

    #[test]
    fn only_a_command_root_alone_controls_runs() {
        let w = World::new();
        let body = "touch OUT/ran";
        let cmd = w.script("send", body);
        // Group-writable.
        std::fs::set_permissions(&cmd, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = deliver(&cfg(&cmd, 10), &D, uid()).unwrap_err();
        assert!(e.to_string().contains("run: chmod go-w"), "{e}");
        // Not executable.
        std::fs::set_permissions(&cmd, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = deliver(&cfg(&cmd, 10), &D, uid()).unwrap_err();
        assert!(e.to_string().contains("chmod 0755"), "{e}");
        std::fs::set_permissions(&cmd, std::fs::Permissions::from_mode(0o755)).unwrap();
        // In a folder others may write to.
        let open = w.dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let inside = open.join("send");
        std::fs::copy(&cmd, &inside).unwrap();
        let e = deliver(&cfg(&inside, 10), &D, uid()).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("the folder {} is writable", open.display())),
            "{e}"
        );
        // Reached through a symbolic link in such a folder.
        let link = open.join("link");
        std::os::unix::fs::symlink(&cmd, &link).unwrap();
        let e = deliver(&cfg(&link, 10), &D, uid()).unwrap_err();
        assert!(e.to_string().contains("is writable"), "{e}");
        // Missing.
        let e = deliver(&cfg(&w.dir.path().join("nothing"), 10), &D, uid()).unwrap_err();
        assert!(matches!(e, DeliveryError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
        if uid() == 0 {
            // Owned by someone else (root can give it away).
            std::os::unix::fs::chown(&cmd, Some(4242), None).unwrap();
            let e = deliver(&cfg(&cmd, 10), &D, 0).unwrap_err();
            assert!(e.to_string().contains("belongs to uid 4242"), "{e}");
            std::os::unix::fs::chown(&cmd, Some(0), None).unwrap();
        }
        assert!(
            w.read("ran").is_empty() && !w.dir.path().join("ran").exists(),
            "a refused command ran"
        );
        // As it should be: it runs.
        deliver(&cfg(&cmd, 10), &D, uid()).unwrap();
        assert!(w.dir.path().join("ran").exists());
    }

    /// A script whose interpreter is missing: an error that says so, not "missing".
    #[test]
    fn a_command_that_cannot_start() {
        let w = World::new();
        let p = w.dir.path().join("send");
        std::fs::write(&p, "#!/nonexistent/interpreter\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = deliver(&cfg(&p, 10), &D, uid()).unwrap_err();
        assert!(matches!(e, DeliveryError::Start { .. }), "{e}");
        assert!(e.to_string().contains("could not be started"), "{e}");
    }

    /// The code is cut out of stderr's line before it is shortened, so no
    /// part of it is left at the end of a long line.
    #[test]
    fn a_long_line_keeps_no_part_of_the_code() {
        let long = format!("{}{}", "x".repeat(LOG_LINE - 3), D.code);
        let line = first_line(long.as_bytes(), &D).unwrap();
        assert!(!line.contains("493") && line.len() <= LOG_LINE, "{line}");
    }

    /// The number is masked as given and as bare digits (what many gateway
    /// APIs take), also when the code happens to be part of it.
    #[test]
    fn the_number_is_masked_in_every_form() {
        for out in [
            "ERR to=+4915112344567 rejected",
            "ERR to=4915112344567 rejected",
            "ERR to=004915112344567 rejected",
        ] {
            let line = first_line(out.as_bytes(), &D).unwrap();
            assert!(!line.contains("4915112344567") && !line.contains("15112"), "{line}");
        }
        let inside = Delivery { code: "151123", ..D };
        let line = first_line(b"ERR to=4915112344567 code=151123", &inside).unwrap();
        assert!(!line.contains("15112") && !line.contains("491"), "{line}");
    }
}
