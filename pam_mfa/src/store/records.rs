//! What a mailbox file holds: the record (its secrets, changed only by
//! `mfa-ctl`) and the state (what logins change: last accepted step, failure
//! counter, recent logins), as one JSON document ([`MailboxFile`]) so that a
//! login reads and writes one file. JSON, not TOML as in the configuration:
//! a login parses and writes it every time, and serde_json does that about
//! ten times faster while staying readable with `cat`. Unknown keys or wrong
//! types make a file "damaged", and a damaged file refuses logins rather
//! than guess.

use crate::app_password::AppPassword;
use crate::recovery::RecoverySet;
use crate::sms::{SentCode, SmsRecord};
use crate::totp::TotpSeed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most a mailbox's JSON (record and state together) may take: exactly
/// what the file store's two copies of it hold within
/// [`super::fsio::MAX_FILE`], the largest file it reads back (a slot is its
/// header and the JSON, rounded up to whole [`super::slots::SLOT_UNIT`]s,
/// and half of `MAX_FILE` is a whole number of them). Every backend refuses to write more, so
/// no write leaves a mailbox that reads then refuse, and a copy between
/// backends never meets one the other cannot hold. Real mailboxes take a
/// few KiB; what could grow one this far is thousands of app passwords or
/// logins kept.
pub const MAX_JSON: usize = super::fsio::MAX_FILE as usize / 2 - super::slots::HEADER_LEN;

/// Everything the store knows about one mailbox: one file, one lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxFile {
    #[serde(default)]
    pub record: MailboxRecord,
    #[serde(default)]
    pub state: MailboxState,
}

impl MailboxFile {
    /// The JSON a file's slot holds. Zeroizing: it contains the secrets.
    pub fn to_json(&self) -> Result<crate::secret::SecretString, String> {
        serde_json::to_string(self)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| format!("cannot encode: {e}"))
    }

    /// Bytes of [`MailboxFile::to_json`], counted without building it (no
    /// copy of the secrets is made).
    pub fn json_len(&self) -> Result<usize, String> {
        json_len(self).map_err(|e| format!("cannot encode: {e}"))
    }

    /// `Err` names what is wrong (never the content: it could be a secret).
    pub fn from_json(text: &str) -> Result<MailboxFile, String> {
        serde_json::from_str(text).map_err(|e| json_error(&e))
    }

    /// Nothing worth keeping: the file can be removed.
    pub fn is_empty(&self) -> bool {
        self.record.is_empty() && self.state == MailboxState::default()
    }
}

/// What is wrong with stored JSON, without its content: serde_json quotes a
/// mistyped value in its message, and that value could be a secret; only
/// key names and positions are passed on.
pub fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let names_a_key = ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|p| msg.starts_with(p));
    let what = match (e.classify(), names_a_key) {
        (_, true) => msg.split(" at line ").next().unwrap_or_default().to_string(),
        (serde_json::error::Category::Data, false) => "a value has the wrong type or is out of range".into(),
        (serde_json::error::Category::Eof, _) => "the JSON ends early".into(),
        _ => "it is not valid JSON".into(),
    };
    format!("{what} (column {})", e.column())
}

/// Bytes serde_json writes for `value`, counted without building them: a
/// buffer for a secret is then sized exactly, and no partial copy is left
/// behind by a growing one.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, serde_json::Error> {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Counter(0);
    serde_json::to_writer(&mut n, value)?;
    Ok(n.0)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxRecord {
    /// The confirmed seed: MFA is on for the mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpSeed>,
    /// A seed shown to the user but not yet confirmed with a code; it has no
    /// effect on logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<TotpSeed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySet>,
    #[serde(default, rename = "app_password", skip_serializing_if = "Vec::is_empty")]
    pub app_passwords: Vec<AppPassword>,
    /// Keys the hashes of webmail sessions (see `webmail`); made when a
    /// seed is put in force, kept when MFA is switched off or enrolled again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webmail_key: Option<crate::webmail::WebmailKey>,
    /// Codes by text message: the confirmed number, a number waiting for
    /// its confirmation, and the key sent codes are hashed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsRecord>,
}

