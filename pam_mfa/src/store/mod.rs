//! Where policies, mailboxes and login state are kept. The contract every
//! backend keeps is [`backend::Backend`]; [`any::AnyStore`] is the one the
//! configuration names; [`pg`] is the database several mail servers share.
//! This file is the file store of one server: one folder per domain, one
//! file per mailbox, found from the mailbox name alone (a login costs the
//! same with ten mailboxes or ten million):
//!
//! ```text
//! STORE/pam_mfa-store                       the marker: "this folder is a pam_mfa store"
//! STORE/domains/example.org.toml            domain policy (mfa-ctl; TOML, for admins to read)
//! STORE/mailboxes/example.org/alice.mfa     the mailbox: secrets (mfa-ctl) and login state (the module)
//! ```
//!
//! One file per mailbox, not one for secrets, one for state and one to lock:
//! with a million mailboxes a mailbox's files are rarely in the kernel's
//! caches, and each file a login touches is a cold lookup. The file holds two
//! checksummed copies of its JSON content and is updated in place (see
//! [`slots`]), so it keeps its inode and is its own lock: every
//! read-modify-write of a mailbox happens under `flock` of its file
//! ([`Store::lock`]), so parallel auth workers and `mfa-ctl` never lose each
//! other's updates.

pub mod any;
pub mod backend;
mod error;
pub mod fsio;
pub mod pg;
pub mod records;
pub mod slots;

pub use error::StoreError;

/// Suffix of mailbox files.
pub const MAILBOX_EXT: &str = "mfa";

/// The file at the top of every store. A store folder without it is an
/// unmounted disk or share, a typo in `store =`, or a folder nobody set up:
/// read as "no mailbox has MFA" it would let every enrolled mailbox in with
/// the password alone, so logins are refused instead.
pub const MARKER: &str = "pam_mfa-store";
/// What the marker holds (checked by `mfa-ctl store init` and `doctor`; a
/// login only checks that the marker is there and trustworthy).
pub const MARKER_TEXT: &str = "pam_mfa store 1\n";

use crate::config::Config;
use crate::mailbox::Mailbox;
use crate::policy::DomainPolicy;
use fsio::Owners;
use records::{MailboxFile, MailboxRecord, MailboxState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    owners: Owners,
    durable: bool,
    listing: ListingCache,
}

/// Names [`Store::list_page`] read from a domain's folder past the page it
/// returned, for the pages that follow: a folder has no order to resume
/// from, so each read of it costs the whole folder, and one read serves
/// many pages (for a million mailboxes, twenty reads instead of a thousand).
#[derive(Debug, Default)]
struct ListingCache(std::sync::Mutex<Option<Listing>>);

impl Clone for ListingCache {
    /// A copy of the store starts without: the names are its reader's.
    fn clone(&self) -> Self {
        ListingCache::default()
    }
}

impl ListingCache {
    fn take(&self) -> Option<Listing> {
        // A panic while the lock was held cannot leave a half-made value.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    fn put(&self, listing: Listing) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(listing);
    }
}

#[derive(Debug)]
struct Listing {
    domain: String,
    /// The last name returned: the held names are those that follow it.
    after: String,
    names: std::collections::VecDeque<String>,
    /// The folder held names past `names` too.
    more: bool,
    read_at: std::time::Instant,
}

/// How many names one read of a domain's folder keeps for the next pages:
/// memory for this many (a few MB), whatever the folder holds.
const LISTING_CHUNK: usize = 50_000;
/// Kept names older than this are read again: the pages of one listing
/// come quickly one after another; a later listing must see the folder now.
const LISTING_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

