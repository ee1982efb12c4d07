//! Rate limiting of codes, counted per mailbox in its state file, so it holds
//! across processes and sessions (RFC 4226 §7.3). Only attempts that got the
//! password right reach it, so someone without the password cannot lock a
//! user out. After `after` consecutive failures each further attempt waits a
//! back-off that doubles up to `max_backoff`; at `block_after` the mailbox is
//! blocked until an admin runs `mfa-ctl unlock` (NIST SP 800-63B: <= 100).

use crate::config::LockoutConfig;
use crate::store::records::MailboxState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Attempts are refused until then (Unix seconds).
    Backoff { until: u64 },
    /// Refused until `mfa-ctl unlock`.
    Blocked,
}

/// Whether the mailbox is locked at `now`.
pub fn lock(state: &MailboxState, cfg: &LockoutConfig, now: u64) -> Option<Lock> {
    if state.failures >= cfg.block_after {
        return Some(Lock::Blocked);
    }
    if state.failures < cfg.after {
        return None;
    }
    let doublings = state.failures - cfg.after;
    let delay = if doublings >= 63 {
        cfg.max_backoff
    } else {
        cfg.backoff.saturating_mul(1u64 << doublings).min(cfg.max_backoff)
    };
    let until = state.last_failure.saturating_add(delay);
    (now < until).then_some(Lock::Backoff { until })
}

/// Counts a failed attempt unless it repeats the previous failed attempt
/// exactly (`fingerprint`). Returns whether it was counted.
pub fn record_failure(state: &mut MailboxState, fingerprint: String, now: u64) -> bool {
    if state.last_failed.as_deref() == Some(fingerprint.as_str()) && state.failures > 0 {
        return false;
    }
    state.failures = state.failures.saturating_add(1);
    state.last_failure = now;
    state.last_failed = Some(fingerprint);
    true
}

/// A success (or an admin's unlock) clears the counter.
pub fn reset(state: &mut MailboxState) {
    state.failures = 0;
    state.last_failure = 0;
    state.last_failed = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LockoutConfig {
        LockoutConfig {
            after: 3,
            backoff: 30,
            max_backoff: 100,
            block_after: 6,
        }
    }

    #[test]
    fn backoff_doubles_then_caps_then_blocks() {
        let mut s = MailboxState::default();
        let c = cfg();
        let mut now = 1000;
        for i in 1..=2 {
            assert!(record_failure(&mut s, format!("f{i}"), now));
            assert_eq!(lock(&s, &c, now), None);
        }
        assert!(record_failure(&mut s, "f3".into(), now));
        assert_eq!(lock(&s, &c, now), Some(Lock::Backoff { until: 1030 }));
        assert_eq!(lock(&s, &c, 1029), Some(Lock::Backoff { until: 1030 }));
        assert_eq!(lock(&s, &c, 1030), None);
        now = 1030;
        record_failure(&mut s, "f4".into(), now);
        assert_eq!(lock(&s, &c, now), Some(Lock::Backoff { until: 1090 }));
        now = 1090;
        record_failure(&mut s, "f5".into(), now);
        assert_eq!(lock(&s, &c, now), Some(Lock::Backoff { until: 1190 }), "capped at 100");
        record_failure(&mut s, "f6".into(), 1190);
        assert_eq!(lock(&s, &c, u64::MAX), Some(Lock::Blocked));
        reset(&mut s);
        assert_eq!(lock(&s, &c, 1190), None);
    }

    #[test]
    fn same_wrong_attempt_counts_once() {
        let mut s = MailboxState::default();
        assert!(record_failure(&mut s, "same".into(), 1));
        assert!(!record_failure(&mut s, "same".into(), 2));
        assert!(!record_failure(&mut s, "same".into(), 3));
        assert_eq!(s.failures, 1);
        assert!(record_failure(&mut s, "other".into(), 4));
        assert!(record_failure(&mut s, "same".into(), 5));
        assert_eq!(s.failures, 3);
    }

    #[test]
    fn huge_counters_do_not_overflow() {
        let s = MailboxState {
            failures: 99,
            last_failure: u64::MAX - 1,
            ..Default::default()
        };
        let c = LockoutConfig {
            after: 1,
            backoff: u64::MAX / 2,
            max_backoff: u64::MAX,
            block_after: 100,
        };
        assert_eq!(lock(&s, &c, 0), Some(Lock::Backoff { until: u64::MAX }));
    }
}
