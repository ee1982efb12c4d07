//! The store's contract, apart from how a backend keeps the data: what the
//! module and mfa-ctl may rely on, so that one server's files and a database
//! many servers share behave alike. Every backend runs the same contract
//! suite (`tests/src/contract.rs`).

use super::{Durability, ExistingFolder, Locked, OnMissing, Opened, Store, StoreError};
use crate::config::Config;
use crate::mailbox::Mailbox;
use crate::policy::DomainPolicy;
use crate::store::records::{MailboxFile, MailboxRecord, MailboxState};

/// A place that keeps domain policies and mailboxes.
///
/// - A store that is not there (never set up, or its disk or database out
///   of reach) is an error from every call, never an empty store.
/// - A mailbox is changed only through its [`MailboxLock`]: between
///   [`Backend::lock`] and the lock's drop no other writer, in this process
///   or another, on this server or another, changes it; writes through the
///   lock are atomic (a crash keeps the old or the new content).
pub trait Backend: Sync {
    type Lock<'s>: MailboxLock
    where
        Self: 's;
    /// What a login's first look at a mailbox keeps for its second.
    type Opened: OpenedMailbox + Send + Sync + 'static;

    /// Whether the store is there and trustworthy.
    fn check_ready(&self) -> Result<(), StoreError>;
    /// The domain's own policy, if it has one.
    fn read_domain(&self, domain: &str) -> Result<Option<DomainPolicy>, StoreError>;
    /// The policy in force: the domain's own, or the configured default.
    fn policy_for(&self, domain: &str, cfg: &Config) -> Result<DomainPolicy, StoreError>;
    fn write_domain(&self, domain: &str, policy: &DomainPolicy) -> Result<(), StoreError>;
    /// Domains with a policy of their own, sorted.
    fn list_domains(&self) -> Result<Vec<(String, DomainPolicy)>, StoreError>;
    /// A consistent copy of the mailbox (never half a write); `None` if the
    /// store does not know it.
    fn read_mailbox(&self, mb: &Mailbox) -> Result<Option<MailboxFile>, StoreError>;
    /// The mailbox's record; `None` if it has none (MFA never set up).
    fn read_record(&self, mb: &Mailbox) -> Result<Option<MailboxRecord>, StoreError> {
        Ok(self.read_mailbox(mb)?.map(|f| f.record).filter(|r| !r.is_empty()))
    }
    /// The mailbox, locked for a read-modify-write.
    fn lock(&self, mb: &Mailbox, on_missing: OnMissing) -> Result<Option<Self::Lock<'_>>, StoreError>;
    /// One page of a domain's mailboxes, sorted, after `after`.
    fn list_page(&self, domain: &str, after: Option<&Mailbox>, limit: usize) -> Result<Vec<Mailbox>, StoreError>;
    /// Domains that have at least one mailbox, sorted.
    fn mailbox_domains(&self) -> Result<Vec<String>, StoreError>;
    /// A login's first look (`split`): the policy in force and the mailbox,
    /// in as few trips to the store as the backend can manage.
    fn open_login(&self, mb: &Mailbox, cfg: &Config) -> Result<(DomainPolicy, Option<Self::Opened>), StoreError>;
    /// The same login's second look (`verify`), locked for its write. A
    /// backend may hand out an optimistic lock here: its writes then fail
    /// with [`StoreError::Conflict`], writing nothing, if the mailbox changed
    /// since `open_login`; the caller takes a fresh [`Backend::lock`] and
    /// decides again.
    fn relock(&self, opened: &Self::Opened) -> Result<Option<Self::Lock<'_>>, StoreError>;
    /// Removes whatever is stored for the mailbox without reading it (it may
    /// be damaged); whether there was anything. Only for an admin's explicit
    /// `mfa-ctl disable --force` of a mailbox that cannot be read.
    fn forget(&self, mb: &Mailbox) -> Result<bool, StoreError>;
    /// Sets the store up (`mfa-ctl store init`); what it made, for the admin.
    fn init(&self, existing: ExistingFolder) -> Result<Vec<String>, StoreError>;
}

/// What [`Backend::open_login`] read.
pub trait OpenedMailbox {
    fn content(&self) -> &MailboxFile;
}

