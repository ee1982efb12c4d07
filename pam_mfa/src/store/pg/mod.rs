//! The PostgreSQL store (`backend = "postgres"`): one database that several
//! mail servers share, so that a code accepted on one is refused as a
//! replay on all, failures on all add up to one lock-out, and an app
//! password added or revoked with mfa-ctl counts everywhere at once.
//!
//! It keeps the file store's contract ([`Backend`]) with the database's
//! tools:
//!
//! - **A login is two round trips**: [`Backend::open_login`] reads the
//!   domain's policy and the mailbox in one statement; [`Backend::relock`]
//!   hands out an optimistic lock holding that snapshot (no round trip),
//!   whose write is one conditional `UPDATE ... WHERE version = $read`. A
//!   write that finds the row changed writes nothing and answers
//!   [`StoreError::Conflict`]; the module then takes a real lock and decides
//!   again. Of N servers racing one code, exactly one write matches.
//! - **A real lock** ([`Backend::lock`], mfa-ctl and the second round of a
//!   login) is a row lock: `BEGIN` and `SELECT ... FOR UPDATE` pipelined
//!   (one round trip), the write `UPDATE` and `COMMIT` pipelined (one
//!   more). Dropped without a write, the lock's ROLLBACK goes out without
//!   waiting for its answer.
//! - **Secrets at rest**: the mailbox's record (TOTP seed, recovery and app
//!   password hashes) is sealed ([`crate::seal`]) with the key file's key
//!   and the mailbox name, so a dump or backup reveals no seed and a row
//!   copied onto another mailbox does not open. The login state is plain
//!   JSON: nothing in it lets anyone log in.
//! - **Fails closed**: a database out of reach, slow, read-only, without
//!   the schema or at a version this build does not know is an error from
//!   every call ([`StoreError::is_unavailable`]), never an empty store; the
//!   next call tries again, so logins work again as soon as it is back.
//! - **Durability** is the server's: a COMMIT is as durable as its
//!   `synchronous_commit` (and, with a synchronous standby, survives a
//!   failover). [`Durability`] only chooses whether the file store syncs;
//!   there is no cheaper commit to choose here, so it is ignored.
//!
//! Connections, time limits, fork safety and threads: [`conn`]. SQL:
//! [`sql`].

mod conn;
mod sql;

pub use sql::SCHEMA_VERSION;

use super::backend::{Backend, MailboxLock, OpenedMailbox};
use super::records::{MailboxFile, MailboxRecord, MailboxState, json_error};
use super::{Durability, ExistingFolder, OnMissing, StoreError};
use crate::config::Config;
use crate::mailbox::Mailbox;
use crate::pgurl;
use crate::policy::DomainPolicy;
use crate::seal::{SealErrorKind, SealKey};
use conn::{Conn, Failure, PgError, Stmts, Target};
use futures_util::future::{join, join3};
use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use zeroize::Zeroizing;

/// A password file longer than this is not a password file.
const MAX_PASSWORD_FILE: usize = 4096;

/// What to do about a sealed record that does not open.
const SEAL_FIX: &str = "if every enrolled mailbox fails so, this server's key file is not the one the others use: copy \
     it from a server that works; if only this mailbox, its row was altered or copied from another mailbox: restore \
     it from a backup, or forget what is stored for it (mfa-ctl disable MAILBOX --force) and enrol it again";
/// What to do about a row whose JSON does not parse.
const DAMAGED_FIX: &str = "the row was changed outside pam_mfa: restore it from a backup, or forget it (mfa-ctl \
     disable MAILBOX --force) and set the mailbox up again";
const GRANT_FIX: &str = "give the role its rights: /usr/share/doc/pam-mfa/examples/postgres/roles.sql (logins use pam_mfa_login, mfa-ctl \
     pam_mfa_admin)";

/// Whether a failed call may be tried once more on a fresh connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, and a lock's BEGIN + SELECT FOR UPDATE: nothing committed.
    Once,
    /// Writes: a statement on a connection that broke may have committed.
    Never,
}

