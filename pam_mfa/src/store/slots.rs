//! The on-disk form of a mailbox file: two copies ("slots") of its content
//! in one file, each with a sequence number and a SHA-256 checksum. A write
//! overwrites the OLDER slot in place and syncs it (`pwrite` + `fdatasync`),
//! so the newer one stays intact whatever happens to the write: after a
//! crash the reader takes the newest slot whose checksum holds, which is the
//! old or the new state, never a mix. In place, the file keeps its inode and
//! size, so a durable update costs one data-block write, not a new file, a
//! rename and a folder update.
//!
//! Layout, text all the way through (so `cat` shows it):
//! ```text
//! pam_mfa-mailbox 1 <seq:16 hex> <len:8 hex> <sha256:64 hex>\n<len bytes of JSON>\n\n\n... (slot padded)
//! ```
//! The file is two slots of `SLOT_UNIT` multiples. A file without the magic
//! is damaged.

use crate::secret::SecretBytes;
use sha2::{Digest, Sha256};

pub const MAGIC: &str = "pam_mfa-mailbox 1 ";
pub const SLOT_UNIT: usize = 4096;
/// The bytes of a slot before its JSON.
pub const HEADER_LEN: usize = MAGIC.len() + 16 + 1 + 8 + 1 + 64 + 1;

/// Where the newest copy of a state is, for the next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub slot_size: usize,
    /// Index (0 or 1) of the newest intact slot.
    pub newest: usize,
    pub seq: u64,
}

fn checksum(seq: u64, payload: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("{seq:016x} {:08x}\n", payload.len()).as_bytes());
    h.update(payload.as_bytes());
    h.finalize().into()
}

/// The slot size needed for `payload`.
pub fn slot_size_for(payload: &str) -> usize {
    (HEADER_LEN + payload.len()).div_ceil(SLOT_UNIT).max(1) * SLOT_UNIT
}

/// One slot's bytes (exactly `slot_size`), or `None` if `payload` does not
/// fit. Zeroizing: the payload holds the mailbox's secrets.
pub fn encode(seq: u64, payload: &str, slot_size: usize) -> Option<SecretBytes> {
    if HEADER_LEN + payload.len() > slot_size {
        return None;
    }
    let mut out = SecretBytes::new(Vec::with_capacity(slot_size * 2));
    out.extend_from_slice(
        format!(
            "{MAGIC}{seq:016x} {:08x} {}\n",
            payload.len(),
            crate::secret::hex(&checksum(seq, payload))
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload.as_bytes());
    out.resize(slot_size, b'\n');
    Some(out)
}

/// A whole new file: the content in slot 0, slot 1 empty (it holds no copy).
pub fn encode_file(seq: u64, payload: &str) -> SecretBytes {
    let size = slot_size_for(payload);
    let mut out = encode(seq, payload, size).unwrap_or_default();
    out.resize(size * 2, b'\n');
    out
}

fn hex_field(bytes: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(bytes).ok()?, 16).ok()
}

/// A slot's header: sequence number, payload and the checksum it claims.
fn slot_header<'a>(slot: &'a [u8], magic: &str) -> Option<(u64, &'a [u8], [u8; 32])> {
    let rest = slot.strip_prefix(magic.as_bytes())?;
    let seq = hex_field(rest.get(..16)?)?;
    let len = usize::try_from(hex_field(rest.get(17..25)?)?).ok()?;
    if rest.get(16) != Some(&b' ') || rest.get(25) != Some(&b' ') || rest.get(90) != Some(&b'\n') {
        return None;
    }
    let mut sum = [0u8; 32];
    for (i, b) in sum.iter_mut().enumerate() {
        let at = 26 + 2 * i;
        *b = u8::try_from(hex_field(rest.get(at..at + 2)?)?).ok()?;
    }
    Some((seq, rest.get(91..91usize.checked_add(len)?)?, sum))
}

/// The payload if the checksum holds. Bytes first: a torn write may have
/// split a character anywhere.
fn verified<'a>(seq: u64, payload: &'a [u8], sum: &[u8; 32]) -> Option<&'a str> {
    let payload = std::str::from_utf8(payload).ok()?;
    crate::secret::ct_eq(sum, &checksum(seq, payload)).then_some(payload)
}

