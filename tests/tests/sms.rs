//! Codes by text message through the real libpam (issue 15), with a
//! delivery command that records what it was given standing in for the
//! gateway ([`pam_mfa_tests::sms::Gateway`]): enrolment and confirmation
//! with the real mfa-ctl, a login with a texted code, single use, a real
//! short lifetime, the resend block and the hourly cap, nothing sent for a
//! wrong password, a failing, slow, missing or unsafe command, parallel
//! logins texting once, `verify prompt` asking again, and the code in no
//! log line, no command line and no output. Runs on files, and on
//! PostgreSQL under tests/suites/postgres.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa_tests::sms::{Gateway, Message};
use pam_mfa_tests::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NUMBER: &str = "+49 151 1234 4567";
const E164: &str = "+4915112344567";
const MASKED: &str = "+49 *** *** 4567";

/// Whether `code` occurs in `text` as a number of its own (not inside a
/// longer one, such as a timestamp).
fn has_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back().is_some_and(|c| c.is_ascii_digit());
        let after = text[i + code.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit());
        !before && !after
    })
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An env whose [sms] names `gw`, with alice's password set (not enrolled).
fn env_with(gw: &Gateway, sms_keys: &str) -> Env {
    let env = Env::quick(&gw.config(sms_keys));
    env.set_password(ALICE, PW);
    env
}

/// Gives alice a number with the real mfa-ctl: `sms add` texts a code,
/// `sms confirm` with it turns the number on. Returns the confirmation message.
fn add_number(env: &Env, gw: &Gateway) -> Message {
    add_number_with(env, gw, NUMBER, &[])
}

/// [`add_number`] for `number`, with `proof` (`--code CODE`, `--force`).
fn add_number_with(env: &Env, gw: &Gateway, number: &str, proof: &[&str]) -> Message {
    let before = gw.messages().len();
    let added = env.mfa_ctl(&[&["sms", "add", ALICE, number][..], proof].concat());
    assert!(added.status.success(), "{}", out_text(&added));
    let msg = gw.one_more(before);
    assert_eq!(msg.purpose(), "confirm");
    assert!(!has_code(&out_text(&added), msg.code()), "mfa-ctl printed the code");
    let confirmed = env.mfa_ctl(&["sms", "confirm", ALICE, msg.code()]);
    assert!(confirmed.status.success(), "{}", out_text(&confirmed));
    msg
}

/// Every message sent so far: what the command got is exactly the
/// documented environment, its command line is its path alone, and no log
/// line of the module holds any code.
fn check_interface(env: &Env, gw: &Gateway, logs: &str) {
    for m in gw.messages() {
        let keys: Vec<&str> = m.env.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "PAM_MFA_CODE",
                "PAM_MFA_MAILBOX",
                "PAM_MFA_MESSAGE",
                "PAM_MFA_PURPOSE",
                "PAM_MFA_TO",
                "PATH"
            ],
            "{m:?}"
        );
        assert_eq!(m.env["PAM_MFA_MAILBOX"], ALICE);
        assert_eq!(m.env["PAM_MFA_TO"], E164);
        assert_eq!(m.env["PATH"], pam_mfa::deliver::PATH);
        assert!(m.env["PAM_MFA_MESSAGE"].contains(m.code()), "{m:?}");
        assert!(m.env["PAM_MFA_MESSAGE"].contains("Test Mail"), "the issuer: {m:?}");
        assert_eq!(m.code().len(), 6);
        assert_eq!(m.cmdline, format!("/bin/sh {}", gw.command.display()), "{m:?}");
        assert!(!has_code(logs, m.code()), "code {} in the log:\n{logs}", m.code());
    }
    let _ = env;
}