impl Store {
    /// `extra_owner`: the uid of `store_owner`, already resolved.
    pub fn new(cfg: &Config, extra_owner: Option<u32>) -> Store {
        Store {
            root: cfg.store.clone(),
            owners: Owners { extra: extra_owner },
            durable: cfg.state.durable,
            listing: ListingCache::default(),
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

    /// The mailbox's file.
    pub fn mailbox_path(&self, mb: &Mailbox) -> PathBuf {
        self.domain_dir(mb.domain())
            .join(format!("{}.{MAILBOX_EXT}", mb.local()))
    }

    fn marker_path(&self) -> PathBuf {
        self.root.join(MARKER)
    }

    /// Whether the store is there: its folder, marker, `domains/` and
    /// `mailboxes/`, each trustworthy. Every read goes through this, so a
    /// missing store is an error, never an empty one.
    pub fn check_ready(&self) -> Result<(), StoreError> {
        let missing = |path: PathBuf, what| Err(StoreError::Missing { path, what });
        if !fsio::check_dir(&self.root, self.owners)? {
            return missing(self.root.clone(), "the store folder");
        }
        if !fsio::check_marker(&self.marker_path(), self.owners)? {
            return missing(self.marker_path(), "the store marker");
        }
        if !fsio::check_dir(&self.mailboxes_dir(), self.owners)? {
            return missing(self.mailboxes_dir(), "the store's mailboxes folder");
        }
        if !fsio::check_dir(&self.domains_dir(), self.owners)? {
            return missing(self.domains_dir(), "the store's domains folder");
        }
        Ok(())
    }

    /// Sets up a store (`mfa-ctl store init`, the package's postinst, `make
    /// install`): a folder that does not exist is made, with its marker,
    /// `domains/` and `mailboxes/`. A folder that exists without its marker,
    /// or a marked one missing a sub-folder, is what an unmounted disk or a
    /// lost folder looks like: made into an empty store it would let every
    /// enrolled mailbox in with the password alone, so that happens only
    /// with [`ExistingFolder::Adopt`]. A marker with other content is
    /// refused (another program's folder, or a newer store format).
    /// Returns the paths it created; none for a complete store.
    pub fn init(&self, existing: ExistingFolder) -> Result<Vec<PathBuf>, StoreError> {
        let mut created = Vec::new();
        let adopt = if fsio::check_dir(&self.root, self.owners)? {
            existing == ExistingFolder::Adopt
        } else {
            fsio::ensure_dir(&self.root, self.owners)?;
            created.push(self.root.clone());
            true
        };
        let marker = self.marker_path();
        match fsio::read(&marker, self.owners)? {
            Some(text) if text == MARKER_TEXT => {}
            Some(_) => {
                return Err(StoreError::Damaged {
                    path: marker,
                    why: format!("it does not say {:?}", MARKER_TEXT.trim_end()),
                });
            }
            None if adopt => {
                fsio::write_atomic(&marker, MARKER_TEXT.as_bytes(), self.owners)?;
                created.push(marker.clone());
            }
            None => {
                return Err(StoreError::NotAStore {
                    path: self.root.clone(),
                    why: "exists but has no store marker",
                });
            }
        }
        for dir in [self.domains_dir(), self.mailboxes_dir()] {
            if fsio::check_dir(&dir, self.owners)? {
                continue;
            }
            if !(adopt || created.contains(&marker)) {
                return Err(StoreError::NotAStore {
                    path: dir,
                    why: "is missing from a store that has its marker",
                });
            }
            fsio::ensure_dir(&dir, self.owners)?;
            created.push(dir);
        }
        Ok(created)
    }

    /// The folders on the way to a mailbox (`dirs`: those below `domains/`
    /// and `mailboxes/`); `Ok(false)` if one of those is missing. A missing
    /// store is an error ([`Store::check_ready`]).
    fn check_path_to(&self, dirs: &[PathBuf]) -> Result<bool, StoreError> {
        self.check_ready()?;
        for d in dirs {
            if !fsio::check_dir(d, self.owners)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// For mfa-ctl's changes: a store that does not exist yet is set up
    /// ([`Store::init`]); one whose folder exists without its marker is not
    /// (it may be a mount point whose disk is missing).
    fn ensure_path_to(&self, dirs: &[PathBuf]) -> Result<(), StoreError> {
        if !fsio::check_dir(&self.root, self.owners)? {
            self.init(ExistingFolder::Refuse)?;
        }
        self.check_ready()?;
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

    fn write_toml<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), StoreError> {
        let text = zeroize::Zeroizing::new(toml::to_string(value).map_err(|e| StoreError::Damaged {
            path: path.to_path_buf(),
            why: format!("cannot encode: {e}"),
        })?);
        fsio::write_atomic(path, text.as_bytes(), self.owners)
    }

    /// The domain's own policy record, if it has one.
    pub fn read_domain(&self, domain: &str) -> Result<Option<DomainPolicy>, StoreError> {
        self.check_ready()?;
        self.read_toml(&self.domain_file(domain))
    }

    /// The policy in force: the domain's record or the configured default.
    pub fn policy_for(&self, domain: &str, cfg: &Config) -> Result<DomainPolicy, StoreError> {
        Ok(self
            .read_domain(domain)?
            .unwrap_or_else(|| DomainPolicy::default_for(cfg.default_policy)))
    }

    pub fn write_domain(&self, domain: &str, policy: &DomainPolicy) -> Result<(), StoreError> {
        self.ensure_path_to(&[])?;
        // Policy changes are rare and must survive a crash: always durable.
        self.write_toml(&self.domain_file(domain), policy)
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
        if !self.check_path_to(&[dir.to_path_buf()])? {
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
            for local in self.list_dir(&self.domain_dir(&d), ".mfa")? {
                if let Ok(mb) = Mailbox::parse(format!("{local}@{d}").as_bytes(), None) {
                    out.push(mb);
                }
            }
        }
        Ok(out)
    }

    /// Domains that have a folder of mailboxes, sorted.
    pub fn mailbox_domains(&self) -> Result<Vec<String>, StoreError> {
        let mut domains = self.list_dir(&self.mailboxes_dir(), "")?;
        domains.retain(|d| Mailbox::parse_domain(d).is_ok());
        domains.sort();
        Ok(domains)
    }

    /// One page of a domain's mailboxes, sorted: those after `after`, at
    /// most `limit`. A folder has no order to resume from, so each read of
    /// it goes through all its names; it keeps only the smallest past
    /// `after` ([`LISTING_CHUNK`], memory for those, not for the million a
    /// domain may hold), and the pages that follow are served from them.
    /// So a page may come from a read of the folder made a few seconds
    /// earlier ([`LISTING_FRESH`]): a mailbox added since may be missing
    /// from it, as it would be had it been added to a part already listed,
    /// and one removed since may be named (reading it then finds nothing).
    pub fn list_page(&self, domain: &str, after: Option<&Mailbox>, limit: usize) -> Result<Vec<Mailbox>, StoreError> {
        let after = after.filter(|a| a.domain() == domain).map(Mailbox::local);
        let dir = self.domain_dir(domain);
        if limit == 0 || !self.check_path_to(std::slice::from_ref(&dir))? {
            return Ok(Vec::new());
        }
        let held = self.listing.take().filter(|l| {
            l.domain == domain
                && Some(l.after.as_str()) == after
                && l.read_at.elapsed() < LISTING_FRESH
                && (l.names.len() >= limit || !l.more)
        });
        let Listing {
            mut names,
            more,
            read_at,
            ..
        } = match held {
            Some(l) => l,
            None => self.read_names(domain, &dir, after, limit.max(LISTING_CHUNK))?,
        };
        let page: Vec<String> = names.drain(..limit.min(names.len())).collect();
        if let Some(last) = page.last()
            && (more || !names.is_empty())
        {
            self.listing.put(Listing {
                domain: domain.to_string(),
                after: last.clone(),
                names,
                more,
                read_at,
            });
        }
        Ok(page.iter().filter_map(|local| mailbox_in(local, domain)).collect())
    }

    /// The `keep` smallest names of mailboxes in the domain's folder past
    /// `after`, sorted, in one pass over the folder.
    fn read_names(&self, domain: &str, dir: &Path, after: Option<&str>, keep: usize) -> Result<Listing, StoreError> {
        let read_at = std::time::Instant::now();
        let entries = std::fs::read_dir(dir).map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            op: "list",
            err: e,
        })?;
        // A max-heap: its top is the name to drop when a smaller one comes.
        // Not sized by `keep`, which a caller may give as "no limit".
        let mut kept = std::collections::BinaryHeap::<String>::new();
        let mut more = false;
        for entry in entries.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(local) = name.strip_suffix(".mfa") else {
                continue;
            };
            if after.is_some_and(|a| local <= a) {
                continue;
            }
            if kept.len() >= keep && kept.peek().is_none_or(|top| local > top.as_str()) {
                more = true;
                continue;
            }
            // Names that make no mailbox do not take a place.
            if mailbox_in(local, domain).is_some() {
                kept.push(local.to_string());
                if kept.len() > keep {
                    kept.pop();
                    more = true;
                }
            }
        }
        Ok(Listing {
            domain: domain.to_string(),
            after: String::new(),
            names: kept.into_sorted_vec().into(),
            more,
            read_at,
        })
    }

    /// The mailbox's file, read under a shared lock (never halfway through a
    /// write). `None` if the store does not know the mailbox.
    pub fn read_mailbox(&self, mb: &Mailbox) -> Result<Option<MailboxFile>, StoreError> {
        Ok(self
            .read_shared(mb, fsio::LockMode::Shared)?
            .map(|(_, _, content, _)| content))
    }

    /// [`Store::read_mailbox`] for a login: the file stays open (unlocked)
    /// in the returned [`Opened`], so that the later [`Store::relock`] of the
    /// same login needs no new path lookup and, if nobody wrote the file in
    /// between, no second parse.
    pub fn open_mailbox(&self, mb: &Mailbox) -> Result<Option<Opened>, StoreError> {
        let Some((file, meta, content, pos)) = self.read_shared(mb, fsio::LockMode::SharedWritable)? else {
            return Ok(None);
        };
        file.unlock().map_err(|err| StoreError::Io {
            path: self.mailbox_path(mb),
            op: "unlock",
            err,
        })?;
        Ok(Some(Opened {
            mailbox: mb.clone(),
            file,
            id: (meta.dev(), meta.ino()),
            content,
            pos,
        }))
    }

    /// Opens, shared-locks (`mode`: one of the shared ones), reads and
    /// decodes a mailbox's file.
    fn read_shared(
        &self,
        mb: &Mailbox,
        mode: fsio::LockMode,
    ) -> Result<Option<(File, std::fs::Metadata, MailboxFile, slots::Pos)>, StoreError> {
        if !self.check_path_to(&[self.domain_dir(mb.domain())])? {
            return Ok(None);
        }
        let path = self.mailbox_path(mb);
        let Some((file, meta)) = fsio::open_locked(&path, self.owners, mode)? else {
            return Ok(None);
        };
        let (content, pos) = decode(&path, &fsio::read_all(&file, &meta, &path)?)?;
        Ok(Some((file, meta, content, pos)))
    }

    /// [`Store::lock`] ([`OnMissing::Skip`]) on a file [`Store::open_mailbox`]
    /// opened earlier in the same login. Falls back to a fresh lookup if the
    /// file was replaced or removed since.
    pub fn relock(&self, opened: &Opened) -> Result<Option<Locked<'_>>, StoreError> {
        let path = self.mailbox_path(&opened.mailbox);
        let Some((file, meta)) = fsio::lock_if_current(&opened.file, opened.id, &path)? else {
            return self.lock(&opened.mailbox, OnMissing::Skip);
        };
        let bytes = fsio::read_all(&file, &meta, &path)?;
        // Sequence numbers only grow: the same newest copy as at open time
        // means nobody wrote the file since, and what was parsed then holds.
        let (content, pos) = if slots::newest_header(&bytes) == Some((opened.pos.seq, opened.pos.newest))
            && bytes.len() == opened.pos.slot_size * 2
        {
            (opened.content.clone(), opened.pos)
        } else {
            decode(&path, &bytes)?
        };
        Ok(Some(Locked::new(self, &opened.mailbox, path, file, content, pos)))
    }

