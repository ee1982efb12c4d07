//! Secrets never reach a log: every login outcome runs
//! with `debug` on, and everything the module sent to syslog is searched for
//! the password, every code typed, the app password, the recovery codes and
//! the TOTP secret. Where secrets are zeroized and compared in constant time
//! is listed in docs/SECURITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa_tests::*;

const ALICE: &str = "alice@example.org";
const PW: &str = "Pw-9c7e1f0a";

/// `code` appears in `text` as a number of its own (not inside a longer
/// number such as a timestamp or a pid).
fn contains_number(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn no_secret_in_debug_logs_for_any_outcome() {
    let env = Env::with_config("[lockout]\nafter = 3\nbackoff = \"1h\"\nmax_backoff = \"1h\"\nblock_after = 5\n");
    let stack = env
        .stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay", "")
        .replace(" nodelay\n", " nodelay debug\n");
    assert_eq!(stack.matches(" debug").count(), 4);
    env.write_service("mail", &stack);
    env.write_service("imap", &stack);
    env.set_password(ALICE, PW);
    env.set_password("bob@example.org", "bob-Pw-5521");
    let secret = env.enroll(ALICE);
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    let recovery: Vec<String> = admin
        .recovery_codes(&mb, now())
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let (_, app) = admin
        .app_password_add(&mb, "phone", &["imap".to_string()], &[], None, now())
        .unwrap();
    let app = app.to_string();
    let t = fresh_step(12);
    let code = oathtool(&secret, t);
    let next = oathtool(&secret, t + 30);
    let wrong: Vec<String> = (1..=5u32)
        .map(|i| format!("{:06}", (code.parse::<u32>().unwrap() + i * 111_111) % 1_000_000))
        .filter(|c| *c != next && *c != oathtool(&secret, t - 30))
        .collect();
    let mut typed_codes = vec![code.clone(), next.clone()];
    typed_codes.extend(wrong.iter().cloned());
    let mut outcomes = Vec::new();
    let mut run = |what: &str, service: &str, user: &str, typed: &str, expect: (i32, Option<i32>)| {
        let r = env.login(service, user, typed);
        assert_eq!((r.auth, r.acct), expect, "{what}");
        outcomes.push(what.to_string());
    };
    run(
        "code accepted",
        "mail",
        ALICE,
        &format!("{PW}{code}"),
        (PAM_SUCCESS, Some(PAM_SUCCESS)),
    );
    run("replay", "mail", ALICE, &format!("{PW}{code}"), (PAM_AUTH_ERR, None));
    run(
        "wrong password",
        "mail",
        ALICE,
        &format!("x{PW}{next}"),
        (PAM_AUTH_ERR, None),
    );
    run("code missing", "mail", ALICE, PW, (PAM_AUTH_ERR, None));
    run(
        "recovery code accepted",
        "mail",
        ALICE,
        &format!("{PW}{}", recovery[0]),
        (PAM_SUCCESS, Some(PAM_SUCCESS)),
    );
    run(
        "recovery code reused",
        "mail",
        ALICE,
        &format!("{PW}{}", recovery[0]),
        (PAM_AUTH_ERR, None),
    );
    // A used recovery code, typed again, counts as a wrong code: clear it so
    // the wrong codes below reach the back-off at the count they expect.
    admin.unlock(&mb, now()).unwrap();
    run(
        "app password accepted",
        "imap",
        ALICE,
        &app,
        (PAM_SUCCESS, Some(PAM_SUCCESS)),
    );
    run("app password, wrong service", "mail", ALICE, &app, (PAM_AUTH_ERR, None));
    run(
        "unenrolled, password only",
        "mail",
        "bob@example.org",
        "bob-Pw-5521",
        (PAM_SUCCESS, Some(PAM_SUCCESS)),
    );
    run(
        "bad user name",
        "mail",
        "../alice@example.org",
        &format!("{PW}{next}"),
        (PAM_USER_UNKNOWN, None),
    );
    run(
        "wrong code",
        "mail",
        ALICE,
        &format!("{PW}{}", wrong[0]),
        (PAM_AUTH_ERR, None),
    );
    run(
        "wrong code",
        "mail",
        ALICE,
        &format!("{PW}{}", wrong[1]),
        (PAM_AUTH_ERR, None),
    );
    run(
        "wrong code",
        "mail",
        ALICE,
        &format!("{PW}{}", wrong[2]),
        (PAM_AUTH_ERR, None),
    );
    run(
        "locked (backoff)",
        "mail",
        ALICE,
        &format!("{PW}{next}"),
        (PAM_MAXTRIES, None),
    );
    admin.unlock(&mb, now()).unwrap();
    for w in &wrong[..5.min(wrong.len())] {
        env.login("mail", ALICE, &format!("{PW}{w}"));
        // Walk past the back-off so each wrong code is counted, up to the block.
        let st = admin.status(&mb, now()).unwrap();
        if st.lock == "backoff" {
            // Through the store (the state file is checksummed).
            let mut locked = admin.store.lock(&mb, OnMissing::Skip).unwrap().unwrap();
            let mut state = locked.state().clone();
            state.last_failure = 1;
            locked.write_state(&state, Durability::Configured).unwrap();
        }
    }
    assert_eq!(admin.status(&mb, now()).unwrap().lock, "blocked");
    run(
        "blocked: account refuses the app password",
        "imap",
        ALICE,
        &app,
        (PAM_SUCCESS, Some(PAM_PERM_DENIED)),
    );
    run(
        "blocked: code refused",
        "mail",
        ALICE,
        &format!("{PW}{next}"),
        (PAM_MAXTRIES, None),
    );
    admin.unlock(&mb, now()).unwrap();
    // Damaged mailbox files (which hold the secret): refused, and the log
    // line naming the damage quotes none of the content.
    let good = std::fs::read(env.mailbox_file(ALICE)).unwrap();
    let (json, seq) = env.mailbox_json(ALICE);
    assert!(json.contains(&secret));
    env.write_mailbox_bytes(ALICE, json.as_bytes());
    run(
        "store error: no magic",
        "mail",
        ALICE,
        &format!("{PW}{next}"),
        (9, None),
    );
    // Checksums hold, the JSON is wrong where serde_json would quote the secret.
    let wrong_types = [
        (
            "store error: secret of the wrong type",
            json.replace(&format!("\"{secret}\""), "[1,2]"),
        ),
        (
            "store error: state of the wrong type",
            json.replacen(
                "\"state\":{",
                &format!("\"state\":{{\"last_failed\":7,\"recovery_set\":{secret:?},"),
                1,
            ),
        ),
        (
            "store error: the secret as a number",
            json.replacen("\"state\":{", &format!("\"state\":{{\"failures\":{secret:?},"), 1),
        ),
    ];
    for (what, bad) in &wrong_types {
        env.write_mailbox_json(ALICE, bad, seq + 1);
        run(what, "mail", ALICE, &format!("{PW}{next}"), (9, None));
    }
    env.write_mailbox_bytes(ALICE, &good);
    env.write_mailbox_json(ALICE, &json.replace(&secret, "GEZDGNBV"), seq + 1);
    run("bad seed", "mail", ALICE, &format!("{PW}{next}"), (PAM_AUTH_ERR, None));
    env.write_mailbox_bytes(ALICE, &good);

    let logs = env.logs().join("\n");
    assert!(logs.contains("<87>"), "debug lines were logged: {logs}");
    for (what, needle) in [
        ("password", PW.to_string()),
        ("bob's password", "bob-Pw-5521".to_string()),
        ("secret", secret.clone()),
        ("secret, lower case", secret.to_lowercase()),
        ("app password", app.clone()),
        ("app password without dashes", app.replace('-', "")),
    ] {
        assert!(!logs.contains(&needle), "{what} in the logs: {logs}");
    }
    for r in &recovery {
        assert!(
            !logs.contains(r.as_str()) && !logs.contains(&r.replace('-', "")),
            "recovery code in the logs"
        );
    }
    for c in &typed_codes {
        assert!(!contains_number(&logs, c), "code {c} in the logs: {logs}");
    }
    let lines = logs.lines().count();
    eprintln!(
        "FIGURE secrets in logs: {} login outcomes with debug on, {lines} log lines: 0 contain the password, a typed code ({} codes), the app password, a recovery code or the TOTP secret",
        outcomes.len(),
        typed_codes.len()
    );
}
