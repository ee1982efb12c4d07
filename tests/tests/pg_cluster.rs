//! The private PostgreSQL clusters ([`pam_mfa_tests::pg`]) do what the
//! backend's tests take for granted: both roles log in with their passwords
//! over the socket and TCP, TLS verify-full accepts the right name and
//! refuses a wrong one, a stopped server comes back with its data, and
//! nothing is left behind, even by a test process that is killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_mfa::config::{BackendKind, Config};
use pam_mfa_tests::pg::{PgCluster, Role, ServerCert};
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WHO: &str =
    "SELECT current_user || ' ' || coalesce((SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()), 'none');";

#[test]
fn roles_log_in_over_socket_and_tcp() {
    let cluster = PgCluster::start();
    let db = cluster.create_database("roles");
    assert_eq!(
        db.psql_super("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database();"),
        "pam_mfa_admin"
    );
    for role in [Role::Login, Role::Admin] {
        let who = |url: &str| {
            cluster
                .psql_as(role, url, WHO)
                .unwrap_or_else(|e| panic!("{url}: {e}\n{}", cluster.log_tail()))
        };
        // Over the socket there is no TLS; over TCP the certificate is checked.
        for url in [db.socket_url(role), db.socket_kv(role)] {
            assert_eq!(who(&url), format!("{} false", role.name()), "{url}");
        }
        let tcp = db.tcp_url(role);
        assert_eq!(who(&tcp), format!("{} true", role.name()), "{tcp}");
        let file = cluster.password_file(role);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().lines().next(),
            Some(cluster.password(role))
        );
        assert!(
            psql_with_password("not the password", &db.socket_url(role)).is_err(),
            "a wrong password is refused"
        );
        assert!(psql_with_password("not the password", &db.tcp_url(role)).is_err());
    }
    assert_ne!(cluster.password(Role::Login), cluster.password(Role::Admin));
}

#[test]
fn config_toml_is_a_postgres_config() {
    let cluster = PgCluster::start();
    let db = cluster.create_database("config");
    let cfg = Config::parse(&cluster.config_toml(&db, Role::Login)).unwrap();
    assert_eq!(cfg.backend, BackendKind::Postgres);
    let pg = cfg.postgres.unwrap();
    assert_eq!(pg.url, db.socket_url(Role::Login));
    assert_eq!(
        pg.password_file.as_deref(),
        Some(cluster.password_file(Role::Login).as_path())
    );
    assert_eq!(pg.key_file, db.key_file());
    assert!(
        db.dir().is_dir() && !db.key_file().exists(),
        "the key file is init's to make"
    );
}

#[test]
fn tls_verify_full_checks_the_name() {
    let cluster = PgCluster::start();
    let db = cluster.create_database("tls");
    let full = db.tls_url(Role::Login, "verify-full");
    assert_eq!(cluster.psql_as(Role::Login, &full, WHO).unwrap(), "pam_mfa_login true");

    cluster.restart_with_cert(ServerCert::WrongName);
    let err = cluster.psql_as(Role::Login, &full, WHO).unwrap_err();
    assert!(err.contains("does not match host name"), "{err}");
    // Same CA: the chain is fine, only the name is wrong.
    let ca = db.tls_url(Role::Login, "verify-ca");
    assert_eq!(cluster.psql_as(Role::Login, &ca, WHO).unwrap(), "pam_mfa_login true");

    cluster.restart_with_cert(ServerCert::Localhost);
    assert_eq!(cluster.psql_as(Role::Login, &full, WHO).unwrap(), "pam_mfa_login true");
}

#[test]
fn stop_and_start_again_keep_data_and_port() {
    let cluster = PgCluster::start();
    let db = cluster.create_database("restart");
    // As the admin role: the database's owner may create in it.
    cluster
        .psql_as(
            Role::Admin,
            &db.socket_url(Role::Admin),
            "CREATE TABLE t (x int); INSERT INTO t VALUES (42);",
        )
        .unwrap();
    let (port, pid) = (cluster.port(), cluster.postmaster_pid().unwrap());
    cluster.stop();
    assert_eq!(cluster.postmaster_pid(), None);
    assert!(db.psql_super_try("SELECT 1;").is_err(), "stopped");
    assert!(
        cluster
            .psql_as(Role::Admin, &db.tcp_url(Role::Admin), "SELECT 1;")
            .is_err()
    );
    cluster.start_again();
    assert_eq!(cluster.port(), port);
    assert_ne!(cluster.postmaster_pid(), Some(pid), "a new postmaster");
    assert_eq!(db.psql_super("SELECT x FROM t;"), "42");
    assert_eq!(
        cluster
            .psql_as(Role::Admin, &db.tcp_url(Role::Admin), "SELECT x FROM t;")
            .unwrap(),
        "42"
    );
}

#[test]
fn drop_removes_everything() {
    let cluster = PgCluster::start();
    let db = cluster.create_database("gone");
    let (root, pid, port) = (
        cluster.root().to_path_buf(),
        cluster.postmaster_pid().unwrap(),
        cluster.port(),
    );
    drop(db);
    drop(cluster);
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(!process_alive(pid), "postmaster {pid} still runs");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn shared_is_one_cluster() {
    let a = PgCluster::shared();
    assert!(std::ptr::eq(a, PgCluster::shared()));
    let db = a.create_database("shared");
    assert_eq!(db.psql_super("SELECT current_database();"), db.name());
}

/// A test process killed outright runs no destructor: the watchdog still
/// stops its cluster and removes its folder.
#[test]
fn killed_process_leaves_nothing() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_cluster",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (root, pid) = loop {
        let line = lines.next().expect("the child said where its cluster is").unwrap();
        // libtest writes "test NAME ... " on the same line first.
        if let Some((_, rest)) = line.split_once("CLUSTER ") {
            let (root, pid) = rest.rsplit_once(' ').unwrap();
            break (PathBuf::from(root), pid.parse::<u32>().unwrap());
        }
    };
    assert!(root.exists() && process_alive(pid));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (root.exists() || process_alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!process_alive(pid), "postmaster {pid} outlived the killed test process");
    assert!(!root.exists(), "{} outlived the killed test process", root.display());
}

const CHILD_ENV: &str = "PAM_MFA_PG_CHILD";

/// Not a test: the process `killed_process_leaves_nothing` kills.
#[test]
#[ignore = "run by killed_process_leaves_nothing"]
fn child_holds_a_cluster() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = PgCluster::shared();
    println!(
        "CLUSTER {} {}",
        cluster.root().display(),
        cluster.postmaster_pid().unwrap()
    );
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn psql_with_password(password: &str, url: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PGPASSWORD", password)
        .args(["-X", "-A", "-t", "-d", url, "-c", "SELECT 1;"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn process_alive(pid: u32) -> bool {
    // A zombie is not alive: its state in /proc is Z.
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        Ok(stat) => !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}
