//! TOTP seeds and code checks, including the replay check: a code is accepted
//! only for a time step later than the last step accepted for the mailbox
//! (RFC 6238 §5.2, NIST SP 800-63B "accepted only once").

use crate::secret::{self, RandomError, SecretBytes, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// RFC 4226 §4: at least 128 bits; we make 160 (the recommended size).
/// Shorter secrets exist only where an admin imported one on purpose
/// (`mfa-ctl import --allow-short-secrets`): they are "weak"
/// ([`TotpSeed::is_weak`]), listed by `mfa-ctl list --weak`.
pub const MIN_SECRET_BYTES: usize = 16;
pub const NEW_SECRET_BYTES: usize = 20;
/// The shortest secret that computes codes at all: 80 bits, what
/// google-authenticator wrote until 2016 (so those users keep their app
/// entry after an import). Below it, a few observed codes are enough to
/// search the whole key space offline; no flag lets such a seed in.
pub const MIN_USABLE_SECRET_BYTES: usize = 10;

/// The key of RFC 6238's test vectors (Appendix B, SHA-1:
/// "12345678901234567890"), base32: the one known seed every test uses, so
/// codes can be checked against the RFC and `oathtool`. Never a real seed.
pub const RFC6238_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Algorithm {
    #[default]
    SHA1,
    SHA256,
    SHA512,
}

impl Algorithm {
    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::SHA1 => totp_rs::Algorithm::SHA1,
            Algorithm::SHA256 => totp_rs::Algorithm::SHA256,
            Algorithm::SHA512 => totp_rs::Algorithm::SHA512,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::SHA1 => "SHA1",
            Algorithm::SHA256 => "SHA256",
            Algorithm::SHA512 => "SHA512",
        }
    }
}

fn default_digits() -> u8 {
    6
}

fn default_period() -> u64 {
    30
}

/// A mailbox's TOTP seed and its parameters, as stored in its record.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpSeed {
    /// Base32 (RFC 4648, no padding), as typed into apps by hand.
    pub secret: SecretString,
    #[serde(default = "default_digits")]
    pub digits: u8,
    #[serde(default = "default_period")]
    pub period: u64,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// When it was created (Unix seconds).
    #[serde(default)]
    pub created: u64,
}

impl fmt::Debug for TotpSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSeed")
            .field("secret", &"[redacted]")
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedError {
    NotBase32,
    TooShort(usize),
    BadDigits(u8),
    BadPeriod(u64),
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedError::NotBase32 => f.write_str("the secret is not valid base32"),
            SeedError::TooShort(bits) => write!(
                f,
                "the secret has {bits} bits, fewer than the 80 pam_mfa accepts at all (128 are required for new ones); re-enrol the mailbox"
            ),
            SeedError::BadDigits(d) => write!(f, "digits = {d}: must be 6, 7 or 8"),
            SeedError::BadPeriod(p) => write!(f, "period = {p}: must be 10 to 300 seconds"),
        }
    }
}

impl std::error::Error for SeedError {}

impl TotpSeed {
    /// A fresh 160-bit seed.
    pub fn generate(digits: u8, period: u64, now: u64) -> Result<TotpSeed, RandomError> {
        let raw = secret::random_bytes(NEW_SECRET_BYTES)?;
        Ok(TotpSeed::from_key(&raw, digits, period, now))
    }

    /// A SHA-1 seed for a key given as bytes (base32, unpadded, as apps
    /// and `oathtool -b` read it).
    pub fn from_key(key: &[u8], digits: u8, period: u64, created: u64) -> TotpSeed {
        let secret = Zeroizing::new(
            totp_rs::Secret::from(key.to_vec())
                .to_base32()
                .trim_end_matches('=')
                .to_string(),
        );
        TotpSeed {
            secret,
            digits,
            period,
            algorithm: Algorithm::SHA1,
            created,
        }
    }

    /// The raw key as stored, decoded but not judged (see [`TotpSeed::key`]).
    fn decoded(&self) -> Result<SecretBytes, SeedError> {
        let cleaned: SecretString = Zeroizing::new(
            self.secret
                .chars()
                .filter(|c| *c != ' ' && *c != '=')
                .collect::<String>()
                .to_ascii_uppercase(),
        );
        let parsed = totp_rs::Secret::try_from_base32(cleaned.as_str()).map_err(|_| SeedError::NotBase32)?;
        Ok(Zeroizing::new(parsed.as_ref().to_vec()))
    }

