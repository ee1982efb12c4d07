//! The interactive enrolment: show the QR code, then ask for the code the
//! app shows ("Challenge:") until one is valid. MFA goes on only then, so a
//! user who mis-scans or gives up is never locked out; a wrong or expired
//! code gets the library's explanation (with the seconds the current code
//! has left) and another try. Any other refusal (the domain's policy
//! changed, the mailbox was enrolled meanwhile) ends the enrolment at once:
//! typing again would not change it.

use crate::error::Error;
use pam_mfa::admin::{Admin, AdminError, Enrolment, Refusal};
use pam_mfa::mailbox::Mailbox;
use std::io::{BufRead, Write};
use zeroize::Zeroizing;

/// Wrong codes accepted before giving up; the pending secret stays, so the
/// user can finish with `--confirm` or start again.
const MAX_TRIES: u32 = 5;

pub fn challenge(admin: &Admin, mb: &Mailbox, e: &Enrolment, screen: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "{screen}\nThen type the {}-digit code the app shows to switch MFA on (an empty line stops; MFA stays off).\n",
        e.digits
    )
    .map_err(Error::Terminal)?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    for _ in 0..MAX_TRIES {
        write!(out, "Challenge: ").map_err(Error::Terminal)?;
        out.flush().map_err(Error::Terminal)?;
        let mut line = Zeroizing::new(String::new());
        let n = input.read_line(&mut line).map_err(Error::Terminal)?;
        if n == 0 || line.trim().is_empty() {
            if n == 0 {
                writeln!(out).map_err(Error::Terminal)?;
            }
            return Err(not_finished(mb, None));
        }
        let now = pam_mfa::clock::now().map_err(Error::Clock)?;
        match admin.enroll_confirm(mb, line.trim(), now) {
            Ok(()) => return Ok(()),
            Err(wrong @ AdminError::Refused(Refusal::WrongEnrolmentCode { .. })) => {
                eprintln!("{}", Error::from(wrong));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(not_finished(mb, Some(MAX_TRIES)))
}

fn not_finished(mb: &Mailbox, tries: Option<u32>) -> Error {
    Error::EnrolmentNotFinished {
        mailbox: mb.to_string(),
        tries,
    }
}
