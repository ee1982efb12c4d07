//! `mfa-ctl import` end to end: secret files written by Debian's own
//! `google-authenticator` program (run non-interactively) and hand-written
//! pam_oath users files are imported with the built mfa-ctl, then users log
//! in through the real libpam with codes `oathtool` computes from the
//! ORIGINAL file's secret: the authenticator app keeps working without a
//! new scan. On files, and on PostgreSQL under PAM_MFA_TEST_BACKEND=postgres
//! (tests/suites/postgres.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa_tests::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An RFC 4226 test key in hex, as pam_oath files hold keys.
const HEX_KEY: &str = "3132333435363738393031323334353637383930";
const HEX_KEY2: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334";

/// Runs Debian's `google-authenticator` with `flags`, writing `file`.
fn google_authenticator(file: &Path, flags: &[&str]) {
    let out = Command::new("google-authenticator")
        .args(flags)
        .args(["-f", "-C", "-q", "-s"])
        .arg(file)
        .output()
        .expect("google-authenticator must be installed (Debian package libpam-google-authenticator)");
    assert!(
        out.status.success(),
        "google-authenticator {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The usual file: TOTP, reuse disallowed, rate limit, window 3, 5 scratch codes.
const DEBIAN: &[&str] = &["-t", "-d", "-r", "3", "-R", "30", "-w", "3", "-e", "5"];

/// The secret (first line) and the scratch codes of a google-authenticator file.
fn ga_contents(file: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let secret = lines.next().unwrap().to_string();
    let codes = lines
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    (secret, codes)
}

/// `oathtool --totp` with options (`-b` for base32, `-d 8`, `-s 60s`) at `t`.
fn oath_code(args: &[&str], key: &str, t: u64) -> String {
    let out = Command::new("oathtool")
        .arg("--totp")
        .args(args)
        .arg(key)
        .args(["-N", &format!("@{t}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Now, with at least `margin` seconds left in the current step of `period`.
fn fresh(period: u64, margin: u64) -> u64 {
    loop {
        let t = now();
        if period - t % period >= margin {
            return t;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn ctl(env: &Env, args: &[&str]) -> Run {
    let out = env.mfa_ctl(args);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A folder for input files, beside (not inside) the store.
fn input_dir(env: &Env, name: &str) -> PathBuf {
    let d = env.dir.path().join(name);
    std::fs::create_dir(&d).unwrap();
    d
}

fn login_code(env: &Env, user: &str, pw: &str, code: &str) -> bool {
    env.login("mail", user, &format!("{pw}{code}")).ok()
}

/// A scratch code as users type it: its 8 digits with a dash in the middle.
fn dashed(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

#[test]
fn a_debian_file_logs_in_with_the_original_secret_and_its_scratch_code_once() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    let file = input_dir(&env, "home").join(".google_authenticator");
    google_authenticator(&file, DEBIAN);
    let (secret, scratch) = ga_contents(&file);
    assert_eq!(scratch.len(), 5);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o400);

    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Imported alice@example.org"), "{}", r.stdout);
    assert!(r.stdout.contains("5 scratch codes as recovery codes"), "{}", r.stdout);
    // Nothing shown quotes the secret or a scratch code (text or JSON).
    let again = ctl(&env, &["import", "google-authenticator", ALICE, path(&file), "--json"]);
    for shown in [&r.stdout, &r.stderr, &again.stdout, &again.stderr] {
        assert!(!shown.contains(&secret), "{shown}");
        assert!(!scratch.iter().any(|c| shown.contains(c.as_str())), "{shown}");
    }

    // The code the user's app shows (oathtool from the file's own secret).
    let t = fresh(30, 8);
    let code = oath_code(&["-b"], &secret, t);
    assert!(login_code(&env, ALICE, PW, &code));
    assert!(!login_code(&env, ALICE, PW, &code), "each code once");

    // A scratch code from the file, typed with a dash in the middle: once.
    assert!(login_code(&env, ALICE, PW, &dashed(&scratch[2])));
    assert!(
        !login_code(&env, ALICE, PW, &dashed(&scratch[2])),
        "a scratch code works once"
    );
    let logs = env.logs().join("\n");
    assert!(logs.contains("method=scratch_code"), "{logs}");
    let status = ctl(&env, &["status", ALICE, "--json"]).json();
    assert_eq!(status["recovery_codes_left"], 4);
    // The others still work, and the password alone does not.
    assert!(login_code(&env, ALICE, PW, &dashed(&scratch[4])));
    assert_eq!(env.login("mail", ALICE, PW).auth, PAM_AUTH_ERR);
    // Without the dash the 8 digits are no scratch code: they could not be
    // told from a password ending in digits plus a TOTP code, so a wrong
    // guess in that form could not be counted.
    assert!(!login_code(&env, ALICE, PW, &scratch[3]));
    assert_eq!(ctl(&env, &["status", ALICE, "--json"]).json()["recovery_codes_left"], 3);
}

/// A lock-out made for this test: 3 wrong codes block the mailbox until
/// `mfa-ctl unlock`.
const BLOCK_AFTER_3: &str = "[lockout]\nafter = 3\nbackoff = \"1h\"\nmax_backoff = \"1h\"\nblock_after = 3\n";

/// Guesses at a scratch code after the right password, in the form the
/// codes are typed in (`1234-5678`), are cut off by `split` whether or not
/// they match and counted by `verify` like wrong TOTP codes, so they run
/// into the lock-out: 9×10^7 values per code is too few to go uncounted.
/// The right code then logs in once, and only once.
#[test]
fn wrong_scratch_code_guesses_are_counted_and_lock_the_mailbox() {
    let env = Env::quick(BLOCK_AFTER_3);
    env.set_password(ALICE, PW);
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, DEBIAN);
    let (_, scratch) = ga_contents(&file);
    assert_eq!(
        ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]).code,
        0
    );
    env.logs();
    let status = || ctl(&env, &["status", ALICE, "--json"]).json();

    // google-authenticator's codes never start with 0: these are all wrong.
    for (i, guess) in ["0000-0001", "0000-0002", "0000-0003"].iter().enumerate() {
        assert_eq!(env.login("mail", ALICE, &format!("{PW}{guess}")).auth, PAM_AUTH_ERR);
        assert_eq!(
            status()["failures"].as_u64(),
            Some(i as u64 + 1),
            "guess {guess} counted"
        );
    }
    let logs = env.logs().join("\n");
    assert_eq!(
        logs.matches("result=refused reason=\"wrong code\" factor=scratch_code")
            .count(),
        3,
        "{logs}"
    );
    assert!(
        !logs.contains("0000-000") && !logs.contains("0000000"),
        "no guess is logged: {logs}"
    );
    assert_eq!(status()["lock"], "blocked");
    // Blocked: the right code is refused too, and nothing of it is spent.
    let right = format!("{PW}{}", dashed(&scratch[0]));
    assert_eq!(env.login("mail", ALICE, &right).auth, PAM_MAXTRIES);
    assert_eq!(status()["recovery_codes_left"], 5);

    assert_eq!(ctl(&env, &["unlock", ALICE]).code, 0);
    assert!(env.login("mail", ALICE, &right).ok(), "the right code, once");
    assert_eq!(status()["failures"], 0);
    assert_eq!(env.login("mail", ALICE, &right).auth, PAM_AUTH_ERR, "and only once");
    assert_eq!(status()["failures"], 1, "a used code again is a wrong code");
    assert_eq!(status()["recovery_codes_left"], 4);
    let logs = env.logs().join("\n");
    assert!(logs.contains("method=scratch_code recovery_codes_left=4"), "{logs}");
}

/// The dashed form is never the end of a password plus a TOTP code (a 6-,
/// 7- or 8-digit code has no dash 5th from the end), so taking it for a
/// scratch code changes nothing for passwords that end in digits, or even
/// in `dddd-dddd`, followed by the code.
#[test]
fn passwords_ending_in_digits_still_log_in_with_a_scratch_set() {
    let env = Env::quick(BLOCK_AFTER_3);
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, DEBIAN);
    let (secret, scratch) = ga_contents(&file);
    for (i, pw) in ["Summer2024", "pw1234-5678", "12345678", "pw-1234-56"]
        .iter()
        .enumerate()
    {
        let user = format!("user{i}@{DOMAIN}");
        env.set_password(&user, pw);
        assert_eq!(
            ctl(&env, &["import", "google-authenticator", &user, path(&file)]).code,
            0
        );
        let t = fresh(30, 8);
        let code = oath_code(&["-b"], &secret, t);
        assert!(login_code(&env, &user, pw, &code), "{pw} + code");
        // And a scratch code after such a password.
        assert!(login_code(&env, &user, pw, &dashed(&scratch[1])), "{pw} + scratch code");
        let s = ctl(&env, &["status", &user, "--json"]).json();
        assert_eq!(
            (s["failures"].as_u64(), s["recovery_codes_left"].as_u64()),
            (Some(0), Some(4))
        );
    }
}

#[test]
fn a_step_size_of_60_seconds_is_carried_over() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, &["-t", "-D", "-u", "-S", "60", "-w", "3", "-e", "2"]);
    let (secret, _) = ga_contents(&file);
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file), "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!((v["period"].as_u64(), v["digits"].as_u64()), (Some(60), Some(6)));
    assert_eq!(v["outcome"], "imported");
    // -D (reuse allowed): noted, since pam_mfa accepts each code once.
    let kinds = strings(&v, "notes", "kind");
    assert!(kinds.contains(&"reuse_allowed"), "{kinds:?}");
    let t = fresh(60, 8);
    let code = oath_code(&["-b", "-s", "60s"], &secret, t);
    assert!(login_code(&env, ALICE, PW, &code));
    assert!(!login_code(&env, ALICE, PW, &code));
}

#[test]
fn counter_based_files_are_refused() {
    let env = Env::new();
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, &["-c", "-u", "-w", "5", "-e", "0"]);
    let before = env.snapshot();
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("counter-based (HOTP)"), "{}", r.stderr);
    assert_eq!(env.snapshot(), before);
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file), "--json"]);
    assert_eq!(r.json()["error"], "refused");
}

