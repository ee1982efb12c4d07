//! Regression tests for the findings of the outside security review
//! (docs/SECURITY.md, "Outside review"), each through the real libpam: a
//! fixed wrong code, a missing store or configuration, the layout-conversion race,
//! stack mistakes, two spellings of one mailbox, and hostile client
//! addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa_tests::*;
use std::path::PathBuf;
use std::time::Duration;

fn enrolled(extra_config: &str) -> (Env, String) {
    Env::quick(extra_config).with_alice()
}

fn failures(env: &Env, mailbox: &str) -> u32 {
    let admin = env.admin();
    admin.status(&admin.mailbox(mailbox).unwrap(), now()).unwrap().failures
}

/// Finding 1: one fixed wrong code (a guess at a later step's code) sent
/// again and again. Within a step it counts once (a client retrying a stale
/// code must not lock its owner out); in the next step it counts again, so
/// the guesser reaches the block instead of waiting for the step to come.
#[test]
fn a_fixed_wrong_code_counts_again_after_a_step_boundary() {
    let (env, secret) = enrolled("[lockout]\nafter = 2\nbackoff = \"1s\"\nmax_backoff = \"1s\"\nblock_after = 2\n");
    let t = fresh_step(8);
    // The code of five steps ahead: wrong now, right in two minutes.
    let guess = format!("{PW}{}", oathtool(&secret, t + 150));
    for _ in 0..3 {
        assert_eq!(env.login("mail", ALICE, &guess).auth, PAM_AUTH_ERR);
    }
    assert_eq!(failures(&env, ALICE), 1, "repeated within one step: counted once");
    // Into the next step.
    std::thread::sleep(Duration::from_secs(30 - now() % 30 + 1));
    assert_eq!(env.login("mail", ALICE, &guess).auth, PAM_AUTH_ERR);
    assert_eq!(failures(&env, ALICE), 2, "the same string in a later step counts again");
    let admin = env.admin();
    assert_eq!(
        admin.status(&admin.mailbox(ALICE).unwrap(), now()).unwrap().lock,
        "blocked"
    );
    // Blocked: even the right code is refused now.
    let right = format!("{PW}{}", oathtool(&secret, now()));
    assert_eq!(env.login("mail", ALICE, &right).auth, PAM_MAXTRIES);
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("counted=true") && logs.contains("counted=false"),
        "{logs}"
    );
}

