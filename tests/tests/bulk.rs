//! Large domains: `mfa-ctl list` streams (output complete and in order,
//! peak memory that does not grow with the number of mailboxes), `list
//! --weak`, the progress spinner only on a terminal, an error half way, and
//! `domain set` touching no mailbox. Stores of up to 20,000 mailboxes here;
//! up to a million in `a_million_mailboxes_list_in_bounded_memory`, ignored
//! by `cargo test` and run in release by tests/suites/bulk.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa::store::records::MailboxRecord;
use pam_mfa::totp::TotpSeed;
use pam_mfa_tests::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BULK: &str = "bulk.example";

/// The name of the `i`th generated mailbox: zero-padded, so the store's
/// order (byte order of the names) is the order of `i`.
fn name(i: usize) -> String {
    format!("user{i:07}@{BULK}")
}

/// A record whose secret is `key_len` bytes long.
fn record(key_len: usize) -> MailboxRecord {
    MailboxRecord {
        totp: Some(TotpSeed::from_key(&vec![0x5a; key_len], 6, 30, 1_700_000_000)),
        ..MailboxRecord::default()
    }
}

/// Writes `record` for `mailbox` through the library (the store's own lock
/// and file format, on either backend).
fn write_record(env: &Env, mailbox: &str, record: &MailboxRecord) {
    let admin = env.admin();
    let mb = admin.mailbox(mailbox).unwrap();
    let mut lock = admin.store.lock(&mb, OnMissing::Create).unwrap().unwrap();
    lock.write_record(record).unwrap();
}

/// `n` enrolled mailboxes of [`BULK`] in a file store, cheaply: a few
/// written through the library, every other one a hard link to one of
/// those (ext4 allows 65,000 links to a file). A listing reads each as the
/// mailbox file it is; nothing here writes to them, which would change
/// every link at once.
fn fill(env: &Env, n: usize) {
    const LINKS_PER_FILE: usize = 50_000;
    let mut template = PathBuf::new();
    for i in 0..n {
        let path = env.mailbox_file(&name(i));
        if i % LINKS_PER_FILE == 0 {
            write_record(env, &name(i), &record(20));
            template = path;
        } else {
            std::fs::hard_link(&template, &path).unwrap();
        }
    }
}

/// The built mfa-ctl in release (the ignored test measures a million; the
/// debug build the other tests use would take many minutes).
fn release_mfa_ctl() -> PathBuf {
    let target = workspace().join("target").join("harness");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "--quiet", "--release", "-p", "mfa-ctl", "--target-dir"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building mfa-ctl in release failed");
    target.join("release").join("mfa-ctl")
}

/// What a listing printed and what running it took.
struct Run {
    stdout: PathBuf,
    stderr: String,
    code: Option<i32>,
    /// Peak resident memory of mfa-ctl, in kB (GNU time's measure).
    peak_kb: u64,
}

/// Runs `mfa-ctl ARGS` under GNU time, stdout to a file (a million rows
/// are not held in this test's memory either).
fn run_measured(env: &Env, mfa_ctl: &Path, args: &[&str]) -> Run {
    let stdout = env
        .dir
        .path()
        .join(format!("list-{}.out", args.join("_").replace('-', "")));
    let measure = env.dir.path().join("time.txt");
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&measure)
        .arg(mfa_ctl)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .output()
        .expect("GNU time must be installed (Debian package time); tests/deps.sh installs it");
    let report = std::fs::read_to_string(&measure).unwrap();
    let peak_kb = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .unwrap_or_else(|| panic!("no peak memory in GNU time's report:\n{report}"))
        .parse()
        .unwrap();
    Run {
        stdout,
        stderr: String::from_utf8(out.stderr).unwrap(),
        code: out.status.code(),
        peak_kb,
    }
}

/// One element of `list --json`: the members these tests look at.
#[derive(serde::Deserialize)]
struct Listed {
    mailbox: String,
    state: String,
    policy: String,
    weak: bool,
}

#[derive(serde::Deserialize)]
struct Listing {
    mailboxes: Vec<Listed>,
}

/// Parses a `list --json` output (the whole must be one JSON document)
/// and checks it holds mailboxes 0..n in order, enrolled, under `policy`.
fn check_listing(path: &Path, n: usize, policy: &str) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let listing: Listing = serde_json::from_reader(file).expect("the output is one valid JSON document");
    assert_eq!(listing.mailboxes.len(), n);
    for (i, m) in listing.mailboxes.iter().enumerate() {
        assert_eq!(m.mailbox, name(i), "element {i}");
        assert_eq!(
            (m.state.as_str(), m.policy.as_str(), m.weak),
            ("enabled", policy, false)
        );
    }
}

