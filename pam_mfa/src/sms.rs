//! Codes by text message, for users without an authenticator app: the
//! phone number (E.164, shown masked), the code (drawn from the OS RNG,
//! stored only as a keyed hash, valid once and only for `code_lifetime`,
//! replaced by the next one sent) and the limits against SMS pumping
//! (`resend_after`, `max_per_hour`). Pure rules with the time as a
//! parameter: accepting a typed code is [`crate::decide`]'s, running the
//! admin's delivery command is [`crate::deliver`]'s.
//!
//! Where things are kept: the number and the hashing key in the mailbox's
//! record (sealed on PostgreSQL; changed only by mfa-ctl), the sent code's
//! hash and the send times in its login state, which a login may write
//! under the mailbox's lock: that lock is what makes two parallel logins
//! unable to both send when `resend_after` allows one.

use crate::config::SmsConfig;
use crate::secret::{self, RandomError, SecretString};
use crate::store::records::MailboxState;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// Digits of a code sent to a mailbox that has no authenticator app. A
/// mailbox that has one gets codes as long as its app's, so that `split`
/// cuts a typed code off the same way whichever way it came.
pub const DIGITS: u8 = 6;
/// Wrong tries at the code that confirms a new number before that code is
/// void (a new one is sent with `mfa-ctl sms add`). Login codes are limited
/// by the lock-out instead, like app codes.
pub const MAX_CONFIRM_TRIES: u32 = 5;
/// The window `max_per_hour` counts sends in.
pub const HOUR: u64 = 3600;

/// A mailbox's text-message factor, as stored in its record.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsRecord {
    /// The confirmed number (E.164): codes by text message are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// A number given with `mfa-ctl sms add`, waiting for its code; it has
    /// no effect on logins until confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// Key of the hashes sent codes are stored under (64 hex digits).
    pub key: SecretString,
}

impl fmt::Debug for SmsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsRecord")
            .field("number", &self.number.as_deref().map(mask))
            .field("pending", &self.pending.as_deref().map(mask))
            .field("key", &"[redacted]")
            .finish()
    }
}

impl SmsRecord {
    /// A record with a fresh key and no number yet.
    pub fn new() -> Result<SmsRecord, RandomError> {
        Ok(SmsRecord {
            number: None,
            pending: None,
            key: Zeroizing::new(secret::hex(&secret::random_bytes(32)?)),
        })
    }
}

/// What a sent code is for: logging in, or confirming a new number. A code
/// is hashed with its purpose, so one sent to confirm a number never logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Login,
    Confirm,
}

impl Purpose {
    /// As the delivery command gets it (`PAM_MFA_PURPOSE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Confirm => "confirm",
        }
    }
}

/// The last code sent to a mailbox, as stored in its login state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentCode {
    /// [`secret::keyed_hash`] of the code with purpose, mailbox, number and time.
    pub hash: String,
    /// When it was sent (Unix seconds).
    pub at: u64,
    pub purpose: Purpose,
    /// Accepted once already: typed again it is a replay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub used: bool,
    /// Wrong tries at a confirmation code.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why a text is not sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The last one is younger than `resend_after`: not before `until`.
    ResendTooSoon { until: u64 },
    /// `max_per_hour` were sent in the last hour: not before `until`.
    HourlyCap { until: u64 },
}

/// What a typed code is, against the code sent last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The code sent last, unused and within its lifetime.
    Fresh,
    /// The code sent last, already accepted once.
    Used,
    /// The code sent last, older than `code_lifetime`.
    Expired,
    /// Not the code sent last (or sent for another purpose or number).
    NoMatch,
}

