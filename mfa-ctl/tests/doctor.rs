//! `mfa-ctl doctor` and `mfa-ctl store init` against a temp store and the
//! PAM service files under tests/doctor/: the shipped examples must pass,
//! and each way of getting a stack, the store or the configuration wrong
//! must be named with the right file and line and the documented exit status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("doctor")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn example(name: &str) -> String {
    workspace()
        .join("packaging/examples/pam.d")
        .join(name)
        .display()
        .to_string()
}

/// `mfa-ctl doctor ARGS` with includes looked up among the fixtures and no
/// Dovecot check (this machine's own doveconf is not under test).
fn doctor(env: &Env, args: &[&str]) -> Out {
    doctor_with(env, "", args)
}

/// [`doctor`] with `doveconf` as the doveconf program.
fn doctor_with(env: &Env, doveconf: &str, args: &[&str]) -> Out {
    let dir = fixtures().display().to_string();
    let mut all = vec!["doctor", "--pam-dir", &dir];
    all.extend_from_slice(args);
    ctl_with_env(env, &[("PAM_MFA_DOVECONF", doveconf)], &all)
}

fn errors(out: &Out) -> Vec<&str> {
    out.stdout.lines().filter(|l| l.starts_with("ERROR ")).collect()
}

#[track_caller]
fn has_line(out: &Out, start: &str, piece: &str) {
    assert!(
        out.stdout.lines().any(|l| l.starts_with(start) && l.contains(piece)),
        "no line starting {start:?} containing {piece:?} in:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn shipped_examples_pass() {
    let env = Env::new();
    for name in ["imap", "pop3", "smtp", "dovecot"] {
        let out = doctor(&env, &["--pam-file", &example(name)]).expect(0);
        assert_eq!(errors(&out), Vec::<&str>::new(), "{name}:\n{}", out.stdout);
        assert!(
            out.stdout.lines().last().unwrap().starts_with("doctor: "),
            "{}",
            out.stdout
        );
    }
    let (imap, pop3, smtp) = (example("imap"), example("pop3"), example("smtp"));
    let all = doctor(&env, &["--pam-file", &imap, "--pam-file", &pop3, "--pam-file", &smtp]).expect(0);
    for f in [&imap, &pop3, &smtp] {
        assert!(
            all.stdout.contains(f.as_str()),
            "{f} not listed as checked:\n{}",
            all.stdout
        );
    }
}

/// The stack the test harness logs in through (absolute path to the built
/// libpam_mfa.so, config= and log_socket= arguments), found by the scan.
#[test]
fn harness_stack_found_by_the_scan_passes() {
    let env = Env::new();
    let confdir = env.confdir.display().to_string();
    let out = ctl_with_env(&env, &[("PAM_MFA_DOVECONF", "")], &["doctor", "--pam-dir", &confdir]).expect(0);
    assert_eq!(errors(&out), Vec::<&str>::new(), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{confdir}/mail")),
        "the scan did not find the mail service:\n{}",
        out.stdout
    );
}

#[test]
fn bad_stacks_are_errors_at_their_line() {
    let env = Env::new();
    // (fixture, where: ":LINE" or "" for the file as a whole, what the message says)
    let cases = [
        ("password-required", ":4", "lock its owner out"),
        ("split-required", ":3", "split is required, not requisite"),
        ("verify-sufficient", ":5", "any six digits"),
        ("no-verify", "", "no `pam_mfa.so verify` line"),
        ("no-account", "", "no `account` line for pam_mfa.so"),
        ("app-password-after-split", ":3", "app_password comes after split"),
        (
            "app-password-required",
            ":2",
            "app_password is required, not sufficient",
        ),
        ("unknown-argument", ":5", "unknown argument 'verfiy'"),
        (
            "missing-config",
            ":5",
            "config=/nonexistent/pam_mfa.toml does not exist",
        ),
        ("no-use-first-pass", ":4", "has no use_first_pass"),
        ("continued", ":12", "unknown argument 'sufficient_typo'"),
    ];
    for (name, at, piece) in cases {
        let file = fixture(name);
        let out = doctor(&env, &["--pam-file", &file]).expect(1);
        has_line(&out, &format!("ERROR {file}{at}: "), piece);
        has_line(&out, "doctor: ", " error");
    }
    // The continued stack is otherwise right: its one error is the typo.
    let out = doctor(&env, &["--pam-file", &fixture("continued")]);
    assert_eq!(errors(&out).len(), 1, "{}", out.stdout);
}

/// Doctor on one fixture: exit 0, and a WARNING at `at` (`:LINE` or
/// empty) that says `piece`.
fn warns(env: &Env, name: &str, at: &str, piece: &str) -> Out {
    let file = fixture(name);
    let out = doctor(env, &["--pam-file", &file]).expect(0);
    has_line(&out, &format!("WARNING {file}{at}: "), piece);
    out
}

#[test]
fn an_include_for_the_password_is_a_warning() {
    let env = Env::new();
    let out = warns(
        &env,
        "include-password",
        ":4",
        "cannot judge the password check through an include",
    );
    assert_eq!(errors(&out), Vec::<&str>::new(), "{}", out.stdout);
}

#[test]
fn a_named_file_without_pam_mfa_is_a_warning_and_an_empty_folder_too() {
    let env = Env::new();
    warns(&env, "no-pam-mfa", "", "no line of this file loads pam_mfa.so");

    let empty = env.dir.path().join("empty-pam.d");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.display().to_string();
    let out = ctl_with_env(&env, &[("PAM_MFA_DOVECONF", "")], &["doctor", "--pam-dir", &empty]).expect(0);
    has_line(&out, &format!("WARNING {empty}: "), "nothing is switched on yet");
}

#[test]
fn store_problems() {
    let imap = example("imap");
    let marker = |env: &Env| env.store.join("pam_mfa-store");

    let env = Env::new();
    std::fs::remove_file(marker(&env)).unwrap();
    let out = doctor(&env, &["--pam-file", &imap]).expect(1);
    has_line(
        &out,
        &format!("ERROR {}: ", marker(&env).display()),
        "the store marker is missing",
    );
    has_line(&out, "ERROR ", "mfa-ctl store init");

    let env = Env::new();
    std::fs::write(marker(&env), "someone else's folder\n").unwrap();
    let out = doctor(&env, &["--pam-file", &imap]).expect(1);
    has_line(
        &out,
        &format!("ERROR {}: ", marker(&env).display()),
        "does not say \"pam_mfa store 1\"",
    );

    let env = Env::new();
    std::fs::set_permissions(&env.store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = doctor(&env, &["--pam-file", &imap]);
    has_line(&out, &format!("WARNING {}: ", env.store.display()), "its mode 0755");
    has_line(&out, "WARNING ", &format!("chmod 0700 {}", env.store.display()));

    let env = Env::new();
    std::fs::set_permissions(&env.store, std::fs::Permissions::from_mode(0o757)).unwrap();
    let out = doctor(&env, &["--pam-file", &imap]).expect(1);
    has_line(
        &out,
        &format!("ERROR {}: ", env.store.display()),
        "lets others write to it",
    );

    let env = Env::new();
    let real = env.dir.path().join("store.real");
    std::fs::rename(&env.store, &real).unwrap();
    std::os::unix::fs::symlink(&real, &env.store).unwrap();
    let out = doctor(&env, &["--pam-file", &imap]).expect(1);
    has_line(&out, &format!("ERROR {}: ", env.store.display()), "symbolic link");
}

#[test]
fn a_broken_config_is_an_error_and_the_rest_is_still_checked() {
    let env = Env::new();
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    let line = text.lines().count() + 1;
    text.push_str("sotre = \"/typo\"\n");
    std::fs::write(&env.config, text).unwrap();
    let bad = fixture("password-required");
    let out = doctor(&env, &["--pam-file", &bad]).expect(1);
    has_line(&out, &format!("ERROR {}:{line}: ", env.config.display()), "sotre");
    has_line(&out, &format!("ERROR {bad}:4: "), "lock its owner out");

    // A configuration named with --config that does not exist: doctor
    // cannot run (exit 2), as every mfa-ctl command, and says why.
    std::fs::remove_file(&env.config).unwrap();
    let out = doctor(&env, &["--pam-file", &example("imap")]).expect(2);
    assert!(
        out.stderr.contains(&env.config.display().to_string()) && out.stderr.contains("does not exist"),
        "{}",
        out.stderr
    );
    let json = doctor(&env, &["--json", "--pam-file", &example("imap")])
        .expect(2)
        .json();
    assert_eq!(json["exit_code"], 2);
}

/// The stacks a second review found doctor passing, each exploitable
/// through libpam: every one is an ERROR at its line, exit 1.
#[test]
fn reviewed_bypasses_are_errors_at_their_line() {
    let env = Env::new();
    // (fixture, line, what the message says)
    let cases = [
        // 1. The code alone logs in.
        (
            "split-jumps",
            3,
            "jump over the password line (success=1): the password is never checked",
        ),
        // 2. A wrong password ignored: the code alone, and lock-out.
        (
            "password-auth-err-ignored",
            4,
            "does not stop the login (auth_err=ignore)",
        ),
        ("password-auth-err-ignored", 4, "verify's failure counter"),
        // 3. The password alone, before split.
        (
            "sufficient-before-split",
            3,
            "pam_unix.so can end the stack with success (sufficient)",
        ),
        ("sufficient-before-split", 3, "split never ran"),
        // 4. No code during a back-off; the account step's refusal ignored.
        ("verify-maxtries-ignored", 5, "(maxtries=ignore): during a back-off"),
        ("verify-maxtries-ignored", 6, "is ignored (perm_denied=ignore)"),
        // 5. done on success.
        (
            "done-on-success",
            3,
            "split's success ends the stack (success=done), so any password logs in",
        ),
        (
            "done-on-success",
            4,
            "ends the stack on success (success=done): a right password ends it before verify",
        ),
        // 6. sufficient between the password line and verify.
        (
            "sufficient-before-verify",
            5,
            "pam_permit.so can end the stack with success (sufficient) before verify",
        ),
        // 7. The account stack ends before pam_mfa's line.
        ("account-sufficient-first", 6, "before pam_mfa's account line"),
        // 8. verify twice: nobody logs in.
        ("verify-twice", 6, "a second verify line"),
        // 9. Different configuration files: every login refused.
        ("different-configs", 5, "different configuration files"),
    ];
    for (name, line, piece) in cases {
        let file = fixture(name);
        let out = doctor(&env, &["--pam-file", &file]).expect(1);
        has_line(&out, &format!("ERROR {file}:{line}: "), piece);
    }
}

#[test]
fn verify_prompt_without_split_passes() {
    let env = Env::new();
    let file = fixture("verify-prompt");
    let out = doctor(&env, &["--pam-file", &file]).expect(0);
    assert_eq!(errors(&out), Vec::<&str>::new(), "{}", out.stdout);
    assert!(!out.stdout.contains("no `pam_mfa.so split`"), "{}", out.stdout);
}

/// Each configuration a `config=` names is loaded, and its store checked,
/// as pam_mfa will when a login comes through that line.
#[test]
fn each_named_config_is_loaded_and_its_store_checked() {
    let env = Env::new();
    let write = |name: &str, text: &str| {
        let p = env.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    };
    let service = |cfg: &str| {
        let text = std::fs::read_to_string(example("imap"))
            .unwrap()
            .replace("pam_mfa.so", &format!("pam_mfa.so config={cfg}"));
        write("service", &text)
    };
    // Its store is missing: pam_mfa refuses every login through it.
    let gone = env.dir.path().join("no-store").display().to_string();
    let other = write("other.toml", &format!("store = \"{gone}\"\n"));
    let out = doctor(&env, &["--pam-file", &service(&other)]).expect(1);
    has_line(&out, &format!("ERROR {gone}: "), "missing");
    has_line(&out, "doctor: also checked the configurations", &other);

    // It does not load.
    let broken = write("broken.toml", "sotre = \"/typo\"\n");
    let out = doctor(&env, &["--pam-file", &service(&broken)]).expect(1);
    has_line(&out, &format!("ERROR {broken}:1: "), "sotre");

    // The same configuration as --config, and a good one: checked once, fine.
    let config = env.config.display().to_string();
    let out = doctor(&env, &["--pam-file", &service(&config)]).expect(0);
    assert_eq!(errors(&out), Vec::<&str>::new(), "{}", out.stdout);
    assert!(!out.stdout.contains("also checked"), "{}", out.stdout);
    let copy = write("copy.toml", &std::fs::read_to_string(&env.config).unwrap());
    let j = doctor(&env, &["--json", "--pam-file", &service(&copy)])
        .expect(0)
        .json();
    assert_eq!(j["configs"], serde_json::json!([copy]), "{j:#}");
}

#[test]
fn a_pam_file_that_cannot_be_read_stops_doctor() {
    let env = Env::new();
    let gone = env.dir.path().join("no-such-service").display().to_string();
    let out = doctor(&env, &["--pam-file", &example("imap"), "--pam-file", &gone]).expect(2);
    assert!(out.stderr.contains(&gone), "{}", out.stderr);
    let json = doctor(&env, &["--json", "--pam-file", &gone]).expect(2).json();
    assert_eq!(json["exit_code"], 2);
    let nowhere = env.dir.path().join("no-pam.d").display().to_string();
    ctl_with_env(&env, &[("PAM_MFA_DOVECONF", "")], &["doctor", "--pam-dir", &nowhere]).expect(2);
}

#[test]
fn json_lists_findings() {
    let env = Env::new();
    let file = fixture("password-required");
    let j = doctor(&env, &["--json", "--pam-file", &file]).expect(1).json();
    let findings = j["findings"].as_array().unwrap();
    let f = findings
        .iter()
        .find(|f| f["level"] == "error")
        .unwrap_or_else(|| panic!("no error in {j:#}"));
    assert_eq!(f["file"], file.as_str());
    assert_eq!(f["line"], 4);
    assert!(f["message"].as_str().unwrap().contains("lock its owner out"), "{j:#}");
    assert!(f["fix"].as_str().unwrap().contains("requisite"), "{j:#}");
    assert_eq!(j["errors"], 1, "{j:#}");
    let warnings = findings.iter().filter(|f| f["level"] == "warning").count();
    assert_eq!(j["warnings"], warnings, "{j:#}");

    let ok = doctor(&env, &["--json", "--pam-file", &example("imap")])
        .expect(0)
        .json();
    assert_eq!(ok["errors"], 0, "{ok:#}");
}

#[test]
fn dovecot_auth_cache_with_pam_is_a_warning() {
    let env = Env::new();
    let script = |name: &str, body: &str| {
        let p = env.dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    let cached = script(
        "doveconf-cached",
        "[ \"$1\" = -n ] || exit 64\ncat <<'EOF'\n# 2.3.19.1: /etc/dovecot/dovecot.conf\nauth_cache_size = 1M\n\
         passdb {\n  args = cache_key=%u %s\n  driver = pam\n}\nprotocols = imap\nEOF\n",
    );
    let out = doctor_with(&env, &cached, &["--pam-file", &example("imap")]).expect(0);
    has_line(&out, "WARNING doveconf -n: ", "cache_key");
    has_line(&out, "WARNING doveconf -n: ", "auth_cache_ttl");

    let uncached = script(
        "doveconf-plain",
        "cat <<'EOF'\npassdb {\n  args = %s\n  driver = pam\n}\nEOF\n",
    );
    let out = doctor_with(&env, &uncached, &["--pam-file", &example("imap")]).expect(0);
    assert!(!out.stdout.contains("doveconf -n"), "{}", out.stdout);

    let failing = script("doveconf-broken", "echo 'doveconf: Fatal: bad config' >&2\nexit 89\n");
    let out = doctor_with(&env, &failing, &["--pam-file", &example("imap")]).expect(0);
    has_line(&out, "WARNING doveconf -n: ", "Fatal: bad config");
    let missing = env.dir.path().join("no-doveconf").display().to_string();
    let out = doctor_with(&env, &missing, &["--pam-file", &example("imap")]).expect(0);
    has_line(&out, "WARNING doveconf -n: ", "cannot run");
}

#[test]
fn output_from_files_is_escaped() {
    let env = Env::new();
    let hostile = env.dir.path().join("hostile");
    std::fs::write(
        &hostile,
        "auth requisite pam_mfa.so split \u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\naccount required pam_mfa.so\n",
    )
    .unwrap();
    let out = doctor(&env, &["--pam-file", &hostile.display().to_string()]).expect(1);
    assert_no_controls(&out.stdout);
    assert!(out.stdout.contains("\\x1b]0;pwned"), "{}", out.stdout);
    let out = doctor(&env, &["--json", "--pam-file", &hostile.display().to_string()]).expect(1);
    assert_no_controls(&out.stdout);
    assert!(out.json()["findings"].to_string().contains("pwned"));
}

#[test]
fn store_init_creates_what_is_missing() {
    let env = Env::new();
    let dir = env.dir.path().join("staged/var/lib/pam_mfa");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let d = dir.display().to_string();
    let j = ctl(&env, &["--json", "store", "init", &d]).expect(0).json();
    assert_eq!(j["store"], d.as_str());
    let created: Vec<&str> = j["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for part in ["pam_mfa-store", "domains", "mailboxes"] {
        let p = dir.join(part).display().to_string();
        assert!(created.contains(&p.as_str()), "{p} not in {created:?}");
        assert!(Path::new(&p).exists());
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("pam_mfa-store")).unwrap(),
        "pam_mfa store 1\n"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);

    let again = ctl(&env, &["--json", "store", "init", &d]).expect(0).json();
    assert_eq!(again["created"], serde_json::json!([]));
    let human = ctl(&env, &["store", "init", &d]).expect(0);
    assert!(human.stdout.contains("already complete"), "{}", human.stdout);

    // Without DIR: the configured store (Env made it complete already). A
    // sub-folder gone from a marked store is not made anew unless asked:
    // an empty one in its place would read as "no policy, no mailbox".
    std::fs::remove_dir(env.store.join("domains")).unwrap();
    let out = ctl(&env, &["store", "init"]).expect(2);
    assert!(out.stderr.contains("--adopt"), "{}", out.stderr);
    let out = ctl(&env, &["store", "init", "--adopt"]).expect(0);
    assert!(
        out.stdout.contains(&env.store.join("domains").display().to_string()),
        "{}",
        out.stdout
    );

    let foreign = env.dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(foreign.join("pam_mfa-store"), "some other program\n").unwrap();
    std::fs::set_permissions(foreign.join("pam_mfa-store"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = ctl(&env, &["store", "init", &foreign.display().to_string()]).expect(2);
    assert!(out.stderr.contains("pam_mfa-store"), "{}", out.stderr);
    assert!(
        !foreign.join("domains").exists(),
        "nothing is created next to a foreign marker"
    );
}