/// The database store. Opening it reads the password and key files and
/// checks the URL; the database is reached on first use.
pub struct PgStore {
    /// Boxed: the store sits in an enum beside the much smaller file store.
    target: Box<Target>,
    key_file: PathBuf,
    trusted_uid: Option<u32>,
    /// Loaded at open when the file is there; otherwise on first need, so
    /// that `mfa-ctl store init` (which creates it) can open the store.
    key: OnceLock<SealKey>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.target.info.describe())
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// The store `cfg.postgres` names. `trusted_uid`: besides root, who may
    /// own the password and key files (the resolved `store_owner`).
    pub fn open(cfg: &Config, trusted_uid: Option<u32>) -> Result<PgStore, StoreError> {
        let Some(pg) = cfg.postgres.as_ref() else {
            return Err(StoreError::Database {
                what: "opening the store".into(),
                why: "backend = \"postgres\" but the configuration has no [postgres] section".into(),
                fix: "add one with at least url = (see pam_mfa.toml(5))",
            });
        };
        let info = pgurl::parse(&pg.url).map_err(|why| StoreError::Database {
            what: "reading postgres.url".into(),
            why,
            fix: "correct postgres.url in the configuration",
        })?;
        let password = match &pg.password_file {
            Some(path) => Some(read_password(path, trusted_uid)?),
            None => None,
        };
        let key = OnceLock::new();
        if std::fs::symlink_metadata(&pg.key_file).is_ok() {
            let loaded =
                SealKey::load(&pg.key_file, trusted_uid).map_err(|e| StoreError::Key { why: e.to_string() })?;
            let _ = key.set(loaded);
        }
        let pool_key = format!(
            "{}\n{:?}\n{}\n{}",
            pg.url, pg.password_file, pg.connect_timeout, pg.statement_timeout
        );
        Ok(PgStore {
            target: Box::new(Target {
                info,
                password,
                connect_timeout: Duration::from_secs(pg.connect_timeout.max(1)),
                statement_timeout: Duration::from_secs(pg.statement_timeout.max(1)),
                pool_key,
            }),
            key_file: pg.key_file.clone(),
            trusted_uid,
            key,
        })
    }

    /// The database in words (name, role, servers): for messages and
    /// `mfa-ctl`. Holds no secret.
    pub fn describe(&self) -> String {
        format!("database {}", self.target.info.describe())
    }

    /// The database for error messages (their text says "the database").
    fn server(&self) -> String {
        self.target.info.describe()
    }

    fn key(&self) -> Result<&SealKey, StoreError> {
        if let Some(k) = self.key.get() {
            return Ok(k);
        }
        let k = SealKey::load(&self.key_file, self.trusted_uid).map_err(|e| StoreError::Key { why: e.to_string() })?;
        Ok(self.key.get_or_init(|| k))
    }

    /// The key if its file is there (`None` if not; other problems are errors).
    fn key_if_present(&self) -> Result<Option<&SealKey>, StoreError> {
        match self.key() {
            Ok(k) => Ok(Some(k)),
            Err(_) if std::fs::symlink_metadata(&self.key_file).is_err() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn timeout(&self) -> Duration {
        self.target.statement_timeout
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        Conn::open(&self.target).map_err(|e| {
            if e.read_only {
                StoreError::ReadOnly { server: self.server() }
            } else {
                StoreError::Unreachable {
                    server: self.server(),
                    why: e.why,
                }
            }
        })
    }

    /// A connection whose schema version was checked (once per connection,
    /// not per login) and whose statements are prepared: an idle one from
    /// the pool, or a new one (`fresh`: always new, after one broke).
    fn ready(&self, fresh: bool) -> Result<Conn, StoreError> {
        let pooled = if fresh { None } else { conn::take(&self.target) };
        let mut c = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        if c.is_ready() {
            return Ok(c);
        }
        let schema = match c.prepare(self.timeout()) {
            Ok(s) => s,
            Err(f) => {
                let e = self.failure(f, "checking the pam_mfa schema");
                conn::give_back(c);
                return Err(e);
            }
        };
        let problem = if schema.version != Some(SCHEMA_VERSION) {
            Some(StoreError::SchemaVersion {
                server: self.server(),
                found: schema.version,
                known: SCHEMA_VERSION,
            })
        } else {
            self.check_key(schema.key_check.as_deref()).err()
        };
        match problem {
            None => Ok(c),
            Some(e) => {
                // Healthy, but not to be used: checked again on next take.
                c.unready();
                conn::give_back(c);
                Err(e)
            }
        }
    }

    /// Whether this server's key is the one the database was set up with
    /// (its key check opens). A server without the key file can still serve
    /// the mailboxes without secrets; those with secrets fail on their own.
    fn check_key(&self, key_check: Option<&[u8]>) -> Result<(), StoreError> {
        let (Some(blob), Some(key)) = (key_check, self.key_if_present()?) else {
            return Ok(());
        };
        key.open(sql::KEY_CHECK_CONTEXT, blob)
            .map(drop)
            .map_err(|e| match e.kind() {
                SealErrorKind::WrongKey | SealErrorKind::BadBlob => StoreError::Key {
                    why: format!(
                        "the key file {} is not the key the {} was set up with (its key check does not open); copy the \
                     key file from a server that works: every mail server needs the same file",
                        self.key_file.display(),
                        self.describe()
                    ),
                },
                _ => StoreError::Key { why: e.to_string() },
            })
    }

    /// A failure as the admin should read it: what broke, while doing what.
    fn failure(&self, f: Failure, what: &str) -> StoreError {
        match f {
            Failure::Broken { why, timed_out: true } => StoreError::Unreachable {
                server: self.server(),
                why: format!("{why} (postgres.statement_timeout) while {what}"),
            },
            Failure::Broken { why, .. } => StoreError::Unreachable {
                server: self.server(),
                why: format!("the connection broke while {what} ({why})"),
            },
            Failure::Db(e) => self.db_error(&e, what),
        }
    }

    fn db_error(&self, e: &PgError, what: &str) -> StoreError {
        let why = conn::describe(e);
        let Some(code) = e.code() else {
            return StoreError::Database {
                what: what.into(),
                why,
                fix: "see the PostgreSQL server's log",
            };
        };
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            StoreError::ReadOnly { server: self.server() }
        } else if *code == SqlState::UNDEFINED_TABLE {
            StoreError::SchemaVersion {
                server: self.server(),
                found: None,
                known: SCHEMA_VERSION,
            }
        } else if *code == SqlState::QUERY_CANCELED {
            // The server's statement_timeout (the same as the client's).
            StoreError::Unreachable {
                server: self.server(),
                why: format!(
                    "no answer within {}s (postgres.statement_timeout) while {what}: {why}",
                    self.timeout().as_secs()
                ),
            }
        } else if code.code().starts_with("53") {
            // Out of connections, memory or disk: the database is not serving.
            StoreError::Unreachable {
                server: self.server(),
                why: format!("{why} while {what}"),
            }
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            StoreError::Database {
                what: what.into(),
                why,
                fix: GRANT_FIX,
            }
        } else {
            StoreError::Database {
                what: what.into(),
                why,
                fix: "see the PostgreSQL server's log",
            }
        }
    }

    /// Runs `f` on a ready connection and gives the connection back; once
    /// more on a fresh connection if the first broke and `retry` allows.
    fn call<T>(
        &self,
        what: &str,
        retry: Retry,
        f: impl AsyncFn(&Client, &Stmts) -> Result<T, PgError>,
    ) -> Result<T, StoreError> {
        let mut fresh = false;
        loop {
            let mut c = self.ready(fresh)?;
            let out = c.run(self.timeout(), &f);
            conn::give_back(c);
            match out {
                Ok(v) => return Ok(v),
                Err(Failure::Broken { timed_out: false, .. }) if retry == Retry::Once && !fresh => fresh = true,
                Err(f) => return Err(self.failure(f, what)),
            }
        }
    }

    /// The record, sealed for the row: `None` when empty. The JSON is
    /// written into a buffer of its exact size, so no partial copy of the
    /// secrets is left behind by a growing buffer.
    fn seal_record(&self, mb: &Mailbox, record: &MailboxRecord) -> Result<Option<Vec<u8>>, StoreError> {
        if record.is_empty() {
            return Ok(None);
        }
        let encode_error = |e: serde_json::Error| StoreError::Database {
            what: format!("encoding mailbox {mb}"),
            why: e.to_string(),
            fix: "report this as a bug",
        };
        let size = crate::store::records::json_len(record).map_err(encode_error)?;
        let mut json = Zeroizing::new(Vec::with_capacity(size));
        serde_json::to_writer(&mut *json, record).map_err(encode_error)?;
        self.key()?
            .seal(mb.as_str(), &json)
            .map(Some)
            .map_err(|e| StoreError::Key { why: e.to_string() })
    }

    /// A row as the mailbox's content: the record opened with the key and
    /// the mailbox's own name, the state parsed.
    fn decode(&self, mb: &Mailbox, record: Option<&[u8]>, state: &str) -> Result<MailboxFile, StoreError> {
        let record = match record {
            None => MailboxRecord::default(),
            Some(blob) => {
                let what = || format!("reading mailbox {mb}'s secrets");
                let json = self.key()?.open(mb.as_str(), blob).map_err(|e| match e.kind() {
                    SealErrorKind::WrongKey | SealErrorKind::BadBlob => StoreError::DamagedRow {
                        mailbox: mb.to_string(),
                        what: what(),
                        why: e.to_string(),
                        fix: SEAL_FIX,
                    },
                    _ => StoreError::Key { why: e.to_string() },
                })?;
                serde_json::from_slice(&json).map_err(|e| StoreError::DamagedRow {
                    mailbox: mb.to_string(),
                    what: what(),
                    why: json_error(&e),
                    fix: DAMAGED_FIX,
                })?
            }
        };
        let state = serde_json::from_str(state).map_err(|e| StoreError::DamagedRow {
            mailbox: mb.to_string(),
            what: format!("reading mailbox {mb}'s login state"),
            why: json_error(&e),
            fix: DAMAGED_FIX,
        })?;
        Ok(MailboxFile { record, state })
    }

    fn decode_policy(domain: &str, text: &str) -> Result<DomainPolicy, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Database {
            what: format!("reading domain {domain}'s policy"),
            why: json_error(&e),
            fix: "set the domain's policy again with mfa-ctl",
        })
    }

    /// [`Backend::lock`]: BEGIN, (the empty row,) SELECT FOR UPDATE, in one
    /// round trip. Tried again on a fresh connection if the first broke:
    /// nothing was committed.
    fn lock_row(&self, mb: &Mailbox, on_missing: OnMissing) -> Result<Option<PgLock<'_>>, StoreError> {
        let what = format!("locking mailbox {mb}");
        let (name, domain, local) = (mb.as_str(), mb.domain(), mb.local());
        let mut fresh = false;
        loop {
            let mut c = self.ready(fresh)?;
            let out = c.run(self.timeout(), async |cl: &Client, s: &Stmts| {
                let (key, row_params) = ([&name as _], [&name as _, &domain as _, &local as _]);
                let begin = cl.execute(&s.begin, &[]);
                let select = cl.query_opt(&s.lock_mailbox, &key);
                let row = match on_missing {
                    OnMissing::Create => {
                        let create = cl.execute(&s.create_empty, &row_params);
                        let (b, cr, row) = join3(begin, create, select).await;
                        b?;
                        cr?;
                        row?
                    }
                    OnMissing::Skip => {
                        let (b, row) = join(begin, select).await;
                        b?;
                        row?
                    }
                };
                let Some(row) = row else {
                    return Ok(None);
                };
                let record: Option<Vec<u8>> = row.try_get(0)?;
                let state: String = row.try_get(1)?;
                let version: i64 = row.try_get(2)?;
                Ok(Some((record, state, version)))
            });
            match out {
                Ok(Some((record, state, version))) => match self.decode(mb, record.as_deref(), &state) {
                    Ok(content) => {
                        return Ok(Some(PgLock {
                            store: self,
                            mailbox: mb.clone(),
                            content,
                            version,
                            exists: true,
                            tx: Some(c),
                        }));
                    }
                    Err(e) => {
                        c.roll_back_and_give_back();
                        return Err(e);
                    }
                },
                Ok(None) => {
                    c.roll_back_and_give_back();
                    return Ok(None);
                }
                Err(Failure::Broken { timed_out: false, .. }) if !fresh => fresh = true,
                Err(f) => {
                    c.roll_back_and_give_back();
                    return Err(self.failure(f, &what));
                }
            }
        }
    }

    /// `mfa-ctl store init`: creates or upgrades the schema in one
    /// transaction, and the key file if the database has no key yet.
    fn init_db(&self) -> Result<Vec<String>, StoreError> {
        let mut c = match conn::take(&self.target) {
            Some(c) => c,
            None => self.connect()?,
        };
        let out = self.init_steps(&mut c);
        // Whatever happened, the transaction is over before the connection
        // is used again, and its statements are prepared afresh.
        c.unready();
        c.roll_back_and_give_back();
        out
    }

    fn init_steps(&self, c: &mut Conn) -> Result<Vec<String>, StoreError> {
        let limit = self.timeout();
        // Creating tables is the owner's right: a refusal here is not about
        // roles.sql but about who runs init.
        let step = |what: &str, f: Failure| match self.failure(f, what) {
            StoreError::Database { what, why, fix } if fix == GRANT_FIX => StoreError::Database {
                what,
                why,
                fix: "run mfa-ctl store init as the database's owner (pam_mfa_admin, postgres.admin_url), see \
                      /usr/share/doc/pam-mfa/examples/postgres/roles.sql",
            },
            e => e,
        };
        let mut made = Vec::new();
        let exists = c
            .run_raw(limit, async |cl: &Client| {
                let begin = cl.batch_execute("BEGIN");
                let lock = cl.batch_execute(sql::INIT_LOCK);
                let exists = cl.query_typed_one(sql::SCHEMA_EXISTS, &[]);
                let (b, l, e) = join3(begin, lock, exists).await;
                b?;
                l?;
                e?.try_get::<_, bool>(0)
            })
            .map_err(|f| step("starting the schema set-up", f))?;
        let (mut version, key_check) = if exists {
            c.run_raw(limit, async |cl: &Client| {
                let row = cl.query_typed_opt(sql::READ_SCHEMA_FOR_UPDATE, &[]).await?;
                match row {
                    Some(r) => Ok((r.try_get::<_, Option<i64>>(0)?, r.try_get::<_, Option<Vec<u8>>>(1)?)),
                    None => Ok((None, None)),
                }
            })
            .map_err(|f| step("reading the schema version", f))?
        } else {
            c.run_raw(limit, async |cl: &Client| cl.batch_execute(sql::CREATE_V1).await)
                .map_err(|f| step("creating the pam_mfa tables", f))?;
            made.push(format!(
                "the pam_mfa tables (schema version 1) in the {}",
                self.describe()
            ));
            (Some(1), None)
        };
        let Some(found) = version else {
            return Err(StoreError::Database {
                what: "reading the schema version".into(),
                why: "the table pam_mfa_schema exists but holds no version".into(),
                fix: "if the database holds nothing else of pam_mfa, drop the pam_mfa_* tables and run mfa-ctl store init again",
            });
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion {
                server: self.server(),
                found: Some(found),
                known: SCHEMA_VERSION,
            });
        }
        for (from, script) in sql::UPGRADES {
            if version == Some(*from) {
                let next = from + 1;
                c.run_raw(limit, async |cl: &Client| {
                    cl.batch_execute(script).await?;
                    cl.query_typed(
                        "UPDATE pam_mfa_schema SET version = $1",
                        &[(&next, tokio_postgres::types::Type::INT8)],
                    )
                    .await
                    .map(drop)
                })
                .map_err(|f| step("upgrading the schema", f))?;
                version = Some(next);
            }
        }
        if found < SCHEMA_VERSION {
            made.push(format!(
                "the schema of the {} upgraded from version {found} to {SCHEMA_VERSION}",
                self.describe()
            ));
        }
        match key_check {
            Some(blob) => {
                // The database already has a key: a new one made here would
                // open none of its secrets.
                if self.key_if_present()?.is_none() {
                    return Err(StoreError::Key {
                        why: format!(
                            "the {} was set up with a key that {} is not: copy the key file from a server that \
                             uses this database (do not make a new one: it would open none of the secrets)",
                            self.describe(),
                            self.key_file.display()
                        ),
                    });
                }
                self.check_key(Some(&blob))?;
            }
            None => {
                let created = SealKey::create(&self.key_file).map_err(|e| StoreError::Key { why: e.to_string() })?;
                if created {
                    made.push(format!(
                        "the key file {} (copy it to every mail server that uses this database)",
                        self.key_file.display()
                    ));
                }
                let sealed = self
                    .key()?
                    .seal(sql::KEY_CHECK_CONTEXT, sql::KEY_CHECK_PLAINTEXT)
                    .map_err(|e| StoreError::Key { why: e.to_string() })?;
                c.run_raw(limit, async |cl: &Client| {
                    cl.query_typed(sql::SET_KEY_CHECK, &[(&sealed, tokio_postgres::types::Type::BYTEA)])
                        .await
                        .map(drop)
                })
                .map_err(|f| step("recording the key check", f))?;
            }
        }
        c.run_raw(limit, async |cl: &Client| cl.batch_execute("COMMIT").await)
            .map_err(|f| step("committing the schema set-up", f))?;
        Ok(made)
    }
}

