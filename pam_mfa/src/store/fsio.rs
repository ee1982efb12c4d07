//! File-level rules of the store: files are opened without following
//! symlinks and refused when someone other than root (or the configured
//! owner) could have written them; a whole file is replaced by a temp file
//! in the same directory, synced, and renamed over the old one, so a crash
//! leaves the old or the new content, never a mix. A mailbox file is its own
//! lock (`flock`): [`open_locked`] makes sure the lock it holds is on the
//! file that is in place, not on one a writer has just replaced.

use super::StoreError;
use crate::secret::SecretBytes;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A store file larger than this is damaged, not read (a login must not
/// allocate without bound because a file grew).
pub const MAX_FILE: u64 = 1 << 20;

/// Who may own store files and folders: root and, if configured, one more uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners {
    pub extra: Option<u32>,
}

impl Owners {
    fn allows(&self, uid: u32) -> bool {
        uid == 0 || Some(uid) == self.extra
    }
}

fn unsafe_err(path: &Path, why: String) -> StoreError {
    StoreError::Unsafe {
        path: path.to_path_buf(),
        why,
    }
}

fn io_err(path: &Path, op: &'static str, err: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        op,
        err,
    }
}

fn check_meta(path: &Path, meta: &std::fs::Metadata, owners: Owners, forbidden: u32) -> Result<(), StoreError> {
    if !owners.allows(meta.uid()) {
        return Err(unsafe_err(
            path,
            format!(
                "it is owned by uid {}, not root or the configured store_owner; run: chown root {}",
                meta.uid(),
                path.display()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(unsafe_err(
            path,
            format!(
                "its mode {mode:04o} lets others {}; run: chmod {:04o} {}",
                if forbidden == 0o022 {
                    "write to it"
                } else {
                    "read or write it"
                },
                mode & !forbidden,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// A store folder must be a real folder (not a symlink), owned by an allowed
/// user and not writable by group or others. `Ok(false)` if it does not exist.
pub fn check_dir(path: &Path, owners: Owners) -> Result<bool, StoreError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path, "inspect", e)),
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_err(
            path,
            "it is a symbolic link; the store must be a real folder".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_err(path, "it is not a folder".into()));
    }
    check_meta(path, &meta, owners, 0o022)?;
    Ok(true)
}

/// The store marker must be a regular file (not a symlink) that only an
/// allowed owner can write. `Ok(false)` if it does not exist. A stat, not a
/// read: every login checks it.
pub fn check_marker(path: &Path, owners: Owners) -> Result<bool, StoreError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path, "inspect", e)),
    };
    if !meta.is_file() {
        return Err(unsafe_err(path, "it is not a regular file".into()));
    }
    check_meta(path, &meta, owners, 0o022)?;
    Ok(true)
}

/// Creates a folder 0700 (owned by the store owner) if missing, then checks it.
pub fn ensure_dir(path: &Path, owners: Owners) -> Result<(), StoreError> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {
            if let Some(uid) = owners.extra {
                std::os::unix::fs::chown(path, Some(uid), None).map_err(|e| io_err(path, "chown", e))?;
            }
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(path, "create", e)),
    }
    if check_dir(path, owners)? {
        Ok(())
    } else {
        Err(unsafe_err(path, "it vanished while being created".into()))
    }
}

fn open_checked(
    path: &Path,
    opts: &OpenOptions,
    owners: Owners,
) -> Result<Option<(File, std::fs::Metadata)>, StoreError> {
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a symlink fails with ELOOP.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_err(
                path,
                "it is a symbolic link; store files must be regular files".into(),
            ));
        }
        // Opening a folder for writing fails with EISDIR before fstat could say so.
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Err(unsafe_err(path, "it is not a regular file".into()));
        }
        Err(e) => return Err(io_err(path, "open", e)),
    };
    let meta = file.metadata().map_err(|e| io_err(path, "inspect", e))?;
    if !meta.is_file() {
        return Err(unsafe_err(path, "it is not a regular file".into()));
    }
    check_meta(path, &meta, owners, 0o077)?;
    Ok(Some((file, meta)))
}