    /// Removes the mailbox's file under its lock without reading it (it may
    /// be damaged); see [`backend::Backend::forget`].
    pub fn forget(&self, mb: &Mailbox) -> Result<bool, StoreError> {
        if !self.check_path_to(&[self.domain_dir(mb.domain())])? {
            return Ok(false);
        }
        let path = self.mailbox_path(mb);
        let Some((file, _)) = fsio::open_locked(&path, self.owners, fsio::LockMode::Exclusive)? else {
            return Ok(false);
        };
        let removed = fsio::remove(&path);
        let _ = file.unlock();
        removed.map(|()| true)
    }

    /// The mailbox's record; `None` if it has none (MFA never set up).
    pub fn read_record(&self, mb: &Mailbox) -> Result<Option<MailboxRecord>, StoreError> {
        Ok(self.read_mailbox(mb)?.map(|f| f.record).filter(|r| !r.is_empty()))
    }

    /// Locks a mailbox's file for a read-modify-write, and reads it;
    /// `on_missing` says what a missing file means.
    pub fn lock(&self, mb: &Mailbox, on_missing: OnMissing) -> Result<Option<Locked<'_>>, StoreError> {
        let dirs = [self.domain_dir(mb.domain())];
        let create = on_missing == OnMissing::Create;
        if create {
            self.ensure_path_to(&dirs)?;
        } else if !self.check_path_to(&dirs)? {
            return Ok(None);
        }
        let path = self.mailbox_path(mb);
        let locked = |file, content, pos| Locked::new(self, mb, path.clone(), file, content, pos);
        // Twice at most: a file created by someone else between our two looks.
        for _ in 0..2 {
            if let Some((file, meta)) = fsio::open_locked(&path, self.owners, fsio::LockMode::Exclusive)? {
                let (content, pos) = decode(&path, &fsio::read_all(&file, &meta, &path)?)?;
                return Ok(Some(locked(file, content, pos)));
            }
            if !create {
                return Ok(None);
            }
            let content = MailboxFile::default();
            let bytes = slots::encode_file(1, &encode(&path, &content)?);
            if let Some(file) = fsio::create_locked(&path, &bytes, self.owners)? {
                let pos = slots::Pos {
                    slot_size: bytes.len() / 2,
                    newest: 0,
                    seq: 1,
                };
                return Ok(Some(locked(file, content, pos)));
            }
        }
        Err(StoreError::Unsafe {
            path,
            why: "it appeared and vanished again while being created; retry".into(),
        })
    }
}

