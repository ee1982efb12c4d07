//! Where a pam_mfa login's time goes: the library steps timed in-process,
//! without libpam, to explain the module's time above the floor.

use crate::content::primed_state;
use crate::fixture::{local, mailbox_at, now, seed, user};
use crate::report::{Steps, pct};
use crate::stores::World;
use pam_mfa::config::{Config, IfMissing};
use pam_mfa::mailbox::Mailbox;
use pam_mfa::store::records::MailboxState;
use pam_mfa::store::{Durability, OnMissing, Store};
use std::time::Instant;

/// Times, in-process and without libpam, the library steps one pam_mfa
/// login performs, and how often a login with a 6-digit code performs each
/// (read from module.rs: the first call of a login loads the configuration,
/// the others reuse it from the handle; `split` reads the policy and the
/// mailbox; `verify` locks, decides and writes; `account` reuses verify's
/// verdict). It explains the module's time above the floor.
pub fn breakdown(w: &World) -> Steps {
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
    let mut locked = store.lock(mb, OnMissing::Skip).unwrap().unwrap();
    std::hint::black_box(locked.state());
    locked.write_state(state, Durability::Configured).unwrap();
}