/// What google-authenticator wrote before 2016: 16 base32 characters, 80 bits.
fn old_ga_file(file: &Path, secret: &str) {
    std::fs::write(
        file,
        format!("{secret}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n"),
    )
    .unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o400)).unwrap();
}

#[test]
fn short_secrets_only_when_allowed() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    let file = input_dir(&env, "home").join("ga");
    let secret = "JBSWY3DPEHPK3PXP"; // 80 bits
    old_ga_file(&file, secret);
    let before = env.snapshot();
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("80 bits") && r.stderr.contains("--allow-short-secrets"),
        "{}",
        r.stderr
    );
    assert_eq!(env.snapshot(), before, "nothing written");

    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            ALICE,
            path(&file),
            "--allow-short-secrets",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!((v["weak"].as_bool(), v["secret_bits"].as_u64()), (Some(true), Some(80)));
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("weak_secret") && notes.contains("wider_window"),
        "{notes}"
    );
    let t = fresh(30, 8);
    assert!(login_code(&env, ALICE, PW, &oath_code(&["-b"], secret, t)));
    assert!(login_code(&env, ALICE, PW, "1234-5678"), "its scratch code");
    // The same secret is weak for the library too (what `list --weak` uses).
    let admin = env.admin();
    let record = admin
        .store
        .read_record(&admin.mailbox(ALICE).unwrap())
        .unwrap()
        .unwrap();
    assert!(record.totp.unwrap().is_weak());
    // Below 80 bits: never.
    old_ga_file(&file, "JBSWY3DPEHPK3");
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "bob",
            path(&file),
            "--allow-short-secrets",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("fewer than the 80"), "{}", r.stderr);
}

