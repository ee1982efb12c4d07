//! Every mfa-ctl command against a temp store, and what the PAM module
//! (through the real libpam) does afterwards: the CLI and the module must
//! agree because they share one library, and these tests hold them to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::*;

const PW: &str = "T9D3K!px";

#[test]
fn two_step_enrolment_then_pam_accepts_password_plus_code() {
    let env = Env::new();
    env.set_password("alice@example.org", PW);
    // Before enrolment the password alone is enough (optional domain).
    assert!(env.login("mail", "alice@example.org", PW).ok());

    let begin = ctl(&env, &["--json", "enroll", "alice@example.org", "--begin"])
        .expect(0)
        .json();
    let secret = begin["secret"].as_str().unwrap().to_string();
    assert_eq!(begin["mailbox"], "alice@example.org");
    assert_eq!(begin["state"], "pending");
    assert_eq!(
        begin["otpauth_uri"],
        format!(
            "otpauth://totp/Test%20Mail:alice%40example.org?secret={secret}&issuer=Test%20Mail&algorithm=SHA1&digits=6&period=30"
        )
    );

    // Pending: logins behave as before.
    assert_eq!(
        ctl(&env, &["--json", "status", "alice@example.org"]).expect(0).json()["state"],
        "pending"
    );
    assert!(env.login("mail", "alice@example.org", PW).ok());

    // A wrong challenge code is refused (exit 1) with what to do next.
    // Enough of the step left that mfa-ctl's clock, read a moment later,
    // is still in it (the previous step's code below must stay in the window).
    let t = fresh_step(3);
    let wrong = ctl(
        &env,
        &["enroll", "alice@example.org", "--confirm", &wrong_code(&secret, t)],
    )
    .expect(1);
    assert!(
        wrong.stderr.contains("wait for the app to show a fresh code"),
        "{}",
        wrong.stderr
    );
    assert!(wrong.stderr.contains(" s left"), "{}", wrong.stderr);
    assert_eq!(
        ctl(&env, &["--json", "status", "alice@example.org"]).expect(0).json()["state"],
        "pending"
    );

    // The right one (as typed from a phone, with a space) activates MFA.
    let prev = oathtool(&secret, t - 30);
    let typed = format!("{} {}", &prev[..3], &prev[3..]);
    let ok = ctl(&env, &["--json", "enroll", "alice@example.org", "--confirm", &typed])
        .expect(0)
        .json();
    assert_eq!(
        ok,
        serde_json::json!({"mailbox": "alice@example.org", "state": "enabled"})
    );
    let status = ctl(&env, &["--json", "status", "alice@example.org"]).expect(0).json();
    assert_eq!(status["state"], "enabled");
    assert_eq!(status["login_needs"], "code");

    // The module now wants password+code, and takes oathtool's code.
    assert!(!env.login("mail", "alice@example.org", PW).ok());
    let t = fresh_step(5);
    assert!(
        env.login("mail", "alice@example.org", &format!("{PW}{}", oathtool(&secret, t)))
            .ok()
    );

    // A second --begin is refused while enrolled.
    let again = ctl(&env, &["enroll", "alice@example.org", "--begin"]).expect(1);
    assert!(again.stderr.contains("disable it first"), "{}", again.stderr);
}

#[test]
fn confirm_without_begin_is_refused() {
    let env = Env::new();
    let out = ctl(&env, &["enroll", "nobody@example.org", "--confirm", "123456"]).expect(1);
    assert!(
        out.stderr.contains("mfa-ctl enroll nobody@example.org --begin"),
        "{}",
        out.stderr
    );
}

