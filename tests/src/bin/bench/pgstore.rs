//! The PostgreSQL store of one size: a database of its own in the private
//! cluster the test harness starts (`pam_mfa_tests::pg`: initdb in a temp
//! folder as the postgres user, a free port on 127.0.0.1, its own socket
//! folder, TLS with a test CA, the two documented roles), set up the way
//! the documentation says (`Backend::init` as pam_mfa_admin, then
//! roles.sql), holding the same N mailboxes as the file store: same
//! secrets, same steady state (20 recent logins), sealed with the key file.
//!
//! Logins reach it two ways, one PAM service each: over the Unix socket, and
//! over TCP to 127.0.0.1 with TLS (`sslmode=verify-full` with the test CA:
//! over TCP pam_mfa takes nothing less, as the README says between servers).

use crate::content::{mfa_content, primed_state};
use crate::fixture::{DOMAIN, local, mailbox_at, seed, user};
use crate::report::{Steps, pct};
use crate::stores::write_file;
use pam_mfa::config::{Config, IfMissing};
use pam_mfa::mailbox::Mailbox;
use pam_mfa::seal::SealKey;
use pam_mfa::store::any::AnyStore;
use pam_mfa::store::records::MailboxFile;
use pam_mfa::store::{Durability, ExistingFolder, OnMissing};
use pam_mfa_tests::pg::{PgCluster, PgDatabase, Role};
use pam_mfa_tests::{Backend, MailboxLock};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Mailboxes per COPY statement while loading (each a psql run).
const COPY_CHUNK: u64 = 20_000;

/// The database of one size and the configurations that point at it.
pub struct PgWorld {
    pub db: PgDatabase<'static>,
    /// Logins over the socket, as pam_mfa_login.
    pub socket_cfg: PathBuf,
    /// Logins over TCP + TLS to 127.0.0.1, as pam_mfa_login.
    pub tls_cfg: PathBuf,
    /// The steady state's JSON (the same for every mailbox), for resets.
    state_json: String,
}

/// The cluster, started once per run (the first size that needs it) and
/// tuned with `settings` (`name=value`, as ALTER SYSTEM takes them). Its
/// watchdog stops and removes it when the bench ends, however it ends.
pub fn cluster(settings: &[String]) -> &'static PgCluster {
    static TUNED: std::sync::Once = std::sync::Once::new();
    let c = PgCluster::shared();
    TUNED.call_once(|| {
        let mut sql = String::new();
        for s in settings {
            let (name, value) = s
                .split_once('=')
                .unwrap_or_else(|| panic!("--pg-set {s}: use name=value"));
            let _ = writeln!(
                sql,
                "ALTER SYSTEM SET {} = '{}';",
                name.trim(),
                value.trim().replace('\'', "''")
            );
        }
        if !sql.is_empty() {
            c.psql_super_in("postgres", &sql)
                .unwrap_or_else(|e| panic!("--pg-set: {e}"));
            // Some settings (shared_buffers) need a restart.
            c.stop();
            c.start_again();
        }
        // The figures are for durable commits, as the file store's are.
        let durability = c
            .psql_super_in(
                "postgres",
                "SHOW synchronous_commit; SHOW fsync; SHOW full_page_writes;",
            )
            .unwrap();
        assert_eq!(
            durability.lines().collect::<Vec<_>>(),
            ["on", "on", "on"],
            "synchronous_commit, fsync and full_page_writes must stay on"
        );
    });
    c
}

