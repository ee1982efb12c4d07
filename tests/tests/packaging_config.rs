//! The commented default config the packages install as /etc/pam_mfa.toml
//! (packaging/pam_mfa.toml) must parse, must change nothing (every value in
//! it is the built-in default), and must mention every key, so that an admin
//! reading it sees all there is to set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa::config::Config;

fn shipped() -> String {
    let path = pam_mfa_tests::workspace().join("packaging").join("pam_mfa.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn shipped_config_parses_to_the_defaults() {
    let parsed = Config::parse(&shipped()).unwrap_or_else(|(line, msg)| panic!("line {line:?}: {msg}"));
    assert_eq!(parsed, Config::default());
}

#[test]
fn shipped_config_mentions_every_key() {
    let text = shipped();
    // The optional keys are shown commented out (TOML has no "unset").
    for key in [
        "backend = ",
        "store = ",
        "issuer = ",
        "#default_domain = ",
        "default_policy = ",
        "#store_owner = ",
        "[totp]",
        "window = ",
        "digits = ",
        "period = ",
        "[lockout]",
        "after = ",
        "backoff = ",
        "max_backoff = ",
        "block_after = ",
        "[state]",
        "keep_logins = ",
        "durable = ",
        "#[sms]",
        "#command = ",
        "#timeout = ",
        "#code_lifetime = ",
        "#resend_after = ",
        "#max_per_hour = ",
        "#message = ",
        "#[postgres]",
        "#url = ",
        "#password_file = ",
        "#admin_url = ",
        "#admin_password_file = ",
        "#key_file = ",
        "#connect_timeout = ",
        "#statement_timeout = ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(key)),
            "packaging/pam_mfa.toml has no line starting with {key:?}"
        );
    }
}

#[test]
fn commented_examples_parse_when_uncommented() {
    // An admin who removes the '#' must get a valid file, not an error.
    let text = shipped()
        .replace("#default_domain = ", "default_domain = ")
        .replace("#store_owner = ", "store_owner = ");
    let c = Config::parse(&text).unwrap_or_else(|(line, msg)| panic!("line {line:?}: {msg}"));
    assert_eq!(c.default_domain.as_deref(), Some("example.org"));
    assert_eq!(c.store_owner.as_deref(), Some("dovecot"));
    // The database and webmail sections, uncommented as a whole with
    // backend switched.
    let text = shipped()
        .replace("backend = \"files\"", "backend = \"postgres\"")
        .lines()
        .map(|l| {
            let bare = l.trim_start_matches('#');
            let header = l.starts_with("#[postgres]") || l.starts_with("#[sms]") || l.starts_with("#[webmail]");
            if header || (l.starts_with('#') && bare.contains(" = ") && !l.starts_with("# ")) {
                bare.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::parse(&text).unwrap_or_else(|(line, msg)| panic!("line {line:?}: {msg}"));
    let pg = c.postgres.unwrap();
    assert_eq!(c.backend, pam_mfa::config::BackendKind::Postgres);
    assert!(pg.url.contains("pam_mfa_login@") && pg.admin_url.unwrap().contains("pam_mfa_admin@"));
    assert_eq!((pg.connect_timeout, pg.statement_timeout), (2, 2));
    assert_eq!(c.webmail.reuse_window, 8 * 3600);
    assert_eq!(c.webmail.networks.len(), 1);
    assert_eq!(
        c.webmail.services.as_deref(),
        Some(&["imap".to_string(), "smtp".to_string()][..])
    );
    // The text-message section: its values are the defaults of a section
    // that names a command.
    let sms = c.sms.unwrap();
    assert_eq!(
        sms,
        pam_mfa::config::SmsConfig {
            command: "/usr/local/sbin/pam_mfa-send-sms".into(),
            ..Default::default()
        }
    );
}
