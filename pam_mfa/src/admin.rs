//! What `mfa-ctl` does, as library calls: enrolment, disabling, domain
//! policy, recovery codes, app passwords, last logins, unlock. The CLI only
//! parses arguments and prints; every rule lives here or below, shared with
//! the module. Each mailbox change is a read-modify-write under the
//! mailbox lock, so it never loses an update made by a login meanwhile.

use crate::app_password::{self, AppPassword};
use crate::config::{self, Config};
use crate::lockout::{self, Lock};
use crate::log::{Level, Logger};
use crate::mailbox::Mailbox;
use crate::net::Cidr;
use crate::policy::{self, DomainPolicy, Policy, Requirement};
use crate::recovery;
use crate::secret::{RandomError, SecretString};
use crate::store::records::{Login, MailboxFile, MailboxRecord, MailboxState};
use crate::store::{Locked, Store, StoreError};
use crate::totp::{CodeCheck, TotpSeed};
use std::fmt;
use std::path::Path;

/// Why an admin operation did not happen. `Refused` is a "no" (exit 1);
/// the others are errors (exit 2).
#[derive(Debug)]
pub enum AdminError {
    Refused(String),
    Usage(String),
    Config(config::ConfigError),
    Store(StoreError),
    Other(String),
}

impl AdminError {
    /// The documented exit code: 1 refused, 2 usage/configuration/I/O error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Refused(_) => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Refused(m) | AdminError::Usage(m) | AdminError::Other(m) => f.write_str(m),
            AdminError::Config(e) => write!(f, "{e}"),
            AdminError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

impl From<RandomError> for AdminError {
    fn from(e: RandomError) -> Self {
        AdminError::Other(e.to_string())
    }
}

type Result<T> = std::result::Result<T, AdminError>;

/// A domain's policy as shown to admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainView {
    pub domain: String,
    pub policy: DomainPolicy,
    /// False when the domain has no record and follows `default_policy`.
    pub explicit: bool,
}

/// A mailbox's MFA state as shown to admins and users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub mailbox: String,
    /// `enabled`, `pending` or `disabled`.
    pub state: &'static str,
    pub policy: DomainPolicy,
    /// `code`, `password_only` or `enrolment_required`: what a login needs now.
    pub login_needs: &'static str,
    pub grace_ends: Option<u64>,
    pub failures: u32,
    /// `none`, `backoff` or `blocked`.
    pub lock: &'static str,
    pub locked_until: Option<u64>,
    pub recovery_codes_left: usize,
    pub app_passwords: usize,
    pub last_login: Option<Login>,
}

/// A fresh enrolment to show the user (secret and URI are secrets).
pub struct Enrolment {
    pub mailbox: String,
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
    pub issuer: String,
    pub algorithm: crate::totp::Algorithm,
    pub digits: u8,
    pub period: u64,
    /// Seconds the code now shown by the app has left.
    pub seconds_left: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPasswordView {
    pub id: String,
    pub label: String,
    pub services: Vec<String>,
    pub from: Vec<String>,
    pub created: u64,
    pub expires: Option<u64>,
    pub last_used: Option<u64>,
    pub last_rhost: Option<String>,
}

pub struct Admin {
    pub cfg: Config,
    pub store: Store,
    pub log: Logger,
}

fn refused(msg: impl Into<String>) -> AdminError {
    AdminError::Refused(msg.into())
}

/// Strips what people type around a code (spaces, dashes).
fn clean_code(code: &str) -> SecretString {
    zeroize::Zeroizing::new(code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect())
}

impl Admin {
    /// Opens the configuration and the store. `named`: the configuration
    /// file given with `--config`, which must exist; without it the default
    /// path is read, and if that is missing the defaults apply.
    pub fn open(named: Option<&Path>) -> Result<Admin> {
        let (config_path, if_missing) = config::source(named);
        let cfg = Config::load(config_path, crate::ffi::effective_uid(), if_missing).map_err(AdminError::Config)?;
        let owner = match cfg.store_owner.as_deref() {
            None => None,
            Some(name) => Some(crate::ffi::uid_of(name).ok_or_else(|| {
                AdminError::Usage(format!(
                    "configuration {}: store_owner = {name:?} is not a known user",
                    config_path.display()
                ))
            })?),
        };
        let store = Store::new(&cfg, owner);
        let mut log = Logger::with_ident("mfa-ctl", None, false);
        log.stderr_fallback = false;
        Ok(Admin { log, cfg, store })
    }

