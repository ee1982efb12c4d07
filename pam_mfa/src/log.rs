//! Log lines to syslog (facility authpriv, ident `pam_mfa`), sent straight to
//! the syslog socket instead of through openlog(3), which would change the
//! ident of the host process (Dovecot, sshd) for everything it logs after us.
//! If no syslog daemon listens, lines go to stderr (Dovecot logs its auth
//! workers' stderr). Callers never pass secrets; this module also strips
//! control characters so a user name or rhost cannot forge a second line.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

pub const DEFAULT_SOCKET: &str = "/dev/log";

/// One unbound datagram socket per process, reused for every line (as
/// syslog(3) keeps its own): a login logs at least once, and a new socket
/// per line is three system calls more.
static SENDER: std::sync::Mutex<Option<UnixDatagram>> = std::sync::Mutex::new(None);

/// Non-blocking: a stalled syslog daemon (full socket queue) must not stall
/// logins; the caller then writes the line to stderr instead.
fn send(line: &[u8], to: &std::path::Path) -> std::io::Result<usize> {
    let Ok(mut sender) = SENDER.lock() else {
        // Poisoned by a panic elsewhere: a socket of our own still works.
        let s = UnixDatagram::unbound()?;
        s.set_nonblocking(true)?;
        return s.send_to(line, to);
    };
    if sender.is_none() {
        let s = UnixDatagram::unbound()?;
        s.set_nonblocking(true)?;
        *sender = Some(s);
    }
    match sender.as_ref() {
        Some(s) => s.send_to(line, to),
        None => Err(std::io::ErrorKind::NotConnected.into()),
    }
}
const LOG_AUTHPRIV: u8 = 10 << 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err = 3,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

#[derive(Debug, Clone)]
pub struct Logger {
    socket: PathBuf,
    pub debug: bool,
    ident: &'static str,
    /// Write to stderr when syslog is unreachable. On for the module (Dovecot
    /// logs its auth workers' stderr); off for mfa-ctl, whose stderr is for
    /// its user and whose audit lines belong in syslog only.
    pub stderr_fallback: bool,
}

impl Logger {
    pub fn new(socket: Option<PathBuf>, debug: bool) -> Logger {
        Logger::with_ident("pam_mfa", socket, debug)
    }

    pub fn with_ident(ident: &'static str, socket: Option<PathBuf>, debug: bool) -> Logger {
        Logger {
            socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            debug,
            ident,
            stderr_fallback: true,
        }
    }

    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let clean = crate::text::escape_controls(msg);
        let line = format!(
            "<{}>{} {}[{}]: {}",
            LOG_AUTHPRIV | level as u8,
            crate::ffi::sys::syslog_timestamp(),
            self.ident,
            std::process::id(),
            clean
        );
        let sent = send(line.as_bytes(), &self.socket);
        if sent.is_err() && self.stderr_fallback {
            let _ = writeln!(std::io::stderr(), "{}: {clean}", self.ident);
        }
    }

    pub fn err(&self, msg: &str) {
        self.log(Level::Err, msg);
    }

    pub fn debug(&self, msg: impl FnOnce() -> String) {
        if self.debug {
            self.log(Level::Debug, &msg());
        }
    }
}