/// The password alone on the file's first line. The file is trusted only if
/// nobody but root (or `trusted_uid`) could have written or read it: not a
/// symbolic link (O_NOFOLLOW), a regular file (a FIFO would hang a login:
/// O_NONBLOCK), mode without group or other bits, owned by root or
/// `trusted_uid`; the checks are on the opened file, not the name.
fn read_password(path: &Path, trusted_uid: Option<u32>) -> Result<Zeroizing<String>, StoreError> {
    let unsafe_file = |why: String| StoreError::Unsafe {
        path: path.to_path_buf(),
        why,
    };
    let io = |op, err| StoreError::Io {
        path: path.to_path_buf(),
        op,
        err,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                unsafe_file(
                    "postgres.password_file is a symbolic link, which pam_mfa does not follow: put the file itself there"
                        .into(),
                )
            } else {
                io("read postgres.password_file", e)
            }
        })?;
    let meta = file.metadata().map_err(|e| io("inspect postgres.password_file", e))?;
    if !meta.is_file() {
        return Err(unsafe_file("postgres.password_file is not a regular file".into()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_file(format!(
            "postgres.password_file has mode {:04o}, so others may read the password; run: chmod 0600 {}",
            meta.mode() & 0o7777,
            path.display()
        )));
    }
    if meta.uid() != 0 && Some(meta.uid()) != trusted_uid {
        return Err(unsafe_file(format!(
            "postgres.password_file is owned by uid {}, not root; run: chown root {}",
            meta.uid(),
            path.display()
        )));
    }
    let content =
        crate::secret::read_bounded(&mut file, MAX_PASSWORD_FILE).map_err(|e| io("read postgres.password_file", e))?;
    if content.len() > MAX_PASSWORD_FILE {
        return Err(unsafe_file(format!(
            "postgres.password_file is larger than {MAX_PASSWORD_FILE} bytes: it should hold the password alone"
        )));
    }
    let line = content.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(unsafe_file(
            "postgres.password_file's first line is empty: put the password alone on it".into(),
        ));
    }
    let mut password = Zeroizing::new(String::with_capacity(line.len()));
    password.push_str(
        std::str::from_utf8(line)
            .map_err(|_| unsafe_file("postgres.password_file's first line is not UTF-8 text".into()))?,
    );
    Ok(password)
}

