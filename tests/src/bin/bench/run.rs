//! One row of the table: the orchestrator's side of a run, which hands each
//! worker process its share of fresh mailboxes, starts them together and
//! turns what they report into throughput and latency percentiles.

use crate::cache::{self, Cache};
use crate::fixture::mailbox_at;
use crate::report::{Row, pct};
use crate::stores::{Kind, World, reset, sync};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
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
}

pub fn run(w: &mut World, spec: &RunSpec) -> Row {
    let count = spec.count.min(w.n);
    let (offset, used) = w.cursor.entry(spec.kind).or_insert((0, Vec::new()));
    if *offset + count > w.n {
        let taken = std::mem::take(used);
        *offset = 0;
        let kind = spec.kind;
        reset(w, kind, &taken);
    }
    let (offset, used) = w.cursor.get_mut(&spec.kind).unwrap();
    let start = *offset;
    *offset += count;
    used.extend((0..count).map(|j| mailbox_at(w.n, start, j)));
    if spec.kind == Kind::Oath {
        // pam_oath rewrites one file for everybody: start each run from the pristine file.
        reset(w, Kind::Oath, &[]);
    }
    sync();
    cache::prepare(w, spec, start, count);
    let exe = std::env::current_exe().unwrap();
    let slots = spec.procs * spec.threads;
    let mut children = Vec::new();
    for p in 0..spec.procs {
        let mut cmd = Command::new(&exe);
        cmd.arg("worker")
            .arg(format!("n={}", w.n))
            .arg(format!("offset={start}"))
            .arg(format!("count={count}"))
            .arg(format!("slot={}", p * spec.threads))
            .arg(format!("slots={slots}"))
            .arg(format!("threads={}", spec.threads))
            .arg(format!("durable={}", u8::from(spec.durable)))
            .arg(format!("confdir={}", w.confdir.display()));
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
        children.push((child, out));
    }
    let go = Instant::now();
    for (child, _) in &mut children {
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        child.stdin.as_mut().unwrap().flush().unwrap();
    }
    let results: Vec<(Duration, u64, u64, u64, Vec<u64>)> = std::thread::scope(|s| {
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
                    (took, f[0], f[1], f[2], lat)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (mut child, _) in children {
        assert!(child.wait().unwrap().success(), "a worker exited with an error");
    }
    let wall = results.iter().map(|r| r.0).max().unwrap_or_default();
    let mut lat: Vec<u64> = results.iter().flat_map(|r| r.4.iter().copied()).collect();
    lat.sort_unstable();
    let ok: u64 = results.iter().map(|r| r.1).sum();
    let failed: u64 = results.iter().map(|r| r.2).sum();
    let par = match (spec.procs, spec.threads) {
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
        rss_kb: results.iter().map(|r| r.3).max().unwrap_or(0),
    }
}