/// Lists each number of mailboxes in `sizes` with `mfa_ctl`, checks each
/// output and that the peak memory did not grow with the number beyond the
/// names one read of the folder keeps (50,000, a few MB; the file store's
/// `LISTING_CHUNK`): had the listing been held (a status and its JSON form,
/// over 1 kB a mailbox), ten times as many would need tens of MB more.
fn peak_does_not_grow(mfa_ctl: &Path, sizes: &[usize]) {
    let mut peaks = Vec::new();
    for &n in sizes {
        let env = Env::files("");
        fill(&env, n);
        let run = run_measured(&env, mfa_ctl, &["--json", "list", "--domain", BULK]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.stderr, "", "no spinner or message when stderr is not a terminal");
        check_listing(&run.stdout, n, "optional");
        eprintln!("list --json of {n} mailboxes: peak {} kB", run.peak_kb);
        peaks.push(run.peak_kb);
    }
    for (n, peak) in sizes.iter().zip(&peaks).skip(1) {
        let grown = peak.saturating_sub(peaks[0]);
        assert!(
            grown < 8192,
            "peak memory grew by {grown} kB from {} to {n} mailboxes: {peaks:?} kB for {sizes:?}",
            sizes[0]
        );
    }
}

/// In the debug build of the other tests, where a mailbox costs far more
/// time than in release: 20,000 against 2,000.
#[test]
fn list_streams_in_bounded_memory() {
    peak_does_not_grow(&mfa_ctl_path(), &[2_000, 20_000]);
}

/// 20,000, 200,000 and a million, with mfa-ctl built in release
/// (tests/suites/bulk.sh; a few minutes, most of it making the stores).
#[test]
#[ignore = "a million mailboxes: run in release by tests/suites/bulk.sh"]
fn a_million_mailboxes_list_in_bounded_memory() {
    peak_does_not_grow(&release_mfa_ctl(), &[20_000, 200_000, 1_000_000]);
}

#[test]
fn the_table_streams_too_and_the_spinner_needs_a_terminal() {
    let env = Env::files("");
    let n = 20_000;
    fill(&env, n);
    // stdout and stderr are pipes here: rows only, no spinner, however long it takes.
    let out = env.mfa_ctl(&["list", "--domain", BULK]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n + 1);
    assert!(lines[0].starts_with("MAILBOX  "), "{}", lines[0]);
    for (i, line) in lines[1..].iter().enumerate() {
        assert!(line.starts_with(&format!("{}  enabled  ok  ", name(i))), "{line}");
    }
    // The widths of the first rows hold for all: every column lines up.
    let at = lines[0].find("LAST LOGIN").unwrap();
    assert!(lines[1..].iter().all(|l| &l[at..] == "-"));
}

