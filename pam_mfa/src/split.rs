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
    /// in their dashed form `xxxx-xxxx-xxxx` (normalised); or, for a mailbox
    /// with imported scratch codes, a tail typed `1234-5678` (its 8 digits).
    Recovery(SecretString),
}

impl Factor {
    /// What was typed, as logs name it: `code`, `recovery_code` or
    /// `scratch_code` (an imported google-authenticator scratch code).
    pub fn kind(&self) -> &'static str {
        match self {
            Factor::Totp(_) => "code",
            Factor::Recovery(c) if recovery::is_scratch(c) => "scratch_code",
            Factor::Recovery(_) => "recovery_code",
        }
    }
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

/// What `split` needs to know about the mailbox's codes.
pub struct Codes<F: Fn(&str) -> bool> {
    /// Digits of its TOTP codes.
    pub digits: u8,
    /// Whether its recovery set holds imported scratch codes.
    pub scratch: bool,
    /// Whether a normalised tail is one of its unused recovery codes of ours.
    pub is_recovery: F,
}

/// Splits `typed` for a mailbox whose codes `codes` describes.
///
/// Every tail that is an attempt at a code is cut off, right or wrong, so
/// that `verify` counts a wrong one: left on the password it would fail in
/// the password module, and guesses would go uncounted. Hence only forms
/// that cannot be the end of "password + TOTP code" are cut on sight:
/// - a scratch code, typed `1234-5678`, for a mailbox holding them: a TOTP
///   code of 6 to 8 digits never has a dash 5th from the end. Looked at
///   first: their set holds no codes of ours, and a password ending in
///   `abcd-` would otherwise make `abcd-2345-6789` look like one of ours;
/// - one of our recovery codes that matches an unused one, with or without
///   its dashes (undashed, 12 letters and digits, it may be the end of a
///   password plus a code, so only when it matches);
/// - the trailing digits, as many as the mailbox's codes have;
/// - our dashed form `xxxx-xxxx-xxxx`, which cannot end in a TOTP code.
///
/// A string without a trailing code is handed on whole (the password check
/// still runs, and `verify` refuses it as "code missing").
pub fn split<F: Fn(&str) -> bool>(typed: &[u8], codes: &Codes<F>) -> Split {
    let cut_at = |cut: usize, code: SecretString| Split {
        password: Zeroizing::new(typed.get(..cut).unwrap_or_default().to_vec()),
        factor: Some(Factor::Recovery(code)),
    };
    if codes.scratch
        && let Some((cut, code)) = recovery::scratch_tail(typed)
    {
        return cut_at(cut, code);
    }
    for (cut, tail) in recovery::tails(typed) {
        if let Some(code) = recovery::tail_code(tail)
            && (codes.is_recovery)(&code)
        {
            return cut_at(cut, code);
        }
    }
    let n = usize::from(codes.digits);
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
        return cut_at(cut, code);
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

    /// `split` for a mailbox with `digits`-digit codes and no recovery set.
    fn plain(typed: &[u8], digits: u8) -> Split {
        ours(typed, digits, no_recovery)
    }

    /// `split` for a mailbox whose set is ours.
    fn ours(typed: &[u8], digits: u8, is_recovery: impl Fn(&str) -> bool) -> Split {
        split(
            typed,
            &Codes {
                digits,
                scratch: false,
                is_recovery,
            },
        )
    }

    /// `split` for a mailbox holding imported scratch codes (which are never
    /// asked about: every tail in their form is cut off).
    fn scratch(typed: &[u8], digits: u8) -> Split {
        split(
            typed,
            &Codes {
                digits,
                scratch: true,
                is_recovery: no_recovery,
            },
        )
    }

    fn recovery(code: &str) -> Option<Factor> {
        Some(Factor::Recovery(Zeroizing::new(code.into())))
    }

    fn totp(code: &str) -> Option<Factor> {
        Some(Factor::Totp(Zeroizing::new(code.into())))
    }

    #[test]
    fn the_readme_example() {
        let s = plain(b"T9D3K!px189145", 6);
        assert_eq!(&s.password[..], b"T9D3K!px");
        assert_eq!(s.factor, totp("189145"));
    }

    #[test]
    fn edge_cases() {
        let s = plain(b"", 6);
        assert!(s.password.is_empty() && s.factor.is_none());
        let s = plain(b"123456", 6);
        assert!(s.password.is_empty());
        assert!(matches!(s.factor, Some(Factor::Totp(_))));
        // Digits in the password stay with it: only the last six are the code.
        let s = plain(b"pw2024123456", 6);
        assert_eq!(&s.password[..], b"pw2024");
        // Fewer than six trailing digits: no code.
        let s = plain(b"secret12345", 6);
        assert_eq!(&s.password[..], b"secret12345");
        assert!(s.factor.is_none());
        // Unicode digits are not code digits.
        let s = plain("pw١٢٣٤٥٦".as_bytes(), 6);
        assert!(s.factor.is_none());
        // 8-digit mailboxes.
        let s = plain(b"pw12345678", 8);
        assert_eq!(&s.password[..], b"pw");
    }

    #[test]
    fn recovery_codes_only_when_they_match() {
        let is_mine = |c: &str| c == "abcdefghjkmn";
        let s = ours(b"pwabcd-efgh-jkmn", 6, is_mine);
        assert_eq!(&s.password[..], b"pw");
        assert_eq!(s.factor, recovery("abcdefghjkmn"));
        let s = ours(b"pwABCDEFGHJKMN", 6, is_mine);
        assert_eq!(&s.password[..], b"pw");
        // Without dashes, a tail that is no recovery code stays with the
        // password: 12 letters and digits 2-9 may be a password's end plus a
        // TOTP code.
        let s = ours(b"pwabcdef234567", 6, is_mine);
        assert_eq!(&s.password[..], b"pwabcdef");
        assert_eq!(s.factor, totp("234567"));
        let s = ours(b"pwabcdefghjkmp", 6, is_mine);
        assert_eq!(&s.password[..], b"pwabcdefghjkmp");
        assert!(s.factor.is_none());
    }

    /// A guess at a recovery code, in the form they are shown in, is cut off
    /// even though it matches none, so `verify` counts it.
    #[test]
    fn dashed_recovery_guesses_are_factors() {
        let is_mine = |c: &str| c == "abcdefghjkmn";
        let s = ours(b"pwabcd-efgh-jkmp", 6, is_mine);
        assert_eq!(&s.password[..], b"pw");
        assert_eq!(s.factor, recovery("abcdefghjkmp"));
        let s = ours(b"pwABCD-EFGH-JKMP", 6, is_mine);
        assert_eq!(s.factor, recovery("abcdefghjkmp"));
        // Not the shape: a letter outside the alphabet, a dash misplaced.
        for typed in [&b"pwabcd-efgh-jkm1"[..], b"pwabcde-fgh-jkmp", b"pwabcd-efgh-jkmp1"] {
            assert!(ours(typed, 6, is_mine).factor.is_none(), "{typed:?}");
        }
    }

    /// For a mailbox with scratch codes, any tail `dddd-dddd` is a scratch
    /// code attempt, right or wrong: `verify` decides, and counts a wrong one.
    #[test]
    fn scratch_codes_are_cut_off_by_their_form() {
        for digits in [6, 7, 8] {
            let s = scratch(b"T9D3K!px6050-0093", digits);
            assert_eq!(&s.password[..], b"T9D3K!px");
            assert_eq!(s.factor, recovery("60500093"));
            assert_eq!(s.factor.as_ref().map(Factor::kind), Some("scratch_code"));
            // A guess is cut off alike.
            let s = scratch(b"T9D3K!px1111-1111", digits);
            assert_eq!((&s.password[..], s.factor), (&b"T9D3K!px"[..], recovery("11111111")));
            // Digits and dashes in the password stay with it.
            let s = scratch(b"pw12-3456-7890", digits);
            assert_eq!((&s.password[..], s.factor), (&b"pw12-"[..], recovery("34567890")));
        }
        // Only the exact form: bare, with a space, or a dash elsewhere, the
        // tail is left to the TOTP rule (and to the password module).
        let s = scratch(b"pw60500093", 6);
        assert_eq!((&s.password[..], s.factor), (&b"pw60"[..], totp("500093")));
        for typed in [&b"pw6050 0093"[..], b"pw605-00093", b"pw60500-093"] {
            let s = scratch(typed, 6);
            assert!(s.factor.is_none(), "{typed:?}");
            assert_eq!(&s.password[..], typed);
        }
    }

    /// The same form for a mailbox without scratch codes is no code at all:
    /// the string goes to the password module whole, as before.
    #[test]
    fn the_scratch_form_without_scratch_codes() {
        let s = plain(b"pw6050-0093", 6);
        assert_eq!(&s.password[..], b"pw6050-0093");
        assert!(s.factor.is_none());
    }

    /// A password ending in `abcd-` before a scratch code makes the last 14
    /// characters look like a code of ours; with scratch codes, the scratch
    /// reading wins (the set holds none of ours).
    #[test]
    fn a_scratch_code_that_looks_like_the_end_of_ours() {
        let s = scratch(b"pwabcd-2345-6789", 6);
        assert_eq!((&s.password[..], s.factor), (&b"pwabcd-"[..], recovery("23456789")));
        let s = ours(b"pwabcd-2345-6789", 6, no_recovery);
        assert_eq!((&s.password[..], s.factor), (&b"pw"[..], recovery("abcd23456789")));
    }

    proptest! {
        #[test]
        fn password_plus_code_round_trips(
            pw in proptest::collection::vec(any::<u8>(), 0..200),
            code in "[0-9]{6}",
            has_scratch: bool,
        ) {
            let mut typed = pw.clone();
            typed.extend_from_slice(code.as_bytes());
            let s = if has_scratch { scratch(&typed, 6) } else { plain(&typed, 6) };
            prop_assert_eq!(&s.password[..], &pw[..]);
            prop_assert_eq!(s.factor, totp(&code));
        }

        /// Any password, then a TOTP code of 6 to 8 digits: a scratch set
        /// changes nothing, whatever the password ends in.
        #[test]
        fn scratch_sets_leave_totp_logins_alone(
            pw in "[-0-9a-z]{0,20}",
            digits in 6u8..=8,
            code in "[0-9]{8}",
        ) {
            let code = &code[..usize::from(digits)];
            let typed = format!("{pw}{code}");
            let s = scratch(typed.as_bytes(), digits);
            prop_assert_eq!(&s.password[..], pw.as_bytes());
            prop_assert_eq!(s.factor, totp(code));
        }

        /// Any password, then a scratch code typed `dddd-dddd`: cut there.
        #[test]
        fn scratch_codes_after_any_password(pw in proptest::collection::vec(any::<u8>(), 0..60), code in "[0-9]{4}-[0-9]{4}") {
            let typed = [&pw[..], code.as_bytes()].concat();
            let s = scratch(&typed, 6);
            prop_assert_eq!(&s.password[..], &pw[..]);
            prop_assert_eq!(s.factor, recovery(&code.replace('-', "")));
        }

        #[test]
        fn never_panics_and_loses_nothing(typed in proptest::collection::vec(any::<u8>(), 0..300), digits in 6u8..=8, has_scratch: bool) {
            let s = split(&typed, &Codes { digits, scratch: has_scratch, is_recovery: |c: &str| c.starts_with('a') });
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
