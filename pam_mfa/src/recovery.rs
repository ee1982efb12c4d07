//! Recovery codes: single-use codes typed in place of the TOTP code when the
//! phone is lost. They contain letters, so `split` never mistakes a password
//! that ends in digits for one, and a tail is taken as a recovery code only
//! when it matches one of the mailbox's unused codes, or has their printed
//! form `xxxx-xxxx-xxxx` (then a wrong one is a guess `verify` counts).
//!
//! Imported scratch codes: `mfa-ctl import google-authenticator` carries over
//! the user's 8-digit "emergency scratch codes" so the paper they printed
//! keeps working. They are stored and checked like ours (hashed, single
//! use, [`find`]) in a set marked as theirs ([`RecoverySet::scratch`]), but
//! they are weaker: google-authenticator draws them from
//! 10000000..=99999999, 9×10^7 values or 26.4 bits, against 59 bits for
//! ours. So few values are safe only if every guess runs into the lock-out,
//! and a guess reaches the lock-out only if `split` cuts it off the password
//! whether it matches or not: a tail left on the password fails in the
//! password module, where pam_mfa never sees it. Eight bare digits cannot be
//! cut off on sight (they may be the end of a password followed by a TOTP
//! code), so scratch codes are typed in a form of their own, `1234-5678`:
//! a TOTP code of 6, 7 or 8 digits never has a dash 5th from the end, and a
//! tail in that form is, for a mailbox whose set holds scratch codes,
//! always a scratch-code attempt, counted by `verify` when wrong. Their
//! hashes could be reversed by trying all 9×10^7 values, but only by
//! someone who can read the record, and the record holds the TOTP seed
//! itself. Advise users who have them to replace them with ours:
//! `mfa-ctl recovery-codes MAILBOX` (which voids the old ones).

use crate::secret::{self, RandomError, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// No 0/o, 1/l/i: nothing to misread when typing from paper.
pub const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// 12 symbols of 31: 59 bits, single use, behind the password and the lock-out.
pub const LEN: usize = 12;
pub const DEFAULT_COUNT: usize = 10;
/// An imported google-authenticator scratch code: 8 ASCII digits.
pub const SCRATCH_LEN: usize = 8;
/// google-authenticator writes at most this many scratch codes (`-e`).
pub const MAX_SCRATCH_CODES: usize = 10;
const PURPOSE: &str = "recovery";

/// The stored form: hashes only, and an id so used codes (kept in the state
/// file) are forgotten when the set is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySet {
    pub id: String,
    pub created: u64,
    pub hashes: Vec<String>,
    /// Imported scratch codes rather than ours: `split` then takes any tail
    /// typed `1234-5678` for an attempt at one. Absent (false) for ours, so
    /// their records read and write as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scratch: bool,
}

/// A new set: the stored form and the codes to show once (`xxxx-xxxx-xxxx`).
pub fn generate(mailbox: &str, count: usize, now: u64) -> Result<(RecoverySet, Vec<SecretString>), RandomError> {
    let mut shown = Vec::with_capacity(count);
    let mut hashes = Vec::with_capacity(count);
    for _ in 0..count {
        let raw = secret::random_string(ALPHABET, LEN)?;
        hashes.push(secret::token_hash(PURPOSE, mailbox, raw.as_bytes()));
        shown.push(secret::grouped(&raw, '-'));
    }
    let set = RecoverySet {
        id: secret::random_id()?,
        created: now,
        hashes,
        scratch: false,
    };
    Ok((set, shown))
}

