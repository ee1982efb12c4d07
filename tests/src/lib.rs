//! Test harness: drives the REAL libpam (`pam_start_confdir` with a service
//! file in a temp folder) against the freshly built `pam_mfa.so`, with codes
//! computed by `oathtool` (an implementation we did not write). Test code:
//! panics are the way a test fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod contract;
pub mod pam;
pub mod pg;
pub mod sms;

use pam_mfa::admin::Admin;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub use pam::{
    LoginResult, PAM_AUTH_ERR, PAM_AUTHINFO_UNAVAIL, PAM_MAXTRIES, PAM_PERM_DENIED, PAM_SERVICE_ERR, PAM_SUCCESS,
    PAM_USER_UNKNOWN,
};
pub use pam_mfa::config::BackendKind;
pub use pam_mfa::store::backend::{Backend, MailboxLock};
pub use pam_mfa::store::{Durability, ExistingFolder, OnMissing};

/// Root of the workspace.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Builds `pam_mfa.so` and `mfa-ctl` once per test process, in a target
/// folder of their own (`target/harness`), so the build does not wait on the
/// lock `cargo test` holds on the main one. Returns that folder's debug dir.
pub fn artifacts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = workspace().join("target").join("harness");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--quiet", "-p", "pam_mfa", "-p", "mfa-ctl", "--target-dir"])
            .arg(&target)
            .status()
            .expect("run cargo build for pam_mfa.so");
        assert!(status.success(), "building pam_mfa.so and mfa-ctl failed");
        target.join("debug")
    })
}

pub fn module_path() -> PathBuf {
    artifacts().join("libpam_mfa.so")
}

pub fn mfa_ctl_path() -> PathBuf {
    artifacts().join("mfa-ctl")
}

/// The TOTP code for `secret` at Unix time `t`, computed by oathtool.
pub fn oathtool(secret: &str, t: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret, "-N", &format!("@{t}")])
        .output()
        .expect("oathtool must be installed (Debian package oathtool); .ci/run installs it");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A six-digit code valid in no step of `t`±2.
pub fn wrong_code(secret: &str, t: u64) -> String {
    let valid: Vec<String> = (0..5).map(|i| oathtool(secret, t + i * 30 - 60)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919 + 12345) % 1_000_000))
        .find(|c| !valid.contains(c))
        .unwrap()
}

pub fn now() -> u64 {
    pam_mfa::clock::now().unwrap()
}

