//! The orchestrator's command line. Its `Debug` form is printed at the top
//! of every run, so a saved output says how it was made.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Opts {
    pub sizes: Vec<u64>,
    pub logins: u64,
    pub workers: u64,
    pub dir: PathBuf,
    pub keep: bool,
    pub quick: bool,
    /// Let syslog(3) fall back to the real /dev/console (see `console::reexec_without_console`).
    pub console: bool,
    /// The PostgreSQL rows (a private cluster, `pgstore`); `--no-postgres` skips them.
    pub postgres: bool,
    /// Settings for the private cluster (`name=value`, ALTER SYSTEM), on top of the harness's.
    pub pg_set: Vec<String>,
    /// Codes raced per case: each one mailbox's fresh code typed by every worker process at once.
    pub race_rounds: u64,
}

/// How the private cluster is tuned, as a mail host's DBA would (on top of
/// the test harness's settings), before any `--pg-set`: shared_buffers
/// large enough for the hot rows at N = 1,000,000 (a dedicated host gives
/// it a quarter of RAM; this VM is shared), WAL full-page images
/// compressed, and checkpoints only when the bench asks (before each run),
/// not in the middle of one. Durability is untouched: synchronous_commit,
/// fsync and full_page_writes stay on.
pub const PG_TUNING: [&str; 4] = [
    "shared_buffers=1GB",
    "wal_compression=lz4",
    "checkpoint_timeout=30min",
    "max_wal_size=4GB",
];

pub fn parse(args: &[String]) -> Opts {
    let mut o = Opts {
        sizes: vec![1_000, 100_000, 1_000_000],
        logins: 3_000,
        workers: 8,
        dir: std::env::temp_dir(),
        keep: false,
        quick: false,
        console: false,
        postgres: true,
        pg_set: PG_TUNING.iter().map(|s| s.to_string()).collect(),
        race_rounds: 300,
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
                o.race_rounds = 20;
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
            "--no-postgres" => o.postgres = false,
            "--pg-set" => o.pg_set.push(val()),
            "--race-rounds" => o.race_rounds = val().parse().unwrap(),
            "-h" | "--help" => {
                println!(
                    "usage: bench [--quick] [--sizes 1000,100000,1000000] [--logins 3000] [--workers 8] [--dir TMPDIR] [--keep] [--console]\n\
                     \x20      [--race-rounds 300] [--no-postgres] [--pg-set name=value]...\n\
                     Builds stores of N mailboxes for pam_mfa (files and PostgreSQL), pam_google_authenticator and\n\
                     pam_oath in a temp folder (PostgreSQL: a private cluster of its own),\n\
                     then times logins through the real libpam. See docs/BENCHMARKS.md."
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (try --help)"),
        }
    }
    o
}
