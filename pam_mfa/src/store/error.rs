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
    ChangedDuringLogin { mailbox: String },
    /// An optimistic write (see `Backend::relock`) found the mailbox changed
    /// since it was read, and wrote nothing. Not an admin's problem: the
    /// caller locks afresh and decides again.
    Conflict { mailbox: String },
    /// Permissions, owner or file type make the file untrustworthy.
    Unsafe { path: PathBuf, why: String },
    /// The content does not parse.
    Damaged { path: PathBuf, why: String },
    /// A write that would make the mailbox larger than the store reads back
    /// ([`super::records::MAX_JSON`]); nothing was written.
    TooLarge { mailbox: String, size: usize, limit: usize },
    Io {
        path: PathBuf,
        op: &'static str,
        err: std::io::Error,
    },
    /// The database could not be reached (every server tried), or did not
    /// answer within the configured time.
    Unreachable { server: String, why: String },
    /// The database refused or failed what was asked (`what`), for a reason
    /// that is not the database being away; `fix` says what to do.
    Database {
        what: String,
        why: String,
        fix: &'static str,
    },
    /// The database has no pam_mfa schema (`found` is `None`), or one of a
    /// version this build does not know.
    SchemaVersion {
        server: String,
        found: Option<i64>,
        known: i64,
    },
    /// One mailbox's row cannot be read as what pam_mfa wrote (its sealed
    /// secrets do not open with this key and name, or its JSON does not
    /// parse): that mailbox refuses logins; the others are fine.
    DamagedRow {
        mailbox: String,
        what: String,
        why: String,
        fix: &'static str,
    },
    /// The server only accepts reads (a standby, or a read-only database).
    ReadOnly { server: String },
    /// The key that seals secrets in the database cannot be used; `why`
    /// says why and what to do (it never holds key material).
    Key { why: String },
}

impl StoreError {
    /// The store as a whole is out of service (database out of reach, timed
    /// out, read-only, at a schema this build does not know, key unusable),
    /// as opposed to one mailbox or one request having a problem: every
    /// login fails the same way until an admin acts, so the module logs it
    /// at most once a minute.
    /// What is stored for one mailbox cannot be read (a damaged file or
    /// row), as opposed to the store as a whole: `mfa-ctl disable --force`
    /// may then forget that mailbox so that it can enrol again.
    pub fn is_damaged_mailbox(&self) -> bool {
        matches!(self, StoreError::Damaged { .. } | StoreError::DamagedRow { .. })
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. }
                | StoreError::SchemaVersion { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::Key { .. }
        )
    }
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
            StoreError::ChangedDuringLogin { mailbox } => write!(
                f,
                "mailbox {mailbox} was changed during the login (by mfa-ctl: set up, switched off or removed); the next login reads it afresh"
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
            StoreError::TooLarge { mailbox, size, limit } => write!(
                f,
                "mailbox {mailbox} would take {size} bytes, more than the {limit} the store reads back, so nothing \
                 was written; what grows a mailbox is its app passwords (mfa-ctl app-password list/revoke) and the \
                 logins it keeps ([state] keep_logins)"
            ),
            StoreError::Io { path, op, err } => write!(f, "cannot {op} {}: {err}", path.display()),
            StoreError::Unreachable { server, why } => write!(
                f,
                "cannot use the database {server}: {why}; check that PostgreSQL runs there and that this server may \
                 connect (postgres.url, the password file, pg_hba.conf, firewalls): logins are refused until it answers"
            ),
            StoreError::Database { what, why, fix } => write!(f, "the database failed {what}: {why}; {fix}"),
            StoreError::DamagedRow { what, why, fix, .. } => write!(f, "{what}: {why}; {fix}"),
            StoreError::SchemaVersion {
                server, found: None, ..
            } => write!(
                f,
                "the database {server} has no pam_mfa tables (or this role may not see them); on a new install run, \
                 as the database owner: mfa-ctl store init (and grant the roles: /usr/share/doc/pam-mfa/examples/postgres/roles.sql)"
            ),
            StoreError::SchemaVersion {
                server,
                found: Some(v),
                known,
            } if v > known => write!(
                f,
                "the database {server} has pam_mfa schema version {v}, newer than this build knows ({known}); \
                 upgrade pam_mfa on this server to the version the other servers run"
            ),
            StoreError::SchemaVersion {
                server,
                found: Some(v),
                known,
            } => write!(
                f,
                "the database {server} has pam_mfa schema version {v}, older than this build needs ({known}); \
                 upgrade it: mfa-ctl store init (as the database owner)"
            ),
            StoreError::ReadOnly { server } => write!(
                f,
                "the database {server} only accepts reads (a standby, or default_transaction_read_only); point \
                 postgres.url at the primary: list every server with target_session_attrs=read-write"
            ),
            StoreError::Key { why } => f.write_str(why),
        }
    }
}

impl std::error::Error for StoreError {}