#[test]
fn the_same_import_twice_changes_nothing() {
    let env = Env::new();
    let home = input_dir(&env, "home");
    let file = home.join("ga");
    google_authenticator(&file, DEBIAN);
    assert_eq!(
        ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]).code,
        0
    );
    let after_first = env.snapshot();
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("nothing changed"), "{}", r.stdout);
    assert_eq!(
        ctl(&env, &["import", "google-authenticator", ALICE, path(&file), "--json"]).json()["outcome"],
        "unchanged"
    );
    // Even with --replace: there is nothing to replace.
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            ALICE,
            path(&file),
            "--replace",
            "--json",
        ],
    );
    assert_eq!(r.json()["outcome"], "unchanged");
    assert_eq!(env.snapshot(), after_first, "nothing written the second time");

    // And in bulk: the folder holding alice's file, twice.
    std::fs::rename(&file, home.join("alice")).unwrap();
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&home),
            "--domain",
            DOMAIN,
            "--json",
        ],
    );
    let v = r.json();
    assert_eq!((v["unchanged"].as_u64(), v["imported"].as_u64()), (Some(1), Some(0)));
    assert_eq!(env.snapshot(), after_first);
}

#[test]
fn replace_and_dry_run() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    let old_secret = env.enroll(ALICE);
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, DEBIAN);
    let (secret, _) = ga_contents(&file);
    let enrolled = env.snapshot();

    // Enrolled with another secret: left alone without --replace.
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("another secret") && r.stderr.contains("--replace"),
        "{}",
        r.stderr
    );
    assert_eq!(env.snapshot(), enrolled);

    // A dry run says what it would do and writes nothing.
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            ALICE,
            path(&file),
            "--replace",
            "--dry-run",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Would replace") && r.stdout.contains("Dry run"),
        "{}",
        r.stdout
    );
    assert_eq!(env.snapshot(), enrolled);
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "newbie",
            path(&file),
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(
        (r.json()["outcome"].as_str(), r.json()["dry_run"].as_bool()),
        (Some("imported"), Some(true))
    );
    assert_eq!(env.snapshot(), enrolled, "a dry run creates no mailbox either");

    let r = ctl(
        &env,
        &["import", "google-authenticator", ALICE, path(&file), "--replace"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Replaced"), "{}", r.stdout);
    let t = fresh(30, 8);
    assert!(
        !login_code(&env, ALICE, PW, &oath_code(&["-b"], &old_secret, t)),
        "the old secret is gone"
    );
    assert!(login_code(&env, ALICE, PW, &oath_code(&["-b"], &secret, t)));
}

#[test]
fn a_folder_with_broken_files() {
    let env = Env::new();
    for user in ["alice", "bob"] {
        env.set_password(&format!("{user}@{DOMAIN}"), PW);
    }
    let dir = input_dir(&env, "ga");
    google_authenticator(&dir.join("alice"), DEBIAN);
    google_authenticator(&dir.join("bob"), &["-t", "-d", "-u", "-S", "60", "-w", "17", "-e", "3"]);
    google_authenticator(&dir.join("dave"), &["-c", "-u", "-w", "3", "-e", "1"]);
    std::fs::write(dir.join("carol"), "<html>not a secret file</html>\n").unwrap();
    // Written by someone who is neither root, erin, nor the folder's owner.
    google_authenticator(&dir.join("erin"), DEBIAN);
    std::os::unix::fs::chown(dir.join("erin"), Some(54321), None).unwrap();
    // Group-writable: anyone in the group could have put a secret there.
    google_authenticator(&dir.join("fred"), DEBIAN);
    std::fs::set_permissions(dir.join("fred"), std::fs::Permissions::from_mode(0o620)).unwrap();
    std::fs::write(dir.join("alice~"), "left over\n").unwrap();
    // A file naming a mailbox of another domain: not this import's to enrol.
    google_authenticator(&dir.join("alice@other.example"), DEBIAN);
    let (alice, _) = ga_contents(&dir.join("alice"));
    let (bob, _) = ga_contents(&dir.join("bob"));

    let before = env.snapshot();
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&dir),
            "--domain",
            DOMAIN,
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["imported"], 2);
    assert_eq!(env.snapshot(), before, "dry run");

    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&dir),
            "--domain",
            DOMAIN,
        ],
    );
    // Skipped entries are findings, not errors of the command.
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("2 imported, 0 replaced, 0 unchanged, 6 skipped"),
        "{}",
        r.stdout
    );
    for why in [
        "not a base32 secret",
        "counter-based",
        "owned by uid 54321",
        "writable by group",
        "temporary file",
        "outside --domain",
    ] {
        assert!(r.stdout.contains(why), "{why}: {}", r.stdout);
    }
    // Notes name what differs: bob's window of 17 is wider than ours.
    assert!(r.stdout.contains("up to 8 steps"), "{}", r.stdout);

    let v = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&dir),
            "--domain",
            DOMAIN,
            "--json",
        ],
    )
    .json();
    assert_eq!((v["unchanged"].as_u64(), v["skipped"].as_u64()), (Some(2), Some(6)));
    let mut kinds = strings(&v, "skipped_entries", "kind");
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "file_name",
            "file_name",
            "hotp",
            "not_base32",
            "owner",
            "writable_by_others"
        ]
    );

    let t = fresh(60, 8);
    assert!(login_code(
        &env,
        "alice@example.org",
        PW,
        &oath_code(&["-b"], &alice, t)
    ));
    assert!(login_code(
        &env,
        "bob@example.org",
        PW,
        &oath_code(&["-b", "-s", "60s"], &bob, t)
    ));
    // The skipped ones have no MFA.
    let list = ctl(&env, &["status", "dave@example.org", "--json"]).json();
    assert_eq!(list["state"], "disabled");
}