    /// Whether the secret is shorter than the 128 bits RFC 4226 requires
    /// ([`MIN_SECRET_BYTES`]). The one definition of "weak" that
    /// `mfa-ctl list --weak` and `mfa-ctl import` share. A secret that does
    /// not decode is broken rather than weak (doctor reports it): false.
    pub fn is_weak(&self) -> bool {
        self.decoded().is_ok_and(|key| key.len() < MIN_SECRET_BYTES)
    }

    /// The raw key, checked: valid base32, at least 80 bits
    /// ([`MIN_USABLE_SECRET_BYTES`]). A weak seed (80 to 127 bits) computes
    /// codes: it was imported knowingly, and refusing it at login would lock
    /// its user out rather than protect anyone.
    pub fn key(&self) -> Result<SecretBytes, SeedError> {
        let bytes = self.decoded()?;
        if bytes.len() < MIN_USABLE_SECRET_BYTES {
            return Err(SeedError::TooShort(bytes.len() * 8));
        }
        Ok(bytes)
    }

    /// A validated generator for this seed (checked once, before any code).
    pub fn generator(&self) -> Result<Generator, SeedError> {
        if !(6..=8).contains(&self.digits) {
            return Err(SeedError::BadDigits(self.digits));
        }
        if !(10..=300).contains(&self.period) {
            return Err(SeedError::BadPeriod(self.period));
        }
        let key = self.key()?;
        let totp = totp_rs::Builder::new()
            .with_algorithm(self.algorithm.to_totp_rs())
            .with_digits(self.digits)
            .with_step_duration(self.period)
            .with_secret(key.to_vec())
            .build_noncompliant();
        Ok(Generator {
            totp,
            key,
            period: self.period,
            digits: self.digits,
        })
    }

    /// The `otpauth://` URI authenticator apps scan. It carries every
    /// parameter (some apps assume defaults otherwise and then show wrong codes).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> SecretString {
        Zeroizing::new(format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
            percent_encode(issuer),
            percent_encode(account),
            self.secret.as_str(),
            percent_encode(issuer),
            self.algorithm.as_str(),
            self.digits,
            self.period
        ))
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A seed ready to compute codes.
pub struct Generator {
    totp: totp_rs::Totp,
    key: SecretBytes,
    pub period: u64,
    pub digits: u8,
}

/// What a typed code is, for one mailbox at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Valid for this step, later than any step accepted before.
    Fresh { step: u64 },
    /// Valid only for a step already accepted (or earlier): a replay.
    Replayed { step: u64 },
    /// Not the code of any step in the window.
    Wrong,
}

impl Generator {
    /// The code for the step containing `time` (for enrolment screens and tests).
    pub fn code_at(&self, time: u64) -> SecretString {
        Zeroizing::new(self.totp.generate(time).to_string())
    }

    pub fn step_of(&self, time: u64) -> u64 {
        time / self.period
    }

    /// Seconds until the code shown at `time` is replaced.
    pub fn seconds_left(&self, time: u64) -> u64 {
        self.period - time % self.period
    }

    /// The seed's raw key, used to key fingerprints of failed attempts.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Checks `code` against every step in `now ± window`, accepting only a
    /// step later than `last_step`. Every step of the window is computed and
    /// compared in constant time, so the time taken does not say which step
    /// (if any) matched.
    pub fn check(&self, code: &str, now: u64, window: u8, last_step: Option<u64>) -> CodeCheck {
        if code.len() != usize::from(self.digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return CodeCheck::Wrong;
        }
        let origin = now / self.period;
        let first = origin.saturating_sub(u64::from(window));
        let last = origin.saturating_add(u64::from(window));
        let mut fresh = None;
        let mut stale = None;
        for step in first..=last {
            let Some(at) = step.checked_mul(self.period) else {
                break;
            };
            if secret::ct_eq(self.code_at(at).as_bytes(), code.as_bytes()) {
                // The replay check.
                if last_step.is_none_or(|last| step > last) {
                    fresh = fresh.or(Some(step));
                } else {
                    stale = Some(step);
                }
            }
        }
        match (fresh, stale) {
            (Some(step), _) => CodeCheck::Fresh { step },
            (None, Some(step)) => CodeCheck::Replayed { step },
            (None, None) => CodeCheck::Wrong,
        }
    }
}