#[test]
fn a_number_is_confirmed_then_a_login_texts_a_code_that_works_once() {
    let gw = Gateway::new();
    let env = env_with(&gw, "");
    // Pending until confirmed: logins still need no code.
    let added = env.mfa_ctl(&["sms", "add", ALICE, NUMBER]);
    assert!(added.status.success(), "{}", out_text(&added));
    let confirm = gw.one_more(0);
    assert!(env.login("mail", ALICE, PW).ok(), "a pending number changed the login");
    let status = env.mfa_ctl(&["--json", "status", ALICE]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "pending");
    assert_eq!(json["sms_pending"], MASKED);
    // A wrong confirmation code: refused (exit 1), and the number stays pending.
    let wrong = if confirm.code() == "000000" { "000001" } else { "000000" };
    let refused = env.mfa_ctl(&["sms", "confirm", ALICE, wrong]);
    assert_eq!(refused.status.code(), Some(1), "{}", out_text(&refused));
    assert!(out_text(&refused).contains("4 more tries"), "{}", out_text(&refused));
    // The confirmation code cannot log in.
    assert!(env.login("mail", ALICE, &format!("{PW}{}", confirm.code())).auth == PAM_AUTH_ERR);
    let ok = env.mfa_ctl(&["sms", "confirm", ALICE, confirm.code()]);
    assert!(ok.status.success(), "{}", out_text(&ok));
    let status = env.mfa_ctl(&["status", ALICE]);
    let text = out_text(&status);
    assert!(text.contains(&format!("text messages:   {MASKED}")), "{text}");
    assert!(text.contains("MFA:             enabled"), "{text}");
    assert!(!text.contains(E164) && !text.contains("12344567"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&env.mfa_ctl(&["--json", "status", ALICE]).stdout).unwrap();
    assert_eq!(
        (json["sms"].as_str(), json["app"].as_bool()),
        (Some(MASKED), Some(false))
    );
    env.logs();

    // The password alone: refused, and a code is texted.
    let r = env.login("mail", ALICE, PW);
    assert_eq!(r.auth, PAM_AUTH_ERR);
    let msg = gw.one_more(1);
    assert_eq!(msg.purpose(), "login");
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!("result=refused reason=\"code sent by sms\" to=\"{MASKED}\"")),
        "{logs}"
    );
    // Password + that code: in.
    let typed = format!("{PW}{}", msg.code());
    assert!(env.login("mail", ALICE, &typed).ok());
    // Once: the same string again is a replay, and texts nothing.
    assert_eq!(env.login("mail", ALICE, &typed).auth, PAM_AUTH_ERR);
    assert_eq!(gw.messages().len(), 2);
    let more = env.logs().join("\n");
    assert!(more.contains("result=accepted method=sms"), "{more}");
    assert!(more.contains("reason=\"code already used (replay)\""), "{more}");
    check_interface(&env, &gw, &format!("{logs}\n{more}"));
    let logins = out_text(&env.mfa_ctl(&["logins", ALICE]));
    assert!(
        logins.contains("code sent by sms") && logins.contains("sms"),
        "{logins}"
    );
}

/// The password module runs before `verify`: a wrong password never
/// reaches it, so nothing is texted.
#[test]
fn a_wrong_password_texts_nothing() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    add_number(&env, &gw);
    env.logs();
    for typed in ["wrong", "wrong123456", "", "T9D3K!p"] {
        assert_eq!(env.login("mail", ALICE, typed).auth, PAM_AUTH_ERR);
    }
    assert_eq!(gw.messages().len(), 1, "only the confirmation");
    let logs = env.logs().join("\n");
    assert!(!logs.contains("verify:"), "verify ran after a wrong password: {logs}");
}

#[test]
fn resend_after_blocks_a_second_text_and_the_first_code_still_works() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = \"60s\"\n");
    // Confirming the number lifts the block its text set: the first login texts.
    add_number(&env, &gw);
    env.logs();
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let first = gw.one_more(1);
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    assert_eq!(gw.messages().len(), 2, "a second text within resend_after");
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("reason=\"code missing, none sent (the last sms is younger than resend_after)\""),
        "{logs}"
    );
    assert!(env.login("mail", ALICE, &format!("{PW}{}", first.code())).ok());
}