#[test]
fn a_list_of_users_and_home_folders() {
    let env = Env::new();
    env.set_password("alice@example.org", PW);
    let base = input_dir(&env, "homes");
    std::fs::create_dir(base.join("alice")).unwrap();
    google_authenticator(&base.join("alice/.google_authenticator"), DEBIAN);
    google_authenticator(&base.join("bob-secret"), DEBIAN);
    let list = base.join("users.list");
    std::fs::write(
        &list,
        format!(
            "# user path\nalice {}\nbob bob-secret\n\ncarol@other.test {}\njunk\n",
            base.join("alice").display(),
            base.join("missing").display()
        ),
    )
    .unwrap();
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--list",
            path(&list),
            "--domain",
            DOMAIN,
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let imported = strings(&v, "mailboxes", "mailbox");
    assert_eq!(imported, ["alice@example.org", "bob@example.org"]);
    let kinds = strings(&v, "skipped_entries", "kind");
    assert_eq!(kinds, ["unreadable", "list_line"], "{v}");
    let (alice, _) = ga_contents(&base.join("alice/.google_authenticator"));
    assert!(login_code(
        &env,
        "alice@example.org",
        PW,
        &oath_code(&["-b"], &alice, fresh(30, 8))
    ));
}

/// A path that goes through a symbolic link anywhere is not read, in a
/// list, a folder or on the command line: whoever controls a folder on the
/// way (a user's own home) could point the import at another user's file.
/// Nor is a file with a second hard link: another name for a file that may
/// be someone else's (root's own secret file of another user, say).
#[test]
fn symbolic_links_in_a_path_and_hard_links_are_not_followed() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    let base = input_dir(&env, "homes");
    for folder in ["alice", "mallory", "trudy", "victim", "ga"] {
        std::fs::create_dir(base.join(folder)).unwrap();
    }
    google_authenticator(&base.join("alice/.google_authenticator"), DEBIAN);
    google_authenticator(&base.join("victim/secret"), DEBIAN);
    // mallory's home holds a link to alice's; another home is a link itself.
    symlink(base.join("alice"), base.join("mallory/link")).unwrap();
    symlink(base.join("alice"), base.join("linkhome")).unwrap();
    // trudy's secret file is another name for the victim's.
    std::fs::hard_link(base.join("victim/secret"), base.join("trudy/.google_authenticator")).unwrap();
    let list = base.join("users.list");
    std::fs::write(
        &list,
        "alice alice
mallory mallory/link
mallory2 mallory/link/.google_authenticator
mallory3 linkhome
trudy trudy
",
    )
    .unwrap();
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--list",
            path(&list),
            "--domain",
            DOMAIN,
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let imported = strings(&v, "mailboxes", "mailbox");
    assert_eq!(imported, ["alice@example.org"], "{v}");
    let kinds: Vec<(&str, &str)> = v["skipped_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["mailbox"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("mallory@example.org", "symlink"),
            ("mallory2@example.org", "symlink"),
            ("mallory3@example.org", "symlink"),
            ("trudy@example.org", "hard_link"),
        ],
        "{v}"
    );
    let text = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--list",
            path(&list),
            "--domain",
            DOMAIN,
        ],
    )
    .stdout;
    assert!(text.contains("symbolic link") && text.contains("hard link"), "{text}");
    for who in ["mallory", "mallory2", "mallory3", "trudy"] {
        let s = ctl(&env, &["status", &format!("{who}@{DOMAIN}"), "--json"]).json();
        assert_eq!(s["state"], "disabled", "{who}");
    }

    // A folder of files: a hard link in it is skipped like a symbolic link.
    google_authenticator(&base.join("ga/bob"), DEBIAN);
    std::fs::hard_link(base.join("victim/secret"), base.join("ga/carol")).unwrap();
    symlink(base.join("victim/secret"), base.join("ga/dave")).unwrap();
    let v = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&base.join("ga")),
            "--domain",
            DOMAIN,
            "--json",
        ],
    )
    .json();
    let mut kinds = strings(&v, "skipped_entries", "kind");
    kinds.sort();
    assert_eq!(
        (v["imported"].as_u64(), kinds),
        (Some(1), vec!["hard_link", "symlink"]),
        "{v}"
    );

    // Named through a link on the command line: refused as a whole.
    symlink(base.join("ga"), base.join("ga-link")).unwrap();
    let users = input_dir(&env, "oath");
    std::fs::write(users.join("users.oath"), format!("HOTP/T30 erin - {HEX_KEY}\n")).unwrap();
    symlink(&users, base.join("oath-link")).unwrap();
    let before = env.snapshot();
    for args in [
        vec!["--dir", path(&base.join("ga-link")), "--domain", DOMAIN],
        vec!["erin", path(&base.join("mallory/link/.google_authenticator"))],
    ] {
        let r = ctl(&env, &[&["import", "google-authenticator"][..], &args].concat());
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("symbolic link") && r.stderr.contains("real path"),
            "{}",
            r.stderr
        );
    }
    let r = ctl(&env, &["import", "oath", path(&base.join("oath-link/users.oath"))]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert_eq!(env.snapshot(), before, "nothing written");
}