/// A number as the user typed it, in E.164 form: `+`, then 8 to 15 digits
/// (country code first, which never starts with 0). Spaces and dashes
/// between the digits are dropped; anything else is refused, notably the
/// trunk prefix people write as `(0)`, which E.164 leaves out.
pub fn parse_number(typed: &str) -> Result<String, NumberError> {
    let bad = || NumberError(typed.to_string());
    let rest = typed.trim().strip_prefix('+').ok_or_else(bad)?;
    let mut number = String::with_capacity(16);
    number.push('+');
    for c in rest.chars() {
        match c {
            '0'..='9' => number.push(c),
            ' ' | '-' => {}
            _ => return Err(bad()),
        }
    }
    let digits = number.len() - 1;
    if !(8..=15).contains(&digits) || number.as_bytes().get(1) == Some(&b'0') {
        return Err(bad());
    }
    Ok(number)
}

/// A number that [`parse_number`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberError(pub String);

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a phone number in E.164 form: write + and the country code, then the number without \
             its leading 0, 8 to 15 digits in all (e.g. +4915123456789)",
            self.0
        )
    }
}

impl std::error::Error for NumberError {}

/// Length of the country code of an E.164 number's digits (ITU-T E.164
/// assignments: 1 and 7 are one digit, these two-digit codes, the rest three).
fn country_code_len(digits: &str) -> usize {
    const TWO: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
        "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
        "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO.iter().any(|cc| digits.starts_with(cc)) {
        2
    } else {
        3
    }
}

/// A number as `status` shows it: the country code and the last four digits
/// (two of a short number), `+49 *** *** 4567`.
pub fn mask(number: &str) -> String {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return "+*** *** ***".to_string();
    }
    let cc = country_code_len(digits);
    let national = digits.len().saturating_sub(cc);
    let shown = if national >= 8 { 4 } else { 2 };
    let country = digits.get(..cc).unwrap_or_default();
    let last = digits.get(digits.len().saturating_sub(shown)..).unwrap_or_default();
    format!("+{country} *** *** {last}")
}

/// A new code of `digits` digits from the OS RNG.
pub fn new_code(digits: u8) -> Result<SecretString, RandomError> {
    secret::random_string(b"0123456789", usize::from(digits))
}

/// The text the delivery command sends (`PAM_MFA_MESSAGE`): the configured
/// message with `{code}`, `{issuer}` and `{minutes}` filled in.
pub fn message(cfg: &SmsConfig, issuer: &str, code: &str) -> SecretString {
    let minutes = cfg.code_lifetime.div_ceil(60).to_string();
    // Sized up front: a growing String would leave copies of the code behind.
    let mut out = Zeroizing::new(String::with_capacity(
        cfg.message.len() + issuer.len() + code.len() + minutes.len(),
    ));
    let mut rest = cfg.message.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open..).unwrap_or_default();
        let (value, len) = if after.starts_with("{code}") {
            (code, "{code}".len())
        } else if after.starts_with("{issuer}") {
            (issuer, "{issuer}".len())
        } else if after.starts_with("{minutes}") {
            (minutes.as_str(), "{minutes}".len())
        } else {
            ("{", 1)
        };
        out.push_str(value);
        rest = after.get(len..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Whether `text` is a usable message: `{code}` in it, no other `{...}`
/// than the three known ones, no control characters, at most 480 bytes
/// (three text messages). `Err` says what is wrong.
pub fn check_message(text: &str) -> Result<(), String> {
    if text.len() > 480 {
        return Err("sms.message is longer than 480 bytes (three text messages)".into());
    }
    if text.chars().any(char::is_control) {
        return Err("sms.message may not contain control characters (line breaks included)".into());
    }
    let mut rest = text;
    let mut has_code = false;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open..).unwrap_or_default();
        let close = after.find('}').ok_or("sms.message has a '{' without '}'")?;
        let name = after.get(1..close).unwrap_or_default();
        match name {
            "code" => has_code = true,
            "issuer" | "minutes" => {}
            other => {
                return Err(format!(
                    "sms.message has an unknown placeholder {{{other}}}: use {{code}}, {{issuer}} and {{minutes}}"
                ));
            }
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if !has_code {
        return Err("sms.message must contain {code}, where the code goes".into());
    }
    Ok(())
}

/// Sends of the last hour, as of `now`.
fn recent(state: &MailboxState, now: u64) -> impl Iterator<Item = u64> + '_ {
    state
        .sms_sent
        .iter()
        .copied()
        .filter(move |at| now.saturating_sub(*at) < HOUR)
}

