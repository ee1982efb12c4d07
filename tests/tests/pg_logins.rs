//! Logins on PostgreSQL through the real libpam, whatever the run's backend
//! (`PAM_MFA_TEST_BACKEND`): these tests are about the database itself.
//! Inside a PAM host no thread outlives a login, even one that reconnected
//! after a restart; a database that is down refuses every login with
//! PAM_AUTHINFO_UNAVAIL (never the password alone), explains itself once a
//! minute, and works again once it is back; `mfa-ctl store copy` moves a
//! mailbox from files into the database and back with everything a login
//! needs; a row copied onto another mailbox fails closed. Codes come from
//! oathtool.
//!
//! Two tests run in a process of their own (the test binary again, filtered
//! to an ignored "child" test): counting threads needs a quiet process, and
//! the module explains an unavailable store at most once a minute per
//! process, which another test's refusals in the same process would use up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa_tests::pg::{PgCluster, Role};
use pam_mfa_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The other mailbox of these tests.
const BOB: &str = "bob@example.org";

/// The password module without its own failure delay: these tests make
/// many refused logins.
const PWDFILE_LINE: &str = "pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay";

fn quick(env: &Env) {
    env.write_service("mail", &env.stack(PWDFILE_LINE, ""));
}

/// Runs mfa-ctl with `config`, which must succeed; its stdout.
fn ctl(config: &Path, args: &[&str]) -> String {
    let out = mfa_ctl_with(config, args);
    assert!(
        out.status.success(),
        "mfa-ctl {args:?} exited {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The string value of `"key":"..."` in mfa-ctl's one-line JSON.
fn json_str(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":\"");
    let start = json.find(&pat).unwrap_or_else(|| panic!("no {key} in {json}")) + pat.len();
    json[start..].split('"').next().unwrap().to_string()
}

/// The number of `"key":N`.
fn json_num(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let start = json.find(&pat).unwrap_or_else(|| panic!("no {key} in {json}")) + pat.len();
    let digits: String = json[start..].chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// The strings of `"key":["a","b"]`.
fn json_strs(json: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\":[");
    let start = json.find(&pat).unwrap_or_else(|| panic!("no {key} in {json}")) + pat.len();
    let inner = json[start..].split(']').next().unwrap();
    inner
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// An app password for `mailbox`, made with mfa-ctl.
fn add_app_password(config: &Path, mailbox: &str, label: &str) -> String {
    json_str(
        &ctl(config, &["--json", "app-password", "add", mailbox, "--label", label]),
        "password",
    )
}

/// Everything the env's store holds, as text (for "nothing changed").
fn snapshot(env: &Env) -> String {
    env.snapshot()
        .iter()
        .map(|(p, b)| format!("{}: {}\n", p.display(), String::from_utf8_lossy(b)))
        .collect()
}

fn lines_with<'a>(logs: &'a [String], what: &str) -> Vec<&'a String> {
    logs.iter().filter(|l| l.contains(what)).collect()
}

// ---- Tests in a process of their own ----

const CHILD_ENV: &str = "PAM_MFA_PG_LOGINS_CHILD";

/// Runs the ignored test `name` in a new process of this test binary, alone
/// (one test thread); it must print "CHILD name OK".
fn run_child(name: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, name)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(&format!("CHILD {name} OK")),
        "child {name}:\n{text}"
    );
}

/// Whether this process is the child run for `name` (not a normal run,
/// nor `cargo test -- --ignored`).
fn in_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

/// The process's threads (tid and name), sorted.
fn tasks() -> Vec<String> {
    let mut all: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            format!("{} {}", e.file_name().to_string_lossy(), comm.trim())
        })
        .collect();
    all.sort();
    all
}

/// No thread the module starts outlives the login that started it: the
/// very same threads before and after every one of ~50 logins of every
/// kind, over the socket and over TLS to a host name (resolved by the
/// module), after the server ended the sessions, while it is down, and
/// after it came back (a reconnect).
#[test]
fn no_thread_outlives_a_login() {
    run_child("child_threads");
}

