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
}

pub fn parse(args: &[String]) -> Opts {
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
