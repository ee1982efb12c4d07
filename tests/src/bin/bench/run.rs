//! One row of the table: the orchestrator's side of a run, which hands each
//! worker process its share of fresh mailboxes, starts them together and
//! turns what they report into throughput and latency percentiles.

use crate::cache::{self, Cache};
use crate::fixture::mailbox_at;
use crate::report::{Cpu, Row, pct};
use crate::stores::{Kind, World, reset, sync};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RunSpec<'a> {
    pub kind: Kind,
    pub cache: Cache,
    pub case: &'a str,
    pub service: Option<&'a str>,
    pub durable: bool,
    pub count: u64,
    pub procs: u64,
    pub threads: u64,
    /// Each login in a new worker process (see `run`).
    pub process_per_login: bool,
}

/// What one worker reports.
struct WorkerResult {
    /// From the start signal to its `done`.
    took: Duration,
    ok: u64,
    failed: u64,
    rss_kb: u64,
    /// Its own CPU time (user + system) during the logins.
    cpu_us: u64,
    /// Each login's time, ns.
    lat: Vec<u64>,
}
type Worker = (Child, BufReader<ChildStdout>);

/// Starts one worker process for the logins `slot`, `slot + slots`, ... of
/// the `count` that start at `start`, and waits until it is ready.
fn start_worker(w: &World, spec: &RunSpec, start: u64, count: u64, slot: u64, slots: u64, threads: u64) -> Worker {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(&exe);
    cmd.arg("worker")
        .arg(format!("n={}", w.n))
        .arg(format!("offset={start}"))
        .arg(format!("count={count}"))
        .arg(format!("slot={slot}"))
        .arg(format!("slots={slots}"))
        .arg(format!("threads={threads}"))
        .arg(format!("durable={}", u8::from(spec.durable)))
        .arg(format!("confdir={}", w.confdir.display()))
        .arg(format!("warmup={}", u8::from(warms_up(spec))));
    if let Some(s) = spec.service {
        cmd.arg(format!("service={s}"));
    } else {
        cmd.arg(format!("floor={}", w.floor_dir.display()))
            .arg(format!("slot_size={}", w.mfa_file_size / 2));
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "worker did not start");
    (child, out)
}

/// Whether the workers log in once, untimed, before the run (see
/// `worker::warm_up`): pam_mfa's rows, except those that measure a new
/// process per login.
fn warms_up(spec: &RunSpec) -> bool {
    matches!(spec.kind, Kind::Mfa | Kind::Pg) && !spec.process_per_login
}

fn go(children: &mut [Worker]) {
    for (child, _) in children {
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        child.stdin.as_mut().unwrap().flush().unwrap();
    }
}

