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
/// Imported 8-digit scratch codes (google-authenticator's) are tried the
/// same way, last: the final 8 bytes are one only when they match an
/// unused code of the mailbox, so "password ending in digits + 6-digit
/// code" still splits as before unless those 8 digits ARE such a code;
/// and never where the TOTP codes themselves have 8 digits. The dashed
/// form is ours alone.
/// A string without a trailing code is handed on whole (the password check
/// still runs, and `verify` refuses it as "code missing").
pub fn split(typed: &[u8], digits: u8, is_recovery: impl Fn(&str) -> bool) -> Split {
    for (cut, tail) in recovery::tails(typed) {
        if let Some(code) = recovery::tail_code(tail, digits)
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

    /// A mailbox with imported scratch codes (8 digits) and 6-digit TOTP codes.
    fn scratch(c: &str) -> bool {
        c == "60500093" || c == "49439023"
    }

    #[test]
    fn password_plus_totp_with_and_without_a_scratch_set() {
        // A password ending in digits, then the 6-digit code: the last 8
        // characters are digits, but no scratch code, so nothing changes.
        for is_mine in [no_recovery as fn(&str) -> bool, scratch] {
            let s = split(b"pw2024123456", 6, is_mine);
            assert_eq!(&s.password[..], b"pw2024");
            assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new("123456".into()))));
            let s = split(b"T9D3K!px189145", 6, is_mine);
            assert_eq!(&s.password[..], b"T9D3K!px");
            assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new("189145".into()))));
        }
    }

    #[test]
    fn password_plus_scratch_code() {
        let s = split(b"T9D3K!px60500093", 6, scratch);
        assert_eq!(&s.password[..], b"T9D3K!px");
        assert_eq!(s.factor, Some(Factor::Recovery(Zeroizing::new("60500093".into()))));
        // Digits in the password stay with it.
        let s = split(b"pw2049439023", 6, scratch);
        assert_eq!(&s.password[..], b"pw20");
        assert_eq!(s.factor, Some(Factor::Recovery(Zeroizing::new("49439023".into()))));
        // Not one of the mailbox's unused codes (a guess, or used already:
        // `is_recovery` asks about unused codes only): the last 6 digits are
        // a TOTP code, counted as a wrong one by verify if they are not.
        let s = split(b"T9D3K!px11111111", 6, scratch);
        assert_eq!(&s.password[..], b"T9D3K!px11");
        assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new("111111".into()))));
    }

    /// Used once, the code is no longer among the unused ones: the same
    /// string typed again splits as password + 6 digits (a wrong code).
    #[test]
    fn a_scratch_code_used_twice() {
        let used = std::cell::Cell::new(false);
        let unused = |c: &str| c == "60500093" && !used.get();
        let first = split(b"pw60500093", 6, unused);
        assert_eq!(first.factor, Some(Factor::Recovery(Zeroizing::new("60500093".into()))));
        used.set(true);
        let again = split(b"pw60500093", 6, unused);
        assert_eq!(&again.password[..], b"pw60");
        assert_eq!(again.factor, Some(Factor::Totp(Zeroizing::new("500093".into()))));
    }

    /// With 8-digit TOTP codes, the last 8 digits are always the TOTP code,
    /// even if they equal a scratch code: a TOTP code is never spent as one.
    #[test]
    fn eight_digit_totp_seeds() {
        let s = split(b"pw60500093", 8, scratch);
        assert_eq!(&s.password[..], b"pw");
        assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new("60500093".into()))));
        let s = split(b"pw2024123456", 8, scratch);
        assert_eq!(&s.password[..], b"pw20");
        assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new("24123456".into()))));
        // Our own recovery codes still work there.
        let s = split(b"pwabcd-efgh-jkmn", 8, |c| c == "abcdefghjkmn");
        assert_eq!(s.factor, Some(Factor::Recovery(Zeroizing::new("abcdefghjkmn".into()))));
    }

    /// The dashed form is ours only: `1234-5678` is no scratch code's form.
    #[test]
    fn no_dashed_form_for_scratch_codes() {
        let s = split(b"pw6050-0093", 6, scratch);
        assert_eq!(&s.password[..], b"pw6050-0093");
        assert!(s.factor.is_none());
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

        /// A scratch set changes nothing for a password + TOTP code whose
        /// last 8 characters are not one of its codes.
        #[test]
        fn scratch_sets_leave_totp_logins_alone(pw in proptest::collection::vec(any::<u8>(), 0..50), code in "[0-9]{6}") {
            let mut typed = pw.clone();
            typed.extend_from_slice(code.as_bytes());
            let tail8 = typed.len().checked_sub(8).and_then(|c| typed.get(c..)).map(<[u8]>::to_vec);
            let s = split(&typed, 6, scratch);
            if tail8.as_deref() != Some(b"60500093") && tail8.as_deref() != Some(b"49439023") {
                prop_assert_eq!(&s.password[..], &pw[..]);
                prop_assert_eq!(s.factor, Some(Factor::Totp(Zeroizing::new(code))));
            }
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
