//! Sealing secrets at rest for the PostgreSQL backend.
//!
//! A PostgreSQL store lives far from the mail servers that use it: it is
//! dumped, backed up, replicated and read by people who must never be able
//! to log in as a mailbox. So TOTP seeds are not stored as they are but
//! sealed (XChaCha20-Poly1305) with a key that is not in the database: a
//! dump or a backup alone reveals no seed. The mailbox name is bound into
//! every sealed blob (associated data), so a row copied onto another mailbox
//! does not open there, and a flipped bit anywhere is caught rather than
//! turned into a wrong seed.
//!
//! The key lives in a root-only file (`key_file`, 64 hex digits) that
//! `mfa-ctl store init` creates once and the admin copies to every mail
//! server. It is read with the same suspicion as the store's files (no
//! symlinks, no file others can read or someone else owns), and it never
//! appears in an error or log line: neither does a plaintext.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::text::escape_controls;

const KEY_LEN: usize = 32;
const HEX_LEN: usize = KEY_LEN * 2;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Starts every sealed blob: three bytes that say "this is a pam_mfa sealed
/// secret" (so a plaintext seed or some other value in the column is named
/// for what it is, not reported as a wrong key) and a format version.
const MAGIC: [u8; 3] = *b"pms";
const VERSION: u8 = 1;
const HEADER: [u8; 4] = [MAGIC[0], MAGIC[1], MAGIC[2], VERSION];
const HEADER_LEN: usize = HEADER.len();
/// The shortest blob [`SealKey::seal`] makes: an empty plaintext.
const MIN_BLOB: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Domain separation: were the same key ever used by another part of
/// pam_mfa (or a later format), its blobs could not be passed off as these.
const LABEL: &[u8] = b"pam_mfa seal v1";

/// What went wrong, for callers that act on it (mfa-ctl's exit status,
/// `doctor`); the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealErrorKind {
    /// The key file does not exist.
    Missing,
    /// The key file is a symlink, not a regular file, owned by someone else
    /// or readable by others.
    Unsafe,
    /// The key file's content is not 64 hex digits.
    BadKey,
    /// Reading or writing the key file failed.
    Io,
    /// The system random number generator failed.
    Random,
    /// The blob is not a sealed secret, is cut short, or is of a format
    /// version this build does not know.
    BadBlob,
    /// The blob does not open: other key, other mailbox, or altered.
    WrongKey,
}

/// An error of this module: what is wrong and what to do. It never holds
/// key or plaintext bytes.
pub struct SealError {
    kind: SealErrorKind,
    message: String,
}

impl SealError {
    fn new(kind: SealErrorKind, message: String) -> SealError {
        SealError { kind, message }
    }