/// What [`Backend::open_login`] read, kept for the login's second look.
#[derive(Debug)]
pub struct PgOpened {
    mailbox: Mailbox,
    content: MailboxFile,
    version: i64,
}

impl OpenedMailbox for PgOpened {
    fn content(&self) -> &MailboxFile {
        &self.content
    }
}

/// A mailbox held for a read-modify-write. From [`Backend::lock`] it holds
/// the row lock (its connection, in a transaction) until the first write
/// commits or the lock is dropped; from [`Backend::relock`] it holds only
/// what was read, and its writes are conditional on the version read. A
/// write through a lock whose row lock already ended (a second write) is
/// conditional in the same way.
pub struct PgLock<'s> {
    store: &'s PgStore,
    mailbox: Mailbox,
    content: MailboxFile,
    /// The row's version as last read or written.
    version: i64,
    /// Whether the row exists (it is deleted when the content empties).
    exists: bool,
    /// The connection holding the row lock, while it is held.
    tx: Option<Conn>,
}

impl fmt::Debug for PgLock<'_> {
    /// Never the content: it holds the mailbox's secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLock")
            .field("mailbox", &self.mailbox.as_str())
            .field("version", &self.version)
            .field("row_locked", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for PgLock<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.tx.take() {
            c.roll_back_and_give_back();
        }
    }
}