/// What a typed code is once the spaces and dashes people type around or
/// inside it (`123 456`, `123-456`) are dropped. The digits themselves are
/// left as typed: [`Generator::check`] refuses anything that is not one.
pub fn clean_code(typed: &str) -> SecretString {
    // Sized up front: a growing String would leave copies of the code behind.
    let mut out = Zeroizing::new(String::with_capacity(typed.len()));
    out.extend(typed.chars().filter(|c| !c.is_whitespace() && *c != '-'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::RFC6238_KEY as RFC_KEY;

    fn seed(digits: u8) -> TotpSeed {
        TotpSeed {
            secret: Zeroizing::new(RFC_KEY.to_string()),
            digits,
            period: 30,
            algorithm: Algorithm::SHA1,
            created: 0,
        }
    }

    #[test]
    fn rfc6238_vectors() {
        let g = seed(8).generator().unwrap();
        assert_eq!(g.code_at(59).as_str(), "94287082");
        assert_eq!(g.code_at(1_111_111_109).as_str(), "07081804");
        assert_eq!(g.code_at(2_000_000_000).as_str(), "69279037");
        assert_eq!(seed(6).generator().unwrap().code_at(59).as_str(), "287082");
    }

    #[test]
    fn window_and_replay() {
        let g = seed(6).generator().unwrap();
        let now = 1_700_000_015; // step 56666667
        let step = now / 30;
        let cur = g.code_at(now);
        let prev = g.code_at(now - 30);
        let next = g.code_at(now + 30);
        let far = g.code_at(now - 60);
        assert_eq!(g.check(&cur, now, 1, None), CodeCheck::Fresh { step });
        assert_eq!(g.check(&prev, now, 1, None), CodeCheck::Fresh { step: step - 1 });
        assert_eq!(g.check(&next, now, 1, None), CodeCheck::Fresh { step: step + 1 });
        assert_eq!(g.check(&far, now, 1, None), CodeCheck::Wrong);
        assert_eq!(g.check(&far, now, 2, None), CodeCheck::Fresh { step: step - 2 });
        // Once a step is accepted, that step and earlier ones are replays.
        assert_eq!(g.check(&cur, now, 1, Some(step)), CodeCheck::Replayed { step });
        assert_eq!(
            g.check(&prev, now, 1, Some(step)),
            CodeCheck::Replayed { step: step - 1 }
        );
        assert_eq!(g.check(&next, now, 1, Some(step)), CodeCheck::Fresh { step: step + 1 });
        // Malformed input is simply wrong.
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert_eq!(g.check(bad, now, 1, None), CodeCheck::Wrong, "{bad}");
        }
    }

    #[test]
    fn seeds_are_checked() {
        let mut s = seed(6);
        s.secret = Zeroizing::new("GEZDGNBV".to_string()); // 40 bits
        assert_eq!(s.key().unwrap_err(), SeedError::TooShort(40));
        s.secret = Zeroizing::new("not base32!!".to_string());
        assert_eq!(s.key().unwrap_err(), SeedError::NotBase32);
        let mut s = seed(9);
        assert!(matches!(s.generator(), Err(SeedError::BadDigits(9))));
        s.digits = 6;
        s.period = 0;
        assert!(matches!(s.generator(), Err(SeedError::BadPeriod(0))));
        let fresh = TotpSeed::generate(6, 30, 5).unwrap();
        assert_eq!(fresh.key().unwrap().len(), NEW_SECRET_BYTES);
        assert_eq!(fresh.secret.len(), 32);
        assert!(!fresh.is_weak());
    }

    /// 80 to 127 bits: imported on purpose, computes codes, and is weak.
    #[test]
    fn weak_seeds_work_and_say_so() {
        let mut s = seed(6);
        assert!(!s.is_weak(), "128+ bits");
        s.secret = Zeroizing::new("GEZDGNBVGY3TQOJQ".to_string()); // 80 bits, GA before 2016
        assert!(s.is_weak());
        assert_eq!(s.key().unwrap().len(), 10);
        assert!(s.generator().is_ok());
        s.secret = Zeroizing::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOI".to_string()); // 155 bits -> 19 bytes
        assert!(!s.is_weak());
        s.secret = Zeroizing::new("GEZDGNBVGY3TQOI".to_string()); // 75 bits -> 9 bytes
        assert_eq!(s.key().unwrap_err(), SeedError::TooShort(72));
        assert!(s.is_weak());
        s.secret = Zeroizing::new("not base32!!".to_string());
        assert!(!s.is_weak(), "broken, not weak");
    }

    #[test]
    fn otpauth_uri_carries_everything() {
        let uri = seed(6).otpauth_uri("Example Mail", "alice@example.org");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Example%20Mail:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Mail&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn codes_are_cleaned_of_spaces_and_dashes() {
        assert_eq!(clean_code(" 123 456\t").as_str(), "123456");
        assert_eq!(clean_code("123-456").as_str(), "123456");
        assert_eq!(clean_code("12a456").as_str(), "12a456");
    }
}
