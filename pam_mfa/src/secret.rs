//! Secrets: the zeroizing types they live in, the constant-time comparison
//! they are checked with, the hashes app passwords and recovery codes are
//! stored as, and the random source they are made from. Nothing in this
//! crate compares or hashes a secret any other way.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Bytes typed by a user or read from the store that must not outlive their use.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// Reads a file that holds a secret (a key, a password, a seed file) into
/// one zeroizing buffer of `max + 1` bytes, never grown: a growing Vec
/// would leave copies of the secret in freed memory, and the one byte more
/// than `max` tells "longer than allowed" apart without reading an
/// unbounded file. A result longer than `max` means the file is too long.
pub fn read_bounded(file: &mut impl std::io::Read, max: usize) -> std::io::Result<SecretBytes> {
    let mut buf = Zeroizing::new(vec![0u8; max.saturating_add(1)]);
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}
/// The same, when the secret is text (a base32 seed, a code).
pub type SecretString = Zeroizing<String>;

/// Equal-length comparison in constant time; unequal lengths return false
/// at once (lengths of codes and hashes are public).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Hash under which an app password or recovery code is stored. These tokens
/// carry 59 to 112 random bits, so a fast hash is enough (no dictionary to
/// attack); the purpose and the mailbox are mixed in so a hash copied to
/// another mailbox or used for another purpose does not match.
pub fn token_hash(purpose: &str, mailbox: &str, token: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"pam_mfa v1\0");
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(mailbox.as_bytes());
    h.update(b"\0");
    h.update(token);
    hex(&h.finalize())
}

/// Keyed fingerprint of a failed attempt, so "the same wrong code again" is
/// recognised without storing the code: keyed with the mailbox's TOTP seed,
/// which anyone able to read the state file cannot read.
pub fn fingerprint(key: &[u8], data: &[u8]) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            let out = mac.finalize().into_bytes();
            hex(out.get(..16).unwrap_or(&out))
        }
        // HMAC takes keys of any length; keep a value that matches nothing.
        Err(_) => String::new(),
    }
}

/// Keyed hash under which a code sent by text message is stored: HMAC-SHA256
/// with a key kept in the mailbox's record. Six digits are only 20 bits, so
/// an unkeyed hash would give the code away to whoever can read the login
/// state (on PostgreSQL, the state is not sealed; the record is).
pub fn keyed_hash(key: &[u8], data: &[u8]) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            hex(&mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; keep a value that matches nothing.
        Err(_) => String::new(),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomError;

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the system random number generator failed (getrandom)")
    }
}

impl std::error::Error for RandomError {}

pub fn random_bytes(n: usize) -> Result<SecretBytes, RandomError> {
    let mut buf = Zeroizing::new(vec![0u8; n]);
    getrandom::getrandom(&mut buf).map_err(|_| RandomError)?;
    Ok(buf)
}

/// `n` symbols drawn uniformly from `alphabet` (rejection sampling, so no
/// symbol is favoured).
pub fn random_string(alphabet: &[u8], n: usize) -> Result<SecretString, RandomError> {
    let len = alphabet.len();
    if len == 0 || len > 256 {
        return Err(RandomError);
    }
    let limit = 256 - (256 % len);
    let mut out = Zeroizing::new(String::with_capacity(n));
    while out.len() < n {
        for b in random_bytes(n * 2)?.iter() {
            let b = usize::from(*b);
            if b < limit
                && out.len() < n
                && let Some(c) = alphabet.get(b % len)
            {
                out.push(char::from(*c));
            }
        }
    }
    Ok(out)
}

/// A short random identifier (not secret) for app passwords and recovery sets.
pub fn random_id() -> Result<String, RandomError> {
    Ok(hex(&random_bytes(6)?))
}

/// `token` in groups of four symbols joined by `sep` (`abcd-efgh-ijkl`,
/// `ABCD EFGH IJ`): the form app passwords, recovery codes and seeds are
/// shown in, short enough to read off and type back.
pub fn grouped(token: &str, sep: char) -> SecretString {
    // Sized up front: a growing String would leave copies of the token behind.
    let mut out = Zeroizing::new(String::with_capacity(token.len() + token.len() / 4 * sep.len_utf8()));
    for (i, c) in token.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_basics() {
        assert!(ct_eq(b"123456", b"123456"));
        assert!(!ct_eq(b"123456", b"123457"));
        assert!(!ct_eq(b"12345", b"123456"));
    }

    #[test]
    fn hashes_are_bound_to_purpose_and_mailbox() {
        let a = token_hash("app", "a@x.org", b"tok");
        assert_eq!(a.len(), 64);
        assert_eq!(a, token_hash("app", "a@x.org", b"tok"));
        assert_ne!(a, token_hash("app", "b@x.org", b"tok"));
        assert_ne!(a, token_hash("recovery", "a@x.org", b"tok"));
    }

    #[test]
    fn random_string_uses_only_the_alphabet() {
        let s = random_string(b"abc", 300).unwrap();
        assert_eq!(s.len(), 300);
        assert!(s.chars().all(|c| "abc".contains(c)));
        for c in ['a', 'b', 'c'] {
            assert!(s.contains(c));
        }
    }

    #[test]
    fn tokens_are_grouped_in_fours() {
        assert_eq!(grouped("ABCDEFGHIJ", ' ').as_str(), "ABCD EFGH IJ");
        assert_eq!(grouped("abcdefghijkl", '-').as_str(), "abcd-efgh-ijkl");
        assert_eq!(grouped("abcd", '-').as_str(), "abcd");
        assert_eq!(grouped("", '-').as_str(), "");
    }
}
