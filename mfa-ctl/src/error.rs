//! mfa-ctl's errors and how they read. The library says what happened
//! ([`AdminError`]); here that becomes the sentence a user sees, with the
//! command or flag that helps, the `--json` error kind and the exit code
//! other tools script against (1 refused, 2 usage, configuration or I/O).

use pam_mfa::admin::{AdminError, Invalid, Refusal};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    Admin(AdminError),
    /// The interactive enrolment ended without a valid code: stopped by the
    /// user, or (`tries`) after that many wrong codes.
    EnrolmentNotFinished {
        mailbox: String,
        tries: Option<u32>,
    },
    /// The interactive enrolment was asked for with `--json`.
    InteractiveJson,
    Terminal(std::io::Error),
    Output(std::io::Error),
    ManPages {
        dir: PathBuf,
        error: std::io::Error,
    },
    Qr(String),
    Doctor(String),
    Clock(pam_mfa::clock::ClockError),
    /// An error after a listing printed as it went had begun: what is on
    /// stdout is incomplete (with --json, an unfinished document).
    Interrupted(Box<Error>),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Admin(e) => e.exit_code(),
            Error::Interrupted(e) => e.exit_code(),
            Error::EnrolmentNotFinished { .. } => 1,
            _ => 2,
        }
    }

    /// The `error` member of the `--json` error object.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Interrupted(e) => e.kind(),
            Error::Admin(AdminError::Refused(_)) | Error::EnrolmentNotFinished { .. } => "refused",
            Error::Admin(AdminError::Invalid(_)) | Error::InteractiveJson => "usage",
            _ => "error",
        }
    }

    /// Whether part of the command's output is already on stdout.
    pub fn output_started(&self) -> bool {
        matches!(self, Error::Interrupted(_))
    }
}

impl From<AdminError> for Error {
    fn from(e: AdminError) -> Self {
        Error::Admin(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Admin(e) => admin_message(f, e),
            Error::EnrolmentNotFinished { mailbox, tries } => {
                if let Some(n) = tries {
                    write!(f, "{n} codes were not valid. ")?;
                }
                write!(
                    f,
                    "enrolment not finished: MFA is still off for {mailbox}. Start again with: mfa-ctl enroll {mailbox}"
                )
            }
            Error::InteractiveJson => f.write_str(
                "the interactive enrolment has no JSON form; use --begin --json, then --confirm CODE --json",
            ),
            Error::Terminal(e) => write!(f, "terminal: {e}"),
            Error::Output(e) => write!(f, "writing the output: {e}"),
            Error::ManPages { dir, error } => write!(f, "writing man pages to {}: {error}", dir.display()),
            Error::Qr(e) | Error::Doctor(e) => f.write_str(e),
            Error::Clock(e) => write!(f, "{e}"),
            Error::Interrupted(e) => write!(f, "{e} (the listing stopped there: what was printed is incomplete)"),
        }
    }
}

impl std::error::Error for Error {}