/// What the run's output says about the server and its durability settings.
pub fn describe(c: &PgCluster) -> String {
    let names = [
        "server_version",
        "synchronous_commit",
        "fsync",
        "full_page_writes",
        "wal_sync_method",
        "wal_compression",
        "shared_buffers",
        "commit_delay",
        "max_wal_size",
        "checkpoint_timeout",
    ];
    let sql: String = names.iter().map(|n| format!("SHOW {n};\n")).collect();
    let out = c.psql_super_in("postgres", &sql).unwrap();
    let vals: Vec<&str> = out.lines().collect();
    names
        .iter()
        .zip(vals)
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A configuration file for `url` as `role`; the database's key file.
fn config(db: &PgDatabase<'_>, path: &Path, role: Role, url: &str) {
    let text = format!(
        "backend = \"postgres\"\ndefault_domain = \"{DOMAIN}\"\n[postgres]\nurl = {}\npassword_file = {}\nkey_file = {}\n\
         connect_timeout = \"15s\"\n",
        toml_str(url),
        toml_str(db.cluster().password_file(role).to_str().unwrap()),
        toml_str(db.key_file().to_str().unwrap()),
    );
    write_file(path, text.as_bytes(), 0o600);
}

fn open_store(cfg: &Path) -> AnyStore {
    AnyStore::open(&Config::load(cfg, 0, IfMissing::Refuse).unwrap(), None).unwrap()
}

/// `{"record":R,"state":S}` (what `MailboxFile::to_json` writes) -> (R, S):
/// the JSON the database backend keeps of each (it serialises the record
/// and the state apart with the same serde derive, so the text is the same).
fn split_json(json: &str) -> (&str, &str) {
    let rest = json
        .strip_prefix("{\"record\":")
        .expect("MailboxFile JSON starts with its record");
    let (mut depth, mut in_str, mut esc, mut end) = (0u32, false, false, 0);
    for (k, b) in rest.bytes().enumerate() {
        match (in_str, esc, b) {
            (true, true, _) => esc = false,
            (true, false, b'\\') => esc = true,
            (true, false, b'"') => in_str = false,
            (true, false, _) => {}
            (false, _, b'"') => in_str = true,
            (false, _, b'{' | b'[') => depth += 1,
            (false, _, b'}' | b']') => {
                depth -= 1;
                if depth == 0 {
                    end = k + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let (record, tail) = rest.split_at(end);
    let state = tail
        .strip_prefix(",\"state\":")
        .and_then(|s| s.strip_suffix('}'))
        .expect("MailboxFile JSON: record, then state");
    (record, state)
}

/// Creates the database of size `n`, its schema, grants and mailboxes, and
/// the configuration files in `root`.
pub fn setup(settings: &[String], root: &Path, n: u64, t: u64) -> PgWorld {
    let cluster = cluster(settings);
    let db = cluster.create_database(&format!("bench_{n}"));
    let admin_cfg = root.join("mfa-pg-admin.toml");
    config(&db, &admin_cfg, Role::Admin, &db.socket_url(Role::Admin));
    let w = PgWorld {
        socket_cfg: root.join("mfa-pg-socket.toml"),
        tls_cfg: root.join("mfa-pg-tls.toml"),
        state_json: String::new(),
        db,
    };
    config(&w.db, &w.socket_cfg, Role::Login, &w.db.socket_url(Role::Login));
    config(&w.db, &w.tls_cfg, Role::Login, &w.db.tcp_url(Role::Login));

    // As the documentation says: init as the owner (makes the tables and
    // the key file), then the grants as a superuser.
    let admin = open_store(&admin_cfg);
    admin.init(ExistingFolder::Refuse).unwrap();
    let roles =
        std::fs::read_to_string(pam_mfa_tests::workspace().join("packaging/examples/postgres/roles.sql")).unwrap();
    w.db.psql_super(&roles);

    // Mailbox 0 through the library, so the others are checked to be what it writes.
    let mb0 = Mailbox::parse(user(0).as_bytes(), None).unwrap();
    {
        let mut l = admin.lock(&mb0, OnMissing::Create).unwrap().unwrap();
        l.write(&mfa_content(0, t).record, &primed_state(t)).unwrap();
    }
    assert_eq!(admin.read_mailbox(&mb0).unwrap().unwrap(), mfa_content(0, t));

    // The others with COPY, each record sealed here with the database's key
    // and the mailbox's name, as the backend seals it.
    let key = SealKey::load(&w.db.key_file(), None).unwrap();
    let state_json = {
        let json = MailboxFile {
            record: Default::default(),
            state: primed_state(t),
        }
        .to_json()
        .unwrap();
        split_json(&json).1.to_string()
    };
    assert!(
        !state_json.contains(['\t', '\n', '\r', '\\']),
        "state JSON needs COPY escaping"
    );
    let mut i = 1;
    while i < n {
        let end = (i + COPY_CHUNK).min(n);
        let mut copy = String::with_capacity(((end - i) * 3000) as usize);
        copy.push_str("COPY pam_mfa_mailboxes (mailbox, domain, local, record, state, version) FROM STDIN;\n");
        for k in i..end {
            let json = mfa_content(k, t).to_json().unwrap();
            let (record, state) = split_json(&json);
            debug_assert_eq!(state, state_json);
            let sealed = key.seal(&user(k), record.as_bytes()).unwrap();
            let _ = writeln!(
                copy,
                "{}\t{DOMAIN}\t{}\t\\\\x{}\t{state_json}\t1",
                user(k),
                local(k),
                pam_mfa::secret::hex(&sealed)
            );
        }
        copy.push_str("\\.\n");
        w.db.psql_super(&copy);
        i = end;
    }
    // A table in steady state: statistics, visibility map, nothing dirty.
    w.db.psql_super("VACUUM (ANALYZE) pam_mfa_mailboxes; CHECKPOINT;");
    for i in [n / 2, n - 1] {
        let mb = Mailbox::parse(user(i).as_bytes(), None).unwrap();
        let r = admin.read_mailbox(&mb).unwrap().unwrap();
        assert_eq!(r, mfa_content(i, t), "mailbox {i} as loaded");
        assert_eq!(r.record.totp.unwrap().secret.as_str(), seed(i).secret.as_str());
    }
    PgWorld { state_json, ..w }
}

fn name_list(used: &[u64]) -> String {
    let names: Vec<String> = used.iter().map(|i| user(*i)).collect();
    format!("'{{{}}}'::text[]", names.join(","))
}

impl PgWorld {
    /// Puts used mailboxes back in their steady state (untimed).
    pub fn reset(&self, used: &[u64]) {
        if used.is_empty() {
            return;
        }
        self.db.psql_super(&format!(
            "UPDATE pam_mfa_mailboxes SET state = '{}', version = version + 1 WHERE mailbox = ANY({});",
            self.state_json.replace('\'', "''"),
            name_list(used)
        ));
    }

    /// Before each run, what `sync` is to the file store: nothing dirty is
    /// left for the run to write back (and the first change of each page
    /// after it is logged in full, as after any checkpoint).
    pub fn checkpoint(&self) {
        self.db.psql_super("CHECKPOINT;");
    }

    /// Reads the rows (and their TOAST) a run will use, untimed: the warm
    /// cache of the file store's rows, in shared_buffers and the page cache.
    pub fn warm(&self, n: u64, start: u64, count: u64) {
        let used: Vec<u64> = (0..count).map(|j| mailbox_at(n, start, j)).collect();
        self.db.psql_super(&format!(
            "SELECT sum(length(state)) + sum(length(record)) FROM pam_mfa_mailboxes WHERE mailbox = ANY({});",
            name_list(&used)
        ));
    }

    /// Size of the mailbox table with its TOAST and indexes, for the output.
    pub fn table_size(&self) -> String {
        self.db
            .psql_super("SELECT pg_size_pretty(pg_total_relation_size('pam_mfa_mailboxes'));")
    }
}

/// A login's database steps, timed in-process through the library over the
/// socket as pam_mfa_login (p50 of 300 mailboxes), and how often one login
/// with a 6-digit code runs each (module.rs: every one of the four PAM
/// calls opens the store, which reads the password and key files; `split`
/// reads policy and mailbox in one statement; `verify` writes the state
/// with one conditional UPDATE, committed at once).
pub fn breakdown(w: &PgWorld, n: u64) -> Steps {
    let cfg = Config::load(&w.socket_cfg, 0, IfMissing::Refuse).unwrap();
    let store = AnyStore::open(&cfg, None).unwrap();
    let k = 300.min(n);
    let mbs: Vec<Mailbox> = (0..k)
        .map(|j| Mailbox::parse(user(mailbox_at(n, n / 3, j)).as_bytes(), None).unwrap())
        .collect();
    // The connection is opened (and kept) before timing anything: the
    // login rows pay it once per process.
    store.check_ready().unwrap();
    w.warm(n, n / 3, k);
    // As before every login row: the writes log their pages in full.
    w.checkpoint();
    let time = |f: &mut dyn FnMut(&Mailbox)| -> f64 {
        let mut v: Vec<u64> = mbs
            .iter()
            .map(|mb| {
                let t = Instant::now();
                f(mb);
                t.elapsed().as_nanos() as u64
            })
            .collect();
        v.sort_unstable();
        pct(&v, 0.5) as f64 / 1000.0
    };
    let mut opened = Vec::new();
    let steps = vec![
        (
            "AnyStore::open (password_file and key_file read, checked)",
            time(&mut |_| {
                std::hint::black_box(AnyStore::open(&cfg, None).unwrap());
            }),
            4,
        ),
        (
            "Backend::open_login (policy + mailbox, 1 round trip, unseal, parse)",
            time(&mut |mb| {
                opened.push(store.open_login(mb, &cfg).unwrap().1.unwrap());
            }),
            1,
        ),
    ];
    let mut it = opened.into_iter();
    let mut steps = steps;
    steps.push((
        "Backend::relock + write_state (UPDATE ... WHERE version, COMMIT: 1 round trip + WAL flush)",
        time(&mut |_| {
            let o = it.next().unwrap();
            let mut l = store.relock(&o).unwrap().unwrap();
            let mut s = l.state().clone();
            s.last_step = s.last_step.map(|x| x + 1);
            l.write_state(&s, Durability::Configured).unwrap();
        }),
        1,
    ));
    let used: Vec<u64> = (0..k).map(|j| mailbox_at(n, n / 3, j)).collect();
    w.reset(&used);
    steps
}
