//! What `mfa-ctl` does, as library calls: enrolment, disabling, domain
//! policy, recovery codes, app passwords, last logins, unlock. The CLI only
//! parses arguments and prints; every rule lives here or below, shared with
//! the module. Each mailbox change is a read-modify-write under the
//! mailbox lock, so it never loses an update made by a login meanwhile.
//! Errors say what happened, not which flag to use: that wording is the CLI's.

use crate::app_password::{self, AppPassword};
use crate::config::{self, Config};
use crate::decide::{self, Outcome, Request};
pub use crate::import_file::FileProblem;
use crate::lockout::{self, Lock};
use crate::log::{Level, Logger};
use crate::mailbox::{Mailbox, MailboxError};
use crate::net::Cidr;
use crate::policy::{self, DomainPolicy, NoCodeReason, Policy, Requirement};
use crate::recovery;
use crate::secret::{RandomError, SecretString};
use crate::sms::{self, Purpose, SmsRecord};
use crate::split::Factor;
use crate::store::any::{AnyLock, AnyStore};
use crate::store::backend::{Backend, MailboxLock};
use crate::store::records::{Login, MailboxFile, MailboxRecord, MailboxState, Method};
use crate::store::{Durability, ExistingFolder, OnMissing, Store, StoreError};
use crate::totp::{self, CodeCheck, SeedError, TotpSeed};
use crate::webmail;
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
    /// Codes by text message are asked for, but the configuration has no
    /// `[sms]` section.
    SmsNotConfigured,
    /// The text with a code was not sent (the send still counts toward the
    /// limits: a gateway may have charged for it).
    NotSent(crate::deliver::DeliveryError),
    /// A file or folder to import from cannot be read.
    ImportRead {
        path: PathBuf,
        error: String,
    },
    /// A bulk import stopped on `error` after `done` entries: each mailbox
    /// imported is complete, the rest untouched.
    ImportStopped {
        done: usize,
        error: Box<AdminError>,
    },
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
    /// The mailbox has no confirmed number for codes by text message.
    NoSmsNumber {
        mailbox: String,
    },
    /// No number is waiting for its confirmation code.
    NoSmsPending {
        mailbox: String,
    },
    /// The number given is the one already confirmed.
    SmsNumberAlreadyConfirmed {
        mailbox: String,
        number: String,
    },
    /// A text was sent less than `resend_after` ago: none before `until`.
    SmsResendTooSoon {
        mailbox: String,
        until: u64,
        wait: u64,
    },
    /// `max_per_hour` texts were sent in the last hour: none before `until`.
    SmsHourlyCap {
        mailbox: String,
        until: u64,
        wait: u64,
    },
    /// The code sent by text message is not the one given.
    WrongSmsCode {
        mailbox: String,
        tries_left: Option<u32>,
    },
    /// The code sent by text message is older than `code_lifetime`.
    SmsCodeExpired {
        mailbox: String,
    },
    /// Too many wrong codes for the number waiting for confirmation.
    SmsConfirmTriesUsedUp {
        mailbox: String,
    },
    /// The mailbox has MFA on: changing its factors needs a current code
    /// (or an admin's override).
    ProofNeeded {
        mailbox: String,
    },
    /// Removing the number would leave a mailbox of a `required` domain
    /// without MFA.
    SmsLastFactor {
        mailbox: String,
        domain: String,
    },
    /// A file, or the token in it, cannot be imported as it is (`kind`: a
    /// stable name for scripts). `mailbox` is empty for a list or users file.
    ImportRefused {
        mailbox: String,
        source: String,
        kind: &'static str,
        reason: String,
    },
    /// The mailbox has MFA with another secret (or, `codes_only`, this
    /// secret with other recovery codes): an import would replace it.
    ImportWouldReplace {
        mailbox: String,
        codes_only: bool,
    },
    /// The mailbox had MFA that was switched off since.
    ImportAfterDisable {
        mailbox: String,
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
    /// A domain's webmail window over the longest allowed.
    WebmailWindowTooLong {
        secs: u64,
    },
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
    /// Not a phone number in E.164 form.
    PhoneNumber(sms::NumberError),
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
            AdminError::SmsNotConfigured => f.write_str(
                "codes by text message are not configured: the configuration has no [sms] section with the \
                 delivery command (see pam_mfa.toml(5))",
            ),
            AdminError::NotSent(e) => write!(f, "the code was not sent: {e}"),
            AdminError::ImportRead { path, error } => write!(f, "{}: {error}", path.display()),
            AdminError::ImportStopped { done, error } => write!(
                f,
                "{error}; the import stopped after {done} entries: every mailbox imported so far is complete and \
                 the rest untouched, so the same command run again finishes it"
            ),
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
            Refusal::NoSmsNumber { mailbox } => {
                write!(f, "{mailbox} has no confirmed number for codes by text message")
            }
            Refusal::NoSmsPending { mailbox } => {
                write!(f, "{mailbox} has no number waiting for its confirmation code")
            }
            Refusal::SmsNumberAlreadyConfirmed { mailbox, number } => {
                write!(f, "{} is already the confirmed number of {mailbox}", sms::mask(number))
            }
            Refusal::SmsResendTooSoon { mailbox, wait, .. } => write!(
                f,
                "a code was sent to {mailbox} moments ago; no new text for {wait} s (sms.resend_after)"
            ),
            Refusal::SmsHourlyCap { mailbox, wait, .. } => write!(
                f,
                "{mailbox} has had as many texts this hour as sms.max_per_hour allows; the next one in {wait} s"
            ),
            Refusal::WrongSmsCode {
                mailbox,
                tries_left: Some(n),
            } => write!(
                f,
                "that is not the code sent to {mailbox}; {n} more {} before it is void",
                if *n == 1 { "try" } else { "tries" }
            ),
            Refusal::WrongSmsCode {
                mailbox,
                tries_left: None,
            } => write!(
                f,
                "that is not the code sent to {mailbox} (and was counted as a failed code)"
            ),
            Refusal::SmsCodeExpired { mailbox } => {
                write!(f, "the code sent to {mailbox} has expired (sms.code_lifetime)")
            }
            Refusal::SmsConfirmTriesUsedUp { mailbox } => write!(
                f,
                "the code sent to confirm the number of {mailbox} was mistyped too often and is void"
            ),
            Refusal::ProofNeeded { mailbox } => write!(
                f,
                "{mailbox} has MFA on: changing its number needs a current code, from the app or texted to the \
                 number it has, or an admin's override"
            ),
            Refusal::SmsLastFactor { mailbox, domain } => write!(
                f,
                "the number is the only second factor of {mailbox}, and the domain {domain} requires MFA: \
                 without it no login of {mailbox} works"
            ),
            Refusal::ImportRefused {
                mailbox,
                source,
                reason,
                ..
            } => {
                if mailbox.is_empty() {
                    write!(f, "{source}: {reason}")
                } else {
                    write!(f, "{source}: not imported for {mailbox}: {reason}")
                }
            }
            Refusal::ImportWouldReplace {
                mailbox,
                codes_only: false,
            } => write!(
                f,
                "{mailbox} already has MFA with another secret; importing would replace it (and the entry its \
                 user's app has now would stop working)"
            ),
            Refusal::ImportWouldReplace {
                mailbox,
                codes_only: true,
            } => write!(
                f,
                "{mailbox} has this secret already, with other recovery codes (made since the last import, or \
                 scratch codes that have changed); importing would replace them"
            ),
            Refusal::ImportAfterDisable { mailbox } => write!(
                f,
                "{mailbox} had MFA, and it was switched off since (mfa-ctl disable: a lost or stolen phone?); \
                 the file may hold the secret given up. Ask the user to enrol, or import with --replace if this \
                 secret is the one to use"
            ),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Mailbox { name, error } => write!(f, "'{name}' is not a mailbox name: {error}"),
            Invalid::Domain { name, error } => write!(f, "'{name}' is not a domain name: {error}"),
            Invalid::GraceWithoutRequired => f.write_str("a grace period only applies to the required policy"),
            Invalid::WebmailWindowTooLong { secs } => write!(
                f,
                "--webmail-window {}: at most {} (0 switches webmail sessions off for the domain, default follows the configuration)",
                crate::duration::format(*secs),
                crate::duration::format(crate::config::MAX_WEBMAIL_WINDOW)
            ),
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
            Invalid::PhoneNumber(e) => write!(f, "{e}"),
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
/// An open webmail session as `mfa-ctl sessions` shows it (never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionView {
    pub started: u64,
    pub last_use: u64,
    pub expires: u64,
    pub client: String,
    pub service: String,
    pub uses: u32,
}

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
        let mut out = s.serialize_struct("DomainView", 8)?;
        out.serialize_field("domain", &self.domain)?;
        out.serialize_field("policy", &p.policy)?;
        out.serialize_field("explicit", &self.explicit)?;
        out.serialize_field("grace", &p.grace.map(crate::duration::format))?;
        out.serialize_field("grace_seconds", &p.grace)?;
        out.serialize_field("grace_ends", &p.grace_ends())?;
        // Null: the configuration's webmail.reuse_window applies.
        out.serialize_field("webmail_window_seconds", &p.webmail_window)?;
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
    /// The authenticator app is set up.
    pub app: bool,
    /// The secret in force is shorter than 128 bits (carried over from an
    /// old setup): the user should enrol again. `mfa-ctl list --weak`.
    pub weak: bool,
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
    /// The confirmed number for codes by text message, masked
    /// (`+49 *** *** 4567`).
    pub sms: Option<String>,
    /// A number waiting for its confirmation code, masked.
    pub sms_pending: Option<String>,
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
    /// How many logins the line stands for (webmail reuses are folded; `at`
    /// is the last).
    pub count: u32,
}