/// The mailbox `local@domain`, if that is a mailbox name.
fn mailbox_in(local: &str, domain: &str) -> Option<Mailbox> {
    Mailbox::parse(format!("{local}@{domain}").as_bytes(), None).ok()
}

fn decode(path: &Path, bytes: &[u8]) -> Result<(MailboxFile, slots::Pos), StoreError> {
    let damaged = |why: String| StoreError::Damaged {
        path: path.to_path_buf(),
        why,
    };
    if bytes.is_empty() {
        // pam_mfa never writes an empty file (an empty mailbox is removed):
        // it was truncated, and read as "no MFA" it would let an enrolled
        // mailbox in with the password alone.
        return Err(damaged("it is empty".into()));
    }
    let (payload, pos) = slots::decode(bytes).map_err(damaged)?;
    Ok((MailboxFile::from_json(payload).map_err(damaged)?, pos))
}

fn encode(path: &Path, content: &MailboxFile) -> Result<crate::secret::SecretString, StoreError> {
    content.to_json().map_err(|why| StoreError::Damaged {
        path: path.to_path_buf(),
        why,
    })
}

/// A mailbox file read (under a shared lock, since released) and kept open
/// for the rest of one login; see [`Store::open_mailbox`].
#[derive(Debug)]
pub struct Opened {
    mailbox: Mailbox,
    file: File,
    /// Device and inode of `file`, to see whether it is still the one in place.
    id: (u64, u64),
    pub content: MailboxFile,
    pos: slots::Pos,
}

