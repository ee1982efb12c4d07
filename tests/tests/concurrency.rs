//! Concurrency through the real libpam: many processes
//! and threads logging in at once over one store, one code raced by 32
//! logins, failure counting under contention, and mfa-ctl writing while
//! logins run. Every test checks the final state of every mailbox it touched,
//! so a lost update shows up as a wrong count, not as luck. The figures in
//! docs/SECURITY.md are the `FIGURE` lines these tests print (run with
//! `--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa::mailbox::Mailbox;
use pam_mfa::store::records::{Login, LoginResult, MailboxRecord, MailboxState, Method};
use pam_mfa::totp::{Generator, TotpSeed};
use pam_mfa_tests::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const PW: &str = "s0ak-Pw";

fn worker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_login_worker")
}

/// A cheap (MD5-crypt) hash of `PW` for pam_pwdfile: thousands of logins
/// run here, and the password module is not what is under test.
fn cheap_hash() -> String {
    let out = Command::new("openssl")
        .args(["passwd", "-1", PW])
        .output()
        .expect("openssl must be installed");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Mailboxes enrolled by writing their records straight into the store
/// through the library (the file `mfa-ctl enroll` leaves, without the code
/// check and audit of 1,000 enrolments), with `PW` as their password.
/// Returns (name, secret).
fn enroll_many(env: &Env, names: &[String]) -> Vec<(String, String)> {
    let hash = cheap_hash();
    let mut pwd = std::fs::OpenOptions::new().append(true).open(&env.pwdfile).unwrap();
    let admin = env.admin();
    let mut out = Vec::new();
    for name in names {
        let mb = Mailbox::parse(name.as_bytes(), None).unwrap();
        let seed = TotpSeed::generate(6, 30, now()).unwrap();
        let secret = seed.secret.to_string();
        let mut locked = admin.store.lock(&mb, OnMissing::Create).unwrap().unwrap();
        assert_eq!(locked.record().cloned(), None, "{name} enrolled twice");
        locked
            .write_record(&MailboxRecord {
                totp: Some(seed),
                ..Default::default()
            })
            .unwrap();
        writeln!(pwd, "{name}:{hash}").unwrap();
        out.push((name.clone(), secret));
    }
    out
}

/// Every mailbox's record, read back through the store.
fn records(env: &Env, names: &[String]) -> Vec<MailboxRecord> {
    let admin = env.admin();
    names
        .iter()
        .map(|n| admin.store.read_record(&admin.mailbox(n).unwrap()).unwrap().unwrap())
        .collect()
}

fn generator(secret: &str) -> Generator {
    TotpSeed {
        secret: pam_mfa::secret::SecretString::new(secret.to_string()),
        digits: 6,
        period: 30,
        algorithm: Default::default(),
        created: 0,
    }
    .generator()
    .unwrap()
}

fn state_of(env: &Env, name: &str) -> MailboxState {
    let admin = env.admin();
    let mb = admin.mailbox(name).unwrap();
    admin.store.lock(&mb, OnMissing::Skip).unwrap().unwrap().state().clone()
}

/// A `login_worker serve` process: one login per line sent.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn spawn(env: &Env) -> Server {
        let mut child = Command::new(worker_bin())
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
        Server { child, stdin, stdout }
    }

    fn send(&mut self, user: &str, typed: &str) {
        writeln!(self.stdin, "mail\t{user}\t{typed}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// (auth, acct) of the login sent before; acct -1 when account did not run.
    fn recv(&mut self) -> (i32, i32) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let (a, b) = line
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("worker said {line:?}"));
        (a.parse().unwrap(), b.parse().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Six-digit codes valid in no step of now-2..now+2, all different.
fn wrong_codes(secret: &str, n: usize) -> Vec<String> {
    let g = generator(secret);
    let t = now();
    let valid: Vec<String> = (0..5).map(|i| g.code_at(t + i * 30 - 60).to_string()).collect();
    (0u32..)
        .map(|i| format!("{:06}", (i * 7919 + 4242) % 1_000_000))
        .filter(|c| !valid.contains(c))
        .take(n)
        .collect()
}

#[test]
fn soak_8_processes_1000_mailboxes_30s() {
    let env = Env::quick("[state]\nkeep_logins = 1000\n");
    let names: Vec<String> = (0..1000).map(|i| format!("u{i}@d{}.example", i % 4)).collect();
    let enrolled = enroll_many(&env, &names);
    // Our generator against oathtool, once, before trusting it for 3,000 codes.
    let t = now();
    assert_eq!(
        generator(&enrolled[0].1).code_at(t).as_str(),
        oathtool(&enrolled[0].1, t)
    );
    let records_before = records(&env, &names);
    let workers: Vec<Child> = (0..8)
        .map(|w| {
            let mut c = Command::new(worker_bin())
                .args(["soak"])
                .arg(&env.confdir)
                .args(["30", "200", PW])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = c.stdin.take().unwrap();
            for (name, secret) in enrolled.iter().skip(w).step_by(8) {
                writeln!(stdin, "{name} {secret}").unwrap();
            }
            c
        })
        .collect();
    let mut fresh_ok = 0u64;
    let mut replay_refused = 0u64;
    let mut logins = 0u64;
    let mut checked = 0usize;
    let mut secs = 0u64;
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "worker failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains("\nE ") && !text.starts_with("E "), "{text}");
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "M" => {
                    let (name, last, fresh, replays) =
                        (f[1], f[2], f[3].parse::<u64>().unwrap(), f[4].parse::<u64>().unwrap());
                    let st = state_of(&env, name);
                    if last == "-" {
                        assert_eq!(st, MailboxState::default(), "{name}");
                    } else {
                        assert_eq!(st.last_step, Some(last.parse().unwrap()), "{name}");
                    }
                    // Every login, accepted or refused, is in the state: none lost.
                    assert_eq!(st.logins.len() as u64, fresh + replays, "{name}");
                    assert_eq!(
                        st.logins.iter().filter(|l| l.result == LoginResult::Ok).count() as u64,
                        fresh,
                        "{name}"
                    );
                    assert_eq!(st.failures, 0, "{name}: replays are not failures");
                    checked += 1;
                }
                "S" => {
                    let kv = |k: &str| -> u64 { f.iter().find_map(|x| x.strip_prefix(k)).unwrap().parse().unwrap() };
                    assert_eq!(kv("fresh_refused="), 0, "{line}");
                    assert_eq!(kv("replay_accepted="), 0, "{line}");
                    assert!(kv("fresh_ok=") >= 200, "{line}");
                    fresh_ok += kv("fresh_ok=");
                    replay_refused += kv("replay_refused=");
                    logins += kv("fresh_ok=") + kv("replay_refused=");
                    secs = secs.max(kv("secs="));
                }
                _ => panic!("unexpected worker line {line}"),
            }
        }
    }
    assert_eq!(checked, 1000, "every mailbox's final state checked");
    // The records (secrets) are never changed by logins (they rewrite the
    // file they share with the state, the record in it as it was).
    assert_eq!(records(&env, &names), records_before);
    eprintln!(
        "FIGURE soak: 8 processes x >=200 fresh logins over 1000 mailboxes for {secs} s: {logins} logins; fresh codes accepted {fresh_ok}/{fresh_ok}, replays refused {replay_refused}/{replay_refused}; final state of 1000/1000 mailboxes exact (last step, login count, 0 failures)"
    );
}