/// Reads a store file (refusing symlinks, foreign owners, group/other
/// access and oversize files). `Ok(None)` if it does not exist.
pub fn read(path: &Path, owners: Owners) -> Result<Option<String>, StoreError> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    let Some((file, meta)) = open_checked(path, &opts, owners)? else {
        return Ok(None);
    };
    let bytes = read_all(&file, &meta, path)?;
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| StoreError::Damaged {
            path: path.to_path_buf(),
            why: "it is not UTF-8 text".into(),
        })
}

/// How many times [`open_locked`] follows a file that is replaced while it
/// waits for the lock before it gives up (each replacement is an `mfa-ctl`
/// command, so more than a few in a row means something is wrong).
const MAX_REOPEN: usize = 64;

/// How [`open_locked`] opens and locks a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// To read a consistent copy while no writer is halfway.
    Shared,
    /// The same, on a handle that can later be locked exclusively to write
    /// ([`lock_if_current`]): a login's first look at its mailbox.
    SharedWritable,
    /// To change it.
    Exclusive,
}

/// Opens a store file with the same checks as [`read`] and locks it as
/// `mode` says. `Ok(None)` if it does not exist.
///
/// An exclusive lock is checked to be on the file at `path` once it is held:
/// a writer that replaced the file (rename) while we waited holds the lock of
/// the new file, and writing through the old one would be lost. A shared
/// reader may get the file just replaced: a complete, older copy.
pub fn open_locked(
    path: &Path,
    owners: Owners,
    mode: LockMode,
) -> Result<Option<(File, std::fs::Metadata)>, StoreError> {
    let exclusive = mode == LockMode::Exclusive;
    use std::os::unix::fs::MetadataExt;
    let mut opts = OpenOptions::new();
    opts.read(true)
        .write(mode != LockMode::Shared)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    for _ in 0..MAX_REOPEN {
        let Some((file, meta)) = open_checked(path, &opts, owners)? else {
            return Ok(None);
        };
        if !exclusive {
            file.lock_shared().map_err(|e| io_err(path, "lock", e))?;
            return Ok(Some((file, meta)));
        }
        file.lock().map_err(|e| io_err(path, "lock", e))?;
        match std::fs::symlink_metadata(path) {
            // The same file: `now` is as good as an fstat (writes in place
            // never change its size; only a replacement does, with a new inode).
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => return Ok(Some((file, now))),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, "inspect", e)),
        }
    }
    Err(unsafe_err(
        path,
        format!("it was replaced {MAX_REOPEN} times while waiting for its lock; is something rewriting it in a loop?"),
    ))
}

/// Locks an already opened mailbox file (device and inode `id`)
/// exclusively, if it is still the file at `path` (not replaced or removed
/// since it was opened); returns a
/// handle of its own (`dup`), or `None` when the caller must look it up again.
pub fn lock_if_current(
    file: &File,
    id: (u64, u64),
    path: &Path,
) -> Result<Option<(File, std::fs::Metadata)>, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let file = file
        .try_clone()
        .map_err(|e| io_err(path, "duplicate the handle of", e))?;
    file.lock().map_err(|e| io_err(path, "lock", e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) if (now.dev(), now.ino()) == id => Ok(Some((file, now))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "inspect", e)),
    }
}

/// The whole content of an opened store file (`meta`: its metadata under
/// the lock), at most [`MAX_FILE`] bytes. Zeroizing: mailbox files hold secrets.
pub fn read_all(file: &File, meta: &std::fs::Metadata, path: &Path) -> Result<SecretBytes, StoreError> {
    if meta.len() > MAX_FILE {
        return Err(StoreError::Damaged {
            path: path.to_path_buf(),
            why: format!("it is larger than {MAX_FILE} bytes"),
        });
    }
    // Sized from fstat: one read() for the whole file instead of a doubling
    // series. The size cannot change under the lock (writes are in place).
    let mut bytes = SecretBytes::new(vec![0; usize::try_from(meta.len()).unwrap_or(0)]);
    // At offset 0 whatever the handle's position: it may be shared (`dup`).
    std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, 0).map_err(|e| io_err(path, "read", e))?;
    Ok(bytes)
}

