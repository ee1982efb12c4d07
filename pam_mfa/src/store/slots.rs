//! The on-disk form of a mailbox's login state: two copies ("slots") in one
//! file, each with a sequence number and a SHA-256 checksum. A login
//! overwrites the OLDER slot in place and syncs it (`pwrite` + `fdatasync`),
//! so the newer one stays intact whatever happens to the write: after a
//! crash the reader takes the newest slot whose checksum holds, which is the
//! old or the new state, never a mix. In place, the file keeps its inode and
//! size, so a durable update costs one data-block write, not a new file, a
//! rename and a folder update.
//!
//! Layout, text all the way through (so `cat` shows it):
//! ```text
//! pam_mfa-state 1 <seq:16 hex> <len:8 hex> <sha256:64 hex>\n<len bytes of TOML>\n\n\n... (slot padded)
//! ```
//! The file is two slots of `SLOT_UNIT` multiples. A file without the magic
//! is read as plain TOML (a state written by hand), and replaced whole by the
//! next write.

use sha2::{Digest, Sha256};

pub const MAGIC: &str = "pam_mfa-state 1 ";
pub const SLOT_UNIT: usize = 4096;
const HEADER_LEN: usize = MAGIC.len() + 16 + 1 + 8 + 1 + 64 + 1;

/// Where the newest copy of a state is, for the next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub slot_size: usize,
    /// Index (0 or 1) of the newest intact slot.
    pub newest: usize,
    pub seq: u64,
}

/// What a file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// The newest intact slot's TOML and where it is.
    Slotted(&'a str, Pos),
    /// No magic: the whole file is TOML.
    Plain(&'a str),
}

fn checksum(seq: u64, payload: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("{seq:016x} {:08x}\n", payload.len()).as_bytes());
    h.update(payload.as_bytes());
    crate::secret::hex(&h.finalize())
}

/// The slot size needed for `payload`.
pub fn slot_size_for(payload: &str) -> usize {
    (HEADER_LEN + payload.len()).div_ceil(SLOT_UNIT).max(1) * SLOT_UNIT
}

/// One slot's bytes (exactly `slot_size`), or `None` if `payload` does not fit.
pub fn encode(seq: u64, payload: &str, slot_size: usize) -> Option<Vec<u8>> {
    if HEADER_LEN + payload.len() > slot_size {
        return None;
    }
    let mut out = Vec::with_capacity(slot_size);
    out.extend_from_slice(format!("{MAGIC}{seq:016x} {:08x} {}\n", payload.len(), checksum(seq, payload)).as_bytes());
    out.extend_from_slice(payload.as_bytes());
    out.resize(slot_size, b'\n');
    Some(out)
}

/// A whole new file: the state in slot 0, slot 1 empty (it holds no copy).
pub fn encode_file(seq: u64, payload: &str) -> Vec<u8> {
    let size = slot_size_for(payload);
    let mut out = encode(seq, payload, size).unwrap_or_default();
    out.resize(size * 2, b'\n');
    out
}

fn hex_field(bytes: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(bytes).ok()?, 16).ok()
}

fn decode_slot(slot: &[u8]) -> Option<(u64, &str)> {
    let rest = slot.strip_prefix(MAGIC.as_bytes())?;
    let seq = hex_field(rest.get(..16)?)?;
    let len = usize::try_from(hex_field(rest.get(17..25)?)?).ok()?;
    let sum = rest.get(26..90)?;
    if rest.get(16) != Some(&b' ') || rest.get(25) != Some(&b' ') || rest.get(90) != Some(&b'\n') {
        return None;
    }
    // Bytes first: a torn write may have split a character anywhere.
    let payload = std::str::from_utf8(rest.get(91..91usize.checked_add(len)?)?).ok()?;
    crate::secret::ct_eq(sum, checksum(seq, payload).as_bytes()).then_some((seq, payload))
}

/// Reads a state file. `Err` says what is wrong when no copy is intact.
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, String> {
    if !bytes.starts_with(MAGIC.as_bytes()) {
        return std::str::from_utf8(bytes)
            .map(Decoded::Plain)
            .map_err(|_| "it is not UTF-8 text".to_string());
    }
    let size = bytes.len() / 2;
    if !bytes.len().is_multiple_of(2) || size < SLOT_UNIT || !size.is_multiple_of(SLOT_UNIT) {
        return Err(format!("its size {} is not two whole slots (truncated?)", bytes.len()));
    }
    let mut best: Option<(u64, &str, usize)> = None;
    for (i, slot) in [bytes.get(..size), bytes.get(size..)].into_iter().enumerate() {
        if let Some((seq, payload)) = slot.and_then(decode_slot)
            && best.is_none_or(|(s, _, _)| seq > s)
        {
            best = Some((seq, payload, i));
        }
    }
    match best {
        Some((seq, payload, newest)) => Ok(Decoded::Slotted(
            payload,
            Pos {
                slot_size: size,
                newest,
                seq,
            },
        )),
        None => Err("neither copy in it is intact (checksums fail)".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(seq0: u64, p0: &str, seq1: u64, p1: &str) -> Vec<u8> {
        let size = slot_size_for(p0).max(slot_size_for(p1));
        let mut f = encode(seq0, p0, size).unwrap();
        f.extend(encode(seq1, p1, size).unwrap());
        f
    }

    #[test]
    fn newest_intact_slot_wins() {
        let f = file_with(3, "failures = 3\n", 4, "failures = 4\n");
        assert_eq!(
            decode(&f).unwrap(),
            Decoded::Slotted(
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
            Decoded::Slotted("failures = 3\n", Pos { seq: 3, newest: 0, .. })
        ));
        // Both damaged: an error, never a guess.
        torn[110] = b'Y';
        assert!(decode(&torn).is_err());
    }

    #[test]
    fn new_files_and_plain_toml() {
        let f = encode_file(1, "last_step = 5\n");
        assert_eq!(f.len(), 8192);
        assert!(matches!(
            decode(&f).unwrap(),
            Decoded::Slotted("last_step = 5\n", Pos { newest: 0, seq: 1, .. })
        ));
        assert_eq!(decode(b"failures = 0\n").unwrap(), Decoded::Plain("failures = 0\n"));
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
            let round_trips = matches!(decode(&f), Ok(Decoded::Slotted(p, Pos { seq: 7, .. })) if p == text);
            proptest::prop_assert!(round_trips);
        }
    }
}
