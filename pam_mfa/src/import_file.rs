//! Opening the files an import reads: secret files, the list of home
//! folders, pam_oath's users file. Users have had a hand in some of them (a
//! home folder is its user's), so a path is walked one component at a time
//! with O_NOFOLLOW: a symbolic link anywhere on the way is refused, never
//! followed, since whoever controls a folder on the way could otherwise
//! point the import at another user's file. A file with a second hard link
//! is refused too: it is another name for a file that may be someone
//! else's. The rest are loosely google-authenticator's own checks: a secret
//! file anyone but root, its user or the owner of its folder could have
//! written is not trusted.

use crate::secret::SecretBytes;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Why a file to import from was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    NotRegular,
    /// `at`: the first component of the path that is a symbolic link.
    Symlink {
        at: PathBuf,
    },
    /// More names than this one lead to the file.
    HardLinked {
        links: u64,
    },
    WritableByOthers {
        mode: u32,
    },
    Owner {
        uid: u32,
    },
    TooLarge {
        limit: usize,
    },
    /// It grew, or was replaced, while being read.
    Changed,
    /// It cannot be opened or read (missing, no permission): an I/O error.
    Io(String),
}

impl FileProblem {
    pub fn kind(&self) -> &'static str {
        match self {
            FileProblem::NotRegular => "not_regular",
            FileProblem::Symlink { .. } => "symlink",
            FileProblem::HardLinked { .. } => "hard_link",
            FileProblem::WritableByOthers { .. } => "writable_by_others",
            FileProblem::Owner { .. } => "owner",
            FileProblem::TooLarge { .. } => "too_large",
            FileProblem::Changed => "changed",
            FileProblem::Io(_) => "unreadable",
        }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::NotRegular => f.write_str("not a regular file"),
            FileProblem::Symlink { at } => write!(
                f,
                "{} is a symbolic link, and no link in the path is followed (a folder on the way could point \
                 it at another user's file): name the real path",
                at.display()
            ),
            FileProblem::HardLinked { links } => write!(
                f,
                "the file has {links} hard links, so it is also another file (perhaps another user's) and is \
                 not read: put a copy in its place instead of a link"
            ),
            FileProblem::WritableByOthers { mode } => write!(
                f,
                "writable by group or others (mode {mode:04o}): anyone could have put a secret there"
            ),
            FileProblem::Owner { uid } => write!(
                f,
                "owned by uid {uid}, which is neither root, the user, nor the owner of its folder"
            ),
            FileProblem::TooLarge { limit } => write!(f, "larger than {} KiB", limit / 1024),
            FileProblem::Changed => f.write_str("it changed while being read; try again"),
            FileProblem::Io(e) => f.write_str(e),
        }
    }
}

fn io(e: std::io::Error) -> FileProblem {
    FileProblem::Io(e.to_string())
}

/// What a path that is no folder leads to, reached without following any
/// link: the folder it is in (opened O_PATH), its name there, and what it
/// is (the link-free lstat of it).
struct Leaf {
    folder: File,
    name: OsString,
    meta: Metadata,
}

/// Opens one component, O_PATH and O_NOFOLLOW: a link is opened as itself,
/// so it is seen for what it is rather than followed.
fn open_component(dir: Option<&File>, name: &OsStr, so_far: &Path) -> Result<(File, Metadata), FileProblem> {
    let file = crate::ffi::sys::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.file_type().is_symlink() {
        return Err(FileProblem::Symlink {
            at: so_far.to_path_buf(),
        });
    }
    Ok((file, meta))
}

/// Walks `path` component by component (relative paths from the current
/// folder), refusing a symbolic link wherever it is. `None`: a folder.
fn walk(path: &Path) -> Result<Option<Leaf>, FileProblem> {
    let parts: Vec<Component<'_>> = path.components().collect();
    let mut dir: Option<File> = None;
    let mut so_far = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        so_far.push(part.as_os_str());
        let name = match part {
            Component::RootDir => OsStr::new("/"),
            Component::CurDir => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(n) => n,
            Component::Prefix(_) => return Err(FileProblem::NotRegular),
        };
        let last = i + 1 == parts.len();
        let (file, meta) = open_component(dir.as_ref(), name, &so_far).map_err(|p| match p {
            // Which folder on the way is missing or closed, if not the end.
            FileProblem::Io(e) if !last => FileProblem::Io(format!("{}: {e}", so_far.display())),
            p => p,
        })?;
        match (meta.is_dir(), last, part) {
            (true, _, _) => dir = Some(file),
            (false, true, Component::Normal(n)) => {
                let folder = match dir {
                    Some(d) => d,
                    None => open_component(None, OsStr::new("."), Path::new("."))?.0,
                };
                return Ok(Some(Leaf {
                    folder,
                    name: n.to_os_string(),
                    meta,
                }));
            }
            _ => {
                return Err(FileProblem::Io(format!("{} is not a folder", so_far.display())));
            }
        }
    }
    // Every component was a folder, or there was none (`.`, the current one).
    Ok(None)
}