/// The owner check takes a user name for a name: a file named `54321` (or
/// a list line for user `54321`) owned by uid 54321 is not "the user's own
/// file" unless a user is called 54321. Whoever has uid 54321 must not
/// enrol mailbox 54321@ by writing a file there.
#[test]
fn numeric_user_names_are_names_not_uids() {
    let env = Env::new();
    assert!(
        !Command::new("getent")
            .args(["passwd", "54321"])
            .status()
            .unwrap()
            .success(),
        "this test needs no user named or numbered 54321"
    );
    let dir = input_dir(&env, "ga");
    google_authenticator(&dir.join("54321"), DEBIAN);
    std::os::unix::fs::chown(dir.join("54321"), Some(54321), None).unwrap();
    let list = env.dir.path().join("users.list");
    std::fs::write(&list, format!("54321 {}\n", dir.join("54321").display())).unwrap();
    let before = env.snapshot();
    for how in ["--dir", "--list"] {
        let from = if how == "--dir" { path(&dir) } else { path(&list) };
        let v = ctl(
            &env,
            &[
                "import",
                "google-authenticator",
                how,
                from,
                "--domain",
                DOMAIN,
                "--json",
            ],
        )
        .json();
        assert_eq!(v["imported"], 0, "{how}: {v}");
        assert_eq!(v["skipped_entries"][0]["kind"], "owner", "{how}: {v}");
    }
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "54321@example.org",
            path(&dir.join("54321")),
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("owned by uid 54321"), "{}", r.stderr);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn a_disabled_domain_refuses_imports() {
    let env = Env::new();
    let dir = input_dir(&env, "ga");
    google_authenticator(&dir.join("alice"), DEBIAN);
    assert_eq!(ctl(&env, &["domain", "set", DOMAIN, "disabled"]).code, 0);
    let before = env.snapshot();
    let r = ctl(
        &env,
        &["import", "google-authenticator", ALICE, path(&dir.join("alice"))],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("disabled"), "{}", r.stderr);
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&dir),
            "--domain",
            DOMAIN,
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn unreadable_sources_are_errors() {
    let env = Env::new();
    let missing = env.dir.path().join("nope");
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&missing)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&missing),
            "--domain",
            DOMAIN,
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = ctl(&env, &["import", "oath", path(&missing), "--json"]);
    assert_eq!((r.code, r.json()["error"].as_str()), (2, Some("error")));
    // Usage: a bulk form without its domain.
    let r = ctl(&env, &["import", "google-authenticator", "--dir", path(&missing)]);
    assert_eq!(r.code, 2);
}

