//! What `mfa-ctl` does, as library calls: enrolment, disabling, domain
//! policy, recovery codes, app passwords, last logins, unlock. The CLI only
//! parses arguments and prints; every rule lives here or below, shared with
//! the module. Each mailbox change is a read-modify-write under the
//! mailbox lock, so it never loses an update made by a login meanwhile.
//! Errors say what happened, not which flag to use: that wording is the CLI's.

use crate::app_password::{self, AppPassword};
use crate::config::{self, Config};
use crate::decide::{self, Outcome, Request};
use crate::lockout::{self, Lock};
use crate::log::{Level, Logger};
use crate::mailbox::{Mailbox, MailboxError};
use crate::net::Cidr;
use crate::policy::{self, DomainPolicy, NoCodeReason, Policy, Requirement};
use crate::recovery;
use crate::secret::{RandomError, SecretString};
use crate::split::Factor;
use crate::store::any::{AnyLock, AnyStore};
use crate::store::backend::{Backend, MailboxLock};
use crate::store::records::{Login, MailboxFile, MailboxRecord, MailboxState, Method};
use crate::store::{Durability, ExistingFolder, OnMissing, Store, StoreError};
use crate::totp::{self, CodeCheck, SeedError, TotpSeed};
use serde::{Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why an admin operation did not happen. [`AdminError::Refused`] is a "no"
/// to a well-formed request (exit 1); the others are errors (exit 2).
#[derive(Debug)]
pub enum AdminError {
    Refused(Refusal),
    /// The request itself is not acceptable (a name, a label, an option).
    Invalid(Invalid),
    Config(config::ConfigError),
    Store(StoreError),
    /// The store's place for a mailbox could not be made.
    NoStoreFolders {
        store: String,
    },
    /// The mailbox's active seed cannot compute codes (fail closed).
    UnusableSecret {
        mailbox: String,
        error: SeedError,
    },
    /// The seed of the enrolment in progress cannot compute codes.
    UnusablePendingSecret {
        mailbox: String,
        error: SeedError,
    },
    Random(RandomError),
}

/// A "no": the request was understood and the rules forbid it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The domain's policy is `disabled`: nobody there can enrol.
    DomainDisabled {
        domain: String,
    },
    AlreadyEnrolled {
        mailbox: String,
    },
    NoEnrolmentInProgress {
        mailbox: String,
    },
    /// The code given to confirm an enrolment is not one of the new secret.
    WrongEnrolmentCode {
        mailbox: String,
        seconds_left: u64,
    },
    /// The code given as proof of possession is wrong (and was counted).
    WrongCode {
        mailbox: String,
        seconds_left: u64,
    },
    /// The code was right but its step was already used.
    CodeReplayed,
    /// Too many failed codes: the same lock-out a login meets.
    Locked {
        mailbox: String,
        lock: Lock,
    },
    /// The domain requires MFA, so only an admin may turn it off.
    RequiredByPolicy {
        domain: String,
    },
    NotEnrolled {
        mailbox: String,
    },
    DuplicateLabel {
        mailbox: String,
        label: String,
    },
    NoSuchAppPassword {
        mailbox: String,
        label: String,
    },
}

