//! Webmail sessions through the real libpam: the string accepted from a
//! webmail server logs in again from the webmail servers, for the listed
//! services, until the window ends, a logout, a disable or a block; nowhere
//! else and for no other string. Instants past the code's own life are set
//! in the store (a session started long ago), as the decision's unit tests
//! set them in `now`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa::store::backend::{Backend, MailboxLock};
use pam_mfa::store::records::WebmailSession;
use pam_mfa::store::{Durability, OnMissing};
use pam_mfa_tests::*;

const WEBMAIL: &str = "192.0.2.80";
const OUTSIDE: &str = "192.0.2.10";

/// Alice enrolled; services mail (the recommended stack), smtp (same) and
/// pop3 (same, but not listed for webmail); webmail from 192.0.2.80 for
/// mail and smtp.
fn world(extra: &str) -> (Env, String) {
    let env = Env::quick(&format!(
        "[webmail]\nreuse_window = \"1h\"\nnetworks = [\"{WEBMAIL}/32\", \"2001:db8::80\"]\nservices = [\"mail\", \"smtp\"]\n{extra}"
    ));
    let stack = env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay", "");
    env.write_service("smtp", &stack);
    env.write_service("pop3", &stack);
    env.with_alice()
}

fn from(env: &Env, service: &str, typed: &str, rhost: &str) -> LoginResult {
    env.login_raw(service, ALICE.as_bytes(), typed.as_bytes(), Some(rhost))
}

