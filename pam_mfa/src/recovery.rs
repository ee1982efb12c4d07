//! Recovery codes: single-use codes typed in place of the TOTP code when the
//! phone is lost. They contain letters, so `split` never mistakes a password
//! that ends in digits for one, and a tail is taken as a recovery code only
//! when it matches one of the mailbox's unused codes.

use crate::secret::{self, RandomError, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// No 0/o, 1/l/i: nothing to misread when typing from paper.
pub const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// 12 symbols of 31: 59 bits, single use, behind the password and the lock-out.
pub const LEN: usize = 12;
pub const DEFAULT_COUNT: usize = 10;
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
/// `None` when it cannot be a recovery code.
pub fn normalize(typed: &str) -> Option<SecretString> {
    let s: SecretString = Zeroizing::new(
        typed
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .collect::<String>()
            .to_ascii_lowercase(),
    );
    (s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// The tails of `typed` that could be a recovery code (with or without its
/// two dashes), longest first, each with the length of its prefix.
pub fn tails(typed: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    [LEN + 2, LEN].into_iter().filter_map(move |n| {
        let cut = typed.len().checked_sub(n)?;
        typed.get(cut..).map(|t| (cut, t))
    })
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
}