/// Finding 2: a store that is not there (unmounted disk, typo in `store =`,
/// an empty mount point, the marker or a sub-folder gone) refuses every
/// login, enrolled or not, with a log line naming the path and the fix;
/// never "not enrolled, password alone".
#[test]
fn a_missing_store_refuses_logins() {
    let (env, secret) = enrolled("");
    env.set_password("bob@example.org", "bobpw");
    let marker = env.store.join(pam_mfa::store::MARKER);
    type Break = Box<dyn Fn(&Env)>;
    type Mend = Box<dyn Fn(&Env)>;
    // Mend undoes exactly what break did: the folder goes back where it was.
    let moved_aside = |folder: fn(&Env) -> PathBuf, aside: &'static str| -> (Break, Mend) {
        (
            Box::new(move |e: &Env| std::fs::rename(folder(e), e.dir.path().join(aside)).unwrap()),
            Box::new(move |e: &Env| std::fs::rename(e.dir.path().join(aside), folder(e)).unwrap()),
        )
    };
    let cases: Vec<(&str, (Break, Mend), String)> = vec![
        (
            "store folder gone",
            moved_aside(|e| e.store.clone(), "store-aside"),
            format!("the store folder {} is missing", env.store.display()),
        ),
        (
            "an empty folder in its place (unmounted share)",
            (
                Box::new(|e: &Env| {
                    std::fs::rename(&e.store, e.dir.path().join("store-aside")).unwrap();
                    std::fs::create_dir(&e.store).unwrap();
                    std::fs::set_permissions(&e.store, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
                }),
                Box::new(|e: &Env| {
                    std::fs::remove_dir(&e.store).unwrap();
                    std::fs::rename(e.dir.path().join("store-aside"), &e.store).unwrap();
                }),
            ),
            format!("the store marker {} is missing", marker.display()),
        ),
        (
            "marker gone",
            (
                Box::new(|e: &Env| std::fs::remove_file(e.store.join(pam_mfa::store::MARKER)).unwrap()),
                Box::new(|e: &Env| e.admin().store.init(ExistingFolder::Adopt).map(|_| ()).unwrap()),
            ),
            format!("the store marker {} is missing", marker.display()),
        ),
        (
            "mailboxes folder gone",
            moved_aside(|e| e.store.join("mailboxes"), "mb-aside"),
            format!(
                "the store's mailboxes folder {} is missing",
                env.store.join("mailboxes").display()
            ),
        ),
        (
            // A `required` policy must not fall back to the default one.
            "domains folder gone",
            moved_aside(|e| e.store.join("domains"), "dom-aside"),
            format!(
                "the store's domains folder {} is missing",
                env.store.join("domains").display()
            ),
        ),
    ];
    let t = fresh_step(3);
    let code = oathtool(&secret, t);
    for (what, (break_it, mend), path) in &cases {
        break_it(&env);
        for (user, typed) in [
            (ALICE, PW.to_string()),
            (ALICE, format!("{PW}{code}")),
            ("bob@example.org", "bobpw".to_string()),
        ] {
            let r = env.login("mail", user, &typed);
            assert_eq!(r.auth, PAM_AUTHINFO_UNAVAIL, "{what}: {user}: {r:?}");
        }
        let logs = env.logs().join("\n");
        assert!(
            logs.contains(path.as_str()) && logs.contains("mfa-ctl store init") && logs.contains("mount"),
            "{what}: {logs}"
        );
        assert!(!logs.contains("result=accepted"), "{what}: {logs}");
        // mfa-ctl refuses to read it as empty, and does not set a new store
        // up in a folder that exists without its marker.
        let out = env.mfa_ctl(&["status", ALICE]);
        assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
        let out = env.mfa_ctl(&["list"]);
        assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
        // Nor does `store init` (which the package runs on every upgrade)
        // make a folder that exists into an empty store: only --adopt does.
        if *what != "store folder gone" {
            let out = env.mfa_ctl(&["store", "init"]);
            assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("--adopt"),
                "{what}: {out:?}"
            );
            let r = env.login("mail", "bob@example.org", "bobpw");
            assert_eq!(r.auth, PAM_AUTHINFO_UNAVAIL, "{what}: after store init: {r:?}");
        }
        mend(&env);
    }
    assert!(env.login("mail", ALICE, &format!("{PW}{code}")).ok(), "mended");
}