#[test]
fn weak_lists_only_secrets_shorter_than_128_bits() {
    let env = Env::with_config("");
    write_record(&env, "short@example.org", &record(10));
    write_record(&env, "exact@example.org", &record(16));
    write_record(&env, "long@example.org", &record(20));
    let json = |args: &[&str]| -> serde_json::Value {
        let out = env.mfa_ctl(args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let weak = json(&["--json", "list", "--weak"]);
    let names: Vec<&str> = weak["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mailbox"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["short@example.org"]);
    assert_eq!(weak["mailboxes"][0]["weak"], true);
    let all = json(&["--json", "list", "--domain", "example.org"]);
    let flags: Vec<(&str, bool)> = all["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["mailbox"].as_str().unwrap(), m["weak"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        flags,
        [
            ("exact@example.org", false),
            ("long@example.org", false),
            ("short@example.org", true)
        ]
    );
    assert_eq!(json(&["--json", "status", "short@example.org"])["weak"], true);
    assert_eq!(json(&["--json", "status", "long@example.org"])["weak"], false);

    let table = String::from_utf8(env.mfa_ctl(&["list", "--weak"]).stdout).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].starts_with("MAILBOX            MFA      SECRET  "), "{table}");
    assert!(rows[1].starts_with("short@example.org  enabled  weak    "), "{table}");
    let none = Env::with_config("");
    write_record(&none, "long@example.org", &record(20));
    let out = none.mfa_ctl(&["list", "--weak"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "No mailbox has a secret shorter than 128 bits: nobody needs to enrol again for that.\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&none.mfa_ctl(&["--json", "list", "--weak"]).stdout),
        "{\"mailboxes\":[]}\n"
    );
}

/// A damaged mailbox file half way: the rows before it are out, then the
/// error on stderr and exit 2; the JSON is left unfinished, with no error
/// object after it that a careless reader could take for the end.
#[test]
fn an_error_half_way_leaves_the_output_unfinished() {
    let env = Env::files("");
    let n = 5_000;
    fill(&env, n);
    let bad = env.mailbox_file(&name(3_000));
    // Replaced, not written in place: the file is a hard link of others.
    std::fs::remove_file(&bad).unwrap();
    env.write_mailbox_json(&name(3_000), "{\"record\":", 1);

    let out = env.mfa_ctl(&["--json", "list", "--domain", BULK]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("user0003000.mfa"), "{stderr}");
    assert!(stderr.contains("what was printed is incomplete"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("{\"mailboxes\":[{"), "{}", &stdout[..80]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&stdout).is_err(),
        "unfinished"
    );
    assert!(!stdout.contains("\"error\""));
    assert!(!stdout.contains(&name(3_000)) && !stdout.contains(&name(3_001)));

    let out = env.mfa_ctl(&["list", "--domain", BULK]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + 3_000,
        "the header and every row before the damaged file"
    );
    assert!(text.lines().last().unwrap().starts_with(&name(2_999)));

    // Before anything was printed, the usual error object.
    let early = Env::files("");
    write_record(&early, "a@example.org", &record(20));
    early.write_mailbox_json("b@example.org", "{\"record\":", 1);
    let out = early.mfa_ctl(&["--json", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (error["error"].as_str(), error["exit_code"].as_u64()),
        (Some("error"), Some(2))
    );
}

/// What of the mailboxes could change: on files each file's inode, size,
/// times and content, and the folder's; in a database every row with its
/// xmin (a row rewritten even with the same content gets a new one).
fn mailboxes_snapshot(env: &Env) -> Vec<String> {
    if let Some(db) = &env.db {
        return vec![db.psql_super("SELECT xmin, * FROM pam_mfa_mailboxes ORDER BY mailbox")];
    }
    let mut out = Vec::new();
    let folder = env.store.join("mailboxes");
    for dir in [folder.clone(), folder.join(BULK), folder.join(DOMAIN)] {
        let m = std::fs::metadata(&dir).unwrap();
        out.push(format!("{} {} {}", dir.display(), m.mtime_nsec(), m.ctime_nsec()));
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries.iter().filter(|p| p.is_file()) {
            let m = std::fs::metadata(path).unwrap();
            let mut content = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&std::fs::read(path).unwrap(), &mut content);
            out.push(format!(
                "{} {} {} {} {} {} {:x}",
                path.display(),
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime_nsec(),
                std::hash::Hasher::finish(&content)
            ));
        }
    }
    out
}

/// `domain set` writes the domain's policy and nothing else, so it costs
/// the same for a domain of ten mailboxes or a million: every mailbox
/// follows the new policy, and not one was touched to get it.
#[test]
fn domain_set_touches_no_mailbox() {
    let env = Env::with_config("");
    let n = if env.db.is_some() {
        200
    } else {
        fill(&env, 20_000);
        20_000
    };
    if env.db.is_some() {
        for i in 0..n {
            write_record(&env, &name(i), &record(20));
        }
    }
    write_record(&env, ALICE, &record(20));
    let before = mailboxes_snapshot(&env);
    for policy in ["required", "disabled", "optional", "required"] {
        let out = env.mfa_ctl(&["domain", "set", BULK, policy]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    assert!(before == mailboxes_snapshot(&env), "a mailbox changed");
    // And yet every mailbox of the domain is under the new policy.
    let run = run_measured(&env, &mfa_ctl_path(), &["--json", "list", "--domain", BULK]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    check_listing(&run.stdout, n, "required");
}

/// A tmux server of our own (its socket in a temp folder) running
/// `command` in a terminal, killed when the test ends.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let dir = tempfile::Builder::new().prefix("bulk-tmux").tempdir().unwrap();
        let t = Tmux {
            socket: dir.path().join("socket"),
            _dir: dir,
        };
        let ok = Command::new("tmux")
            .args(["-f", "/dev/null", "-S"])
            .arg(&t.socket)
            .args(["new-session", "-d", "-s", "t", "-x", "120", "-y", "20", command])
            .status()
            .expect("tmux must be installed (Debian package tmux); tests/deps.sh installs it");
        assert!(ok.success(), "tmux new-session failed");
        t
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// Waits until the screen satisfies `done`, as a person watching it;
    /// the limit only stops a hung test.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(300),
                "waited for {what}; the screen shows:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// On a terminal, a listing that takes a while counts on stderr the
/// mailboxes read, and wipes the count when done; what it prints is the
/// same as without a terminal.
#[test]
fn a_long_listing_shows_its_progress_on_a_terminal() {
    let env = Env::files("");
    fill(&env, 20_000);
    let piped = env.mfa_ctl(&["list", "--domain", BULK]);
    assert_eq!(piped.status.code(), Some(0));
    let out = env.dir.path().join("on-terminal.out");
    let quote = |p: &Path| format!("'{}'", p.display());
    let tmux = Tmux::start(&format!(
        "{} --config {} list --domain {BULK} > {}; echo EXIT=$?; sleep 600",
        quote(&mfa_ctl_path()),
        quote(&env.config),
        quote(&out)
    ));
    let running = tmux.wait_for("the count of mailboxes read", |s| s.contains(" mailboxes read ("));
    assert!(!running.contains("EXIT="), "{running}");
    let done = tmux.wait_for("the end of the listing", |s| s.contains("EXIT="));
    assert!(done.contains("EXIT=0"), "{done}");
    assert!(
        !done.contains("mailboxes read"),
        "the count is wiped at the end:\n{done}"
    );
    assert!(std::fs::read(&out).unwrap() == piped.stdout, "the same listing");
}