    pub fn mailbox(&self, name: &str) -> Result<Mailbox> {
        Mailbox::parse(name.as_bytes(), self.cfg.default_domain.as_deref())
            .map_err(|e| AdminError::Usage(format!("'{name}' is not a mailbox name: {e}")))
    }

    fn domain(name: &str) -> Result<String> {
        Mailbox::parse_domain(name).map_err(|e| AdminError::Usage(format!("'{name}' is not a domain name: {e}")))
    }

    fn audit(&self, msg: &str) {
        let uid = crate::ffi::effective_uid();
        self.log.log(Level::Notice, &format!("{msg} by_uid={uid}"));
    }

    fn locked(&self, mb: &Mailbox) -> Result<Locked<'_>> {
        self.store.lock(mb, true)?.ok_or_else(|| {
            AdminError::Other(format!(
                "cannot create the store folders under {}",
                self.store.root().display()
            ))
        })
    }

    // ---- domains ----

    pub fn domain_set(&self, domain: &str, policy: Policy, grace: Option<u64>, now: u64) -> Result<DomainView> {
        let domain = Self::domain(domain)?;
        if grace.is_some() && policy != Policy::Required {
            return Err(AdminError::Usage("--grace only applies to the required policy".into()));
        }
        let p = DomainPolicy {
            policy,
            grace,
            since: now,
        };
        self.store.write_domain(&domain, &p)?;
        self.audit(&format!("domain set: domain={domain} policy={policy}"));
        Ok(DomainView {
            domain,
            policy: p,
            explicit: true,
        })
    }

    pub fn domain_show(&self, domain: &str) -> Result<DomainView> {
        let domain = Self::domain(domain)?;
        Ok(match self.store.read_domain(&domain)? {
            Some(policy) => DomainView {
                domain,
                policy,
                explicit: true,
            },
            None => DomainView {
                domain,
                policy: DomainPolicy::default_for(self.cfg.default_policy),
                explicit: false,
            },
        })
    }

    pub fn domain_list(&self) -> Result<Vec<DomainView>> {
        Ok(self
            .store
            .list_domains()?
            .into_iter()
            .map(|(domain, policy)| DomainView {
                domain,
                policy,
                explicit: true,
            })
            .collect())
    }

    // ---- enrolment ----

    /// Step 1: a new pending secret. Logins are unaffected until [`Self::enroll_confirm`].
    pub fn enroll_begin(&self, mb: &Mailbox, now: u64) -> Result<Enrolment> {
        let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
        if policy.policy == Policy::Disabled {
            return Err(refused(format!(
                "MFA is disabled for the domain {}; an admin can change that with: mfa-ctl domain set {} optional",
                mb.domain(),
                mb.domain()
            )));
        }
        let lock = self.locked(mb)?;
        let mut record = lock.read_record()?.unwrap_or_default();
        if record.enrolled() {
            return Err(refused(format!(
                "MFA is already enabled for {mb}; to move it to a new phone, disable it first (mfa-ctl disable {mb} --code CODE)"
            )));
        }
        let seed = TotpSeed::generate(self.cfg.totp.digits, self.cfg.totp.period, now)?;
        let e = Enrolment {
            mailbox: mb.to_string(),
            secret: seed.secret.clone(),
            otpauth_uri: seed.otpauth_uri(&self.cfg.issuer, &mb.to_string()),
            issuer: self.cfg.issuer.clone(),
            algorithm: seed.algorithm,
            digits: seed.digits,
            period: seed.period,
            seconds_left: seed.period - now % seed.period,
        };
        record.pending = Some(seed);
        lock.write_record(&record)?;
        self.audit(&format!("enroll begin: mailbox={mb}"));
        Ok(e)
    }

