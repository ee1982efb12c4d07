//! The one place that reads the wall clock. Everything else takes `now` (Unix
//! seconds) as a parameter, so window, replay and lock-out rules are tested at
//! fixed instants (clippy.toml bans `SystemTime::now` elsewhere).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds, or an error when the system clock is set
/// before 1970: the module then refuses logins instead of guessing.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Result<u64, ClockError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| ClockError)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockError;

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the system clock is set before 1970; fix the time (NTP) before MFA logins can be checked")
    }
}

impl std::error::Error for ClockError {}

/// Latest instant the module accepts as "now": beyond it a step counter or a
/// grace period would overflow. Year 10000 is far past any real clock.
pub const MAX_SANE_TIME: u64 = 253_402_300_799;