#[test]
fn max_per_hour_caps_the_texts_of_a_mailbox() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\nmax_per_hour = 3\n");
    add_number(&env, &gw);
    env.logs();
    // The confirmation counted: two more, then none.
    for _ in 0..4 {
        assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    }
    assert_eq!(gw.messages().len(), 3);
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("reason=\"code sent by sms\"").count(), 2, "{logs}");
    assert_eq!(
        logs.matches("reason=\"code missing, none sent (sms limit per hour reached)\"")
            .count(),
        2,
        "{logs}"
    );
    // mfa-ctl send-code is held to the same cap: refused (exit 1), nothing sent.
    let o = env.mfa_ctl(&["send-code", ALICE]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(out_text(&o).contains("sms.max_per_hour"), "{}", out_text(&o));
    assert_eq!(gw.messages().len(), 3);
    // The newest code works; the older one was replaced.
    let all = gw.messages();
    let (older, newest) = (&all[1], &all[2]);
    if older.code() != newest.code() {
        assert_eq!(
            env.login("mail", ALICE, &format!("{PW}{}", older.code())).auth,
            PAM_AUTH_ERR
        );
    }
    assert!(env.login("mail", ALICE, &format!("{PW}{}", newest.code())).ok());
}

/// A real short lifetime: the code texted is refused once it is older than
/// code_lifetime; a new one is texted and works.
#[test]
fn a_texted_code_expires() {
    let gw = Gateway::new();
    let env = env_with(&gw, "code_lifetime = \"2s\"\nresend_after = 0\n");
    add_number(&env, &gw);
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let msg = gw.one_more(1);
    std::thread::sleep(Duration::from_millis(3100));
    env.logs();
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{}", msg.code())).auth,
        PAM_AUTH_ERR
    );
    let logs = env.logs().join("\n");
    assert!(logs.contains("reason=\"sms code expired\""), "{logs}");
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let fresh = gw.one_more(2);
    assert!(env.login("mail", ALICE, &format!("{PW}{}", fresh.code())).ok());
}

/// A command that fails: the login is refused as "code could not be
/// sent", the log says the status and stderr's first line (the code cut
/// out), the history says so too.
#[test]
fn a_failing_command_refuses_as_not_sent_without_the_code_anywhere() {
    let gw = Gateway::with("echo \"gateway refused $PAM_MFA_TO, message: $PAM_MFA_MESSAGE\" >&2\nexit 3");
    let env = env_with(&gw, "resend_after = 0\n");
    let added = env.mfa_ctl(&["sms", "add", ALICE, NUMBER]);
    assert_eq!(added.status.code(), Some(2), "{}", out_text(&added));
    let text = out_text(&added);
    assert!(
        text.contains("the code was not sent") && text.contains("exit status 3"),
        "{text}"
    );
    let confirm = gw.one_more(0);
    assert!(!has_code(&text, confirm.code()), "{text}");
    // Sent after all (exit status aside): confirm, then log in without a code.
    assert!(env.mfa_ctl(&["sms", "confirm", ALICE, confirm.code()]).status.success());
    env.logs();
    let r = env.login("mail", ALICE, PW);
    assert_eq!(r.auth, PAM_AUTH_ERR);
    let msg = gw.one_more(1);
    let logs = env.logs().join("\n");
    assert!(logs.contains("reason=\"code could not be sent\""), "{logs}");
    assert!(
        logs.contains("exit status 3, saying: gateway refused +49 *** *** 4567, message: [code]"),
        "{logs}"
    );
    assert!(!has_code(&logs, msg.code()), "{logs}");
    let logins = out_text(&env.mfa_ctl(&["logins", ALICE]));
    assert!(logins.contains("code could not be sent"), "{logins}");
    assert!(!logins.contains("code sent by sms"), "{logins}");
    check_interface(&env, &gw, &logs);
}