/// A request that cannot be carried out as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    Mailbox {
        name: String,
        error: MailboxError,
    },
    Domain {
        name: String,
        error: MailboxError,
    },
    /// A grace period was given for a policy other than `required`.
    GraceWithoutRequired,
    /// An app password label must be 1 to 64 printable characters.
    Label,
    /// Not a PAM service name.
    Service {
        service: String,
    },
    /// Not a network (CIDR or address); the parser's explanation.
    Network(String),
    /// A folder name that cannot be made absolute.
    Folder {
        dir: PathBuf,
        error: String,
    },
    /// The configuration's `store_owner` names no user.
    StoreOwner {
        config: PathBuf,
        name: String,
    },
    /// A store folder was given, but the configured backend is a database.
    FolderForDatabase {
        dir: PathBuf,
    },
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
            AdminError::Refused(r) => write!(f, "{r}"),
            AdminError::Invalid(i) => write!(f, "{i}"),
            AdminError::Config(e) => write!(f, "{e}"),
            AdminError::Store(e) => write!(f, "{e}"),
            AdminError::NoStoreFolders { store } => {
                write!(f, "cannot create the mailbox's place in the store {store}")
            }
            AdminError::UnusableSecret { mailbox, error } => {
                write!(f, "the secret of {mailbox} is unusable ({error})")
            }
            AdminError::UnusablePendingSecret { mailbox, error } => {
                write!(f, "the pending secret of {mailbox} is unusable ({error})")
            }
            AdminError::Random(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DomainDisabled { domain } => write!(f, "MFA is disabled for the domain {domain}"),
            Refusal::AlreadyEnrolled { mailbox } => write!(f, "MFA is already enabled for {mailbox}"),
            Refusal::NoEnrolmentInProgress { mailbox } => write!(f, "{mailbox} has no enrolment in progress"),
            Refusal::WrongEnrolmentCode { mailbox, seconds_left } => write!(
                f,
                "that code is not valid for {mailbox}: check the app's entry is the new one, wait for the app to show a fresh code ({seconds_left} s left on the current one) and try again"
            ),
            Refusal::WrongCode { mailbox, seconds_left } => write!(
                f,
                "that code is not valid for {mailbox}; wait for the app to show a fresh code ({seconds_left} s left) and try again"
            ),
            Refusal::CodeReplayed => f.write_str("that code was already used; wait for the app to show a fresh code"),
            Refusal::Locked { mailbox, .. } => write!(f, "{mailbox} is locked after too many failed codes"),
            Refusal::RequiredByPolicy { domain } => write!(
                f,
                "MFA is required for the domain {domain}; only an admin can disable it"
            ),
            Refusal::NotEnrolled { mailbox } => write!(f, "MFA is not enabled for {mailbox}"),
            Refusal::DuplicateLabel { mailbox, label } => write!(
                f,
                "{mailbox} already has an app password labelled '{label}'; revoke it first or choose another label"
            ),
            Refusal::NoSuchAppPassword { mailbox, label } => {
                write!(f, "{mailbox} has no app password labelled '{label}'")
            }
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Mailbox { name, error } => write!(f, "'{name}' is not a mailbox name: {error}"),
            Invalid::Domain { name, error } => write!(f, "'{name}' is not a domain name: {error}"),
            Invalid::GraceWithoutRequired => f.write_str("a grace period only applies to the required policy"),
            Invalid::Label => f.write_str("an app password label must be 1 to 64 printable characters"),
            Invalid::Service { service } => write!(
                f,
                "'{service}' is not a PAM service name (e.g. imap, pop3, smtp, sieve)"
            ),
            Invalid::Network(e) => f.write_str(e),
            Invalid::Folder { dir, error } => write!(f, "{}: not a usable folder name: {error}", dir.display()),
            Invalid::FolderForDatabase { dir } => write!(
                f,
                "{}: a store folder applies to backend \"files\"; the configuration names a database, which store init sets up without one",
                dir.display()
            ),
            Invalid::StoreOwner { config, name } => write!(
                f,
                "configuration {}: store_owner = {name:?} is not a known user",
                config.display()
            ),
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
        AdminError::Random(e)
    }
}

impl From<Refusal> for AdminError {
    fn from(r: Refusal) -> Self {
        AdminError::Refused(r)
    }
}

impl From<Invalid> for AdminError {
    fn from(i: Invalid) -> Self {
        AdminError::Invalid(i)
    }
}

type Result<T> = std::result::Result<T, AdminError>;

/// An enum shown to people and scripts by one fixed name: `as_str`,
/// `Display` and the serde form are the same string (a test checks it).
/// Comparing with a `&str` is for tests that read these as text.
macro_rules! named_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant,)*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

named_enum! {
    /// Whether a mailbox uses MFA.
    pub enum MfaState {
        Enabled => "enabled",
        /// A secret was shown but its first code not yet confirmed.
        Pending => "pending",
        Disabled => "disabled",
    }
}

named_enum! {
    /// What a login of the mailbox needs now, besides the password.
    pub enum LoginNeeds {
        Code => "code",
        PasswordOnly => "password_only",
        /// Nothing works: the domain requires MFA and the grace period is over.
        EnrolmentRequired => "enrolment_required",
    }
}

named_enum! {
    /// The mailbox's lock-out after failed codes.
    pub enum LockState {
        None => "none",
        /// Codes are refused until `locked_until`.
        Backoff => "backoff",
        /// Codes are refused until an admin unlocks the mailbox.
        Blocked => "blocked",
    }
}

