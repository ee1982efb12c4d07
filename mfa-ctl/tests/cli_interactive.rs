//! The interactive enrolment as a person does it, in a real terminal (tmux):
//! read the QR code and the key off the screen, compute the code with
//! oathtool, type a wrong code, then the right one at the "Challenge:"
//! prompt. The QR code on screen must decode (zbarimg) to the exact URI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of our own (its socket in a temp folder), killed when the
/// test ends.
struct Tmux {
    socket: String,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let dir = tempfile::Builder::new().prefix("mfa-ctl-tmux").tempdir().unwrap();
        let socket = dir.path().join("socket").to_str().unwrap().to_string();
        let t = Tmux { socket, _dir: dir };
        let ok = Command::new("tmux")
            .args([
                "-u",
                "-f",
                "/dev/null",
                "-S",
                &t.socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "90",
            ])
            .arg(command)
            .env("LANG", "C.UTF-8")
            .status()
            .expect("tmux must be installed (Debian package tmux); tests/deps.sh installs it");
        assert!(ok.success(), "tmux new-session failed");
        t
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args([
                "-S",
                &self.socket,
                "capture-pane",
                "-p",
                "-t",
                "t",
                "-S",
                "-",
                "-E",
                "-",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    fn type_line(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["-S", &self.socket, "send-keys", "-t", "t", "-l", text])
            .status()
            .unwrap();
        assert!(ok.success());
        let ok = Command::new("tmux")
            .args(["-S", &self.socket, "send-keys", "-t", "t", "Enter"])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits until the screen satisfies `done` (a person waiting for the
    /// program); the limit only stops a hung test.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited for {what}; the screen shows:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-S", &self.socket, "kill-server"]).status();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn interactive_enrolment_in_a_terminal() {
    let env = Env::new();
    env.set_password("alice@example.org", "T9D3K!px");
    let cmd = format!(
        "{} --config {} enroll alice@example.org; echo EXIT=$?; sleep 300",
        shell_quote(mfa_ctl_path().to_str().unwrap()),
        shell_quote(env.config.to_str().unwrap())
    );
    let tmux = Tmux::start(&cmd);
    let screen = tmux.wait_for("the Challenge prompt", |s| s.contains("Challenge:"));

    // What the person sees: the key in groups, the URI, and the QR code.
    let key_line = screen
        .lines()
        .find(|l| l.trim_start().starts_with("key:"))
        .expect("a key: line");
    let secret: String = key_line
        .trim_start()
        .trim_start_matches("key:")
        .split_whitespace()
        .collect();
    let uri_line = screen
        .lines()
        .find(|l| l.starts_with("otpauth URI: "))
        .expect("the URI line");
    let uri = uri_line.trim_start_matches("otpauth URI: ").trim_end();
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/Test%20Mail:alice%40example.org?secret={secret}&issuer=Test%20Mail&algorithm=SHA1&digits=6&period=30"
        )
    );
    // The default drawing is for a dark background.
    assert_eq!(decode_qr(&qr_lines(&screen), false), uri, "the QR code on screen");

    // Pending until the challenge: the password alone still logs in.
    assert!(env.login("mail", "alice@example.org", "T9D3K!px").ok());

    // A wrong code: told so, with the seconds left, and asked again.
    let t = now();
    tmux.type_line(&wrong_code(&secret, t));
    let screen = tmux.wait_for("a second prompt", |s| s.matches("Challenge:").count() == 2);
    assert!(screen.contains("that code is not valid"), "{screen}");
    assert!(screen.contains("s left on the current one"), "{screen}");
    assert_eq!(
        ctl(&env, &["--json", "status", "alice@example.org"]).expect(0).json()["state"],
        "pending"
    );

    // The code the app shows now, computed independently.
    let t = fresh_step(3);
    let code = oathtool(&secret, t);
    tmux.type_line(&code);
    let screen = tmux.wait_for("the program to end", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("MFA is now on for alice@example.org"), "{screen}");
    assert_eq!(
        ctl(&env, &["--json", "status", "alice@example.org"]).expect(0).json()["state"],
        "enabled"
    );

    // The challenge code's step counts as used: it cannot also log in.
    assert!(!env.login("mail", "alice@example.org", &format!("T9D3K!px{code}")).ok());
    assert!(
        !env.login("mail", "alice@example.org", "T9D3K!px").ok(),
        "MFA is on: password alone refused"
    );
}

#[test]
fn interactive_enrolment_can_be_abandoned() {
    let env = Env::new();
    let cmd = format!(
        "{} --config {} enroll zed@example.org --no-qr; echo EXIT=$?; sleep 300",
        shell_quote(mfa_ctl_path().to_str().unwrap()),
        shell_quote(env.config.to_str().unwrap())
    );
    let tmux = Tmux::start(&cmd);
    let screen = tmux.wait_for("the Challenge prompt", |s| s.contains("Challenge:"));
    assert!(qr_lines(&screen).is_empty(), "--no-qr drew a QR code:\n{screen}");
    tmux.type_line("");
    let screen = tmux.wait_for("the program to end", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=1"), "{screen}");
    assert!(screen.contains("MFA is still off for zed@example.org"), "{screen}");
    assert_eq!(
        ctl(&env, &["--json", "status", "zed@example.org"]).expect(0).json()["state"],
        "pending"
    );
}

#[test]
fn inverted_qr_code_decodes_on_a_light_background() {
    let env = Env::new();
    let out = ctl(&env, &["enroll", "bob@example.org", "--begin", "--invert"])
        .expect(0)
        .stdout;
    let uri = out.lines().find_map(|l| l.strip_prefix("otpauth URI: ")).unwrap();
    assert_eq!(decode_qr(&qr_lines(&out), true), uri);
    let out = ctl(&env, &["enroll", "bob@example.org", "--begin"]).expect(0).stdout;
    let uri = out.lines().find_map(|l| l.strip_prefix("otpauth URI: ")).unwrap();
    assert_eq!(decode_qr(&qr_lines(&out), false), uri);
}

#[test]
fn qr_code_of_an_issuer_that_needs_percent_encoding() {
    let env = Env::with_config("");
    let text = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("issuer = \"Test Mail\"", "issuer = \"Ünï Mail & Co #1\"");
    std::fs::write(&env.config, text).unwrap();
    let j = ctl(&env, &["--json", "enroll", "o'brien+tag@example.org", "--begin"])
        .expect(0)
        .json();
    let uri = j["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/%C3%9Cn%C3%AF%20Mail%20%26%20Co%20%231:o%27brien%2Btag%40example.org?secret="),
        "{uri}"
    );
    assert!(uri.contains("&issuer=%C3%9Cn%C3%AF%20Mail%20%26%20Co%20%231&"), "{uri}");
    let out = ctl(&env, &["enroll", "o'brien+tag@example.org", "--begin"])
        .expect(0)
        .stdout;
    let uri = out.lines().find_map(|l| l.strip_prefix("otpauth URI: ")).unwrap();
    assert_eq!(decode_qr(&qr_lines(&out), false), uri);
}