fn users_file(env: &Env, text: &str) -> PathBuf {
    let f = input_dir(env, "oath").join("users.oath");
    std::fs::write(&f, text).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

#[test]
fn a_pam_oath_users_file() {
    let env = Env::new();
    for user in [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
        "frank@example.org",
    ] {
        env.set_password(user, PW);
    }
    let file = users_file(
        &env,
        &format!(
            "# pam_oath users\n\
             HOTP/T30\talice\t-\t{HEX_KEY}\n\
             HOTP/T60/8 bob + {HEX_KEY2} 0 12345678 2024-01-01T00:00:00L\n\
             HOTP/T30/7 carol@example.org plaintextpw {HEX_KEY}\n\
             HOTP dave - {HEX_KEY}\n\
             HOTP/T30 erin - 0011223344\n\
             HOTP/T30 frank - 00112233445566778899\n\
             HOTP/T30 alice - {HEX_KEY2}\n\
             HOTP/T30/9 gina - {HEX_KEY}\n"
        ),
    );
    let r = ctl(&env, &["import", "oath", path(&file), "--domain", DOMAIN]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("3 imported, 0 replaced, 0 unchanged, 5 skipped"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("--allow-short-secrets"), "{}", r.stdout);
    assert!(r.stdout.contains("passwords are not imported"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("plaintextpw") && !r.stdout.contains(HEX_KEY),
        "{}",
        r.stdout
    );

    let t = fresh(60, 8);
    assert!(login_code(&env, "alice@example.org", PW, &oath_code(&[], HEX_KEY, t)));
    assert!(login_code(
        &env,
        "bob@example.org",
        PW,
        &oath_code(&["-d", "8", "-s", "60s"], HEX_KEY2, t)
    ));
    assert!(login_code(
        &env,
        "carol@example.org",
        PW,
        &oath_code(&["-d", "7"], HEX_KEY, t)
    ));

    // Again with short secrets allowed: frank comes in, the rest is unchanged.
    let before = env.snapshot();
    let v = ctl(
        &env,
        &[
            "import",
            "oath",
            path(&file),
            "--domain",
            DOMAIN,
            "--allow-short-secrets",
            "--dry-run",
            "--json",
        ],
    )
    .json();
    assert_eq!((v["imported"].as_u64(), v["unchanged"].as_u64()), (Some(1), Some(3)));
    assert_eq!(env.snapshot(), before);
    let v = ctl(
        &env,
        &[
            "import",
            "oath",
            path(&file),
            "--domain",
            DOMAIN,
            "--allow-short-secrets",
            "--json",
        ],
    )
    .json();
    assert_eq!((v["imported"].as_u64(), v["unchanged"].as_u64()), (Some(1), Some(3)));
    let mut kinds = strings(&v, "skipped_entries", "kind");
    kinds.sort();
    assert_eq!(kinds, ["another_token", "hotp", "too_short_secret", "unknown_type"]);
    let frank = v["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mailbox"] == "frank@example.org")
        .unwrap();
    assert_eq!(frank["weak"], true);
    assert!(login_code(
        &env,
        "frank@example.org",
        PW,
        &oath_code(&[], "00112233445566778899", fresh(30, 8))
    ));
}

/// A secret far longer than any token's (here 2 MiB of key in a pam_oath
/// line, or a 60 KiB first line in a google-authenticator file) is refused
/// with the reason, before it could make a mailbox the store cannot read
/// back; the other users of the file come in as usual.
#[test]
fn huge_secrets_are_refused() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    let huge = "ab".repeat(2 << 20);
    let file = users_file(&env, &format!("HOTP/T30 huge - {huge}\nHOTP/T30 alice - {HEX_KEY}\n"));
    let r = ctl(&env, &["import", "oath", path(&file), "--domain", DOMAIN, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["mailboxes"][0]["mailbox"], ALICE, "{v}");
    assert_eq!(v["skipped_entries"][0]["kind"], "long_secret", "{v}");
    assert!(
        v["skipped_entries"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("more than the 512"),
        "{v}"
    );
    assert!(!r.stdout.contains("abababab") && !r.stderr.contains("abababab"));
    assert_eq!(
        ctl(&env, &["status", "huge@example.org", "--json"]).json()["state"],
        "disabled"
    );
    assert!(login_code(&env, ALICE, PW, &oath_code(&[], HEX_KEY, fresh(30, 8))));

    let ga = input_dir(&env, "ga").join("bob");
    std::fs::write(&ga, format!("{}\n\" TOTP_AUTH\n", "A".repeat(60 * 1024))).unwrap();
    std::fs::set_permissions(&ga, std::fs::Permissions::from_mode(0o400)).unwrap();
    let r = ctl(&env, &["import", "google-authenticator", "bob", path(&ga)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("more than the 512"), "{}", r.stderr);
}

/// Lines whose fields are missing or shifted (no user, a key where the user
/// should be, a password in the user's place) are reported by line number
/// and reason only: no field of such a line is shown as a mailbox name,
/// in the text or in --json, since it may be a password or a key.
#[test]
fn malformed_oath_lines_show_no_field() {
    let env = Env::new();
    let pw = "Pl41nT3xtPw";
    let file = users_file(
        &env,
        &format!(
            "HOTP/T30 {pw}1 {HEX_KEY}\n\
             HOTP/T30\t{HEX_KEY2}\t-\t{HEX_KEY}\n\
             HOTP/E {pw}2 {HEX_KEY}\n\
             XOTP/T30 {pw}3 {HEX_KEY}\n\
             HOTP/T30 p@ss@{pw}4 - {HEX_KEY}\n\
             HOTP/T30 + {HEX_KEY}\n\
             HOTP/T30 {pw}5\n\
             HOTP/T30 carol {pw}6 {HEX_KEY}\n"
        ),
    );
    let text = ctl(&env, &["import", "oath", path(&file), "--domain", DOMAIN]);
    let json = ctl(
        &env,
        &["import", "oath", path(&file), "--domain", DOMAIN, "--json", "--dry-run"],
    );
    assert_eq!((text.code, json.code), (0, 0), "{}{}", text.stderr, json.stderr);
    for shown in [&text.stdout, &text.stderr, &json.stdout, &json.stderr] {
        for secret in [pw, HEX_KEY, HEX_KEY2, &HEX_KEY[..16], &HEX_KEY2[..16]] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }
    let v = json.json();
    assert_eq!(v["mailboxes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["mailboxes"][0]["mailbox"], "carol@example.org");
    let mut skipped: Vec<(String, Value, String)> = v["skipped_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let line = s["source"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
            (line, s["mailbox"].clone(), s["kind"].as_str().unwrap().to_string())
        })
        .collect();
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    let want = [
        ("1", "incomplete"),
        ("2", "shifted_fields"),
        ("3", "hotp"),
        ("4", "unknown_type"),
        ("5", "mailbox_name"),
        ("6", "shifted_fields"),
        ("7", "incomplete"),
    ];
    assert_eq!(skipped.len(), want.len(), "{v}");
    for ((line, mailbox, kind), (want_line, want_kind)) in skipped.iter().zip(want) {
        assert_eq!((line.as_str(), kind.as_str()), (want_line, want_kind), "{v}");
        assert!(mailbox.is_null(), "line {line}: {mailbox}");
    }
}

/// Edits a google-authenticator file as `f` says, keeping its mode.
fn edit_ga(file: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(file, f(text)).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o400)).unwrap();
}

/// A used step far in the future in DISALLOW_REUSE (no code google-
/// authenticator could have seen by now) would, as the replay guard,
/// refuse every code of the user until then: it is ignored and noted, and
/// the user logs in with the app's code. A step google-authenticator could
/// have seen still blocks its code.
#[test]
fn future_reuse_steps_do_not_lock_the_user_out() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    env.set_password("bob@example.org", PW);
    let dir = input_dir(&env, "ga");
    google_authenticator(&dir.join("alice"), DEBIAN);
    google_authenticator(&dir.join("bob"), DEBIAN);
    let t = fresh(30, 8);
    edit_ga(&dir.join("alice"), |text| {
        text.replace("\" DISALLOW_REUSE\n", "\" DISALLOW_REUSE 99999999999\n")
    });
    edit_ga(&dir.join("bob"), |text| {
        text.replace("\" DISALLOW_REUSE\n", &format!("\" DISALLOW_REUSE {}\n", t / 30))
    });
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&dir),
            "--domain",
            DOMAIN,
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("later than google-authenticator could have accepted"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("alice@example.org"), "{}", r.stdout);
    let (alice, _) = ga_contents(&dir.join("alice"));
    let (bob, _) = ga_contents(&dir.join("bob"));
    assert!(login_code(&env, ALICE, PW, &oath_code(&["-b"], &alice, t)));
    assert!(
        !login_code(&env, "bob@example.org", PW, &oath_code(&["-b"], &bob, t)),
        "a step used there is used here"
    );
}

/// google-authenticator writes at most 10 scratch codes; a file with an
/// 11th is refused whole, with the reason and no code shown.
#[test]
fn more_than_ten_scratch_codes_are_refused() {
    let env = Env::new();
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, &["-t", "-d", "-r", "3", "-R", "30", "-w", "3", "-e", "10"]);
    let (_, codes) = ga_contents(&file);
    assert_eq!(codes.len(), 10);
    let before = env.snapshot();
    edit_ga(&file, |text| format!("{text}12345678\n"));
    let r = ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("more than 10 scratch codes"), "{}", r.stderr);
    assert!(!codes.iter().any(|c| r.stderr.contains(c.as_str())) && !r.stderr.contains("12345678"));
    assert_eq!(env.snapshot(), before);
}