/// A domain's policy as shown to admins. Its JSON form spells the policy
/// out for panels: the grace period as text and in seconds, and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainView {
    pub domain: String,
    pub policy: DomainPolicy,
    /// False when the domain has no record and follows `default_policy`.
    pub explicit: bool,
}

impl Serialize for DomainView {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let p = &self.policy;
        let mut out = s.serialize_struct("DomainView", 7)?;
        out.serialize_field("domain", &self.domain)?;
        out.serialize_field("policy", &p.policy)?;
        out.serialize_field("explicit", &self.explicit)?;
        out.serialize_field("grace", &p.grace.map(crate::duration::format))?;
        out.serialize_field("grace_seconds", &p.grace)?;
        out.serialize_field("grace_ends", &p.grace_ends())?;
        // A domain without a record of its own was never set.
        out.serialize_field("since", &self.explicit.then_some(p.since))?;
        out.end()
    }
}

/// A mailbox's MFA state as shown to admins and users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub mailbox: String,
    pub state: MfaState,
    /// Shown as the policy's name; the grace period is in `grace_ends`.
    #[serde(serialize_with = "policy_name")]
    pub policy: DomainPolicy,
    pub login_needs: LoginNeeds,
    /// When the password alone stops being enough (grace period of a
    /// `required` domain, for a mailbox that has not enrolled).
    pub grace_ends: Option<u64>,
    pub failures: u32,
    pub lock: LockState,
    pub locked_until: Option<u64>,
    pub recovery_codes_left: usize,
    pub app_passwords: usize,
    pub last_login: Option<LoginView>,
}

fn policy_name<S: Serializer>(p: &DomainPolicy, s: S) -> std::result::Result<S::Ok, S::Error> {
    p.policy.serialize(s)
}

/// One recorded login as shown to admins and users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginView {
    pub at: u64,
    pub service: String,
    /// The client's address, when the service gave one.
    pub ip: Option<String>,
    pub method: Method,
    /// `ok`, or why it was refused.
    pub result: String,
}

impl From<&Login> for LoginView {
    fn from(l: &Login) -> Self {
        LoginView {
            at: l.at,
            service: l.service.clone(),
            ip: Some(l.rhost.clone()).filter(|r| !r.is_empty()),
            method: l.method,
            result: l.result.as_str().to_string(),
        }
    }
}

/// A fresh enrolment to show the user (secret and URI are secrets).
#[derive(Serialize)]
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

/// An app password as shown to admins and users (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppPasswordView {
    /// Internal identifier, not shown: people name it by its label.
    #[serde(skip)]
    pub id: String,
    pub label: String,
    pub services: Vec<String>,
    pub from: Vec<String>,
    pub created: u64,
    pub expires: Option<u64>,
    pub last_used: Option<u64>,
    #[serde(rename = "last_ip")]
    pub last_rhost: Option<String>,
}

pub struct Admin {
    pub cfg: Config,
    pub store: AnyStore,
    pub log: Logger,
}

impl Admin {
    /// Opens the configuration and the store. `named`: the configuration
    /// file given with `--config`, which must exist; without it the default
    /// path is read, and if that is missing the defaults apply.
    pub fn open(named: Option<&Path>) -> Result<Admin> {
        let (config_path, if_missing) = config::source(named);
        let cfg =
            Config::load(config_path, crate::ffi::sys::effective_uid(), if_missing).map_err(AdminError::Config)?;
        let owner = match cfg.store_owner.as_deref() {
            None => None,
            Some(name) => Some(crate::ffi::sys::uid_of(name).ok_or_else(|| Invalid::StoreOwner {
                config: config_path.to_path_buf(),
                name: name.to_string(),
            })?),
        };
        let store = AnyStore::open(&cfg.for_admin(), owner)?;
        let mut log = Logger::with_ident("mfa-ctl", None, false);
        log.stderr_fallback = false;
        Ok(Admin { log, cfg, store })
    }

    pub fn mailbox(&self, name: &str) -> Result<Mailbox> {
        Mailbox::parse(name.as_bytes(), self.cfg.default_domain.as_deref()).map_err(|error| {
            Invalid::Mailbox {
                name: name.to_string(),
                error,
            }
            .into()
        })
    }