/// Waits until at least `margin` seconds are left in the current 30 s step,
/// so a code computed now is still the current one when the login runs.
pub fn fresh_step(margin: u64) -> u64 {
    loop {
        let t = now();
        if 30 - t % 30 >= margin {
            return t;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The store the libpam tests run on: `PAM_MFA_TEST_BACKEND=postgres` (what
/// tests/suites/postgres.sh sets) puts every [`Env`] on a database of its own
/// in a private PostgreSQL cluster; otherwise files.
pub fn test_backend() -> BackendKind {
    match std::env::var("PAM_MFA_TEST_BACKEND").as_deref() {
        Ok("postgres") => BackendKind::Postgres,
        Ok("files") | Err(_) => BackendKind::Files,
        Ok(other) => panic!("PAM_MFA_TEST_BACKEND={other:?}: use files or postgres"),
    }
}

/// The `[postgres]` table of an env on `db`: logins as the login role,
/// mfa-ctl as the admin role, both over the socket, as the docs set it up.
/// A longer connect_timeout than the default: the races start 32 processes
/// of a debug build at once on two cores, each opening its connection with
/// SCRAM (thousands of unoptimised hash rounds).
pub fn postgres_section(db: &pg::PgDatabase<'_>) -> String {
    let cluster = db.cluster();
    format!(
        "\n[postgres]\nurl = {:?}\npassword_file = {:?}\nadmin_url = {:?}\nadmin_password_file = {:?}\nkey_file = {:?}\nconnect_timeout = \"15s\"\n",
        db.socket_url(pg::Role::Login),
        cluster.password_file(pg::Role::Login),
        db.socket_url(pg::Role::Admin),
        cluster.password_file(pg::Role::Admin),
        db.key_file(),
    )
}

/// A throw-away world: store, config, PAM service folder, password file and
/// a syslog socket that collects what the module logs.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub config: PathBuf,
    pub confdir: PathBuf,
    pub pwdfile: PathBuf,
    pub log_socket: PathBuf,
    /// The database of a run on PostgreSQL ([`test_backend`]).
    pub db: Option<pg::PgDatabase<'static>>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

pub const DOMAIN: &str = "example.org";

impl Env {
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// `extra` is appended to the config file (TOML); a `[lockout]` table
    /// with quick test values is there unless `extra` brings its own.
    pub fn with_config(extra: &str) -> Env {
        Env::on(test_backend(), extra)
    }

    /// An env on the file store whatever the run's backend: for tests of
    /// what only files have (modes, torn copies, a full disk).
    pub fn files(extra: &str) -> Env {
        Env::on(BackendKind::Files, extra)
    }

    /// An env on PostgreSQL whatever the run's backend (a database of its
    /// own in [`pg::PgCluster::shared`]): for tests of what only the
    /// database has (reconnects, sealed rows, copies between backends).
    pub fn postgres(extra: &str) -> Env {
        Env::on(BackendKind::Postgres, extra)
    }

    fn on(backend: BackendKind, extra: &str) -> Env {
        let dir = tempfile::Builder::new().prefix("pam_mfa-test").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = dir.path().join("store");
        let config = dir.path().join("pam_mfa.toml");
        let confdir = dir.path().join("pam.d");
        std::fs::create_dir(&confdir).unwrap();
        let pwdfile = dir.path().join("passwd");
        std::fs::write(&pwdfile, "").unwrap();
        let db = (backend == BackendKind::Postgres).then(|| pg::PgCluster::shared().create_database("env"));
        let mut text = String::new();
        if db.is_some() {
            text.push_str("backend = \"postgres\"\n");
        }
        text.push_str(&format!(
            "store = \"{}\"\nissuer = \"Test Mail\"\ndefault_domain = \"{DOMAIN}\"\n",
            store.display()
        ));
        text.push_str(extra);
        if !extra.contains("[lockout]") {
            text.push_str("\n[lockout]\nafter = 5\nbackoff = \"30s\"\nmax_backoff = \"15m\"\nblock_after = 100\n");
        }
        if let Some(db) = &db {
            text.push_str(&postgres_section(db));
        }
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        // As the package's postinst does: a store exists before any login;
        // on a database, with the rights the documentation grants.
        Admin::open(Some(&config))
            .unwrap()
            .store
            .init(pam_mfa::store::ExistingFolder::Refuse)
            .unwrap();
        if let Some(db) = &db {
            let roles = std::fs::read_to_string(workspace().join("packaging/examples/postgres/roles.sql")).unwrap();
            db.psql_super(&roles);
        }
        let log_socket = dir.path().join("log.sock");
        // Drained by a thread of its own: the module sends without blocking,
        // so a full socket queue would lose lines the tests look for.
        let sock = UnixDatagram::bind(&log_socket).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        log.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                }
            });
        }
        let env = Env {
            dir,
            store,
            config,
            confdir,
            pwdfile,
            log_socket,
            db,
            log,
            stop,
        };
        env.write_service("mail", &env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass", ""));
        env
    }

    /// An env whose password module asks for no failure delay either
    /// (pam_pwdfile's own `nodelay`), for tests that make many refused logins.
    pub fn quick(extra: &str) -> Env {
        let env = Env::with_config(extra);
        env.write_service(
            "mail",
            &env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay", ""),
        );
        env
    }

    /// Common module arguments: this env's config and log socket, no failure delay.
    pub fn args(&self) -> String {
        format!(
            "config={} log_socket={} nodelay",
            self.config.display(),
            self.log_socket.display()
        )
    }

    /// The recommended stack, with `password_line` as the password module
    /// (PWDFILE is replaced by this env's password file) and `verify_extra`
    /// added to the verify line.
    pub fn stack(&self, password_line: &str, verify_extra: &str) -> String {
        let pw = password_line.replace("PWDFILE", &self.pwdfile.display().to_string());
        recommended_stack(&module_path(), &self.args(), &pw, verify_extra)
    }

    pub fn write_service(&self, name: &str, text: &str) {
        std::fs::write(self.confdir.join(name), text).unwrap();
    }

    /// Sets a mailbox's password in the pam_pwdfile file (SHA-512 crypt).
    pub fn set_password(&self, user: &str, password: &str) {
        let out = Command::new("openssl")
            .args(["passwd", "-6", "-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(password.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
        let hash = String::from_utf8(out.stdout).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.pwdfile).unwrap();
        writeln!(f, "{user}:{}", hash.trim()).unwrap();
    }

    pub fn admin(&self) -> Admin {
        Admin::open(Some(&self.config)).unwrap()
    }

    /// Enrols `mailbox` through the library (begin + confirm with oathtool's
    /// code of the PREVIOUS step, so the current code is still fresh for the
    /// first login). Returns the base32 secret.
    pub fn enroll(&self, mailbox: &str) -> String {
        let admin = self.admin();
        let mb = admin.mailbox(mailbox).unwrap();
        let t = now();
        let e = admin.enroll_begin(&mb, t).unwrap();
        let secret = e.secret.to_string();
        admin.enroll_confirm(&mb, &oathtool(&secret, t - 30), t).unwrap();
        secret
    }

    /// One login as a mail server does it: pam_start_confdir, PAM_RHOST,
    /// pam_authenticate, then (if that passed) pam_acct_mgmt, pam_end. The
    /// conversation answers every hidden prompt with `typed`.
    pub fn login(&self, service: &str, user: &str, typed: &str) -> LoginResult {
        self.login_raw(service, user.as_bytes(), typed.as_bytes(), Some("192.0.2.10"))
    }

    pub fn login_raw(&self, service: &str, user: &[u8], typed: &[u8], rhost: Option<&str>) -> LoginResult {
        pam::login(&self.confdir, service, user, typed, rhost)
    }

    /// Everything the module logged since the last call.
    pub fn logs(&self) -> Vec<String> {
        // Lines sent just before this call may still be in the socket queue,
        // and on a busy machine the draining thread may run late: wait until
        // no line has come for a while (at most 3 s).
        let mut seen = usize::MAX;
        for _ in 0..25 {
            std::thread::sleep(Duration::from_millis(120));
            let n = self.log.lock().unwrap().len();
            if n == seen {
                break;
            }
            seen = n;
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Everything the store holds, for "nothing changed" checks: every file
    /// under the folder with its content, or every row of the database.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(db) = &self.db {
            let rows =
                db.psql_super("SELECT * FROM pam_mfa_domains ORDER BY 1; SELECT * FROM pam_mfa_mailboxes ORDER BY 1;");
            out.push((PathBuf::from("database"), rows.into_bytes()));
            return out;
        }
        fn walk(p: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.path());
            for e in entries {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
                }
            }
        }
        walk(&self.store, &mut out);
        out
    }

    /// The mailbox's file (`STORE/mailboxes/DOMAIN/LOCAL.mfa`).
    pub fn mailbox_file(&self, mailbox: &str) -> PathBuf {
        let (local, domain) = mailbox.split_once('@').unwrap();
        self.store
            .join("mailboxes")
            .join(domain)
            .join(format!("{local}.{}", pam_mfa::store::MAILBOX_EXT))
    }

    /// The JSON payload of the newest intact copy in the mailbox's file
    /// (panics if none is intact), and that copy's sequence number.
    pub fn mailbox_json(&self, mailbox: &str) -> (String, u64) {
        let bytes = std::fs::read(self.mailbox_file(mailbox)).unwrap();
        let (json, pos) = pam_mfa::store::slots::decode(&bytes).unwrap();
        (json.to_string(), pos.seq)
    }

    /// Writes `json` as the mailbox's file, in the checksummed two-copy form
    /// the store writes (so only the JSON itself can be wrong), mode 0600.
    pub fn write_mailbox_json(&self, mailbox: &str, json: &str, seq: u64) {
        self.write_mailbox_bytes(mailbox, &pam_mfa::store::slots::encode_file(seq, json));
    }

    /// Writes `bytes` as the mailbox's file, mode 0600 (in place if it exists).
    pub fn write_mailbox_bytes(&self, mailbox: &str, bytes: &[u8]) {
        let path = self.mailbox_file(mailbox);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Runs the built mfa-ctl with this env's config.
    pub fn mfa_ctl(&self, args: &[&str]) -> std::process::Output {
        mfa_ctl_with(&self.config, args)
    }

    /// Sets alice's password ([`PW`]) and enrols her; returns the secret.
    pub fn with_alice(self) -> (Env, String) {
        self.set_password(ALICE, PW);
        let secret = self.enroll(ALICE);
        (self, secret)
    }
}

/// The recommended PAM stack (pam_mfa(8)) with `module` as pam_mfa, `args`
/// on each of its lines, `password_line` as the password module and
/// `verify_extra` added to the verify line.
pub fn recommended_stack(module: &Path, args: &str, password_line: &str, verify_extra: &str) -> String {
    let m = module.display();
    format!(
        "auth sufficient {m} app_password {args}\n\
         auth requisite {m} split {args}\n\
         auth requisite {password_line}\n\
         auth required {m} verify {args} {verify_extra}\n\
         account required {m} {args}\n"
    )
}

/// The mailbox most tests log in as, and its password.
pub const ALICE: &str = "alice@example.org";
pub const PW: &str = "T9D3K!px";

/// The built mfa-ctl with `--config CONFIG`, stdin closed: add arguments
/// (and environment) and run it.
pub fn mfa_ctl_command(config: &Path) -> Command {
    let mut cmd = Command::new(mfa_ctl_path());
    cmd.arg("--config").arg(config).stdin(std::process::Stdio::null());
    cmd
}

/// Runs the built mfa-ctl with `--config CONFIG ARGS`.
pub fn mfa_ctl_with(config: &Path, args: &[&str]) -> std::process::Output {
    mfa_ctl_command(config).args(args).output().unwrap()
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// `file` (a mailbox file whose two copies both hold its content) with one
/// payload byte of EACH copy flipped: no intact copy left. Checks first that
/// either tear alone still reads (the other copy takes over).
pub fn tear_both_copies(file: &[u8]) -> Vec<u8> {
    let slot = file.len() / 2;
    // Past the header (109 bytes), inside the JSON of each copy.
    let at = [150, slot + 150];
    for i in at {
        let mut one = file.to_vec();
        one[i] ^= 0x20;
        assert!(pam_mfa::store::slots::decode(&one).is_ok(), "copy at {i} alone");
    }
    let mut torn = file.to_vec();
    for i in at {
        torn[i] ^= 0x20;
    }
    torn
}