#[test]
fn app_password_only_for_its_services_then_revoked() {
    let env = Env::new();
    services(&env, &["imap", "smtp"]);
    env.set_password("bob@example.org", PW);
    enroll(&env, "bob@example.org");

    let add = ctl(
        &env,
        &[
            "--json",
            "app-password",
            "add",
            "bob@example.org",
            "--label",
            "Phone",
            "--service",
            "imap",
            "--expires",
            "90d",
        ],
    )
    .expect(0)
    .json();
    let pw = add["password"].as_str().unwrap().to_string();
    assert_eq!(add["label"], "Phone");
    assert_eq!(add["services"], serde_json::json!(["imap"]));
    assert_eq!(
        add["expires"].as_u64().unwrap() - add["created"].as_u64().unwrap(),
        90 * 86_400
    );
    // Lowercase letters in groups: >= 100 bits, easy to type on a phone.
    let letters: String = pw.chars().filter(|c| *c != '-').collect();
    assert!(
        letters.len() >= 22 && letters.chars().all(|c| c.is_ascii_lowercase()),
        "{pw}"
    );

    assert!(env.login("imap", "bob@example.org", &pw).ok(), "app password on imap");
    // Typed without dashes, with spaces, upper case: still the same password.
    assert!(env.login("imap", "bob@example.org", &letters.to_uppercase()).ok());
    assert!(
        !env.login("smtp", "bob@example.org", &pw).ok(),
        "app password must not work for smtp"
    );

    let list = ctl(&env, &["--json", "app-password", "list", "bob@example.org"])
        .expect(0)
        .json();
    let entry = &list["app_passwords"][0];
    assert_eq!(entry["label"], "Phone");
    assert!(entry["last_used"].as_u64().is_some(), "{list}");
    assert_eq!(entry["last_ip"], "192.0.2.10");
    assert!(
        list.to_string().find(&letters).is_none(),
        "the list must not show the password"
    );

    // Same label twice: refused.
    ctl(&env, &["app-password", "add", "bob@example.org", "--label", "Phone"]).expect(1);

    ctl(&env, &["app-password", "revoke", "bob@example.org", "Phone"]).expect(0);
    assert!(!env.login("imap", "bob@example.org", &pw).ok(), "revoked app password");
    let again = ctl(&env, &["app-password", "revoke", "bob@example.org", "Phone"]).expect(1);
    assert!(again.stderr.contains("app-password list"), "{}", again.stderr);
}

#[test]
fn app_password_limited_to_a_network() {
    let env = Env::new();
    services(&env, &["imap"]);
    env.set_password("net@example.org", PW);
    enroll(&env, "net@example.org");
    let add = ctl(
        &env,
        &[
            "--json",
            "app-password",
            "add",
            "net@example.org",
            "--label",
            "office",
            "--from",
            "198.51.100.0/24",
        ],
    )
    .expect(0)
    .json();
    let pw = add["password"].as_str().unwrap();
    assert!(
        !env.login("imap", "net@example.org", pw).ok(),
        "harness logs in from 192.0.2.10"
    );
    assert!(
        env.login_raw("imap", b"net@example.org", pw.as_bytes(), Some("198.51.100.7"))
            .ok()
    );
    ctl(
        &env,
        &[
            "app-password",
            "add",
            "net@example.org",
            "--label",
            "x",
            "--from",
            "not-a-net",
        ],
    )
    .expect(2);
}

