//! Real, private PostgreSQL servers for the tests of the `postgres` backend.
//!
//! A mock would not show what matters here: exactly-once codes under a real
//! row lock, a refused login when the server is down, TLS name checks. So
//! each [`PgCluster`] is a real cluster of its own: `initdb` in a temp folder,
//! a free port on 127.0.0.1, a socket folder of its own, TLS with a test CA,
//! the two roles pam_mfa documents (`pam_mfa_login`, `pam_mfa_admin`) with
//! random passwords. The machine's own cluster, if any, is never touched.
//!
//! The tests run as root and PostgreSQL refuses to: every server-side
//! command (`initdb`, `pg_ctl`, the superuser's `psql`) runs as the
//! `postgres` user, and the cluster's folder is made hers and reachable.
//! Secrets pam_mfa reads (password files, key files) stay in root-owned
//! 0700 folders beside it, as they would on a mail server.
//!
//! Cleanup, pass or fail: dropping a cluster stops it (`-m immediate`) and
//! removes its folder. That is not enough on its own: [`PgCluster::shared`]
//! lives in a static, and statics are never dropped; and a test process that
//! is killed (a timeout, Ctrl-C) runs no destructor at all. A postmaster is
//! not our child (pg_ctl detaches it), so it would outlive us, holding a
//! port and a folder in /tmp. Hence every cluster also has a watchdog: a
//! small `sh` loop in a process group of its own, deaf to terminal signals,
//! that polls the test process with `kill -0` and, once it is gone, stops
//! the cluster and removes the folder. Dropping the cluster kills the
//! watchdog, whose work is then done.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// The roles pam_mfa's documentation sets up: the one logins use (read
/// records, update state) and the one `mfa-ctl` uses (owns the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Login,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Login => "pam_mfa_login",
            Role::Admin => "pam_mfa_admin",
        }
    }
}

/// The certificate the server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCert {
    /// For `localhost` and 127.0.0.1, signed by the test CA: verify-full
    /// succeeds.
    Localhost,
    /// Signed by the same CA but for `wrong.example`: verify-full must refuse.
    WrongName,
}

