//! The output, kept apart from the measuring: docs/BENCHMARKS.md quotes these
//! tables and the smoke test greps their rows, so their format is a contract.

use crate::opts::Opts;

/// What the setup of one size reports: N, (store, seconds) pairs, and the
/// size of a steady-state pam_mfa mailbox file.
pub type Setup = (u64, Vec<(String, f64)>, usize);
/// The library steps of one login: (step, us p50, times per login).
pub type Steps = Vec<(&'static str, f64, u32)>;

#[derive(Debug, Clone)]
pub struct Row {
    pub n: u64,
    pub case: String,
    pub par: String,
    pub logins: u64,
    pub failed: u64,
    pub per_s: f64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub rss_kb: u64,
    /// CPU per login (not for one process per login: that is mostly process start).
    pub cpu: Option<Cpu>,
}

/// Where a run's CPU went, per login.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    /// The whole machine (workers, database server, kernel), ms per login.
    pub all_ms: f64,
    /// The worker processes alone (libpam and the module), ms per login.
    pub workers_ms: f64,
    /// Average cores busy during the run.
    pub cores: f64,
}

/// One raced case: how many of its codes were accepted once, more than
/// once, or by nobody.
#[derive(Debug, Clone)]
pub struct RaceRow {
    pub n: u64,
    pub case: String,
    pub procs: u64,
    pub rounds: u64,
    pub once: u64,
    pub twice: u64,
    pub none: u64,
    /// The most acceptances one code got.
    pub most: u64,
    pub p50: u64,
    pub p99: u64,
}

/// Everything the run measured, for the output.
pub struct Results<'a> {
    pub setups: &'a [Setup],
    pub rows: &'a [Row],
    pub races: &'a [RaceRow],
    pub breakdowns: &'a [(u64, Steps)],
    pub pg_breakdowns: &'a [(u64, Steps)],
}

pub fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

fn print_row(r: &Row) {
    println!(
        "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.1} |",
        r.n,
        r.case,
        r.par,
        r.logins,
        r.failed,
        r.per_s,
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        r.rss_kb as f64 / 1024.0
    );
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {}, Linux {}",
        mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        kernel.trim()
    )
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn find<'a>(rows: &'a [Row], n: u64, case: &str, par: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.n == n && r.case == case && r.par == par)
}

fn print_targets(rows: &[Row], opts: &Opts) {
    let par = format!("{} proc", opts.workers);
    let thr = format!("{} thr", opts.workers);
    println!("Targets, computed from the table above:");
    println!();
    for &n in &opts.sizes {
        let mfa = find(rows, n, "pam_mfa durable", "1");
        let ga = find(rows, n, "google-authenticator", "1");
        let floor = find(rows, n, "floor: HMAC + durable write", "1");
        if let (Some(m), Some(g)) = (mfa, ga) {
            println!(
                "- N={n}: pam_mfa / google-authenticator single-thread logins/s = {:.2}x (target >= 1.5x)",
                m.per_s / g.per_s
            );
        }
        if let (Some(m), Some(g)) = (
            find(rows, n, "pam_mfa durable, cold cache", "1"),
            find(rows, n, "google-authenticator, cold cache", "1"),
        ) {
            println!(
                "- N={n}: cold cache: pam_mfa / google-authenticator single-thread logins/s = {:.2}x",
                m.per_s / g.per_s
            );
        }
        if let (Some(m), Some(f)) = (mfa, floor) {
            println!(
                "- N={n}: pam_mfa p50 / floor p50 = {:.2}x (target <= 2x)",
                m.p50 as f64 / f.p50.max(1) as f64
            );
        }
        if let Some(m) = mfa {
            for p in [&par, &thr] {
                if let Some(mp) = find(rows, n, "pam_mfa durable", p) {
                    println!(
                        "- N={n}: pam_mfa {p} / single logins/s = {:.2}x (target >= 1.6x), failed logins: {}",
                        mp.per_s / m.per_s,
                        mp.failed
                    );
                }
            }
        }
    }
    print_pg_targets(rows, opts);
    let lo = opts.sizes.iter().min().copied().unwrap_or(0);
    let hi = opts.sizes.iter().max().copied().unwrap_or(0);
    if lo != hi
        && let (Some(a), Some(b)) = (
            find(rows, lo, "pam_mfa durable", "1"),
            find(rows, hi, "pam_mfa durable", "1"),
        )
    {
        println!(
            "- flat with N: pam_mfa p50 at N={hi} / p50 at N={lo} = {:.2}x (target <= 1.2x)",
            b.p50 as f64 / a.p50.max(1) as f64
        );
    }
}