/// Attack: many guesses at a scratch code at once, each in its own login,
/// to slip past the counter between its read and its write. Every one is
/// counted under the mailbox's lock: exactly `block_after` count, the rest
/// meet the block, and none gets in. Then one right code raced by 8 logins
/// at once logs in exactly once.
#[test]
fn scratch_code_guesses_raced_in_parallel() {
    let env = Env::quick(BLOCK_AFTER_3);
    env.set_password(ALICE, PW);
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, DEBIAN);
    let (_, scratch) = ga_contents(&file);
    assert_eq!(
        ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]).code,
        0
    );
    let guesses: Vec<String> = (0..12).map(|i| format!("{PW}0000-{i:04}")).collect();
    let barrier = std::sync::Barrier::new(guesses.len());
    let results: Vec<i32> = std::thread::scope(|s| {
        let hs: Vec<_> = guesses
            .iter()
            .map(|typed| {
                let barrier = &barrier;
                let env = &env;
                s.spawn(move || {
                    barrier.wait();
                    env.login("mail", ALICE, typed).auth
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| *r != PAM_SUCCESS), "{results:?}");
    let status = ctl(&env, &["status", ALICE, "--json"]).json();
    assert_eq!(
        (status["failures"].as_u64(), status["lock"].as_str()),
        (Some(3), Some("blocked"))
    );
    assert_eq!(results.iter().filter(|r| **r == PAM_MAXTRIES).count(), 9, "{results:?}");

    assert_eq!(ctl(&env, &["unlock", ALICE]).code, 0);
    let right = format!("{PW}{}", dashed(&scratch[0]));
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<i32> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    env.login("mail", ALICE, &right).auth
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| **r == PAM_SUCCESS).count(), 1, "{results:?}");
    let status = ctl(&env, &["status", ALICE, "--json"]).json();
    assert_eq!(status["recovery_codes_left"], 4);
}

/// Attack: files that are no files. A FIFO, a device, /proc and a folder
/// where a secret file should be: refused by what they are, without being
/// opened for reading (a FIFO would hang the import), and nothing of their
/// content shown.
#[test]
fn odd_files_are_refused_without_reading_them() {
    let env = Env::new();
    let dir = input_dir(&env, "ga");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::create_dir(dir.join("afolder")).unwrap();
    let list = env.dir.path().join("users.list");
    std::fs::write(
        &list,
        format!(
            "fifo {}\nnull /dev/null\nenv /proc/self/environ\nhome {}\n",
            fifo.display(),
            dir.join("afolder").display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--list",
            path(&list),
            "--domain",
            DOMAIN,
            "--json",
        ],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "no hang");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let kinds = strings(&v, "skipped_entries", "kind");
    // /proc/self is a link; the folder has no .google_authenticator.
    assert_eq!(kinds, ["not_regular", "not_regular", "symlink", "unreadable"], "{v}");
    assert_eq!(v["imported"], 0);
    assert!(!r.stdout.contains("PATH="), "{}", r.stdout);
    let r = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&dir),
            "--domain",
            DOMAIN,
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let kinds = strings(&v, "skipped_entries", "kind");
    assert_eq!(kinds, ["not_regular", "not_regular"], "{v}");
    let r = ctl(&env, &["import", "oath", path(&fifo)]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
}

/// Without --domain, bare user names get the configured default_domain.
#[test]
fn oath_users_without_a_domain() {
    let env = Env::new();
    env.set_password(ALICE, PW);
    let file = users_file(&env, &format!("HOTP/T30 alice - {HEX_KEY}\n"));
    let v = ctl(&env, &["import", "oath", path(&file), "--json"]).json();
    assert_eq!(v["mailboxes"][0]["mailbox"], ALICE);
    assert!(login_code(&env, ALICE, PW, &oath_code(&[], HEX_KEY, fresh(30, 8))));
}

/// 100,000 generated google-authenticator files imported with the release
/// mfa-ctl; the time goes to docs/bench-runs/import-100k.txt. Run by hand:
/// `cargo test --release -p pam_mfa_tests --test import -- --ignored
/// bulk_import_100k --nocapture` (PAM_MFA_TEST_BACKEND=postgres for the
/// database); IMPORT_BENCH_N sets another count.
#[test]
#[ignore = "minutes long: a timing run, see docs/bench-runs/import-100k.txt"]
fn bulk_import_100k() {
    let n: usize = std::env::var("IMPORT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let release = workspace().join("target").join("harness-release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "--release", "--quiet", "-p", "mfa-ctl", "--target-dir"])
        .arg(&release)
        .status()
        .unwrap();
    assert!(built.success());
    let mfa_ctl = release.join("release").join("mfa-ctl");
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    println!("import-100k load average at start: {}", load());
    let env = Env::new();
    let dir = input_dir(&env, "ga");
    let started = std::time::Instant::now();
    for i in 0..n {
        // A fixed fake secret per user (20 bytes from the index), in the
        // format Debian's google-authenticator writes, mode 0400.
        let key: Vec<u8> = (0..20u8)
            .map(|j| (i as u32).to_be_bytes()[usize::from(j % 4)] ^ j.wrapping_mul(37))
            .collect();
        let secret = pam_mfa::totp::TotpSeed::from_key(&key, 6, 30, 0).secret.to_string();
        let f = dir.join(format!("user{i:06}"));
        std::fs::write(
            &f,
            format!(
                "{secret}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n{}\n",
                10_000_000 + i
            ),
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let generated = started.elapsed();
    let run = |extra: &[&str]| {
        let t = std::time::Instant::now();
        let out = Command::new(&mfa_ctl)
            .arg("--config")
            .arg(&env.config)
            .args([
                "import",
                "google-authenticator",
                "--dir",
                path(&dir),
                "--domain",
                DOMAIN,
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (t.elapsed(), v)
    };
    let (first, v) = run(&[]);
    assert_eq!(v["imported"].as_u64(), Some(n as u64));
    let (second, v) = run(&[]);
    assert_eq!(v["unchanged"].as_u64(), Some(n as u64));
    let backend = if env.db.is_some() { "postgres" } else { "files" };
    println!(
        "import-100k backend={backend} n={n} generate={:.1}s first_import={:.1}s ({:.0}/s) second_import_unchanged={:.1}s ({:.0}/s)",
        generated.as_secs_f64(),
        first.as_secs_f64(),
        n as f64 / first.as_secs_f64(),
        second.as_secs_f64(),
        n as f64 / second.as_secs_f64()
    );
    println!("import-100k load average at end: {}", load());
    // Spot check: a generated user logs in with a code from its file's secret.
    let (secret, _) = ga_contents(&dir.join("user000042"));
    env.set_password("user000042@example.org", PW);
    assert!(login_code(
        &env,
        "user000042@example.org",
        PW,
        &oath_code(&["-b"], &secret, fresh(30, 8))
    ));
}

/// The `key` of every element of the JSON array `v[list]`.
fn strings<'a>(v: &'a Value, list: &str, key: &str) -> Vec<&'a str> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].as_str().unwrap())
        .collect()
}

fn status(env: &Env, mb: &str) -> Value {
    ctl(env, &["status", mb, "--json"]).json()
}

/// The same file imported again with --replace, after the user spent a
/// scratch code, replaced the scratch codes with ours (as the README
/// advises) and an attacker ran the mailbox into the block: nothing of
/// that is undone (the secret is the same).
#[test]
fn replace_with_the_same_secret_undoes_nothing() {
    let env = Env::quick(BLOCK_AFTER_3);
    env.set_password(ALICE, PW);
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, DEBIAN);
    let (_, scratch) = ga_contents(&file);
    assert_eq!(
        ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]).code,
        0
    );
    let login = |typed: &str| env.login("mail", ALICE, &format!("{PW}{typed}")).ok();
    assert!(login(&dashed(&scratch[0])));
    let ours = ctl(&env, &["--json", "recovery-codes", ALICE]).json();
    let our_code = ours["codes"][0].as_str().unwrap().to_string();
    for g in ["abcd-efgh-jkm2", "abcd-efgh-jkm3", "abcd-efgh-jkm4"] {
        assert!(!login(g));
    }
    assert_eq!(status(&env, ALICE)["lock"], "blocked");
    let r = ctl(
        &env,
        &[
            "--json",
            "import",
            "google-authenticator",
            ALICE,
            path(&file),
            "--replace",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["outcome"], "unchanged", "{}", r.stdout);
    assert_eq!(status(&env, ALICE)["lock"], "blocked");
    assert!(ctl(&env, &["unlock", ALICE]).code == 0);
    assert!(!login(&dashed(&scratch[0])), "a used scratch code stays used");
    assert!(login(&our_code), "the codes made since are kept");
}