/// What one write does to the row.
enum Op {
    Nothing,
    Delete,
    UpdateState(String),
    UpdateAll(Option<Vec<u8>>, String),
    Insert(Option<Vec<u8>>, String),
}

impl PgLock<'_> {
    /// Writes `content`; `record_changed`: the record differs from the one
    /// held (otherwise only the state column is written, and nothing is
    /// sealed).
    fn store_content(&mut self, content: MailboxFile, record_changed: bool) -> Result<(), StoreError> {
        let mb = &self.mailbox;
        // The file store's limit: what one backend holds, the other must too.
        let size = content.json_len().map_err(|why| StoreError::Database {
            what: format!("encoding mailbox {mb}"),
            why,
            fix: "report this as a bug",
        })?;
        if size > crate::store::records::MAX_JSON {
            return Err(StoreError::TooLarge {
                mailbox: mb.to_string(),
                size,
                limit: crate::store::records::MAX_JSON,
            });
        }
        let encode_state = |s: &MailboxState| {
            serde_json::to_string(s).map_err(|e| StoreError::Database {
                what: format!("encoding mailbox {mb}'s login state"),
                why: e.to_string(),
                fix: "report this as a bug",
            })
        };
        let op = if content.is_empty() {
            if self.exists { Op::Delete } else { Op::Nothing }
        } else if !self.exists {
            Op::Insert(
                self.store.seal_record(mb, &content.record)?,
                encode_state(&content.state)?,
            )
        } else if record_changed {
            Op::UpdateAll(
                self.store.seal_record(mb, &content.record)?,
                encode_state(&content.state)?,
            )
        } else {
            Op::UpdateState(encode_state(&content.state)?)
        };
        let what = format!("writing mailbox {mb}");
        let (name, domain, local, version) = (mb.as_str(), mb.domain(), mb.local(), self.version);
        let apply = async |cl: &Client, s: &Stmts| -> Result<Option<i64>, PgError> {
            let row = match &op {
                Op::Nothing => return Ok(Some(version)),
                Op::Delete => {
                    let n = cl.execute(&s.delete_mailbox, &[&name, &version]).await?;
                    return Ok((n > 0).then_some(version));
                }
                Op::UpdateState(state) => cl.query_opt(&s.update_state, &[&name, &version, state]).await?,
                Op::UpdateAll(record, state) => cl.query_opt(&s.update_all, &[&name, &version, record, state]).await?,
                Op::Insert(record, state) => {
                    cl.query_opt(&s.insert_mailbox, &[&name, &domain, &local, record, state])
                        .await?
                }
            };
            row.map(|r| r.try_get::<_, i64>(0)).transpose()
        };
        let written = match self.tx.take() {
            Some(c) if matches!(op, Op::Nothing) => {
                // Nothing to write: the transaction ends without a round trip.
                c.roll_back_and_give_back();
                Some(version)
            }
            Some(mut c) => {
                // The write and COMMIT in one round trip. If the write fails,
                // the COMMIT only ends the aborted transaction. Never
                // retried: a COMMIT whose answer was lost may have committed.
                let out = c.run(self.store.timeout(), async |cl: &Client, s: &Stmts| {
                    let (w, commit) = join(apply(cl, s), cl.execute(&s.commit, &[])).await;
                    let w = w?;
                    commit?;
                    Ok(w)
                });
                conn::give_back(c);
                out.map_err(|f| self.store.failure(f, &what))?
            }
            None => self.store.call(&what, Retry::Never, apply)?,
        };
        let Some(new_version) = written else {
            return Err(StoreError::Conflict {
                mailbox: self.mailbox.to_string(),
            });
        };
        self.exists = match op {
            Op::Delete => false,
            Op::Insert(..) => true,
            _ => self.exists,
        };
        self.version = new_version;
        self.content = content;
        Ok(())
    }
}

