//! What can go wrong with the store, each case with the message that tells
//! an admin what to do about it (the module logs it, mfa-ctl prints it).

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum StoreError {
    /// A part of the store that every store has is not there.
    Missing { path: PathBuf, what: &'static str },
    /// The mailbox's file was removed (by mfa-ctl) between the two looks
    /// one login takes at it.
    RemovedDuringLogin { path: PathBuf },
    /// Permissions, owner or file type make the file untrustworthy.
    Unsafe { path: PathBuf, why: String },
    /// The content does not parse.
    Damaged { path: PathBuf, why: String },
    Io {
        path: PathBuf,
        op: &'static str,
        err: std::io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Missing { path, what } => write!(
                f,
                "{what} {} is missing; if the store is on another disk or share, mount it (and check `store =` in the configuration); on a new install run: mfa-ctl store init",
                path.display()
            ),
            StoreError::RemovedDuringLogin { path } => write!(
                f,
                "{} was removed during the login (by mfa-ctl?); the next login reads the store afresh",
                path.display()
            ),
            StoreError::Unsafe { path, why } => write!(f, "refusing to use {}: {why}", path.display()),
            StoreError::Damaged { path, why } => write!(
                f,
                "{} is damaged ({why}); restore it from a backup, or remove it and re-run the mfa-ctl command that made it",
                path.display()
            ),
            StoreError::Io { path, op, err } => write!(f, "cannot {op} {}: {err}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {}