/// Enrols `rounds` mailboxes; each round races 32 logins of one of them with
/// one valid code through `race`, which returns the 32 (auth, acct) results.
/// Every other round's mailbox starts with 30 logins in its history, so its
/// file (two 4 KiB copies) outgrows itself during the race: it is replaced
/// by a larger one while the other logins wait for its lock.
fn one_code_rounds(kind: &str, rounds: usize, mut race: impl FnMut(&Env, &str, &str) -> Vec<(i32, i32)>) {
    let env = Env::quick("[state]\nkeep_logins = 100\n");
    let names: Vec<String> = (0..rounds).map(|i| format!("r{i}@example.org")).collect();
    let enrolled = enroll_many(&env, &names);
    let admin = env.admin();
    let mut exactly_one = 0;
    let mut grown = 0;
    for (i, (name, secret)) in enrolled.iter().enumerate() {
        let mb = admin.mailbox(name).unwrap();
        let history = if i % 2 == 1 { 30 } else { 0 };
        if history > 0 {
            let mut locked = admin.store.lock(&mb, OnMissing::Skip).unwrap().unwrap();
            let mut st = locked.state().clone();
            for k in 0..history {
                let login = Login {
                    at: now() - 3600 + k,
                    service: "imap".into(),
                    rhost: "192.0.2.99".into(),
                    method: Method::AppPassword,
                    result: LoginResult::Ok,
                    count: 0,
                };
                st.push_login(login, 100);
            }
            locked.write_state(&st, Durability::Configured).unwrap();
        }
        // On files, the mailbox's file and its size (a database row has no
        // space to outgrow).
        let file = admin.store.files().map(|s| s.mailbox_path(&mb));
        let size_before = file.as_ref().map(|f| std::fs::metadata(f).unwrap().len());
        if let Some(size) = size_before {
            assert_eq!(size, 8192, "{name}: two 4 KiB copies before the race");
        }
        let t = now();
        let typed = format!("{PW}{}", oathtool(secret, t));
        let results = race(&env, name, &typed);
        assert_eq!(results.len(), 32);
        let ok = results.iter().filter(|r| **r == (PAM_SUCCESS, PAM_SUCCESS)).count();
        let refused = results.iter().filter(|r| **r == (PAM_AUTH_ERR, -1)).count();
        assert_eq!((ok, refused), (1, 31), "{name}: {results:?}");
        let st = state_of(&env, name);
        assert_eq!(st.last_step, Some(t / 30));
        assert_eq!(st.logins.len(), history as usize + 32);
        assert_eq!(
            st.logins.iter().filter(|l| l.result == LoginResult::Ok).count(),
            history as usize + 1
        );
        assert_eq!(st.failures, 0);
        if let (Some(file), Some(size_before)) = (&file, size_before)
            && history > 0
        {
            let size_after = std::fs::metadata(file).unwrap().len();
            assert!(
                size_after > size_before && size_after.is_multiple_of(8192),
                "{name}: the race did not outgrow the file ({size_after} bytes)"
            );
            grown += 1;
        }
        exactly_one += 1;
    }
    eprintln!(
        "FIGURE one code, 32 concurrent logins ({kind}) x {rounds} rounds: {exactly_one}/{rounds} rounds exactly one success (31 refused as replays, 0 failures counted); in {grown} of them the mailbox file outgrew itself and was replaced during the race"
    );
}

