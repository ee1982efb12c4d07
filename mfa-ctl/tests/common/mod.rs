//! What the mfa-ctl tests share: running the built binary against a test
//! `Env` (temp store and config, real libpam harness), golden comparison with
//! placeholders for the random parts, and reading a QR code off the screen
//! the way a phone does (`zbarimg`, an implementation we did not write).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub use pam_mfa_tests::*;
use std::path::Path;
use std::process::Command;

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn expect(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `mfa-ctl --config <env's config> ARGS`, stdin closed.
pub fn ctl(env: &Env, args: &[&str]) -> Out {
    ctl_with_env(env, &[], args)
}

/// [`ctl`] with environment variables set for mfa-ctl (`vars`).
pub fn ctl_with_env(env: &Env, vars: &[(&str, &str)], args: &[&str]) -> Out {
    let out = mfa_ctl_command(&env.config)
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("run mfa-ctl");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Enrols through `mfa-ctl --begin/--confirm`, confirming with the code of
/// the PREVIOUS step so the current one is still fresh for a login.
pub fn enroll(env: &Env, mailbox: &str) -> String {
    let begin = ctl(env, &["--json", "enroll", mailbox, "--begin"]).expect(0).json();
    let secret = begin["secret"].as_str().unwrap().to_string();
    // At least 2 s left in this step, so mfa-ctl (reading its own clock a
    // moment later) is still in it and the previous step is in its window.
    let t = fresh_step(2);
    ctl(env, &["enroll", mailbox, "--confirm", &oathtool(&secret, t - 30)]).expect(0);
    secret
}

/// Adds the recommended stack under each service name (imap, smtp, ...).
pub fn services(env: &Env, names: &[&str]) {
    for n in names {
        env.write_service(n, &env.stack("pam_pwdfile.so pwdfile=PWDFILE use_first_pass", ""));
    }
}

/// `actual` matches `golden` line by line; `[..]` in a golden line matches
/// any text (the random or time-dependent parts). `MFA_CTL_BLESS=1` writes
/// the actual output instead: then put the `[..]` back by hand.
#[track_caller]
pub fn assert_golden(golden_file: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(golden_file);
    // Audit lines go to syslog, or to stderr where there is none (as in CI):
    // they are not part of the output a golden file pins down.
    let filtered: String = actual
        .lines()
        .filter(|l| !is_audit(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let actual = filtered.as_str();
    if std::env::var_os("MFA_CTL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (g, a): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), actual.lines().collect());
    let mismatch = g.len() != a.len() || g.iter().zip(&a).any(|(g, a)| !line_matches(g, a));
    assert!(
        !mismatch,
        "output does not match {}\n--- golden\n{golden}\n--- actual\n{actual}",
        path.display()
    );
}

fn is_audit(line: &str) -> bool {
    line.starts_with("mfa-ctl: ")
        && line
            .rsplit_once(" by_uid=")
            .is_some_and(|(_, uid)| uid.bytes().all(|b| b.is_ascii_digit()))
}

fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The lines of `screen` that draw a QR code with half blocks.
pub fn qr_lines(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter(|l| {
            l.chars().count() > 20
                && l.chars()
                    .all(|c| matches!(c, ' ' | '\u{2580}' | '\u{2584}' | '\u{2588}'))
        })
        .map(str::to_string)
        .collect()
}

/// Decodes a half-block QR drawing as it looks on a terminal whose
/// background is light (`light_background`) or dark: draws it into a PGM
/// image and asks zbarimg what it says.
pub fn decode_qr(lines: &[String], light_background: bool) -> String {
    assert!(!lines.is_empty(), "no QR code drawing found");
    const SCALE: usize = 6;
    const MARGIN: usize = 4 * SCALE; // a terminal's own background around the drawing
    let cols = lines.iter().map(|l| l.chars().count()).max().unwrap();
    let (fg, bg): (u8, u8) = if light_background { (0, 255) } else { (255, 0) };
    // Every pixel starts as the terminal's background; the margin too, as on screen.
    let (w, h) = (cols * SCALE + 2 * MARGIN, lines.len() * 2 * SCALE + 2 * MARGIN);
    let mut px = vec![bg; w * h];
    for (row, line) in lines.iter().enumerate() {
        for (col, ch) in line.chars().enumerate() {
            let (top, bottom) = match ch {
                '\u{2580}' => (true, false),
                '\u{2584}' => (false, true),
                '\u{2588}' => (true, true),
                _ => (false, false),
            };
            for (half, on) in [(0, top), (1, bottom)] {
                if !on {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let y = MARGIN + (row * 2 + half) * SCALE + dy;
                        let x = MARGIN + col * SCALE + dx;
                        px[y * w + x] = fg;
                    }
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qr.pgm");
    let mut data = format!("P5\n{w} {h}\n255\n").into_bytes();
    data.extend_from_slice(&px);
    std::fs::write(&file, data).unwrap();
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&file)
        .output()
        .expect("zbarimg must be installed (Debian package zbar-tools); tests/deps.sh installs it");
    assert!(
        out.status.success(),
        "zbarimg found no QR code (exit {:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

/// Fails if `text` holds a character a terminal acts on: C0 controls other
/// than newline (ESC, BEL, ...), DEL, C1 controls (U+009B starts an escape
/// sequence by itself), bidi overrides and isolates.
#[track_caller]
pub fn assert_no_controls(text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .collect();
    assert!(bad.is_empty(), "control characters {bad:?} in output:\n{text:?}");
}