impl MailboxLock for PgLock<'_> {
    fn confirm(&mut self) -> Result<(), StoreError> {
        if self.tx.is_some() {
            return Ok(());
        }
        let name = self.mailbox.as_str();
        let what = format!("checking mailbox {} is unchanged", self.mailbox);
        let version: Option<i64> = self.store.call(&what, Retry::Once, async |cl: &Client, s: &Stmts| {
            cl.query_opt(&s.read_mailbox, &[&name])
                .await?
                .map(|r| r.try_get(2))
                .transpose()
        })?;
        if version == self.exists.then_some(self.version) {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                mailbox: self.mailbox.to_string(),
            })
        }
    }

    fn record(&self) -> Option<&MailboxRecord> {
        (!self.content.record.is_empty()).then_some(&self.content.record)
    }

    fn state(&self) -> &MailboxState {
        &self.content.state
    }

    fn write(&mut self, record: &MailboxRecord, state: &MailboxState) -> Result<(), StoreError> {
        let record_changed = *record != self.content.record;
        self.store_content(
            MailboxFile {
                record: record.clone(),
                state: state.clone(),
            },
            record_changed,
        )
    }

    /// `durability` is the server's to decide (see the module's text).
    fn write_state(&mut self, state: &MailboxState, _durability: Durability) -> Result<(), StoreError> {
        self.store_content(
            MailboxFile {
                record: self.content.record.clone(),
                state: state.clone(),
            },
            false,
        )
    }

    fn purge(mut self) -> Result<(), StoreError> {
        self.store_content(MailboxFile::default(), true)
    }
}

