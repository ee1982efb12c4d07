//! Page-cache control, so every module's run starts from the same cache: this
//! VM reclaims file pages that were not used for a while (DAMON), so without a
//! rule, whichever store was created last is the warmer one at N = 1,000,000.

use crate::fixture::{DOMAIN, local, mailbox_at, user};
use crate::stores::{Kind, World};

/// The page cache a run starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// The files the run will use are read just before it (untimed): the
    /// mailboxes that log in are in memory, as on a server whose clients poll.
    Warm,
    /// All caches dropped just before the run (`drop_caches`): every
    /// lookup and read goes to the disk, for every module alike.
    Cold,
}

/// Puts the page cache in the state `spec.cache` asks for (untimed).
pub fn prepare(w: &World, kind: Kind, cache: Cache, start: u64, count: u64) {
    match cache {
        Cache::Cold => {
            std::fs::write("/proc/sys/vm/drop_caches", "3\n").expect("drop_caches needs root");
        }
        Cache::Warm if kind == Kind::Pg => w.pg.as_ref().unwrap().warm(w.n, start, count),
        Cache::Warm => {
            let dom = w.mfa_store.join("mailboxes").join(DOMAIN);
            for j in 0..count {
                let i = mailbox_at(w.n, start, j);
                let path = match kind {
                    Kind::Mfa => dom.join(format!("{}.mfa", local(i))),
                    Kind::Floor => w.floor_dir.join(format!("{}.mfa", local(w.n - 1 - i))),
                    Kind::Ga => w.ga_dir.join(user(i)),
                    Kind::Oath | Kind::Permit | Kind::Pg => continue,
                };
                std::hint::black_box(std::fs::read(&path).unwrap());
            }
            if kind == Kind::Oath {
                std::hint::black_box(std::fs::read(&w.oath_file).unwrap());
            }
        }
    }
}