    fn domain(name: &str) -> Result<String> {
        Mailbox::parse_domain(name).map_err(|error| {
            Invalid::Domain {
                name: name.to_string(),
                error,
            }
            .into()
        })
    }

    fn audit(&self, msg: &str) {
        let uid = crate::ffi::sys::effective_uid();
        self.log.log(Level::Notice, &format!("{msg} by_uid={uid}"));
    }

    fn locked(&self, mb: &Mailbox) -> Result<AnyLock<'_>> {
        self.store
            .lock(mb, OnMissing::Create)?
            .ok_or_else(|| AdminError::NoStoreFolders {
                store: self.store.describe(),
            })
    }

    /// Refused for a domain whose policy is `disabled`, where nobody enrols.
    fn check_enrolment_allowed(&self, mb: &Mailbox) -> Result<()> {
        if self.store.policy_for(mb.domain(), &self.cfg)?.policy == Policy::Disabled {
            return Err(Refusal::DomainDisabled {
                domain: mb.domain().to_string(),
            }
            .into());
        }
        Ok(())
    }

    // ---- domains ----

    pub fn domain_set(&self, domain: &str, policy: Policy, grace: Option<u64>, now: u64) -> Result<DomainView> {
        let domain = Self::domain(domain)?;
        if grace.is_some() && policy != Policy::Required {
            return Err(Invalid::GraceWithoutRequired.into());
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
        self.check_enrolment_allowed(mb)?;
        let mut lock = self.locked(mb)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        if record.enrolled() {
            return Err(Refusal::AlreadyEnrolled {
                mailbox: mb.to_string(),
            }
            .into());
        }
        let seed = TotpSeed::generate(self.cfg.totp.digits, self.cfg.totp.period, now)?;
        let e = Enrolment {
            mailbox: mb.to_string(),
            secret: seed.secret.clone(),
            otpauth_uri: seed.otpauth_uri(&self.cfg.issuer, mb.as_str()),
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
        // Checked again here: the policy may have changed since step 1.
        self.check_enrolment_allowed(mb)?;
        let mut lock = self.locked(mb)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        if record.enrolled() {
            return Err(Refusal::AlreadyEnrolled {
                mailbox: mb.to_string(),
            }
            .into());
        }
        let Some(pending) = record.pending.clone() else {
            return Err(Refusal::NoEnrolmentInProgress {
                mailbox: mb.to_string(),
            }
            .into());
        };
        let g = pending.generator().map_err(|error| AdminError::UnusablePendingSecret {
            mailbox: mb.to_string(),
            error,
        })?;
        let mut state = lock.state().clone();
        // No replay check and no failure counting: the secret is not in
        // force yet, so a wrong code here guards nothing.
        match g.check(&totp::clean_code(code), now, self.cfg.totp.window, None) {
            CodeCheck::Fresh { step } | CodeCheck::Replayed { step } => {
                record.totp = Some(pending);
                record.pending = None;
                state.last_step = Some(state.last_step.map_or(step, |s| s.max(step)));
                lockout::reset(&mut state);
                lock.write(&record, &state)?;
                self.audit(&format!("enroll confirm: mailbox={mb} result=enabled"));
                Ok(())
            }
            CodeCheck::Wrong => Err(Refusal::WrongEnrolmentCode {
                mailbox: mb.to_string(),
                seconds_left: g.seconds_left(now),
            }
            .into()),
        }
    }

    /// Turns MFA off: with the user's current code (proof of possession), or
    /// `force` by an admin (logged). Refused in a `required` domain unless forced.
    pub fn disable(&self, mb: &Mailbox, code: Option<&str>, force: bool, now: u64) -> Result<()> {
        let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
        if policy.policy == Policy::Required && !force {
            return Err(Refusal::RequiredByPolicy {
                domain: mb.domain().to_string(),
            }
            .into());
        }
        let mut lock = match self.locked(mb) {
            Ok(l) => l,
            // Nothing of a damaged mailbox can be kept or checked: forced,
            // it is forgotten, so that it can enrol again.
            Err(AdminError::Store(e)) if force && e.is_damaged_mailbox() => {
                let forgotten = self.store.forget(mb)?;
                self.audit(&format!(
                    "disable: mailbox={mb} force=true forgotten={forgotten} reason=\"its stored data could not be read\""
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut record = lock.record().cloned().unwrap_or_default();
        let mut state = lock.state().clone();
        if !force {
            self.prove_possession(&mut lock, mb, code.unwrap_or_default(), &record, &state, now)?;
        }
        let was = record.enrolled() || record.pending.is_some();
        record.totp = None;
        record.pending = None;
        record.recovery = None;
        lockout::reset(&mut state);
        state.recovery_set = None;
        state.recovery_used.clear();
        lock.write(&record, &state)?;
        self.audit(&format!("disable: mailbox={mb} force={force} was_enabled={was}"));
        Ok(())
    }

    /// The code that proves the user holds the phone, checked by the same
    /// decision as a login's code (lock-out, window, replay, a wrong code
    /// counted once per step), so switching MFA off is no easier a target
    /// for guessing than logging in. A refusal's new state is written.
    fn prove_possession(
        &self,
        lock: &mut AnyLock<'_>,
        mb: &Mailbox,
        code: &str,
        record: &MailboxRecord,
        state: &MailboxState,
        now: u64,
    ) -> Result<()> {
        let Some(seed) = record.totp.as_ref() else {
            return Err(Refusal::NotEnrolled {
                mailbox: mb.to_string(),
            }
            .into());
        };
        let req = Request {
            mailbox: mb.as_str(),
            service: "mfa-ctl",
            rhost: None,
            now,
        };
        let factor = Factor::Totp(totp::clean_code(code));
        let decision = decide::decide_code(&req, Some(&factor), record, state, &self.cfg);
        let refusal = match decision.outcome {
            Outcome::Accepted(_) => return Ok(()),
            Outcome::Refused(r) => r,
        };
        if let Some(next) = &decision.state {
            lock.write_state(next, Durability::Synced)?;
        }
        let mailbox = mb.to_string();
        Err(match refusal {
            decide::Refusal::Replayed { .. } => Refusal::CodeReplayed.into(),
            decide::Refusal::WrongCode { .. } | decide::Refusal::CodeMissing => Refusal::WrongCode {
                mailbox,
                seconds_left: seed.generator().map_or(0, |g| g.seconds_left(now)),
            }
            .into(),
            decide::Refusal::Locked(lock) => Refusal::Locked { mailbox, lock }.into(),
            decide::Refusal::BadSeed(error) => AdminError::UnusableSecret { mailbox, error },
            decide::Refusal::EnrolmentRequired => Refusal::NotEnrolled { mailbox }.into(),
        })
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
            Requirement::Code => (LoginNeeds::Code, None),
            Requirement::PasswordOnly(NoCodeReason::Grace { ends }) => (LoginNeeds::PasswordOnly, Some(ends)),
            Requirement::PasswordOnly(_) => (LoginNeeds::PasswordOnly, None),
            Requirement::EnrolmentRequired => (LoginNeeds::EnrolmentRequired, None),
        };
        let (lock, locked_until) = match enrolled.then(|| lockout::lock(state, &self.cfg.lockout, now)).flatten() {
            None => (LockState::None, None),
            Some(Lock::Backoff { until }) => (LockState::Backoff, Some(until)),
            Some(Lock::Blocked) => (LockState::Blocked, None),
        };
        let recovery_codes_left = record.recovery.as_ref().map_or(0, |set| {
            set.hashes.len().saturating_sub(state.recovery_used_of(&set.id).len())
        });
        Status {
            mailbox: mb.to_string(),
            state: if enrolled {
                MfaState::Enabled
            } else if record.pending.is_some() {
                MfaState::Pending
            } else {
                MfaState::Disabled
            },
            policy,
            login_needs,
            grace_ends,
            failures: state.failures,
            lock,
            locked_until,
            recovery_codes_left,
            app_passwords: record.app_passwords.len(),
            last_login: state.logins.last().map(LoginView::from),
        }
    }

    /// Status of every mailbox the store knows, in one domain or all.
    pub fn list(&self, domain: Option<&str>, now: u64) -> Result<Vec<Status>> {
        let domain = domain.map(Self::domain).transpose()?;
        let mut out = Vec::new();
        self.each_mailbox(domain.as_deref(), |mb| {
            let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
            let MailboxFile { record, state } = self.store.read_mailbox(&mb)?.unwrap_or_default();
            // A file with no record holds only the history of a mailbox
            // whose MFA was turned off: not listed, as before it was set up.
            if !record.is_empty() {
                out.push(self.status_of(&mb, policy, &record, &state, now));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` on every mailbox the store knows, in one domain or all,
    /// sorted, a page at a time (a domain may hold a million).
    pub fn each_mailbox(&self, domain: Option<&str>, mut f: impl FnMut(Mailbox) -> Result<()>) -> Result<()> {
        const PAGE: usize = 1000;
        let domains = match domain {
            Some(d) => vec![d.to_string()],
            None => self.store.mailbox_domains()?,
        };
        for d in domains {
            let mut after: Option<Mailbox> = None;
            loop {
                let page = self.store.list_page(&d, after.as_ref(), PAGE)?;
                let full = page.len() == PAGE;
                after = page.last().cloned();
                for mb in page {
                    f(mb)?;
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }

    // ---- recovery codes ----

    /// A new set of recovery codes, replacing any old set; shown once.
    pub fn recovery_codes(&self, mb: &Mailbox, now: u64) -> Result<Vec<SecretString>> {
        let mut lock = self.locked(mb)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        if !record.enrolled() {
            return Err(Refusal::NotEnrolled {
                mailbox: mb.to_string(),
            }
            .into());
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
        if label.is_empty() || label.len() > 64 || crate::text::has_controls(label) {
            return Err(Invalid::Label.into());
        }
        let mut svcs = Vec::new();
        for s in services {
            let s = s.to_ascii_lowercase();
            if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(Invalid::Service { service: s }.into());
            }
            if !svcs.contains(&s) {
                svcs.push(s);
            }
        }
        let mut nets = Vec::new();
        for n in from {
            nets.push(Cidr::parse(n).map_err(Invalid::Network)?.to_string());
        }
        let mut lock = self.locked(mb)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        if record.app_passwords.iter().any(|a| a.label == label) {
            return Err(Refusal::DuplicateLabel {
                mailbox: mb.to_string(),
                label: label.to_string(),
            }
            .into());
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
        let mut lock = self.locked(mb)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        let before = record.app_passwords.len();
        record.app_passwords.retain(|a| a.label != label);
        if record.app_passwords.len() == before {
            return Err(Refusal::NoSuchAppPassword {
                mailbox: mb.to_string(),
                label: label.to_string(),
            }
            .into());
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
        let mut lock = self.locked(mb)?;
        let mut state = lock.state().clone();
        let was = lockout::lock(&state, &self.cfg.lockout, now).is_some() || state.failures > 0;
        lockout::reset(&mut state);
        lock.write_state(&state, Durability::Synced)?;
        self.audit(&format!("unlock: mailbox={mb} was_locked={was}"));
        Ok(was)
    }

    /// Sets up the store ([`Store::init`]) for `mfa-ctl store init`: in
    /// `dir` instead of the configured folder when given (staging for a
    /// package or `make install`). Returns the store folder and what was created.
    pub fn store_init(&self, dir: Option<&Path>, existing: ExistingFolder) -> Result<(String, Vec<String>)> {
        let store = match dir {
            None => None,
            Some(d) => {
                let root = std::path::absolute(d).map_err(|e| Invalid::Folder {
                    dir: d.to_path_buf(),
                    error: e.to_string(),
                })?;
                // Already resolved once by Admin::open, which refuses an unknown name.
                let owner = self.cfg.store_owner.as_deref().and_then(crate::ffi::sys::uid_of);
                if self.store.files().is_none() {
                    return Err(Invalid::FolderForDatabase { dir: d.to_path_buf() }.into());
                }
                Some(AnyStore::Files(Store::new(
                    &Config {
                        store: root,
                        ..self.cfg.clone()
                    },
                    owner,
                )))
            }
        };
        let store = store.as_ref().unwrap_or(&self.store);
        let created = store.init(existing)?;
        self.audit(&format!(
            "store init: store={} created={}",
            crate::text::escape_controls(&store.describe()),
            created.len()
        ));
        Ok((store.describe(), created))
    }
}

/// What `mfa-ctl store copy` did (or, with a dry run, would do).
#[derive(Debug, Default, Clone, Serialize)]
pub struct CopySummary {
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    pub domains_copied: usize,
    pub domains_unchanged: usize,
    pub mailboxes_copied: usize,
    pub mailboxes_unchanged: usize,
    /// Mailboxes the target already holds with other content: left alone
    /// unless `replace`, since that content may be newer than the source's.
    pub mailboxes_differing: Vec<String>,
}

/// How far a copy has got, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct CopyProgress {
    pub mailboxes_done: usize,
}

impl Admin {
    /// Copies every domain policy and mailbox (secrets, state, app passwords,
    /// recovery codes, last logins) from the store `from` names into this
    /// one, files to a database or back. Idempotent: what the target already
    /// holds unchanged is not written again. Each mailbox is copied under the
    /// target's lock as one write, so a copy stopped half way leaves every
    /// copied mailbox complete and the rest as they were.
    pub fn store_copy(
        &self,
        from: &Path,
        dry_run: bool,
        replace: bool,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<CopySummary> {
        let source_admin = Admin::open(Some(from))?;
        let source = &source_admin.store;
        source.check_ready()?;
        self.store.check_ready()?;
        let mut summary = CopySummary {
            from: source.describe(),
            to: self.store.describe(),
            dry_run,
            ..CopySummary::default()
        };
        for (domain, policy) in source.list_domains()? {
            if self.store.read_domain(&domain)?.as_ref() == Some(&policy) {
                summary.domains_unchanged += 1;
                continue;
            }
            if !dry_run {
                self.store.write_domain(&domain, &policy)?;
            }
            summary.domains_copied += 1;
        }
        let mut done = 0;
        source_admin.each_mailbox(None, |mb| {
            done += 1;
            progress(CopyProgress { mailboxes_done: done });
            let Some(file) = source.read_mailbox(&mb)? else {
                return Ok(());
            };
            if file.is_empty() {
                return Ok(());
            }
            // Compared under the target's lock when writing, so nothing
            // changed in between is overwritten unseen.
            let mut lock = if dry_run { None } else { Some(self.locked(&mb)?) };
            let current = match &lock {
                Some(l) => MailboxFile {
                    record: l.record().cloned().unwrap_or_default(),
                    state: l.state().clone(),
                },
                None => self.store.read_mailbox(&mb)?.unwrap_or_default(),
            };
            if current == file {
                summary.mailboxes_unchanged += 1;
                return Ok(());
            }
            if !current.is_empty() && !replace {
                summary.mailboxes_differing.push(mb.to_string());
                return Ok(());
            }
            if let Some(lock) = lock.as_mut() {
                lock.write(&file.record, &file.state)?;
            }
            summary.mailboxes_copied += 1;
            Ok(())
        })?;
        if !dry_run {
            self.audit(&format!(
                "store copy: from={} mailboxes_copied={} domains_copied={}",
                crate::text::escape_controls(&summary.from),
                summary.mailboxes_copied,
                summary.domains_copied
            ));
        }
        Ok(summary)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialise_as_their_names() {
        let all = [
            (serde_json::to_value(MfaState::Enabled), MfaState::Enabled.as_str()),
            (serde_json::to_value(MfaState::Pending), MfaState::Pending.as_str()),
            (serde_json::to_value(MfaState::Disabled), MfaState::Disabled.as_str()),
            (serde_json::to_value(LoginNeeds::Code), LoginNeeds::Code.as_str()),
            (
                serde_json::to_value(LoginNeeds::PasswordOnly),
                LoginNeeds::PasswordOnly.as_str(),
            ),
            (
                serde_json::to_value(LoginNeeds::EnrolmentRequired),
                LoginNeeds::EnrolmentRequired.as_str(),
            ),
            (serde_json::to_value(LockState::None), LockState::None.as_str()),
            (serde_json::to_value(LockState::Backoff), LockState::Backoff.as_str()),
            (serde_json::to_value(LockState::Blocked), LockState::Blocked.as_str()),
        ];
        for (json, name) in all {
            assert_eq!(json.ok(), Some(serde_json::Value::from(name)));
        }
    }

    #[test]
    fn a_domain_without_a_policy_of_its_own_has_no_since() {
        let v = DomainView {
            domain: "example.org".into(),
            policy: DomainPolicy::default_for(Policy::Optional),
            explicit: false,
        };
        assert_eq!(
            serde_json::to_string(&v).ok().as_deref(),
            Some(
                r#"{"domain":"example.org","policy":"optional","explicit":false,"grace":null,"grace_seconds":null,"grace_ends":null,"since":null}"#
            )
        );
    }
}