    /// Step 2: activates the pending secret if `code` is valid. The code's
    /// step counts as used, so the same code cannot also log in.
    pub fn enroll_confirm(&self, mb: &Mailbox, code: &str, now: u64) -> Result<()> {
        // Checked again here: the policy may have changed since --begin.
        if self.store.policy_for(mb.domain(), &self.cfg)?.policy == Policy::Disabled {
            return Err(refused(format!(
                "MFA is disabled for the domain {}; an admin can change that with: mfa-ctl domain set {} optional",
                mb.domain(),
                mb.domain()
            )));
        }
        let lock = self.locked(mb)?;
        let mut record = lock.read_record()?.unwrap_or_default();
        if record.enrolled() {
            return Err(refused(format!("MFA is already enabled for {mb}")));
        }
        let Some(pending) = record.pending.clone() else {
            return Err(refused(format!(
                "{mb} has no enrolment in progress; start one with: mfa-ctl enroll {mb} --begin"
            )));
        };
        let g = pending.generator().map_err(|e| {
            AdminError::Other(format!(
                "the pending secret of {mb} is unusable ({e}); start again with --begin"
            ))
        })?;
        let mut state = lock.read_state()?;
        match g.check(&clean_code(code), now, self.cfg.totp.window, None) {
            CodeCheck::Fresh { step } | CodeCheck::Replayed { step } => {
                record.totp = Some(pending);
                record.pending = None;
                lock.write_record(&record)?;
                state.last_step = Some(state.last_step.map_or(step, |s| s.max(step)));
                lockout::reset(&mut state);
                lock.write_state(&state, true)?;
                self.audit(&format!("enroll confirm: mailbox={mb} result=enabled"));
                Ok(())
            }
            CodeCheck::Wrong => Err(refused(format!(
                "that code is not valid for {mb}: check the app's entry is the new one, wait for the app to show a fresh code ({} s left on the current one) and try again",
                g.seconds_left(now)
            ))),
        }
    }

    /// Turns MFA off: with the user's current code (proof of possession), or
    /// `force` by an admin (logged). Refused in a `required` domain unless forced.
    pub fn disable(&self, mb: &Mailbox, code: Option<&str>, force: bool, now: u64) -> Result<()> {
        let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
        if policy.policy == Policy::Required && !force {
            return Err(refused(format!(
                "MFA is required for the domain {}; only an admin can disable it (--force)",
                mb.domain()
            )));
        }
        let lock = self.locked(mb)?;
        let mut record = lock.read_record()?.unwrap_or_default();
        let mut state = lock.read_state()?;
        if !force {
            let Some(seed) = record.totp.as_ref() else {
                return Err(refused(format!("MFA is not enabled for {mb}")));
            };
            let g = seed.generator().map_err(|e| {
                AdminError::Other(format!("the secret of {mb} is unusable ({e}); an admin can --force"))
            })?;
            if let Some(Lock::Backoff { .. } | Lock::Blocked) = lockout::lock(&state, &self.cfg.lockout, now) {
                return Err(refused(format!(
                    "{mb} is locked after too many failed codes; wait, or ask an admin to run: mfa-ctl unlock {mb}"
                )));
            }
            match g.check(
                &clean_code(code.unwrap_or_default()),
                now,
                self.cfg.totp.window,
                state.last_step,
            ) {
                CodeCheck::Fresh { .. } => {}
                CodeCheck::Replayed { .. } => {
                    return Err(refused(
                        "that code was already used; wait for the app to show a fresh code",
                    ));
                }
                CodeCheck::Wrong => {
                    let mut what = b"disable:".to_vec();
                    what.extend_from_slice(clean_code(code.unwrap_or_default()).as_bytes());
                    lockout::record_failure(&mut state, crate::secret::fingerprint(g.key(), &what), now);
                    lock.write_state(&state, true)?;
                    return Err(refused(format!(
                        "that code is not valid for {mb}; wait for the app to show a fresh code ({} s left) and try again",
                        g.seconds_left(now)
                    )));
                }
            }
        }
        let was = record.enrolled() || record.pending.is_some();
        record.totp = None;
        record.pending = None;
        record.recovery = None;
        lock.write_record(&record)?;
        lockout::reset(&mut state);
        state.recovery_set = None;
        state.recovery_used.clear();
        lock.write_state(&state, true)?;
        self.audit(&format!("disable: mailbox={mb} force={force} was_enabled={was}"));
        Ok(())
    }