/// Overwrites `bytes` at `offset` of an open file in place, and syncs the
/// data if `durable` (the file's size and inode stay the same).
pub fn write_in_place(file: &File, path: &Path, bytes: &[u8], offset: u64, durable: bool) -> Result<(), StoreError> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, offset).map_err(|e| io_err(path, "write", e))?;
    if durable {
        file.sync_data().map_err(|e| io_err(path, "sync", e))?;
    }
    Ok(())
}

/// The store's one way to make a whole new file: `PATH.tmp` holding
/// `bytes`, mode 0600, synced, locked exclusively before anyone can see it
/// at `path` (so whoever opens a mailbox file once it is in place waits for
/// us). The name is fixed, so a temp file left by a writer killed mid-write
/// (it holds secrets) is removed by the next writer, not kept forever.
/// Callers hold the lock that makes them its only writer: the mailbox
/// file's to replace it ([`replace_locked`]), the folder's to create a file
/// ([`create_locked`]) or to replace one that is no lock ([`write_atomic`]).
/// Listings skip it.
fn new_locked_temp(path: &Path, bytes: &[u8], owners: Owners) -> Result<(std::path::PathBuf, File), StoreError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp, "remove stale temp file", e)),
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, "create", e))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(&tmp, "chmod", e))?;
        if let Some(uid) = owners.extra {
            std::os::unix::fs::fchown(&f, Some(uid), None).map_err(|e| io_err(&tmp, "chown", e))?;
        }
        f.lock().map_err(|e| io_err(&tmp, "lock", e))?;
        f.write_all(bytes).map_err(|e| io_err(&tmp, "write", e))?;
        f.sync_data().map_err(|e| io_err(&tmp, "sync", e))?;
        Ok(f)
    })();
    match result {
        Ok(f) => Ok((tmp, f)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces the file at `path` (whose exclusive lock the caller holds) with `bytes`,
/// durably; returns the new file, locked. The old file's waiters find it
/// replaced and move on to the new one ([`open_locked`]).
pub fn replace_locked(path: &Path, bytes: &[u8], owners: Owners) -> Result<File, StoreError> {
    let (tmp, f) = new_locked_temp(path, bytes, owners)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, "rename into place", e));
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(f)
}

/// Creates `path` holding `bytes`, durably, unless it exists (then `None`:
/// someone else created it first, and the caller locks theirs instead).
/// Creators are serialised by [`lock_dir`] of the folder. Returns the new
/// file, locked.
pub fn create_locked(path: &Path, bytes: &[u8], owners: Owners) -> Result<Option<File>, StoreError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let _creating = lock_dir(folder)?;
    // Checked under the folder's lock, before the temp name is touched: if
    // the file exists, a writer replacing it may be using that name.
    match std::fs::symlink_metadata(path) {
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, "inspect", e)),
    }
    let (tmp, f) = new_locked_temp(path, bytes, owners)?;
    // link() fails if `path` exists, where rename() would replace it.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(io_err(path, "create", e)),
    }
    sync_dir(folder)?;
    Ok(Some(f))
}

/// Locks a store folder exclusively: serialises the creation of files in it
/// (rare: `mfa-ctl` setting up a mailbox), so creators share one temp name.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| io_err(dir, "open", e))?;
    f.lock().map_err(|e| io_err(dir, "lock", e))?;
    Ok(f)
}

/// Replaces or creates `path` with `bytes` (a domain policy, the store's
/// marker): through the one temp file of [`new_locked_temp`], renamed into
/// place, file and folder synced, so a crash leaves the old or the new
/// content. These files are not locks themselves: their writers (mfa-ctl
/// commands) are serialised by the folder's lock, which makes them the temp
/// name's only writer.
pub fn write_atomic(path: &Path, bytes: &[u8], owners: Owners) -> Result<(), StoreError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let _writing = lock_dir(folder)?;
    let (tmp, _file) = new_locked_temp(path, bytes, owners)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, "rename into place", e));
    }
    sync_dir(folder)
}

/// Removes a file and syncs its folder. Missing is fine.
pub fn remove(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(path, "remove", e)),
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "sync folder", e))
}
