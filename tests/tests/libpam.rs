//! The module through the real libpam: the recommended stack with
//! pam_pwdfile.so as the password module, codes from oathtool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa::policy::Policy;
use pam_mfa_tests::*;
use std::os::unix::fs::PermissionsExt;

/// An env with alice's password set and alice enrolled; returns (env, secret).
fn enrolled() -> (Env, String) {
    Env::new().with_alice()
}

#[test]
fn password_plus_code_logs_in_once() {
    let (env, secret) = enrolled();
    let t = fresh_step(6);
    let typed = format!("{PW}{}", oathtool(&secret, t));
    assert!(env.login("mail", ALICE, &typed).ok());
    // The very same string again: a replay.
    let again = env.login("mail", ALICE, &typed);
    assert_eq!(again.auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("result=accepted method=code"), "{logs}");
    assert!(logs.contains("replay"), "{logs}");
    // The next step's code is fresh (accepted within the ±1 window).
    assert!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t + 30)))
            .ok()
    );
}

#[test]
fn wrong_code_and_wrong_password() {
    let (env, secret) = enrolled();
    let t = fresh_step(6);
    let code = oathtool(&secret, t);
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{}", wrong_code(&secret, t)))
            .auth,
        PAM_AUTH_ERR
    );
    // Wrong password, right code: refused by pam_pwdfile before verify runs...
    assert_eq!(env.login("mail", ALICE, &format!("wrong{code}")).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("reason=\"wrong code\""), "{logs}");
    assert_eq!(
        logs.matches("verify:").count(),
        1,
        "verify must not run after a wrong password: {logs}"
    );
    // ...so the code was not consumed and still works with the right password.
    assert!(env.login("mail", ALICE, &format!("{PW}{code}")).ok());
}

#[test]
fn window_is_one_step_each_way() {
    let (env, secret) = enrolled();
    // Enrolment used the previous step's code; forget that (test-only,
    // through the store) so the previous step can be tried as a login.
    {
        let admin = env.admin();
        let mut locked = admin
            .store
            .lock(&admin.mailbox(ALICE).unwrap(), OnMissing::Skip)
            .unwrap()
            .unwrap();
        let mut state = locked.state().clone();
        assert!(state.last_step.is_some());
        state.last_step = None;
        locked.write_state(&state, Durability::Synced).unwrap();
    }
    let t = fresh_step(6);
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t - 60)))
            .auth,
        PAM_AUTH_ERR
    );
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t + 60)))
            .auth,
        PAM_AUTH_ERR
    );
    assert!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t - 30)))
            .ok()
    );
    assert!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t + 30)))
            .ok()
    );
    // Step t+30 was accepted: t's code is now older than the last step, a replay.
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t))).auth,
        PAM_AUTH_ERR
    );
}

#[test]
fn enrolled_mailbox_without_code_is_refused() {
    let (env, _) = enrolled();
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("reason=\"code missing\""), "{logs}");
}

#[test]
fn policies() {
    let env = Env::new();
    env.set_password("bob@example.org", "bobpw");
    // The password module sees the name as typed; pam_mfa maps it to bob@example.org.
    env.set_password("bob", "bobpw");
    env.set_password("carol@other.org", "carolpw");
    env.set_password("dave@off.org", "davepw");
    let admin = env.admin();
    // optional (the default): unenrolled, password alone.
    assert!(env.login("mail", "bob@example.org", "bobpw").ok());
    // bare names get default_domain.
    assert!(env.login("mail", "bob", "bobpw").ok());
    // required with grace: in, then out once the grace period is over.
    admin
        .domain_set("other.org", Policy::Required, Some(2), None, now())
        .unwrap();
    assert!(env.login("mail", "carol@other.org", "carolpw").ok());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(env.login("mail", "carol@other.org", "carolpw").auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("grace_ends="), "{logs}");
    assert!(logs.contains("enrolment required"), "{logs}");
    // required without grace: refused at once.
    admin
        .domain_set("other.org", Policy::Required, None, None, now())
        .unwrap();
    assert_eq!(env.login("mail", "carol@other.org", "carolpw").auth, PAM_AUTH_ERR);
    // disabled: password alone even for an enrolled mailbox, and the whole
    // string goes to the password module untouched.
    let secret = env.enroll("dave@off.org");
    admin
        .domain_set("off.org", Policy::Disabled, None, None, now())
        .unwrap();
    assert!(env.login("mail", "dave@off.org", "davepw").ok());
    let t = fresh_step(3);
    assert_eq!(
        env.login("mail", "dave@off.org", &format!("davepw{}", oathtool(&secret, t)))
            .auth,
        PAM_AUTH_ERR
    );
}