/// Finding 2, the configuration: a `config=` naming a file that does not
/// exist (or a dangling symlink) refuses logins instead of using the
/// defaults (whose store is another one); `mfa-ctl --config` the same.
#[test]
fn a_missing_named_config_refuses_logins() {
    let env = Env::quick("");
    env.set_password("bob@example.org", "bobpw");
    assert!(env.login("mail", "bob@example.org", "bobpw").ok());
    let gone = env.dir.path().join("no-such.toml");
    let dangling = env.dir.path().join("dangling.toml");
    std::os::unix::fs::symlink(&gone, &dangling).unwrap();
    for path in [&gone, &dangling] {
        let stack = env
            .stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay", "")
            .replace(&env.config.display().to_string(), &path.display().to_string());
        let out = mfa_ctl_with(path, &["status", "bob@example.org"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("does not exist"),
            "{out:?}"
        );
        env.write_service("named", &stack);
        let r = env.login("named", "bob@example.org", "bobpw");
        assert_eq!(r.auth, PAM_SERVICE_ERR, "{path:?}: {r:?}");
        let logs = env.logs().join("\n");
        assert!(
            logs.contains(&path.display().to_string()) && logs.contains("does not exist"),
            "{logs}"
        );
    }
}

/// Finding 3: the layout conversion that raced logins is gone; what must
/// hold instead is that a mailbox whose file mfa-ctl rewrites and replaces
/// while logins run is never taken for "not enrolled".
#[test]
fn no_password_only_login_while_mfa_ctl_rewrites_the_mailbox() {
    let (env, _) = enrolled("");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (config, stop) = (env.config.clone(), stop.clone());
        std::thread::spawn(move || {
            let admin = pam_mfa::admin::Admin::open(Some(&config)).unwrap();
            let mb = admin.mailbox(ALICE).unwrap();
            let mut n = 0;
            // Adding app passwords grows the record until the file is
            // replaced by a larger one; revoking them all shrinks it again.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 400 {
                let label = format!("device {}", n % 40);
                if n % 80 < 40 {
                    admin.app_password_add(&mb, &label, &[], &[], None, now()).unwrap();
                } else {
                    admin.app_password_revoke(&mb, &label).unwrap();
                }
                n += 1;
            }
            n
        })
    };
    // A second writer that only replaces the file by a copy of itself, under
    // its exclusive lock as replace_locked does: many replacements, not two.
    let replacer = {
        let (file, stop) = (env.mailbox_file(ALICE), stop.clone());
        std::thread::spawn(move || {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let tmp = file.with_extension("race");
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let f = std::fs::OpenOptions::new().read(true).write(true).open(&file).unwrap();
                f.lock().unwrap();
                if std::fs::metadata(&file).unwrap().ino() != f.metadata().unwrap().ino() {
                    continue;
                }
                std::fs::write(&tmp, std::fs::read(&file).unwrap()).unwrap();
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(8));
            }
            n
        })
    };
    let mut accepted = 0;
    let mut other = Vec::new();
    for _ in 0..150 {
        let r = env.login("mail", ALICE, PW);
        match r.auth {
            PAM_SUCCESS => accepted += 1,
            PAM_AUTH_ERR => {}
            _ => other.push(r),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    let replaced = replacer.join().unwrap();
    assert!(writes > 0);
    assert!(replaced >= 50, "only {replaced} replacements");
    assert!(
        other.is_empty(),
        "refused for another reason than the missing code: {other:?}"
    );
    assert_eq!(accepted, 0, "password-only logins accepted during {writes} rewrites");
}

/// Finding 4: a stack without a verify line, or with verify as
/// `sufficient`, passes pam_authenticate with password + any six digits;
/// the account step catches it, refuses and says so in the log.
#[test]
fn account_refuses_when_no_verify_line_accepted_after_split() {
    let (env, secret) = enrolled("");
    let m = module_path();
    let m = m.display();
    let a = env.args();
    let pw = format!(
        "pam_pwdfile.so pwdfile={} use_first_pass nodelay",
        env.pwdfile.display()
    );
    let t = fresh_step(3);
    let wrong = format!("{PW}{}", wrong_code(&secret, t));
    env.write_service(
        "noverify",
        &format!("auth requisite {m} split {a}\nauth requisite {pw}\naccount required {m} {a}\n"),
    );
    let r = env.login("noverify", ALICE, &wrong);
    assert_eq!(r.auth, PAM_SUCCESS, "libpam lets it through: {r:?}");
    assert_eq!(r.acct, Some(PAM_PERM_DENIED), "{r:?}");
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("stack error: no verify line ran after split; see pam_mfa(8)"),
        "{logs}"
    );
    env.write_service(
        "sufficient",
        &format!(
            "auth requisite {m} split {a}\nauth requisite {pw}\nauth sufficient {m} verify {a}\naccount required {m} {a}\n"
        ),
    );
    let r = env.login("sufficient", ALICE, &wrong);
    assert_eq!(r.auth, PAM_SUCCESS, "libpam lets it through: {r:?}");
    assert_eq!(r.acct, Some(PAM_PERM_DENIED), "{r:?}");
    let logs = env.logs().join("\n");
    assert!(logs.contains("stack error: verify refused"), "{logs}");
    // The same stack with the right code: verify accepted, account agrees.
    let right = format!("{PW}{}", oathtool(&secret, t));
    assert!(env.login("sufficient", ALICE, &right).ok());
    // A mailbox that needs no code passes verify too: account agrees.
    env.set_password("bob@example.org", "bobpw");
    assert!(env.login("sufficient", "bob@example.org", "bobpw").ok());
    assert_eq!(
        env.login("noverify", "bob@example.org", "bobpw").acct,
        Some(PAM_PERM_DENIED),
        "no verify line: refused even when no code was needed"
    );
}