impl From<&Login> for LoginView {
    fn from(l: &Login) -> Self {
        LoginView {
            at: l.at,
            service: l.service.clone(),
            ip: Some(l.rhost.clone()).filter(|r| !r.is_empty()),
            method: l.method,
            result: l.result.as_str().to_string(),
            count: l.count.max(1),
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

/// What proves the user may change a mailbox's factors, where MFA is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof<'a> {
    None,
    /// A current code: the app's, or one texted to the confirmed number.
    Code(&'a str),
    /// An admin's override (logged).
    Force,
}

/// A code sent by text message, as shown to admins and panels (never the code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentView {
    pub mailbox: String,
    /// The number it went to, masked.
    pub to: String,
    pub purpose: Purpose,
    pub sent_at: u64,
    /// When it stops being accepted.
    pub expires: u64,
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

    /// Sets a domain's policy. `webmail_window`: `None` keeps the domain's
    /// own webmail window as it was, `Some(None)` goes back to the
    /// configuration's, `Some(Some(secs))` sets one (0: no webmail sessions).
    pub fn domain_set(
        &self,
        domain: &str,
        policy: Policy,
        grace: Option<u64>,
        webmail_window: Option<Option<u64>>,
        now: u64,
    ) -> Result<DomainView> {
        let domain = Self::domain(domain)?;
        if grace.is_some() && policy != Policy::Required {
            return Err(Invalid::GraceWithoutRequired.into());
        }
        if let Some(Some(w)) = webmail_window
            && w > crate::config::MAX_WEBMAIL_WINDOW
        {
            return Err(Invalid::WebmailWindowTooLong { secs: w }.into());
        }
        let webmail_window = match webmail_window {
            Some(w) => w,
            None => self.store.read_domain(&domain)?.and_then(|p| p.webmail_window),
        };
        let p = DomainPolicy {
            policy,
            grace,
            since: now,
            webmail_window,
        };
        self.store.write_domain(&domain, &p)?;
        let window = p
            .webmail_window
            .map_or_else(|| "default".to_string(), crate::duration::format);
        self.audit(&format!(
            "domain set: domain={domain} policy={policy} webmail_window={window}"
        ));
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
                // Sessions opened with an earlier seed's codes end; the key
                // stays, so their strings are still known as ended ones.
                self.end_sessions(mb, &mut state, now)?;
                webmail::ensure_key(&mut record)?;
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
            state = self.prove_possession(&mut lock, mb, code.unwrap_or_default(), &record, &state, now)?;
        }
        let was = record.mfa_on() || record.pending.is_some() || record.sms.is_some();
        record.totp = None;
        record.pending = None;
        record.recovery = None;
        record.sms = None;
        state.sms_code = None;
        lockout::reset(&mut state);
        state.recovery_set = None;
        state.recovery_used.clear();
        self.end_sessions(mb, &mut state, now)?;
        lock.write(&record, &state)?;
        self.audit(&format!("disable: mailbox={mb} force={force} was_enabled={was}"));
        Ok(())
    }

    /// The code that proves the user holds the phone (an app code, or one
    /// texted to the confirmed number), checked by the same decision as a
    /// login's code (lock-out, window, replay, a wrong code counted once per
    /// step), so switching MFA off or changing a factor is no easier a
    /// target for guessing than logging in. A refusal's new state is
    /// written; an acceptance's (the code used) is returned, for the caller
    /// to write with its change.
    fn prove_possession(
        &self,
        lock: &mut AnyLock<'_>,
        mb: &Mailbox,
        code: &str,
        record: &MailboxRecord,
        state: &MailboxState,
        now: u64,
    ) -> Result<MailboxState> {
        if !record.mfa_on() {
            return Err(Refusal::NotEnrolled {
                mailbox: mb.to_string(),
            }
            .into());
        }
        let req = Request {
            mailbox: mb.as_str(),
            service: "mfa-ctl",
            rhost: None,
            now,
            webmail_tag: None,
            new_sms_code: None,
        };
        let factor = Factor::Totp(totp::clean_code(code));
        let decision = decide::decide_code(&req, Some(&factor), record, state, &self.cfg);
        let refusal = match decision.outcome {
            Outcome::Accepted(_) => return Ok(decision.state.unwrap_or_else(|| state.clone())),
            Outcome::Refused(r) => r,
        };
        if let Some(next) = &decision.state {
            lock.write_state(next, Durability::Synced)?;
        }
        let mailbox = mb.to_string();
        let wrong = |mailbox: String| -> AdminError {
            match record.totp.as_ref().map(TotpSeed::generator) {
                Some(Ok(g)) => Refusal::WrongCode {
                    mailbox,
                    seconds_left: g.seconds_left(now),
                }
                .into(),
                _ => Refusal::WrongSmsCode {
                    mailbox,
                    tries_left: None,
                }
                .into(),
            }
        };
        Err(match refusal {
            decide::Refusal::Replayed { .. } | decide::Refusal::SmsReplayed | decide::Refusal::WebmailSessionEnded => {
                Refusal::CodeReplayed.into()
            }
            decide::Refusal::WrongCode { .. } | decide::Refusal::CodeMissing => wrong(mailbox),
            decide::Refusal::Locked(lock) => Refusal::Locked { mailbox, lock }.into(),
            decide::Refusal::BadSeed(error) => AdminError::UnusableSecret { mailbox, error },
            decide::Refusal::EnrolmentRequired => Refusal::NotEnrolled { mailbox }.into(),
            decide::Refusal::SmsExpired => Refusal::SmsCodeExpired { mailbox }.into(),
            decide::Refusal::SmsNotConfigured => AdminError::SmsNotConfigured,
            // A code was given, so none is sent: not reached.
            decide::Refusal::CodeSent { .. }
            | decide::Refusal::SmsNotSent { .. }
            | decide::Refusal::SmsResendTooSoon { .. }
            | decide::Refusal::SmsHourlyCap { .. } => wrong(mailbox),
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
        let enrolled = record.mfa_on();
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
            } else if record.pending.is_some() || record.sms.as_ref().is_some_and(|s| s.pending.is_some()) {
                MfaState::Pending
            } else {
                MfaState::Disabled
            },
            app: record.enrolled(),
            weak: record.totp.as_ref().is_some_and(TotpSeed::is_weak),
            policy,
            login_needs,
            grace_ends,
            failures: state.failures,
            lock,
            locked_until,
            recovery_codes_left,
            app_passwords: record.app_passwords.len(),
            sms: record.sms_number().map(|(_, n)| sms::mask(n)),
            sms_pending: record.sms.as_ref().and_then(|s| s.pending.as_deref()).map(sms::mask),
            last_login: state.logins.last().map(LoginView::from),
        }
    }

    /// Status of every mailbox the store knows, in one domain or all.
    /// All in memory: [`Admin::statuses`] for a listing as it goes.
    pub fn list(&self, domain: Option<&str>, now: u64) -> Result<Vec<Status>> {
        self.statuses(domain, now)?.collect()
    }

    /// Status of every mailbox the store knows, in one domain or all,
    /// sorted, read from the store as the caller takes them: memory for a
    /// page of names, not for the listing (a domain may hold a million).
    /// The caller stops at the first error: a listing with a hole is no listing.
    pub fn statuses(&self, domain: Option<&str>, now: u64) -> Result<impl Iterator<Item = Result<Status>> + '_> {
        let domain = domain.map(Self::domain).transpose()?;
        let mut policy = None;
        Ok(self
            .mailboxes(domain.as_deref())?
            .filter_map(move |mb| mb.and_then(|mb| self.listed_status(&mb, &mut policy, now)).transpose()))
    }