/// The library's sentence, with what to run next where a command helps.
fn admin_message(f: &mut fmt::Formatter<'_>, e: &AdminError) -> fmt::Result {
    match e {
        AdminError::Refused(r) => match r {
            Refusal::DomainDisabled { domain } => write!(
                f,
                "{r}; an admin can change that with: mfa-ctl domain set {domain} optional"
            ),
            Refusal::AlreadyEnrolled { mailbox } => write!(
                f,
                "{r}; to move it to a new phone, disable it first (mfa-ctl disable {mailbox} --code CODE)"
            ),
            Refusal::NoEnrolmentInProgress { mailbox } => {
                write!(f, "{r}; start one with: mfa-ctl enroll {mailbox} --begin")
            }
            Refusal::Locked { mailbox, .. } => {
                write!(f, "{r}; wait, or ask an admin to run: mfa-ctl unlock {mailbox}")
            }
            Refusal::RequiredByPolicy { .. } => write!(f, "{r} (--force)"),
            Refusal::NotEnrolled { mailbox } => write!(f, "{r}: enrol first (mfa-ctl enroll {mailbox})"),
            Refusal::NoSuchAppPassword { mailbox, .. } => {
                write!(f, "{r} (see: mfa-ctl app-password list {mailbox})")
            }
            Refusal::NoSmsNumber { mailbox } => write!(f, "{r}; add one with: mfa-ctl sms add {mailbox} NUMBER"),
            Refusal::NoSmsPending { mailbox } | Refusal::SmsConfirmTriesUsedUp { mailbox } => {
                write!(f, "{r}; text a new code with: mfa-ctl sms add {mailbox} NUMBER")
            }
            Refusal::SmsLastFactor { .. } => write!(f, "{r} (--force)"),
            Refusal::ProofNeeded { mailbox } => write!(
                f,
                "{r}: --code CODE (the app's, or one texted with: mfa-ctl send-code {mailbox}), or --force"
            ),
            Refusal::SmsNumberAlreadyConfirmed { .. }
            | Refusal::SmsResendTooSoon { .. }
            | Refusal::SmsHourlyCap { .. }
            | Refusal::WrongSmsCode { .. }
            | Refusal::SmsCodeExpired { .. } => write!(f, "{r}"),
            Refusal::ImportRefused {
                kind: "short_secret", ..
            } => write!(
                f,
                "{r}; --allow-short-secrets imports it anyway (then ask the user to enrol again: \
                 mfa-ctl list --weak lists such mailboxes)"
            ),
            Refusal::ImportWouldReplace { .. } => write!(f, "{r}; --replace imports it anyway"),
            Refusal::ImportRefused { .. } | Refusal::ImportAfterDisable { .. } => write!(f, "{r}"),
            Refusal::WrongEnrolmentCode { .. }
            | Refusal::WrongCode { .. }
            | Refusal::CodeReplayed
            | Refusal::DuplicateLabel { .. } => write!(f, "{r}"),
        },
        AdminError::Invalid(Invalid::GraceWithoutRequired) => {
            f.write_str("--grace only applies to the required policy")
        }
        AdminError::Invalid(Invalid::Label) => f.write_str("--label must be 1 to 64 printable characters"),
        AdminError::Invalid(i @ Invalid::Service { .. }) => write!(f, "--service {i}"),
        AdminError::UnusableSecret { .. } => write!(f, "{e}; an admin can --force"),
        AdminError::UnusablePendingSecret { .. } => write!(f, "{e}; start again with --begin"),
        _ => write!(f, "{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Refusal) -> Error {
        Error::Admin(AdminError::Refused(r))
    }

    #[test]
    fn refusals_name_the_command_that_helps() {
        let e = refused(Refusal::RequiredByPolicy {
            domain: "example.org".into(),
        });
        assert_eq!(
            e.to_string(),
            "MFA is required for the domain example.org; only an admin can disable it (--force)"
        );
        assert_eq!((e.kind(), e.exit_code()), ("refused", 1));
        let e = refused(Refusal::NoSuchAppPassword {
            mailbox: "a@b.c".into(),
            label: "Phone".into(),
        });
        assert_eq!(
            e.to_string(),
            "a@b.c has no app password labelled 'Phone' (see: mfa-ctl app-password list a@b.c)"
        );
        let e = refused(Refusal::DomainDisabled { domain: "b.c".into() });
        assert_eq!(
            e.to_string(),
            "MFA is disabled for the domain b.c; an admin can change that with: mfa-ctl domain set b.c optional"
        );
    }

    #[test]
    fn usage_errors_name_the_flag() {
        let e = Error::Admin(AdminError::Invalid(Invalid::Service {
            service: "im ap".into(),
        }));
        assert_eq!(
            e.to_string(),
            "--service 'im ap' is not a PAM service name (e.g. imap, pop3, smtp, sieve)"
        );
        assert_eq!((e.kind(), e.exit_code()), ("usage", 2));
        let e = Error::Admin(AdminError::Invalid(Invalid::GraceWithoutRequired));
        assert_eq!(e.to_string(), "--grace only applies to the required policy");
        assert_eq!(
            (Error::InteractiveJson.kind(), Error::InteractiveJson.exit_code()),
            ("usage", 2)
        );
    }

    #[test]
    fn an_unfinished_enrolment_is_a_refusal() {
        let e = Error::EnrolmentNotFinished {
            mailbox: "a@b.c".into(),
            tries: Some(5),
        };
        assert_eq!(
            e.to_string(),
            "5 codes were not valid. enrolment not finished: MFA is still off for a@b.c. Start again with: mfa-ctl enroll a@b.c"
        );
        assert_eq!((e.kind(), e.exit_code()), ("refused", 1));
    }
}