#[test]
fn lockout_backs_off_then_unlock() {
    let env = Env::with_config("[lockout]\nafter = 3\nbackoff = \"1h\"\nmax_backoff = \"1h\"\nblock_after = 10\n");
    env.set_password(ALICE, PW);
    let secret = env.enroll(ALICE);
    let t = fresh_step(10);
    let bad = wrong_code(&secret, t);
    // The same wrong string repeated counts once...
    for _ in 0..5 {
        assert_eq!(env.login("mail", ALICE, &format!("{PW}{bad}")).auth, PAM_AUTH_ERR);
    }
    let st = env.admin().status(&env.admin().mailbox(ALICE).unwrap(), now()).unwrap();
    assert_eq!(st.failures, 1);
    // ...different wrong codes count each.
    for i in 1..3u32 {
        let other = format!("{:06}", (bad.parse::<u32>().unwrap() + i) % 1_000_000);
        assert_eq!(env.login("mail", ALICE, &format!("{PW}{other}")).auth, PAM_AUTH_ERR);
    }
    let code = oathtool(&secret, t);
    let r = env.login("mail", ALICE, &format!("{PW}{code}"));
    assert_eq!(r.auth, PAM_MAXTRIES, "locked out: even the right code is refused");
    let logs = env.logs().join("\n");
    assert!(logs.contains("backing off"), "{logs}");
    let admin = env.admin();
    assert!(admin.unlock(&admin.mailbox(ALICE).unwrap(), now()).unwrap());
    assert!(env.login("mail", ALICE, &format!("{PW}{code}")).ok());
}

#[test]
fn blocked_mailbox_fails_account_too() {
    let env = Env::with_config("[lockout]\nafter = 2\nbackoff = \"1s\"\nmax_backoff = \"1s\"\nblock_after = 2\n");
    env.set_password(ALICE, PW);
    let secret = env.enroll(ALICE);
    let t = fresh_step(10);
    let bad = wrong_code(&secret, t);
    env.login("mail", ALICE, &format!("{PW}{bad}"));
    let other = format!("{:06}", (bad.parse::<u32>().unwrap() + 1) % 1_000_000);
    env.login("mail", ALICE, &format!("{PW}{other}"));
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    assert_eq!(admin.status(&mb, now()).unwrap().lock, "blocked");
    // An app password passes auth but account refuses a blocked mailbox.
    let (_, app) = admin.app_password_add(&mb, "phone", &[], &[], None, now()).unwrap();
    let r = env.login("mail", ALICE, &app);
    assert_eq!((r.auth, r.acct), (PAM_SUCCESS, Some(PAM_PERM_DENIED)));
    admin.unlock(&mb, now()).unwrap();
    assert!(env.login("mail", ALICE, &app).ok());
}

#[test]
fn twenty_threads_one_code_exactly_one_success() {
    let (env, secret) = enrolled();
    let t = fresh_step(10);
    let typed = format!("{PW}{}", oathtool(&secret, t));
    let barrier = std::sync::Barrier::new(20);
    let ok = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    env.login("mail", ALICE, &typed).ok()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count()
    });
    assert_eq!(ok, 1);
    // Replays are not counted as failures: the owner is not locked out.
    let admin = env.admin();
    assert_eq!(admin.status(&admin.mailbox(ALICE).unwrap(), now()).unwrap().failures, 0);
}

