//! File-level rules of the store: files are opened without following
//! symlinks and refused when someone other than root (or the configured
//! owner) could have written them; writes go to a temp file in the same
//! directory, are synced, and renamed over the old file, so a crash leaves
//! the old or the new content, never a mix.

use super::StoreError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
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

fn open_checked(path: &Path, opts: &OpenOptions, owners: Owners) -> Result<Option<File>, StoreError> {
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
        Err(e) => return Err(io_err(path, "open", e)),
    };
    let meta = file.metadata().map_err(|e| io_err(path, "inspect", e))?;
    if !meta.is_file() {
        return Err(unsafe_err(path, "it is not a regular file".into()));
    }
    check_meta(path, &meta, owners, 0o077)?;
    Ok(Some(file))
}

/// Reads a store file (refusing symlinks, foreign owners, group/other
/// access and oversize files). `Ok(None)` if it does not exist.
pub fn read(path: &Path, owners: Owners) -> Result<Option<String>, StoreError> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    let Some(file) = open_checked(path, &opts, owners)? else {
        return Ok(None);
    };
    let bytes = read_all(&file, path)?;
    String::from_utf8(bytes).map(Some).map_err(|_| StoreError::Damaged {
        path: path.to_path_buf(),
        why: "it is not UTF-8 text".into(),
    })
}

/// Opens a store file for reading and writing in place, with the same
/// checks as [`read`]. `Ok(None)` if it does not exist.
pub fn open_rw(path: &Path, owners: Owners) -> Result<Option<File>, StoreError> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    open_checked(path, &opts, owners)
}

/// The whole content of an opened store file, at most [`MAX_FILE`] bytes.
pub fn read_all(file: &File, path: &Path) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err(path, "read", e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(StoreError::Damaged {
            path: path.to_path_buf(),
            why: format!("it is larger than {MAX_FILE} bytes"),
        });
    }
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

/// Opens (creating 0600 if needed) and exclusively locks a lock file. The
/// lock is released when the file is closed, also when the process dies, so
/// a crashed writer never leaves a lock behind.
pub fn lock(path: &Path, owners: Owners) -> Result<File, StoreError> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    let file =
        open_checked(path, &opts, owners)?.ok_or_else(|| unsafe_err(path, "it vanished while being opened".into()))?;
    if let Some(uid) = owners.extra {
        let meta = file.metadata().map_err(|e| io_err(path, "inspect", e))?;
        if meta.uid() == 0 && meta.len() == 0 {
            std::os::unix::fs::fchown(&file, Some(uid), None).map_err(|e| io_err(path, "chown", e))?;
        }
    }
    file.lock().map_err(|e| io_err(path, "lock", e))?;
    Ok(file)
}

/// Replaces `path` with `bytes` atomically: temp file (0600) in the same
/// folder, written, synced if `durable`, renamed over `path`; the folder is
/// synced too if `sync_dir_after` (so the rename itself survives a crash).
/// Callers hold the mailbox lock, so the fixed temp name has one writer; a
/// temp file left by a crashed writer is removed first.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    owners: Owners,
    durable: bool,
    sync_dir_after: bool,
) -> Result<(), StoreError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(tmp, "remove stale temp file", e)),
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tmp)
            .map_err(|e| io_err(tmp, "create", e))?;
        // The umask may have taken bits away, never added: still, be explicit.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(tmp, "chmod", e))?;
        if let Some(uid) = owners.extra {
            std::os::unix::fs::fchown(&f, Some(uid), None).map_err(|e| io_err(tmp, "chown", e))?;
        }
        f.write_all(bytes).map_err(|e| io_err(tmp, "write", e))?;
        if durable {
            f.sync_data().map_err(|e| io_err(tmp, "sync", e))?;
        }
        std::fs::rename(tmp, path).map_err(|e| io_err(path, "rename into place", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result?;
    if sync_dir_after && let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
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