#[test]
#[ignore = "run by no_thread_outlives_a_login in a process of its own"]
fn child_threads() {
    if !in_child("child_threads") {
        return;
    }
    // In this process the "shared" cluster is this child's alone: it may be
    // stopped without disturbing other tests.
    let env = Env::postgres("");
    quick(&env);
    let db = env.db.as_ref().unwrap();
    let cluster = db.cluster();
    // A second configuration and service: TLS (verify-full) to `localhost`,
    // so the module resolves a host name and runs a TLS handshake.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let socket_url = format!("url = {:?}", db.socket_url(Role::Login));
    assert!(text.contains(&socket_url), "{text}");
    let tls_text = text.replace(
        &socket_url,
        &format!("url = {:?}", db.tls_url(Role::Login, "verify-full")),
    );
    let tls_config = env.dir.path().join("tls.toml");
    std::fs::write(&tls_config, tls_text).unwrap();
    std::fs::set_permissions(&tls_config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tls_args = format!(
        "config={} log_socket={} nodelay",
        tls_config.display(),
        env.log_socket.display()
    );
    let pw_line = PWDFILE_LINE.replace("PWDFILE", &env.pwdfile.display().to_string());
    env.write_service("mail_tls", &recommended_stack(&module_path(), &tls_args, &pw_line, ""));

    let users: Vec<(String, String, String)> = (0..8)
        .map(|i| {
            let user = format!("user{i}@example.org");
            env.set_password(&user, PW);
            let secret = env.enroll(&user);
            let app = add_app_password(&env.config, &user, "phone");
            (user, secret, app)
        })
        .collect();
    env.set_password("plain@example.org", PW);

    // Warm-up done (harness, log thread, store, cluster): count from here,
    // before the first login.
    let before = tasks();
    let mut count = 0;
    let mut check = |what: &str, r: LoginResult, expect: (i32, Option<i32>)| {
        assert_eq!((r.auth, r.acct), expect, "{what}");
        let now = tasks();
        assert_eq!(now, before, "threads after {what} (before: {before:?})");
        count += 1;
    };
    let ok = (PAM_SUCCESS, Some(PAM_SUCCESS));
    let refused = (PAM_AUTH_ERR, None);
    let unavailable = (PAM_AUTHINFO_UNAVAIL, None);
    for (i, (user, secret, app)) in users.iter().enumerate() {
        let service = if i % 2 == 0 { "mail" } else { "mail_tls" };
        if i == 3 {
            // The server ends every session: the pooled connection is dead
            // and the next login opens another.
            db.psql_super(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid();",
            );
        }
        if i == 5 {
            cluster.stop();
            let typed = format!("{PW}{}", oathtool(secret, now()));
            check(
                "a login while the database is down",
                env.login("mail", user, &typed),
                unavailable,
            );
            check(
                "a TLS login while it is down",
                env.login("mail_tls", user, &typed),
                unavailable,
            );
            check(
                "an app password while it is down",
                env.login(service, user, app),
                unavailable,
            );
            cluster.start_again();
        }
        let t = now();
        let what = |kind: &str| format!("{kind} of {user} on {service}");
        check(
            &what("a wrong code"),
            env.login(service, user, &format!("{PW}{}", wrong_code(secret, t))),
            refused,
        );
        let typed = format!("{PW}{}", oathtool(secret, t));
        check(&what("an accepted code"), env.login(service, user, &typed), ok);
        check(&what("a replay"), env.login(service, user, &typed), refused);
        check(&what("an app password"), env.login(service, user, app), ok);
        check(
            &what("an unknown mailbox"),
            env.login(service, &format!("nobody{i}@example.org"), PW),
            (PAM_USER_UNKNOWN, None),
        );
        check(
            &what("a mailbox without MFA"),
            env.login(service, "plain@example.org", PW),
            ok,
        );
    }
    assert!(count >= 50, "{count} logins");
    // One connection per configuration, kept for the next login: this
    // process holds one session over the socket and one over TLS.
    assert_eq!(
        db.psql_super(
            "SELECT coalesce(s.ssl, false), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = current_database() AND a.usename = 'pam_mfa_login' GROUP BY 1 ORDER BY 1;"
        ),
        "f|1\nt|1",
        "the module's pooled sessions"
    );
    let logs = env.logs().join("\n");
    assert_eq!(
        logs.matches("result=accepted method=code").count(),
        users.len(),
        "{logs}"
    );
    println!("CHILD child_threads OK ({count} logins, {} threads)", before.len());
}

/// The database stopped: a valid, unused code is refused with
/// PAM_AUTHINFO_UNAVAIL, and so are the password alone, an app password
/// and a mailbox without MFA (whether it has MFA cannot be known). The log
/// explains once what to do, and the refusals after it (within the minute)
/// only point at that line. Started again, the same code logs in, in the
/// same process: nothing restarted.
#[test]
fn database_down_then_back() {
    run_child("child_database_down");
}

#[test]
#[ignore = "run by database_down_then_back in a process of its own"]
fn child_database_down() {
    if !in_child("child_database_down") {
        return;
    }
    // A cluster of this test's own: it stops it.
    let cluster = PgCluster::start();
    let db = cluster.create_database("down");
    // An env whose configuration is made to name `db`, with short timeouts.
    let env = Env::files("");
    let section = postgres_section(&db);
    let timeouts = section.replace(
        "connect_timeout = \"15s\"",
        "connect_timeout = \"1s\"\nstatement_timeout = \"1s\"",
    );
    assert_ne!(section, timeouts, "{section}");
    let files_text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("backend = \"postgres\"\n{files_text}{timeouts}")).unwrap();
    env.admin().store.init(ExistingFolder::Refuse).unwrap();
    db.psql_super(&std::fs::read_to_string(workspace().join("packaging/examples/postgres/roles.sql")).unwrap());
    quick(&env);
    let (env, secret) = env.with_alice();
    assert!(
        env.admin().store.describe().contains(db.name()),
        "the env is on {}",
        db.name()
    );
    let app = add_app_password(&env.config, ALICE, "phone");
    let bob = BOB;
    env.set_password(bob, PW);

    let t = fresh_step(25);
    assert!(env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t))).ok());
    let logs = env.logs();
    assert_eq!(lines_with(&logs, "result=accepted method=code").len(), 1, "{logs:#?}");

    cluster.stop();
    // Unused: the next step's code, within the window.
    let code = oathtool(&secret, t + 30);
    let typed = format!("{PW}{code}");
    let started = std::time::Instant::now();
    let attempts = [
        ("password+code", ALICE, typed.as_str()),
        ("the same again", ALICE, typed.as_str()),
        ("the password alone", ALICE, PW),
        ("an app password", ALICE, app.as_str()),
        ("a mailbox without MFA", bob, PW),
    ];
    for (what, user, typed) in attempts {
        let r = env.login("mail", user, typed);
        assert_eq!(r.auth, PAM_AUTHINFO_UNAVAIL, "{what} while the database is down");
        assert_eq!(r.acct, None, "{what}");
    }
    let logs = env.logs();
    assert!(lines_with(&logs, "result=accepted").is_empty(), "{logs:#?}");
    let explained = lines_with(&logs, "reason=\"store error\"");
    let pointers = lines_with(&logs, "reason=\"store unavailable\"");
    // One line per refusing role (the app password's line and split's).
    assert_eq!(explained.len() + pointers.len(), attempts.len() + 1, "{logs:#?}");
    // Exactly once "within the same minute": only checkable if it was one.
    if started.elapsed() < std::time::Duration::from_secs(50) {
        assert_eq!(explained.len(), 1, "explained once: {logs:#?}");
    }
    let first = explained.first().expect("the explanation");
    assert!(logs.first() == Some(first), "the first refusal explains: {logs:#?}");
    assert!(first.contains("cannot use the database"), "{first}");
    assert!(
        first.contains("check that PostgreSQL runs there") && first.contains("logins are refused until it answers"),
        "what to do: {first}"
    );
    for p in &pointers {
        assert!(p.contains("see the last \"store error\" line"), "{p}");
        assert!(!p.contains("check that PostgreSQL"), "not repeated: {p}");
    }

    cluster.start_again();
    let r = env.login("mail", ALICE, &typed);
    assert!(r.ok(), "the same unused code once the database is back: {r:?}");
    assert_eq!(env.login("mail", ALICE, &typed).auth, PAM_AUTH_ERR, "and only once");
    assert!(env.login("mail", ALICE, &app).ok());
    assert!(env.login("mail", bob, PW).ok());
    let logs = env.logs();
    assert!(
        lines_with(&logs, "store error").is_empty() && lines_with(&logs, "store unavailable").is_empty(),
        "{logs:#?}"
    );
    assert_eq!(lines_with(&logs, "result=accepted method=code").len(), 1, "{logs:#?}");
    println!("CHILD child_database_down OK");
}