/// A command that hangs: killed at sms.timeout with what it started; the
/// login is refused promptly.
#[test]
fn a_slow_command_is_killed_at_the_timeout() {
    let gw = Gateway::with("sleep 60 &\necho $! > \"$m/child\"\nsleep 60");
    let env = env_with(&gw, "timeout = \"1s\"\nresend_after = 0\n");
    // Confirmed through the store: sms add would wait for the timeout too.
    give_number(&env);
    env.logs();
    let t = Instant::now();
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(6), "the login took {took:?}");
    let msg = gw.one_more(0);
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("did not finish within sms.timeout = 1s and was killed"),
        "{logs}"
    );
    let child: u32 = std::fs::read_dir(&gw.out)
        .unwrap()
        .find_map(|e| std::fs::read_to_string(e.unwrap().path().join("child")).ok())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The command was this process's child: reaped, not even a zombie.
    assert!(
        !std::path::Path::new(&format!("/proc/{}", msg.pid)).exists(),
        "the delivery command {} was not reaped",
        msg.pid
    );
    assert!(
        gone(child),
        "what the delivery command started ({child}) is still running"
    );
}

fn gone(pid: u32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s) if s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

/// alice's number confirmed by writing her record through the library (for
/// gateways that cannot confirm one).
fn give_number(env: &Env) {
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    let mut l = admin.store.lock(&mb, OnMissing::Create).unwrap().unwrap();
    let mut rec = l.record().cloned().unwrap_or_default();
    rec.sms = Some(pam_mfa::sms::SmsRecord {
        number: Some(E164.into()),
        ..pam_mfa::sms::SmsRecord::new().unwrap()
    });
    l.write_record(&rec).unwrap();
}

#[test]
fn a_missing_or_unsafe_command_is_refused_with_what_to_fix() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    give_number(&env);
    // Group-writable: not run.
    std::fs::set_permissions(&gw.command, std::fs::Permissions::from_mode(0o775)).unwrap();
    env.logs();
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(
        logs.contains(&format!("run: chmod go-w {}", gw.command.display())),
        "{logs}"
    );
    assert!(logs.contains("reason=\"code could not be sent\""), "{logs}");
    assert!(gw.messages().is_empty(), "an unsafe command ran");
    // Missing.
    std::fs::remove_file(&gw.command).unwrap();
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("does not exist; install it or fix sms.command"), "{logs}");
}

/// `n` processes each logging in once with `typed`, at the same moment;
/// their pam_authenticate results.
fn parallel_logins(env: &Env, n: usize, typed: &str) -> Vec<i32> {
    let mut workers: Vec<_> = (0..n)
        .map(|_| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_login_worker"))
                .arg("serve")
                .arg(&env.confdir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "READY");
            (child, stdin, stdout)
        })
        .collect();
    for (_, stdin, _) in &mut workers {
        writeln!(stdin, "mail\t{ALICE}\t{typed}").unwrap();
        stdin.flush().unwrap();
    }
    workers
        .into_iter()
        .map(|(mut child, stdin, mut stdout)| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            drop(stdin);
            child.wait().unwrap();
            line.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

/// `mfa-ctl doctor` finds a delivery command that would not be run.
#[test]
fn doctor_checks_the_delivery_command() {
    let gw = Gateway::new();
    let env = env_with(&gw, "");
    let service = env.confdir.join("mail");
    let service = service.to_str().unwrap();
    let doctor = |env: &Env| {
        let mut cmd = mfa_ctl_command(&env.config);
        cmd.args(["doctor", "--pam-file", service]).env("PAM_MFA_DOVECONF", "");
        out_text(&cmd.output().unwrap())
    };
    let fine = doctor(&env);
    assert!(!fine.contains("delivery command"), "{fine}");
    std::fs::set_permissions(&gw.command, std::fs::Permissions::from_mode(0o757)).unwrap();
    let text = doctor(&env);
    assert!(
        text.contains("ERROR") && text.contains("delivery command") && text.contains("run: chmod go-w"),
        "{text}"
    );
    std::fs::remove_file(&gw.command).unwrap();
    let text = doctor(&env);
    assert!(text.contains("does not exist"), "{text}");
}

/// 16 processes log in with the password alone at once: one text, whatever
/// the store (files: the mailbox lock; PostgreSQL: the row's version).
#[test]
fn parallel_logins_text_once() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = \"60s\"\nmax_per_hour = 60\n");
    give_number(&env);
    let n = 16;
    let results = parallel_logins(&env, n, PW);
    assert_eq!(results, vec![PAM_AUTH_ERR; n]);
    let msgs = gw.messages();
    assert_eq!(msgs.len(), 1, "{n} parallel logins sent {} texts", msgs.len());
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("reason=\"code sent by sms\"").count(), 1, "{logs}");
    assert!(env.login("mail", ALICE, &format!("{PW}{}", msgs[0].code())).ok());
}