    pub fn kind(&self) -> SealErrorKind {
        self.kind
    }
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for SealError {}

/// A path as it appears in a message: an admin's terminal must not receive
/// raw control characters from a file name.
fn shown(path: &Path) -> String {
    escape_controls(&path.display().to_string()).into_owned()
}

fn key_file(path: &Path) -> String {
    format!("the key file {}", shown(path))
}

/// An I/O error on the key file, worded for the admin. The io::Error's own
/// text carries only errno words, never file content.
fn io_error(path: &Path, op: &str, err: &std::io::Error) -> SealError {
    let p = shown(path);
    let (kind, what) = match err.kind() {
        ErrorKind::NotFound => (
            SealErrorKind::Missing,
            format!(
                "{} does not exist; run mfa-ctl store init on one server and copy the file to every mail server",
                key_file(path)
            ),
        ),
        ErrorKind::PermissionDenied => (
            SealErrorKind::Io,
            format!(
                "cannot {op} {}: permission denied; pam_mfa must run as root (or the file's owner) to read it",
                key_file(path)
            ),
        ),
        _ if err.raw_os_error() == Some(libc::ELOOP) => (
            SealErrorKind::Unsafe,
            format!(
                "{} is a symbolic link, which pam_mfa does not follow: put the file itself there (run: cp --remove-destination \"$(readlink -f {p})\" {p})",
                key_file(path)
            ),
        ),
        _ => (SealErrorKind::Io, format!("cannot {op} {}: {err}", key_file(path))),
    };
    SealError::new(kind, what)
}

/// An error while making the key file, named after the key file (not the
/// temp file or the folder the admin never asked about).
fn create_error(path: &Path, op: &str, err: &std::io::Error) -> SealError {
    let folder = shown(folder_of(path));
    let what = match err.kind() {
        ErrorKind::NotFound => format!(
            "cannot create {}: the folder {folder} does not exist; create it (owned by root) first",
            key_file(path)
        ),
        _ => format!("cannot create {}: {op} failed: {err}", key_file(path)),
    };
    SealError::new(SealErrorKind::Io, what)
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn random_error() -> SealError {
    SealError::new(
        SealErrorKind::Random,
        "the system random number generator failed (getrandom); nothing was sealed or written".into(),
    )
}

/// The value of one hex digit, or `None`. Arithmetic, not a table or a
/// match on the digit, so neither cache nor branch timing follows key bits.
fn hex_value(c: u8) -> Option<u8> {
    let digit = c.wrapping_sub(b'0');
    let lower = (c | 0x20).wrapping_sub(b'a');
    let is_digit = digit < 10;
    let is_letter = lower < 6;
    let value = (u8::from(is_digit) * digit) | (u8::from(is_letter) * lower.wrapping_add(10));
    (is_digit | is_letter).then_some(value)
}

fn hex_digit(nibble: u8) -> u8 {
    // `nibble` < 16; 'a' - 10 - '0' = 39 extra for letters, without a table
    // lookup indexed by key bits.
    let letter = u8::from(nibble > 9);
    b'0' + nibble + letter * 39
}

/// The 32-byte key that seals and opens secrets. It is wiped from memory
/// when dropped and never printed.
pub struct SealKey {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// Reads the key file. Refuses (SealError saying what to do) unless: opened with
    /// O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, a regular file (fstat on the opened fd),
    /// mode & 0o077 == 0, owned by root or `trusted_uid`, content = 64 hex digits
    /// optionally followed by one newline.
    pub fn load(path: &Path, trusted_uid: Option<u32>) -> Result<SealKey, SealError> {
        // O_NONBLOCK: a FIFO put in the key file's place must not hang a
        // login; it is then refused as not a regular file.
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| io_error(path, "open", &e))?;
        // Checked on the open file, not the name, so what was checked is
        // what is read.
        let meta = file.metadata().map_err(|e| io_error(path, "inspect", &e))?;
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Err(SealError::new(
                SealErrorKind::Unsafe,
                format!(
                    "{} is {what}; it must be the key file itself (run mfa-ctl store init on one server and copy the file to every mail server)",
                    key_file(path)
                ),
            ));
        }
        let uid = meta.uid();
        if uid != 0 && Some(uid) != trusted_uid {
            let allowed = match trusted_uid {
                Some(t) => format!("root or uid {t}"),
                None => "root".to_string(),
            };
            return Err(SealError::new(
                SealErrorKind::Unsafe,
                format!(
                    "{} is owned by uid {uid}, not {allowed}: whoever owns it can read or replace the key; run: chown root {}",
                    key_file(path),
                    shown(path)
                ),
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            let how = if mode & 0o044 != 0 {
                "readable by others"
            } else {
                "open to others"
            };
            return Err(SealError::new(
                SealErrorKind::Unsafe,
                format!(
                    "{} is {how} (mode {mode:04o}); run: chmod 600 {}",
                    key_file(path),
                    shown(path)
                ),
            ));
        }

        // 64 hex digits and a newline at most; anything longer is refused.
        let buf = crate::secret::read_bounded(&mut file, HEX_LEN + 1).map_err(|e| io_error(path, "read", &e))?;
        let content = &buf[..];
        let len = content.len();
        let digits = match content {
            [d @ .., b'\n'] => d,
            d => d,
        };
        let bad = |why: String| {
            SealError::new(
                SealErrorKind::BadKey,
                format!(
                    "{} {why}; it must hold 64 hex digits and a newline. Copy the key file from another mail server; a new key would leave every sealed secret unreadable",
                    key_file(path)
                ),
            )
        };
        if digits.len() != HEX_LEN {
            return Err(bad(if len > HEX_LEN + 1 {
                format!("is longer than {} bytes", HEX_LEN + 1)
            } else {
                format!("holds {len} bytes")
            }));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        // Every byte is decoded before deciding, so how long a bad file
        // takes to refuse does not tell where its first non-digit is.
        let mut all_hex = true;
        for (out, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [h, l] => (hex_value(*h), hex_value(*l)),
                _ => (None, None),
            };
            all_hex &= hi.is_some() & lo.is_some();
            *out = (hi.unwrap_or(0) << 4) | lo.unwrap_or(0);
        }
        if !all_hex {
            return Err(bad("contains a character that is not a hex digit".into()));
        }
        Ok(SealKey { key })
    }

    /// Creates the key file if it does not exist: 32 bytes from the OS RNG,
    /// written as 64 lowercase hex + "\n", O_CREAT|O_EXCL, mode 0600, fsync of
    /// the file and its folder; via a temp file + link so a crash never leaves
    /// a short key file. Returns Ok(true) if created now; Ok(false) if it
    /// already exists AND loads fine (an existing bad file is an error, never
    /// overwritten).
    pub fn create(path: &Path) -> Result<bool, SealError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => return SealKey::load(path, None).map(|_| false),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, "inspect", &e)),
        }

        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::getrandom(&mut key[..]).map_err(|_| random_error())?;
        let mut text = Zeroizing::new([0u8; HEX_LEN + 1]);
        for (pair, byte) in text.chunks_exact_mut(2).zip(key.iter()) {
            if let [hi, lo] = pair {
                *hi = hex_digit(byte >> 4);
                *lo = hex_digit(byte & 0x0f);
            }
        }
        if let Some(last) = text.last_mut() {
            *last = b'\n';
        }

        let folder = folder_of(path);
        let tmp = temp_name(path)?;
        write_temp(path, &tmp, &text[..])?;
        // link() refuses to replace an existing name, where rename() would
        // overwrite a key file another `store init` made a moment ago (and
        // with it every secret sealed under it). The file appears complete
        // or not at all.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return SealKey::load(path, None).map(|_| false);
            }
            Err(e) => return Err(create_error(path, "link", &e)),
        }
        // Without this the new name (and the temp name's removal) could be
        // lost in a crash after we reported the key as created.
        let dir = File::open(folder).map_err(|e| create_error(path, "opening its folder", &e))?;
        dir.sync_all()
            .map_err(|e| create_error(path, "syncing its folder", &e))?;
        Ok(true)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.key).into())
    }

    /// XChaCha20-Poly1305 with a fresh random 24-byte nonce; the associated
    /// data binds the blob to `context` (the canonical mailbox name) and to
    /// this format. Output: magic + version, nonce, ciphertext + tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        // 24 random bytes: with XChaCha's nonce size, random nonces never
        // repeat in practice, so no counter has to be shared between servers.
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|_| random_error())?;
        let ad = associated_data(context);

        // Sized up front and encrypted in place: the plaintext copied into
        // `out` is overwritten, never left behind by a reallocation.
        let mut out = Vec::with_capacity(MIN_BLOB + plaintext.len());
        out.extend_from_slice(&HEADER);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(HEADER_LEN + NONCE_LEN..).unwrap_or_default();
        let tag = self
            .cipher()
            .encrypt_inout_detached(&XNonce::from(nonce), &ad, body.into())
            .map_err(|_| {
                SealError::new(
                    SealErrorKind::BadBlob,
                    format!(
                        "a secret of {} is too long to seal ({} bytes)",
                        escape_controls(context),
                        plaintext.len()
                    ),
                )
            })?;
        out.extend_from_slice(tag.as_slice());
        Ok(out)
    }

    /// Inverse of [`SealKey::seal`]; a wrong key, other context, truncated or
    /// altered blob, or unknown version is an error (never a panic), and the
    /// message never contains key or plaintext bytes.
    pub fn open(&self, context: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let who = escape_controls(context);
        let bad_blob =
            |why: String| SealError::new(SealErrorKind::BadBlob, format!("the sealed secret of {who} {why}"));
        let Some((header, rest)) = blob.split_first_chunk::<HEADER_LEN>() else {
            return Err(bad_blob(format!("is cut short ({} bytes)", blob.len())));
        };
        let [m0, m1, m2, version] = *header;
        if [m0, m1, m2] != MAGIC {
            return Err(bad_blob(
                "is not a pam_mfa sealed secret (it does not start with the seal header); set the secret again (mfa-ctl)"
                    .into(),
            ));
        }
        if version != VERSION {
            return Err(bad_blob(format!(
                "is in seal format version {version}, which this pam_mfa (version {VERSION}) does not know; upgrade pam_mfa on this server"
            )));
        }
        let Some((nonce, rest)) = rest.split_first_chunk::<NONCE_LEN>() else {
            return Err(bad_blob(format!(
                "is cut short ({} bytes; a sealed secret has at least {MIN_BLOB})",
                blob.len()
            )));
        };
        let Some((ciphertext, tag)) = rest.split_last_chunk::<TAG_LEN>() else {
            return Err(bad_blob(format!(
                "is cut short ({} bytes; a sealed secret has at least {MIN_BLOB})",
                blob.len()
            )));
        };

        let mut plain = Zeroizing::new(ciphertext.to_vec());
        let ad = associated_data(context);
        self.cipher()
            .decrypt_inout_detached(
                &XNonce::from(*nonce),
                &ad,
                plain.as_mut_slice().into(),
                &Tag::from(*tag),
            )
            .map_err(|_| {
                SealError::new(
                    SealErrorKind::WrongKey,
                    format!(
                        "a sealed secret of {who} does not open with this key: the key file differs from the one that sealed it (copy the same key file to every server), or the row was copied from another mailbox or altered"
                    ),
                )
            })?;
        Ok(plain)
    }
}