/// Whether `path` is a folder, reached without following a link (a home
/// folder in a `--list`, whose `.google_authenticator` is then read).
pub fn is_folder(path: &Path) -> bool {
    matches!(walk(path), Ok(None))
}

/// Checks that `path` is a folder reached without following a link (the
/// `--dir` of a bulk import, before its files are read one by one).
pub fn check_folder(path: &Path) -> Result<(), FileProblem> {
    match walk(path)? {
        None => Ok(()),
        Some(_) => Err(FileProblem::Io(format!("{} is not a folder", path.display()))),
    }
}

/// Reads a file to import from, at most `limit` bytes, refusing what
/// [`FileProblem`] names. `user`: the system user the file may belong to
/// besides root and the owner of its folder, looked up by name (a user
/// called `1000` is not uid 1000). The content is a secret: zeroized when
/// dropped.
pub fn read(path: &Path, limit: usize, user: Option<&str>) -> Result<SecretBytes, FileProblem> {
    let Leaf {
        folder,
        name,
        meta: before,
    } = walk(path)?.ok_or(FileProblem::NotRegular)?;
    // Looked at before opening for reading: opening a device or FIFO can
    // have effects.
    if !before.is_file() {
        return Err(FileProblem::NotRegular);
    }
    let mut file = crate::ffi::sys::openat(
        Some(&folder),
        &name,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => FileProblem::Symlink { at: path.to_path_buf() },
        _ => io(e),
    })?;
    // And judged on what was opened: a file swapped meanwhile is not read.
    let meta = file.metadata().map_err(io)?;
    if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
        return Err(FileProblem::Changed);
    }
    if !meta.is_file() {
        return Err(FileProblem::NotRegular);
    }
    if meta.nlink() > 1 {
        return Err(FileProblem::HardLinked { links: meta.nlink() });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(FileProblem::WritableByOthers {
            mode: meta.mode() & 0o7777,
        });
    }
    let uid = meta.uid();
    let folder_owner = folder.metadata().map(|m| m.uid()).ok();
    let trusted = uid == 0 || folder_owner == Some(uid) || user.and_then(crate::ffi::sys::uid_of_name) == Some(uid);
    if !trusted {
        return Err(FileProblem::Owner { uid });
    }
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if size > limit {
        return Err(FileProblem::TooLarge { limit });
    }
    // Bounded by the size just checked: a file that grew meanwhile shows as
    // longer than it.
    let buf = crate::secret::read_bounded(&mut file, size).map_err(io)?;
    if buf.len() > size {
        return Err(FileProblem::Changed);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn secret_file(p: &Path) {
        std::fs::write(p, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o400)).unwrap();
    }

    #[test]
    fn links_anywhere_in_the_path_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path();
        std::fs::create_dir(base.join("real")).unwrap();
        secret_file(&base.join("real/ga"));
        symlink(base.join("real"), base.join("link")).unwrap();
        symlink(base.join("real/ga"), base.join("real/ga-link")).unwrap();
        assert!(read(&base.join("real/ga"), 4096, None).is_ok());
        assert!(read(&base.join("real/./ga"), 4096, None).is_ok());
        assert!(read(&base.join("link/../real/ga"), 4096, None).is_err());
        for (path, at) in [
            (base.join("link/ga"), base.join("link")),
            (base.join("real/ga-link"), base.join("real/ga-link")),
        ] {
            assert_eq!(read(&path, 4096, None), Err(FileProblem::Symlink { at }));
        }
        assert!(is_folder(&base.join("real")) && !is_folder(&base.join("link")));
        assert!(check_folder(&base.join("real")).is_ok());
        assert!(matches!(
            check_folder(&base.join("link")),
            Err(FileProblem::Symlink { .. })
        ));
        assert_eq!(read(&base.join("real"), 4096, None), Err(FileProblem::NotRegular));
        assert!(matches!(
            read(&base.join("real/ga/x"), 4096, None),
            Err(FileProblem::Io(_))
        ));
        assert!(matches!(
            read(&base.join("missing"), 4096, None),
            Err(FileProblem::Io(_))
        ));
    }

    #[test]
    fn hard_links_are_refused() {
        let d = tempfile::tempdir().unwrap();
        secret_file(&d.path().join("a"));
        std::fs::hard_link(d.path().join("a"), d.path().join("b")).unwrap();
        for name in ["a", "b"] {
            assert_eq!(
                read(&d.path().join(name), 4096, None),
                Err(FileProblem::HardLinked { links: 2 })
            );
        }
        std::fs::remove_file(d.path().join("b")).unwrap();
        assert!(read(&d.path().join("a"), 4096, None).is_ok());
    }

    /// A relative path starts from the current folder (tests run from the
    /// crate's folder, whose Cargo.toml is a plain file).
    #[test]
    fn relative_paths() {
        assert!(matches!(walk(Path::new("Cargo.toml")), Ok(Some(_))));
        assert!(matches!(walk(Path::new(".")), Ok(None)));
        assert!(matches!(walk(Path::new("src/..")), Ok(None)));
    }
}