    /// The status of `mb` for a listing; `None` for a file with no record,
    /// which holds only the history of a mailbox whose MFA was turned off:
    /// not listed, as before it was set up. `policy` is the last domain's,
    /// read once per domain rather than once per mailbox.
    fn listed_status(
        &self,
        mb: &Mailbox,
        policy: &mut Option<(String, DomainPolicy)>,
        now: u64,
    ) -> Result<Option<Status>> {
        let p = match policy {
            Some((d, p)) if d == mb.domain() => p.clone(),
            _ => {
                let p = self.store.policy_for(mb.domain(), &self.cfg)?;
                *policy = Some((mb.domain().to_string(), p.clone()));
                p
            }
        };
        let MailboxFile { record, state } = self.store.read_mailbox(mb)?.unwrap_or_default();
        Ok((!record.is_empty()).then(|| self.status_of(mb, p, &record, &state, now)))
    }

    /// Every mailbox the store knows, in one domain or all, sorted, fetched
    /// a page at a time ([`Mailboxes`]).
    pub fn mailboxes(&self, domain: Option<&str>) -> Result<Mailboxes<'_>> {
        let domains = match domain {
            Some(d) => vec![d.to_string()],
            None => self.store.mailbox_domains()?,
        };
        Ok(Mailboxes {
            store: &self.store,
            domains: domains.into_iter(),
            domain: String::new(),
            after: None,
            more: false,
            page: Vec::new().into_iter(),
        })
    }

    /// Calls `f` on every mailbox the store knows, in one domain or all,
    /// sorted, a page at a time (a domain may hold a million).
    pub fn each_mailbox(&self, domain: Option<&str>, mut f: impl FnMut(Mailbox) -> Result<()>) -> Result<()> {
        for mb in self.mailboxes(domain)? {
            f(mb?)?;
        }
        Ok(())
    }

    // ---- recovery codes ----

    /// A new set of recovery codes, replacing any old set; shown once.
    pub fn recovery_codes(&self, mb: &Mailbox, now: u64) -> Result<Vec<SecretString>> {
        let mut lock = self.locked(mb)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        if !record.mfa_on() {
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
            if !crate::text::is_service_name(&s) {
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

    // ---- codes by text message ----

    fn sms_config(&self) -> Result<&crate::config::SmsConfig> {
        self.cfg.sms.as_ref().ok_or(AdminError::SmsNotConfigured)
    }

    /// `mfa-ctl sms add`: sends a code to `number` and leaves it pending
    /// until [`Self::sms_confirm`], so a mistyped number never locks anyone
    /// out; a number already confirmed stays in force meanwhile. Sends are
    /// held to the same limits as a login's, so a panel that offers this to
    /// its users cannot be used to text arbitrary numbers at will. A
    /// mailbox that has MFA on (the app, or a number) gets a number only
    /// with a current code or `Force` (an admin, logged): otherwise whoever
    /// has the password and the panel could add their own phone.
    pub fn sms_add(&self, mb: &Mailbox, number: &str, proof: Proof<'_>, now: u64) -> Result<SentView> {
        let number = sms::parse_number(number).map_err(Invalid::PhoneNumber)?;
        let sms_cfg = self.sms_config()?;
        self.check_enrolment_allowed(mb)?;
        let code = {
            let mut lock = self.locked(mb)?;
            let mut record = lock.record().cloned().unwrap_or_default();
            let mut state = lock.state().clone();
            if record.sms_number().is_some_and(|(_, n)| n == number) {
                return Err(Refusal::SmsNumberAlreadyConfirmed {
                    mailbox: mb.to_string(),
                    number,
                }
                .into());
            }
            if record.mfa_on() {
                state = self.prove(&mut lock, mb, proof, &record, &state, now)?;
            }
            sms::may_send(&state, sms_cfg, now).map_err(|l| Self::limit_refusal(mb, l, now))?;
            let mfa_was_on = record.mfa_on();
            let mut rec = match record.sms.take() {
                Some(r) => r,
                None => SmsRecord::new()?,
            };
            rec.pending = Some(number.clone());
            let code = sms::new_code(sms::DIGITS)?;
            sms::record_send(&mut state, &rec, mb.as_str(), &number, Purpose::Confirm, &code, now);
            record.sms = Some(rec);
            // Stored before it is sent: the limits hold even if this process
            // dies in between.
            lock.write(&record, &state)?;
            if proof == Proof::Force && mfa_was_on {
                self.audit(&format!("sms add: mailbox={mb} force=true"));
            }
            code
        };
        self.send_text(mb, &number, &code, Purpose::Confirm, now)
    }

    /// What [`Proof`] asks for, on a mailbox that has MFA on: the state
    /// after the code was used, or a refusal.
    fn prove(
        &self,
        lock: &mut AnyLock<'_>,
        mb: &Mailbox,
        proof: Proof<'_>,
        record: &MailboxRecord,
        state: &MailboxState,
        now: u64,
    ) -> Result<MailboxState> {
        match proof {
            Proof::Code(code) => self.prove_possession(lock, mb, code, record, state, now),
            Proof::Force => Ok(state.clone()),
            Proof::None => Err(Refusal::ProofNeeded {
                mailbox: mb.to_string(),
            }
            .into()),
        }
    }

    /// `mfa-ctl sms confirm`: the code sent by [`Self::sms_add`] turns the
    /// pending number on. A wrong code counts; after
    /// [`sms::MAX_CONFIRM_TRIES`] the code is void.
    pub fn sms_confirm(&self, mb: &Mailbox, code: &str, now: u64) -> Result<String> {
        let sms_cfg = self.sms_config()?;
        // Checked again here: the policy may have changed since the code was sent.
        self.check_enrolment_allowed(mb)?;
        let no_pending = || -> AdminError {
            Refusal::NoSmsPending {
                mailbox: mb.to_string(),
            }
            .into()
        };
        let mut lock = self.store.lock(mb, OnMissing::Skip)?.ok_or_else(no_pending)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        let mut state = lock.state().clone();
        let Some(mut rec) = record.sms.clone() else {
            return Err(no_pending());
        };
        let Some(number) = rec.pending.clone() else {
            return Err(no_pending());
        };
        // A login code sent since replaced it: a new one needs `sms add`.
        let Some(sent) = state.sms_code.clone().filter(|s| s.purpose == Purpose::Confirm) else {
            return Err(no_pending());
        };
        if sent.tries >= sms::MAX_CONFIRM_TRIES {
            return Err(Refusal::SmsConfirmTriesUsedUp {
                mailbox: mb.to_string(),
            }
            .into());
        }
        let typed = totp::clean_code(code);
        match sms::check(
            &rec,
            &sent,
            mb.as_str(),
            &number,
            Purpose::Confirm,
            &typed,
            sms_cfg.code_lifetime,
            now,
        ) {
            sms::Check::Fresh => {
                rec.number = Some(number.clone());
                rec.pending = None;
                record.sms = Some(rec);
                webmail::ensure_key(&mut record)?;
                state.sms_code = None;
                lock.write(&record, &state)?;
                self.audit(&format!(
                    "sms confirm: mailbox={mb} number={} result=enabled",
                    sms::mask(&number)
                ));
                Ok(sms::mask(&number))
            }
            sms::Check::Expired => Err(Refusal::SmsCodeExpired {
                mailbox: mb.to_string(),
            }
            .into()),
            sms::Check::Used => Err(no_pending()),
            sms::Check::NoMatch => {
                let tries = sent.tries.saturating_add(1);
                if let Some(s) = state.sms_code.as_mut() {
                    s.tries = tries;
                }
                lock.write_state(&state, Durability::Synced)?;
                let left = sms::MAX_CONFIRM_TRIES.saturating_sub(tries);
                Err(if left == 0 {
                    Refusal::SmsConfirmTriesUsedUp {
                        mailbox: mb.to_string(),
                    }
                } else {
                    Refusal::WrongSmsCode {
                        mailbox: mb.to_string(),
                        tries_left: Some(left),
                    }
                }
                .into())
            }
        }
    }

    /// `mfa-ctl sms remove`: forgets the number (confirmed or pending) and
    /// any code sent; the send times stay, so removing and adding a number
    /// again does not reset the limits. A confirmed number that is the
    /// mailbox's only factor is removed only with a current code or
    /// `Force`, as `disable` asks (it turns MFA off), and in a `required`
    /// domain only with `Force`. Returns the number removed, masked.
    pub fn sms_remove(&self, mb: &Mailbox, proof: Proof<'_>, now: u64) -> Result<String> {
        let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
        let none = || -> AdminError {
            Refusal::NoSmsNumber {
                mailbox: mb.to_string(),
            }
            .into()
        };
        let mut lock = self.store.lock(mb, OnMissing::Skip)?.ok_or_else(none)?;
        let mut record = lock.record().cloned().unwrap_or_default();
        let mut state = lock.state().clone();
        let Some(rec) = record.sms.clone() else {
            return Err(none());
        };
        let force = proof == Proof::Force;
        let only_factor = rec.number.is_some() && !record.enrolled();
        if only_factor && !force && policy.policy == Policy::Required {
            return Err(Refusal::SmsLastFactor {
                mailbox: mb.to_string(),
                domain: mb.domain().to_string(),
            }
            .into());
        }
        if only_factor {
            state = self.prove(&mut lock, mb, proof, &record, &state, now)?;
        }
        record.sms = None;
        state.sms_code = None;
        lock.write(&record, &state)?;
        let removed = rec
            .number
            .as_deref()
            .or(rec.pending.as_deref())
            .map(sms::mask)
            .unwrap_or_default();
        self.audit(&format!("sms remove: mailbox={mb} number={removed} force={force}"));
        Ok(removed)
    }

    /// `mfa-ctl send-code`: texts the mailbox a login code now (what a
    /// hosting panel calls when its user clicks "text me a code"; the panel
    /// must have checked who asks). The same limits, lock-out and
    /// replacement of the older code as a login without a code.
    pub fn send_code(&self, mb: &Mailbox, now: u64) -> Result<SentView> {
        let sms_cfg = self.sms_config()?;
        if self.store.policy_for(mb.domain(), &self.cfg)?.policy == Policy::Disabled {
            return Err(Refusal::DomainDisabled {
                domain: mb.domain().to_string(),
            }
            .into());
        }
        let no_number = || -> AdminError {
            Refusal::NoSmsNumber {
                mailbox: mb.to_string(),
            }
            .into()
        };
        let (number, code) = {
            let mut lock = self.store.lock(mb, OnMissing::Skip)?.ok_or_else(no_number)?;
            let record = lock.record().cloned().unwrap_or_default();
            let Some((rec, number)) = record.sms_number() else {
                return Err(no_number());
            };
            let mut state = lock.state().clone();
            if let Some(l) = lockout::lock(&state, &self.cfg.lockout, now) {
                return Err(Refusal::Locked {
                    mailbox: mb.to_string(),
                    lock: l,
                }
                .into());
            }
            sms::may_send(&state, sms_cfg, now).map_err(|l| Self::limit_refusal(mb, l, now))?;
            let code = sms::new_code(record.code_digits())?;
            sms::record_send(&mut state, rec, mb.as_str(), number, Purpose::Login, &code, now);
            lock.write_state(&state, Durability::Synced)?;
            (number.to_string(), code)
        };
        self.send_text(mb, &number, &code, Purpose::Login, now)
    }

    /// The refusal for a text the limits do not allow now.
    fn limit_refusal(mb: &Mailbox, limit: sms::Limit, now: u64) -> AdminError {
        let mailbox = mb.to_string();
        match limit {
            sms::Limit::ResendTooSoon { until } => Refusal::SmsResendTooSoon {
                mailbox,
                until,
                wait: until.saturating_sub(now),
            },
            sms::Limit::HourlyCap { until } => Refusal::SmsHourlyCap {
                mailbox,
                until,
                wait: until.saturating_sub(now),
            },
        }
        .into()
    }

    /// Runs the delivery command for a code whose send is already stored.
    fn send_text(&self, mb: &Mailbox, number: &str, code: &str, purpose: Purpose, now: u64) -> Result<SentView> {
        let sms_cfg = self.sms_config()?;
        let message = sms::message(sms_cfg, &self.cfg.issuer, code);
        let delivery = crate::deliver::Delivery {
            mailbox: mb.as_str(),
            to: number,
            code,
            message: &message,
            purpose,
        };
        let masked = sms::mask(number);
        match crate::deliver::deliver(sms_cfg, &delivery, crate::ffi::sys::effective_uid()) {
            Ok(()) => {
                self.audit(&format!(
                    "sms send: mailbox={mb} to={masked} purpose={} result=sent",
                    purpose.as_str()
                ));
                Ok(SentView {
                    mailbox: mb.to_string(),
                    to: masked,
                    purpose,
                    sent_at: now,
                    expires: now.saturating_add(sms_cfg.code_lifetime),
                })
            }
            Err(e) => {
                self.audit(&format!(
                    "sms send: mailbox={mb} to={masked} purpose={} result=not_sent: {e}",
                    purpose.as_str()
                ));
                Err(AdminError::NotSent(e))
            }
        }
    }

    // ---- logins and lock-out ----

    /// The most recent logins, newest first.
    pub fn logins(&self, mb: &Mailbox, limit: usize) -> Result<Vec<Login>> {
        let state = self.store.read_mailbox(mb)?.unwrap_or_default().state;
        Ok(state.logins.into_iter().rev().take(limit).collect())
    }

    /// The mailbox's open webmail sessions, oldest first.
    pub fn sessions(&self, mb: &Mailbox, now: u64) -> Result<Vec<SessionView>> {
        let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
        let state = self.store.read_mailbox(mb)?.unwrap_or_default().state;
        let window = webmail::configured_window(&self.cfg, &policy);
        Ok(state
            .webmail_sessions
            .iter()
            .map(|s| SessionView {
                started: s.started,
                last_use: s.last_use,
                expires: webmail::ends(s, &self.cfg, window),
                client: s.rhost.clone(),
                service: s.service.clone(),
                uses: s.uses,
            })
            .filter(|v| now < v.expires)
            .collect())
    }

    /// Ends every webmail session of the mailbox: the next click in the
    /// webmail needs a new code. Returns how many were open.
    pub fn logout(&self, mb: &Mailbox, now: u64) -> Result<usize> {
        let Some(mut lock) = self.store.lock(mb, OnMissing::Skip)? else {
            return Ok(0);
        };
        let mut state = lock.state().clone();
        // Ended, not forgotten: the webmail's next clicks are refused as an
        // ended session, not counted as wrong codes against the owner.
        let open = self.end_sessions(mb, &mut state, now)?;
        if open > 0 {
            lock.write_state(&state, Durability::Synced)?;
        }
        self.audit(&format!("logout: mailbox={mb} webmail_sessions_ended={open}"));
        Ok(open)
    }

    /// Ends the mailbox's webmail sessions in `state` (kept as ended, see
    /// `webmail::is_ended`); returns how many were open.
    fn end_sessions(&self, mb: &Mailbox, state: &mut MailboxState, now: u64) -> Result<usize> {
        if state.webmail_sessions.is_empty() {
            return Ok(0);
        }
        let policy = self.store.policy_for(mb.domain(), &self.cfg)?;
        let window = webmail::configured_window(&self.cfg, &policy);
        Ok(webmail::end_all(state, &self.cfg, window, now))
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

/// How many mailbox names a listing asks the store for at a time: what it
/// holds in memory, whatever the size of the domain.
const MAILBOX_PAGE: usize = 1000;

/// The mailboxes of [`Admin::mailboxes`]: domain after domain, each read
/// from the store a page at a time. Ends after an error.
pub struct Mailboxes<'a> {
    store: &'a AnyStore,
    domains: std::vec::IntoIter<String>,
    /// The domain being read, the last name read in it, and whether the
    /// store may hold more of it (the last page was full).
    domain: String,
    after: Option<Mailbox>,
    more: bool,
    page: std::vec::IntoIter<Mailbox>,
}

impl Iterator for Mailboxes<'_> {
    type Item = Result<Mailbox>;

    fn next(&mut self) -> Option<Result<Mailbox>> {
        loop {
            if let Some(mb) = self.page.next() {
                return Some(Ok(mb));
            }
            if !self.more {
                self.domain = self.domains.next()?;
                self.after = None;
            }
            match self.store.list_page(&self.domain, self.after.as_ref(), MAILBOX_PAGE) {
                Ok(page) => {
                    self.more = page.len() == MAILBOX_PAGE;
                    self.after = page.last().cloned();
                    self.page = page.into_iter();
                }
                Err(e) => {
                    // Nothing after a failed page: the rest would look whole.
                    self.domains = Vec::new().into_iter();
                    self.more = false;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

// ---- import: google-authenticator and pam_oath ----

/// How an import runs: what it may overwrite and what it lets in.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Say what would happen; write nothing.
    pub dry_run: bool,
    /// Overwrite a mailbox that has MFA with another secret.
    pub replace: bool,
    /// Let in secrets of 80 to 127 bits ([`TotpSeed::is_weak`]).
    pub allow_short_secrets: bool,
}

named_enum! {
    /// What an import did to one mailbox (in a dry run: would do).
    pub enum ImportOutcome {
        Imported => "imported",
        /// It had MFA with another secret, and `replace` was asked for.
        Replaced => "replaced",
        /// It already holds this very token: nothing was written.
        Unchanged => "unchanged",
    }
}

/// One mailbox an import set up (never its secret or codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedMailbox {
    pub mailbox: String,
    /// The file, or `USERSFILE:LINE`.
    pub source: String,
    pub outcome: ImportOutcome,
    pub digits: u8,
    pub period: u64,
    pub secret_bits: usize,
    /// Shorter than 128 bits: imported with `allow_short_secrets`.
    pub weak: bool,
    /// Scratch codes carried over as recovery codes.
    pub recovery_codes: usize,
    pub notes: Vec<crate::import::Note>,
}

/// An entry of a bulk import that was not imported, and why. Reported,
/// not an error of the import: the others go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSkip {
    /// The file, `USERSFILE:LINE` or `LISTFILE:LINE`.
    pub source: String,
    pub mailbox: Option<String>,
    /// A stable name for scripts (`short_secret`, `hotp`, `owner`, ...).
    pub kind: &'static str,
    pub reason: String,
}

/// What a bulk import did (with `dry_run`: would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    /// `google-authenticator` or `oath`.
    pub format: &'static str,
    /// The folder, list file or users file read.
    pub source: String,
    pub dry_run: bool,
    pub imported: usize,
    pub replaced: usize,
    pub unchanged: usize,
    pub skipped: usize,
    /// Every mailbox imported, replaced or found unchanged.
    pub mailboxes: Vec<ImportedMailbox>,
    pub skipped_entries: Vec<ImportSkip>,
}

impl ImportSummary {
    fn new(format: &'static str, source: &Path, dry_run: bool) -> ImportSummary {
        ImportSummary {
            format,
            source: source.display().to_string(),
            dry_run,
            ..ImportSummary::default()
        }
    }

    fn skip(&mut self, source: String, mailbox: Option<&Mailbox>, kind: &'static str, reason: String) {
        self.skipped += 1;
        self.skipped_entries.push(ImportSkip {
            source,
            mailbox: mailbox.map(Mailbox::to_string),
            kind,
            reason,
        });
    }

    fn add(&mut self, done: ImportedMailbox) {
        match done.outcome {
            ImportOutcome::Imported => self.imported += 1,
            ImportOutcome::Replaced => self.replaced += 1,
            ImportOutcome::Unchanged => self.unchanged += 1,
        }
        self.mailboxes.push(done);
    }

    /// Entries looked at so far.
    fn done(&self) -> usize {
        self.mailboxes.len() + self.skipped
    }
}

/// How far a bulk import has got, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    pub done: usize,
    pub total: usize,
}

/// A folder, list or users file an import cannot use: unreadable is an I/O
/// error (exit 2), untrusted a refusal (exit 1).
fn source_problem(path: &Path, p: FileProblem) -> AdminError {
    match p {
        FileProblem::Io(error) => AdminError::ImportRead {
            path: path.to_path_buf(),
            error,
        },
        other => Refusal::ImportRefused {
            mailbox: String::new(),
            source: path.display().to_string(),
            kind: other.kind(),
            reason: other.to_string(),
        }
        .into(),
    }
}

/// Whether two seeds compute the same codes (the time of creation aside).
fn same_seed(a: &TotpSeed, b: &TotpSeed) -> bool {
    crate::secret::ct_eq(a.secret.as_bytes(), b.secret.as_bytes())
        && a.digits == b.digits
        && a.period == b.period
        && a.algorithm == b.algorithm
}

fn refusal_kind(r: &Refusal) -> &'static str {
    match r {
        Refusal::DomainDisabled { .. } => "domain_disabled",
        Refusal::ImportWouldReplace { .. } => "would_replace",
        Refusal::ImportAfterDisable { .. } => "switched_off",
        _ => "refused",
    }
}

impl Admin {
    fn import_options(&self, opts: ImportOptions, now: u64) -> crate::import::Options {
        crate::import::Options {
            allow_short_secrets: opts.allow_short_secrets,
            window: self.cfg.totp.window,
            now,
        }
    }

    /// Stores one imported token as `mb`'s enrolment, under its lock, as
    /// one write (seed, recovery codes, a fresh state for the new secret).
    /// `Ok(Err(_))`: not done, for a reason of this mailbox's (its domain
    /// is disabled; it has another secret and `replace` was not asked).
    fn import_token(
        &self,
        mb: &Mailbox,
        token: &crate::import::Token,
        source: &str,
        format: &str,
        opts: ImportOptions,
        now: u64,
    ) -> Result<std::result::Result<ImportedMailbox, Refusal>> {
        // The rule enrolment follows: nobody enrols in a disabled domain.
        if self.store.policy_for(mb.domain(), &self.cfg)?.policy == Policy::Disabled {
            return Ok(Err(Refusal::DomainDisabled {
                domain: mb.domain().to_string(),
            }));
        }
        let seed = TotpSeed {
            created: now,
            ..token.seed.clone()
        };
        let hashes = recovery::hashes_of(mb.as_str(), &token.scratch_codes);
        // A dry run takes no lock: locking a new mailbox creates its file.
        let mut lock = if opts.dry_run { None } else { Some(self.locked(mb)?) };
        let MailboxFile { record, state } = match &lock {
            Some(l) => MailboxFile {
                record: l.record().cloned().unwrap_or_default(),
                state: l.state().clone(),
            },
            None => self.store.read_mailbox(mb)?.unwrap_or_default(),
        };
        let has_seed = record.totp.as_ref().is_some_and(|t| same_seed(t, &seed));
        // The codes the mailbox keeps: the file's scratch codes, unless it
        // holds them already, or (same secret) the user has replaced them
        // with ours since (`mfa-ctl recovery-codes`, as the README advises).
        let ours_since = has_seed && record.recovery.as_ref().is_some_and(|r| !r.scratch);
        let has_codes = ours_since
            || if hashes.is_empty() {
                // A file without scratch codes leaves codes made since alone,
                // unless the secret changes: then they go with the old one.
                has_seed || record.recovery.is_none()
            } else {
                record
                    .recovery
                    .as_ref()
                    .is_some_and(|r| r.scratch && r.hashes == hashes)
            };
        // MFA an admin switched off (`disable`, a lost or stolen phone):
        // the file may hold the very secret that was given up.
        let switched_off = !record.enrolled() && state.last_step.is_some();
        let outcome = if has_seed && has_codes {
            ImportOutcome::Unchanged
        } else if !record.enrolled() && !switched_off {
            ImportOutcome::Imported
        } else if opts.replace {
            ImportOutcome::Replaced
        } else if switched_off {
            return Ok(Err(Refusal::ImportAfterDisable {
                mailbox: mb.to_string(),
            }));
        } else {
            return Ok(Err(Refusal::ImportWouldReplace {
                mailbox: mb.to_string(),
                codes_only: has_seed,
            }));
        };
        if let (Some(lock), false) = (lock.as_mut(), outcome == ImportOutcome::Unchanged) {
            let mut next = record.clone();
            next.totp = Some(seed.clone());
            next.pending = None;
            let mut next_state = state.clone();
            if !has_codes {
                // A code used here stays used in the new set (a code's hash
                // is the same in every set of the mailbox): the file may
                // still list codes the old module never saw used.
                let used: Vec<&String> = record
                    .recovery
                    .iter()
                    .flat_map(|set| {
                        state
                            .recovery_used_of(&set.id)
                            .iter()
                            .filter_map(|&i| set.hashes.get(usize::from(i)))
                    })
                    .collect();
                let set = if token.scratch_codes.is_empty() {
                    None
                } else {
                    Some(recovery::from_codes(mb.as_str(), &token.scratch_codes, now)?)
                };
                next_state.recovery_set = set.as_ref().map(|s| s.id.clone());
                next_state.recovery_used = set
                    .iter()
                    .flat_map(|s| s.hashes.iter().enumerate())
                    .filter(|(_, h)| used.contains(h))
                    .filter_map(|(i, _)| u16::try_from(i).ok())
                    .collect();
                next.recovery = set;
            }
            if !has_seed {
                // A new secret starts with a clean slate; the same secret
                // keeps its failures and block, whatever the file says.
                lockout::reset(&mut next_state);
                // As a new enrolment: the old seed's webmail sessions end.
                self.end_sessions(mb, &mut next_state, now)?;
            }
            // The replay guard: steps the old module used (its
            // DISALLOW_REUSE), and ours, kept whatever the secret (a past
            // step blocks no future code): a secret given up and imported
            // again must not accept its used codes once more. Ours is
            // counted in the old seed's step size (the file's, when the
            // mailbox has no seed now) and never past the current step.
            let old_period = record.totp.as_ref().map_or(seed.period, |t| t.period).max(1);
            let ours = state
                .last_step
                .map(|s| (s.saturating_mul(old_period) / seed.period.max(1)).min(now / seed.period.max(1)));
            next_state.last_step = ours.max(token.last_step);
            webmail::ensure_key(&mut next)?;
            lock.write(&next, &next_state)?;
            self.audit(&format!(
                "import: mailbox={mb} format={format} result={outcome} source={:?}",
                crate::text::escape_controls(source)
            ));
        }
        Ok(Ok(ImportedMailbox {
            mailbox: mb.to_string(),
            source: source.to_string(),
            outcome,
            digits: seed.digits,
            period: seed.period,
            secret_bits: token.secret_bits,
            weak: seed.is_weak(),
            recovery_codes: token.scratch_codes.len(),
            notes: token.notes.clone(),
        }))
    }

    /// `mfa-ctl import google-authenticator MAILBOX FILE`: one user's
    /// `~/.google_authenticator` becomes `mb`'s enrolment.
    pub fn import_google_authenticator(
        &self,
        mb: &Mailbox,
        file: &Path,
        opts: ImportOptions,
        now: u64,
    ) -> Result<ImportedMailbox> {
        let source = file.display().to_string();
        let refused = |kind: &'static str, reason: String| Refusal::ImportRefused {
            mailbox: mb.to_string(),
            source: source.clone(),
            kind,
            reason,
        };
        let text =
            crate::import_file::read(file, crate::import::GA_MAX_FILE, Some(mb.local())).map_err(|p| match p {
                FileProblem::Io(error) => AdminError::ImportRead {
                    path: file.to_path_buf(),
                    error,
                },
                other => refused(other.kind(), other.to_string()).into(),
            })?;
        let token = crate::import::google_authenticator(&text, &self.import_options(opts, now))
            .map_err(|r| refused(r.kind(), r.to_string()))?;
        Ok(self.import_token(mb, &token, &source, "google-authenticator", opts, now)??)
    }

    /// `mfa-ctl import google-authenticator --dir DIR --domain DOMAIN`: one
    /// file per user, named after the user (`secret=/var/lib/ga/${USER}`);
    /// a name without `@` gets `domain`.
    pub fn import_google_authenticator_dir(
        &self,
        dir: &Path,
        domain: &str,
        opts: ImportOptions,
        now: u64,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportSummary> {
        let domain = self.import_domain(domain)?;
        // Each file is walked again without following links when it is read;
        // a folder named through a link would fail them all, one by one.
        crate::import_file::check_folder(dir).map_err(|p| source_problem(dir, p))?;
        let read_dir = |e: std::io::Error| AdminError::ImportRead {
            path: dir.to_path_buf(),
            error: e.to_string(),
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            names.push(entry.map_err(read_dir)?.file_name());
        }
        names.sort();
        let entries = names.into_iter().map(|name| {
            let path = dir.join(&name);
            let user = name.to_str().map(str::to_string).ok_or_else(|| {
                (
                    "file_name",
                    "the file name is not UTF-8, so it names no mailbox".to_string(),
                )
            });
            let user = user.and_then(|u| match u {
                u if u.starts_with('.') => Err(("file_name", "a hidden file, not one user's".to_string())),
                u if u.ends_with('~') => Err((
                    "file_name",
                    "a temporary file google-authenticator left behind".to_string(),
                )),
                // The file's owner is checked against the name as written:
                // `Alice` (a system user of that name) must not stand for
                // the mailbox `alice`, whose own file would then be a
                // duplicate.
                u if u.chars().any(|c| c.is_uppercase()) => Err((
                    "file_name",
                    "has upper-case letters; mailbox names are lower case, and the file of user alice must be named alice".to_string(),
                )),
                // Whoever may put a file in the folder must not enrol a
                // mailbox of another domain by naming it so.
                u if u
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| !d.eq_ignore_ascii_case(&domain)) =>
                {
                    Err((
                        "file_name",
                        format!("names a mailbox outside --domain {domain}: import each domain with its own --domain"),
                    ))
                }
                u => Ok(u),
            });
            (path.display().to_string(), user, path)
        });
        self.import_google_authenticator_many(dir, &domain, entries, opts, now, progress)
    }

    /// `mfa-ctl import google-authenticator --list FILE --domain DOMAIN`:
    /// lines `user path`, the path a secret file or a home folder (then its
    /// `.google_authenticator`); relative paths from the list file's
    /// folder; `#` comments and blank lines skipped.
    pub fn import_google_authenticator_list(
        &self,
        list: &Path,
        domain: &str,
        opts: ImportOptions,
        now: u64,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportSummary> {
        let domain = self.import_domain(domain)?;
        let text = self.read_import_source(list)?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let base = list.parent().unwrap_or(Path::new("."));
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_text = line.trim();
            if line_text.is_empty() || line_text.starts_with('#') {
                continue;
            }
            let source = format!("{}:{}", list.display(), i + 1);
            let (user, path) = match line_text.split_once(char::is_whitespace) {
                Some((u, p)) if !p.trim().is_empty() => (u.to_string(), base.join(p.trim())),
                _ => {
                    entries.push((
                        source,
                        Err(("list_line", "the line is not `user path`".to_string())),
                        PathBuf::new(),
                    ));
                    continue;
                }
            };
            // Not through a link: the file read then would be wherever
            // the link points, perhaps another user's.
            let path = if crate::import_file::is_folder(&path) {
                path.join(".google_authenticator")
            } else {
                path
            };
            entries.push((path.display().to_string(), Ok(user), path));
        }
        self.import_google_authenticator_many(list, &domain, entries.into_iter(), opts, now, progress)
    }

    /// A domain given for a bulk import: valid, and not one where MFA is
    /// disabled (then nothing could be imported: refused as a whole).
    fn import_domain(&self, domain: &str) -> Result<String> {
        let domain = Self::domain(domain)?;
        if self.store.policy_for(&domain, &self.cfg)?.policy == Policy::Disabled {
            return Err(Refusal::DomainDisabled { domain }.into());
        }
        Ok(domain)
    }

    /// A list or users file: unreadable is an I/O error (exit 2), untrusted
    /// a refusal (exit 1).
    fn read_import_source(&self, path: &Path) -> Result<crate::secret::SecretBytes> {
        crate::import_file::read(path, crate::import::OATH_MAX_FILE, None).map_err(|p| source_problem(path, p))
    }

    /// The mailbox a user name of a bulk import stands for: kept with its
    /// own `@domain`, else in `domain`, else the configured default_domain.
    fn import_mailbox(&self, user: &str, domain: Option<&str>) -> std::result::Result<Mailbox, String> {
        let name = oath_mailbox(user, domain);
        Mailbox::parse(name.as_bytes(), self.cfg.default_domain.as_deref()).map_err(|error| {
            Invalid::Mailbox {
                name: user.to_string(),
                error,
            }
            .to_string()
        })
    }

    /// Imports each (source, user, file), one mailbox at a time, each
    /// complete before the next: stopped half way (a store error), every
    /// mailbox done is whole and the rest untouched, and running the same
    /// import again finishes it.
    fn import_google_authenticator_many(
        &self,
        source: &Path,
        domain: &str,
        entries: impl ExactSizeIterator<Item = (String, std::result::Result<String, (&'static str, String)>, PathBuf)>,
        opts: ImportOptions,
        now: u64,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportSummary> {
        let mut summary = ImportSummary::new("google-authenticator", source, opts.dry_run);
        let mut seen = std::collections::HashMap::new();
        let total = entries.len();
        let parse = self.import_options(opts, now);
        for (from, user, path) in entries {
            progress(ImportProgress {
                done: summary.done(),
                total,
            });
            let user = match user {
                Ok(u) => u,
                Err((kind, reason)) => {
                    summary.skip(from, None, kind, reason);
                    continue;
                }
            };
            let mb = match self.import_mailbox(&user, Some(domain)) {
                Ok(mb) => mb,
                Err(reason) => {
                    summary.skip(from, None, "mailbox_name", reason);
                    continue;
                }
            };
            let local = user.split('@').next().unwrap_or_default();
            let text = match crate::import_file::read(&path, crate::import::GA_MAX_FILE, Some(local)) {
                Ok(t) => t,
                Err(p) => {
                    summary.skip(from, Some(&mb), p.kind(), p.to_string());
                    continue;
                }
            };
            match crate::import::google_authenticator(&text, &parse) {
                Ok(token) => self
                    .import_entry(
                        &mut summary,
                        &mut seen,
                        &mb,
                        &token,
                        from,
                        "google-authenticator",
                        opts,
                        now,
                    )
                    .map_err(|e| AdminError::ImportStopped {
                        done: summary.done(),
                        error: Box::new(e),
                    })?,
                Err(r) => summary.skip(from, Some(&mb), r.kind(), r.to_string()),
            }
        }
        progress(ImportProgress { done: total, total });
        self.audit_import(&summary);
        Ok(summary)
    }

    /// One entry of a bulk import: a second entry for a mailbox already
    /// imported in this run is skipped (the first one wins).
    #[allow(clippy::too_many_arguments)]
    fn import_entry(
        &self,
        summary: &mut ImportSummary,
        seen: &mut std::collections::HashMap<String, String>,
        mb: &Mailbox,
        token: &crate::import::Token,
        source: String,
        format: &str,
        opts: ImportOptions,
        now: u64,
    ) -> Result<()> {
        if let Some(first) = seen.get(mb.as_str()) {
            let reason = format!("{mb} was imported from {first} already, in this run");
            summary.skip(source, Some(mb), "duplicate", reason);
            return Ok(());
        }
        seen.insert(mb.to_string(), source.clone());
        match self.import_token(mb, token, &source, format, opts, now)? {
            Ok(done) => summary.add(done),
            Err(r) => summary.skip(source, Some(mb), refusal_kind(&r), r.to_string()),
        }
        Ok(())
    }

    fn audit_import(&self, s: &ImportSummary) {
        if !s.dry_run {
            self.audit(&format!(
                "import: format={} source={:?} imported={} replaced={} unchanged={} skipped={}",
                s.format,
                crate::text::escape_controls(&s.source),
                s.imported,
                s.replaced,
                s.unchanged,
                s.skipped
            ));
        }
    }

    /// `mfa-ctl import oath USERSFILE [--domain DOMAIN]`: each user's first
    /// usable time-based token; user names without `@` get `domain` (or the
    /// configured default_domain).
    pub fn import_oath(
        &self,
        usersfile: &Path,
        domain: Option<&str>,
        opts: ImportOptions,
        now: u64,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportSummary> {
        let domain = domain.map(Self::domain).transpose()?;
        let text = self.read_import_source(usersfile)?;
        let file = crate::import::oath_users(&text, &self.import_options(opts, now));
        drop(text);
        let mut summary = ImportSummary::new("oath", usersfile, opts.dry_run);
        let at = |line: usize| format!("{}:{line}", usersfile.display());
        // A skipped line's user is only there when it is one imported
        // from another line (see `OathSkip::user`).
        for s in &file.skipped {
            let mb = s
                .user
                .as_deref()
                .and_then(|u| self.import_mailbox(u, domain.as_deref()).ok());
            summary.skip(at(s.line), mb.as_ref(), s.reason.kind(), s.reason.to_string());
        }
        let total = file.users.len();
        let mut seen = std::collections::HashMap::new();
        for (i, u) in file.users.iter().enumerate() {
            progress(ImportProgress { done: i, total });
            let mb = match Mailbox::parse(
                oath_mailbox(&u.user, domain.as_deref()).as_bytes(),
                self.cfg.default_domain.as_deref(),
            ) {
                Ok(mb) => mb,
                Err(e) => {
                    summary.skip(at(u.line), None, "mailbox_name", oath_name_problem(&e));
                    continue;
                }
            };
            self.import_entry(&mut summary, &mut seen, &mb, &u.token, at(u.line), "oath", opts, now)
                .map_err(|e| AdminError::ImportStopped {
                    done: i,
                    error: Box::new(e),
                })?;
        }
        progress(ImportProgress { done: total, total });
        self.audit_import(&summary);
        Ok(summary)
    }
}

/// The mailbox name a pam_oath user stands for (as [`Admin::import_mailbox`]).
fn oath_mailbox(user: &str, domain: Option<&str>) -> String {
    match (user.contains('@'), domain) {
        (false, Some(d)) => format!("{user}@{d}"),
        _ => user.to_string(),
    }
}

/// Why a pam_oath user field is no mailbox name, without quoting it: the
/// field may be a password that was written where the user should be.
fn oath_name_problem(e: &crate::mailbox::MailboxError) -> String {
    use crate::mailbox::MailboxError as E;
    let why = match e {
        E::BadChar(_) | E::NonAscii(_) => "it holds a character a mailbox name may not hold".to_string(),
        E::BadLabel(_) => "its domain is not a valid host name".to_string(),
        other => other.to_string(),
    };
    format!("the user field of this line is not a mailbox name ({why}); fix the line and import again")
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
                r#"{"domain":"example.org","policy":"optional","explicit":false,"grace":null,"grace_seconds":null,"grace_ends":null,"webmail_window_seconds":null,"since":null}"#
            )
        );
    }
}

/// `import_*` on a file store in a temp folder (the same code runs on the
/// database: tests/tests/import.rs under PAM_MFA_TEST_BACKEND=postgres).
#[cfg(test)]
mod import_tests {
    use super::*;
    use crate::totp::RFC6238_KEY;
    use std::os::unix::fs::PermissionsExt;

    const T: u64 = 1_700_000_000;

    fn admin() -> (tempfile::TempDir, Admin) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pam_mfa.toml");
        let store = dir.path().join("store");
        std::fs::write(
            &config,
            format!("store = {store:?}\ndefault_domain = \"example.org\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let admin = Admin::open(Some(&config)).unwrap();
        admin.store.init(ExistingFolder::Refuse).unwrap();
        (dir, admin)
    }

    fn ga(dir: &Path, name: &str, options: &str, codes: &str) -> PathBuf {
        let f = dir.join(name);
        std::fs::write(&f, format!("{RFC6238_KEY}\n\" TOTP_AUTH\n{options}{codes}")).unwrap();
        f
    }

    fn file(admin: &Admin, mb: &Mailbox) -> MailboxFile {
        admin.store.read_mailbox(mb).unwrap().unwrap_or_default()
    }

    const OPTS: ImportOptions = ImportOptions {
        dry_run: false,
        replace: false,
        allow_short_secrets: false,
    };

    /// Steps google-authenticator already accepted (DISALLOW_REUSE) are
    /// not accepted again: they become the replay guard.
    #[test]
    fn used_steps_carry_over() {
        let (dir, admin) = admin();
        let mb = admin.mailbox("alice").unwrap();
        let f = ga(dir.path(), "a", "\" DISALLOW_REUSE 56666665 56666666\n", "");
        let v = admin.import_google_authenticator(&mb, &f, OPTS, T).unwrap();
        assert_eq!(v.outcome, ImportOutcome::Imported);
        let content = file(&admin, &mb);
        assert_eq!(content.state.last_step, Some(56_666_666));
        assert_eq!(content.record.totp.unwrap().created, T);
    }

    /// Re-importing keeps what happened since: a scratch code used stays
    /// used; recovery codes made since survive a file without scratch codes.
    #[test]
    fn unchanged_keeps_what_happened_since() {
        let (dir, admin) = admin();
        let mb = admin.mailbox("alice").unwrap();
        let with = ga(dir.path(), "a", "\" DISALLOW_REUSE\n", "60500093\n49439023\n");
        admin.import_google_authenticator(&mb, &with, OPTS, T).unwrap();
        {
            let mut lock = admin.locked(&mb).unwrap();
            let mut state = lock.state().clone();
            state.recovery_set = lock.record().and_then(|r| r.recovery.as_ref()).map(|s| s.id.clone());
            state.recovery_used = vec![1];
            lock.write_state(&state, Durability::Synced).unwrap();
        }
        let before = file(&admin, &mb);
        let v = admin.import_google_authenticator(&mb, &with, OPTS, T + 99).unwrap();
        assert_eq!(v.outcome, ImportOutcome::Unchanged);
        assert_eq!(file(&admin, &mb), before, "the used code stays used");

        let without = ga(dir.path(), "b", "\" DISALLOW_REUSE\n", "");
        admin.recovery_codes(&mb, T).unwrap();
        let before = file(&admin, &mb);
        let v = admin.import_google_authenticator(&mb, &without, OPTS, T).unwrap();
        assert_eq!(v.outcome, ImportOutcome::Unchanged);
        assert_eq!(file(&admin, &mb), before, "our recovery codes survive");
        // The first file again: same secret; the codes the user made since
        // replaced its scratch codes, and stay, --replace or not.
        let v = admin.import_google_authenticator(&mb, &with, OPTS, T).unwrap();
        assert_eq!(v.outcome, ImportOutcome::Unchanged);
        let replace = ImportOptions { replace: true, ..OPTS };
        let v = admin.import_google_authenticator(&mb, &with, replace, T).unwrap();
        assert_eq!(v.outcome, ImportOutcome::Unchanged);
        assert_eq!(file(&admin, &mb), before, "our recovery codes survive --replace");
    }

    #[test]
    fn dry_runs_write_nothing() {
        let (dir, admin) = admin();
        let mb = admin.mailbox("alice").unwrap();
        let f = ga(dir.path(), "alice", "", "60500093\n");
        let dry = ImportOptions { dry_run: true, ..OPTS };
        let v = admin.import_google_authenticator(&mb, &f, dry, T).unwrap();
        assert_eq!((v.outcome, v.recovery_codes), (ImportOutcome::Imported, 1));
        let s = admin
            .import_google_authenticator_dir(dir.path(), "example.org", dry, T, &mut |_| ())
            .unwrap();
        assert_eq!((s.imported, s.dry_run), (1, true));
        assert!(admin.store.read_mailbox(&mb).unwrap().is_none());
        assert!(admin.store.mailbox_domains().unwrap().is_empty());
    }

    /// Two entries for one mailbox (names differing in case): the first
    /// wins, the second is reported.
    #[test]
    fn one_mailbox_twice_in_a_run() {
        let (dir, admin) = admin();
        let users = dir.path().join("users.oath");
        std::fs::write(
            &users,
            "HOTP/T30 Alice - 3132333435363738393031323334353637383930\n\
             HOTP/T60 alice - 3132333435363738393031323334353637383930\n",
        )
        .unwrap();
        let mut seen = Vec::new();
        let s = admin
            .import_oath(&users, Some("Example.org"), OPTS, T, &mut |p| {
                seen.push((p.done, p.total))
            })
            .unwrap();
        assert_eq!((s.imported, s.skipped), (1, 1));
        assert_eq!(s.skipped_entries[0].kind, "duplicate");
        assert_eq!(s.mailboxes[0].mailbox, "alice@example.org");
        assert_eq!(seen.last(), Some(&(2, 2)));
    }
}

/// A store error half way through a bulk import stops it: the mailboxes
/// before are complete, the ones after untouched, and running the same
/// import again (once the store is fixed) finishes it.
#[cfg(test)]
mod import_stop_tests {
    use super::*;
    use crate::totp::RFC6238_KEY;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn stopped_half_way_then_finished() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pam_mfa.toml");
        let store = dir.path().join("store");
        std::fs::write(&config, format!("store = {store:?}\n")).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let admin = Admin::open(Some(&config)).unwrap();
        admin.store.init(ExistingFolder::Refuse).unwrap();
        let ga = dir.path().join("ga");
        std::fs::create_dir(&ga).unwrap();
        for user in ["a", "b", "c"] {
            std::fs::write(ga.join(user), format!("{RFC6238_KEY}\n\" TOTP_AUTH\n")).unwrap();
        }
        // b's mailbox file is damaged: locking it is a store error.
        let b = admin.mailbox("b@example.org").unwrap();
        let path = admin.store.files().unwrap().mailbox_path(&b);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "not a mailbox file").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let opts = ImportOptions::default();
        let err = admin
            .import_google_authenticator_dir(&ga, "example.org", opts, 1, &mut |_| ())
            .unwrap_err();
        assert!(matches!(err, AdminError::ImportStopped { done: 1, .. }), "{err}");
        assert!(err.to_string().contains("run again"), "{err}");
        let enrolled = |name: &str| {
            let mb = admin.mailbox(name).unwrap();
            admin.store.read_record(&mb).unwrap().is_some_and(|r| r.enrolled())
        };
        assert!(enrolled("a@example.org"), "done before the error: complete");
        assert!(!enrolled("c@example.org"), "after it: untouched");
        std::fs::remove_file(&path).unwrap();
        let s = admin
            .import_google_authenticator_dir(&ga, "example.org", opts, 2, &mut |_| ())
            .unwrap();
        assert_eq!((s.unchanged, s.imported), (1, 2));
    }
}