/// What every blob is authenticated with besides its ciphertext: the label,
/// the header (so the version byte cannot be changed), and the mailbox.
/// The context comes last and the parts before it have fixed lengths, so
/// no two (context, version) pairs give the same bytes.
fn associated_data(context: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(LABEL.len() + 1 + HEADER_LEN + context.len());
    ad.extend_from_slice(LABEL);
    ad.push(0);
    ad.extend_from_slice(&HEADER);
    ad.extend_from_slice(context.as_bytes());
    ad
}

/// A temp name next to `path` no other creator uses (random part), so two
/// `store init` runs at once never write into each other's file.
fn temp_name(path: &Path) -> Result<PathBuf, SealError> {
    let mut rnd = [0u8; 8];
    getrandom::getrandom(&mut rnd).map_err(|_| random_error())?;
    let suffix: String = rnd
        .iter()
        .flat_map(|b| [char::from(hex_digit(b >> 4)), char::from(hex_digit(b & 0x0f))])
        .collect();
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp.{suffix}"));
    Ok(path.with_file_name(name))
}

/// Writes the key text to a new 0600 file at `tmp` and syncs it; removes it
/// again on any failure so no partial key file is left lying about.
fn write_temp(path: &Path, tmp: &Path, text: &[u8]) -> Result<(), SealError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| create_error(path, "creating a temp file", &e))?;
    let written = (|| {
        // The umask can only take bits away, but be exact: 0600 is what
        // load() and the docs promise.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| create_error(path, "chmod", &e))?;
        file.write_all(text).map_err(|e| create_error(path, "writing", &e))?;
        file.sync_all().map_err(|e| create_error(path, "syncing", &e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;
    use std::os::unix::fs::symlink;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn write_key(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn key_from(hex: &str) -> SealKey {
        let dir = tempfile::tempdir().unwrap();
        let p = write_key(dir.path(), "k", format!("{hex}\n").as_bytes(), 0o600);
        SealKey::load(&p, None).unwrap()
    }

    fn key() -> SealKey {
        key_from(HEX_KEY)
    }

    fn err_of<T>(r: Result<T, SealError>) -> SealError {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn hex_helpers_cover_every_byte() {
        for c in 0..=255u8 {
            let want = (c as char).to_digit(16).map(|v| v as u8);
            assert_eq!(hex_value(c), want, "byte {c}");
        }
        for n in 0..16u8 {
            assert_eq!(char::from(hex_digit(n)), char::from_digit(u32::from(n), 16).unwrap());
        }
    }

    #[test]
    fn round_trip() {
        let k = key();
        for pt in [&b""[..], b"x", b"JBSWY3DPEHPK3PXP", &[0u8; 1000][..]] {
            let blob = k.seal("alice@example.org", pt).unwrap();
            assert_eq!(blob.len(), MIN_BLOB + pt.len());
            assert_eq!(&blob[..4], b"pms\x01");
            assert_eq!(&k.open("alice@example.org", &blob).unwrap()[..], pt);
        }
    }

    #[test]
    fn other_context_fails() {
        let k = key();
        let blob = k.seal("alice@example.org", b"seed").unwrap();
        for other in ["bob@example.org", "alice@example.org ", "", "Alice@example.org"] {
            let e = err_of(k.open(other, &blob));
            assert_eq!(e.kind(), SealErrorKind::WrongKey);
        }
    }

    #[test]
    fn flipped_byte_anywhere_fails() {
        let k = key();
        let blob = k.seal("alice@example.org", b"JBSWY3DPEHPK3PXP").unwrap();
        for i in 0..blob.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = blob.clone();
                b[i] ^= bit;
                assert!(k.open("alice@example.org", &b).is_err(), "byte {i} bit {bit:#x}");
            }
        }
    }

    #[test]
    fn truncated_or_extended_fails() {
        let k = key();
        let blob = k.seal("alice@example.org", b"JBSWY3DPEHPK3PXP").unwrap();
        for n in 0..blob.len() {
            let e = err_of(k.open("alice@example.org", &blob[..n]));
            assert!(
                matches!(e.kind(), SealErrorKind::BadBlob | SealErrorKind::WrongKey),
                "{n}: {e}"
            );
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(k.open("alice@example.org", &longer).is_err());
    }

    #[test]
    fn unknown_version_and_foreign_data_are_named() {
        let k = key();
        let mut blob = k.seal("a@b", b"s").unwrap();
        blob[3] = 2;
        let e = err_of(k.open("a@b", &blob));
        assert_eq!(e.kind(), SealErrorKind::BadBlob);
        assert!(e.to_string().contains("version 2"), "{e}");
        let e = err_of(k.open("a@b", b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"));
        assert!(e.to_string().contains("not a pam_mfa sealed secret"), "{e}");
    }

    #[test]
    fn wrong_key_fails_and_says_what_to_do() {
        let blob = key().seal("alice@example.org", b"JBSWY3DPEHPK3PXP").unwrap();
        let other = key_from(&HEX_KEY.replace('0', "f"));
        let e = err_of(other.open("alice@example.org", &blob));
        assert_eq!(e.kind(), SealErrorKind::WrongKey);
        let msg = e.to_string();
        assert!(msg.contains("alice@example.org"), "{msg}");
        assert!(msg.contains("copy the same key file to every server"), "{msg}");
        assert!(!msg.contains("JBSWY3DP"), "{msg}");
    }

    #[test]
    fn two_seals_differ() {
        let k = key();
        let a = k.seal("alice@example.org", b"JBSWY3DPEHPK3PXP").unwrap();
        let b = k.seal("alice@example.org", b"JBSWY3DPEHPK3PXP").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[4..28], b[4..28], "nonces must differ");
    }

    #[test]
    fn load_accepts_with_or_without_newline_and_uppercase() {
        let dir = tempfile::tempdir().unwrap();
        let blob = key().seal("c", b"p").unwrap();
        for (i, content) in [
            HEX_KEY.to_string(),
            format!("{HEX_KEY}\n"),
            format!("{}\n", HEX_KEY.to_uppercase()),
        ]
        .iter()
        .enumerate()
        {
            let p = write_key(dir.path(), &format!("k{i}"), content.as_bytes(), 0o600);
            let k = SealKey::load(&p, None).unwrap();
            assert_eq!(&k.open("c", &blob).unwrap()[..], b"p");
        }
        let p = write_key(dir.path(), "k400", format!("{HEX_KEY}\n").as_bytes(), 0o400);
        SealKey::load(&p, None).unwrap();
    }

    #[test]
    fn load_refuses_mode_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o601, 0o660] {
            let p = write_key(dir.path(), "k", format!("{HEX_KEY}\n").as_bytes(), mode);
            let e = err_of(SealKey::load(&p, None));
            assert_eq!(e.kind(), SealErrorKind::Unsafe, "{mode:o}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("mode {mode:04o}")), "{msg}");
            assert!(msg.contains(&format!("run: chmod 600 {}", p.display())), "{msg}");
            assert!(!msg.contains(HEX_KEY), "{msg}");
        }
    }

    #[test]
    fn load_refuses_symlink_folder_fifo_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let real = write_key(dir.path(), "real", format!("{HEX_KEY}\n").as_bytes(), 0o600);
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        let e = err_of(SealKey::load(&link, None));
        assert_eq!(e.kind(), SealErrorKind::Unsafe);
        assert!(e.to_string().contains("symbolic link"), "{e}");

        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = err_of(SealKey::load(&folder, None));
        assert_eq!(e.kind(), SealErrorKind::Unsafe);
        assert!(e.to_string().contains("is a folder"), "{e}");

        // A FIFO must be refused at once, not block the login.
        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&fifo)
            .status();
        if st.is_ok_and(|s| s.success()) {
            let e = err_of(SealKey::load(&fifo, None));
            assert_eq!(e.kind(), SealErrorKind::Unsafe, "{e}");
        }

        let e = err_of(SealKey::load(&dir.path().join("absent"), None));
        assert_eq!(e.kind(), SealErrorKind::Missing);
        assert!(e.to_string().contains("run mfa-ctl store init"), "{e}");
    }

    #[test]
    fn load_refuses_wrong_length_and_non_hex() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            HEX_KEY.as_bytes()[..63].to_vec(),
            format!("{}\n", &HEX_KEY[..62]).into_bytes(),
            format!("{HEX_KEY}0").into_bytes(),
            format!("{HEX_KEY}\n\n").into_bytes(),
            format!("{HEX_KEY}\r\n").into_bytes(),
            format!("{HEX_KEY} \n").into_bytes(),
            format!("{HEX_KEY}{HEX_KEY}\n").into_bytes(),
            vec![b'a'; 100_000],
        ];
        for (i, c) in cases.iter().enumerate() {
            let p = write_key(dir.path(), &format!("len{i}"), c, 0o600);
            let e = err_of(SealKey::load(&p, None));
            assert_eq!(e.kind(), SealErrorKind::BadKey, "case {i}: {e}");
            assert!(!e.to_string().contains(HEX_KEY), "{e}");
        }
        let mut non_hex = Vec::new();
        for bad in ["g", "G", " ", "\0", "é", "x"] {
            let mut s = HEX_KEY.to_string();
            s.replace_range(10..10 + bad.len(), bad);
            non_hex.push(s);
        }
        non_hex.push(format!("0x{}", &HEX_KEY[2..]));
        for (i, c) in non_hex.iter().enumerate() {
            assert_eq!(c.len(), 64);
            let p = write_key(dir.path(), &format!("hex{i}"), format!("{c}\n").as_bytes(), 0o600);
            let e = err_of(SealKey::load(&p, None));
            assert_eq!(e.kind(), SealErrorKind::BadKey, "case {i}: {e}");
            assert!(e.to_string().contains("not a hex digit"), "{e}");
            assert!(
                e.to_string().contains("Copy the key file from another mail server"),
                "{e}"
            );
        }
    }

    #[test]
    fn load_refuses_owner_not_root_or_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_key(dir.path(), "k", format!("{HEX_KEY}\n").as_bytes(), 0o600);
        std::os::unix::fs::chown(&p, Some(12345), Some(12345)).unwrap();
        let e = err_of(SealKey::load(&p, None));
        assert_eq!(e.kind(), SealErrorKind::Unsafe);
        let msg = e.to_string();
        assert!(msg.contains("owned by uid 12345, not root"), "{msg}");
        assert!(msg.contains(&format!("run: chown root {}", p.display())), "{msg}");
        let e = err_of(SealKey::load(&p, Some(4242)));
        assert!(e.to_string().contains("not root or uid 4242"), "{e}");
        SealKey::load(&p, Some(12345)).unwrap();
    }

    #[test]
    fn create_makes_a_0600_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pam_mfa.key");
        assert!(SealKey::create(&p).unwrap());
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(meta.len(), 65);
        let first = std::fs::read(&p).unwrap();
        assert_eq!(first.last(), Some(&b'\n'));
        assert!(
            first[..64]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        );
        let k = SealKey::load(&p, None).unwrap();

        assert!(!SealKey::create(&p).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), first);
        let blob = k.seal("a@b", b"s").unwrap();
        assert_eq!(&SealKey::load(&p, None).unwrap().open("a@b", &blob).unwrap()[..], b"s");

        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pam_mfa.key")]);

        // Two keys made apart differ.
        let q = dir.path().join("other.key");
        assert!(SealKey::create(&q).unwrap());
        assert_ne!(std::fs::read(&q).unwrap(), first);
    }

    #[test]
    fn create_in_a_missing_folder_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/folder/k");
        let e = err_of(SealKey::create(&p));
        assert!(
            e.to_string().contains("no/such/folder does not exist; create it"),
            "{e}"
        );
    }

    #[test]
    fn create_never_touches_an_existing_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], u32); 3] = [
            ("short", b"abc\n", 0o600),
            (
                "open",
                b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
                0o644,
            ),
            ("empty", b"", 0o600),
        ];
        for (name, content, mode) in cases {
            let p = write_key(dir.path(), name, content, mode);
            assert!(SealKey::create(&p).is_err(), "{name}");
            assert_eq!(std::fs::read(&p).unwrap(), content, "{name}");
            assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, mode, "{name}");
        }
        // A symlink, even to a good key, is refused and left as it is;
        // a dangling one is not created through.
        let real = write_key(dir.path(), "real", format!("{HEX_KEY}\n").as_bytes(), 0o600);
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        assert!(SealKey::create(&link).is_err());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("target"), &dangling).unwrap();
        assert!(SealKey::create(&dangling).is_err());
        assert!(!dir.path().join("target").exists());
        // A folder in its place.
        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        assert!(SealKey::create(&folder).is_err());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let k = key();
        let shown = format!("{k:?} {k:#?}");
        assert!(!shown.contains(HEX_KEY), "{shown}");
        assert!(!shown.to_lowercase().contains("0102030405"), "{shown}");
        // Nor as a byte list.
        assert!(!shown.contains("1, 2, 3"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