/// Finding 5: another account in the password module whose name differs
/// only in case (or is the bare name) has its own password, but pam_mfa maps
/// it to the same mailbox. The module hands the password module the
/// canonical name, so that password is checked against the real account:
/// the other account can neither log in nor drive the owner into the
/// lock-out. Non-ASCII names are refused, not folded.
#[test]
fn one_identity_for_both_factors() {
    let (env, secret) = enrolled("[lockout]\nafter = 3\nbackoff = \"1h\"\nmax_backoff = \"1h\"\nblock_after = 3\n");
    env.set_password("Alice@example.org", "mallory-pw");
    env.set_password("alice", "mallory-pw");
    env.set_password("\u{212a}im@example.org", "kelvin-pw");
    env.set_password("kim@example.org", "kim-pw");
    let t = fresh_step(8);
    for user in ["Alice@example.org", "ALICE@EXAMPLE.ORG", "alice"] {
        for i in 0..3u32 {
            let guess = format!(
                "{:06}",
                (wrong_code(&secret, t).parse::<u32>().unwrap() + i) % 1_000_000
            );
            let r = env.login("mail", user, &format!("mallory-pw{guess}"));
            assert_eq!(r.auth, PAM_AUTH_ERR, "{user}: {r:?}");
        }
        assert_eq!(failures(&env, ALICE), 0, "{user}: a failure counted for the real alice");
    }
    let logs = env.logs().join("\n");
    assert!(!logs.contains("verify:"), "verify never ran: {logs}");
    assert!(env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t))).ok());
    // The owner's own password under another spelling is the owner.
    assert!(
        env.login(
            "mail",
            "ALICE@Example.org",
            &format!("{PW}{}", oathtool(&secret, t + 30))
        )
        .ok()
    );
    // The Kelvin sign is not folded to k.
    let r = env.login("mail", "\u{212a}im@example.org", "kelvin-pw");
    assert_eq!(r.auth, PAM_USER_UNKNOWN, "{r:?}");
    let logs = env.logs().join("\n");
    assert!(logs.contains("non-ASCII"), "{logs}");
    assert!(env.login("mail", "kim@example.org", "kim-pw").ok());
}

