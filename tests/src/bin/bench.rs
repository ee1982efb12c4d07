//! The benchmark of issue #7: pam_mfa against google-authenticator-libpam and
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

use pam_mfa::config::{Config, IfMissing};
use pam_mfa::mailbox::Mailbox;
use pam_mfa::store::Store;
use pam_mfa::store::records::{Login, MailboxFile, MailboxRecord, MailboxState, Method};
use pam_mfa::store::slots;
use pam_mfa::totp::{Algorithm, TotpSeed};
use pam_mfa_tests::pam;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DOMAIN: &str = "example.org";
const PASSWORD: &str = "Bench-pw-7";
const RHOST: &str = "192.0.2.10";
/// Steps mailboxes through a run in a scattered order (not directory
/// order): j -> (j * STRIDE + 7) mod N is a permutation when gcd(STRIDE, N) = 1.
const STRIDE: u64 = 1_000_003;

// ---------------------------------------------------------------- shared

fn user(i: u64) -> String {
    format!("u{i:07}@{DOMAIN}")
}

fn local(i: u64) -> String {
    format!("u{i:07}")
}

/// Mailbox of the j-th login of a run starting at `offset`.
fn mailbox_at(n: u64, offset: u64, j: u64) -> u64 {
    let stride = if gcd(STRIDE, n) == 1 { STRIDE % n } else { 1 };
    ((offset + j) % n * stride + 7) % n
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The 160-bit secret of mailbox `i`: derived, so workers need no copy of the store.
fn key(i: u64) -> Vec<u8> {
    let h = pam_mfa::secret::token_hash("bench", "", i.to_string().as_bytes());
    (0..20)
        .map(|k| u8::from_str_radix(&h[2 * k..2 * k + 2], 16).unwrap())
        .collect()
}

fn base32(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(A[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(A[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

fn seed(i: u64) -> TotpSeed {
    TotpSeed {
        secret: pam_mfa::secret::SecretString::new(base32(&key(i))),
        digits: 6,
        period: 30,
        algorithm: Algorithm::SHA1,
        created: 1_700_000_000,
    }
}

fn now() -> u64 {
    pam_mfa::clock::now().unwrap()
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mkdir(p: &Path) {
    DirBuilder::new().mode(0o700).recursive(true).create(p).unwrap();
}

fn write_file(p: &Path, bytes: &[u8], mode: u32) {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(p)
        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    f.write_all(bytes).unwrap();
}

// ---------------------------------------------------------------- worker

/// `bench worker key=value...`: waits for "go" on stdin, does its share of
/// the run, prints `done`, then `result OK FAIL RSS_KB` and the latencies (ns).
fn worker(args: &[String]) {
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
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
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
    println!("done");
    let (ok, fail): (u64, u64) = results.iter().fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
    let mut out = format!("result {ok} {fail} {}\n", vm_hwm_kb());
    for (_, _, lat) in &results {
        for l in lat {
            let _ = write!(out, "{l} ");
        }
    }
    out.push('\n');
    std::io::stdout().write_all(out.as_bytes()).unwrap();
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

// ---------------------------------------------------------------- orchestrator

#[derive(Debug, Clone)]
struct Opts {
    sizes: Vec<u64>,
    logins: u64,
    workers: u64,
    dir: PathBuf,
    keep: bool,
    quick: bool,
    /// Let syslog(3) fall back to the real /dev/console (see `reexec_without_console`).
    console: bool,
}

fn parse_opts(args: &[String]) -> Opts {
    let mut o = Opts {
        sizes: vec![1_000, 100_000, 1_000_000],
        logins: 3_000,
        workers: 8,
        dir: std::env::temp_dir(),
        keep: false,
        quick: false,
        console: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{a} needs a value")).clone();
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.sizes = vec![100];
                o.logins = 100;
                o.workers = 4;
            }
            "--sizes" => {
                o.sizes = val()
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse().unwrap())
                    .collect()
            }
            "--logins" => o.logins = val().parse().unwrap(),
            "--workers" => o.workers = val().parse().unwrap(),
            "--dir" => o.dir = PathBuf::from(val()),
            "--keep" => o.keep = true,
            "--console" => o.console = true,
            "-h" | "--help" => {
                println!(
                    "usage: bench [--quick] [--sizes 1000,100000,1000000] [--logins 3000] [--workers 8] [--dir TMPDIR] [--keep] [--console]\n\
                     Builds stores of N mailboxes for pam_mfa, pam_google_authenticator and pam_oath in a temp folder,\n\
                     then times logins through the real libpam. See docs/BENCHMARKS.md."
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (try --help)"),
        }
    }
    o
}

/// Which store a run uses: runs over one store share "which mailboxes are
/// still fresh" bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Floor,
    Permit,
    Mfa,
    Ga,
    Oath,
}

struct World {
    n: u64,
    root: PathBuf,
    confdir: PathBuf,
    mfa_store: PathBuf,
    /// Size of a steady-state mailbox file.
    mfa_file_size: usize,
    /// When the steady state was made (its logins and last step are before).
    t0: u64,
    ga_dir: PathBuf,
    oath_file: PathBuf,
    /// Where the floor rewrites mailbox files: the pam_mfa store's domain folder.
    floor_dir: PathBuf,
    /// Next unused position in each store's login order, and the mailboxes
    /// used since the last reset.
    cursor: BTreeMap<Kind, (u64, Vec<u64>)>,
}

#[derive(Debug, Clone)]
struct Row {
    n: u64,
    case: String,
    par: String,
    logins: u64,
    failed: u64,
    per_s: f64,
    p50: u64,
    p99: u64,
    max: u64,
    rss_kb: u64,
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ga_text(i: u64) -> String {
    let k = key(i);
    let mut s = format!(
        "{}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n",
        base32(&k)
    );
    for c in 0..5u64 {
        let _ = writeln!(s, "{:08}", 10_000_000 + (i * 5 + c) * 7919 % 89_999_999);
    }
    s
}

fn oath_text(n: u64) -> Vec<u8> {
    let mut s = String::with_capacity(n as usize * 80);
    for i in 0..n {
        let _ = writeln!(s, "HOTP/T30/6\t{}\t+\t{}", user(i), pam_mfa::secret::hex(&key(i)));
    }
    s.into_bytes()
}

/// Mailbox `i` as the store holds it in the steady state.
fn mfa_content(i: u64, t: u64) -> MailboxFile {
    MailboxFile {
        record: MailboxRecord {
            totp: Some(seed(i)),
            ..Default::default()
        },
        state: primed_state(t),
    }
}

/// The bytes of mailbox `i`'s file in the steady state: both copies
/// written (as after a few logins), the newer in the first slot.
fn mfa_file(i: u64, t: u64) -> Vec<u8> {
    let json = mfa_content(i, t).to_json().unwrap();
    let size = slots::slot_size_for(&json);
    let mut bytes = slots::encode(3, &json, size).unwrap().to_vec();
    bytes.extend_from_slice(&slots::encode(2, &json, size).unwrap());
    bytes
}

/// The state a mailbox has after a while in use: an old accepted step and
/// the full list of recent logins, so each login rewrites a file of the
/// steady-state size.
fn primed_state(t: u64) -> MailboxState {
    let mut s = MailboxState {
        last_step: Some(t / 30 - 100),
        ..Default::default()
    };
    for k in 0..20 {
        s.push_login(
            Login {
                at: t - 3_000 + k,
                service: "imap".into(),
                rhost: RHOST.into(),
                method: Method::Code,
                result: "ok".into(),
            },
            20,
        );
    }
    s
}

fn mfa_config(w: &World, durable: bool) -> PathBuf {
    let p = w.root.join(if durable {
        "mfa-durable.toml"
    } else {
        "mfa-relaxed.toml"
    });
    write_file(
        &p,
        format!(
            "store = \"{}\"\ndefault_domain = \"{DOMAIN}\"\n[state]\ndurable = {durable}\n",
            w.mfa_store.display()
        )
        .as_bytes(),
        0o600,
    );
    p
}

/// Creates every store of size `n`; returns the world and the setup times.
fn setup(opts: &Opts, n: u64, module: &Path, pwdfile_hash: &str, with_pwdfile: bool) -> (World, Vec<(String, f64)>) {
    let root = tempfile::Builder::new()
        .prefix("pam_mfa-bench.")
        .tempdir_in(&opts.dir)
        .unwrap()
        .keep();
    mkdir(&root);
    let mut times = Vec::new();
    let confdir = root.join("pam.d");
    mkdir(&confdir);
    let mut w = World {
        n,
        confdir,
        mfa_store: root.join("mfa"),
        mfa_file_size: 0,
        t0: now(),
        ga_dir: root.join("ga"),
        oath_file: root.join("users.oath"),
        floor_dir: root.join("mfa").join("mailboxes").join(DOMAIN),
        root,
        cursor: BTreeMap::new(),
    };
    let t = now();

    // pam_mfa: one file per mailbox (record with the secret, steady state).
    let started = Instant::now();
    let cfg_path = mfa_config(&w, true);
    mfa_config(&w, false);
    let cfg = Config::load(&cfg_path, 0, IfMissing::Refuse).unwrap();
    let store = Store::new(&cfg, None);
    let mb0 = Mailbox::parse(user(0).as_bytes(), None).unwrap();
    {
        // Mailbox 0 through the library, so the others are checked to be what it writes.
        let l = store.lock(&mb0, true).unwrap().unwrap();
        l.write_record(&mfa_content(0, t).record).unwrap();
        l.write_state(&primed_state(t), false).unwrap();
    }
    let written0 = store.read_mailbox(&mb0).unwrap().unwrap();
    assert_eq!(written0, mfa_content(0, t));
    let dom = w.mfa_store.join("mailboxes").join(DOMAIN);
    w.mfa_file_size = mfa_file(0, t).len();
    for i in 1..n {
        write_file(&dom.join(format!("{}.mfa", local(i))), &mfa_file(i, t), 0o600);
    }
    for i in [n / 2, n - 1] {
        let mb = Mailbox::parse(user(i).as_bytes(), None).unwrap();
        let r = store.read_record(&mb).unwrap().unwrap();
        assert_eq!(r.totp.unwrap().secret.as_str(), base32(&key(i)));
    }
    sync();
    times.push((
        "pam_mfa (1 file per mailbox)".to_string(),
        started.elapsed().as_secs_f64(),
    ));

    // google-authenticator: one file per user, as `google-authenticator -t -d -r 3 -R 30 -w 3` writes it.
    let started = Instant::now();
    mkdir(&w.ga_dir);
    for i in 0..n {
        write_file(&w.ga_dir.join(user(i)), ga_text(i).as_bytes(), 0o400);
    }
    sync();
    times.push((
        "google-authenticator (1 file per mailbox)".to_string(),
        started.elapsed().as_secs_f64(),
    ));

    // pam_oath: one users file.
    let started = Instant::now();
    write_file(&w.oath_file, &oath_text(n), 0o600);
    sync();
    times.push(("pam_oath (1 users file)".to_string(), started.elapsed().as_secs_f64()));

    // Password file for the full-stack rows (same hash for every user: the
    // crypt cost per login is what matters, not the hashes' variety).
    let pwdfile = w.root.join("passwd");
    let mut pw = String::with_capacity(if with_pwdfile { n as usize * 140 } else { 0 });
    for i in (0..n).filter(|_| with_pwdfile) {
        let _ = writeln!(pw, "{}:{pwdfile_hash}", user(i));
    }
    write_file(&pwdfile, pw.as_bytes(), 0o600);
    sync();

    // PAM service files.
    let m = module.display();
    let log = w.root.join("log.sock");
    let mfa = |cfg: &Path, password: &str| {
        let a = format!("config={} log_socket={} nodelay", cfg.display(), log.display());
        format!(
            "auth sufficient {m} app_password {a}\n\
             auth requisite {m} split {a}\n\
             auth requisite {password}\n\
             auth required {m} verify {a}\n\
             account required {m} {a}\n"
        )
    };
    let ga = |password: &str| {
        format!(
            "auth required pam_google_authenticator.so secret={}/${{USER}} user=root forward_pass\n\
             auth required {password}\n\
             account required pam_permit.so\n",
            w.ga_dir.display()
        )
    };
    let oath = format!(
        "auth required pam_oath.so usersfile={} digits=6\nauth required pam_permit.so\naccount required pam_permit.so\n",
        w.oath_file.display()
    );
    let pwd = format!("pam_pwdfile.so pwdfile={} use_first_pass", pwdfile.display());
    let services = [
        (
            "permit",
            "auth required pam_permit.so\naccount required pam_permit.so\n".to_string(),
        ),
        (
            "mfa-loaded",
            format!("auth required pam_permit.so\naccount required pam_permit.so\nsession optional {m}\n"),
        ),
        ("mfa-durable", mfa(&cfg_path, "pam_permit.so")),
        ("mfa-relaxed", mfa(&w.root.join("mfa-relaxed.toml"), "pam_permit.so")),
        ("mfa-pwdfile", mfa(&cfg_path, &pwd)),
        ("ga", ga("pam_permit.so")),
        ("ga-pwdfile", ga(&pwd)),
        ("oath", oath),
    ];
    for (name, text) in services {
        write_file(&w.confdir.join(name), text.as_bytes(), 0o644);
    }
    (w, times)
}

fn sync() {
    let _ = Command::new("sync").status();
}

/// Puts the mailboxes used since the last reset back in their steady state,
/// so the next run's codes are fresh again (untimed).
fn reset(w: &World, kind: Kind, used: &[u64]) {
    match kind {
        Kind::Mfa => {
            let dom = w.mfa_store.join("mailboxes").join(DOMAIN);
            for i in used {
                write_file(&dom.join(format!("{}.mfa", local(*i))), &mfa_file(*i, w.t0), 0o600);
            }
        }
        Kind::Ga => {
            for i in used {
                write_file(&w.ga_dir.join(user(*i)), ga_text(*i).as_bytes(), 0o400);
            }
        }
        Kind::Oath => {
            let tmp = w.oath_file.with_extension("new");
            write_file(&tmp, &oath_text(w.n), 0o600);
            std::fs::rename(&tmp, &w.oath_file).unwrap();
        }
        Kind::Floor | Kind::Permit => {}
    }
}

/// The page cache a run starts with. This VM reclaims file pages that were
/// not used for a while (DAMON), so without a rule, whichever store was
/// created last is the warmer one at N = 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// The files the run will use are read just before it (untimed): the
    /// mailboxes that log in are in memory, as on a server whose clients poll.
    Warm,
    /// All caches dropped just before the run (`drop_caches`): every
    /// lookup and read goes to the disk, for every module alike.
    Cold,
}

/// A run as (kind, case, service, durable, logins, processes, threads).
type SpecRow<'a> = (Kind, &'a str, Option<&'a str>, bool, u64, u64, u64);

struct RunSpec<'a> {
    kind: Kind,
    cache: Cache,
    case: &'a str,
    service: Option<&'a str>,
    durable: bool,
    count: u64,
    procs: u64,
    threads: u64,
}

fn run(w: &mut World, spec: &RunSpec) -> Row {
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
    prepare_cache(w, spec, start, count);
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

/// Puts the page cache in the state `spec.cache` asks for (untimed).
fn prepare_cache(w: &World, spec: &RunSpec, start: u64, count: u64) {
    match spec.cache {
        Cache::Cold => {
            std::fs::write("/proc/sys/vm/drop_caches", "3\n").expect("drop_caches needs root");
        }
        Cache::Warm => {
            let dom = w.mfa_store.join("mailboxes").join(DOMAIN);
            for j in 0..count {
                let i = mailbox_at(w.n, start, j);
                let path = match spec.kind {
                    Kind::Mfa => dom.join(format!("{}.mfa", local(i))),
                    Kind::Floor => w.floor_dir.join(format!("{}.mfa", local(w.n - 1 - i))),
                    Kind::Ga => w.ga_dir.join(user(i)),
                    Kind::Oath | Kind::Permit => continue,
                };
                std::hint::black_box(std::fs::read(&path).unwrap());
            }
            if spec.kind == Kind::Oath {
                std::hint::black_box(std::fs::read(&w.oath_file).unwrap());
            }
        }
    }
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

fn machine() -> String {
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn orchestrate(opts: &Opts) -> bool {
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
    println!("machine: {}", machine());
    println!("module: {}", module.display());
    println!("store folder: {} (ext4? see `findmnt -T`)", opts.dir.display());
    println!("load average at start: {}", loadavg());
    println!("options: {opts:?}");
    let mut all_ok = true;
    let mut rows = Vec::new();
    let mut setups = Vec::new();
    let mut breakdowns = Vec::new();
    let smallest = opts.sizes.iter().copied().min().unwrap_or(0);
    for &n in &opts.sizes {
        eprintln!("bench: N = {n}: creating the stores");
        let (mut w, times) = setup(opts, n, &module, &hash, n == smallest);
        setups.push((n, times, w.mfa_file_size));
        // Socket for pam_mfa's log lines, drained like a syslog daemon would.
        let sock = UnixDatagram::bind(w.root.join("log.sock")).unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while sock.recv(&mut buf).is_ok() {}
        });
        let l = opts.logins;
        let p = opts.workers;
        // pam_oath rewrites its whole users file on every login: sample fewer at large N.
        let oath_l = (20_000_000 / n).clamp(20, l.max(20)).min(l);
        // (kind, case, service, durable, logins, processes, threads); all
        // from a warm cache (see `Cache`) unless set otherwise below.
        let table: Vec<SpecRow> = vec![
            (Kind::Floor, "floor: HMAC + durable write", None, true, l, 1, 1),
            (Kind::Floor, "floor: HMAC + durable write", None, true, l, p, 1),
            (Kind::Floor, "floor: HMAC + relaxed write", None, false, l, 1, 1),
            (Kind::Permit, "libpam + pam_permit only", Some("permit"), false, l, 1, 1),
            (
                Kind::Permit,
                "libpam + pam_permit, pam_mfa.so loaded not called",
                Some("mfa-loaded"),
                false,
                l,
                1,
                1,
            ),
            (Kind::Mfa, "pam_mfa durable", Some("mfa-durable"), true, l, 1, 1),
            (Kind::Ga, "google-authenticator", Some("ga"), true, l, 1, 1),
            (Kind::Oath, "pam_oath", Some("oath"), true, oath_l, 1, 1),
            (Kind::Mfa, "pam_mfa relaxed", Some("mfa-relaxed"), false, l, 1, 1),
            (Kind::Mfa, "pam_mfa durable", Some("mfa-durable"), true, l, p, 1),
            (Kind::Mfa, "pam_mfa durable", Some("mfa-durable"), true, l, 1, p),
            (Kind::Ga, "google-authenticator", Some("ga"), true, l, p, 1),
            (Kind::Oath, "pam_oath", Some("oath"), true, oath_l, p, 1),
            (Kind::Mfa, "pam_mfa relaxed", Some("mfa-relaxed"), false, l, p, 1),
        ];
        let mut specs: Vec<RunSpec> = table
            .into_iter()
            .map(|(kind, case, service, durable, count, procs, threads)| RunSpec {
                cache: Cache::Warm,
                kind,
                case,
                service,
                durable,
                count,
                procs,
                threads,
            })
            .collect();
        // The same single-thread logins from a cold cache, for the three
        // that matter most (see `Cache`).
        for (kind, case, service) in [
            (Kind::Floor, "floor: HMAC + durable write, cold cache", None),
            (Kind::Mfa, "pam_mfa durable, cold cache", Some("mfa-durable")),
            (Kind::Ga, "google-authenticator, cold cache", Some("ga")),
        ] {
            specs.push(RunSpec {
                cache: Cache::Cold,
                kind,
                case,
                service,
                durable: true,
                count: l.min(1000),
                procs: 1,
                threads: 1,
            });
        }
        if n == smallest {
            for (kind, case, service) in [
                (Kind::Mfa, "pam_mfa durable + pam_pwdfile", "mfa-pwdfile"),
                (Kind::Ga, "google-authenticator + pam_pwdfile", "ga-pwdfile"),
            ] {
                specs.push(RunSpec {
                    cache: Cache::Warm,
                    kind,
                    case,
                    service: Some(service),
                    durable: true,
                    count: l,
                    procs: 1,
                    threads: 1,
                });
            }
        }
        for spec in &specs {
            eprintln!(
                "bench: N = {n}: {} x{}/{} ({} logins)",
                spec.case,
                spec.procs,
                spec.threads,
                spec.count.min(n)
            );
            let r = run(&mut w, spec);
            // Every login had a correct fresh code for a distinct mailbox: any
            // failure of pam_mfa, or of anyone single-threaded, is a bug.
            if r.failed > 0 && (spec.kind == Kind::Mfa || (spec.procs == 1 && spec.threads == 1)) {
                all_ok = false;
            }
            rows.push(r);
        }
        breakdowns.push((n, breakdown(&w)));
        if opts.keep {
            eprintln!("bench: kept {}", w.root.display());
        } else {
            eprintln!("bench: N = {n}: removing the stores");
            std::fs::remove_dir_all(&w.root).unwrap();
        }
    }
    println!("load average at end: {}", loadavg());
    println!();
    println!("Setup (not counted in the login figures), seconds:");
    println!();
    println!("| N | store | seconds |");
    println!("|---|---|---|");
    for (n, times, _) in &setups {
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
    for r in &rows {
        print_row(r);
    }
    println!();
    print_targets(&rows, opts);
    println!();
    println!("Where a pam_mfa login's time goes: library steps timed in-process (p50 of 300 mailboxes),");
    println!("times the number of times one login with a 6-digit code runs each (module.rs: the first of the");
    println!("four calls loads the configuration, split reads the mailbox, verify locks, decides and writes it):");
    println!();
    println!("| N | step | us p50 | per login | us per login |");
    println!("|---|---|---|---|---|");
    for (n, steps) in &breakdowns {
        let mut sum = 0.0;
        for (what, us, times) in steps {
            if !what.contains("durable") {
                sum += us * f64::from(*times);
            }
            println!("| {n} | {what} | {us:.1} | {times} | {:.1} |", us * f64::from(*times));
        }
        println!("| {n} | sum (relaxed) | | | {sum:.1} |");
    }
    all_ok
}

/// Times, in-process and without libpam, the library steps one pam_mfa
/// login performs, and how often a login with a 6-digit code performs each
/// (read from module.rs: the first call of a login loads the configuration,
/// the others reuse it from the handle; `split` reads the policy and the
/// mailbox; `verify` locks, decides and writes; `account` reuses verify's
/// verdict). It explains the module's time above the floor.
fn breakdown(w: &World) -> Vec<(&'static str, f64, u32)> {
    let cfg_d = w.root.join("mfa-durable.toml");
    let cfg_r = w.root.join("mfa-relaxed.toml");
    let cfg = Config::load(&cfg_d, 0, IfMissing::Refuse).unwrap();
    let store = Store::new(&cfg, None);
    let relaxed = Store::new(&Config::load(&cfg_r, 0, IfMissing::Refuse).unwrap(), None);
    let k = 300.min(w.n);
    let mbs: Vec<(u64, Mailbox)> = (0..k)
        .map(|j| {
            let i = mailbox_at(w.n, w.n / 2, j);
            (i, Mailbox::parse(user(i).as_bytes(), None).unwrap())
        })
        .collect();
    let state = primed_state(now());
    // Warm, like the module rows (this runs after the cold-cache rows).
    for (i, _) in &mbs {
        std::hint::black_box(std::fs::read(w.floor_dir.join(format!("{}.mfa", local(*i)))).unwrap());
    }
    let time = |f: &mut dyn FnMut(u64, &Mailbox)| -> f64 {
        let mut v: Vec<u64> = mbs
            .iter()
            .map(|(i, mb)| {
                let t = Instant::now();
                f(*i, mb);
                t.elapsed().as_nanos() as u64
            })
            .collect();
        v.sort_unstable();
        pct(&v, 0.5) as f64 / 1000.0
    };
    let t = now();
    vec![
        (
            "Config::load (open, read, parse the configuration; not per login)",
            time(&mut |_, _| {
                Config::load(&cfg_d, 0, IfMissing::Refuse).unwrap();
            }),
            0,
        ),
        (
            "Config::load_cached (stat the configuration)",
            time(&mut |_, _| {
                Config::load_cached(&cfg_d, 0, IfMissing::Refuse).unwrap();
            }),
            1,
        ),
        (
            "Store::policy_for (no domain file)",
            time(&mut |_, mb| {
                store.policy_for(mb.domain(), &cfg).unwrap();
            }),
            1,
        ),
        (
            "Store::read_mailbox (open, shared lock, read, parse JSON)",
            time(&mut |_, mb| {
                store.read_mailbox(mb).unwrap().unwrap();
            }),
            1,
        ),
        (
            "Store::lock + Locked::write_state in place, relaxed",
            time(&mut |_, mb| update_state(&relaxed, mb, &state)),
            1,
        ),
        (
            "Store::lock + Locked::write_state in place, durable (+ fdatasync)",
            time(&mut |_, mb| update_state(&store, mb, &state)),
            1,
        ),
        (
            "TotpSeed::generator + Generator::check, window 1 (3 HMAC-SHA1)",
            time(&mut |i, _| {
                let g = seed(i).generator().unwrap();
                std::hint::black_box(g.check(&g.code_at(t), t, 1, Some(t / 30 - 5)));
            }),
            1,
        ),
    ]
}

/// What a login does to the mailbox: lock and read it (which finds the
/// older copy), then overwrite that copy in place.
fn update_state(store: &Store, mb: &Mailbox, state: &MailboxState) {
    let locked = store.lock(mb, false).unwrap().unwrap();
    std::hint::black_box(locked.read_state().unwrap());
    locked.write_state(state, false).unwrap();
}

fn find<'a>(rows: &'a [Row], n: u64, case: &str, par: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.n == n && r.case == case && r.par == par)
}

fn print_targets(rows: &[Row], opts: &Opts) {
    let par = format!("{} proc", opts.workers);
    let thr = format!("{} thr", opts.workers);
    println!("Targets (issue #7), computed from the table above:");
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

/// Without a syslog daemon, syslog(3) (used by libpam, pam_google_authenticator
/// and pam_oath) writes each line to /dev/console, which costs 0.5 to 3 ms here,
/// while pam_mfa sends to a socket. So the bench re-runs itself in a private
/// mount namespace where /dev/console is /dev/null: every module's log line
/// then costs about what a syslog daemon's socket would (nothing outside the
/// namespace changes). `--console` measures without this.
fn reexec_without_console(args: &[String]) {
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind /dev/null /dev/console || exit 99; exec \"$0\" \"$@\"")
        .arg(&exe)
        .args(args)
        .env("PAM_MFA_BENCH_NS", "1")
        .status();
    match status.map(|s| s.code()) {
        Ok(Some(99)) | Err(_) => {
            eprintln!(
                "bench: WARNING: cannot hide /dev/console (unshare/mount need root); syslog lines of libpam and the \
                 C modules go to the console and their figures include that cost"
            );
        }
        Ok(code) => std::process::exit(code.unwrap_or(1)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        worker(&args[1..]);
        return;
    }
    let opts = parse_opts(&args);
    if std::env::var_os("PAM_MFA_BENCH_NS").is_none() && !opts.console {
        reexec_without_console(&args);
    }
    if !orchestrate(&opts) {
        eprintln!("bench: FAILED: a login with a correct fresh code was refused (see the 'failed' column)");
        std::process::exit(1);
    }
}