#[test]
fn hostile_user_names_are_refused_and_change_nothing() {
    let (env, secret) = enrolled();
    let before = env.snapshot();
    let code = oathtool(&secret, now());
    for user in [
        "../../etc/passwd",
        "alice@example.org/../x",
        "a/b@example.org",
        "@",
        "alice@exa mple.org",
        ".hidden@example.org",
    ] {
        let r = env.login("mail", user, &format!("{PW}{code}"));
        assert_eq!(r.auth, PAM_USER_UNKNOWN, "{user}");
    }
    let r = env.login_raw("mail", b"\xff\xfe@example.org", format!("{PW}{code}").as_bytes(), None);
    assert_eq!(r.auth, PAM_USER_UNKNOWN);
    assert_eq!(env.snapshot(), before);
    let logs = env.logs().join("\n");
    assert!(logs.contains("bad user name"), "{logs}");
}

#[test]
fn app_password_only_for_its_services() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    env.enroll(ALICE);
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    let (_, app) = admin
        .app_password_add(&mb, "Thunderbird", &["imap".to_string()], &[], None, now())
        .unwrap();
    env.write_service("imap", &env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass", ""));
    env.write_service("smtp", &env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass", ""));
    assert!(env.login("imap", ALICE, &app).ok());
    // Typed with spaces instead of dashes, as on a phone.
    assert!(env.login("imap", ALICE, &app.replace('-', " ")).ok());
    assert_eq!(env.login("smtp", ALICE, &app).auth, PAM_AUTH_ERR);
    let logs = env.logs().join("\n");
    assert!(logs.contains("not allowed for this service"), "{logs}");
    let listed = admin.app_password_list(&mb).unwrap();
    assert_eq!(listed[0].last_rhost.as_deref(), Some("192.0.2.10"));
    admin.app_password_revoke(&mb, "Thunderbird").unwrap();
    assert_eq!(env.login("imap", ALICE, &app).auth, PAM_AUTH_ERR);
}

#[test]
fn recovery_code_works_exactly_once() {
    let (env, _) = enrolled();
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    let codes = admin.recovery_codes(&mb, now()).unwrap();
    let typed = format!("{PW}{}", codes[3].as_str());
    assert!(env.login("mail", ALICE, &typed).ok());
    assert_eq!(env.login("mail", ALICE, &typed).auth, PAM_AUTH_ERR);
    assert_eq!(admin.status(&mb, now()).unwrap().recovery_codes_left, 9);
    // Without dashes, upper case: the same code, normalised.
    let other = codes[4].replace('-', "").to_uppercase();
    assert!(env.login("mail", ALICE, &format!("{PW}{other}")).ok());
}

#[test]
fn prompt_mode_asks_for_the_code() {
    // sshd-like stack: no split; the conversation answers both the password
    // and the code prompt with the same string, so give a mailbox whose
    // "password" is accepted by pam_permit and check that verify asked.
    let (env, secret) = enrolled();
    let m = module_path();
    let t = fresh_step(4);
    let code = oathtool(&secret, t);
    env.write_service(
        "sshd",
        &format!(
            "auth requisite pam_permit.so\nauth required {} verify prompt {}\naccount required {} {}\n",
            m.display(),
            env.args(),
            m.display(),
            env.args()
        ),
    );
    let r = env.login("sshd", ALICE, &code);
    assert!(r.ok(), "{r:?} {:?}", env.logs());
    assert_eq!(r.prompts, 1, "verify asked once");
}

#[test]
fn after_disable_code_logins_stop() {
    let (env, secret) = enrolled();
    let admin = env.admin();
    let mb = admin.mailbox(ALICE).unwrap();
    admin.disable(&mb, None, true, now()).unwrap();
    let t = fresh_step(3);
    // Optional domain, no longer enrolled: password alone; password+code is now a wrong password.
    assert!(env.login("mail", ALICE, PW).ok());
    assert_eq!(
        env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t))).auth,
        PAM_AUTH_ERR
    );
}