// ---- Tests in this process ----

/// files → PostgreSQL → files with `mfa-ctl store copy`: a dry run changes
/// nothing; the copy brings secrets, state (the used step, used recovery
/// codes), app passwords and the login history; a second copy copies
/// nothing; a mailbox the target holds with other content is left alone
/// and listed unless --replace; copied back into an empty file store, the
/// mailbox has the same status. A source that cannot be reached fails the
/// copy (exit 2, a message) and changes nothing.
#[test]
fn store_copy_files_to_postgres_and_back() {
    let files = Env::files("");
    quick(&files);
    let (files, secret) = files.with_alice();
    let bob = BOB;
    files.set_password(bob, PW);
    files.enroll(bob);
    ctl(
        &files.config,
        &["domain", "set", "example.org", "required", "--grace", "7d"],
    );
    let app = add_app_password(&files.config, ALICE, "phone");
    let recovery = json_strs(&ctl(&files.config, &["--json", "recovery-codes", ALICE]), "codes");
    assert_eq!(recovery.len(), 10, "{recovery:?}");
    let t = fresh_step(25);
    let wrong = format!("{PW}{}", wrong_code(&secret, t));
    assert_eq!(files.login("mail", ALICE, &wrong).auth, PAM_AUTH_ERR);
    let used_code = format!("{PW}{}", oathtool(&secret, t));
    assert!(files.login("mail", ALICE, &used_code).ok());
    assert!(files.login("mail", ALICE, &app).ok());
    let used_recovery = format!("{PW}{}", recovery[0]);
    assert!(files.login("mail", ALICE, &used_recovery).ok());
    let files_logins = ctl(&files.config, &["--json", "logins", ALICE]);
    assert_eq!(files_logins.matches("\"at\":").count(), 4, "{files_logins}");

    let pg = Env::postgres("");
    quick(&pg);
    pg.set_password(ALICE, PW);
    pg.set_password(bob, PW);
    let from = files.config.to_str().unwrap();
    let copy = |extra: &[&str]| {
        let mut args = vec!["--json", "store", "copy", "--from", from];
        args.extend_from_slice(extra);
        let out = mfa_ctl_with(&pg.config, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "store copy {extra:?}: {stderr}");
        assert!(stderr.is_empty(), "no progress bar in JSON or off a terminal: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };

    let empty = snapshot(&pg);
    let dry = copy(&["--dry-run"]);
    assert_eq!(snapshot(&pg), empty, "a dry run changes nothing: {dry}");
    assert!(dry.contains("\"dry_run\":true"), "{dry}");
    assert_eq!(
        (json_num(&dry, "domains_copied"), json_num(&dry, "mailboxes_copied")),
        (1, 2),
        "{dry}"
    );
    assert_eq!(
        ctl(&pg.config, &["--json", "domain", "list"])
            .matches("example.org")
            .count(),
        0
    );

    let first = copy(&[]);
    assert!(first.contains("\"dry_run\":false"), "{first}");
    assert_eq!(
        (
            json_num(&first, "domains_copied"),
            json_num(&first, "mailboxes_copied"),
            json_num(&first, "mailboxes_unchanged")
        ),
        (1, 2, 0),
        "{first}"
    );
    assert!(json_strs(&first, "mailboxes_differing").is_empty(), "{first}");
    assert!(
        json_str(&first, "from").contains(files.store.to_str().unwrap()),
        "{first}"
    );
    let pg_db = pg.db.as_ref().unwrap();
    assert!(json_str(&first, "to").contains(pg_db.name()), "{first}");
    let copied = snapshot(&pg);
    assert_ne!(copied, empty);

    let second = copy(&[]);
    assert_eq!(
        (
            json_num(&second, "domains_copied"),
            json_num(&second, "domains_unchanged"),
            json_num(&second, "mailboxes_copied"),
            json_num(&second, "mailboxes_unchanged")
        ),
        (0, 1, 0, 2),
        "idempotent: {second}"
    );
    assert!(json_strs(&second, "mailboxes_differing").is_empty(), "{second}");
    assert_eq!(snapshot(&pg), copied, "the second copy wrote nothing");
    for args in [
        ["--json", "logins", ALICE],
        ["--json", "status", ALICE],
        ["--json", "status", bob],
    ] {
        assert_eq!(ctl(&pg.config, &args), ctl(&files.config, &args), "{args:?}");
    }
    assert_eq!(
        ctl(&pg.config, &["--json", "app-password", "list", ALICE]),
        ctl(&files.config, &["--json", "app-password", "list", ALICE])
    );
    assert_eq!(
        ctl(&pg.config, &["--json", "domain", "show", "example.org"]),
        ctl(&files.config, &["--json", "domain", "show", "example.org"])
    );

    // bob changed in the target: left alone and listed...
    add_app_password(&pg.config, bob, "laptop");
    let changed = snapshot(&pg);
    let kept = copy(&[]);
    assert_eq!(json_strs(&kept, "mailboxes_differing"), [bob], "{kept}");
    assert_eq!(
        (
            json_num(&kept, "mailboxes_copied"),
            json_num(&kept, "mailboxes_unchanged")
        ),
        (0, 1),
        "{kept}"
    );
    assert_eq!(snapshot(&pg), changed, "bob left alone");
    let human = ctl(&pg.config, &["store", "copy", "--from", from]);
    assert!(human.contains(bob) && human.contains("--replace"), "{human}");
    // ...unless --replace.
    let replaced = copy(&["--replace"]);
    assert_eq!(
        (
            json_num(&replaced, "mailboxes_copied"),
            json_num(&replaced, "mailboxes_unchanged")
        ),
        (1, 1),
        "{replaced}"
    );
    assert!(json_strs(&replaced, "mailboxes_differing").is_empty(), "{replaced}");
    // Written again (sealed afresh), with the source's content.
    let same: [&[&str]; 2] = [&["--json", "status", bob], &["--json", "app-password", "list", bob]];
    for args in same {
        assert_eq!(ctl(&pg.config, args), ctl(&files.config, args), "{args:?}");
    }
    assert_eq!(json_num(&copy(&[]), "mailboxes_copied"), 0);

    // alice on PostgreSQL: what she used on files stays used.
    assert_eq!(
        pg.login("mail", ALICE, &used_code).auth,
        PAM_AUTH_ERR,
        "replay across the copy"
    );
    assert_eq!(
        pg.login("mail", ALICE, &used_recovery).auth,
        PAM_AUTH_ERR,
        "used recovery code"
    );
    let r = pg.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t + 30)));
    assert!(r.ok(), "a fresh code on PostgreSQL: {r:?}");
    assert!(pg.login("mail", ALICE, &app).ok(), "the app password");
    assert!(
        pg.login("mail", ALICE, &format!("{PW}{}", recovery[1])).ok(),
        "a recovery code"
    );
    let pg_logins = ctl(&pg.config, &["--json", "logins", ALICE, "--limit", "100"]);
    assert_eq!(pg_logins.matches("\"at\":").count(), 9, "{pg_logins}");
    // Newest first: the copied history follows the five logins made here.
    let old_entries = files_logins
        .split_once("\"logins\":[")
        .unwrap()
        .1
        .split_once(']')
        .unwrap()
        .0;
    assert!(pg_logins.contains(old_entries), "{pg_logins}\nhas not\n{old_entries}");
    let status = ctl(&pg.config, &["--json", "status", ALICE]);
    assert_eq!(json_num(&status, "recovery_codes_left"), 8, "{status}");

    // And back into an empty file store.
    let back = Env::files("");
    let home = ctl(
        &back.config,
        &["--json", "store", "copy", "--from", pg.config.to_str().unwrap()],
    );
    assert_eq!(
        (json_num(&home, "domains_copied"), json_num(&home, "mailboxes_copied")),
        (1, 2),
        "{home}"
    );
    let same: [&[&str]; 4] = [
        &["--json", "status", ALICE],
        &["--json", "status", bob],
        &["--json", "logins", ALICE],
        &["--json", "app-password", "list", ALICE],
    ];
    for args in same {
        assert_eq!(ctl(&back.config, args), ctl(&pg.config, args), "{args:?}");
    }
    // The seed came back too: the secret is the one alice enrolled with.
    let (json, _) = back.mailbox_json(ALICE);
    assert!(json.contains(&secret), "alice's seed in the file store");

    // A source that cannot be reached: exit 2, a message, nothing changed.
    let before = snapshot(&pg);
    let dead = pg_db.dir().join("unreachable.toml");
    std::fs::write(
        &dead,
        format!(
            "backend = \"postgres\"\n[postgres]\nurl = \"postgresql://pam_mfa_admin@127.0.0.1:{}/nowhere?sslmode=verify-full&sslrootcert={}\"\n\
             password_file = {:?}\nkey_file = {:?}\nconnect_timeout = \"1s\"\nstatement_timeout = \"1s\"\n",
            pam_mfa_tests::pg::free_port(),
            pg_db.ca_param(),
            pg_db.cluster().password_file(Role::Admin),
            pg_db.key_file(),
        ),
    )
    .unwrap();
    let out = mfa_ctl_with(&pg.config, &["store", "copy", "--from", dead.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot use the database") && stderr.contains("127.0.0.1"),
        "says which database it could not reach: {stderr}"
    );
    assert_eq!(snapshot(&pg), before, "the target is unchanged");
}

