//! The backend the configuration names, behind one type: the module and
//! mfa-ctl are written once against [`Backend`] and run the same on this
//! server's files and on a database several servers share. An enum rather
//! than a trait object because the traits have associated types (a lock
//! that borrows its store), and a login pays no allocation for it.

use super::backend::{Backend, MailboxLock, OpenedMailbox};
use super::pg::{PgLock, PgOpened, PgStore};
use super::records::{MailboxFile, MailboxRecord, MailboxState};
use super::{Durability, ExistingFolder, Locked, OnMissing, Opened, Store, StoreError};
use crate::config::{BackendKind, Config};
use crate::mailbox::Mailbox;
use crate::policy::DomainPolicy;

#[derive(Debug)]
pub enum AnyStore {
    Files(Store),
    Postgres(PgStore),
}

pub enum AnyLock<'s> {
    Files(Locked<'s>),
    Postgres(PgLock<'s>),
}

#[derive(Debug)]
pub enum AnyOpened {
    Files(Opened),
    Postgres(PgOpened),
}

impl AnyStore {
    /// The store `cfg` names. `extra_owner`: the uid of `store_owner`,
    /// already resolved. Opening connects to nothing yet: a database is
    /// reached on first use.
    pub fn open(cfg: &Config, extra_owner: Option<u32>) -> Result<AnyStore, StoreError> {
        match cfg.backend {
            BackendKind::Files => Ok(AnyStore::Files(Store::new(cfg, extra_owner))),
            BackendKind::Postgres => Ok(AnyStore::Postgres(PgStore::open(cfg, extra_owner)?)),
        }
    }

    /// The store in words for the admin: the folder, or the database.
    pub fn describe(&self) -> String {
        match self {
            AnyStore::Files(s) => s.root().display().to_string(),
            AnyStore::Postgres(s) => s.describe(),
        }
    }

    /// The file store, for what only it has (its folder, `doctor`'s checks
    /// of modes and owners).
    pub fn files(&self) -> Option<&Store> {
        match self {
            AnyStore::Files(s) => Some(s),
            AnyStore::Postgres(_) => None,
        }
    }
}

/// Calls the same method on whichever backend `$self` holds.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            AnyStore::Files($s) => $body,
            AnyStore::Postgres($s) => $body,
        }
    };
}

impl Backend for AnyStore {
    type Lock<'s> = AnyLock<'s>;
    type Opened = AnyOpened;

    fn check_ready(&self) -> Result<(), StoreError> {
        each!(self, s => s.check_ready())
    }
    fn read_domain(&self, domain: &str) -> Result<Option<DomainPolicy>, StoreError> {
        each!(self, s => s.read_domain(domain))
    }
    fn policy_for(&self, domain: &str, cfg: &Config) -> Result<DomainPolicy, StoreError> {
        each!(self, s => s.policy_for(domain, cfg))
    }
    fn write_domain(&self, domain: &str, policy: &DomainPolicy) -> Result<(), StoreError> {
        each!(self, s => s.write_domain(domain, policy))
    }
    fn list_domains(&self) -> Result<Vec<(String, DomainPolicy)>, StoreError> {
        each!(self, s => s.list_domains())
    }
    fn read_mailbox(&self, mb: &Mailbox) -> Result<Option<MailboxFile>, StoreError> {
        each!(self, s => s.read_mailbox(mb))
    }
    fn lock(&self, mb: &Mailbox, on_missing: OnMissing) -> Result<Option<AnyLock<'_>>, StoreError> {
        match self {
            AnyStore::Files(s) => Ok(s.lock(mb, on_missing)?.map(AnyLock::Files)),
            AnyStore::Postgres(s) => Ok(s.lock(mb, on_missing)?.map(AnyLock::Postgres)),
        }
    }
    fn list_page(&self, domain: &str, after: Option<&Mailbox>, limit: usize) -> Result<Vec<Mailbox>, StoreError> {
        each!(self, s => s.list_page(domain, after, limit))
    }
    fn mailbox_domains(&self) -> Result<Vec<String>, StoreError> {
        each!(self, s => s.mailbox_domains())
    }
    fn open_login(&self, mb: &Mailbox, cfg: &Config) -> Result<(DomainPolicy, Option<AnyOpened>), StoreError> {
        match self {
            AnyStore::Files(s) => {
                let (policy, opened) = Backend::open_login(s, mb, cfg)?;
                Ok((policy, opened.map(AnyOpened::Files)))
            }
            AnyStore::Postgres(s) => {
                let (policy, opened) = s.open_login(mb, cfg)?;
                Ok((policy, opened.map(AnyOpened::Postgres)))
            }
        }
    }
    fn relock(&self, opened: &AnyOpened) -> Result<Option<AnyLock<'_>>, StoreError> {
        match (self, opened) {
            (AnyStore::Files(s), AnyOpened::Files(o)) => Ok(Backend::relock(s, o)?.map(AnyLock::Files)),
            (AnyStore::Postgres(s), AnyOpened::Postgres(o)) => Ok(s.relock(o)?.map(AnyLock::Postgres)),
            // What one backend read is no snapshot of another (the PAM lines
            // of one login named different configurations; refused earlier).
            (store, _) => Err(StoreError::ChangedDuringLogin {
                mailbox: format!("(read from another store than {})", store.describe()),
            }),
        }
    }
    fn forget(&self, mb: &Mailbox) -> Result<bool, StoreError> {
        each!(self, s => Backend::forget(s, mb))
    }
    fn init(&self, existing: ExistingFolder) -> Result<Vec<String>, StoreError> {
        each!(self, s => Backend::init(s, existing))
    }
}

impl OpenedMailbox for AnyOpened {
    fn content(&self) -> &MailboxFile {
        match self {
            AnyOpened::Files(o) => o.content(),
            AnyOpened::Postgres(o) => o.content(),
        }
    }
}

impl MailboxLock for AnyLock<'_> {
    fn record(&self) -> Option<&MailboxRecord> {
        match self {
            AnyLock::Files(l) => l.record(),
            AnyLock::Postgres(l) => l.record(),
        }
    }
    fn state(&self) -> &MailboxState {
        match self {
            AnyLock::Files(l) => l.state(),
            AnyLock::Postgres(l) => l.state(),
        }
    }
    fn write(&mut self, record: &MailboxRecord, state: &MailboxState) -> Result<(), StoreError> {
        match self {
            AnyLock::Files(l) => l.write(record, state),
            AnyLock::Postgres(l) => l.write(record, state),
        }
    }
    fn confirm(&mut self) -> Result<(), StoreError> {
        match self {
            AnyLock::Files(l) => l.confirm(),
            AnyLock::Postgres(l) => l.confirm(),
        }
    }
    fn write_state(&mut self, state: &MailboxState, durability: Durability) -> Result<(), StoreError> {
        match self {
            AnyLock::Files(l) => l.write_state(state, durability),
            AnyLock::Postgres(l) => l.write_state(state, durability),
        }
    }
    fn purge(self) -> Result<(), StoreError> {
        match self {
            AnyLock::Files(l) => l.purge(),
            AnyLock::Postgres(l) => l.purge(),
        }
    }
}