fn sessions_json(env: &Env) -> serde_json::Value {
    let out = env.mfa_ctl(&["--json", "sessions", ALICE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rewrites alice's sessions in the store, as time passing would have.
fn edit_sessions(env: &Env, f: impl FnOnce(&mut Vec<WebmailSession>)) {
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    let mut lock = admin.store.lock(&mb, OnMissing::Skip).unwrap().unwrap();
    let mut state = lock.state().clone();
    f(&mut state.webmail_sessions);
    lock.write_state(&state, Durability::Synced).unwrap();
}

#[test]
fn the_same_string_logs_in_again_only_from_the_webmail_servers_for_listed_services() {
    let (env, secret) = world("");
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    env.logs();
    // Webmail clicks: IMAP again and again, SMTP to send.
    for _ in 0..3 {
        assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    }
    assert!(from(&env, "smtp", &typed, WEBMAIL).ok());
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("method=webmail_session").count(), 4, "{logs}");
    assert!(!logs.contains(&secret) && !logs.contains(&typed), "{logs}");
    // Outside the networks, or a service not listed: the usual replay refusal.
    assert_eq!(from(&env, "mail", &typed, OUTSIDE).auth, PAM_AUTH_ERR);
    assert_eq!(from(&env, "pop3", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    assert_eq!(
        env.login_raw("mail", ALICE.as_bytes(), typed.as_bytes(), None).auth,
        PAM_AUTH_ERR
    );
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("replay").count(), 3, "{logs}");

    let s = sessions_json(&env);
    let list = s["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{s}");
    assert_eq!(list[0]["client"], WEBMAIL);
    assert_eq!(list[0]["service"], "mail");
    assert_eq!(list[0]["uses"], 4);
    assert!(!s.to_string().contains("tag"), "the hash is never shown: {s}");
    // The history folds the reuses: one code line, then one line per run of
    // reuses of one service and client.
    let out = env.mfa_ctl(&["--json", "logins", ALICE]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok: Vec<_> = v["logins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["result"] == "ok")
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_string(),
                l["service"].as_str().unwrap().to_string(),
                l["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ok,
        [
            ("webmail_session".to_string(), "smtp".to_string(), 1),
            ("webmail_session".to_string(), "mail".to_string(), 3),
            ("code".to_string(), "mail".to_string(), 1),
        ],
        "{v}"
    );
}

/// A code accepted from outside the webmail networks opens no session.
#[test]
fn a_login_from_elsewhere_opens_no_session() {
    let (env, secret) = world("");
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, OUTSIDE).ok());
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    assert!(sessions_json(&env)["sessions"].as_array().unwrap().is_empty());
}

/// The session is the whole string's: the same code after another password
/// (one the password module takes too) is a replay.
#[test]
fn a_different_string_with_the_same_code_is_a_replay() {
    let (env, secret) = world("");
    // A stack whose password module takes any password.
    env.write_service("mail", &env.stack("pam_permit.so", ""));
    let code = oathtool(&secret, fresh_step(6));
    assert!(from(&env, "mail", &format!("{PW}{code}"), WEBMAIL).ok());
    assert!(from(&env, "mail", &format!("{PW}{code}"), WEBMAIL).ok());
    env.logs();
    assert_eq!(from(&env, "mail", &format!("other{code}"), WEBMAIL).auth, PAM_AUTH_ERR);
    assert_eq!(from(&env, "mail", &format!("{PW}x{code}"), WEBMAIL).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("replay").count(), 2, "{logs}");
}

/// The window ends a session, counted from its start: a session started
/// an hour ago (the window) is refused; one started 59 minutes ago, long
/// after its code's own step, still logs in.
#[test]
fn the_window_ends_sessions() {
    let (env, secret) = world("");
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    let t = now();
    edit_sessions(&env, |s| {
        s[0].started = t - 3540;
        s[0].expires = t + 60;
    });
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    edit_sessions(&env, |s| {
        s[0].started = t - 3600;
        s[0].expires = t;
    });
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    assert!(sessions_json(&env)["sessions"].as_array().unwrap().is_empty());
}

/// A domain's own window replaces the configuration's, and 0 switches
/// sessions off for it.
#[test]
fn a_domain_window_overrides_the_configuration() {
    let (env, secret) = world("");
    let out = env.mfa_ctl(&["domain", "set", DOMAIN, "optional", "--webmail-window", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    // A shorter window ends sessions opened under a longer one.
    let out = env.mfa_ctl(&["domain", "set", DOMAIN, "optional", "--webmail-window", "10m"]);
    assert!(out.status.success());
    let t = now();
    edit_sessions(&env, |s| {
        s.push(WebmailSession {
            tag: "0".repeat(64),
            started: t - 700,
            last_use: t - 700,
            expires: t + 3000,
            service: "mail".into(),
            rhost: WEBMAIL.into(),
            uses: 0,
        })
    });
    assert!(sessions_json(&env)["sessions"].as_array().unwrap().is_empty());
    // Setting the policy again without the option keeps the domain's window.
    assert!(env.mfa_ctl(&["domain", "set", DOMAIN, "required"]).status.success());
    let out = env.mfa_ctl(&["--json", "domain", "show", DOMAIN]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["webmail_window_seconds"], 600, "{v}");
    let out = env.mfa_ctl(&["domain", "set", DOMAIN, "required", "--webmail-window", "2d"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 1d"));
}

#[test]
fn logout_ends_every_session() {
    let (env, secret) = world("");
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    let out = env.mfa_ctl(&["--json", "logout", ALICE]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sessions_ended"], 1);
    env.logs();
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    assert_eq!(from(&env, "smtp", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    // Refused as what it is, and not counted against the owner.
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("reason=\"webmail session ended").count(), 2, "{logs}");
    let st = env.mfa_ctl(&["--json", "status", ALICE]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["failures"], 0, "{st}");
    // A fresh code opens a new session.
    let typed2 = format!("{PW}{}", oathtool(&secret, now() + 30));
    assert!(from(&env, "mail", &typed2, WEBMAIL).ok());
    assert!(from(&env, "mail", &typed2, WEBMAIL).ok());
}

/// Disabling ends the sessions; enrolling again (a new seed) does too. The
/// webmail tab still open with the old string is refused as an ended
/// session, not counted as wrong codes that would lock the owner out.
#[test]
fn disable_and_re_enrolment_end_sessions() {
    let (env, secret) = world("");
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    assert!(env.mfa_ctl(&["disable", "--force", ALICE]).status.success());
    assert!(sessions_json(&env)["sessions"].as_array().unwrap().is_empty());
    let secret2 = env.enroll(ALICE);
    assert_ne!(secret, secret2);
    env.logs();
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("reason=\"webmail session ended"), "{logs}");
    let st = env.mfa_ctl(&["--json", "status", ALICE]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["failures"], 0, "{st}");
    // The owner's new code works, and opens a new session.
    let typed2 = format!("{PW}{}", oathtool(&secret2, now() + 30));
    assert!(from(&env, "mail", &typed2, WEBMAIL).ok());
    assert!(from(&env, "mail", &typed2, WEBMAIL).ok());
}

/// A block ends the sessions: after `mfa-ctl unlock` the owner logs in
/// with a new code, not whoever kept the old string.
#[test]
fn a_block_ends_sessions() {
    let (env, secret) = world("[lockout]\nafter = 3\nbackoff = \"1s\"\nmax_backoff = \"1s\"\nblock_after = 3\n");
    let t = fresh_step(6);
    let typed = format!("{PW}{}", oathtool(&secret, t));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    // Three different wrong codes (a repeated one counts once per step).
    let valid: Vec<String> = (0..5).map(|i| oathtool(&secret, t + i * 30 - 60)).collect();
    let wrong = (0u32..)
        .map(|n| format!("{:06}", (n * 7919 + 12345) % 1_000_000))
        .filter(|c| !valid.contains(c))
        .take(3);
    for code in wrong {
        assert_eq!(from(&env, "mail", &format!("{PW}{code}"), OUTSIDE).auth, PAM_AUTH_ERR);
    }
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_MAXTRIES);
    assert!(env.mfa_ctl(&["unlock", ALICE]).status.success());
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
}

/// At most 20 sessions per mailbox: a new one replaces the oldest.
#[test]
fn sessions_are_capped_per_mailbox() {
    let (env, secret) = world("");
    let t = now();
    edit_sessions(&env, |s| {
        for i in 0..20 {
            s.push(WebmailSession {
                tag: format!("{i:064}"),
                started: t - 100 + i,
                last_use: t - 100 + i,
                expires: t + 3000,
                service: "mail".into(),
                rhost: WEBMAIL.into(),
                uses: 0,
            });
        }
    });
    assert_eq!(sessions_json(&env)["sessions"].as_array().unwrap().len(), 20);
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    let s = sessions_json(&env);
    let list = s["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 20, "{s}");
    assert!(
        list.iter().all(|x| x["started"] != t - 100),
        "the oldest was replaced: {s}"
    );
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
}

/// A configuration that would let everyone reuse codes is refused.
#[test]
fn wide_networks_are_refused() {
    let env = Env::new();
    let cases: [(&str, &str); 11] = [
        ("networks = [\"0.0.0.0/0\"]", "wider than /16"),
        ("networks = [\"10.0.0.0/8\"]", "wider than /16"),
        ("networks = [\"not-an-address\"]", "not an address"),
        ("networks = [\"192.0.2.80\"]\nservices = []", "webmail.services"),
        ("networks = [\"192.0.2.80\"]\nreuse_window = \"30d\"", "at most 1d"),
        ("networks = [\"192.0.2.80/16\"]", "bits set past its prefix"),
        (
            "networks = [\"192.0.2.80\"]\nservices = [\"IMAP\"]",
            "not a PAM service name",
        ),
        (
            "networks = [\"192.0.2.80\"]\nservices = [\"*\"]",
            "not a PAM service name",
        ),
        (
            "networks = [\"192.0.2.80\"]\nservices = [\" imap\"]",
            "not a PAM service name",
        ),
        (
            "networks = [\"192.0.2.80\"]\nidle_timeout = \"10s\"",
            "webmail.idle_timeout",
        ),
        (
            &format!(
                "networks = [{}]",
                (0..17)
                    .map(|i| format!("\"10.{i}.0.0/16\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "at most 16",
        ),
    ];
    for (bad, says) in cases {
        let text = std::fs::read_to_string(&env.config).unwrap();
        let cfg = env.dir.path().join("bad.toml");
        std::fs::write(&cfg, format!("{text}\n[webmail]\n{bad}\n")).unwrap();
        let out = mfa_ctl_with(&cfg, &["status", ALICE]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad}: {err}");
    }
}

/// An import that replaces the seed ends the old seed's sessions (its tab's
/// string is an ended session, not wrong codes), and an imported mailbox
/// gets webmail sessions like an enrolled one.
#[test]
fn an_import_replacing_the_seed_ends_sessions_and_imported_mailboxes_get_them() {
    let (env, secret) = world("");
    let typed = format!("{PW}{}", oathtool(&secret, fresh_step(6)));
    assert!(from(&env, "mail", &typed, WEBMAIL).ok());
    let hex = "3132333435363738393031323334353637383930";
    let users = env.dir.path().join("users.oath");
    std::fs::write(&users, format!("HOTP/T30 alice - {hex}\n")).unwrap();
    let out = env.mfa_ctl(&[
        "import",
        "oath",
        users.to_str().unwrap(),
        "--domain",
        DOMAIN,
        "--replace",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sessions_json(&env)["sessions"].as_array().unwrap().is_empty());
    env.logs();
    assert_eq!(from(&env, "mail", &typed, WEBMAIL).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("reason=\"webmail session ended"), "{logs}");
    // The next step's code: the replay guard is kept across a new secret.
    let code = std::process::Command::new("oathtool")
        .args(["--totp", hex, "-N", &format!("@{}", fresh_step(6) + 30)])
        .output()
        .unwrap();
    let typed2 = format!("{PW}{}", String::from_utf8(code.stdout).unwrap().trim());
    assert!(from(&env, "mail", &typed2, WEBMAIL).ok());
    assert!(from(&env, "mail", &typed2, WEBMAIL).ok());
    assert_eq!(sessions_json(&env)["sessions"].as_array().unwrap().len(), 1);
}