/// Finding 6: a huge PAM_RHOST full of escape sequences is cut (and marked)
/// before it is stored or logged, so the mailbox file stays small and
/// readable, and no control character reaches a log line or mfa-ctl's
/// output.
#[test]
fn hostile_client_addresses_are_bounded_and_escaped() {
    let (env, secret) = enrolled("[state]\nkeep_logins = 20\n");
    let escapes = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m";
    // 300 KB: libpam's own audit record of the attempt may fail on it
    // (PAM_SYSTEM_ERR), but pam_mfa has stored and logged it by then.
    let huge = format!("{escapes}{}", "x".repeat(300_000));
    let hostile = format!("{escapes}{}", "x".repeat(3_000));
    let t = fresh_step(5);
    let wrong = format!("{PW}{}", wrong_code(&secret, t));
    for rhost in [&huge, &hostile] {
        for _ in 0..5 {
            let r = env.login_raw("mail", ALICE.as_bytes(), wrong.as_bytes(), Some(rhost));
            assert_ne!(r.auth, PAM_SUCCESS);
        }
    }
    let r = env.login_raw(
        "mail",
        ALICE.as_bytes(),
        format!("{PW}{}", oathtool(&secret, t)).as_bytes(),
        Some(&hostile),
    );
    assert!(r.ok(), "the mailbox still reads: {r:?} {:?}", env.logs());
    let size = std::fs::metadata(env.mailbox_file(ALICE)).unwrap().len();
    assert!(size <= 16 * 1024, "mailbox file grew to {size} bytes");
    let admin = env.admin();
    let logins = admin.logins(&admin.mailbox(ALICE).unwrap(), 10).unwrap();
    for l in &logins {
        let start: String = l.rhost.chars().take(40).collect();
        assert!(l.rhost.len() <= 255 && l.rhost.ends_with("(cut)"), "{start:?}");
        assert!(!l.rhost.chars().any(char::is_control), "{start:?}");
    }
    for line in env.logs() {
        assert!(line.len() < 2048, "log line of {} bytes", line.len());
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    for args in [
        vec!["logins", ALICE],
        vec!["status", ALICE],
        vec!["--json", "logins", ALICE],
    ] {
        let out = env.mfa_ctl(&args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {text:?}");
    }
}

/// Found in the attack after the fixes above: guesses at a recovery code
/// matched no code, so `split` handed the whole string on as the password,
/// and they failed as wrong passwords, never counted. Typed in the form
/// codes are shown in, a guess is now a factor that `verify` counts.
#[test]
fn recovery_code_guesses_are_counted() {
    let (env, _) = enrolled("");
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    let codes = admin.recovery_codes(&mb, now()).unwrap();
    for guess in ["aaaa-aaaa-aa9a", "ABCD-EFGH-JKMN", "zzzz-zzzz-zzzz"] {
        let r = env.login("mail", ALICE, &format!("{PW}{guess}"));
        assert_eq!(r.auth, PAM_AUTH_ERR, "{guess}: {r:?}");
    }
    assert_eq!(failures(&env, ALICE), 3);
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("reason=\"wrong code\"").count(), 3, "{logs}");
    // A real one still logs in (and clears the counter).
    assert!(env.login("mail", ALICE, &format!("{PW}{}", codes[0].as_str())).ok());
    assert_eq!(failures(&env, ALICE), 0);
}

/// Found in the attack: a FIFO named as the configuration blocked the
/// login (and the auth worker) in its read; it is refused at once.
#[test]
fn a_fifo_as_the_configuration_is_refused_not_waited_on() {
    let env = Env::quick("");
    env.set_password("bob@example.org", "bobpw");
    let fifo = env.dir.path().join("fifo.toml");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let stack = env
        .stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay", "")
        .replace(&env.config.display().to_string(), &fifo.display().to_string());
    env.write_service("fifo", &stack);
    let (tx, rx) = std::sync::mpsc::channel();
    let confdir = env.confdir.clone();
    std::thread::spawn(move || {
        let _ = tx.send(pam::login(&confdir, "fifo", b"bob@example.org", b"bobpw", None));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the login hung on the FIFO");
    assert_eq!(r.auth, PAM_SERVICE_ERR, "{r:?}");
    assert!(env.logs().join("\n").contains("not a regular file"));
}

/// Found in the attack: the lines of one stack naming different
/// configuration files made `verify` read another store than `split` did
/// and blame the mailbox file; the login is refused with the real reason.
#[test]
fn lines_with_different_configurations_are_refused() {
    let (env, secret) = enrolled("");
    let other = env.dir.path().join("other.toml");
    std::fs::copy(&env.config, &other).unwrap();
    let stack = env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay", "");
    let verify_line = stack.lines().find(|l| l.contains(" verify ")).unwrap();
    let stack = stack.replace(
        verify_line,
        &verify_line.replace(&env.config.display().to_string(), &other.display().to_string()),
    );
    env.write_service("mixed", &stack);
    let t = fresh_step(3);
    let r = env.login("mixed", ALICE, &format!("{PW}{}", oathtool(&secret, t)));
    assert_eq!(r.auth, PAM_SERVICE_ERR, "{r:?}");
    let logs = env.logs().join("\n");
    assert!(logs.contains("name different configuration files"), "{logs}");
}

/// Found in the attack: a client address with spaces could add fields of
/// its own to the `key=value` log line (`rhost=10.0.0.1 result=accepted`).
#[test]
fn a_client_address_cannot_add_log_fields() {
    let env = Env::quick("");
    env.set_password("bob@example.org", "bobpw");
    let r = env.login_raw(
        "mail",
        b"bob@example.org",
        b"wrong",
        Some("10.0.0.1 result=accepted method=code"),
    );
    assert_eq!(r.auth, PAM_AUTH_ERR);
    let r = env.login_raw("mail", b"bob@example.org", b"bobpw", Some("10.0.0.1 result=refused"));
    assert!(r.ok());
    let logs = env.logs().join("\n");
    assert!(logs.contains("rhost=10.0.0.1\\x20result=refused "), "{logs}");
    assert_eq!(logs.matches(" result=").count(), 1, "one field, not two: {logs}");
}