impl Backend for PgStore {
    type Lock<'s> = PgLock<'s>;
    type Opened = PgOpened;

    /// The database answers, has this build's schema and, if this server
    /// has the key file, the same key.
    fn check_ready(&self) -> Result<(), StoreError> {
        conn::give_back(self.ready(false)?);
        Ok(())
    }

    fn read_domain(&self, domain: &str) -> Result<Option<DomainPolicy>, StoreError> {
        let what = format!("reading domain {domain}'s policy");
        let text: Option<String> = self.call(&what, Retry::Once, async |cl: &Client, s: &Stmts| {
            cl.query_opt(&s.read_domain, &[&domain])
                .await?
                .map(|r| r.try_get(0))
                .transpose()
        })?;
        text.map(|t| Self::decode_policy(domain, &t)).transpose()
    }

    fn policy_for(&self, domain: &str, cfg: &Config) -> Result<DomainPolicy, StoreError> {
        Ok(self
            .read_domain(domain)?
            .unwrap_or_else(|| DomainPolicy::default_for(cfg.default_policy)))
    }

    fn forget(&self, mb: &Mailbox) -> Result<bool, StoreError> {
        let what = format!("forgetting mailbox {mb}");
        let name = mb.as_str();
        self.call(&what, Retry::Never, async |cl: &Client, _: &Stmts| {
            cl.execute(sql::FORGET_MAILBOX, &[&name]).await.map(|n| n > 0)
        })
    }

