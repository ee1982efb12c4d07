//! The file store: one folder per domain, three files per mailbox, found from
//! the mailbox name alone (a login costs the same with ten mailboxes or ten
//! million):
//!
//! ```text
//! STORE/domains/example.org.toml            domain policy      (mfa-ctl)
//! STORE/mailboxes/example.org/alice.toml    secrets            (mfa-ctl)
//! STORE/mailboxes/example.org/alice.state   login state        (the module; two checksummed copies, see [`slots`])
//! STORE/mailboxes/example.org/alice.lock    serialises writers of both
//! ```
//!
//! Every read-modify-write of a mailbox happens under its lock ([`Store::lock`]),
//! so parallel auth workers and `mfa-ctl` never lose each other's updates.

pub mod fsio;
pub mod records;
pub mod slots;

use crate::config::Config;
use crate::mailbox::Mailbox;
use crate::policy::DomainPolicy;
use fsio::Owners;
use records::{MailboxRecord, MailboxState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum StoreError {
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

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    owners: Owners,
    durable: bool,
}

impl Store {
    /// `extra_owner`: the uid of `store_owner`, already resolved.
    pub fn new(cfg: &Config, extra_owner: Option<u32>) -> Store {
        Store {
            root: cfg.store.clone(),
            owners: Owners { extra: extra_owner },
            durable: cfg.state.durable,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn domains_dir(&self) -> PathBuf {
        self.root.join("domains")
    }

    fn mailboxes_dir(&self) -> PathBuf {
        self.root.join("mailboxes")
    }

    fn domain_dir(&self, domain: &str) -> PathBuf {
        self.mailboxes_dir().join(domain)
    }

    fn domain_file(&self, domain: &str) -> PathBuf {
        self.domains_dir().join(format!("{domain}.toml"))
    }

    fn mailbox_file(&self, mb: &Mailbox, ext: &str) -> PathBuf {
        self.domain_dir(mb.domain()).join(format!("{}.{ext}", mb.local()))
    }

    /// Checks the folders on the way to a mailbox; `Ok(false)` if one is missing.
    fn check_path_to(&self, dirs: &[PathBuf]) -> Result<bool, StoreError> {
        if !fsio::check_dir(&self.root, self.owners)? {
            return Ok(false);
        }
        for d in dirs {
            if !fsio::check_dir(d, self.owners)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn ensure_path_to(&self, dirs: &[PathBuf]) -> Result<(), StoreError> {
        fsio::ensure_dir(&self.root, self.owners)?;
        for d in dirs {
            fsio::ensure_dir(d, self.owners)?;
        }
        Ok(())
    }

    fn read_toml<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, StoreError> {
        let Some(text) = fsio::read(path, self.owners)? else {
            return Ok(None);
        };
        let text = zeroize::Zeroizing::new(text);
        if text.trim().is_empty() {
            // Nothing pam_mfa writes is empty (an empty record is removed, not
            // written), so an empty file was truncated: read as "no MFA" it
            // would let an enrolled mailbox in with the password alone.
            return Err(StoreError::Damaged {
                path: path.to_path_buf(),
                why: "it is empty".into(),
            });
        }
        toml::from_str(&text).map(Some).map_err(|e| StoreError::Damaged {
            path: path.to_path_buf(),
            // The message names the key; the excerpt could show a secret, so it is left out.
            why: e.message().trim().to_string(),
        })
    }

    fn write_toml<T: Serialize>(
        &self,
        path: &Path,
        value: &T,
        durable: bool,
        sync_dir: bool,
    ) -> Result<(), StoreError> {
        let text = zeroize::Zeroizing::new(toml::to_string(value).map_err(|e| StoreError::Damaged {
            path: path.to_path_buf(),
            why: format!("cannot encode: {e}"),
        })?);
        fsio::write_atomic(path, text.as_bytes(), self.owners, durable, sync_dir)
    }

    /// The domain's own policy record, if it has one.
    pub fn read_domain(&self, domain: &str) -> Result<Option<DomainPolicy>, StoreError> {
        if !self.check_path_to(&[self.domains_dir()])? {
            return Ok(None);
        }
        self.read_toml(&self.domain_file(domain))
    }

    /// The policy in force: the domain's record or the configured default.
    pub fn policy_for(&self, domain: &str, cfg: &Config) -> Result<DomainPolicy, StoreError> {
        Ok(self
            .read_domain(domain)?
            .unwrap_or_else(|| DomainPolicy::default_for(cfg.default_policy)))
    }

    pub fn write_domain(&self, domain: &str, policy: &DomainPolicy) -> Result<(), StoreError> {
        let dir = self.domains_dir();
        self.ensure_path_to(std::slice::from_ref(&dir))?;
        // Policy changes are rare and must survive a crash: always durable.
        self.write_toml(&self.domain_file(domain), policy, true, true)
    }

    /// Removes a domain's record (it then follows `default_policy`).
    pub fn remove_domain(&self, domain: &str) -> Result<(), StoreError> {
        fsio::remove(&self.domain_file(domain))
    }

    /// Domains with a policy record, sorted.
    pub fn list_domains(&self) -> Result<Vec<(String, DomainPolicy)>, StoreError> {
        let dir = self.domains_dir();
        let mut out = Vec::new();
        for name in self.list_dir(&dir, ".toml")? {
            if let Ok(d) = Mailbox::parse_domain(&name)
                && let Some(p) = self.read_toml(&self.domain_file(&d))?
            {
                out.push((d, p));
            }
        }
        Ok(out)
    }

    /// Names in `dir` ending in `suffix`, with the suffix cut off, sorted.
    fn list_dir(&self, dir: &Path, suffix: &str) -> Result<Vec<String>, StoreError> {
        if !self.check_path_to(&[])? || !fsio::check_dir(dir, self.owners)? {
            return Ok(Vec::new());
        }
        let rd = std::fs::read_dir(dir).map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            op: "list",
            err: e,
        })?;
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(suffix).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Mailboxes with a record, in one domain or all, sorted.
    pub fn list_mailboxes(&self, domain: Option<&str>) -> Result<Vec<Mailbox>, StoreError> {
        let domains = match domain {
            Some(d) => vec![d.to_string()],
            None => self.list_dir(&self.mailboxes_dir(), "")?,
        };
        let mut out = Vec::new();
        for d in domains {
            if Mailbox::parse_domain(&d).is_err() {
                continue;
            }
            if !fsio::check_dir(&self.mailboxes_dir(), self.owners).unwrap_or(false) {
                break;
            }
            for local in self.list_dir(&self.domain_dir(&d), ".toml")? {
                if let Ok(mb) = Mailbox::parse(format!("{local}@{d}").as_bytes(), None) {
                    out.push(mb);
                }
            }
        }
        Ok(out)
    }

    /// The mailbox's record, read without the lock (writers replace it
    /// atomically, so a reader sees the old or the new one). `None` if the
    /// store does not know the mailbox.
    pub fn read_record(&self, mb: &Mailbox) -> Result<Option<MailboxRecord>, StoreError> {
        if !self.check_path_to(&[self.mailboxes_dir(), self.domain_dir(mb.domain())])? {
            return Ok(None);
        }
        self.read_toml(&self.mailbox_file(mb, "toml"))
    }

    /// Locks a mailbox for a read-modify-write. With `create`, missing folders
    /// are made (mfa-ctl); without, `None` means the store has no folder for
    /// the mailbox's domain, so there is nothing to lock (the module).
    pub fn lock(&self, mb: &Mailbox, create: bool) -> Result<Option<Locked<'_>>, StoreError> {
        let dirs = [self.mailboxes_dir(), self.domain_dir(mb.domain())];
        if create {
            self.ensure_path_to(&dirs)?;
        } else if !self.check_path_to(&dirs)? {
            return Ok(None);
        }
        let file = fsio::lock(&self.mailbox_file(mb, "lock"), self.owners)?;
        Ok(Some(Locked {
            store: self,
            mailbox: mb.clone(),
            _lock: file,
            state_file: RefCell::new(None),
        }))
    }
}

/// A locked mailbox. Dropping it releases the lock.
pub struct Locked<'s> {
    store: &'s Store,
    mailbox: Mailbox,
    _lock: File,
    /// The state file as last read or written, and where its newest copy
    /// is: the next write overwrites the other copy in place.
    state_file: RefCell<Option<(File, slots::Pos)>>,
}

impl Locked<'_> {
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    pub fn read_record(&self) -> Result<Option<MailboxRecord>, StoreError> {
        self.store.read_toml(&self.store.mailbox_file(&self.mailbox, "toml"))
    }

    /// Writes the record durably; an empty record removes the file.
    pub fn write_record(&self, record: &MailboxRecord) -> Result<(), StoreError> {
        let path = self.store.mailbox_file(&self.mailbox, "toml");
        if record.is_empty() {
            return fsio::remove(&path);
        }
        self.store.write_toml(&path, record, true, true)
    }

    /// The login state; a missing file is a fresh state.
    pub fn read_state(&self) -> Result<MailboxState, StoreError> {
        let path = self.store.mailbox_file(&self.mailbox, "state");
        self.state_file.replace(None);
        let Some(file) = fsio::open_rw(&path, self.store.owners)? else {
            return Ok(MailboxState::default());
        };
        let bytes = fsio::read_all(&file, &path)?;
        let damaged = |why: String| StoreError::Damaged {
            path: path.clone(),
            why,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // pam_mfa never writes an empty state: it was truncated.
            return Err(damaged("it is empty".into()));
        }
        let (text, pos) = match slots::decode(&bytes).map_err(damaged)? {
            slots::Decoded::Slotted(text, pos) => (text, Some(pos)),
            slots::Decoded::Plain(text) => (text, None),
        };
        let state = toml::from_str(text).map_err(|e| damaged(e.message().trim().to_string()))?;
        if let Some(pos) = pos {
            self.state_file.replace(Some((file, pos)));
        }
        Ok(state)
    }

    /// Writes the login state. Normally in place, over the older of the
    /// file's two copies (see [`slots`]), synced with `fdatasync` when
    /// `state.durable` (the default) or `sync`: a crash at any point leaves
    /// the newer copy intact. A missing, hand-written or outgrown file is
    /// replaced whole (temp file, sync, rename); with `sync` the folder is
    /// synced too, so even that replacement survives a power cut (asked for
    /// when the new state consumes a recovery code, which never expires).
    pub fn write_state(&self, state: &MailboxState, sync: bool) -> Result<(), StoreError> {
        let path = self.store.mailbox_file(&self.mailbox, "state");
        let payload = toml::to_string(state).map_err(|e| StoreError::Damaged {
            path: path.clone(),
            why: format!("cannot encode: {e}"),
        })?;
        let durable = self.store.durable || sync;
        let mut slot = self.state_file.borrow_mut();
        if let Some((file, pos)) = slot.as_mut()
            && let Some(bytes) = slots::encode(pos.seq.saturating_add(1), &payload, pos.slot_size)
        {
            let target = 1 - pos.newest;
            let offset = (target * pos.slot_size) as u64;
            fsio::write_in_place(file, &path, &bytes, offset, durable)?;
            pos.newest = target;
            pos.seq = pos.seq.saturating_add(1);
            return Ok(());
        }
        let seq = slot.as_ref().map_or(1, |(_, p)| p.seq.saturating_add(1));
        let bytes = slots::encode_file(seq, &payload);
        fsio::write_atomic(&path, &bytes, self.store.owners, durable, sync)?;
        *slot = fsio::open_rw(&path, self.store.owners)?.map(|f| {
            (
                f,
                slots::Pos {
                    slot_size: bytes.len() / 2,
                    newest: 0,
                    seq,
                },
            )
        });
        Ok(())
    }

    /// Removes state, record and lock file (the mailbox is forgotten).
    pub fn purge(self) -> Result<(), StoreError> {
        for ext in ["state", "toml", "lock"] {
            fsio::remove(&self.store.mailbox_file(&self.mailbox, ext))?;
        }
        Ok(())
    }
}
