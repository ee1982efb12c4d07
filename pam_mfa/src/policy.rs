//! Domain policy: whether a domain's mailboxes must, may or never give a code,
//! and the one rule that turns (policy, enrolment, time) into what a login
//! needs. The module's `split` and `verify` and `mfa-ctl status` all ask
//! [`requirement`], so they can never disagree.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Every mailbox must give a code; unenrolled ones get a grace period.
    Required,
    /// Enrolled mailboxes must give a code; the others log in with the password.
    Optional,
    /// The module never asks for a code in this domain.
    Disabled,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Required => "required",
            Policy::Optional => "optional",
            Policy::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(Policy::Required),
            "optional" => Ok(Policy::Optional),
            "disabled" => Ok(Policy::Disabled),
            other => Err(format!("'{other}' is not a policy: use required, optional or disabled")),
        }
    }
}

/// The policy in force for one domain: its own record, or the configured default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainPolicy {
    pub policy: Policy,
    /// Seconds an unenrolled mailbox may still log in with the password alone
    /// after `since` (only meaningful for `required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<u64>,
    /// When the policy was set (Unix seconds): the grace period counts from here.
    #[serde(default)]
    pub since: u64,
    /// This domain's webmail window in seconds, in place of the
    /// configuration's `webmail.reuse_window`; 0: no webmail sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webmail_window: Option<u64>,
}

impl DomainPolicy {
    pub fn default_for(policy: Policy) -> DomainPolicy {
        DomainPolicy {
            policy,
            grace: None,
            since: 0,
            webmail_window: None,
        }
    }

    /// When the grace period of a `required` domain ends, if it has one.
    pub fn grace_ends(&self) -> Option<u64> {
        match (self.policy, self.grace) {
            (Policy::Required, Some(g)) => Some(self.since.saturating_add(g)),
            _ => None,
        }
    }
}

/// What a login of one mailbox needs, besides the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// A code (TOTP or recovery code) is needed.
    Code,
    /// The password alone is enough, and why.
    PasswordOnly(NoCodeReason),
    /// No login at all until the mailbox enrols (required, grace over).
    EnrolmentRequired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCodeReason {
    /// The domain's policy is `disabled`.
    DomainDisabled,
    /// `optional` domain and the mailbox has not enrolled.
    NotEnrolled,
    /// `required` domain, not enrolled, inside the grace period ending then.
    Grace { ends: u64 },
}

/// The rule. `enrolled` means an active (confirmed) secret; a pending one
/// does not count, so an abandoned enrolment never locks a user out.
pub fn requirement(policy: &DomainPolicy, enrolled: bool, now: u64) -> Requirement {
    match policy.policy {
        Policy::Disabled => Requirement::PasswordOnly(NoCodeReason::DomainDisabled),
        _ if enrolled => Requirement::Code,
        Policy::Optional => Requirement::PasswordOnly(NoCodeReason::NotEnrolled),
        Policy::Required => match policy.grace_ends() {
            Some(ends) if now < ends => Requirement::PasswordOnly(NoCodeReason::Grace { ends }),
            _ => Requirement::EnrolmentRequired,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pol(policy: Policy, grace: Option<u64>) -> DomainPolicy {
        DomainPolicy {
            policy,
            grace,
            since: 1000,
            webmail_window: None,
        }
    }

    #[test]
    fn the_table() {
        use NoCodeReason::*;
        use Requirement::*;
        let t = 2000;
        assert_eq!(
            requirement(&pol(Policy::Disabled, None), true, t),
            PasswordOnly(DomainDisabled)
        );
        assert_eq!(
            requirement(&pol(Policy::Disabled, None), false, t),
            PasswordOnly(DomainDisabled)
        );
        assert_eq!(requirement(&pol(Policy::Optional, None), true, t), Code);
        assert_eq!(
            requirement(&pol(Policy::Optional, None), false, t),
            PasswordOnly(NotEnrolled)
        );
        assert_eq!(requirement(&pol(Policy::Required, None), true, t), Code);
        assert_eq!(requirement(&pol(Policy::Required, None), false, t), EnrolmentRequired);
        // Grace counted from `since`: ends at 1000 + 1500.
        assert_eq!(
            requirement(&pol(Policy::Required, Some(1500)), false, 2499),
            PasswordOnly(Grace { ends: 2500 })
        );
        assert_eq!(
            requirement(&pol(Policy::Required, Some(1500)), false, 2500),
            EnrolmentRequired
        );
        assert_eq!(
            requirement(&pol(Policy::Required, Some(u64::MAX)), false, u64::MAX - 1),
            PasswordOnly(Grace { ends: u64::MAX })
        );
    }
}