/// What only the file store has: file modes, torn and damaged files, a
/// file outgrowing its space, the `store` folder in the configuration.
/// tests/suites/postgres.sh leaves these to the run on files (`--skip files_only`).
mod files_only {
    use super::*;

    #[test]
    fn unsafe_store_files_are_refused() {
        let (env, secret) = Env::files("").with_alice();
        let record = env.mailbox_file(ALICE);
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o666)).unwrap();
        let t = fresh_step(3);
        let r = env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t)));
        assert_ne!(r.auth, PAM_SUCCESS);
        let logs = env.logs().join("\n");
        assert!(logs.contains("refusing to use") && logs.contains("chmod"), "{logs}");
        // A symlink in place of the record is refused too.
        std::fs::remove_file(&record).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", &record).unwrap();
        assert_ne!(
            env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t))).auth,
            PAM_SUCCESS
        );
        assert!(env.logs().join("\n").contains("symbolic link"));
    }

    /// A mailbox file that cannot be read as what pam_mfa wrote refuses the
    /// login with PAM_AUTHINFO_UNAVAIL (never "no MFA"), with a log line naming
    /// the file and what is wrong, and never quoting the content (it holds the
    /// secret). The store is left as it was for the admin to inspect.
    #[test]
    fn damaged_mailbox_file_fails_closed() {
        let (env, secret) = Env::files("").with_alice();
        let path = env.mailbox_file(ALICE);
        let good = std::fs::read(&path).unwrap();
        let (json, seq) = env.mailbox_json(ALICE);
        assert!(
            json.contains(&secret),
            "the file holds the secret: the cases below would leak it"
        );
        // Enrolment wrote the file more than once, so both copies hold it.
        let torn = pam_mfa_tests::tear_both_copies(&good);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "hand-written TOML, no magic",
                format!("last_step = \"oops\"\n[totp]\nsecret = \"{secret}\"\n").into_bytes(),
                "does not start with",
            ),
            (
                "the bare JSON, no magic",
                json.clone().into_bytes(),
                "does not start with",
            ),
            ("both copies torn", torn, "neither copy in it is intact"),
            ("truncated", good[..good.len() / 2 + 300].to_vec(), "truncated"),
            (
                "intact copies, JSON of the wrong type",
                pam_mfa::store::slots::encode_file(seq + 1, &format!("{{\"state\":{{\"last_step\":\"{secret}\"}}}}"))
                    .to_vec(),
                "wrong type",
            ),
            (
                "intact copies, not JSON",
                pam_mfa::store::slots::encode_file(seq + 1, &json.replace("\"record\":", "\"record\"=")).to_vec(),
                "not valid JSON",
            ),
        ];
        for (what, bytes, why) in &cases {
            env.write_mailbox_bytes(ALICE, bytes);
            let before = env.snapshot();
            let t = fresh_step(3);
            let r = env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t)));
            assert_eq!((r.auth, r.acct), (PAM_AUTHINFO_UNAVAIL, None), "{what}");
            assert_eq!(env.snapshot(), before, "{what}: the store changed");
            let logs = env.logs().join("\n");
            assert!(
                logs.contains(&format!("{} is damaged", path.display())) && logs.contains(why),
                "{what}: {logs}"
            );
            assert!(
                !logs.contains(&secret) && !logs.contains(&secret.to_lowercase()),
                "{what}: the secret is in the logs: {logs}"
            );
        }
        // The good file back: the login works again.
        env.write_mailbox_bytes(ALICE, &good);
        let t = fresh_step(3);
        assert!(env.login("mail", ALICE, &format!("{PW}{}", oathtool(&secret, t))).ok());
    }

    #[test]
    fn bad_config_fails_closed() {
        let env = Env::files("");
        env.set_password("bob@example.org", "bobpw");
        std::fs::write(&env.config, format!("store = \"{}\"\nsotre = 1\n", env.store.display())).unwrap();
        assert_ne!(env.login("mail", "bob@example.org", "bobpw").auth, PAM_SUCCESS);
        let logs = env.logs().join("\n");
        assert!(logs.contains("line 2") && logs.contains("sotre"), "{logs}");
    }

    /// A mailbox whose content outgrows its file (two 4 KiB copies at first)
    /// keeps working: the file is replaced by a larger one (a larger multiple of
    /// 8 KiB, mode 0600) holding everything the old one held, later writes go in
    /// place in it again, and codes, replays and app passwords work as before.
    #[test]
    fn mailbox_outgrowing_its_file_keeps_working() {
        use std::os::unix::fs::MetadataExt;
        let env = Env::files("[state]\nkeep_logins = 100\n");
        env.write_service(
            "mail",
            &env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass nodelay", ""),
        );
        env.set_password(ALICE, PW);
        let secret = env.enroll(ALICE);
        let admin = env.admin();
        let mb = admin.mailbox(ALICE).unwrap();
        let (_, app) = admin.app_password_add(&mb, "phone", &[], &[], None, now()).unwrap();
        let app = app.to_string();
        let path = env.mailbox_file(ALICE);
        let meta = || std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta().len(), 8192);
        let record = admin.store.read_record(&mb).unwrap().unwrap();
        let logins_before = admin.store.read_mailbox(&mb).unwrap().unwrap().state.logins.len();
        // Logins (each adds one to the state's history) until the file is replaced.
        let first = meta();
        let mut n = 0;
        while meta().len() == first.len() {
            assert_eq!(meta().ino(), first.ino(), "written in place while it fits");
            let r = env.login("mail", ALICE, &app);
            assert!(r.ok(), "login {n}: {r:?} {:?}", env.logs());
            n += 1;
            assert!(n <= 80, "80 logins did not outgrow 4 KiB");
        }
        let grown = meta();
        assert!(
            grown.len() > first.len() && grown.len().is_multiple_of(8192),
            "{}",
            grown.len()
        );
        assert_ne!(grown.ino(), first.ino(), "a new file");
        assert_eq!(grown.mode() & 0o7777, 0o600);
        assert_eq!(grown.uid(), 0);
        // Nothing lost in the move.
        let file = admin.store.read_mailbox(&mb).unwrap().unwrap();
        assert_eq!(file.record, record);
        assert_eq!(file.state.logins.len(), logins_before + n);
        // In place again in the larger file; a code logs in once.
        let t = fresh_step(5);
        let typed = format!("{PW}{}", oathtool(&secret, t));
        assert!(env.login("mail", ALICE, &typed).ok());
        assert_eq!(env.login("mail", ALICE, &typed).auth, PAM_AUTH_ERR);
        assert!(env.login("mail", ALICE, &app).ok());
        assert_eq!((meta().len(), meta().ino()), (grown.len(), grown.ino()));
        let st = admin.store.read_mailbox(&mb).unwrap().unwrap().state;
        assert_eq!(st.last_step, Some(t / 30));
        assert_eq!(st.logins.len(), logins_before + n + 3);
        assert_eq!(st.failures, 0);
        // The record grows too (app passwords added by mfa-ctl) until the file
        // is replaced again; every app password works.
        let mut added = vec![app];
        while meta().len() == grown.len() {
            let (_, a) = admin
                .app_password_add(&mb, &format!("device {}", added.len()), &[], &[], None, now())
                .unwrap();
            added.push(a.to_string());
            assert!(added.len() <= 60, "60 app passwords did not outgrow the file");
        }
        assert!(
            meta().len() > grown.len() && meta().len().is_multiple_of(8192),
            "{}",
            meta().len()
        );
        for a in &added {
            assert!(env.login("mail", ALICE, a).ok());
        }
        assert_eq!(admin.app_password_list(&mb).unwrap().len(), added.len());
        let leftovers: Vec<_> = env
            .snapshot()
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| !p.to_string_lossy().ends_with(".mfa") && !p.ends_with(pam_mfa::store::MARKER))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
