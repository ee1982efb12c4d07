//! The configuration file (`/etc/pam_mfa.toml`), read by the module and by
//! `mfa-ctl` alike. A missing file at the default path means the documented
//! defaults; a file named explicitly (`config=` in the PAM line, `mfa-ctl
//! --config`) must exist, since a typo there would otherwise silently swap
//! the admin's settings, store included, for the defaults. Anything
//! else wrong with it (unknown key, bad value, unsafe permissions) is an error
//! that names the file, the line and the fix, and the module then refuses
//! logins rather than run with settings the admin did not write.

use crate::duration;
use crate::net::Cidr;
use crate::policy::Policy;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/pam_mfa.toml";
pub const DEFAULT_STORE: &str = "/var/lib/pam_mfa";

/// A configuration larger than this is refused unread (the shipped one,
/// every key commented, is about 3 KiB).
const MAX_SIZE: u64 = 1 << 20;

/// What a configuration file that does not exist means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// The documented defaults: only for [`DEFAULT_PATH`] when no path was named.
    Defaults,
    /// An error: the path was named explicitly.
    Refuse,
}

/// The configuration path to use and what its absence means: `named` is
/// the path given explicitly, if any.
pub fn source(named: Option<&Path>) -> (&Path, IfMissing) {
    match named {
        Some(p) => (p, IfMissing::Refuse),
        None => (Path::new(DEFAULT_PATH), IfMissing::Defaults),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where policies, mailboxes and login state live: this server's
    /// folder (`store`), or a PostgreSQL database several servers share.
    pub backend: BackendKind,
    /// Directory holding domain policies, mailbox records and login state
    /// (backend `files`).
    pub store: PathBuf,
    /// Shown as the account's issuer in authenticator apps.
    pub issuer: String,
    /// Domain given to bare user names (`alice` -> `alice@default_domain`).
    pub default_domain: Option<String>,
    /// Policy of domains that have no record of their own.
    pub default_policy: Policy,
    /// Besides root, the user allowed to own the store (e.g. when Dovecot's
    /// auth workers run unprivileged). A name or a numeric uid.
    pub store_owner: Option<String>,
    pub totp: TotpConfig,
    pub lockout: LockoutConfig,
    pub state: StateConfig,
    /// The database of backend `postgres`.
    pub postgres: Option<PostgresConfig>,
    /// Webmail sessions (see `webmail`); off unless networks are listed.
    pub webmail: WebmailConfig,
    /// Codes by text message: the delivery command and the limits. Unset:
    /// no code is ever sent (mailboxes with a number cannot log in).
    pub sms: Option<SmsConfig>,
}

impl Config {
    /// The configuration mfa-ctl uses: the database role of its own
    /// (`admin_url`, `admin_password_file`) in place of the logins' one.
    pub fn for_admin(&self) -> Config {
        let mut cfg = self.clone();
        if let Some(pg) = cfg.postgres.as_mut()
            && let Some(url) = pg.admin_url.take()
        {
            pg.url = url;
            pg.password_file = pg.admin_password_file.take();
        }
        cfg
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Files,
    Postgres,
}

pub const DEFAULT_KEY_FILE: &str = "/etc/pam_mfa.key";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A libpq connection string (URL or `key=value` form), without a
    /// password: this file is world-readable.
    pub url: String,
    /// The password alone on its first line; 0600, owned by root.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// What mfa-ctl connects with, when it has a role of its own (it writes
    /// secrets; logins only read them and write their state). Unset: `url`.
    #[serde(default)]
    pub admin_url: Option<String>,
    #[serde(default)]
    pub admin_password_file: Option<PathBuf>,
    /// The key that encrypts TOTP seeds and other secrets in the database;
    /// the same file on every mail server.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Seconds to reach the database before a login is refused.
    #[serde(default = "default_pg_timeout", deserialize_with = "de_duration")]
    pub connect_timeout: u64,
    /// Seconds one statement may take before a login is refused.
    #[serde(default = "default_pg_timeout", deserialize_with = "de_duration")]
    pub statement_timeout: u64,
}

fn default_key_file() -> PathBuf {
    PathBuf::from(DEFAULT_KEY_FILE)
}

fn default_pg_timeout() -> u64 {
    2
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: PathBuf::from(DEFAULT_STORE),
            issuer: "Mail".to_string(),
            default_domain: None,
            default_policy: Policy::Optional,
            store_owner: None,
            totp: TotpConfig::default(),
            lockout: LockoutConfig::default(),
            state: StateConfig::default(),
            backend: BackendKind::Files,
            postgres: None,
            webmail: WebmailConfig::default(),
            sms: None,
        }
    }
}

