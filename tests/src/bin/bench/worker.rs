//! The worker process (`bench worker ...`, the same binary): the logins of
//! one share of a run, timed where they happen, so the orchestrator's own
//! work never lands inside a measured login.

use crate::fixture::{DOMAIN, PASSWORD, RHOST, local, mailbox_at, now, seed, user};
use pam_mfa_tests::pam;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process (all its threads) so far, in us.
fn cpu_us() -> u64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// `bench worker key=value...`: waits for "go" on stdin, does its share of
/// the run, prints `done`, then `result OK FAIL RSS_KB CPU_US` (CPU_US: the
/// process's user + system time during its logins) and the latencies (ns).
pub fn main(args: &[String]) {
    let kv: BTreeMap<&str, &str> = args.iter().filter_map(|a| a.split_once('=')).collect();
    let get = |k: &str| -> u64 {
        kv.get(k)
            .unwrap_or_else(|| panic!("worker: missing {k}"))
            .parse()
            .unwrap()
    };
    let (n, offset, count) = (get("n"), get("offset"), get("count"));
    let (slot0, slots, threads) = (get("slot"), get("slots"), get("threads"));
    let floor = kv.get("floor").map(PathBuf::from);
    let durable = get("durable") == 1;
    let confdir = kv.get("confdir").map(PathBuf::from);
    let service = kv.get("service").map(|s| s.to_string());
    if get("warmup") == 1 {
        warm_up(confdir.as_ref().unwrap(), service.as_ref().unwrap());
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let cpu_before = cpu_us();
    let run_share = |slot: u64| -> (u64, u64, Vec<u64>) {
        let (mut ok, mut fail, mut lat) = (0, 0, Vec::new());
        let mut j = slot;
        while j < count {
            let i = mailbox_at(n, offset, j);
            if let Some(dir) = &floor {
                // The mirrored order: the floor must not warm the caches for
                // the very files the module runs use next.
                let i = n - 1 - i;
                let slot = get("slot_size") as usize;
                let started = Instant::now();
                floor_op(i, dir, slot, durable);
                lat.push(started.elapsed().as_nanos() as u64);
                ok += 1;
            } else {
                let g = seed(i).generator().unwrap();
                let typed = format!("{PASSWORD}{}", g.code_at(now()).as_str());
                let (confdir, service) = (confdir.as_ref().unwrap(), service.as_ref().unwrap());
                let started = Instant::now();
                let r = pam::login(confdir, service, user(i).as_bytes(), typed.as_bytes(), Some(RHOST));
                lat.push(started.elapsed().as_nanos() as u64);
                if r.ok() {
                    ok += 1;
                } else {
                    if fail == 0 {
                        eprintln!("bench worker: {service}: login of {} failed: {r:?}", user(i));
                    }
                    fail += 1;
                }
            }
            j += slots;
        }
        (ok, fail, lat)
    };
    let results: Vec<(u64, u64, Vec<u64>)> = if threads <= 1 {
        vec![run_share(slot0)]
    } else {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads).map(|t| s.spawn(move || run_share(slot0 + t))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let cpu = cpu_us() - cpu_before;
    println!("done");
    let (ok, fail): (u64, u64) = results.iter().fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
    let mut out = format!("result {ok} {fail} {} {cpu}\n", vm_hwm_kb());
    for (_, _, lat) in &results {
        for l in lat {
            let _ = write!(out, "{l} ");
        }
    }
    out.push('\n');
    std::io::stdout().write_all(out.as_bytes()).unwrap();
}

/// One untimed login before the run, of a mailbox no store holds: the
/// process maps pam_mfa.so (kept: `-z nodelete`) and, on PostgreSQL, opens
/// the connection it keeps for its later logins (SCRAM, TLS, the schema
/// check, the prepared statements), as an auth worker that has been up for a
/// while has. What a new process pays is the "new process per login" rows.
pub fn warm_up(confdir: &Path, service: &str) {
    let user = format!("bench-warmup@{DOMAIN}");
    std::hint::black_box(pam::login(
        confdir,
        service,
        user.as_bytes(),
        PASSWORD.as_bytes(),
        Some(RHOST),
    ));
}

/// The unavoidable work of one login: one HMAC-SHA1 (one TOTP code) and one
/// durable read-modify-write of the mailbox's data of the real size. The
/// cheapest atomic scheme known is the store's own (two checksummed copies
/// in one file, the older overwritten in place): so the floor opens the
/// mailbox's real file, reads one copy (4 KiB) and writes it back in place
/// unchanged (`pread`, `pwrite`, then `fdatasync` if durable). No parsing,
/// no lock, no rename, no new inode, no folder change.
fn floor_op(i: u64, dir: &Path, slot: usize, durable: bool) {
    use std::os::unix::fs::FileExt;
    let g = seed(i).generator().unwrap();
    std::hint::black_box(g.code_at(1_700_000_000));
    let path = dir.join(format!("{}.mfa", local(i)));
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut buf = vec![0u8; slot];
    f.read_exact_at(&mut buf, 0).unwrap();
    f.write_all_at(&buf, 0).unwrap();
    if durable {
        f.sync_data().unwrap();
    }
}
