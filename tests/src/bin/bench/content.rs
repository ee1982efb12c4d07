//! What each module's store holds for a mailbox in the steady state, in one
//! place, because setup writes it and every reset must write it again.

use crate::fixture::{RHOST, key, seed, user};
use pam_mfa::store::records::{Login, LoginResult, MailboxFile, MailboxRecord, MailboxState, Method};
use pam_mfa::store::slots;
use std::fmt::Write as _;

/// google-authenticator's file for mailbox `i`, as `google-authenticator -t -d -r 3 -R 30 -w 3` writes it.
pub fn ga_text(i: u64) -> String {
    let mut s = format!(
        "{}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n",
        seed(i).secret.as_str()
    );
    for c in 0..5u64 {
        let _ = writeln!(s, "{:08}", 10_000_000 + (i * 5 + c) * 7919 % 89_999_999);
    }
    s
}

pub fn oath_text(n: u64) -> Vec<u8> {
    let mut s = String::with_capacity(n as usize * 80);
    for i in 0..n {
        let _ = writeln!(s, "HOTP/T30/6\t{}\t+\t{}", user(i), pam_mfa::secret::hex(&key(i)));
    }
    s.into_bytes()
}

/// Mailbox `i` as the store holds it in the steady state.
pub fn mfa_content(i: u64, t: u64) -> MailboxFile {
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
pub fn mfa_file(i: u64, t: u64) -> Vec<u8> {
    let json = mfa_content(i, t).to_json().unwrap();
    let size = slots::slot_size_for(&json);
    let mut bytes = slots::encode(3, &json, size).unwrap().to_vec();
    bytes.extend_from_slice(&slots::encode(2, &json, size).unwrap());
    bytes
}

/// The state a mailbox has after a while in use: an old accepted step and
/// the full list of recent logins, so each login rewrites a file of the
/// steady-state size.
pub fn primed_state(t: u64) -> MailboxState {
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
                result: LoginResult::Ok,
                count: 0,
            },
            20,
        );
    }
    s
}