/// `[webmail]`: from which addresses, for which services and how long an
/// accepted password+code string may log in again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebmailConfig {
    /// Seconds from the login with the code; a domain may set its own.
    #[serde(deserialize_with = "de_duration")]
    pub reuse_window: u64,
    /// A session unused this long ends (a closed browser tab; an open one
    /// logs in again every minute or so).
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: u64,
    /// PAM_RHOST addresses of the webmail servers; empty: off.
    #[serde(deserialize_with = "de_networks")]
    pub networks: Vec<Cidr>,
    /// PAM service names it applies to; absent: all.
    pub services: Option<Vec<String>>,
}

/// Longest webmail window: a working day and a night is what webmail
/// sessions need; longer would make a password+code string a password.
pub const MAX_WEBMAIL_WINDOW: u64 = 86_400;
/// At most this many `webmail.networks` entries.
pub const MAX_WEBMAIL_NETWORKS: usize = 16;

impl Default for WebmailConfig {
    fn default() -> Self {
        WebmailConfig {
            reuse_window: 8 * 3600,
            idle_timeout: 30 * 60,
            networks: Vec::new(),
            services: None,
        }
    }
}

fn de_networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|n| Cidr::parse(n).map_err(serde::de::Error::custom))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TotpConfig {
    /// Steps accepted either side of now (RFC 6238 recommends 1).
    pub window: u8,
    /// Digits of codes for new enrolments (6 is what every app supports).
    pub digits: u8,
    /// Seconds per step for new enrolments.
    pub period: u64,
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            window: 1,
            digits: 6,
            period: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Consecutive failed codes before back-off starts.
    pub after: u32,
    /// First back-off; doubles with every further failure.
    #[serde(deserialize_with = "de_duration")]
    pub backoff: u64,
    /// Longest back-off.
    #[serde(deserialize_with = "de_duration")]
    pub max_backoff: u64,
    /// Consecutive failures that block the mailbox until `mfa-ctl unlock`
    /// (NIST SP 800-63B: at most 100).
    pub block_after: u32,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            after: 5,
            backoff: 30,
            max_backoff: 900,
            block_after: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// How many recent logins each mailbox keeps for `mfa-ctl logins`.
    pub keep_logins: usize,
    /// fdatasync each per-login state update before it replaces the old one.
    pub durable: bool,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            keep_logins: 20,
            durable: true,
        }
    }
}

/// `[sms]`: how codes by text message are sent and how often.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// The delivery command: an absolute path to a program owned by root
    /// and writable by nobody else, run without a shell or arguments, with
    /// the message in its environment (see [`crate::deliver`]).
    pub command: PathBuf,
    /// How long the command may run before it is killed (and the code
    /// counts as not sent).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: u64,
    /// How long a sent code is valid.
    #[serde(deserialize_with = "de_duration")]
    pub code_lifetime: u64,
    /// No new message while the code sent last is unused and younger than this.
    #[serde(deserialize_with = "de_duration")]
    pub resend_after: u64,
    /// Messages per mailbox within any hour.
    pub max_per_hour: u32,
    /// The text sent; `{code}`, `{issuer}` and `{minutes}` (the lifetime)
    /// are filled in.
    pub message: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            command: PathBuf::new(),
            timeout: 10,
            code_lifetime: 300,
            resend_after: 60,
            max_per_hour: 5,
            message: "{code} is your {issuer} login code. It expires in {minutes} minutes.".to_string(),
        }
    }
}