/// Whether a text may be sent to the mailbox at `now`: not while the code
/// sent last is unused and younger than `resend_after` (once it is typed
/// in, or its number confirmed, the next login may need a new one at
/// once), and never more than `max_per_hour` within an hour.
pub fn may_send(state: &MailboxState, cfg: &SmsConfig, now: u64) -> Result<(), Limit> {
    if let Some(last) = state.sms_code.as_ref().filter(|s| !s.used) {
        let until = last.at.saturating_add(cfg.resend_after);
        if now < until {
            return Err(Limit::ResendTooSoon { until });
        }
    }
    let count = recent(state, now).count();
    if count >= usize::try_from(cfg.max_per_hour).unwrap_or(usize::MAX) {
        let oldest = recent(state, now).min().unwrap_or(now);
        return Err(Limit::HourlyCap {
            until: oldest.saturating_add(HOUR),
        });
    }
    Ok(())
}

/// The input of a code's hash: everything it is bound to.
fn hashed(sms: &SmsRecord, mailbox: &str, number: &str, purpose: Purpose, at: u64, code: &str) -> String {
    let mut data = Zeroizing::new(Vec::with_capacity(64 + mailbox.len() + number.len() + code.len()));
    for part in [
        b"pam_mfa sms v1".as_slice(),
        purpose.as_str().as_bytes(),
        mailbox.as_bytes(),
        number.as_bytes(),
        at.to_string().as_bytes(),
        code.as_bytes(),
    ] {
        data.extend_from_slice(part);
        data.push(0);
    }
    secret::keyed_hash(sms.key.as_bytes(), &data)
}

/// Records in `state` that `code` was sent to `number` at `now`: it
/// replaces any code sent before, and counts toward the limits.
pub fn record_send(
    state: &mut MailboxState,
    sms: &SmsRecord,
    mailbox: &str,
    number: &str,
    purpose: Purpose,
    code: &str,
    now: u64,
) {
    state.sms_sent.retain(|at| now.saturating_sub(*at) < HOUR);
    state.sms_sent.push(now);
    state.sms_code = Some(SentCode {
        hash: hashed(sms, mailbox, number, purpose, now, code),
        at: now,
        purpose,
        used: false,
        tries: 0,
    });
}

/// What `typed` is against `sent`, the code sent last for `purpose` to
/// `number`, at `now`. The comparison is in constant time.
#[allow(clippy::too_many_arguments)]
pub fn check(
    sms: &SmsRecord,
    sent: &SentCode,
    mailbox: &str,
    number: &str,
    purpose: Purpose,
    typed: &str,
    lifetime: u64,
    now: u64,
) -> Check {
    if sent.purpose != purpose || typed.is_empty() || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return Check::NoMatch;
    }
    let h = hashed(sms, mailbox, number, purpose, sent.at, typed);
    if h.is_empty() || !secret::ct_eq(h.as_bytes(), sent.hash.as_bytes()) {
        return Check::NoMatch;
    }
    if sent.used {
        Check::Used
    } else if now.saturating_sub(sent.at) >= lifetime {
        Check::Expired
    } else {
        Check::Fresh
    }
}

#[cfg(test)]
mod tests {
    //! The rules at fixed instants.
    use super::*;

    const T: u64 = 1_700_000_000;
    const MB: &str = "alice@example.org";
    const NUM: &str = "+4915112344567";

    fn cfg() -> SmsConfig {
        SmsConfig {
            command: "/usr/local/sbin/send".into(),
            ..SmsConfig::default()
        }
    }

    fn sms() -> SmsRecord {
        SmsRecord {
            number: Some(NUM.into()),
            ..SmsRecord::new().unwrap()
        }
    }

