//! What every process derives from a mailbox's number alone (its name, its
//! place in a run's order, its secret), so workers need no copy of the stores.

use pam_mfa::totp::TotpSeed;

pub const DOMAIN: &str = "example.org";
pub const PASSWORD: &str = "Bench-pw-7";
pub const RHOST: &str = "192.0.2.10";
/// Steps mailboxes through a run in a scattered order (not directory
/// order): j -> (j * STRIDE + 7) mod N is a permutation when gcd(STRIDE, N) = 1.
const STRIDE: u64 = 1_000_003;

pub fn user(i: u64) -> String {
    format!("u{i:07}@{DOMAIN}")
}

pub fn local(i: u64) -> String {
    format!("u{i:07}")
}

/// Mailbox of the j-th login of a run starting at `offset`.
pub fn mailbox_at(n: u64, offset: u64, j: u64) -> u64 {
    let stride = if gcd(STRIDE, n) == 1 { STRIDE % n } else { 1 };
    ((offset + j) % n * stride + 7) % n
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The 160-bit secret of mailbox `i`: derived, so workers need no copy of the store.
pub fn key(i: u64) -> Vec<u8> {
    let h = pam_mfa::secret::token_hash("bench", "", i.to_string().as_bytes());
    (0..20)
        .map(|k| u8::from_str_radix(&h[2 * k..2 * k + 2], 16).unwrap())
        .collect()
}

pub fn seed(i: u64) -> TotpSeed {
    TotpSeed::from_key(&key(i), 6, 30, 1_700_000_000)
}

/// The library's clock, so a worker's code is the one the module expects.
pub fn now() -> u64 {
    pam_mfa::clock::now().unwrap()
}