fn print_pg_targets(rows: &[Row], opts: &Opts) {
    let par = format!("{} proc", opts.workers);
    for &n in &opts.sizes {
        let Some(file) = find(rows, n, "pam_mfa durable", "1") else {
            continue;
        };
        for (case, target) in [
            ("pam_mfa postgres socket", " (target <= 2x)"),
            ("pam_mfa postgres TCP+TLS", ""),
        ] {
            if let Some(pg) = find(rows, n, case, "1") {
                println!(
                    "- N={n}: {case} p50 / pam_mfa durable (files) p50 = {:.2}x{target}; logins/s {:.0} vs {:.0} = {:.2}x the cost",
                    pg.p50 as f64 / file.p50.max(1) as f64,
                    pg.per_s,
                    file.per_s,
                    file.per_s / pg.per_s
                );
            }
        }
        for (case, target) in [
            ("pam_mfa postgres socket", " (target >= 3x)"),
            ("pam_mfa postgres TCP+TLS", " (target >= 3x)"),
            ("pam_mfa durable", " (files, for comparison)"),
        ] {
            if let (Some(one), Some(many)) = (find(rows, n, case, "1"), find(rows, n, case, &par)) {
                println!(
                    "- N={n}: {case} {par} / 1 proc logins/s = {:.0} / {:.0} = {:.2}x{target}, failed logins: {}",
                    many.per_s,
                    one.per_s,
                    many.per_s / one.per_s,
                    many.failed
                );
            }
        }
    }
}

fn print_cpu(rows: &[Row]) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("CPU per login, from the start signal to the last worker done: the whole machine (/proc/stat: workers,");
    println!("PostgreSQL server, kernel; anything else running too), and the worker processes alone (getrusage):");
    println!();
    println!("| N | case | parallel | CPU ms per login, machine | of which workers | cores busy (of {cores}) |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        if let Some(c) = r.cpu {
            println!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.2} |",
                r.n, r.case, r.par, c.all_ms, c.workers_ms, c.cores
            );
        }
    }
    println!();
}

fn print_races(races: &[RaceRow]) {
    if races.is_empty() {
        return;
    }
    println!("One code raced across processes: each raced code is one fresh mailbox's valid code, typed by every");
    println!("process at once; a replay-safe module accepts each exactly once.");
    println!();
    println!(
        "| N | case | processes | raced codes | accepted once | accepted twice or more | accepted by none | most acceptances of one code | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in races {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            r.case,
            r.procs,
            r.rounds,
            r.once,
            r.twice,
            r.none,
            r.most,
            ms(r.p50),
            ms(r.p99)
        );
    }
    println!();
    for r in races {
        let target = if r.case.starts_with("pam_mfa") {
            " (target: 0)"
        } else {
            ""
        };
        println!(
            "- N={}: {}: {} of {} raced codes accepted twice or more{target}, {} accepted by none",
            r.n, r.case, r.twice, r.rounds, r.none
        );
    }
    println!();
}

/// Everything after the runs: the setup times, the table, the targets and the step breakdown.
pub fn print(opts: &Opts, res: &Results) {
    let (setups, rows, breakdowns) = (res.setups, res.rows, res.breakdowns);
    println!("load average at end: {}", loadavg());
    println!();
    println!("Setup (not counted in the login figures), seconds:");
    println!();
    println!("| N | store | seconds |");
    println!("|---|---|---|");
    for (n, times, _) in setups {
        for (what, s) in times {
            println!("| {n} | {what} | {s:.1} |");
        }
    }
    println!();
    if let Some((_, _, size)) = setups.first() {
        println!(
            "pam_mfa mailbox file (steady state: secret and 20 recent logins): {size} bytes; the floor reads and rewrites half of it (one slot) in place."
        );
        println!();
    }
    println!("| N | case | parallel | logins | failed | logins/s | p50 ms | p99 ms | max ms | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        print_row(r);
    }
    println!();
    print_cpu(rows);
    print_targets(rows, opts);
    println!();
    print_races(res.races);
    println!("Where a pam_mfa login's time goes: library steps timed in-process (p50 of 300 mailboxes),");
    println!("times the number of times one login with a 6-digit code runs each (module.rs: the first of the");
    println!("four calls loads the configuration, split reads the mailbox, verify locks, decides and writes it):");
    println!();
    println!("| N | step | us p50 | per login | us per login |");
    println!("|---|---|---|---|---|");
    for (n, steps) in breakdowns {
        let mut sum = 0.0;
        for (what, us, times) in steps {
            if !what.contains("durable") {
                sum += us * f64::from(*times);
            }
            println!("| {n} | {what} | {us:.1} | {times} | {:.1} |", us * f64::from(*times));
        }
        println!("| {n} | sum (relaxed) | | | {sum:.1} |");
    }
    print_pg_steps(res.pg_breakdowns);
}

/// The database steps of a PostgreSQL login (see `pgstore::breakdown`).
fn print_pg_steps(pg: &[(u64, Steps)]) {
    if pg.is_empty() {
        return;
    }
    println!();
    println!("Where a pam_mfa login's time goes on PostgreSQL (socket, as pam_mfa_login): the store calls timed");
    println!("in-process on an open connection (p50 of 300 mailboxes), times the number of times one login runs each:");
    println!();
    println!("| N | step | us p50 | per login | us per login |");
    println!("|---|---|---|---|---|");
    for (n, steps) in pg {
        let mut sum = 0.0;
        for (what, us, times) in steps {
            sum += us * f64::from(*times);
            println!("| {n} | {what} | {us:.1} | {times} | {:.1} |", us * f64::from(*times));
        }
        println!("| {n} | sum | | | {sum:.1} |");
    }
}
