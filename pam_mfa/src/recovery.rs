//! Recovery codes: single-use codes typed in place of the TOTP code when the
//! phone is lost. They contain letters, so `split` never mistakes a password
//! that ends in digits for one, and a tail is taken as a recovery code only
//! when it matches one of the mailbox's unused codes.
//!
//! Imported scratch codes: `mfa-ctl import google-authenticator` carries over
//! the user's 8-digit "emergency scratch codes" so the paper they printed
//! keeps working. They are stored and checked like ours (hashed, single
//! use, [`find`]), but they are weaker: google-authenticator draws them from
//! 10000000..=99999999, 9×10^7 values or 26.4 bits, against 59 bits for
//! ours; and being all digits, one could be the end of a password followed
//! by a TOTP code. `split` therefore takes an 8-digit tail as a scratch code
//! only when it IS one of the mailbox's unused codes (never by its shape),
//! and never for a mailbox whose TOTP codes have 8 digits (there the 8
//! digits are the TOTP code). The price, still open: a wrong guess at a
//! scratch code is never cut off, so it reaches the password module as a
//! wrong password and the lock-out does not count it. Their hashes could be reversed by trying all
//! 9×10^7 values, but only by someone who can read the record, and the
//! record holds the TOTP seed itself. Advise users who have them to replace
//! them with ours: `mfa-ctl recovery-codes MAILBOX` (which voids the old ones).

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
const PURPOSE: &str = "recovery";

/// The stored form: hashes only, and an id so used codes (kept in the state
/// file) are forgotten when the set is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySet {
    pub id: String,
    pub created: u64,
    pub hashes: Vec<String>,
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
    };
    Ok((set, shown))
}

/// The canonical form of a typed code: dashes and spaces dropped, lower-cased;
/// `None` when it cannot be a recovery code. Ours are 12 symbols of
/// [`ALPHABET`]; an imported scratch code is 8 ASCII digits.
pub fn normalize(typed: &str) -> Option<SecretString> {
    // Sized up front: a growing String would leave copies of the code behind.
    let mut s: SecretString = Zeroizing::new(String::with_capacity(typed.len()));
    s.extend(
        typed
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_ascii_lowercase()),
    );
    let ours = s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b));
    (ours || is_scratch(&s)).then_some(s)
}

/// Whether a normalised code has the shape of an imported scratch code.
pub fn is_scratch(code: &str) -> bool {
    code.len() == SCRATCH_LEN && code.bytes().all(|b| b.is_ascii_digit())
}

/// [`normalize`] for a mailbox whose TOTP codes have `totp_digits` digits:
/// where those are 8 digits, 8 digits typed are the TOTP code, never a
/// scratch code (a TOTP code must not be spent as something else).
pub fn normalize_for(typed: &str, totp_digits: u8) -> Option<SecretString> {
    normalize(typed).filter(|code| !(is_scratch(code) && usize::from(totp_digits) == SCRATCH_LEN))
}

/// The tails of `typed` that could be a recovery code (ours with or
/// without its two dashes, then an imported 8-digit scratch code), longest
/// first, each with the length of its prefix.
pub fn tails(typed: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    [LEN + 2, LEN, SCRATCH_LEN].into_iter().filter_map(move |n| {
        let cut = typed.len().checked_sub(n)?;
        typed.get(cut..).map(|t| (cut, t))
    })
}

/// The code a tail from [`tails`] could be, normalised, for a mailbox with
/// `totp_digits`-digit TOTP codes. A scratch code counts only as the exact
/// 8 digits: dashes or spaces inside a longer tail make it one of ours or
/// nothing, so no password character is ever taken into a scratch code.
pub fn tail_code(tail: &[u8], totp_digits: u8) -> Option<SecretString> {
    let code = normalize_for(std::str::from_utf8(tail).ok()?, totp_digits)?;
    (!is_scratch(&code) || tail.len() == SCRATCH_LEN).then_some(code)
}

/// The stored form of imported scratch codes (normalised, see
/// [`normalize`]): hashed like ours, so [`find`] and the state's record of
/// used codes work the same for both. Nothing but the hashes is kept.
pub fn from_codes(mailbox: &str, codes: &[SecretString], now: u64) -> Result<RecoverySet, RandomError> {
    Ok(RecoverySet {
        id: secret::random_id()?,
        created: now,
        hashes: hashes_of(mailbox, codes),
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
        assert_eq!(
            t,
            vec![
                (3, &b"abcd-efgh-jkmn"[..]),
                (5, &b"cd-efgh-jkmn"[..]),
                (9, &b"fgh-jkmn"[..]),
            ]
        );
        assert_eq!(tails(b"pw12345678").last(), Some((2, &b"12345678"[..])));
        assert_eq!(tails(b"short").count(), 0);
    }

    #[test]
    fn scratch_codes_normalise_and_match() {
        let codes: Vec<SecretString> = ["60500093", "49439023"].iter().map(|c| normalize(c).unwrap()).collect();
        let set = from_codes("a@x.org", &codes, 7).unwrap();
        assert_eq!(set.hashes, hashes_of("a@x.org", &codes));
        assert_eq!(find(&set, &[], "a@x.org", "49439023"), Some(1));
        assert_eq!(find(&set, &[1], "a@x.org", "49439023"), None, "used");
        assert_eq!(find(&set, &[], "b@x.org", "49439023"), None, "other mailbox");
        // Typed with a space or dash in the middle, as some people write them.
        assert_eq!(normalize("6050 0093").unwrap().as_str(), "60500093");
        assert_eq!(normalize("6050-0093").unwrap().as_str(), "60500093");
        for not_one in ["1234567", "123456789", "1234567a", "١٢٣٤٥٦٧٨"] {
            assert!(normalize(not_one).is_none(), "{not_one}");
        }
    }

    /// An 8-digit TOTP code is never taken for a scratch code.
    #[test]
    fn eight_digit_totp_mailboxes_have_no_scratch_form() {
        assert!(normalize_for("60500093", 6).is_some());
        assert!(normalize_for("60500093", 8).is_none());
        assert!(normalize_for("abcd-efgh-jkmn", 8).is_some(), "ours still are");
        assert!(tail_code(b"60500093", 8).is_none());
        assert_eq!(tail_code(b"60500093", 6).unwrap().as_str(), "60500093");
    }

    /// Inside a 12- or 14-byte tail, separators do not make a scratch code:
    /// those bytes belong to the password.
    #[test]
    fn scratch_codes_only_as_the_exact_tail() {
        assert!(tail_code(b"1-2-3-4-5678", 6).is_none());
        assert!(tail_code(b"12 34 56 78 9", 6).is_none());
        assert!(tail_code(b"1234-5678", 6).is_none(), "9 bytes");
        assert_eq!(tail_code(b"ABCD-EFGH-JKMN", 6).unwrap().as_str(), "abcdefghjkmn");
    }
}