#[test]
fn recovery_code_works_exactly_once() {
    let env = Env::new();
    env.set_password("carol@example.org", "secret123");
    // A password ending in digits: split must not take its tail for a code.
    let secret = enroll(&env, "carol@example.org");
    let out = ctl(&env, &["--json", "recovery-codes", "carol@example.org"])
        .expect(0)
        .json();
    let codes: Vec<String> = out["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);

    assert!(
        env.login("mail", "carol@example.org", &format!("secret123{}", codes[0]))
            .ok()
    );
    assert!(
        !env.login("mail", "carol@example.org", &format!("secret123{}", codes[0]))
            .ok(),
        "used twice"
    );
    assert!(
        env.login(
            "mail",
            "carol@example.org",
            &format!("secret123{}", codes[1].replace('-', ""))
        )
        .ok()
    );
    let status = ctl(&env, &["--json", "status", "carol@example.org"]).expect(0).json();
    assert_eq!(status["recovery_codes_left"], 8);

    // A new set replaces the old one.
    let fresh = ctl(&env, &["--json", "recovery-codes", "carol@example.org"])
        .expect(0)
        .json();
    assert!(
        !env.login("mail", "carol@example.org", &format!("secret123{}", codes[2]))
            .ok(),
        "old set"
    );
    let new0 = fresh["codes"][0].as_str().unwrap();
    assert!(env.login("mail", "carol@example.org", &format!("secret123{new0}")).ok());
    let logins = ctl(&env, &["--json", "logins", "carol@example.org"]).expect(0).json();
    assert_eq!(logins["logins"][0]["method"], "recovery_code");
    assert_eq!(logins["logins"][0]["result"], "ok");

    // Not enrolled: no recovery codes.
    ctl(&env, &["recovery-codes", "dave@example.org"]).expect(1);
    let _ = secret;
}

#[test]
fn disable_with_code_then_password_plus_code_is_refused() {
    let env = Env::new();
    env.set_password("erin@example.org", PW);
    let secret = enroll(&env, "erin@example.org");
    let t = fresh_step(5);
    ctl(
        &env,
        &["disable", "erin@example.org", "--code", &wrong_code(&secret, t)],
    )
    .expect(1);
    let code = oathtool(&secret, t);
    let out = ctl(&env, &["--json", "disable", "erin@example.org", "--code", &code])
        .expect(0)
        .json();
    assert_eq!(out["state"], "disabled");
    assert_eq!(out["forced"], false);
    let human_hint = ctl(&env, &["status", "erin@example.org"]).expect(0).stdout;
    assert!(human_hint.contains("MFA:             disabled"), "{human_hint}");

    assert!(!env.login("mail", "erin@example.org", &format!("{PW}{code}")).ok());
    assert!(
        env.login("mail", "erin@example.org", PW).ok(),
        "optional domain: password alone again"
    );
}

/// `disable --code` is held to the rules of a login's code: one fixed wrong
/// code counts once per time step (a client retrying within a step counts
/// once, a guesser sending it every step counts every time), spaces and
/// dashes typed around it change nothing, and enough of them lock the
/// mailbox against `disable` too. At fixed instants, through the library.
#[test]
fn a_fixed_wrong_code_to_disable_counts_again_in_every_later_step() {
    use pam_mfa::admin::{AdminError, Refusal};
    const T: u64 = 1_700_000_020; // 20 s left in its step
    let env = Env::new();
    let admin = env.admin();
    let mb = admin.mailbox("hal@example.org").unwrap();
    let secret = admin.enroll_begin(&mb, T).unwrap().secret.to_string();
    admin.enroll_confirm(&mb, &oathtool(&secret, T), T).unwrap();
    let valid: Vec<String> = (0..8).map(|i| oathtool(&secret, T - 30 + 30 * i)).collect();
    let wrong = (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !valid.contains(c))
        .unwrap();
    let failures = |t| admin.status(&mb, t).unwrap().failures;
    let disable = |code: &str, t| admin.disable(&mb, Some(code), false, t).unwrap_err();

    let e = disable(&wrong, T);
    assert!(
        matches!(&e, AdminError::Refused(Refusal::WrongCode { seconds_left: 20, .. })),
        "{e:?}"
    );
    assert_eq!(failures(T), 1);
    // Again in the same step, also typed with a space and a dash: not counted.
    disable(&wrong, T + 5);
    disable(&format!(" {}-{} ", &wrong[..3], &wrong[3..]), T + 6);
    assert_eq!(failures(T + 6), 1);
    // The same code in each later step: counted each time.
    for (i, t) in [T + 30, T + 60, T + 90, T + 120].into_iter().enumerate() {
        disable(&wrong, t);
        assert_eq!(failures(t), 2 + i as u32, "at {t}");
    }
    // Five failures: backing off, and a refusal while locked is not counted.
    let e = disable(&oathtool(&secret, T + 125), T + 125);
    assert!(matches!(&e, AdminError::Refused(Refusal::Locked { .. })), "{e:?}");
    assert_eq!(failures(T + 125), 5);
    assert_eq!(admin.status(&mb, T + 125).unwrap().state, "enabled");
    // After the back-off the right code switches MFA off.
    admin
        .disable(&mb, Some(&oathtool(&secret, T + 160)), false, T + 160)
        .unwrap();
    assert_eq!(admin.status(&mb, T + 160).unwrap().state, "disabled");
}

#[test]
fn disable_tells_the_user_to_delete_the_app_entry() {
    let env = Env::new();
    enroll(&env, "fay@example.org");
    let out = ctl(&env, &["disable", "fay@example.org", "--force"]).expect(0);
    assert!(
        out.stdout
            .contains("may delete the entry \"Test Mail (fay@example.org)\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("forced by an admin"), "{}", out.stdout);
}

#[test]
fn domain_policy_rules() {
    let env = Env::new();
    env.set_password("gus@example.org", PW);

    // disabled: enrolment refused.
    ctl(&env, &["domain", "set", "example.org", "disabled"]).expect(0);
    let out = ctl(&env, &["enroll", "gus@example.org", "--begin"]).expect(1);
    assert!(
        out.stderr.contains("mfa-ctl domain set example.org optional"),
        "{}",
        out.stderr
    );
    // --grace only with required.
    ctl(&env, &["domain", "set", "example.org", "optional", "--grace", "7d"]).expect(2);
    ctl(&env, &["domain", "set", "example.org", "required", "--grace", "soon"]).expect(2);
    ctl(&env, &["domain", "set", "example.org", "mandatory"]).expect(2);

    // required with grace: unenrolled may still log in with the password.
    let set = ctl(
        &env,
        &["--json", "domain", "set", "example.org", "required", "--grace", "12h"],
    )
    .expect(0)
    .json();
    assert_eq!(set["policy"], "required");
    assert_eq!(set["grace_seconds"], 43_200);
    assert_eq!(
        set["grace_ends"].as_u64().unwrap(),
        set["since"].as_u64().unwrap() + 43_200
    );
    let show = ctl(&env, &["--json", "domain", "show", "example.org"]).expect(0).json();
    assert_eq!(show, set);
    let list = ctl(&env, &["--json", "domain", "list"]).expect(0).json();
    assert_eq!(list["domains"][0], set);
    let status = ctl(&env, &["--json", "status", "gus@example.org"]).expect(0).json();
    assert_eq!(status["login_needs"], "password_only");
    assert!(status["grace_ends"].is_u64());
    assert!(env.login("mail", "gus@example.org", PW).ok());

    // required, no grace: disabling needs --force; afterwards logins are refused.
    ctl(&env, &["domain", "set", "example.org", "required"]).expect(0);
    let secret = enroll(&env, "gus@example.org");
    let t = fresh_step(5);
    let refused = ctl(&env, &["disable", "gus@example.org", "--code", &oathtool(&secret, t)]).expect(1);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    let forced = ctl(&env, &["disable", "gus@example.org", "--force"]).expect(0);
    assert!(
        forced.stdout.contains("refused until it enrols again"),
        "{}",
        forced.stdout
    );
    assert!(!env.login("mail", "gus@example.org", PW).ok());
    assert!(
        !env.login("mail", "gus@example.org", &format!("{PW}{}", oathtool(&secret, t)))
            .ok()
    );

    // A domain without a record follows default_policy.
    let other = ctl(&env, &["--json", "domain", "show", "example.net"]).expect(0).json();
    assert_eq!(other["explicit"], false);
    assert_eq!(other["policy"], "optional");
}

#[test]
fn lockout_shows_in_status_and_unlock_clears_it() {
    let env = Env::new();
    env.set_password("hal@example.org", PW);
    let secret = enroll(&env, "hal@example.org");
    for i in 0..6 {
        // Different wrong codes: a repeated one counts once.
        let wrong = format!("{PW}{:06}", 100_000 + i * 7);
        let _ = env.login("mail", "hal@example.org", &wrong);
    }
    let status = ctl(&env, &["--json", "status", "hal@example.org"]).expect(0).json();
    assert!(status["failures"].as_u64().unwrap() >= 5, "{status}");
    assert_eq!(status["lock"], "backoff", "{status}");
    let human = ctl(&env, &["status", "hal@example.org"]).expect(0).stdout;
    assert!(human.contains("mfa-ctl unlock hal@example.org"), "{human}");
    let t = fresh_step(5);
    assert!(
        !env.login("mail", "hal@example.org", &format!("{PW}{}", oathtool(&secret, t)))
            .ok(),
        "locked"
    );

    let un = ctl(&env, &["--json", "unlock", "hal@example.org"]).expect(0).json();
    assert_eq!(un["was_locked"], true);
    assert_eq!(
        ctl(&env, &["--json", "status", "hal@example.org"]).expect(0).json()["lock"],
        "none"
    );
    assert!(
        env.login("mail", "hal@example.org", &format!("{PW}{}", oathtool(&secret, t)))
            .ok()
    );
    assert_eq!(
        ctl(&env, &["--json", "unlock", "hal@example.org"]).expect(0).json()["was_locked"],
        false
    );
}

#[test]
fn logins_list_newest_first_with_method_and_ip() {
    let env = Env::new();
    services(&env, &["imap"]);
    env.set_password("ida@example.org", PW);
    let secret = enroll(&env, "ida@example.org");
    let t = fresh_step(5);
    assert!(
        env.login("mail", "ida@example.org", &format!("{PW}{}", oathtool(&secret, t)))
            .ok()
    );
    let add = ctl(
        &env,
        &["--json", "app-password", "add", "ida@example.org", "--label", "tb"],
    )
    .expect(0)
    .json();
    assert!(
        env.login_raw(
            "imap",
            b"ida@example.org",
            add["password"].as_str().unwrap().as_bytes(),
            Some("203.0.113.5")
        )
        .ok()
    );

    let all = ctl(&env, &["--json", "logins", "ida@example.org"]).expect(0).json();
    let logins = all["logins"].as_array().unwrap();
    assert_eq!(logins.len(), 2, "{all}");
    assert_eq!(logins[0]["method"], "app_password");
    assert_eq!(logins[0]["service"], "imap");
    assert_eq!(logins[0]["ip"], "203.0.113.5");
    assert_eq!(logins[1]["method"], "code");
    assert_eq!(logins[1]["ip"], "192.0.2.10");
    let one = ctl(&env, &["--json", "logins", "ida@example.org", "--limit", "1"])
        .expect(0)
        .json();
    assert_eq!(one["logins"].as_array().unwrap().len(), 1);
    let list = ctl(&env, &["--json", "list", "--domain", "example.org"])
        .expect(0)
        .json();
    assert_eq!(list["mailboxes"][0]["mailbox"], "ida@example.org");
    assert_eq!(list["mailboxes"][0]["last_login"]["method"], "app_password");
    assert_eq!(
        ctl(&env, &["--json", "list", "--domain", "example.net"])
            .expect(0)
            .json()["mailboxes"],
        serde_json::json!([])
    );
}

#[test]
fn exit_codes_and_json_errors() {
    let env = Env::new();
    // Usage errors: 2.
    ctl(&env, &["frobnicate"]).expect(2);
    ctl(&env, &["disable", "x@example.org"]).expect(2);
    ctl(&env, &["status", "a b@example.org"]).expect(2);
    ctl(&env, &["enroll", "x@example.org", "--begin", "--confirm", "123456"]).expect(2);
    ctl(&env, &["--json", "enroll", "x@example.org"]).expect(2);
    // Refused: 1, and with --json a JSON object on stdout too.
    let r = ctl(&env, &["--json", "app-password", "revoke", "x@example.org", "nope"]).expect(1);
    let j = r.json();
    assert_eq!(j["error"], "refused");
    assert_eq!(j["exit_code"], 1);
    assert!(r.stderr.starts_with("mfa-ctl: "), "{}", r.stderr);
    // A broken configuration: 2, naming the file.
    std::fs::write(&env.config, "surprise = 1\n").unwrap();
    let bad = ctl(&env, &["--json", "status", "x@example.org"]).expect(2);
    assert!(bad.stderr.contains(&env.config.display().to_string()), "{}", bad.stderr);
    assert_eq!(bad.json()["error"], "error");
}

#[test]
fn man_page_and_completions_come_from_the_definitions() {
    let env = Env::new();
    let man = ctl(&env, &["man"]).expect(0).stdout;
    assert!(man.starts_with(".ie") || man.contains(".TH mfa-ctl"), "{man}");
    for cmd in ["enroll", "app\\-password", "recovery\\-codes", "logins", "unlock"] {
        assert!(man.contains(cmd), "man page lacks {cmd}");
    }
    let dir = tempfile::tempdir().unwrap();
    ctl(&env, &["man", "--dir", dir.path().to_str().unwrap()]).expect(0);
    for page in ["mfa-ctl.1", "mfa-ctl-enroll.1", "mfa-ctl-app-password-add.1"] {
        assert!(dir.path().join(page).exists(), "{page} not written");
    }
    let dir8 = tempfile::tempdir().unwrap();
    ctl(&env, &["man", "--section", "8", "--dir", dir8.path().to_str().unwrap()]).expect(0);
    let enroll8 = std::fs::read_to_string(dir8.path().join("mfa-ctl-enroll.8")).unwrap();
    assert!(enroll8.contains(".TH mfa-ctl-enroll 8"), "{enroll8}");
    let top8 = std::fs::read_to_string(dir8.path().join("mfa-ctl.8")).unwrap();
    assert!(
        top8.contains("mfa\\-ctl\\-enroll(8)") && !top8.contains("(1)"),
        "{top8}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let c = ctl(&env, &["completions", shell]).expect(0).stdout;
        // fish spells options `-l service`, the others `--service`.
        assert!(
            c.contains("recovery-codes") && c.contains("service"),
            "{shell} completion"
        );
    }
    // The bash completion is valid bash.
    let c = ctl(&env, &["completions", "bash"]).expect(0).stdout;
    let f = dir.path().join("c.bash");
    std::fs::write(&f, c).unwrap();
    assert!(
        std::process::Command::new("bash")
            .arg("-n")
            .arg(&f)
            .status()
            .unwrap()
            .success()
    );
}

/// What the store holds came from clients (PAM_RHOST, the service name) or
/// was written by anyone who could write the file: mfa-ctl must never send
/// it to an admin's terminal raw, as text or as JSON (serde_json leaves DEL,
/// C1 controls and bidi overrides raw).
#[test]
fn store_text_reaches_the_terminal_escaped() {
    use pam_mfa::store::records::{LastUse, Login, LoginResult, Method};
    let env = Env::new();
    let mb = "mallory@example.org";
    enroll(&env, mb);
    ctl(&env, &["app-password", "add", mb, "--label", "Phone"]).expect(0);
    let hostile = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m\u{7f}\u{85}\u{202e}gro.elpmaxe";
    {
        let admin = env.admin();
        let mailbox = admin.mailbox(mb).unwrap();
        let mut locked = admin.store.lock(&mailbox, OnMissing::Skip).unwrap().unwrap();
        let id = locked.record().cloned().unwrap().app_passwords[0].id.clone();
        let mut state = locked.state().clone();
        state.push_login(
            Login {
                at: now(),
                service: format!("imap{hostile}"),
                rhost: hostile.to_string(),
                method: Method::Code,
                // A typed result: nothing hostile can be stored in it.
                result: LoginResult::WrongCode,
                count: 0,
            },
            20,
        );
        state.app_password_use.insert(
            id,
            LastUse {
                at: now(),
                rhost: hostile.to_string(),
            },
        );
        locked.write_state(&state, Durability::Synced).unwrap();
    }
    for args in [
        &["logins", mb][..],
        &["status", mb],
        &["app-password", "list", mb],
        &["--json", "logins", mb],
        &["--json", "status", mb],
        &["--json", "app-password", "list", mb],
    ] {
        let out = ctl(&env, args).expect(0);
        assert_no_controls(&out.stdout);
        assert!(!out.stdout.bytes().any(|b| b == 0x1b || b == 0x07), "{args:?}");
        if args[0] == "--json" {
            // Escaped, not lost: the JSON still carries the exact text.
            assert!(out.json().to_string().contains("pwned"), "{args:?}: {}", out.stdout);
        } else {
            assert!(out.stdout.contains("\\x1b]0;pwned\\x07"), "{args:?}: {}", out.stdout);
        }
    }
    let logins = ctl(&env, &["--json", "logins", mb]).expect(0).json();
    assert_eq!(logins["logins"][0]["ip"], hostile);
    let list = ctl(&env, &["--json", "app-password", "list", mb]).expect(0).json();
    assert_eq!(list["app_passwords"][0]["last_ip"], hostile);
}