    // ---- status ----

    pub fn status(&self, mb: &Mailbox, now: u64) -> Result<Status> {
        let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
        let MailboxFile { record, state } = self.store.read_mailbox(mb)?.unwrap_or_default();
        Ok(self.status_of(mb, policy, &record, &state, now))
    }

    fn status_of(
        &self,
        mb: &Mailbox,
        policy: DomainPolicy,
        record: &MailboxRecord,
        state: &MailboxState,
        now: u64,
    ) -> Status {
        let enrolled = record.enrolled();
        let (login_needs, grace_ends) = match policy::requirement(&policy, enrolled, now) {
            Requirement::Code => ("code", None),
            Requirement::PasswordOnly(policy::NoCodeReason::Grace { ends }) => ("password_only", Some(ends)),
            Requirement::PasswordOnly(_) => ("password_only", None),
            Requirement::EnrolmentRequired => ("enrolment_required", None),
        };
        let (lock, locked_until) = match enrolled.then(|| lockout::lock(state, &self.cfg.lockout, now)).flatten() {
            None => ("none", None),
            Some(Lock::Backoff { until }) => ("backoff", Some(until)),
            Some(Lock::Blocked) => ("blocked", None),
        };
        let recovery_codes_left = record.recovery.as_ref().map_or(0, |set| {
            set.hashes.len().saturating_sub(state.recovery_used_of(&set.id).len())
        });
        Status {
            mailbox: mb.to_string(),
            state: if enrolled {
                "enabled"
            } else if record.pending.is_some() {
                "pending"
            } else {
                "disabled"
            },
            policy,
            login_needs,
            grace_ends,
            failures: state.failures,
            lock,
            locked_until,
            recovery_codes_left,
            app_passwords: record.app_passwords.len(),
            last_login: state.logins.last().cloned(),
        }
    }

    /// Status of every mailbox the store knows, in one domain or all.
    pub fn list(&self, domain: Option<&str>, now: u64) -> Result<Vec<Status>> {
        let domain = domain.map(Self::domain).transpose()?;
        let mut out = Vec::new();
        for mb in self.store.list_mailboxes(domain.as_deref())? {
            let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
            let MailboxFile { record, state } = self.store.read_mailbox(&mb)?.unwrap_or_default();
            // A file with no record holds only the history of a mailbox
            // whose MFA was turned off: not listed, as before it was set up.
            if !record.is_empty() {
                out.push(self.status_of(&mb, policy, &record, &state, now));
            }
        }
        Ok(out)
    }

    // ---- recovery codes ----

    /// A new set of recovery codes, replacing any old set; shown once.
    pub fn recovery_codes(&self, mb: &Mailbox, now: u64) -> Result<Vec<SecretString>> {
        let lock = self.locked(mb)?;
        let mut record = lock.read_record()?.unwrap_or_default();
        if !record.enrolled() {
            return Err(refused(format!(
                "MFA is not enabled for {mb}: enrol first (mfa-ctl enroll {mb})"
            )));
        }
        let (set, codes) = recovery::generate(&mb.to_string(), recovery::DEFAULT_COUNT, now)?;
        record.recovery = Some(set);
        lock.write_record(&record)?;
        self.audit(&format!("recovery-codes: mailbox={mb} count={}", codes.len()));
        Ok(codes)
    }

    // ---- app passwords ----

