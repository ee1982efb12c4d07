//! The benchmark: pam_mfa against google-authenticator-libpam and
//! pam_oath, driven through the REAL libpam (pam_start_confdir ->
//! pam_authenticate -> pam_acct_mgmt -> pam_end, via the test harness's FFI)
//! on identical work: N mailboxes, each with its own secret, each login a
//! password+code with a valid, fresh code for a mailbox not used before in
//! that run. It also measures the physical floor (one HMAC-SHA1 plus one
//! atomic state update of the same size on the same filesystem), so the
//! module's numbers can be read against what no implementation can avoid.
//!
//! `bench` alone is the orchestrator: it builds each store in a temp folder
//! (timed separately), then starts worker processes (`bench worker ...`,
//! the same binary) that do the logins and report latencies and peak RSS.
//! Workers are processes, not threads, because pam_google_authenticator and
//! pam_oath are not known to be thread-safe and Dovecot uses processes; a
//! threaded row is added for pam_mfa only. See docs/BENCHMARKS.md.
//!
//! Benchmark code, like test code: a panic is how it reports a broken setup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod breakdown;
mod cache;
mod cases;
mod console;
mod content;
mod fixture;
mod opts;
mod pgstore;
mod race;
mod report;
mod run;
mod services;
mod stores;
mod worker;

use crate::fixture::PASSWORD;
use crate::opts::Opts;
use crate::report::{loadavg, machine};
use crate::stores::Kind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("worker") => return worker::main(&args[1..]),
        Some("racer") => return race::racer_main(&args[1..]),
        _ => {}
    }
    let opts = opts::parse(&args);
    if std::env::var_os("PAM_MFA_BENCH_NS").is_none() && !opts.console {
        console::reexec_without_console(&args);
    }
    if !orchestrate(&opts) {
        eprintln!(
            "bench: FAILED: a login with a correct fresh code was refused (see the 'failed' column), or pam_mfa accepted a \
             raced code twice or not at all (see the raced codes)"
        );
        std::process::exit(1);
    }
}

/// Fails early, before any store is built, if a module of the comparison is
/// missing; returns the built pam_mfa module and the password hash for
/// pam_pwdfile.
fn prerequisites() -> (PathBuf, String) {
    let exe = std::env::current_exe().unwrap();
    let module = exe.parent().unwrap().join("libpam_mfa.so");
    assert!(
        module.exists(),
        "{} is missing: build it first (cargo build [--release] -p pam_mfa)",
        module.display()
    );
    for m in [
        "pam_google_authenticator.so",
        "pam_oath.so",
        "pam_pwdfile.so",
        "pam_permit.so",
    ] {
        assert!(
            Path::new("/lib/x86_64-linux-gnu/security").join(m).exists()
                || Path::new("/usr/lib/x86_64-linux-gnu/security").join(m).exists(),
            "{m} is missing: run bash tests/deps.sh (libpam-google-authenticator, libpam-oath, libpam-pwdfile)"
        );
    }
    let hash = Command::new("openssl")
        .args(["passwd", "-6", "-salt", "benchsalt", PASSWORD])
        .output()
        .expect("openssl is needed for the pam_pwdfile rows");
    let hash = String::from_utf8(hash.stdout).unwrap().trim().to_string();
    (module, hash)
}

fn orchestrate(opts: &Opts) -> bool {
    let (module, hash) = prerequisites();
    println!("machine: {}", machine());
    println!("module: {}", module.display());
    println!("store folder: {} (ext4? see `findmnt -T`)", opts.dir.display());
    println!("load average at start: {}", loadavg());
    println!("options: {opts:?}");
    if opts.postgres {
        let c = pgstore::cluster(&opts.pg_set);
        println!(
            "postgres: private cluster {} port {}: {}",
            c.root().display(),
            c.port(),
            pgstore::describe(c)
        );
    }
    let mut all_ok = true;
    let mut rows = Vec::new();
    let mut races = Vec::new();
    let mut setups = Vec::new();
    let mut breakdowns = Vec::new();
    let mut pg_breakdowns = Vec::new();
    let smallest = opts.sizes.iter().copied().min().unwrap_or(0);
    for &n in &opts.sizes {
        eprintln!("bench: N = {n}: creating the stores");
        let (mut w, times) = stores::setup(opts, n, &module, &hash, n == smallest);
        setups.push((n, times, w.mfa_file_size));
        // Socket for pam_mfa's log lines, drained like a syslog daemon would.
        let sock = UnixDatagram::bind(w.root.join("log.sock")).unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while sock.recv(&mut buf).is_ok() {}
        });
        let specs = cases::at_size(opts, n, smallest);
        for spec in &specs {
            eprintln!(
                "bench: N = {n}: {} x{}/{} ({} logins)",
                spec.case,
                spec.procs,
                spec.threads,
                spec.count.min(n)
            );
            let r = run::run(&mut w, spec);
            // Every login had a correct fresh code for a distinct mailbox: any
            // failure of pam_mfa, or of anyone single-threaded, is a bug.
            if r.failed > 0 && (spec.kind == Kind::Mfa || (spec.procs == 1 && spec.threads == 1)) {
                all_ok = false;
            }
            rows.push(r);
        }
        for spec in race::cases(opts.workers, opts.race_rounds, opts.postgres) {
            eprintln!(
                "bench: N = {n}: {} raced x{} ({} codes)",
                spec.case, spec.procs, spec.rounds
            );
            let r = race::run(&mut w, &spec);
            // pam_mfa must accept every raced code exactly once.
            if matches!(spec.kind, Kind::Mfa | Kind::Pg) && (r.twice > 0 || r.none > 0) {
                all_ok = false;
            }
            races.push(r);
        }
        breakdowns.push((n, breakdown::breakdown(&w)));
        if let Some(pg) = &w.pg {
            println!(
                "postgres, N = {n}: table pam_mfa_mailboxes with its TOAST and index: {}",
                pg.table_size()
            );
            pg_breakdowns.push((n, pgstore::breakdown(pg, n)));
        }
        if opts.keep {
            eprintln!("bench: kept {}", w.root.display());
        } else {
            eprintln!("bench: N = {n}: removing the stores");
            std::fs::remove_dir_all(&w.root).unwrap();
        }
    }
    report::print(
        opts,
        &report::Results {
            setups: &setups,
            rows: &rows,
            races: &races,
            breakdowns: &breakdowns,
            pg_breakdowns: &pg_breakdowns,
        },
    );
    all_ok
}
