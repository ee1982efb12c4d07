//! The `split` rule: how one typed string `password + code` becomes the
//! password (handed to the password module as PAM_AUTHTOK) and the factor
//! (kept for `verify`). Pure, so it is tested on its own and by proptest.

use crate::recovery;
use crate::secret::{SecretBytes, SecretString};
use zeroize::Zeroizing;

/// The second factor typed after the password.
#[derive(Clone, PartialEq, Eq)]
pub enum Factor {
    /// The trailing digits: a TOTP code.
    Totp(SecretString),
    /// A tail matching one of the mailbox's unused recovery codes, or typed
    /// in their dashed form `xxxx-xxxx-xxxx` (normalised).
    Recovery(SecretString),
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Factor::Totp(_) => "Totp([redacted])",
            Factor::Recovery(_) => "Recovery([redacted])",
        })
    }
}

pub struct Split {
    pub password: SecretBytes,
    pub factor: Option<Factor>,
}

/// Splits `typed` for a mailbox whose codes have `digits` digits.
/// `is_recovery` says whether a normalised tail is one of the mailbox's
/// unused recovery codes; it is asked before the digits are taken, so a
/// recovery code is never cut into "password" + "digits".
/// A tail in the dashed form of a recovery code that matches none is still
/// cut off as one: it is a guess, and `verify` must count it like a wrong
/// code (a password handed on with it would fail as a wrong password, and
/// guesses would go uncounted). The dashed form cannot end in a TOTP code,
/// so no code login is mistaken for one; the undashed form can (12 letters
/// and digits), so it is cut only when it matches.
/// A string without a trailing code is handed on whole (the password check
/// still runs, and `verify` refuses it as "code missing").
pub fn split(typed: &[u8], digits: u8, is_recovery: impl Fn(&str) -> bool) -> Split {
    for (cut, tail) in recovery::tails(typed) {
        let candidate = std::str::from_utf8(tail).ok().and_then(recovery::normalize);
        if let Some(code) = candidate
            && is_recovery(&code)
        {
            return Split {
                password: Zeroizing::new(typed.get(..cut).unwrap_or_default().to_vec()),
                factor: Some(Factor::Recovery(code)),
            };
        }
    }
    let n = usize::from(digits);
    if let Some(cut) = typed.len().checked_sub(n)
        && let (Some(pw), Some(code)) = (typed.get(..cut), typed.get(cut..))
        && code.iter().all(u8::is_ascii_digit)
    {
        return Split {
            password: Zeroizing::new(pw.to_vec()),
            factor: Some(Factor::Totp(Zeroizing::new(String::from_utf8_lossy(code).into_owned()))),
        };
    }
    if let Some((cut, code)) = recovery::dashed_tail(typed) {
        return Split {
            password: Zeroizing::new(typed.get(..cut).unwrap_or_default().to_vec()),
            factor: Some(Factor::Recovery(code)),
        };
    }
    Split {
        password: Zeroizing::new(typed.to_vec()),
        factor: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no_recovery(_: &str) -> bool {
        false
    }

    #[test]
    fn the_readme_example() {
        let s = split(b"T9D3K!px189145", 6, no_recovery);
        assert_eq!(&s.password[..], b"T9D3K!px");
        assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new("189145".into()))));
    }

    #[test]
    fn edge_cases() {
        let s = split(b"", 6, no_recovery);
        assert!(s.password.is_empty() && s.factor.is_none());
        let s = split(b"123456", 6, no_recovery);
        assert!(s.password.is_empty());
        assert!(matches!(s.factor, Some(Factor::Totp(_))));
        // Digits in the password stay with it: only the last six are the code.
        let s = split(b"pw2024123456", 6, no_recovery);
        assert_eq!(&s.password[..], b"pw2024");
        // Fewer than six trailing digits: no code.
        let s = split(b"secret12345", 6, no_recovery);
        assert_eq!(&s.password[..], b"secret12345");
        assert!(s.factor.is_none());
        // Unicode digits are not code digits.
        let s = split("pw١٢٣٤٥٦".as_bytes(), 6, no_recovery);
        assert!(s.factor.is_none());
        // 8-digit mailboxes.
        let s = split(b"pw12345678", 8, no_recovery);
        assert_eq!(&s.password[..], b"pw");
    }

    #[test]
    fn recovery_codes_only_when_they_match() {
        let is_mine = |c: &str| c == "abcdefghjkmn";
        let s = split(b"pwabcd-efgh-jkmn", 6, is_mine);
        assert_eq!(&s.password[..], b"pw");
        assert_eq!(s.factor, Some(Factor::Recovery(Zeroizing::new("abcdefghjkmn".into()))));
        let s = split(b"pwABCDEFGHJKMN", 6, is_mine);
        assert_eq!(&s.password[..], b"pw");
        // Without dashes, a tail that is no recovery code stays with the
        // password: 12 letters and digits 2-9 may be a password's end plus a
        // TOTP code.
        let s = split(b"pwabcdef234567", 6, is_mine);
        assert_eq!(&s.password[..], b"pwabcdef");
        assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new("234567".into()))));
        let s = split(b"pwabcdefghjkmp", 6, is_mine);
        assert_eq!(&s.password[..], b"pwabcdefghjkmp");
        assert!(s.factor.is_none());
    }

    /// A guess at a recovery code, in the form they are shown in, is cut off
    /// even though it matches none, so `verify` counts it.
    #[test]
    fn dashed_recovery_guesses_are_factors() {
        let is_mine = |c: &str| c == "abcdefghjkmn";
        let s = split(b"pwabcd-efgh-jkmp", 6, is_mine);
        assert_eq!(&s.password[..], b"pw");
        assert_eq!(s.factor, Some(Factor::Recovery(Zeroizing::new("abcdefghjkmp".into()))));
        let s = split(b"pwABCD-EFGH-JKMP", 6, is_mine);
        assert_eq!(s.factor, Some(Factor::Recovery(Zeroizing::new("abcdefghjkmp".into()))));
        // Not the shape: a letter outside the alphabet, a dash misplaced.
        for typed in [&b"pwabcd-efgh-jkm1"[..], b"pwabcde-fgh-jkmp", b"pwabcd-efgh-jkmp1"] {
            assert!(split(typed, 6, is_mine).factor.is_none(), "{typed:?}");
        }
    }

    proptest! {
        #[test]
        fn password_plus_code_round_trips(pw in proptest::collection::vec(any::<u8>(), 0..200), code in "[0-9]{6}") {
            let mut typed = pw.clone();
            typed.extend_from_slice(code.as_bytes());
            let s = split(&typed, 6, no_recovery);
            prop_assert_eq!(&s.password[..], &pw[..]);
            prop_assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new(code))));
        }

        #[test]
        fn never_panics_and_loses_nothing(typed in proptest::collection::vec(any::<u8>(), 0..300), digits in 6u8..=8) {
            let s = split(&typed, digits, |c| c.starts_with('a'));
            let tail_len = match &s.factor {
                None => 0,
                Some(Factor::Totp(c)) => c.len(),
                Some(Factor::Recovery(_)) => typed.len() - s.password.len(),
            };
            prop_assert_eq!(s.password.len() + tail_len, typed.len());
            prop_assert!(typed.starts_with(&s.password));
        }
    }
}