    pub fn app_password_add(
        &self,
        mb: &Mailbox,
        label: &str,
        services: &[String],
        from: &[String],
        expires_in: Option<u64>,
        now: u64,
    ) -> Result<(AppPasswordView, SecretString)> {
        let label = label.trim();
        if label.is_empty() || label.len() > 64 || label.chars().any(char::is_control) {
            return Err(AdminError::Usage("--label must be 1 to 64 printable characters".into()));
        }
        let mut svcs = Vec::new();
        for s in services {
            let s = s.to_ascii_lowercase();
            if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(AdminError::Usage(format!(
                    "--service '{s}' is not a PAM service name (e.g. imap, pop3, smtp, sieve)"
                )));
            }
            if !svcs.contains(&s) {
                svcs.push(s);
            }
        }
        let mut nets = Vec::new();
        for n in from {
            nets.push(Cidr::parse(n).map_err(AdminError::Usage)?.to_string());
        }
        let lock = self.locked(mb)?;
        let mut record = lock.read_record()?.unwrap_or_default();
        if record.app_passwords.iter().any(|a| a.label == label) {
            return Err(refused(format!(
                "{mb} already has an app password labelled '{label}'; revoke it first or choose another label"
            )));
        }
        let expires = expires_in.map(|e| now.saturating_add(e));
        let (ap, shown) = app_password::generate(&mb.to_string(), label, svcs, nets, expires, now)?;
        let view = view_of(&ap, &MailboxState::default());
        record.app_passwords.push(ap);
        lock.write_record(&record)?;
        self.audit(&format!("app-password add: mailbox={mb} label={label:?}"));
        Ok((view, shown))
    }

    pub fn app_password_list(&self, mb: &Mailbox) -> Result<Vec<AppPasswordView>> {
        let MailboxFile { record, state } = self.store.read_mailbox(mb)?.unwrap_or_default();
        Ok(record.app_passwords.iter().map(|a| view_of(a, &state)).collect())
    }

    pub fn app_password_revoke(&self, mb: &Mailbox, label: &str) -> Result<()> {
        let lock = self.locked(mb)?;
        let mut record = lock.read_record()?.unwrap_or_default();
        let before = record.app_passwords.len();
        record.app_passwords.retain(|a| a.label != label);
        if record.app_passwords.len() == before {
            return Err(refused(format!(
                "{mb} has no app password labelled '{label}' (see: mfa-ctl app-password list {mb})"
            )));
        }
        lock.write_record(&record)?;
        self.audit(&format!("app-password revoke: mailbox={mb} label={label:?}"));
        Ok(())
    }

    // ---- logins and lock-out ----

    /// The most recent logins, newest first.
    pub fn logins(&self, mb: &Mailbox, limit: usize) -> Result<Vec<Login>> {
        let state = self.store.read_mailbox(mb)?.unwrap_or_default().state;
        Ok(state.logins.into_iter().rev().take(limit).collect())
    }

    /// Clears the failure counter. Returns whether the mailbox was locked.
    pub fn unlock(&self, mb: &Mailbox, now: u64) -> Result<bool> {
        let lock = self.locked(mb)?;
        let mut state = lock.read_state()?;
        let was = lockout::lock(&state, &self.cfg.lockout, now).is_some() || state.failures > 0;
        lockout::reset(&mut state);
        lock.write_state(&state, true)?;
        self.audit(&format!("unlock: mailbox={mb} was_locked={was}"));
        Ok(was)
    }

    /// Sets up the store ([`Store::init`]) for `mfa-ctl store init`: in
    /// `dir` instead of the configured folder when given (staging for a
    /// package or `make install`). Returns the store folder and what was created.
    pub fn store_init(&self, dir: Option<&Path>) -> Result<(std::path::PathBuf, Vec<std::path::PathBuf>)> {
        let store = match dir {
            None => self.store.clone(),
            Some(d) => {
                let root = std::path::absolute(d)
                    .map_err(|e| AdminError::Usage(format!("{}: not a usable folder name: {e}", d.display())))?;
                // Already resolved once by Admin::open, which refuses an unknown name.
                let owner = self.cfg.store_owner.as_deref().and_then(crate::ffi::uid_of);
                Store::new(
                    &Config {
                        store: root,
                        ..self.cfg.clone()
                    },
                    owner,
                )
            }
        };
        let created = store.init()?;
        self.audit(&format!(
            "store init: store={} created={}",
            crate::text::escape_controls(&store.root().to_string_lossy()),
            created.len()
        ));
        Ok((store.root().to_path_buf(), created))
    }
}

fn view_of(a: &AppPassword, state: &MailboxState) -> AppPasswordView {
    let used = state.app_password_use.get(&a.id);
    AppPasswordView {
        id: a.id.clone(),
        label: a.label.clone(),
        services: a.services.clone(),
        from: a.from.clone(),
        created: a.created,
        expires: a.expires,
        last_used: used.map(|u| u.at),
        last_rhost: used.map(|u| u.rhost.clone()).filter(|r| !r.is_empty()),
    }
}
