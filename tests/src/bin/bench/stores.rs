//! The stores of one size on disk: creating them (timed apart from the
//! logins) and putting used mailboxes back so the next run's codes are fresh.

use crate::content::{ga_text, mfa_content, mfa_file, oath_text, primed_state};
use crate::fixture::{DOMAIN, local, now, seed, user};
use crate::opts::Opts;
use crate::pgstore::{self, PgWorld};
use crate::services;
use pam_mfa::config::{Config, IfMissing};
use pam_mfa::mailbox::Mailbox;
use pam_mfa::store::{OnMissing, Store};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Which store a run uses: runs over one store share "which mailboxes are
/// still fresh" bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Floor,
    Permit,
    Mfa,
    /// pam_mfa on PostgreSQL: one database, reached over its socket or TCP + TLS.
    Pg,
    Ga,
    Oath,
}

pub struct World {
    pub n: u64,
    pub root: PathBuf,
    pub confdir: PathBuf,
    pub mfa_store: PathBuf,
    /// Size of a steady-state mailbox file.
    pub mfa_file_size: usize,
    /// When the steady state was made (its logins and last step are before).
    pub t0: u64,
    pub ga_dir: PathBuf,
    pub oath_file: PathBuf,
    /// Where the floor rewrites mailbox files: the pam_mfa store's domain folder.
    pub floor_dir: PathBuf,
    /// The PostgreSQL store of this size (unless `--no-postgres`).
    pub pg: Option<PgWorld>,
    /// Next unused position in each store's login order, and the mailboxes
    /// used since the last reset.
    pub cursor: BTreeMap<Kind, (u64, Vec<u64>)>,
}

pub fn mkdir(p: &Path) {
    DirBuilder::new().mode(0o700).recursive(true).create(p).unwrap();
}

pub fn write_file(p: &Path, bytes: &[u8], mode: u32) {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(p)
        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    f.write_all(bytes).unwrap();
}

pub fn sync() {
    let _ = Command::new("sync").status();
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
pub fn setup(
    opts: &Opts,
    n: u64,
    module: &Path,
    pwdfile_hash: &str,
    with_pwdfile: bool,
) -> (World, Vec<(String, f64)>) {
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
        pg: None,
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
        let mut l = store.lock(&mb0, OnMissing::Create).unwrap().unwrap();
        l.write(&mfa_content(0, t).record, &primed_state(t)).unwrap();
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
        assert_eq!(r.totp.unwrap().secret.as_str(), seed(i).secret.as_str());
    }
    sync();
    times.push((
        "pam_mfa (1 file per mailbox)".to_string(),
        started.elapsed().as_secs_f64(),
    ));

    // google-authenticator: one file per user.
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

    // pam_mfa on PostgreSQL: one row per mailbox, the same content.
    if opts.postgres {
        let started = Instant::now();
        w.pg = Some(pgstore::setup(&opts.pg_set, &w.root, n, t));
        times.push((
            "pam_mfa postgres (1 row per mailbox, COPY)".to_string(),
            started.elapsed().as_secs_f64(),
        ));
    }

    // Password file for the full-stack rows (same hash for every user: the
    // crypt cost per login is what matters, not the hashes' variety).
    let pwdfile = w.root.join("passwd");
    let mut pw = String::with_capacity(if with_pwdfile { n as usize * 140 } else { 0 });
    for i in (0..n).filter(|_| with_pwdfile) {
        let _ = writeln!(pw, "{}:{pwdfile_hash}", user(i));
    }
    write_file(&pwdfile, pw.as_bytes(), 0o600);
    sync();

    services::write(&w, module, &cfg_path, &pwdfile);
    (w, times)
}

/// Puts the mailboxes used since the last reset back in their steady state,
/// so the next run's codes are fresh again (untimed).
pub fn reset(w: &World, kind: Kind, used: &[u64]) {
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
        Kind::Pg => w.pg.as_ref().unwrap().reset(used),
        Kind::Oath => {
            let tmp = w.oath_file.with_extension("new");
            write_file(&tmp, &oath_text(w.n), 0o600);
            std::fs::rename(&tmp, &w.oath_file).unwrap();
        }
        Kind::Floor | Kind::Permit => {}
    }
}