/// The sequence number and index of the slot whose header claims the highest
/// sequence number, checksums unchecked: cheap, to see whether a file changed.
pub fn newest_header(bytes: &[u8]) -> Option<(u64, usize)> {
    let size = bytes.len() / 2;
    [bytes.get(..size), bytes.get(size..)]
        .into_iter()
        .enumerate()
        .filter_map(|(i, slot)| slot.and_then(|s| slot_header(s, MAGIC)).map(|(seq, _, _)| (seq, i)))
        .max()
}

/// Reads a mailbox file: the newest intact slot's payload and where it is.
/// `Err` says what is wrong when no copy is intact.
pub fn decode(bytes: &[u8]) -> Result<(&str, Pos), String> {
    if !bytes.starts_with(MAGIC.as_bytes()) {
        return Err(format!(
            "it does not start with \"{}\" (not a pam_mfa mailbox file)",
            MAGIC.trim_end()
        ));
    }
    let size = bytes.len() / 2;
    if !bytes.len().is_multiple_of(2) || size < SLOT_UNIT || !size.is_multiple_of(SLOT_UNIT) {
        return Err(format!("its size {} is not two whole slots (truncated?)", bytes.len()));
    }
    // The copy with the higher sequence number is checked first; the other
    // is read only if that one is torn (one checksum per read, normally).
    let mut slots: Vec<(u64, &[u8], [u8; 32], usize)> = [bytes.get(..size), bytes.get(size..)]
        .into_iter()
        .enumerate()
        .filter_map(|(i, slot)| {
            slot.and_then(|s| slot_header(s, MAGIC))
                .map(|(seq, p, sum)| (seq, p, sum, i))
        })
        .collect();
    slots.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (seq, payload, sum, newest) in slots {
        if let Some(payload) = verified(seq, payload, &sum) {
            return Ok((
                payload,
                Pos {
                    slot_size: size,
                    newest,
                    seq,
                },
            ));
        }
    }
    Err("neither copy in it is intact (checksums fail)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(seq0: u64, p0: &str, seq1: u64, p1: &str) -> Vec<u8> {
        let size = slot_size_for(p0).max(slot_size_for(p1));
        let mut f = encode(seq0, p0, size).unwrap().to_vec();
        f.extend(encode(seq1, p1, size).unwrap().iter());
        f
    }

    #[test]
    fn newest_intact_slot_wins() {
        let f = file_with(3, "failures = 3\n", 4, "failures = 4\n");
        assert_eq!(
            decode(&f).unwrap(),
            (
                "failures = 4\n",
                Pos {
                    slot_size: 4096,
                    newest: 1,
                    seq: 4
                }
            )
        );
        // A torn write of slot 1 (any byte changed): slot 0 is what is read.
        let mut torn = f.clone();
        torn[4096 + 110] = 0xC3; // half a UTF-8 character, as a torn write can leave
        assert!(matches!(
            decode(&torn).unwrap(),
            ("failures = 3\n", Pos { seq: 3, newest: 0, .. })
        ));
        // Both damaged: an error, never a guess.
        torn[110] = b'Y';
        assert!(decode(&torn).is_err());
    }

    #[test]
    fn new_files_and_foreign_text() {
        let f = encode_file(1, "last_step = 5\n");
        assert_eq!(f.len(), 8192);
        assert!(matches!(
            decode(&f).unwrap(),
            ("last_step = 5\n", Pos { newest: 0, seq: 1, .. })
        ));
        // Text without the magic (hand-written, or another program's) is refused.
        assert!(decode(b"{\"state\": {}}\n").is_err());
        assert!(decode(b"\xff\xfe").is_err());
        assert!(decode(&f[..5000]).is_err(), "truncated");
        let big = "x".repeat(5000);
        assert_eq!(slot_size_for(&big), 8192);
        assert!(encode(1, &big, 4096).is_none());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,300}", noise in proptest::collection::vec(proptest::num::u8::ANY, 0..64), cut in 0usize..9000, at in 0usize..8192) {
            let _ = decode(text.as_bytes());
            let _ = decode(&noise);
            let f = encode_file(7, &text);
            let _ = decode(&f[..cut.min(f.len())]);
            // Noise written over any part of a file: an old copy, or an error.
            let mut g = f.clone();
            for (i, b) in noise.iter().enumerate() {
                if let Some(x) = g.get_mut(at + i) {
                    *x = *b;
                }
            }
            let _ = decode(&g);
            // What is encoded decodes to itself.
            let round_trips = matches!(decode(&f), Ok((p, Pos { seq: 7, .. })) if p == text);
            proptest::prop_assert!(round_trips);
        }
    }
}