/// A mailbox held by one writer. Dropping it lets the next one in.
pub trait MailboxLock {
    /// The record; `None` if the mailbox has none.
    fn record(&self) -> Option<&MailboxRecord>;
    fn state(&self) -> &MailboxState;
    /// Record and state as one atomic, durable change. Both empty: the
    /// mailbox is forgotten.
    fn write(&mut self, record: &MailboxRecord, state: &MailboxState) -> Result<(), StoreError>;
    /// Whether what the lock read is still current, for a decision that
    /// writes nothing (a mailbox without a record let in with the password
    /// alone): a real lock always is; an optimistic one (see
    /// [`Backend::relock`]) answers [`StoreError::Conflict`] if the mailbox
    /// changed since it was read.
    fn confirm(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The record alone (mfa-ctl); the state stays as it is.
    fn write_record(&mut self, record: &MailboxRecord) -> Result<(), StoreError> {
        let state = self.state().clone();
        self.write(record, &state)
    }
    /// The state alone (a login), as durable as `durability` says.
    fn write_state(&mut self, state: &MailboxState, durability: Durability) -> Result<(), StoreError>;
    /// Forgets the mailbox.
    fn purge(self) -> Result<(), StoreError>;
}

impl OpenedMailbox for Opened {
    fn content(&self) -> &MailboxFile {
        &self.content
    }
}

impl Backend for Store {
    type Lock<'s> = Locked<'s>;
    type Opened = Opened;

    fn check_ready(&self) -> Result<(), StoreError> {
        Store::check_ready(self)
    }
    fn read_domain(&self, domain: &str) -> Result<Option<DomainPolicy>, StoreError> {
        Store::read_domain(self, domain)
    }
    fn policy_for(&self, domain: &str, cfg: &Config) -> Result<DomainPolicy, StoreError> {
        Store::policy_for(self, domain, cfg)
    }
    fn write_domain(&self, domain: &str, policy: &DomainPolicy) -> Result<(), StoreError> {
        Store::write_domain(self, domain, policy)
    }
    fn list_domains(&self) -> Result<Vec<(String, DomainPolicy)>, StoreError> {
        Store::list_domains(self)
    }
    fn read_mailbox(&self, mb: &Mailbox) -> Result<Option<MailboxFile>, StoreError> {
        Store::read_mailbox(self, mb)
    }
    fn lock(&self, mb: &Mailbox, on_missing: OnMissing) -> Result<Option<Locked<'_>>, StoreError> {
        Store::lock(self, mb, on_missing)
    }
    fn list_page(&self, domain: &str, after: Option<&Mailbox>, limit: usize) -> Result<Vec<Mailbox>, StoreError> {
        Store::list_page(self, domain, after, limit)
    }
    fn mailbox_domains(&self) -> Result<Vec<String>, StoreError> {
        Store::mailbox_domains(self)
    }
    fn open_login(&self, mb: &Mailbox, cfg: &Config) -> Result<(DomainPolicy, Option<Opened>), StoreError> {
        Ok((
            Store::policy_for(self, mb.domain(), cfg)?,
            Store::open_mailbox(self, mb)?,
        ))
    }
    fn relock(&self, opened: &Opened) -> Result<Option<Locked<'_>>, StoreError> {
        Store::relock(self, opened)
    }
    fn forget(&self, mb: &Mailbox) -> Result<bool, StoreError> {
        Store::forget(self, mb)
    }
    fn init(&self, existing: ExistingFolder) -> Result<Vec<String>, StoreError> {
        Ok(Store::init(self, existing)?
            .iter()
            .map(|p| p.display().to_string())
            .collect())
    }
}

impl MailboxLock for Locked<'_> {
    fn record(&self) -> Option<&MailboxRecord> {
        Locked::record(self)
    }
    fn state(&self) -> &MailboxState {
        Locked::state(self)
    }
    fn write(&mut self, record: &MailboxRecord, state: &MailboxState) -> Result<(), StoreError> {
        Locked::write(self, record, state)
    }
    fn write_state(&mut self, state: &MailboxState, durability: Durability) -> Result<(), StoreError> {
        Locked::write_state(self, state, durability)
    }
    fn purge(self) -> Result<(), StoreError> {
        Locked::purge(self)
    }
}
