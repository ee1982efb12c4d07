//! The interactive enrolment: show the QR code, then ask for the code the
//! app shows ("Challenge:") until one is valid. MFA goes on only then, so a
//! user who mis-scans or gives up is never locked out; a wrong or expired
//! code gets the library's explanation (with the seconds the current code
//! has left) and another try.

use pam_mfa::admin::{Admin, AdminError, Enrolment};
use pam_mfa::mailbox::Mailbox;
use std::io::{BufRead, Write};
use zeroize::Zeroizing;

/// Wrong codes accepted before giving up; the pending secret stays, so the
/// user can finish with `--confirm` or start again.
const MAX_TRIES: u32 = 5;

pub fn challenge(admin: &Admin, mb: &Mailbox, e: &Enrolment, screen: &str) -> Result<(), AdminError> {
    let io = |err: std::io::Error| AdminError::Other(format!("terminal: {err}"));
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "{screen}\nThen type the {}-digit code the app shows to switch MFA on (an empty line stops; MFA stays off).\n",
        e.digits
    )
    .map_err(io)?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    for _ in 0..MAX_TRIES {
        write!(out, "Challenge: ").map_err(io)?;
        out.flush().map_err(io)?;
        let mut line = Zeroizing::new(String::new());
        let n = input.read_line(&mut line).map_err(io)?;
        if n == 0 || line.trim().is_empty() {
            if n == 0 {
                writeln!(out).map_err(io)?;
            }
            return Err(not_finished(mb));
        }
        let now = pam_mfa::clock::now().map_err(|c| AdminError::Other(c.to_string()))?;
        match admin.enroll_confirm(mb, line.trim(), now) {
            Ok(()) => return Ok(()),
            Err(AdminError::Refused(msg)) => eprintln!("{msg}"),
            Err(other) => return Err(other),
        }
    }
    Err(AdminError::Refused(format!(
        "{MAX_TRIES} codes were not valid. {}",
        not_finished(mb)
    )))
}

fn not_finished(mb: &Mailbox) -> AdminError {
    AdminError::Refused(format!(
        "enrolment not finished: MFA is still off for {mb}. Start again with: mfa-ctl enroll {mb}"
    ))
}