/// One texted code raced by 16 processes: exactly one logs in, the others
/// are replays (not counted).
#[test]
fn one_texted_code_raced_logs_in_once() {
    let gw = Gateway::new();
    let env = env_with(&gw, "");
    give_number(&env);
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let code = gw.one_more(0).code().to_string();
    let n = 16;
    let results = parallel_logins(&env, n, &format!("{PW}{code}"));
    assert_eq!(results.iter().filter(|r| **r == PAM_SUCCESS).count(), 1, "{results:?}");
    let admin = env.admin();
    let state = admin
        .store
        .read_mailbox(&admin.mailbox(ALICE).unwrap())
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state.failures, 0, "replays were counted as failures");
    assert_eq!(gw.messages().len(), 1);
}

/// With `verify prompt` (a service that speaks the conversation), an empty
/// answer texts a code and the question is asked again, once.
#[test]
fn prompt_texts_a_code_on_an_empty_answer_and_asks_again() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    give_number(&env);
    let m = module_path();
    env.write_service(
        "prompted",
        &format!(
            "auth requisite pam_pwdfile.so pwdfile={} nodelay\n\
             auth required {} verify prompt {}\n\
             account required {} {}\n",
            env.pwdfile.display(),
            m.display(),
            env.args(),
            m.display(),
            env.args()
        ),
    );
    env.logs();
    let mut asked = Vec::new();
    let mut script = |prompt: &str| -> String {
        asked.push(prompt.to_string());
        if prompt.contains("Password") {
            PW.to_string()
        } else if prompt.contains("sent by text message") {
            gw.messages().last().map(|m| m.code().to_string()).unwrap_or_default()
        } else {
            String::new()
        }
    };
    let r = pam::login_scripted(&env.confdir, "prompted", ALICE, &mut script, Some("192.0.2.10"));
    assert!(r.ok(), "{r:?}, asked {asked:?}");
    assert_eq!(
        asked,
        [
            "Password: ",
            "Verification code (leave empty to get one by text message): ",
            "Verification code (sent by text message): "
        ]
    );
    assert_eq!(gw.messages().len(), 1);
    // Asked again once only: a second empty answer is no code, and texts nothing.
    let mut empty = |prompt: &str| -> String {
        if prompt.contains("Password") {
            PW.to_string()
        } else {
            String::new()
        }
    };
    let r = pam::login_scripted(&env.confdir, "prompted", ALICE, &mut empty, Some("192.0.2.10"));
    assert_eq!(r.auth, PAM_AUTH_ERR);
    assert_eq!(r.prompts, 3);
    assert_eq!(gw.messages().len(), 2, "one text per login");
    let logs = env.logs().join("\n");
    check_interface(&env, &gw, &logs);
}

/// `mfa-ctl send-code` (a panel's "text me a code"): sends, is held to
/// resend_after, and its code logs in.
#[test]
fn send_code_texts_a_login_code() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = \"60s\"\n");
    give_number(&env);
    let o = env.mfa_ctl(&["--json", "send-code", ALICE]);
    assert!(o.status.success(), "{}", out_text(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (json["to"].as_str(), json["purpose"].as_str()),
        (Some(MASKED), Some("login"))
    );
    let msg = gw.one_more(0);
    assert!(!has_code(&out_text(&o), msg.code()));
    let again = env.mfa_ctl(&["send-code", ALICE]);
    assert_eq!(again.status.code(), Some(1), "{}", out_text(&again));
    assert!(out_text(&again).contains("moments ago"), "{}", out_text(&again));
    assert!(env.login("mail", ALICE, &format!("{PW}{}", msg.code())).ok());
    // Without a number: refused, saying how to add one.
    let bob = env.mfa_ctl(&["send-code", "bob@example.org"]);
    assert_eq!(bob.status.code(), Some(1));
    assert!(
        out_text(&bob).contains("mfa-ctl sms add bob@example.org NUMBER"),
        "{}",
        out_text(&bob)
    );
}