/// A postgres env with alice (enrolled, an app password) and bob (enrolled)
/// where bob's sealed record was then replaced, as the superuser, by
/// alice's. Returns (env, alice's secret, bob's secret, alice's app password).
fn row_copied_to_bob() -> (Env, String, String, String) {
    let env = Env::postgres("");
    quick(&env);
    let (env, alice_secret) = env.with_alice();
    env.set_password(BOB, PW);
    let bob_secret = env.enroll(BOB);
    let app = add_app_password(&env.config, ALICE, "phone");
    env.db.as_ref().unwrap().psql_super(
        "UPDATE pam_mfa_mailboxes SET record = (SELECT record FROM pam_mfa_mailboxes \
         WHERE mailbox = 'alice@example.org') WHERE mailbox = 'bob@example.org';",
    );
    (env, alice_secret, bob_secret, app)
}

/// alice's sealed row copied onto bob's (SQL as the superuser): bob's
/// logins fail closed with PAM_AUTHINFO_UNAVAIL whatever he types (his own
/// code, alice's code, alice's app password, the password alone), the log
/// says what happened and what to do, and alice's code is still hers.
#[test]
fn row_copied_to_another_mailbox_fails_closed() {
    let (env, alice_secret, bob_secret, app) = row_copied_to_bob();
    let t = fresh_step(10);
    let alice_code = format!("{PW}{}", oathtool(&alice_secret, t));
    for (what, typed) in [
        ("alice's code", alice_code.clone()),
        ("bob's own code", format!("{PW}{}", oathtool(&bob_secret, t))),
        ("alice's app password", app.clone()),
        ("the password alone", PW.to_string()),
    ] {
        let r = env.login("mail", BOB, &typed);
        assert_eq!(r.auth, PAM_AUTHINFO_UNAVAIL, "bob with {what}");
        assert_eq!(r.acct, None, "bob with {what}");
    }
    let logs = env.logs();
    assert!(lines_with(&logs, "result=accepted").is_empty(), "{logs:#?}");
    let errors = lines_with(&logs, "mailbox=bob@example.org");
    assert!(!errors.is_empty(), "{logs:#?}");
    for line in &errors {
        assert!(line.contains("reason=\"store error\""), "{line}");
        assert!(line.contains("reading mailbox bob@example.org's secrets"), "{line}");
        assert!(
            line.contains("copied from another mailbox") && line.contains("mfa-ctl disable MAILBOX --force"),
            "names the fix: {line}"
        );
        assert!(!line.contains(&alice_secret) && !line.contains(&app), "{line}");
    }
    // Not a database outage: explained every time, never "store unavailable".
    assert!(lines_with(&logs, "store unavailable").is_empty(), "{logs:#?}");

    // alice's code was not used up by bob's tries.
    assert!(env.login("mail", ALICE, &alice_code).ok());
}

/// A row that cannot be read (here copied from another mailbox) can be
/// forgotten as its log line says, `mfa-ctl disable MAILBOX --force`, and
/// the mailbox enrolled again; nothing of the unreadable row is kept.
#[test]
fn an_unreadable_row_is_forgotten_by_disable_force() {
    let (env, _, _, _) = row_copied_to_bob();
    assert_eq!(env.login("mail", BOB, PW).auth, PAM_AUTHINFO_UNAVAIL);
    let logs = env.logs().join("\n");
    assert!(logs.contains("mfa-ctl disable MAILBOX --force"), "{logs}");
    // Without --force nothing is forgotten.
    assert_eq!(env.mfa_ctl(&["disable", BOB]).status.code(), Some(2));
    assert_eq!(env.login("mail", BOB, PW).auth, PAM_AUTHINFO_UNAVAIL);
    // What the message says to do: forget bob's row, enrol him again.
    ctl(&env.config, &["disable", BOB, "--force"]);
    assert!(env.login("mail", BOB, PW).ok(), "bob without MFA");
    let bob_secret = env.enroll(BOB);
    assert!(
        env.login("mail", BOB, &format!("{PW}{}", oathtool(&bob_secret, now())))
            .ok()
    );
}
