//! A separate process for the multi-process reliability tests
//! (tests/tests/concurrency.rs, tests/tests/crash.rs): logins through the
//! real libpam and store writes through the library, in a process of its own
//! so that contention crosses process boundaries and a `kill -9` hits a real
//! writer. Test code: panics are the way it fails.
//!
//! ```text
//! login_worker serve CONFDIR                 stdin: SERVICE\tUSER\tTYPED  -> stdout: AUTH ACCT
//! login_worker soak CONFDIR SECS MIN PASSWORD stdin: MAILBOX SECRET       -> stdout: M/S lines
//! login_worker crash CONFIG CONFDIR PASSWORD APP_PASSWORD                 -> stdout: BEGIN/END lines
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pam_mfa::admin::Admin;
use pam_mfa::policy::Policy;
use pam_mfa::totp::TotpSeed;
use pam_mfa_tests::pam;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const RHOST: Option<&str> = Some("192.0.2.20");

fn now() -> u64 {
    pam_mfa::clock::now().unwrap()
}

/// One line on stdout, flushed at once: the parent reads it even if this
/// process is killed right after.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(Path::new(&args[1])),
        Some("soak") => soak(
            Path::new(&args[1]),
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            &args[4],
        ),
        Some("crash") => crash(Path::new(&args[1]), Path::new(&args[2]), &args[3], &args[4]),
        _ => panic!("usage: login_worker serve|soak|crash ..."),
    }
}

/// One login per stdin line; answers `AUTH ACCT` (ACCT -1: account not run).
fn serve(confdir: &Path) {
    say("READY");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut parts = line.splitn(3, '\t');
        let (service, user, typed) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap_or_default(),
        );
        let r = pam::login(confdir, service, user.as_bytes(), typed.as_bytes(), RHOST);
        say(&format!("{} {}", r.auth, r.acct.unwrap_or(-1)));
    }
}

/// The soak: logs in to its own mailboxes (given on stdin) for at least
/// `secs` seconds and at least `min` fresh logins, each followed by a replay
/// of the very same string. A fresh code is the code of a step later than
/// the last one this worker used for the mailbox, within now..now+1 (both in
/// the ±1 window however late the module reads the clock).
fn soak(confdir: &Path, secs: u64, min: u64, password: &str) {
    struct Mb {
        name: String,
        seed: pam_mfa::totp::Generator,
        last: Option<u64>,
        fresh: u64,
        replays: u64,
    }
    let mut mbs: Vec<Mb> = std::io::stdin()
        .lock()
        .lines()
        .map(|l| {
            let l = l.unwrap();
            let (name, secret) = l.split_once(' ').unwrap();
            let seed = TotpSeed {
                secret: pam_mfa::secret::SecretString::new(secret.to_string()),
                digits: 6,
                period: 30,
                algorithm: Default::default(),
                created: 0,
            };
            Mb {
                name: name.to_string(),
                seed: seed.generator().unwrap(),
                last: None,
                fresh: 0,
                replays: 0,
            }
        })
        .collect();
    let start = Instant::now();
    let (mut fresh_ok, mut fresh_refused, mut replay_refused, mut replay_accepted) = (0u64, 0u64, 0u64, 0u64);
    let mut i = 0usize;
    while start.elapsed() < Duration::from_secs(secs) || fresh_ok + fresh_refused < min {
        let n = mbs.len();
        let mb = &mut mbs[i % n];
        i += 1;
        let step = now() / 30;
        let candidate = mb.last.map_or(step, |l| (l + 1).max(step));
        if candidate > step + 1 {
            // Both codes of this step used already: try the next mailbox.
            if mbs.iter().all(|m| m.last.is_some_and(|l| l > step)) {
                std::thread::sleep(Duration::from_millis(200));
            }
            continue;
        }
        let typed = format!("{password}{}", mb.seed.code_at(candidate * 30).as_str());
        let r = pam::login(confdir, "mail", mb.name.as_bytes(), typed.as_bytes(), RHOST);
        if r.ok() {
            fresh_ok += 1;
        } else {
            fresh_refused += 1;
            say(&format!(
                "E fresh {} step={candidate} auth={} acct={:?}",
                mb.name, r.auth, r.acct
            ));
        }
        mb.last = Some(candidate);
        mb.fresh += 1;
        let again = pam::login(confdir, "mail", mb.name.as_bytes(), typed.as_bytes(), RHOST);
        if again.auth == pam::PAM_AUTH_ERR {
            replay_refused += 1;
        } else {
            replay_accepted += 1;
            say(&format!("E replay {} step={candidate} auth={}", mb.name, again.auth));
        }
        mb.replays += 1;
    }
    for mb in &mbs {
        say(&format!(
            "M {} {} {} {}",
            mb.name,
            mb.last.map_or("-".to_string(), |l| l.to_string()),
            mb.fresh,
            mb.replays
        ));
    }
    say(&format!(
        "S fresh_ok={fresh_ok} fresh_refused={fresh_refused} replay_refused={replay_refused} replay_accepted={replay_accepted} secs={}",
        start.elapsed().as_secs()
    ));
}