/// A mailbox with the app and a number: either code logs in.
#[test]
fn the_app_and_a_number_side_by_side() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    let secret = env.enroll(ALICE);
    // MFA is on: a number is added only with a current code (or --force).
    let o = env.mfa_ctl(&["sms", "add", ALICE, NUMBER]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(out_text(&o).contains("--code CODE"), "{}", out_text(&o));
    assert!(gw.messages().is_empty(), "texted without proof");
    let t = fresh_step(8);
    add_number_with(&env, &gw, NUMBER, &["--code", &oathtool(&secret, t)]);
    // That code was used up by the proof: it does not log in.
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t))).auth,
        PAM_AUTH_ERR
    );
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let msg = gw.one_more(1);
    assert!(env.login("mail", ALICE, &format!("{PW}{}", msg.code())).ok());
    // Removing the number leaves the app (no proof needed: MFA stays on).
    assert!(env.mfa_ctl(&["sms", "remove", ALICE]).status.success());
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    assert_eq!(gw.messages().len(), 2, "no text after the number is removed");
    // The next step's code: later than the step the proof used.
    assert!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t + 30)))
            .ok()
    );
}

/// With only a number, changing or removing it needs a code texted to it
/// (or an admin's --force): the password and a panel are not enough.
#[test]
fn changing_the_only_number_needs_a_texted_code() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    add_number(&env, &gw);
    let o = env.mfa_ctl(&["sms", "add", ALICE, "+15551234567"]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    let o = env.mfa_ctl(&["sms", "remove", ALICE]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert_eq!(gw.messages().len(), 1, "nothing texted without proof");
    // A wrong code is counted like a login's.
    let o = env.mfa_ctl(&["sms", "add", ALICE, "+15551234567", "--code", "000000"]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(out_text(&o).contains("not the code sent"), "{}", out_text(&o));
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    assert_eq!(admin.store.read_mailbox(&mb).unwrap().unwrap().state.failures, 1);
    // A code texted to the number in force proves it; the new number is
    // pending, the old one stays on until the new one is confirmed.
    assert!(env.mfa_ctl(&["send-code", ALICE]).status.success());
    let login_code = gw.one_more(1).code().to_string();
    let confirm = add_number_with(&env, &gw, "+1 555 123 4567", &["--code", &login_code]);
    assert_eq!(confirm.env["PAM_MFA_TO"], "+15551234567");
    // The texted code was used up by the proof.
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{login_code}")).auth,
        PAM_AUTH_ERR
    );
    let status = out_text(&env.mfa_ctl(&["status", ALICE]));
    assert!(status.contains("+1 *** *** 4567"), "{status}");
    // Removing the only number: with a code texted to it.
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let code = gw.messages().last().unwrap().code().to_string();
    let o = env.mfa_ctl(&["sms", "remove", ALICE, "--code", &code]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(env.login("mail", ALICE, PW).ok(), "MFA off: the password alone");
}

/// A descriptor the host process left open without close-on-exec is not
/// inherited by the delivery command.
#[test]
fn the_command_inherits_no_descriptor_of_the_host() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    give_number(&env);
    let marker = env.dir.path().join("host-secret-descriptor");
    let held = pam::inheritable_file(&marker);
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    drop(held);
    let msg = gw.one_more(0);
    assert!(msg.complete);
    assert!(!msg.fds.contains("host-secret-descriptor"), "{}", msg.fds);
    assert!(msg.fds.contains("0 -> /dev/null"), "{}", msg.fds);
}

/// Removing a number: refused where it is a required domain's mailbox's
/// only factor, unless forced; then that mailbox cannot log in.
#[test]
fn removing_the_only_factor_of_a_required_domain() {
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    add_number(&env, &gw);
    assert!(env.mfa_ctl(&["domain", "set", DOMAIN, "required"]).status.success());
    let o = env.mfa_ctl(&["sms", "remove", ALICE]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(out_text(&o).contains("(--force)"), "{}", out_text(&o));
    let o = env.mfa_ctl(&["sms", "remove", ALICE, "--force"]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(
        out_text(&o).contains("refused until it enrols again"),
        "{}",
        out_text(&o)
    );
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    assert_eq!(gw.messages().len(), 1);
}

// ---- the host process ----

const CHILD_ENV: &str = "PAM_MFA_SMS_TEST_CHILD";

/// Runs the ignored test `name` alone in a process of its own (its threads,
/// children and signal dispositions are what it checks).
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

fn in_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

/// This process's threads, its children (of every thread), and its
/// ignored and caught signals: what a login inside a host must leave as it
/// found it.
fn host() -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut threads = Vec::new();
    let mut children = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap() {
        let e = e.unwrap();
        threads.push(e.file_name().to_string_lossy().into_owned());
        let c = std::fs::read_to_string(e.path().join("children")).unwrap_or_default();
        children.extend(c.split_whitespace().map(str::to_string));
    }
    threads.sort();
    let signals = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("SigIgn:") || l.starts_with("SigCgt:"))
        .map(str::to_string)
        .collect();
    (threads, children, signals)
}

/// Texting inside the host process leaves no thread, no child (not even a
/// zombie) and no changed signal disposition behind, whether the command
/// succeeds, fails or is killed at its timeout.
#[test]
fn the_host_process_is_left_as_it_was() {
    run_child("child_host");
}

#[test]
#[ignore = "run by the_host_process_is_left_as_it_was in a process of its own"]
fn child_host() {
    if !in_child("child_host") {
        return;
    }
    let ok = Gateway::new();
    let failing = Gateway::with("exit 1");
    let slow = Gateway::with("sleep 30");
    let env = env_with(&ok, "resend_after = 0\ntimeout = \"1s\"\n");
    give_number(&env);
    env.logs();
    // (On PostgreSQL the test's own database server is a child already.)
    let before = host();
    let config = std::fs::read_to_string(&env.config).unwrap();
    for gw in [&ok, &failing, &slow] {
        let text = config.replace(&ok.command.display().to_string(), &gw.command.display().to_string());
        let tmp = env.dir.path().join("next.toml");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &env.config).unwrap();
        assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
        assert_eq!(gw.messages().len(), 1, "{}", gw.command.display());
        assert_eq!(host(), before, "after a login texting through {}", gw.command.display());
    }
    let logs = env.logs().join("\n");
    assert_eq!(logs.matches("reason=\"code sent by sms\"").count(), 1, "{logs}");
    assert_eq!(logs.matches("reason=\"code could not be sent\"").count(), 2, "{logs}");
    println!("CHILD child_host OK");
}

/// A host that ignores SIGCHLD (its children are reaped by the kernel, so
/// their exit status is lost): the send counts as failed, promptly, with a
/// log line that says why.
#[test]
fn a_host_that_ignores_sigchld_fails_closed() {
    run_child("child_sigchld_ignored");
}

#[test]
#[ignore = "run by a_host_that_ignores_sigchld_fails_closed in a process of its own"]
fn child_sigchld_ignored() {
    if !in_child("child_sigchld_ignored") {
        return;
    }
    let gw = Gateway::new();
    let env = env_with(&gw, "resend_after = 0\n");
    give_number(&env);
    env.logs();
    // SAFETY: setting a signal's disposition to SIG_IGN, in a process of
    // this test's own (no other test runs in it).
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let t = Instant::now();
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(gw.messages().len(), 1);
    let logs = env.logs().join("\n");
    assert!(
        logs.contains("reason=\"code could not be sent\"") && logs.contains("(SIGCHLD ignored or handled)"),
        "{logs}"
    );
    println!("CHILD child_sigchld_ignored OK");
}