/// What [`Store::init`] does with a store folder that exists but is not a
/// complete store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingFolder {
    /// Refuse: it may be a mount point whose disk is missing.
    Refuse,
    /// Make it a store (the admin said so: `mfa-ctl store init --adopt`).
    Adopt,
}

/// What a missing mailbox file means to [`Store::lock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMissing {
    /// Make it (and its folders), empty: mfa-ctl setting a mailbox up.
    Create,
    /// `None`: the store has no file for the mailbox, so there is nothing to
    /// lock (a login of a mailbox that never set MFA up).
    Skip,
}

/// How far a write pushes its data to the disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// As `[state] durable` says: a login's state update.
    Configured,
    /// Always synced: mfa-ctl's changes, and a used recovery code, which
    /// never expires and so must never come back after a power cut.
    Synced,
}

/// A locked mailbox file and what it held when locked (or last written).
/// Dropping it releases the lock.
pub struct Locked<'s> {
    store: &'s Store,
    mailbox: Mailbox,
    path: PathBuf,
    /// `None` once the file is removed (an empty mailbox).
    file: Option<File>,
    /// Where the newest copy is: the next write overwrites the other one.
    pos: slots::Pos,
    content: MailboxFile,
}

impl Drop for Locked<'_> {
    /// Unlocks explicitly: a handle from [`Store::relock`] shares its lock
    /// with the [`Opened`] it was duplicated from, which may outlive it.
    fn drop(&mut self) {
        if let Some(f) = self.file.as_ref() {
            let _ = f.unlock();
        }
    }
}