/// The canonical form of a typed code of ours: dashes and spaces dropped,
/// lower-cased; `None` when it is not 12 symbols of [`ALPHABET`].
pub fn normalize(typed: &str) -> Option<SecretString> {
    // Sized up front: a growing String would leave copies of the code behind.
    let mut s: SecretString = Zeroizing::new(String::with_capacity(typed.len()));
    s.extend(
        typed
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_ascii_lowercase()),
    );
    (s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// Whether a normalised code is an imported scratch code (8 digits) rather
/// than one of ours.
pub fn is_scratch(code: &str) -> bool {
    code.len() == SCRATCH_LEN && code.bytes().all(|b| b.is_ascii_digit())
}

/// A scratch code in the one form it is typed in, `1234-5678`, as its 8
/// digits. No other form: eight bare digits may be a password's end and a
/// TOTP code, and spaces or other dashes would let password characters in.
pub fn scratch_form(typed: &[u8]) -> Option<SecretString> {
    let shaped = typed.len() == SCRATCH_LEN + 1
        && typed.iter().enumerate().all(|(i, b)| match i {
            4 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let mut code: SecretString = Zeroizing::new(String::with_capacity(SCRATCH_LEN));
    code.extend(typed.iter().filter(|b| b.is_ascii_digit()).map(|b| char::from(*b)));
    Some(code)
}

/// The tail of `typed` in the form [`scratch_form`] takes, as its 8 digits,
/// with the length of its prefix.
pub fn scratch_tail(typed: &[u8]) -> Option<(usize, SecretString)> {
    let cut = typed.len().checked_sub(SCRATCH_LEN + 1)?;
    scratch_form(typed.get(cut..)?).map(|code| (cut, code))
}

/// The tails of `typed` that could be one of our codes (with or without
/// its two dashes), longest first, each with the length of its prefix.
pub fn tails(typed: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    [LEN + 2, LEN].into_iter().filter_map(move |n| {
        let cut = typed.len().checked_sub(n)?;
        typed.get(cut..).map(|t| (cut, t))
    })
}

/// The code of ours a tail from [`tails`] could be, normalised.
pub fn tail_code(tail: &[u8]) -> Option<SecretString> {
    normalize(std::str::from_utf8(tail).ok()?)
}

/// The stored form of imported scratch codes (8 digits each): hashed like
/// ours, so [`find`] and the state's record of used codes work the same for
/// both, and marked as scratch codes. Nothing but the hashes is kept.
pub fn from_codes(mailbox: &str, codes: &[SecretString], now: u64) -> Result<RecoverySet, RandomError> {
    Ok(RecoverySet {
        id: secret::random_id()?,
        created: now,
        hashes: hashes_of(mailbox, codes),
        scratch: true,
    })
}

/// The hashes [`from_codes`] stores, to tell whether a set already holds
/// exactly these codes (an import run twice changes nothing).
pub fn hashes_of(mailbox: &str, codes: &[SecretString]) -> Vec<String> {
    codes
        .iter()
        .map(|c| secret::token_hash(PURPOSE, mailbox, c.as_bytes()))
        .collect()
}

/// The tail of `typed` in the form codes are shown in, `xxxx-xxxx-xxxx`
/// (any case), normalised, with the length of its prefix.
pub fn dashed_tail(typed: &[u8]) -> Option<(usize, SecretString)> {
    let cut = typed.len().checked_sub(LEN + 2)?;
    let tail = typed.get(cut..)?;
    let shaped = tail.iter().enumerate().all(|(i, b)| match i {
        4 | 9 => *b == b'-',
        _ => ALPHABET.contains(&b.to_ascii_lowercase()),
    });
    if !shaped {
        return None;
    }
    normalize(std::str::from_utf8(tail).ok()?).map(|code| (cut, code))
}

/// Index of the unused code in `set` that `candidate` (normalised) matches.
/// Compares every hash in constant time.
pub fn find(set: &RecoverySet, used: &[u16], mailbox: &str, candidate: &str) -> Option<usize> {
    let h = secret::token_hash(PURPOSE, mailbox, candidate.as_bytes());
    let mut found = None;
    for (i, stored) in set.hashes.iter().enumerate() {
        let unused = u16::try_from(i).is_ok_and(|i| !used.contains(&i));
        if secret::ct_eq(stored.as_bytes(), h.as_bytes()) && unused {
            found = found.or(Some(i));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_and_find() {
        let (set, codes) = generate("a@x.org", 10, 7).unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(set.hashes.len(), 10);
        for (i, c) in codes.iter().enumerate() {
            assert_eq!(c.len(), 14);
            let n = normalize(c).unwrap();
            assert_eq!(find(&set, &[], "a@x.org", &n), Some(i));
            assert_eq!(find(&set, &[i as u16], "a@x.org", &n), None, "used");
            assert_eq!(find(&set, &[], "b@x.org", &n), None, "other mailbox");
        }
        assert_eq!(normalize("ABCD EFGH JKMN").unwrap().as_str(), "abcdefghjkmn");
        assert!(normalize("123456").is_none());
        assert!(normalize("abcd-efgh-jkm0").is_none());
    }

    #[test]
    fn tails_of_short_and_long_strings() {
        let t: Vec<_> = tails(b"pw-abcd-efgh-jkmn").collect();
        assert_eq!(t, vec![(3, &b"abcd-efgh-jkmn"[..]), (5, &b"cd-efgh-jkmn"[..])]);
        assert_eq!(tails(b"short").count(), 0);
    }

    #[test]
    fn scratch_codes_match_once_per_mailbox() {
        let codes: Vec<SecretString> = ["60500093", "49439023"]
            .iter()
            .map(|c| Zeroizing::new(c.to_string()))
            .collect();
        let set = from_codes("a@x.org", &codes, 7).unwrap();
        assert!(set.scratch);
        assert!(!generate("a@x.org", 1, 7).unwrap().0.scratch, "ours are not");
        assert_eq!(set.hashes, hashes_of("a@x.org", &codes));
        assert_eq!(find(&set, &[], "a@x.org", "49439023"), Some(1));
        assert_eq!(find(&set, &[1], "a@x.org", "49439023"), None, "used");
        assert_eq!(find(&set, &[], "b@x.org", "49439023"), None, "other mailbox");
    }

    /// `1234-5678` and nothing else: not bare, not with spaces, not with
    /// the dash elsewhere, not with other digits than ASCII ones.
    #[test]
    fn the_one_form_of_a_scratch_code() {
        assert_eq!(scratch_form(b"6050-0093").unwrap().as_str(), "60500093");
        for not_one in [
            &b"60500093"[..],
            b"6050 0093",
            b"605-00093",
            b"6050--0093",
            b"6050-009",
            b"6050-00931",
            b"605a-0093",
            "٦٠٥٠-٠٠٩٣".as_bytes(),
        ] {
            assert!(scratch_form(not_one).is_none(), "{not_one:?}");
        }
        assert_eq!(
            scratch_tail(b"pw6050-0093").map(|(c, s)| (c, s.to_string())),
            Some((2, "60500093".into()))
        );
        assert!(scratch_tail(b"050-0093").is_none(), "too short");
        // Bare digits are no code of ours either, nor a scratch code.
        assert!(normalize("60500093").is_none());
    }

    /// Our codes end in `xxxx-xxxx`, which can be all digits
    /// (`abcd-2345-6789`): their full 14-character form is recognised as
    /// ours, and the scratch form only ever looks at the last 9 characters.
    #[test]
    fn our_codes_and_the_scratch_form() {
        let ours = b"abcd-2345-6789";
        assert_eq!(tail_code(ours).unwrap().as_str(), "abcd23456789");
        assert_eq!(dashed_tail(ours).unwrap().0, 0);
        assert!(scratch_tail(ours).is_some(), "its last 9 characters have the shape");
        // Ours use no 0 or 1, so a scratch code with one is never ours.
        assert!(tail_code(b"abcd-1234-5678").is_none());
    }
}