impl SmsConfig {
    fn check(&self) -> Result<(), String> {
        if self.command.as_os_str().is_empty() {
            return Err("[sms] needs command = the absolute path of the delivery command (see pam_mfa.toml(5))".into());
        }
        if !self.command.is_absolute() {
            return Err(format!("sms.command = {:?} must be an absolute path", self.command));
        }
        if self.command.as_os_str().as_encoded_bytes().contains(&0) {
            return Err("sms.command may not contain a NUL character".into());
        }
        let bounded = [
            (
                "timeout",
                self.timeout,
                1,
                60,
                "the login waits this long for the command",
            ),
            ("code_lifetime", self.code_lifetime, 1, 3600, "5m is usual"),
            ("resend_after", self.resend_after, 0, 3600, "60s is usual"),
        ];
        for (key, secs, min, max, why) in bounded {
            if !(min..=max).contains(&secs) {
                return Err(format!(
                    "sms.{key} = {secs}s: use {} to {} ({why})",
                    crate::duration::format(min),
                    crate::duration::format(max)
                ));
            }
        }
        if !(1..=60).contains(&self.max_per_hour) {
            return Err(format!(
                "sms.max_per_hour = {}: use 1 to 60 (each message costs money; 5 is usual)",
                self.max_per_hour
            ));
        }
        crate::sms::check_message(&self.message)
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(s),
        Raw::Text(t) => duration::parse(&t).map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "configuration {} line {}: {}", self.path.display(), l, self.message),
            None => write!(f, "configuration {}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// What identifies one version of the configuration file: any edit (in
/// place or by rename), chmod or chown changes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    trusted_uid: u32,
}

/// The last configuration this process loaded. An auth worker serves many
/// logins; parsing the same file for each would be most of a login's work
/// outside the disk write. Checked against the file's [`Stamp`] every time.
static LOADED: std::sync::Mutex<Option<(PathBuf, Stamp, Config)>> = std::sync::Mutex::new(None);

impl Config {
    /// [`Config::load`], reusing the last result while the file is unchanged
    /// (one `stat` instead of open, read and parse).
    pub fn load_cached(path: &Path, trusted_uid: u32, if_missing: IfMissing) -> Result<Config, ConfigError> {
        let stamp = std::fs::metadata(path).ok().map(|m| Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            trusted_uid,
        });
        if let Some(stamp) = stamp
            && let Ok(loaded) = LOADED.lock()
            && let Some((p, s, cfg)) = loaded.as_ref()
            && p == path
            && *s == stamp
        {
            return Ok(cfg.clone());
        }
        let cfg = Config::load(path, trusted_uid, if_missing)?;
        // Stamped before the read: if the file changed in between, the next
        // call sees a different stamp and loads it again.
        if let Some(stamp) = stamp
            && let Ok(mut loaded) = LOADED.lock()
        {
            *loaded = Some((path.to_path_buf(), stamp, cfg.clone()));
        }
        Ok(cfg)
    }

