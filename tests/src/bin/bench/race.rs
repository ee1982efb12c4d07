//! One code raced across processes: for each of R fresh mailboxes, every
//! worker process types the same valid code at the same moment, as clients
//! replaying one password+code against several auth workers (or several
//! mail servers sharing one database) would. A replay-safe module accepts
//! each code exactly once. Not timed as throughput: what counts is how many
//! acceptances each code got; the latencies are reported as seen.
//!
//! The orchestrator starts the round: it sends `go J T` (the J-th mailbox
//! of the run, the code of time T, so every racer types the same code even
//! across a step boundary) to every racer, then reads one `1 NS` or `0 NS`
//! (accepted or not, the login's time) from each before the next round.

use crate::cache::{self, Cache};
use crate::fixture::{PASSWORD, RHOST, mailbox_at, now, seed, user};
use crate::report::{RaceRow, pct};
use crate::run::claim;
use crate::stores::{Kind, World, sync};
use pam_mfa_tests::pam;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct RaceSpec {
    pub kind: Kind,
    pub case: &'static str,
    pub service: &'static str,
    pub procs: u64,
    pub rounds: u64,
}

/// The raced cases at every size: pam_mfa on files and on PostgreSQL (each
/// way of reaching it), and google-authenticator for comparison (it takes
/// no lock).
pub fn cases(procs: u64, rounds: u64, postgres: bool) -> Vec<RaceSpec> {
    let mut v = vec![("pam_mfa durable", Kind::Mfa, "mfa-durable")];
    if postgres {
        v.push(("pam_mfa postgres socket", Kind::Pg, "mfa-pg-socket"));
        v.push(("pam_mfa postgres TCP+TLS", Kind::Pg, "mfa-pg-tls"));
    }
    v.push(("google-authenticator", Kind::Ga, "ga"));
    v.into_iter()
        .map(|(case, kind, service)| RaceSpec {
            kind,
            case,
            service,
            procs,
            rounds,
        })
        .collect()
}

pub fn run(w: &mut World, spec: &RaceSpec) -> RaceRow {
    let rounds = spec.rounds.min(w.n);
    let start = claim(w, spec.kind, rounds);
    sync();
    if spec.kind == Kind::Pg {
        w.pg.as_ref().unwrap().checkpoint();
    }
    cache::prepare(w, spec.kind, Cache::Warm, start, rounds);
    let exe = std::env::current_exe().unwrap();
    let mut racers: Vec<_> = (0..spec.procs)
        .map(|_| {
            let mut child = Command::new(&exe)
                .arg("racer")
                .arg(format!("n={}", w.n))
                .arg(format!("offset={start}"))
                .arg(format!("confdir={}", w.confdir.display()))
                .arg(format!("service={}", spec.service))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready", "racer did not start");
            (child, out)
        })
        .collect();
    let (mut once, mut twice, mut none, mut most) = (0, 0, 0, 0);
    let mut lat = Vec::new();
    let mut line = String::new();
    for j in 0..rounds {
        let go = format!("go {j} {}\n", now());
        for (child, _) in &mut racers {
            let stdin = child.stdin.as_mut().unwrap();
            stdin.write_all(go.as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
        let mut accepted = 0;
        for (_, out) in &mut racers {
            line.clear();
            out.read_line(&mut line).unwrap();
            let (ok, ns) = line.trim().split_once(' ').expect("racer failed");
            accepted += u64::from(ok == "1");
            lat.push(ns.parse::<u64>().unwrap());
        }
        match accepted {
            0 => none += 1,
            1 => once += 1,
            _ => twice += 1,
        }
        most = most.max(accepted);
    }
    for (mut child, _) in racers {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "a racer exited with an error");
    }
    lat.sort_unstable();
    RaceRow {
        n: w.n,
        case: spec.case.to_string(),
        procs: spec.procs,
        rounds,
        once,
        twice,
        none,
        most,
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
    }
}

/// `bench racer key=value...`: logs in once per `go J T` line, as long as
/// stdin gives them.
pub fn racer_main(args: &[String]) {
    let kv: BTreeMap<&str, &str> = args.iter().filter_map(|a| a.split_once('=')).collect();
    let get = |k: &str| *kv.get(k).unwrap_or_else(|| panic!("racer: missing {k}"));
    let (n, offset): (u64, u64) = (get("n").parse().unwrap(), get("offset").parse().unwrap());
    let confdir = PathBuf::from(get("confdir"));
    let service = get("service");
    crate::worker::warm_up(&confdir, service);
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut it = line.split_whitespace().skip(1).map(|x| x.parse::<u64>().unwrap());
        let (j, t) = (it.next().unwrap(), it.next().unwrap());
        let i = mailbox_at(n, offset, j);
        let typed = format!("{PASSWORD}{}", seed(i).generator().unwrap().code_at(t).as_str());
        let started = Instant::now();
        let r = pam::login(&confdir, service, user(i).as_bytes(), typed.as_bytes(), Some(RHOST));
        let ns = started.elapsed().as_nanos();
        writeln!(stdout, "{} {ns}", u8::from(r.ok())).unwrap();
        stdout.flush().unwrap();
    }
}