/// Reads every worker's report; `go` is when the start signal went out.
fn collect(mut children: Vec<Worker>, go: Instant) -> Vec<WorkerResult> {
    let results: Vec<WorkerResult> = std::thread::scope(|s| {
        let hs: Vec<_> = children
            .iter_mut()
            .map(|(_, out)| {
                s.spawn(move || {
                    let mut line = String::new();
                    out.read_line(&mut line).unwrap();
                    assert_eq!(line.trim(), "done", "worker failed");
                    let took = go.elapsed();
                    line.clear();
                    out.read_line(&mut line).unwrap();
                    let f: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
                    line.clear();
                    out.read_line(&mut line).unwrap();
                    let lat: Vec<u64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
                    WorkerResult {
                        took,
                        ok: f[0],
                        failed: f[1],
                        rss_kb: f[2],
                        cpu_us: f[3],
                        lat,
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (mut child, _) in children {
        assert!(child.wait().unwrap().success(), "a worker exited with an error");
    }
    results
}

/// CPU time the whole machine spent busy so far (all cores, every process
/// and the kernel; /proc/stat), to tell a run bound by CPU from one that
/// waits: on a quiet machine, the run's workers, database server and kernel.
fn busy_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = cpu
        .iter()
        .take(8)
        .enumerate()
        .filter(|(k, _)| *k != 3 && *k != 4)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(busy * 1_000_000 / hz)
}

/// Takes `count` mailboxes of `kind`'s store not used since its last reset
/// (putting them all back first if too few are left); returns the position
/// of the first in the login order (`mailbox_at`).
pub fn claim(w: &mut World, kind: Kind, count: u64) -> u64 {
    let (offset, used) = w.cursor.entry(kind).or_insert((0, Vec::new()));
    if *offset + count > w.n {
        let taken = std::mem::take(used);
        *offset = 0;
        reset(w, kind, &taken);
    }
    let (offset, used) = w.cursor.get_mut(&kind).unwrap();
    let start = *offset;
    *offset += count;
    used.extend((0..count).map(|j| mailbox_at(w.n, start, j)));
    start
}

pub fn run(w: &mut World, spec: &RunSpec) -> Row {
    let count = spec.count.min(w.n);
    let start = claim(w, spec.kind, count);
    if spec.kind == Kind::Oath {
        // pam_oath rewrites one file for everybody: start each run from the pristine file.
        reset(w, Kind::Oath, &[]);
    }
    sync();
    if spec.kind == Kind::Pg {
        w.pg.as_ref().unwrap().checkpoint();
    }
    cache::prepare(w, spec.kind, spec.cache, start, count);
    let mut busy = Duration::ZERO;
    let results = if spec.process_per_login {
        // One worker process per login, one after the other: each pays what
        // a short-lived process pays (loading the module, for PostgreSQL a
        // new connection: TCP/TLS, SCRAM, the schema check and the prepared
        // statements). Only the login itself is timed, inside the worker.
        (0..count)
            .map(|j| {
                let mut one = vec![start_worker(w, spec, start, count, j, count, 1)];
                go(&mut one);
                collect(one, Instant::now()).pop().unwrap()
            })
            .collect()
    } else {
        let slots = spec.procs * spec.threads;
        let mut children: Vec<Worker> = (0..spec.procs)
            .map(|p| start_worker(w, spec, start, count, p * spec.threads, slots, spec.threads))
            .collect();
        let started = Instant::now();
        let before = busy_cpu();
        go(&mut children);
        let r = collect(children, started);
        busy = busy_cpu().saturating_sub(before);
        r
    };
    // Wall time from the start signal to the last worker done; for one
    // process per login, the sum of the logins' own times (process start
    // and exit are not a login's cost).
    let wall = if spec.process_per_login {
        results
            .iter()
            .flat_map(|r| r.lat.iter())
            .map(|ns| Duration::from_nanos(*ns))
            .sum()
    } else {
        results.iter().map(|r| r.took).max().unwrap_or_default()
    };
    let mut lat: Vec<u64> = results.iter().flat_map(|r| r.lat.iter().copied()).collect();
    lat.sort_unstable();
    let ok: u64 = results.iter().map(|r| r.ok).sum();
    let failed: u64 = results.iter().map(|r| r.failed).sum();
    let par = match (spec.procs, spec.threads) {
        _ if spec.process_per_login => "1".to_string(),
        (1, 1) => "1".to_string(),
        (p, 1) => format!("{p} proc"),
        (1, t) => format!("{t} thr"),
        (p, t) => format!("{p}x{t}"),
    };
    Row {
        n: w.n,
        case: spec.case.to_string(),
        par,
        logins: ok + failed,
        failed,
        per_s: (ok + failed) as f64 / wall.as_secs_f64(),
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        max: lat.last().copied().unwrap_or(0),
        rss_kb: results.iter().map(|r| r.rss_kb).max().unwrap_or(0),
        cpu: (!spec.process_per_login).then(|| {
            let logins = (ok + failed).max(1) as f64;
            Cpu {
                all_ms: busy.as_secs_f64() * 1e3 / logins,
                workers_ms: results.iter().map(|r| r.cpu_us).sum::<u64>() as f64 / 1e3 / logins,
                cores: busy.as_secs_f64() / wall.as_secs_f64(),
            }
        }),
    }
}