    /// Reads the file at `path`; a missing file gives the defaults or an
    /// error, as `if_missing` says. `trusted_uid` is the user besides root
    /// that may own the file (the caller's effective uid), since whoever can
    /// edit it can move the store.
    pub fn load(path: &Path, trusted_uid: u32, if_missing: IfMissing) -> Result<Config, ConfigError> {
        let err = |line, message: String| ConfigError {
            path: path.to_path_buf(),
            line,
            message,
        };
        // Non-blocking, so a FIFO named as the configuration cannot hang an
        // auth worker; the checks below are on what was opened (fstat), not
        // on the path, so nothing can be swapped in between.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match if_missing {
                    IfMissing::Defaults => Ok(Config::default()),
                    IfMissing::Refuse => Err(err(
                        None,
                        "it does not exist (or is a dangling symbolic link), though it was named explicitly; \
                         fix the path, or create the file (packaging/pam_mfa.toml lists every key)"
                            .into(),
                    )),
                };
            }
            Err(e) => return Err(err(None, format!("cannot read it: {e}"))),
        };
        let meta = file.metadata().map_err(|e| err(None, format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(err(
                None,
                "cannot read it: it is not a regular file (a folder, FIFO or device?)".into(),
            ));
        }
        if meta.len() > MAX_SIZE {
            return Err(err(
                None,
                format!("it is larger than {MAX_SIZE} bytes: not a pam_mfa configuration"),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(err(
                None,
                format!(
                    "it is writable by group or others (mode {:04o}); run: chmod go-w {}",
                    meta.mode() & 0o7777,
                    path.display()
                ),
            ));
        }
        if meta.uid() != 0 && meta.uid() != trusted_uid {
            return Err(err(
                None,
                format!(
                    "it is owned by uid {}, not root; run: chown root {}",
                    meta.uid(),
                    path.display()
                ),
            ));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(|e| err(None, format!("cannot read it: {e}")))?;
        Config::parse(&text).map_err(|(line, message)| err(line, message))
    }

    /// Parses configuration text; errors carry the 1-based line.
    pub fn parse(text: &str) -> Result<Config, (Option<usize>, String)> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            (line, e.message().trim().to_string())
        })?;
        cfg.check().map_err(|m| (None, m))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        let t = &self.totp;
        if t.window > 10 {
            return Err(format!(
                "totp.window = {} is too wide: use 0 to 10 steps (1 is recommended)",
                t.window
            ));
        }
        if !(6..=8).contains(&t.digits) {
            return Err(format!("totp.digits = {}: use 6, 7 or 8", t.digits));
        }
        if !(10..=300).contains(&t.period) {
            return Err(format!(
                "totp.period = {}: use 10 to 300 seconds (30 is what apps expect)",
                t.period
            ));
        }
        let l = &self.lockout;
        if l.after == 0 || l.block_after == 0 {
            return Err("lockout.after and lockout.block_after must be at least 1".to_string());
        }
        if l.block_after > 100 {
            return Err(format!(
                "lockout.block_after = {}: NIST SP 800-63B allows at most 100 consecutive failures",
                l.block_after
            ));
        }
        if l.block_after < l.after {
            return Err("lockout.block_after must not be smaller than lockout.after".to_string());
        }
        if l.backoff == 0 || l.max_backoff < l.backoff {
            return Err(
                "lockout.backoff must be at least 1s and lockout.max_backoff at least lockout.backoff".to_string(),
            );
        }
        if !self.store.is_absolute() {
            return Err(format!("store = {:?} must be an absolute path", self.store));
        }
        if self.issuer.is_empty() || self.issuer.contains(':') {
            return Err(
                "issuer must be non-empty and may not contain ':' (authenticator apps split on it)".to_string(),
            );
        }
        if let Some(d) = &self.default_domain {
            crate::mailbox::Mailbox::parse_domain(d).map_err(|e| format!("default_domain: {e}"))?;
        }
        if self.state.keep_logins > 1000 {
            return Err("state.keep_logins: at most 1000".to_string());
        }
        match (&self.backend, &self.postgres) {
            (BackendKind::Postgres, None) => {
                return Err(
                    "backend = \"postgres\" needs a [postgres] section with at least url = (see pam_mfa.toml(5))"
                        .to_string(),
                );
            }
            (BackendKind::Files, Some(_)) => {
                return Err(
                    "a [postgres] section is set but backend is \"files\": add backend = \"postgres\" to use the database, or remove the section"
                        .to_string(),
                );
            }
            _ => {}
        }
        let w = &self.webmail;
        if w.reuse_window > MAX_WEBMAIL_WINDOW {
            return Err(format!(
                "webmail.reuse_window = {}: at most {} (0 switches it off)",
                duration::format(w.reuse_window),
                duration::format(MAX_WEBMAIL_WINDOW)
            ));
        }
        if !(60..=MAX_WEBMAIL_WINDOW).contains(&w.idle_timeout) {
            return Err(format!(
                "webmail.idle_timeout = {}: use 1m to {} (a webmail tab that is open logs in every minute or so)",
                duration::format(w.idle_timeout),
                duration::format(MAX_WEBMAIL_WINDOW)
            ));
        }
        if let Some(wide) = w.networks.iter().find(|n| n.is_wide()) {
            return Err(format!(
                "webmail.networks: {wide} is wider than /16 (IPv4) or /48 (IPv6); list the webmail servers' own addresses, not whole networks: a client in them may reuse a code"
            ));
        }
        if let Some(n) = w.networks.iter().find(|n| n.has_host_bits()) {
            return Err(format!(
                "webmail.networks: {n} has bits set past its prefix; write the server's address alone ({}) or the network's first address",
                n.addr()
            ));
        }
        if w.networks.len() > MAX_WEBMAIL_NETWORKS {
            return Err(format!(
                "webmail.networks lists {} entries: at most {MAX_WEBMAIL_NETWORKS} (the webmail servers, not the internet)",
                w.networks.len()
            ));
        }
        if w.services.as_ref().is_some_and(Vec::is_empty) {
            return Err(
                "webmail.services = []: name the PAM services (e.g. [\"imap\", \"smtp\"]), or leave it out for all, or empty networks to switch webmail sessions off"
                    .to_string(),
            );
        }
        if let Some(bad) = w.services.iter().flatten().find(|s| !crate::text::is_service_name(s)) {
            return Err(format!(
                "webmail.services: {bad:?} is not a PAM service name as libpam passes it: lower case letters, digits, - and _ (e.g. \"imap\", \"smtp\")"
            ));
        }
        if let Some(sms) = &self.sms {
            sms.check()?;
        }
        if let Some(pg) = &self.postgres {
            for (key, secs) in [
                ("connect_timeout", pg.connect_timeout),
                ("statement_timeout", pg.statement_timeout),
            ] {
                if !(1..=60).contains(&secs) {
                    return Err(format!(
                        "postgres.{key} = {secs}s: use 1s to 60s (a login waits this long for a database that does not answer)"
                    ));
                }
            }
            for (key, url) in [("url", Some(&pg.url)), ("admin_url", pg.admin_url.as_ref())] {
                if let Some(url) = url {
                    crate::pgurl::check(url).map_err(|e| format!("postgres.{key}: {e}"))?;
                }
            }
            for (key, path) in [
                ("password_file", pg.password_file.as_deref()),
                ("admin_password_file", pg.admin_password_file.as_deref()),
                ("key_file", Some(pg.key_file.as_path())),
            ] {
                if let Some(p) = path
                    && !p.is_absolute()
                {
                    return Err(format!("postgres.{key} = {p:?} must be an absolute path"));
                }
            }
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn full_file() {
        let c = Config::parse(
            r#"
store = "/srv/mfa"
issuer = "Example Mail"
default_domain = "Example.org"
default_policy = "required"
[totp]
window = 2
[lockout]
after = 3
backoff = "1m"
max_backoff = "1h"
block_after = 50
[state]
keep_logins = 5
durable = false
"#,
        )
        .unwrap();
        assert_eq!(c.store, PathBuf::from("/srv/mfa"));
        assert_eq!(c.default_policy, Policy::Required);
        assert_eq!(c.lockout.backoff, 60);
        assert_eq!(c.lockout.max_backoff, 3600);
        assert!(!c.state.durable);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let (line, msg) = Config::parse("issuer = \"x\"\n\nsotre = \"/x\"\n").unwrap_err();
        assert_eq!(line, Some(3));
        assert!(msg.contains("sotre"), "{msg}");
        let (line, msg) = Config::parse("[lockout]\nbackoff = \"soon\"\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(msg.contains("not a duration"), "{msg}");
        let (_, msg) = Config::parse("[lockout]\nblock_after = 1000\n").unwrap_err();
        assert!(msg.contains("NIST"), "{msg}");
        assert!(Config::parse("store = \"relative\"").is_err());
        assert!(Config::parse("default_policy = \"sometimes\"").is_err());
    }

    #[test]
    fn sms_section() {
        let c = Config::parse(
            "[sms]\ncommand = \"/usr/local/sbin/pam_mfa-send-sms\"\ntimeout = \"10s\"\ncode_lifetime = \"5m\"\n\
             resend_after = \"60s\"\nmax_per_hour = 5\n",
        )
        .unwrap();
        let sms = c.sms.unwrap();
        assert_eq!(sms.command, PathBuf::from("/usr/local/sbin/pam_mfa-send-sms"));
        assert_eq!(
            (sms.timeout, sms.code_lifetime, sms.resend_after, sms.max_per_hour),
            (10, 300, 60, 5)
        );
        assert_eq!(Config::parse("").unwrap().sms, None, "no section: nothing is ever sent");
        for (text, why) in [
            ("[sms]\n", "needs command"),
            ("[sms]\ncommand = \"send-sms\"\n", "absolute path"),
            ("[sms]\ncommand = \"/x\"\ntimeout = \"2m\"\n", "sms.timeout"),
            ("[sms]\ncommand = \"/x\"\ncode_lifetime = \"2h\"\n", "sms.code_lifetime"),
            ("[sms]\ncommand = \"/x\"\ncode_lifetime = 0\n", "sms.code_lifetime"),
            ("[sms]\ncommand = \"/x\"\nmax_per_hour = 0\n", "sms.max_per_hour"),
            ("[sms]\ncommand = \"/x\"\nmessage = \"hello\"\n", "{code}"),
            ("[sms]\ncommand = \"/x\"\nsurprise = 1\n", "surprise"),
        ] {
            let (_, msg) = Config::parse(text).unwrap_err();
            assert!(msg.contains(why), "{text}: {msg}");
        }
    }

    proptest::proptest! {
        /// Any text: a config or an error naming a line inside the text, never a panic.
        #[test]
        fn parse_never_panics(text in "\\PC{0,300}") {
            if let Err((Some(line), _)) = Config::parse(&text) {
                proptest::prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            }
        }

        /// Any number in any lockout/totp key: accepted only within the documented bounds.
        #[test]
        fn numeric_keys_are_bounded(after in 0u64..200, block in 0u64..200, window in 0u64..20) {
            let text = format!("[lockout]\nafter = {after}\nblock_after = {block}\n[totp]\nwindow = {window}\n");
            match Config::parse(&text) {
                Ok(c) => {
                    proptest::prop_assert!(c.lockout.after >= 1 && c.lockout.block_after <= 100);
                    proptest::prop_assert!(c.lockout.after <= c.lockout.block_after && c.totp.window <= 10);
                }
                Err(_) => proptest::prop_assert!(after == 0 || block == 0 || block > 100 || block < after || window > 10),
            }
        }
    }
}