    #[test]
    fn numbers_in_e164_form() {
        assert_eq!(parse_number("+49 151 1234 4567").unwrap(), "+4915112344567");
        assert_eq!(parse_number(" +1-555-123-4567 ").unwrap(), "+15551234567");
        assert_eq!(parse_number("+12345678").unwrap(), "+12345678", "8 digits");
        assert_eq!(
            parse_number("+123456789012345").unwrap(),
            "+123456789012345",
            "15 digits"
        );
        for bad in [
            "",
            "+",
            "4915112344567",
            "0049 151 12344567",
            "+49 (0) 151 12344567",
            "+1234567",
            "+1234567890123456",
            "+0123456789",
            "+49151123445x7",
            "+49.151.12344567",
            "+４９１５１１２３４４５６７",
            "++4915112344567",
        ] {
            let e = parse_number(bad).unwrap_err();
            assert!(e.to_string().contains("E.164"), "{bad}: {e}");
        }
    }

    #[test]
    fn numbers_are_masked_to_country_code_and_last_digits() {
        assert_eq!(mask("+4915112344567"), "+49 *** *** 4567");
        assert_eq!(mask("+15551234567"), "+1 *** *** 4567");
        assert_eq!(mask("+79161234567"), "+7 *** *** 4567");
        assert_eq!(mask("+353861234567"), "+353 *** *** 4567");
        assert_eq!(mask("+35312345"), "+353 *** *** 45", "a short number keeps more hidden");
        assert_eq!(mask("nonsense"), "+*** *** ***");
        for n in ["+4915112344567", "+15551234567", "+353861234567"] {
            let m = mask(n);
            let shown: usize = m.chars().filter(char::is_ascii_digit).count();
            assert!(shown <= 7, "{m} shows too much of {n}");
        }
    }

    #[test]
    fn codes_are_digits_from_the_rng() {
        let a = new_code(6).unwrap();
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(new_code(8).unwrap().len(), 8);
        let many: std::collections::BTreeSet<String> = (0..50).map(|_| new_code(6).unwrap().to_string()).collect();
        assert!(many.len() > 45, "codes repeat: {many:?}");
    }