    fn write_domain(&self, domain: &str, policy: &DomainPolicy) -> Result<(), StoreError> {
        let what = format!("writing domain {domain}'s policy");
        let text = serde_json::to_string(policy).map_err(|e| StoreError::Database {
            what: what.clone(),
            why: e.to_string(),
            fix: "report this as a bug",
        })?;
        self.call(&what, Retry::Never, async |cl: &Client, s: &Stmts| {
            cl.execute(&s.write_domain, &[&domain, &text]).await.map(drop)
        })
    }

    fn list_domains(&self) -> Result<Vec<(String, DomainPolicy)>, StoreError> {
        let rows: Vec<(String, String)> =
            self.call("listing domains", Retry::Once, async |cl: &Client, s: &Stmts| {
                cl.query(&s.list_domains, &[])
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            })?;
        rows.into_iter()
            .map(|(d, p)| Self::decode_policy(&d, &p).map(|p| (d, p)))
            .collect()
    }

    fn read_mailbox(&self, mb: &Mailbox) -> Result<Option<MailboxFile>, StoreError> {
        let name = mb.as_str();
        let row = self.call(
            &format!("reading mailbox {mb}"),
            Retry::Once,
            async |cl: &Client, s: &Stmts| match cl.query_opt(&s.read_mailbox, &[&name]).await? {
                Some(r) => Ok(Some((r.try_get::<_, Option<Vec<u8>>>(0)?, r.try_get::<_, String>(1)?))),
                None => Ok(None),
            },
        )?;
        row.map(|(record, state)| self.decode(mb, record.as_deref(), &state))
            .transpose()
    }

    fn lock(&self, mb: &Mailbox, on_missing: OnMissing) -> Result<Option<PgLock<'_>>, StoreError> {
        self.lock_row(mb, on_missing)
    }

    fn list_page(&self, domain: &str, after: Option<&Mailbox>, limit: usize) -> Result<Vec<Mailbox>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.filter(|a| a.domain() == domain).map_or("", Mailbox::local);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let what = format!("listing the mailboxes of {domain}");
        let locals: Vec<String> = self.call(&what, Retry::Once, async |cl: &Client, s: &Stmts| {
            cl.query(&s.list_page, &[&domain, &after, &limit])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect()
        })?;
        Ok(locals
            .into_iter()
            .filter_map(|local| Mailbox::parse(format!("{local}@{domain}").as_bytes(), None).ok())
            .collect())
    }

    fn mailbox_domains(&self) -> Result<Vec<String>, StoreError> {
        let mut domains: Vec<String> = self.call(
            "listing the domains that have mailboxes",
            Retry::Once,
            async |cl: &Client, s: &Stmts| {
                cl.query(&s.mailbox_domains, &[])
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect()
            },
        )?;
        domains.retain(|d| Mailbox::parse_domain(d).is_ok());
        Ok(domains)
    }

    /// The policy and the mailbox in one statement, one round trip.
    fn open_login(&self, mb: &Mailbox, cfg: &Config) -> Result<(DomainPolicy, Option<PgOpened>), StoreError> {
        let (name, domain) = (mb.as_str(), mb.domain());
        type Found = (Option<String>, Option<Vec<u8>>, Option<String>, Option<i64>);
        let (policy, record, state, version): Found = self.call(
            &format!("reading mailbox {mb}"),
            Retry::Once,
            async |cl: &Client, s: &Stmts| {
                let r = cl.query_one(&s.open_login, &[&domain, &name]).await?;
                Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
            },
        )?;
        let policy = match policy {
            Some(p) => Self::decode_policy(domain, &p)?,
            None => DomainPolicy::default_for(cfg.default_policy),
        };
        let opened = match (state, version) {
            (Some(state), Some(version)) => Some(PgOpened {
                mailbox: mb.clone(),
                content: self.decode(mb, record.as_deref(), &state)?,
                version,
            }),
            _ => None,
        };
        Ok((policy, opened))
    }

    /// An optimistic lock on what `open_login` read: no round trip now;
    /// its write is conditional on the version read.
    fn relock(&self, opened: &PgOpened) -> Result<Option<PgLock<'_>>, StoreError> {
        Ok(Some(PgLock {
            store: self,
            mailbox: opened.mailbox.clone(),
            content: opened.content.clone(),
            version: opened.version,
            exists: true,
            tx: None,
        }))
    }

    /// Creates or upgrades the schema and makes the key file if the
    /// database has no key yet. `existing` is about store folders: a
    /// database has none.
    fn init(&self, _existing: ExistingFolder) -> Result<Vec<String>, StoreError> {
        self.init_db()
    }
}