/// google-authenticator drops a scratch code from its file when it is used
/// there; the import of the changed file keeps the codes used here used.
#[test]
fn codes_used_here_stay_used_when_the_file_changes() {
    let env = Env::quick("");
    env.set_password(ALICE, PW);
    let file = input_dir(&env, "home").join("ga");
    google_authenticator(&file, DEBIAN);
    let (_, scratch) = ga_contents(&file);
    assert_eq!(
        ctl(&env, &["import", "google-authenticator", ALICE, path(&file)]).code,
        0
    );
    let login = |typed: &str| env.login("mail", ALICE, &format!("{PW}{typed}")).ok();
    assert!(login(&dashed(&scratch[0])));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&file, text.replace(&format!("{}\n", scratch[4]), "")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let r = ctl(
        &env,
        &["import", "google-authenticator", ALICE, path(&file), "--replace"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!login(&dashed(&scratch[0])), "used here: still used");
    assert!(!login(&dashed(&scratch[4])), "dropped by the file: gone");
    assert!(login(&dashed(&scratch[1])));
}

/// A stolen phone: MFA switched off by an admin; running the same import
/// again does not bring the given-up secret back (refused without
/// --replace), and with --replace the replay guard is kept.
#[test]
fn a_rerun_after_disable_is_refused_and_keeps_the_replay_guard() {
    let env = Env::quick("");
    env.set_password(ALICE, PW);
    let home = input_dir(&env, "ga");
    let file = home.join("alice");
    google_authenticator(&file, DEBIAN);
    let (secret, _) = ga_contents(&file);
    let dir_import = |extra: &[&str]| {
        let mut args = vec![
            "import",
            "google-authenticator",
            "--dir",
            path(&home),
            "--domain",
            DOMAIN,
            "--json",
        ];
        args.extend_from_slice(extra);
        ctl(&env, &args)
    };
    assert_eq!(dir_import(&[]).json()["imported"], 1);
    let code = oathtool(&secret, fresh(30, 12));
    assert!(env.login("mail", ALICE, &format!("{PW}{code}")).ok());
    assert_eq!(ctl(&env, &["disable", ALICE, "--force"]).code, 0);
    let r = dir_import(&[]);
    let v = r.json();
    assert_eq!(v["imported"], 0, "{v}");
    assert_eq!(strings(&v, "skipped_entries", "kind"), ["switched_off"], "{v}");
    assert_eq!(status(&env, ALICE)["state"], "disabled", "{v}");
    assert_eq!(dir_import(&["--replace"]).json()["replaced"], 1);
    assert!(
        !env.login("mail", ALICE, &format!("{PW}{code}")).ok(),
        "the code used before the disable is a replay"
    );
}

/// In a folder, a file's owner is checked against its name as written; a
/// name with capitals (a system user `ALICE`) never stands for `alice`.
#[test]
fn file_names_with_capitals_name_no_mailbox() {
    let env = Env::new();
    let dir = input_dir(&env, "ga");
    google_authenticator(&dir.join("ALICE"), DEBIAN);
    google_authenticator(&dir.join("alice"), DEBIAN);
    let (secret, _) = ga_contents(&dir.join("alice"));
    let v = ctl(
        &env,
        &[
            "import",
            "google-authenticator",
            "--dir",
            path(&dir),
            "--domain",
            DOMAIN,
            "--json",
        ],
    )
    .json();
    assert_eq!(strings(&v, "mailboxes", "mailbox"), ["alice@example.org"], "{v}");
    assert_eq!(strings(&v, "skipped_entries", "kind"), ["file_name"], "{v}");
    env.set_password(ALICE, PW);
    assert!(login_code(&env, ALICE, PW, &oathtool(&secret, fresh(30, 6))));
}
