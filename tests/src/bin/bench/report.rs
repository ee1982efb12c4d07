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

/// Everything after the runs: the setup times, the table, the targets and the step breakdown.
pub fn print(opts: &Opts, setups: &[Setup], rows: &[Row], breakdowns: &[(u64, Steps)]) {
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
    print_targets(rows, opts);
    println!();
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
}