#[test]
fn one_code_32_threads_100_rounds() {
    one_code_rounds("threads", 100, |env, name, typed| {
        let barrier = std::sync::Barrier::new(32);
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..32)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let r = env.login("mail", name, typed);
                        (r.auth, r.acct.unwrap_or(-1))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
}

#[test]
fn one_code_32_processes_100_rounds() {
    let mut servers: Vec<Server> = Vec::new();
    one_code_rounds("processes", 100, |env, name, typed| {
        if servers.is_empty() {
            servers = (0..32).map(|_| Server::spawn(env)).collect();
        }
        for s in servers.iter_mut() {
            s.send(name, typed);
        }
        servers.iter_mut().map(Server::recv).collect()
    });
}

#[test]
fn concurrent_wrong_codes_are_all_counted_threads() {
    let env = Env::quick("[lockout]\nafter = 16\nbackoff = \"1h\"\nmax_backoff = \"1h\"\nblock_after = 100\n");
    let enrolled = enroll_many(&env, &["carol@example.org".to_string()]);
    let (name, secret) = &enrolled[0];
    let wrong = wrong_codes(secret, 24);
    let race = |codes: &[String]| -> Vec<i32> {
        let barrier = std::sync::Barrier::new(codes.len());
        std::thread::scope(|s| {
            let hs: Vec<_> = codes
                .iter()
                .map(|c| {
                    let barrier = &barrier;
                    let env = &env;
                    s.spawn(move || {
                        barrier.wait();
                        env.login("mail", name, &format!("{PW}{c}")).auth
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    // 10 at once, below the threshold: all counted.
    let r = race(&wrong[..10]);
    assert_eq!(r, vec![PAM_AUTH_ERR; 10]);
    assert_eq!(state_of(&env, name).failures, 10);
    // 14 more at once: exactly 6 are counted, then the lock-out refuses the rest uncounted.
    let r = race(&wrong[10..]);
    assert_eq!(r.iter().filter(|c| **c == PAM_AUTH_ERR).count(), 6, "{r:?}");
    assert_eq!(r.iter().filter(|c| **c == PAM_MAXTRIES).count(), 8, "{r:?}");
    assert_eq!(state_of(&env, name).failures, 16);
    // Locked: even the right code is refused now.
    let code = oathtool(secret, now());
    assert_eq!(env.login("mail", name, &format!("{PW}{code}")).auth, PAM_MAXTRIES);
    assert_eq!(state_of(&env, name).failures, 16);
    eprintln!(
        "FIGURE failure counting (threads): 10 concurrent wrong codes -> counter 10/10; 14 more at once with lockout.after = 16 -> 6 counted, 8 refused as locked, counter 16; right code then refused (PAM_MAXTRIES)"
    );
}

#[test]
fn concurrent_wrong_codes_block_at_exactly_block_after_processes() {
    let env = Env::quick("[lockout]\nafter = 20\nbackoff = \"1s\"\nmax_backoff = \"1s\"\nblock_after = 20\n");
    let enrolled = enroll_many(&env, &["dave@example.org".to_string()]);
    let (name, secret) = &enrolled[0];
    let wrong = wrong_codes(secret, 32);
    let mut servers: Vec<Server> = (0..32).map(|_| Server::spawn(&env)).collect();
    for (s, c) in servers.iter_mut().zip(&wrong) {
        s.send(name, &format!("{PW}{c}"));
    }
    let r: Vec<(i32, i32)> = servers.iter_mut().map(Server::recv).collect();
    assert_eq!(r.iter().filter(|x| **x == (PAM_AUTH_ERR, -1)).count(), 20, "{r:?}");
    assert_eq!(r.iter().filter(|x| **x == (PAM_MAXTRIES, -1)).count(), 12, "{r:?}");
    assert_eq!(state_of(&env, name).failures, 20);
    let admin = env.admin();
    assert_eq!(
        admin.status(&admin.mailbox(name).unwrap(), now()).unwrap().lock,
        "blocked"
    );
    eprintln!(
        "FIGURE failure counting (32 processes, block_after = 20): 20/32 counted, 12/32 refused as blocked, counter exactly 20, mailbox blocked"
    );
}

/// Runs mfa-ctl with this env's config; returns stdout, asserting success.
fn mfa_ctl(env: &Env, args: &[&str]) -> String {
    let out = env.mfa_ctl(args);
    assert!(
        out.status.success(),
        "mfa-ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_field(json: &str, key: &str) -> String {
    let start = json.find(&format!("\"{key}\":\"")).unwrap() + key.len() + 4;
    json[start..].split('"').next().unwrap().to_string()
}

#[test]
fn mfa_ctl_writes_while_logins_run_lose_nothing() {
    let env = Env::quick("[state]\nkeep_logins = 1000\n");
    let alice = "alice@example.org";
    env.set_password(alice, PW);
    let kept = json_field(
        &mfa_ctl(&env, &["--json", "app-password", "add", alice, "--label", "kept"]),
        "password",
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut expected_labels = vec!["kept".to_string()];
    let mut confirmed_step = None;
    let mut last_policy = "optional";
    let logins: Vec<(u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let (mut ok, mut bad) = (0u64, 0u64);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && ok + bad < 450 {
                        if env.login("mail", alice, &kept).ok() {
                            ok += 1;
                        } else {
                            bad += 1;
                        }
                    }
                    (ok, bad)
                })
            })
            .collect();
        let mut secret = String::new();
        for i in 0..12 {
            let label = format!("L{i}");
            mfa_ctl(&env, &["app-password", "add", alice, "--label", &label]);
            expected_labels.push(label);
            if i % 2 == 1 {
                let old = format!("L{}", i - 1);
                mfa_ctl(&env, &["app-password", "revoke", alice, &old]);
                expected_labels.retain(|l| *l != old);
            }
            last_policy = if i % 2 == 0 { "required" } else { "optional" };
            mfa_ctl(&env, &["domain", "set", "example.org", last_policy]);
            if i == 3 {
                secret = json_field(&mfa_ctl(&env, &["--json", "enroll", alice, "--begin"]), "secret");
            }
            if i == 6 {
                let t = fresh_step(3);
                mfa_ctl(&env, &["enroll", alice, "--confirm", &oathtool(&secret, t)]);
                confirmed_step = Some(t / 30);
            }
            if i == 9 {
                mfa_ctl(&env, &["recovery-codes", alice]);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok: u64 = logins.iter().map(|l| l.0).sum();
    let bad: u64 = logins.iter().map(|l| l.1).sum();
    assert_eq!(bad, 0, "every app-password login succeeds while mfa-ctl writes");
    assert!(ok > 0);
    // mfa-ctl's writes all there...
    let admin = env.admin();
    let mb = admin.mailbox(alice).unwrap();
    let mut labels: Vec<String> = admin
        .app_password_list(&mb)
        .unwrap()
        .into_iter()
        .map(|a| a.label)
        .collect();
    labels.sort();
    expected_labels.sort();
    assert_eq!(labels, expected_labels);
    let st = admin.status(&mb, now()).unwrap();
    assert_eq!(st.state, "enabled");
    assert_eq!(st.recovery_codes_left, 10);
    assert_eq!(
        admin.domain_show("example.org").unwrap().policy.policy.as_str(),
        last_policy
    );
    // ...and the logins' writes too: every login in the state, and the step
    // the enrolment used (written by mfa-ctl into the same state file).
    let state = state_of(&env, alice);
    assert_eq!(state.logins.len() as u64, ok);
    assert_eq!(state.last_step, confirmed_step);
    let kept_id = admin
        .app_password_list(&mb)
        .unwrap()
        .into_iter()
        .find(|a| a.label == "kept")
        .unwrap()
        .id;
    assert!(state.app_password_use.contains_key(&kept_id));
    eprintln!(
        "FIGURE mfa-ctl vs logins on one mailbox: {ok} app-password logins (all accepted, all {ok} in the state) during 12 app-password adds, 6 revokes, 12 domain sets, enrol begin+confirm, recovery codes: every mfa-ctl change present"
    );
}