    #[test]
    fn messages_fill_in_placeholders() {
        let c = SmsConfig {
            message: "{code} is your {issuer} code ({minutes} min). {code}".into(),
            code_lifetime: 61,
            ..cfg()
        };
        assert_eq!(
            message(&c, "Mail", "123456").as_str(),
            "123456 is your Mail code (2 min). 123456"
        );
        check_message(&SmsConfig::default().message).unwrap();
        assert!(message(&cfg(), "Mail", "654321").contains("654321"));
        for (bad, why) in [
            ("no code here", "must contain {code}"),
            ("{code} {pin}", "unknown placeholder {pin}"),
            ("{code", "without '}'"),
            ("{code}\nline", "control characters"),
        ] {
            let e = check_message(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_message(&format!("{{code}}{}", "x".repeat(480))).is_err());
    }

    #[test]
    fn resend_after_and_hourly_cap() {
        let c = SmsConfig {
            resend_after: 60,
            max_per_hour: 3,
            ..cfg()
        };
        let rec = sms();
        let mut s = MailboxState::default();
        assert_eq!(may_send(&s, &c, T), Ok(()));
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "111111", T);
        assert_eq!(may_send(&s, &c, T + 59), Err(Limit::ResendTooSoon { until: T + 60 }));
        assert_eq!(may_send(&s, &c, T + 60), Ok(()));
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "222222", T + 60);
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "333333", T + 120);
        assert_eq!(may_send(&s, &c, T + 180), Err(Limit::HourlyCap { until: T + HOUR }));
        assert_eq!(
            may_send(&s, &c, T + HOUR - 1),
            Err(Limit::HourlyCap { until: T + HOUR })
        );
        assert_eq!(may_send(&s, &c, T + HOUR), Ok(()), "the first send is an hour old");
        // A code typed in lifts the resend block (not the hourly cap).
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "555555", T + 2 * HOUR);
        assert_eq!(
            may_send(&s, &c, T + 2 * HOUR + 1),
            Err(Limit::ResendTooSoon {
                until: T + 2 * HOUR + 60
            })
        );
        if let Some(sent) = s.sms_code.as_mut() {
            sent.used = true;
        }
        assert_eq!(may_send(&s, &c, T + 2 * HOUR + 1), Ok(()));
        // Old sends are forgotten as new ones are recorded: the list stays short.
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "444444", T + 3 * HOUR + 1);
        assert_eq!(s.sms_sent, [T + 3 * HOUR + 1]);
        // resend_after = 0: only the hourly cap.
        let c0 = SmsConfig {
            resend_after: 0,
            max_per_hour: 2,
            ..cfg()
        };
        let mut s = MailboxState::default();
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "1", T);
        assert_eq!(may_send(&s, &c0, T), Ok(()));
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "2", T);
        assert_eq!(may_send(&s, &c0, T), Err(Limit::HourlyCap { until: T + HOUR }));
    }

    #[test]
    fn a_code_matches_once_within_its_lifetime_for_its_purpose_only() {
        let rec = sms();
        let mut s = MailboxState::default();
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "123456", T);
        let sent = s.sms_code.clone().unwrap();
        assert!(!sent.hash.contains("123456"));
        let chk = |typed: &str, purpose, now| check(&rec, &sent, MB, NUM, purpose, typed, 300, now);
        assert_eq!(chk("123456", Purpose::Login, T), Check::Fresh);
        assert_eq!(chk("123456", Purpose::Login, T + 299), Check::Fresh);
        assert_eq!(chk("123456", Purpose::Login, T + 300), Check::Expired);
        assert_eq!(chk("123457", Purpose::Login, T), Check::NoMatch);
        assert_eq!(chk("", Purpose::Login, T), Check::NoMatch);
        assert_eq!(chk("12345a", Purpose::Login, T), Check::NoMatch);
        assert_eq!(chk("123456", Purpose::Confirm, T), Check::NoMatch, "another purpose");
        assert_eq!(
            check(&rec, &sent, "bob@example.org", NUM, Purpose::Login, "123456", 300, T),
            Check::NoMatch,
            "another mailbox"
        );
        assert_eq!(
            check(&rec, &sent, MB, "+4915100000000", Purpose::Login, "123456", 300, T),
            Check::NoMatch,
            "another number"
        );
        let other_key = sms();
        assert_eq!(
            check(&other_key, &sent, MB, NUM, Purpose::Login, "123456", 300, T),
            Check::NoMatch,
            "another key"
        );
        let used = SentCode {
            used: true,
            ..sent.clone()
        };
        assert_eq!(
            check(&rec, &used, MB, NUM, Purpose::Login, "123456", 300, T),
            Check::Used
        );
        // A newer code replaces it.
        record_send(&mut s, &rec, MB, NUM, Purpose::Login, "654321", T + 61);
        let newer = s.sms_code.clone().unwrap();
        assert_eq!(
            check(&rec, &newer, MB, NUM, Purpose::Login, "123456", 300, T + 62),
            Check::NoMatch
        );
        assert_eq!(
            check(&rec, &newer, MB, NUM, Purpose::Login, "654321", 300, T + 62),
            Check::Fresh
        );
    }

    #[test]
    fn records_and_state_round_trip_without_the_key_in_debug() {
        let rec = SmsRecord {
            pending: Some("+15551234567".into()),
            ..sms()
        };
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<SmsRecord>(&json).unwrap(), rec);
        let dbg = format!("{rec:?}");
        assert!(!dbg.contains(rec.key.as_str()) && !dbg.contains("12344567"), "{dbg}");
        let mut s = MailboxState::default();
        record_send(&mut s, &rec, MB, NUM, Purpose::Confirm, "123456", T);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<MailboxState>(&json).unwrap(), s);
        assert!(serde_json::from_str::<SmsRecord>(r#"{"key":"ab","surprise":1}"#).is_err());
    }
}
