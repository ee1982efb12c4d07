//! Golden tests of what mfa-ctl prints, for people and for `--json`, so a
//! change to the wording or to a JSON key is a visible, reviewed change
//! (panels parse the JSON). Random and time-dependent parts are `[..]` in the
//! files under tests/golden/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::*;

fn pretty(out: Out) -> String {
    serde_json::to_string_pretty(&out.json()).unwrap() + "\n"
}

#[test]
fn golden_outputs_through_a_mailbox_life() {
    let env = Env::new();
    services(&env, &["imap"]);
    env.set_password("alice@example.org", "T9D3K!px");
    let mb = "alice@example.org";

    assert_golden(
        "domain-list-empty.txt",
        &ctl(&env, &["domain", "list"]).expect(0).stdout,
    );
    assert_golden(
        "domain-set.txt",
        &ctl(&env, &["domain", "set", "example.org", "required", "--grace", "36h"])
            .expect(0)
            .stdout,
    );
    assert_golden(
        "domain-show.txt",
        &ctl(&env, &["domain", "show", "example.org"]).expect(0).stdout,
    );
    assert_golden(
        "domain-show.json",
        &pretty(ctl(&env, &["--json", "domain", "show", "example.org"]).expect(0)),
    );
    assert_golden("domain-list.txt", &ctl(&env, &["domain", "list"]).expect(0).stdout);
    assert_golden("status-grace.txt", &ctl(&env, &["status", mb]).expect(0).stdout);

    assert_golden(
        "enroll-begin.txt",
        &ctl(&env, &["enroll", mb, "--begin", "--no-qr"]).expect(0).stdout,
    );
    let begin = ctl(&env, &["--json", "enroll", mb, "--begin"]).expect(0);
    let secret = begin.json()["secret"].as_str().unwrap().to_string();
    assert_golden("enroll-begin.json", &pretty(begin));
    assert_golden("status-pending.txt", &ctl(&env, &["status", mb]).expect(0).stdout);
    let wrong = ctl(&env, &["enroll", mb, "--confirm", &wrong_code(&secret, now())]).expect(1);
    assert_golden("enroll-confirm-wrong.stderr", &wrong.stderr);
    let t = fresh_step(2);
    assert_golden(
        "enroll-confirm.txt",
        &ctl(&env, &["enroll", mb, "--confirm", &oathtool(&secret, t - 30)])
            .expect(0)
            .stdout,
    );

    assert_golden(
        "recovery-codes.txt",
        &ctl(&env, &["recovery-codes", mb]).expect(0).stdout,
    );
    assert_golden(
        "recovery-codes.json",
        &pretty(ctl(&env, &["--json", "recovery-codes", mb]).expect(0)),
    );

    let add = [
        "app-password",
        "add",
        mb,
        "--service",
        "imap,smtp",
        "--from",
        "192.0.2.0/24",
    ];
    assert_golden(
        "app-password-add.txt",
        &ctl(&env, &[&add[..], &["--label", "Phone"]].concat()).expect(0).stdout,
    );
    let added = ctl(
        &env,
        &[&["--json"], &add[..], &["--label", "Laptop", "--expires", "30d"]].concat(),
    )
    .expect(0);
    let laptop = added.json()["password"].as_str().unwrap().to_string();
    assert_golden("app-password-add.json", &pretty(added));
    assert!(env.login("imap", mb, &laptop).ok());
    let t = fresh_step(5);
    assert!(env.login("mail", mb, &format!("T9D3K!px{}", oathtool(&secret, t))).ok());
    assert!(
        !env.login("mail", mb, &format!("T9D3K!px{}", wrong_code(&secret, t)))
            .ok()
    );

    assert_golden(
        "app-password-list.txt",
        &ctl(&env, &["app-password", "list", mb]).expect(0).stdout,
    );
    assert_golden(
        "app-password-list.json",
        &pretty(ctl(&env, &["--json", "app-password", "list", mb]).expect(0)),
    );
    assert_golden("logins.txt", &ctl(&env, &["logins", mb]).expect(0).stdout);
    assert_golden(
        "logins.json",
        &pretty(ctl(&env, &["--json", "logins", mb, "--limit", "2"]).expect(0)),
    );
    assert_golden("status-enabled.txt", &ctl(&env, &["status", mb]).expect(0).stdout);
    assert_golden(
        "status-enabled.json",
        &pretty(ctl(&env, &["--json", "status", mb]).expect(0)),
    );
    assert_golden("list.txt", &ctl(&env, &["list"]).expect(0).stdout);
    assert_golden("unlock.txt", &ctl(&env, &["unlock", mb]).expect(0).stdout);
    assert_golden(
        "app-password-revoke.txt",
        &ctl(&env, &["app-password", "revoke", mb, "Phone"]).expect(0).stdout,
    );
    assert_golden(
        "app-password-revoke-unknown.json",
        &pretty(ctl(&env, &["--json", "app-password", "revoke", mb, "Phone"]).expect(1)),
    );
    assert_golden(
        "disable-required.stderr",
        &ctl(&env, &["disable", mb, "--code", "123456"]).expect(1).stderr,
    );
    assert_golden(
        "disable-force.txt",
        &ctl(&env, &["disable", mb, "--force"]).expect(0).stdout,
    );
    assert_golden(
        "disable-force.json",
        &pretty(ctl(&env, &["--json", "disable", mb, "--force"]).expect(0)),
    );
}