impl<'s> Locked<'s> {
    fn new(
        store: &'s Store,
        mailbox: &Mailbox,
        path: PathBuf,
        file: File,
        content: MailboxFile,
        pos: slots::Pos,
    ) -> Locked<'s> {
        Locked {
            store,
            mailbox: mailbox.clone(),
            path,
            file: Some(file),
            pos,
            content,
        }
    }

    /// The record; `None` if the mailbox has none (MFA never set up, or off
    /// with nothing else kept).
    pub fn record(&self) -> Option<&MailboxRecord> {
        (!self.content.record.is_empty()).then_some(&self.content.record)
    }

    /// The login state; a new mailbox has a fresh one.
    pub fn state(&self) -> &MailboxState {
        &self.content.state
    }

    /// Writes record and state together, synced: one write, so a crash
    /// keeps both old or both new.
    pub fn write(&mut self, record: &MailboxRecord, state: &MailboxState) -> Result<(), StoreError> {
        self.write_content(
            MailboxFile {
                record: record.clone(),
                state: state.clone(),
            },
            Durability::Synced,
        )
    }

    /// Writes the record, synced; the state stays as it is.
    pub fn write_record(&mut self, record: &MailboxRecord) -> Result<(), StoreError> {
        self.write_content(
            MailboxFile {
                record: record.clone(),
                state: self.content.state.clone(),
            },
            Durability::Synced,
        )
    }

    /// Writes the login state; the record stays as it is.
    pub fn write_state(&mut self, state: &MailboxState, durability: Durability) -> Result<(), StoreError> {
        self.write_content(
            MailboxFile {
                record: self.content.record.clone(),
                state: state.clone(),
            },
            durability,
        )
    }

    /// Normally in place, over the older of the file's two copies (see
    /// [`slots`]): a crash at any point leaves the newer copy intact. Content
    /// that outgrew its slots is written to a new file that replaces the old
    /// one (temp file, sync, rename, folder sync). An empty mailbox's file
    /// is removed.
    fn write_content(&mut self, content: MailboxFile, durability: Durability) -> Result<(), StoreError> {
        if content.is_empty() {
            self.remove_file()?;
            self.content = content;
            return Ok(());
        }
        let json = encode(&self.path, &content)?;
        if json.len() > records::MAX_JSON {
            return Err(StoreError::TooLarge {
                mailbox: self.mailbox.to_string(),
                size: json.len(),
                limit: records::MAX_JSON,
            });
        }
        let pos = self.pos;
        let seq = pos.seq.saturating_add(1);
        let sync = self.store.durable || durability == Durability::Synced;
        match (self.file.as_ref(), slots::encode(seq, &json, pos.slot_size)) {
            (Some(f), Some(bytes)) => {
                let target = 1 - pos.newest;
                let offset = (target * pos.slot_size) as u64;
                fsio::write_in_place(f, &self.path, &bytes, offset, sync)?;
                self.pos = slots::Pos {
                    newest: target,
                    seq,
                    ..pos
                };
            }
            (had, _) => {
                // A new file is always synced before it is put in place.
                let bytes = slots::encode_file(seq, &json);
                let new = if had.is_some() {
                    fsio::replace_locked(&self.path, &bytes, self.store.owners)?
                } else {
                    fsio::create_locked(&self.path, &bytes, self.store.owners)?.ok_or_else(|| StoreError::Unsafe {
                        path: self.path.clone(),
                        why: "it was created by someone else while this mailbox was being changed; retry".into(),
                    })?
                };
                // The old file's waiters may go now: they find it replaced.
                if let Some(old) = self.file.replace(new) {
                    let _ = old.unlock();
                }
                self.pos = slots::Pos {
                    slot_size: bytes.len() / 2,
                    newest: 0,
                    seq,
                };
            }
        }
        self.content = content;
        Ok(())
    }

    /// Removes the mailbox's file (the mailbox is forgotten).
    pub fn purge(mut self) -> Result<(), StoreError> {
        self.remove_file()
    }

    /// Removes the file and lets go of its lock explicitly: a handle from
    /// [`Store::relock`] shares its lock with the [`Opened`] it came from,
    /// which may outlive it, so dropping the handle would not release it.
    fn remove_file(&mut self) -> Result<(), StoreError> {
        if let Some(f) = self.file.take() {
            let removed = fsio::remove(&self.path);
            let _ = f.unlock();
            removed?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store, Mailbox) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            store: dir.path().join("store"),
            ..Config::default()
        };
        let mb = Mailbox::parse(b"alice@example.org", None).unwrap();
        (dir, Store::new(&cfg, None), mb)
    }

    /// One locked read-modify-write of the mailbox's state (creating it).
    fn put(store: &Store, mb: &Mailbox, state: &MailboxState) {
        store
            .lock(mb, OnMissing::Create)
            .unwrap()
            .unwrap()
            .write_state(state, Durability::Synced)
            .unwrap();
    }

    /// A state too large for the 4 KiB copies: writing it replaces the file.
    fn big_state(step: u64) -> MailboxState {
        MailboxState {
            recovery_used: (0..3000).collect(),
            ..state(step)
        }
    }

    fn state(step: u64) -> MailboxState {
        MailboxState {
            last_step: Some(step),
            ..Default::default()
        }
    }

    /// `verify` reuses what `split` parsed only while nobody wrote the file:
    /// a login in between (another worker) must be seen, or its step could
    /// be accepted twice.
    #[test]
    fn relock_sees_writes_made_after_open() {
        let (_dir, store, mb) = store();
        put(&store, &mb, &state(1));

        let opened = store.open_mailbox(&mb).unwrap().unwrap();
        let mut l = store.relock(&opened).unwrap().unwrap();
        assert_eq!(l.state().clone(), state(1), "unchanged: reused");
        l.write_state(&state(2), Durability::Synced).unwrap();
        drop(l);

        let opened = store.open_mailbox(&mb).unwrap().unwrap();
        put(&store, &mb, &state(3));
        let mut l = store.relock(&opened).unwrap().unwrap();
        assert_eq!(l.state().clone(), state(3), "written in between: read again");
        l.write_state(&state(4), Durability::Synced).unwrap();
        drop(l);
        assert_eq!(store.read_mailbox(&mb).unwrap().unwrap().state, state(4));
    }

    /// Content that outgrows its slots moves to a new file; a handle opened
    /// before must follow it, not write into the replaced one.
    #[test]
    fn relock_follows_a_replaced_file() {
        let (_dir, store, mb) = store();
        put(&store, &mb, &state(1));
        let size = |s: &Store| std::fs::metadata(s.mailbox_path(&mb)).unwrap().len();
        assert_eq!(size(&store), 8192);

        let opened = store.open_mailbox(&mb).unwrap().unwrap();
        let big = big_state(2);
        put(&store, &mb, &big);
        assert!(size(&store) > 8192, "replaced by a larger file");
        let mut l = store.relock(&opened).unwrap().unwrap();
        assert_eq!(l.state().clone(), big);
        l.write_state(&state(5), Durability::Synced).unwrap();
        drop(l);
        assert_eq!(store.read_mailbox(&mb).unwrap().unwrap().state, state(5));

        // Removed in between: nothing to lock.
        let opened = store.open_mailbox(&mb).unwrap().unwrap();
        store.lock(&mb, OnMissing::Skip).unwrap().unwrap().purge().unwrap();
        assert!(store.relock(&opened).unwrap().is_none());
    }

    /// A temp file left by a writer killed mid-write holds secrets: the next
    /// writer that needs the name removes it (replacement and creation).
    #[test]
    fn stale_temp_files_are_reused_not_kept() {
        let (_dir, store, mb) = store();
        put(&store, &mb, &state(1));
        let tmp = PathBuf::from(format!("{}.tmp", store.mailbox_path(&mb).display()));
        let stale = |s: &Store, mailboxes: usize| {
            std::fs::write(&tmp, "left by a killed writer").unwrap();
            assert_eq!(s.list_mailboxes(None).unwrap().len(), mailboxes, "listings skip it");
        };
        stale(&store, 1);
        let big = big_state(2);
        put(&store, &mb, &big);
        assert!(!tmp.exists(), "replacement");
        store.lock(&mb, OnMissing::Skip).unwrap().unwrap().purge().unwrap();
        stale(&store, 0);
        put(&store, &mb, &state(3));
        assert!(!tmp.exists(), "creation");
        assert_eq!(store.read_mailbox(&mb).unwrap().unwrap().state, state(3));
    }

    /// Pages come from one read of the folder while its names last; a
    /// page they cannot fill reads the folder again; other files and names
    /// that make no mailbox never take a place.
    #[test]
    fn pages_are_served_from_one_read_of_the_folder() {
        let (_dir, store, _) = store();
        let mb = |local: &str| Mailbox::parse(format!("{local}@example.org").as_bytes(), None).unwrap();
        let mbs: Vec<Mailbox> = (0..25).map(|i| mb(&format!("u{i:02}"))).collect();
        for m in &mbs {
            put(&store, m, &state(1));
        }
        let dir = store.domain_dir("example.org");
        std::fs::write(dir.join("u00.mfa.tmp"), "").unwrap();
        std::fs::write(dir.join("u 00.mfa"), "").unwrap();
        assert!(Mailbox::parse(b"u 00@example.org", None).is_err());
        let page = |after: Option<&Mailbox>, n| store.list_page("example.org", after, n).unwrap();

        let p1 = page(None, 10);
        assert_eq!(p1, mbs[..10]);
        // Added after that read: the pages it serves do not have it.
        put(&store, &mb("u10a"), &state(1));
        let p2 = page(p1.last(), 10);
        assert_eq!(p2, mbs[10..20]);
        assert_eq!(page(p2.last(), 10), mbs[20..]);
        // A new listing reads the folder again.
        let all = page(None, 100);
        assert_eq!(all.len(), 26);
        assert_eq!(all[11], mb("u10a"));

        // One read keeps the smallest names past `after`, and knows there are more.
        let l = store.read_names("example.org", &dir, Some("u10a"), 3).unwrap();
        assert_eq!(Vec::from(l.names), ["u11", "u12", "u13"]);
        assert!(l.more);
        let l = store.read_names("example.org", &dir, Some("u21"), 3).unwrap();
        assert_eq!(Vec::from(l.names), ["u22", "u23", "u24"]);
        assert!(!l.more);
        // Held names too few for the page asked, with more in the folder: read again.
        store.listing.put(Listing {
            names: ["u11".to_string()].into(),
            more: true,
            after: "u10a".into(),
            ..l
        });
        assert_eq!(page(Some(&mb("u10a")), 5), mbs[11..16]);
    }

    /// An empty mailbox leaves no file.
    #[test]
    fn empty_mailboxes_vanish() {
        let (_dir, store, mb) = store();
        let mut l = store.lock(&mb, OnMissing::Create).unwrap().unwrap();
        l.write_state(&state(1), Durability::Synced).unwrap();
        l.write_state(&MailboxState::default(), Durability::Synced).unwrap();
        drop(l);
        assert!(!store.mailbox_path(&mb).exists());
        assert!(store.read_mailbox(&mb).unwrap().is_none());
    }
}