/// The writer that crash.rs kills with SIGKILL at random instants. It never
/// stops by itself. Every write is announced with `BEGIN <what>` before it
/// starts and `END <what>` once it returned, so the parent knows the old and
/// the new value of whatever it was writing when it died:
///
/// - `app+ LABEL` / `app- LABEL`: adds / revokes an app password of alice
///   (mailbox record);
/// - `domain POLICY`: sets example.org's policy (domain file);
/// - `login N`: the N-th login of alice with her kept app password (state
///   file; N counts the logins alice's state holds afterwards);
/// - `enroll SECRET`: bob's enrolment confirmed (record and state writes;
///   the pending secret was written just before), then a login of bob
///   (`bob-login`) and a forced `disable` so the next round can enrol again.
fn crash(config: &Path, confdir: &Path, password: &str, app_password: &str) {
    // A panic must reach the parent even if the kill lands while the panic
    // message is being printed.
    std::panic::set_hook(Box::new(|info| {
        say(&format!("PANIC {info}"));
        std::process::exit(101);
    }));
    let admin = Admin::open(Some(config)).unwrap();
    let alice = admin.mailbox("alice@example.org").unwrap();
    let bob = admin.mailbox("bob@example.org").unwrap();
    // Where the previous (killed) writer left things.
    let mut labels: Vec<String> = admin
        .app_password_list(&alice)
        .unwrap()
        .into_iter()
        .map(|a| a.label)
        .filter(|l| l != "kept")
        .collect();
    let mut logins = admin.logins(&alice, 10_000).unwrap().len();
    if admin.status(&bob, now()).unwrap().state == "enabled" {
        // Killed between bob's enrolment and its disable.
        say("BEGIN disable");
        admin.disable(&bob, None, true, now()).unwrap();
        say("END disable");
    }
    // Labels go on from the highest one present (a killed writer's label may
    // or may not have been written).
    let mut n: u64 = labels
        .iter()
        .filter_map(|l| l.strip_prefix('L')?.parse().ok())
        .max()
        .unwrap_or(0);
    say("READY");
    loop {
        n += 1;
        match n % 4 {
            // n starts anywhere: which op comes first varies from writer to writer.
            0 => {
                let label = format!("L{n}");
                say(&format!("BEGIN app+ {label}"));
                admin.app_password_add(&alice, &label, &[], &[], None, now()).unwrap();
                say(&format!("END app+ {label}"));
                labels.push(label);
                if labels.len() > 2 {
                    let old = labels.remove(0);
                    say(&format!("BEGIN app- {old}"));
                    admin.app_password_revoke(&alice, &old).unwrap();
                    say(&format!("END app- {old}"));
                }
            }
            1 => {
                let policy = if n % 8 == 1 { Policy::Required } else { Policy::Optional };
                say(&format!("BEGIN domain {policy}"));
                admin.domain_set("example.org", policy, None, None, now()).unwrap();
                say(&format!("END domain {policy}"));
            }
            2 => {
                let next = logins + 1;
                say(&format!("BEGIN login {next}"));
                let r = pam::login(confdir, "mail", b"alice@example.org", app_password.as_bytes(), RHOST);
                assert!(r.ok(), "app password login refused: {r:?}");
                say(&format!("END login {next}"));
                logins = next;
            }
            _ => {
                let e = admin.enroll_begin(&bob, now()).unwrap();
                let secret = e.secret.to_string();
                say(&format!("BEGIN enroll {secret}"));
                let seed = TotpSeed {
                    secret: pam_mfa::secret::SecretString::new(secret.clone()),
                    digits: e.digits,
                    period: e.period,
                    algorithm: e.algorithm,
                    created: 0,
                };
                let code = seed.generator().unwrap().code_at(now());
                admin.enroll_confirm(&bob, &code, now()).unwrap();
                say(&format!("END enroll {secret}"));
                // A login of bob with a code (a state write under the lock; it
                // may be refused as a replay when the previous round used the
                // same step: last_step outlives a re-enrolment).
                let typed = format!("{password}{}", seed.generator().unwrap().code_at(now() + 30).as_str());
                say("BEGIN bob-login");
                let r = pam::login(confdir, "mail", b"bob@example.org", typed.as_bytes(), RHOST);
                say(&format!("END bob-login {}", r.auth));
                say("BEGIN disable");
                admin.disable(&bob, None, true, now()).unwrap();
                say("END disable");
            }
        }
    }
}
