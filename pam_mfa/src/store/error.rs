//! What can go wrong with the store, each case with the message that tells
//! an admin what to do about it (the module logs it, mfa-ctl prints it).

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum StoreError {
    /// A part of the store that every store has is not there.
    Missing { path: PathBuf, what: &'static str },
    /// `mfa-ctl store init` found a folder that is not a complete store and
    /// was not told to make it one.
    NotAStore { path: PathBuf, why: &'static str },
    /// The mailbox was set up, switched off or removed (by mfa-ctl) between
    /// the two looks one login takes at it (`split`, `verify`).
    ChangedDuringLogin { path: PathBuf },
    /// An optimistic write (see `Backend::relock`) found the mailbox changed
    /// since it was read, and wrote nothing. Not an admin's problem: the
    /// caller locks afresh and decides again.
    Conflict { mailbox: String },
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
            StoreError::NotAStore { path, why } => write!(
                f,
                "{} {why}; if a disk or share belongs there, mount it (an empty store in its place would let every enrolled mailbox in with the password alone); to start a new, empty store there, run: mfa-ctl store init --adopt",
                path.display()
            ),
            StoreError::ChangedDuringLogin { path } => write!(
                f,
                "{} was changed during the login (by mfa-ctl: set up, switched off or removed); the next login reads it afresh",
                path.display()
            ),
            StoreError::Conflict { mailbox } => write!(
                f,
                "mailbox {mailbox} changed between two reads of one login; the login decides again on the new content"
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