/// A private PostgreSQL cluster, stopped and removed on drop.
pub struct PgCluster {
    /// Root-owned 0755 folder holding everything; removed last.
    root: Option<tempfile::TempDir>,
    bin: PathBuf,
    /// The cluster's own folder (postgres-owned): data, socket, certs, log.
    dir: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    /// Our settings, included from postgresql.conf.
    conf: PathBuf,
    certs: PathBuf,
    /// Root-owned 0700: password files.
    secrets: PathBuf,
    port: u16,
    postgres_ids: (u32, u32),
    login_password: String,
    admin_password: String,
    watchdog: Mutex<Option<Child>>,
    next_db: AtomicU32,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl PgCluster {
    /// Makes, configures and starts a new cluster; panics (with the server's
    /// log) if it cannot.
    pub fn start() -> PgCluster {
        let root = tempfile::Builder::new().prefix("pam_mfa-pg").tempdir().unwrap();
        // tempfile makes it 0700 root: the postgres user must get through it.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let base = root.path().to_path_buf();
        let dir = base.join("cluster");
        let mut c = PgCluster {
            root: Some(root),
            bin: bin_dir(),
            data: dir.join("data"),
            socket_dir: dir.join("socket"),
            log: dir.join("postgres.log"),
            conf: dir.join("pam_mfa_test.conf"),
            certs: dir.join("certs"),
            secrets: base.join("secrets"),
            dir,
            port: 0,
            postgres_ids: postgres_ids(),
            login_password: random_hex(16),
            admin_password: random_hex(16),
            watchdog: Mutex::new(None),
            next_db: AtomicU32::new(0),
        };
        // First, so that even a start that fails half-way is cleaned up if
        // the process dies before the drop.
        c.start_watchdog();
        for d in [&c.dir, &c.socket_dir, &c.certs] {
            std::fs::create_dir(d).unwrap();
            c.give_to_postgres(d, 0o755);
        }
        std::fs::create_dir(&c.secrets).unwrap();
        std::fs::set_permissions(&c.secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
        c.make_certs();
        let data = c.data.to_str().unwrap().to_string();
        c.as_postgres(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                // Test data: not worth the fsyncs of the template databases.
                "--no-sync",
                "--no-instructions",
            ],
        )
        .unwrap_or_else(|e| panic!("initdb failed: {e}"));
        c.write_postgres_file(
            &c.data.join("pg_hba.conf"),
            "local all postgres peer\n\
             local all all scram-sha-256\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        );
        let mut main_conf = std::fs::OpenOptions::new()
            .append(true)
            .open(c.data.join("postgresql.conf"))
            .unwrap();
        writeln!(main_conf, "\ninclude '{}'", c.conf.display()).unwrap();
        // A free port: the kernel names one, we let go of it and the server
        // binds it. Another process may take it in between; then try another.
        let mut tries = 0;
        loop {
            tries += 1;
            c.port = free_port();
            c.write_conf(ServerCert::Localhost);
            match c.pg_ctl_start() {
                Ok(()) => break,
                Err(log) if tries < 5 && log.contains("could not bind") => continue,
                Err(log) => panic!("PostgreSQL did not start (port {}); its log ends:\n{log}", c.port),
            }
        }
        for role in [Role::Login, Role::Admin] {
            c.psql_super_in(
                "postgres",
                &format!("CREATE ROLE {} LOGIN PASSWORD '{}';", role.name(), c.password(role)),
            )
            .unwrap_or_else(|e| panic!("creating role {}: {e}", role.name()));
            c.write_password_file(role, &c.password_file(role));
        }
        c
    }

    /// One cluster for the whole test process, started on first use, for
    /// test binaries with many tests (each takes a database of its own).
    /// Never dropped: its watchdog removes it when the process ends.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder of the server's Unix socket (`host=` in libpq terms).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The test CA's certificate, for clients' `sslrootcert`.
    pub fn ca_cert(&self) -> PathBuf {
        self.certs.join("ca.crt")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The folder holding everything this cluster made; gone after the drop.
    pub fn root(&self) -> &Path {
        self.dir.parent().unwrap()
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The running postmaster's pid, if it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    pub fn password(&self, role: Role) -> &str {
        match role {
            Role::Login => &self.login_password,
            Role::Admin => &self.admin_password,
        }
    }

    /// The role's password file (written at start, root 0600, the password
    /// alone on its first line: pam_mfa's `password_file`).
    pub fn password_file(&self, role: Role) -> PathBuf {
        self.secrets.join(format!("{}.pass", role.name()))
    }

    /// Writes the role's password file at `path` (0600, owned by the
    /// caller), for tests that want it elsewhere.
    pub fn write_password_file(&self, role: Role, path: &Path) {
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        writeln!(f, "{}", self.password(role)).unwrap();
    }

    /// A fresh, empty database owned by `pam_mfa_admin`, with a unique
    /// name made from `name_hint`; dropped with the returned value.
    pub fn create_database(&self, name_hint: &str) -> PgDatabase<'_> {
        let mut hint: String = name_hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        if hint.is_empty() {
            hint.push_str("db");
        }
        let name = format!("{hint}_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        let dir = self.root().join("databases").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        self.psql_super_in("postgres", &format!("CREATE DATABASE \"{name}\" OWNER pam_mfa_admin;"))
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        PgDatabase {
            cluster: self,
            name,
            dir,
        }
    }

    /// The configuration lines that point pam_mfa at `db` as `role`, over
    /// the Unix socket (see [`PgDatabase::config_toml_with_url`]).
    pub fn config_toml(&self, db: &PgDatabase<'_>, role: Role) -> String {
        db.config_toml(role)
    }

    /// Stops the server (fast shutdown: what an admin's restart does).
    pub fn stop(&self) {
        let data = self.data.to_str().unwrap().to_string();
        self.as_postgres("pg_ctl", &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"])
            .unwrap_or_else(|e| panic!("pg_ctl stop: {e}\n{}", self.log_tail()));
    }

    /// Starts the stopped server again: same data, same port.
    pub fn start_again(&self) {
        self.pg_ctl_start()
            .unwrap_or_else(|log| panic!("PostgreSQL did not start again; its log ends:\n{log}"));
    }

    /// Restarts the server presenting `cert`.
    pub fn restart_with_cert(&self, cert: ServerCert) {
        self.stop();
        self.write_conf(cert);
        self.start_again();
    }

    /// Runs `sql` as the superuser in database `db` (over the socket, peer
    /// authentication); the unaligned output, or psql's stderr.
    pub fn psql_super_in(&self, db: &str, sql: &str) -> Result<String, String> {
        let (sock, port) = (self.socket_dir.to_str().unwrap().to_string(), self.port.to_string());
        let mut cmd = self.postgres_command("psql");
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &sock,
            "-p",
            &port,
        ])
        .args(["-U", "postgres", "-d", db, "-f", "-"]);
        run_with_input(cmd, sql)
    }