impl MailboxRecord {
    /// The authenticator app is set up (a confirmed seed).
    pub fn enrolled(&self) -> bool {
        self.totp.is_some()
    }

    /// The confirmed number for codes by text message, with its record.
    pub fn sms_number(&self) -> Option<(&SmsRecord, &str)> {
        self.sms.as_ref().and_then(|s| s.number.as_deref().map(|n| (s, n)))
    }

    /// MFA is on: the app, a confirmed number, or both. What the domain
    /// policy counts as enrolled, and what makes a login need a code.
    pub fn mfa_on(&self) -> bool {
        self.enrolled() || self.sms_number().is_some()
    }

    /// Digits of the codes this mailbox types: its app's, and a mailbox
    /// with only a number gets [`crate::sms::DIGITS`]. Codes sent by text
    /// message have the same length, so `split` cuts either alike.
    pub fn code_digits(&self) -> u8 {
        self.totp.as_ref().map_or(crate::sms::DIGITS, |s| s.digits)
    }

    pub fn is_empty(&self) -> bool {
        *self == MailboxRecord::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxState {
    /// The last TOTP time step accepted: only later steps are accepted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// Consecutive failed codes (reset by a success or `mfa-ctl unlock`).
    #[serde(default)]
    pub failures: u32,
    /// When the last counted failure happened (Unix seconds).
    #[serde(default)]
    pub last_failure: u64,
    /// Keyed fingerprint of the last failed attempt, so the same wrong
    /// string repeated (a phone retrying) counts once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed: Option<String>,
    /// Which recovery set `recovery_used` refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_set: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_used: Vec<u16>,
    /// Last use of each app password, by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub app_password_use: BTreeMap<String, LastUse>,
    /// Recent logins, oldest first.
    #[serde(default, rename = "login", skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<Login>,
    /// Open webmail sessions (see `webmail`), oldest first.
    #[serde(default, rename = "webmail_session", skip_serializing_if = "Vec::is_empty")]
    pub webmail_sessions: Vec<WebmailSession>,
    /// The last code sent by text message (hashed), until a newer one
    /// replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_code: Option<SentCode>,
    /// When texts were sent within the last hour, for `resend_after` and
    /// `max_per_hour`. Kept when the number is removed, so removing and
    /// adding it again does not reset the limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sms_sent: Vec<u64>,
}

impl MailboxState {
    /// Used indices of `set`, or none when they belong to a replaced set.
    pub fn recovery_used_of(&self, set_id: &str) -> &[u16] {
        if self.recovery_set.as_deref() == Some(set_id) {
            &self.recovery_used
        } else {
            &[]
        }
    }

    /// Appends a login and keeps only the `keep` most recent. A webmail
    /// session's reuse right after another of the same service and client
    /// is folded into that line (its count and time), so a webmail user's
    /// clicks do not push every other login out of the history.
    pub fn push_login(&mut self, login: Login, keep: usize) {
        if let Some(last) = self.logins.last_mut()
            && login.method == Method::WebmailSession
            && login.result == LoginResult::Ok
            && last.method == login.method
            && last.result == login.result
            && last.service == login.service
            && last.rhost == login.rhost
        {
            last.at = login.at;
            last.count = last.count.max(1).saturating_add(1);
            return;
        }
        self.logins.push(login);
        let excess = self.logins.len().saturating_sub(keep);
        self.logins.drain(..excess);
    }

    /// Changes the result of the latest login at `at` that ended `from` to
    /// `to` (a code recorded as sent whose delivery then failed). Whether
    /// there was one.
    pub fn amend_login(&mut self, at: u64, from: LoginResult, to: LoginResult) -> bool {
        match self.logins.iter_mut().rev().find(|l| l.at == at && l.result == from) {
            Some(l) => {
                l.result = to;
                true
            }
            None => false,
        }
    }
}

/// A password+code string accepted from a webmail server, which may log in
/// again until `expires` (see `webmail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebmailSession {
    /// Keyed hash of the typed string (never the string).
    pub tag: String,
    pub started: u64,
    pub last_use: u64,
    pub expires: u64,
    /// The service and client of the login that opened it.
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub rhost: String,
    /// Logins since it opened.
    #[serde(default)]
    pub uses: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastUse {
    pub at: u64,
    #[serde(default)]
    pub rhost: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Code,
    RecoveryCode,
    AppPassword,
    PasswordOnly,
    WebmailSession,
    /// A code sent by text message (or asked for one).
    Sms,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Code => "code",
            Method::RecoveryCode => "recovery_code",
            Method::AppPassword => "app_password",
            Method::PasswordOnly => "password_only",
            Method::WebmailSession => "webmail_session",
            Method::Sms => "sms",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub at: u64,
    pub service: String,
    #[serde(default)]
    pub rhost: String,
    pub method: Method,
    pub result: LoginResult,
    /// Consecutive identical webmail reuses folded into this line (`at` is
    /// the last); 0 or 1 for a single login.
    #[serde(default, skip_serializing_if = "is_single")]
    pub count: u32,
}

fn is_single(n: &u32) -> bool {
    *n <= 1
}

/// How a recorded login ended. Stored by name and shown through
/// [`LoginResult::as_str`], so rewording a message changes no stored data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginResult {
    Ok,
    CodeMissing,
    WrongCode,
    Replayed,
    EnrolmentRequired,
    BackingOff,
    Blocked,
    BadSeed,
    AppPasswordExpired,
    AppPasswordService,
    AppPasswordNetwork,
    WebmailSessionEnded,
    /// No code typed: one was sent by text message.
    CodeSentBySms,
    /// No code typed, and the text with one could not be sent.
    SmsNotSent,
    /// No code typed; none sent, the last text being younger than `resend_after`.
    SmsResendTooSoon,
    /// No code typed; none sent, `max_per_hour` being reached.
    SmsHourlyCap,
    /// The code sent by text message, typed after `code_lifetime`.
    SmsExpired,
    /// The mailbox has a number but the configuration no `[sms]` section.
    SmsNotConfigured,
    /// A name this build does not know (written by another build): shown,
    /// not a reason to refuse the mailbox as damaged.
    #[serde(other)]
    Other,
}

impl LoginResult {
    /// The words for logs and `mfa-ctl logins`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::CodeMissing => "code missing",
            LoginResult::WrongCode => "wrong code",
            LoginResult::Replayed => "code already used (replay)",
            LoginResult::EnrolmentRequired => "enrolment required (grace period over)",
            LoginResult::BackingOff => "too many failed codes, backing off",
            LoginResult::Blocked => "blocked after too many failed codes",
            LoginResult::BadSeed => "stored secret unusable",
            LoginResult::AppPasswordExpired => "app password expired",
            LoginResult::AppPasswordService => "app password not allowed for this service",
            LoginResult::AppPasswordNetwork => "app password not allowed from this address",
            LoginResult::WebmailSessionEnded => "webmail session ended (log in again with a new code)",
            LoginResult::CodeSentBySms => "code sent by sms",
            LoginResult::SmsNotSent => "code could not be sent",
            LoginResult::SmsResendTooSoon => "code missing, none sent (the last sms is younger than resend_after)",
            LoginResult::SmsHourlyCap => "code missing, none sent (sms limit per hour reached)",
            LoginResult::SmsExpired => "sms code expired",
            LoginResult::SmsNotConfigured => "sms not configured",
            LoginResult::Other => "unknown result",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results are stored by name; a name this build does not know reads
    /// as `Other`, not as a damaged mailbox.
    #[test]
    fn login_results_are_stored_by_name() {
        let json = serde_json::to_string(&LoginResult::CodeMissing).unwrap();
        assert_eq!(json, "\"code_missing\"");
        let later: LoginResult = serde_json::from_str("\"code_sent_by_carrier_pigeon\"").unwrap();
        assert_eq!(later, LoginResult::Other);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = MailboxState {
            last_step: Some(5),
            failures: 2,
            last_failure: 9,
            last_failed: Some("ab".into()),
            recovery_set: Some("id".into()),
            recovery_used: vec![1, 3],
            ..Default::default()
        };
        s.app_password_use.insert(
            "x".into(),
            LastUse {
                at: 3,
                rhost: "192.0.2.1".into(),
            },
        );
        for i in 0..30 {
            s.push_login(
                Login {
                    at: i,
                    service: "imap".into(),
                    rhost: String::new(),
                    method: Method::Code,
                    result: LoginResult::Ok,
                    count: 0,
                },
                20,
            );
        }
        assert_eq!(s.logins.len(), 20);
        assert_eq!(s.logins[0].at, 10);
        let file = MailboxFile {
            state: s.clone(),
            ..Default::default()
        };
        assert_eq!(MailboxFile::from_json(&file.to_json().unwrap()).unwrap().state, s);
        assert_eq!(MailboxFile::from_json("{}").unwrap(), MailboxFile::default());
        let e = MailboxFile::from_json(r#"{"state":{"last_step":"JBSWY3DPEHPK3PXP"}}"#).unwrap_err();
        assert!(e.contains("wrong type") && !e.contains("JBSWY3DP"), "{e}");
        let e = MailboxFile::from_json(r#"{"state":{"surprise":1}}"#).unwrap_err();
        assert!(e.starts_with("unknown field `surprise`"), "{e}");
    }

    /// A record and state written before codes by text message existed read
    /// as before; a delivery that failed after its send was recorded
    /// changes that login's result.
    #[test]
    fn sms_fields_default_and_a_failed_send_is_amended() {
        let old = r#"{"record":{"totp":{"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}},"state":{"last_step":5}}"#;
        let f = MailboxFile::from_json(old).unwrap();
        assert!(f.record.sms.is_none() && f.state.sms_code.is_none() && f.state.sms_sent.is_empty());
        assert!(f.record.mfa_on() && f.record.enrolled());
        assert_eq!(f.record.code_digits(), 6);
        let mut s = MailboxState::default();
        let l = |at, result| Login {
            at,
            service: "imap".into(),
            rhost: String::new(),
            method: Method::Sms,
            result,
            count: 0,
        };
        s.push_login(l(5, LoginResult::CodeSentBySms), 20);
        s.push_login(l(5, LoginResult::WrongCode), 20);
        assert!(s.amend_login(5, LoginResult::CodeSentBySms, LoginResult::SmsNotSent));
        assert_eq!(s.logins[0].result, LoginResult::SmsNotSent);
        assert_eq!(s.logins[1].result, LoginResult::WrongCode);
        assert!(!s.amend_login(6, LoginResult::CodeSentBySms, LoginResult::SmsNotSent));
        // Only a confirmed number turns MFA on.
        let pending = MailboxRecord {
            sms: Some(crate::sms::SmsRecord {
                pending: Some("+4915112344567".into()),
                ..crate::sms::SmsRecord::new().unwrap()
            }),
            ..Default::default()
        };
        assert!(!pending.mfa_on() && !pending.is_empty());
        let on = MailboxRecord {
            sms: pending.sms.clone().map(|s| crate::sms::SmsRecord {
                number: s.pending.clone(),
                ..s
            }),
            ..Default::default()
        };
        assert!(on.mfa_on() && !on.enrolled());
        assert_eq!(on.code_digits(), crate::sms::DIGITS);
    }

    fn login() -> impl proptest::strategy::Strategy<Value = Login> {
        use proptest::prelude::*;
        (
            0..=crate::clock::MAX_SANE_TIME,
            "\\PC{0,20}",
            "\\PC{0,40}",
            prop_oneof![
                Just(Method::Code),
                Just(Method::RecoveryCode),
                Just(Method::AppPassword),
                Just(Method::PasswordOnly),
                Just(Method::WebmailSession),
                Just(Method::Sms)
            ],
            prop_oneof![
                Just(LoginResult::Ok),
                Just(LoginResult::WrongCode),
                Just(LoginResult::AppPasswordNetwork),
                Just(LoginResult::CodeSentBySms),
                Just(LoginResult::SmsNotSent),
                Just(LoginResult::Other)
            ],
        )
            .prop_map(|(at, service, rhost, method, result)| Login {
                at,
                service,
                rhost,
                method,
                result,
                count: 0,
            })
    }

    /// Times up to u64::MAX are stored and read back exactly (never wrapped
    /// or clamped); a negative time is refused as damaged.
    #[test]
    fn extreme_times_round_trip() {
        let s = MailboxState {
            last_failure: u64::MAX,
            ..Default::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<MailboxState>(&text).unwrap(), s);
        assert!(MailboxFile::from_json(r#"{"state":{"last_failure":-1}}"#).is_err());
    }

    proptest::proptest! {
        /// The store's parsers take any text without panicking (a damaged
        /// file is an error, never a crash in the host process).
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = MailboxFile::from_json(&text);
            let _ = toml::from_str::<crate::policy::DomainPolicy>(&text);
        }

        /// Near-valid files: a valid state with one line replaced by noise.
        #[test]
        fn mangled_state_never_panics(line in 0usize..8, noise in "\\PC{0,40}") {
            let s = MailboxState { last_step: Some(3), failures: 1, ..Default::default() };
            let text = serde_json::to_string_pretty(&MailboxFile { state: s, ..Default::default() }).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if let Some(l) = lines.get_mut(line) {
                *l = noise;
            }
            let _ = MailboxFile::from_json(&lines.join("\n"));
        }

        /// Whatever a login writes reads back the same: any time the module
        /// accepts as now (up to `clock::MAX_SANE_TIME`; beyond, see
        /// `extreme_times_round_trip`), any text in service,
        /// rhost and result, any number of logins and uses.
        #[test]
        fn state_round_trips(
            last_step in proptest::option::of(0..=crate::clock::MAX_SANE_TIME / 10),
            failures in proptest::num::u32::ANY,
            last_failure in 0..=crate::clock::MAX_SANE_TIME,
            last_failed in proptest::option::of("[0-9a-f]{32}"),
            recovery_used in proptest::collection::vec(proptest::num::u16::ANY, 0..12),
            uses in proptest::collection::btree_map("[0-9a-f]{12}", (0..=crate::clock::MAX_SANE_TIME, "\\PC{0,40}"), 0..4),
            logins in proptest::collection::vec(login(), 0..25),
            sms_at in proptest::option::of((0..=crate::clock::MAX_SANE_TIME, proptest::bool::ANY, proptest::num::u32::ANY)),
            sms_sent in proptest::collection::vec(0..=crate::clock::MAX_SANE_TIME, 0..6),
        ) {
            let s = MailboxState {
                last_step,
                failures,
                last_failure,
                last_failed,
                recovery_set: (!recovery_used.is_empty()).then(|| "set".to_string()),
                recovery_used,
                app_password_use: uses.into_iter().map(|(k, (at, rhost))| (k, LastUse { at, rhost })).collect(),
                logins,
                webmail_sessions: Vec::new(),
                sms_code: sms_at.map(|(at, used, tries)| crate::sms::SentCode {
                    hash: "ab".repeat(32),
                    at,
                    purpose: if used { crate::sms::Purpose::Login } else { crate::sms::Purpose::Confirm },
                    used,
                    tries,
                }),
                sms_sent,
            };
            let file = MailboxFile { state: s, ..Default::default() };
            proptest::prop_assert_eq!(MailboxFile::from_json(&file.to_json().unwrap()).unwrap(), file);
        }
    }
}