    /// Runs `sql` with psql as root, connecting with `conninfo` (a URL or
    /// key=value string) and `role`'s password: how a client sees the server.
    pub fn psql_as(&self, role: Role, conninfo: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(self.bin.join("psql"));
        clean_env(&mut cmd);
        cmd.env("PGPASSWORD", self.password(role))
            .env("PGCONNECT_TIMEOUT", "5")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                conninfo,
                "-f",
                "-",
            ]);
        run_with_input(cmd, sql)
    }

    fn postgres_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        clean_env(&mut cmd);
        cmd.env("HOME", &self.dir)
            .current_dir(&self.dir)
            .uid(self.postgres_ids.0)
            .gid(self.postgres_ids.1);
        cmd
    }

    fn as_postgres(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.postgres_command(program);
        cmd.args(args);
        run_with_input(cmd, "")
    }

    /// `pg_ctl start`, waiting until the server takes connections; the log's
    /// tail if it does not.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let (data, log) = (self.data.to_str().unwrap(), self.log.to_str().unwrap());
        match self.as_postgres("pg_ctl", &["-D", data, "-l", log, "-w", "-t", "60", "-s", "start"]) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{e}\n{}", self.log_tail())),
        }
    }

    fn write_conf(&self, cert: ServerCert) {
        let name = match cert {
            ServerCert::Localhost => "server",
            ServerCert::WrongName => "wrong",
        };
        let text = format!(
            "listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{sock}'\n\
             ssl = on\n\
             ssl_cert_file = '{certs}/{name}.crt'\n\
             ssl_key_file = '{certs}/{name}.key'\n\
             # parallel tests, each with connections of its own\n\
             max_connections = 300\n\
             shared_buffers = 32MB\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n",
            port = self.port,
            sock = self.socket_dir.display(),
            certs = self.certs.display(),
        );
        self.write_postgres_file(&self.conf, &text);
    }

    /// The test CA, a server certificate for localhost/127.0.0.1 and one for
    /// a name no client asks for, all made with the openssl CLI.
    fn make_certs(&self) {
        let d = &self.certs;
        std::fs::write(
            d.join("ca.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n\
             [dn]\nCN = pam_mfa test CA\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-config",
                "ca.cnf",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "30",
            ],
        );
        for (name, cn, san) in [
            ("server", "localhost", "DNS:localhost,IP:127.0.0.1"),
            ("wrong", "wrong.example", "DNS:wrong.example"),
        ] {
            std::fs::write(
                d.join(format!("{name}.cnf")),
                format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n"),
            )
            .unwrap();
            std::fs::write(
                d.join(format!("{name}.ext")),
                format!(
                    "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
                     extendedKeyUsage = serverAuth\nsubjectAltName = {san}\nauthorityKeyIdentifier = keyid\n"
                ),
            )
            .unwrap();
            let (cnf, key, csr, crt, ext) = (
                format!("{name}.cnf"),
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-nodes",
                    "-config",
                    &cnf,
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "30",
                    "-extfile",
                    &ext,
                ],
            );
            // PostgreSQL wants its key private to it.
            self.give_to_postgres(&d.join(&key), 0o600);
            self.give_to_postgres(&d.join(&crt), 0o644);
        }
        std::fs::set_permissions(d.join("ca.crt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn write_postgres_file(&self, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        self.give_to_postgres(path, 0o644);
    }

    fn give_to_postgres(&self, path: &Path, mode: u32) {
        std::os::unix::fs::chown(path, Some(self.postgres_ids.0), Some(self.postgres_ids.1)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// See the module comment: removes the cluster once this process is
    /// gone, however it went.
    fn start_watchdog(&self) {
        const SCRIPT: &str = r#"
trap '' HUP INT TERM PIPE
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
if [ -f "$3/postmaster.pid" ]; then
  runuser -u postgres -- "$2/pg_ctl" -D "$3" -m immediate -w -t 30 stop
fi
rm -rf "$4"
"#;
        let child = Command::new("sh")
            .args(["-c", SCRIPT, "pam_mfa-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.bin)
            .arg(&self.data)
            .arg(self.root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in the test's process group: a Ctrl-C for the tests must
            // not take the watchdog with them.
            .process_group(0)
            .spawn()
            .unwrap();
        *self.watchdog.lock().unwrap() = Some(child);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let data = self.data.to_str().unwrap_or_default().to_string();
            let _ = self.as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"]);
        }
        if let Ok(mut w) = self.watchdog.lock()
            && let Some(mut child) = w.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(root) = self.root.take() {
            let path = root.path().to_path_buf();
            drop(root);
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// A database of a [`PgCluster`], dropped (with its folder) with the value.
pub struct PgDatabase<'c> {
    cluster: &'c PgCluster,
    name: String,
    /// Root-owned 0700: the key file and whatever else a test keeps here.
    dir: PathBuf,
}

impl std::fmt::Debug for PgDatabase<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'c> PgDatabase<'c> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cluster(&self) -> &'c PgCluster {
        self.cluster
    }

    /// A root-owned 0700 folder of this database's own.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where pam_mfa's key file goes (`mfa-ctl store init` makes it).
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("pam_mfa.key")
    }

    /// A libpq URL over the Unix socket, the socket folder percent-encoded as
    /// the host; no password.
    pub fn socket_url(&self, role: Role) -> String {
        format!(
            "postgresql://{}@{}:{}/{}",
            role.name(),
            percent_encode(self.cluster.socket_dir.to_str().unwrap(), false),
            self.cluster.port,
            self.name
        )
    }

    /// The same in libpq's key=value form.
    pub fn socket_kv(&self, role: Role) -> String {
        format!(
            "host={} port={} dbname={} user={}",
            kv_quote(self.cluster.socket_dir.to_str().unwrap()),
            self.cluster.port,
            kv_quote(&self.name),
            role.name()
        )
    }

    /// A libpq URL over TCP to 127.0.0.1, the server's certificate checked
    /// (pam_mfa takes no other over TCP: whoever answered could let every
    /// mailbox in with the password alone).
    pub fn tcp_url(&self, role: Role) -> String {
        format!(
            "postgresql://{}@127.0.0.1:{}/{}?sslmode=verify-full&sslrootcert={}",
            role.name(),
            self.cluster.port,
            self.name,
            self.ca_param()
        )
    }

    /// The test CA's path as a URL parameter value.
    pub fn ca_param(&self) -> String {
        percent_encode(self.cluster.ca_cert().to_str().unwrap(), true)
    }

    /// A libpq URL over TLS to `localhost`, trusting the test CA.
    pub fn tls_url(&self, role: Role, sslmode: &str) -> String {
        format!(
            "postgresql://{}@localhost:{}/{}?sslmode={sslmode}&sslrootcert={}",
            role.name(),
            self.cluster.port,
            self.name,
            percent_encode(self.cluster.ca_cert().to_str().unwrap(), true)
        )
    }

    /// Runs `sql` as the superuser in this database; panics with psql's
    /// stderr if it fails.
    pub fn psql_super(&self, sql: &str) -> String {
        self.psql_super_try(sql)
            .unwrap_or_else(|e| panic!("psql as superuser in {}: {e}\nSQL: {sql}", self.name))
    }

    pub fn psql_super_try(&self, sql: &str) -> Result<String, String> {
        self.cluster.psql_super_in(&self.name, sql)
    }

    /// pam_mfa's configuration lines for this database as `role`, over the
    /// socket.
    pub fn config_toml(&self, role: Role) -> String {
        self.config_toml_with_url(role, &self.socket_url(role))
    }

    /// The same with another URL (TCP, TLS, a dead port...). Top-level
    /// keys first: put it before any other `[table]` of the file.
    pub fn config_toml_with_url(&self, role: Role, url: &str) -> String {
        format!(
            "backend = \"postgres\"\n[postgres]\nurl = {}\npassword_file = {}\nkey_file = {}\n",
            toml_str(url),
            toml_str(self.cluster.password_file(role).to_str().unwrap()),
            toml_str(self.key_file().to_str().unwrap()),
        )
    }
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        // FORCE: a store of the test may still hold a connection. Best
        // effort (the cluster may be stopped): it all goes with the cluster.
        let _ = self.cluster.psql_super_in(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE);", self.name),
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port on 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The PostgreSQL server programs: `$PAM_MFA_PG_BIN`, or the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAM_MFA_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL server not installed (Debian package postgresql; tests/deps.sh installs it)")
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().unwrap();
        assert!(
            out.status.success(),
            "no user postgres (Debian package postgresql makes it; tests/deps.sh installs it)"
        );
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Only what the programs need: no PG* variable of the caller's leaks in.
fn clean_env(cmd: &mut Command) {
    cmd.env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C.UTF-8");
}

fn run_with_input(mut cmd: Command, input: &str) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(format!(
            "{} ({}): {}",
            cmd.get_program().to_string_lossy(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn percent_encode(s: &str, keep_slash: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn kv_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
