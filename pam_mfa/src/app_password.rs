//! App passwords: long random passwords for mail clients that cannot type a
//! code, each limited to PAM services, source networks and an expiry. Only a
//! hash is stored. They are 24 lowercase letters (112 bits) so they are easy
//! to type on a phone; spaces and dashes are ignored, and a typed string of
//! any other shape is known not to be one without reading the store.

use crate::net::Cidr;
use crate::secret::{self, RandomError, SecretString};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use zeroize::Zeroizing;

pub const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
pub const LEN: usize = 24;
const PURPOSE: &str = "app-password";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPassword {
    pub id: String,
    pub label: String,
    pub hash: String,
    /// PAM services it may log in to (`imap`, `pop3`, `smtp`, ...); empty: any.
    #[serde(default)]
    pub services: Vec<String>,
    /// Source networks it may log in from; empty: any.
    #[serde(default)]
    pub from: Vec<String>,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// A new app password: the stored form and the password to show once,
/// grouped `abcd-efgh-...`.
pub fn generate(
    mailbox: &str,
    label: &str,
    services: Vec<String>,
    from: Vec<String>,
    expires: Option<u64>,
    now: u64,
) -> Result<(AppPassword, SecretString), RandomError> {
    let raw = secret::random_string(ALPHABET, LEN)?;
    let hash = secret::token_hash(PURPOSE, mailbox, raw.as_bytes());
    let shown = secret::grouped(&raw, '-');
    let ap = AppPassword {
        id: secret::random_id()?,
        label: label.to_string(),
        hash,
        services,
        from,
        created: now,
        expires,
    };
    Ok((ap, shown))
}

/// The canonical form of what was typed, or `None` if it cannot be an app password.
pub fn normalize(typed: &[u8]) -> Option<SecretString> {
    if typed.len() > LEN * 3 {
        return None;
    }
    let s: SecretString = Zeroizing::new(
        typed
            .iter()
            .filter(|b| **b != b'-' && **b != b' ')
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect(),
    );
    (s.len() == LEN && s.bytes().all(|b| b.is_ascii_lowercase())).then_some(s)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCheck {
    /// Not one of this mailbox's app passwords.
    NoMatch,
    /// Matches the app password at this index and it may be used here and now.
    Accept(usize),
    /// Matches, but may not be used here or now.
    Refuse(usize, AppRefusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppRefusal {
    Expired,
    Service,
    Network,
}

/// Checks a normalised candidate against all of a mailbox's app passwords,
/// every hash compared in constant time.
pub fn check(
    list: &[AppPassword],
    mailbox: &str,
    candidate: &str,
    service: &str,
    rhost: Option<&str>,
    now: u64,
) -> AppCheck {
    let h = secret::token_hash(PURPOSE, mailbox, candidate.as_bytes());
    let mut found = None;
    for (i, ap) in list.iter().enumerate() {
        if secret::ct_eq(ap.hash.as_bytes(), h.as_bytes()) {
            found = found.or(Some(i));
        }
    }
    let Some(i) = found else {
        return AppCheck::NoMatch;
    };
    let Some(ap) = list.get(i) else {
        return AppCheck::NoMatch;
    };
    if ap.expires.is_some_and(|e| now >= e) {
        return AppCheck::Refuse(i, AppRefusal::Expired);
    }
    if !ap.services.is_empty() && !ap.services.iter().any(|s| s.eq_ignore_ascii_case(service)) {
        return AppCheck::Refuse(i, AppRefusal::Service);
    }
    if !ap.from.is_empty() {
        let ip: Option<IpAddr> = rhost.and_then(|r| r.parse().ok());
        // An unparsable network in the record matches nothing: fail closed.
        let allowed = ip.is_some_and(|ip| ap.from.iter().any(|n| Cidr::parse(n).is_ok_and(|n| n.contains(ip))));
        if !allowed {
            return AppCheck::Refuse(i, AppRefusal::Network);
        }
    }
    AppCheck::Accept(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_normalize_check() {
        let (ap, shown) = generate(
            "a@x.org",
            "Phone",
            vec!["imap".into()],
            vec!["192.0.2.0/24".into()],
            Some(1000),
            10,
        )
        .unwrap();
        assert_eq!(shown.len(), 29);
        let typed = shown.replace('-', " ").to_uppercase();
        let n = normalize(typed.as_bytes()).unwrap();
        let list = vec![ap];
        assert_eq!(
            check(&list, "a@x.org", &n, "imap", Some("192.0.2.9"), 999),
            AppCheck::Accept(0)
        );
        assert_eq!(
            check(&list, "a@x.org", &n, "IMAP", Some("192.0.2.9"), 999),
            AppCheck::Accept(0)
        );
        assert_eq!(
            check(&list, "a@x.org", &n, "smtp", Some("192.0.2.9"), 999),
            AppCheck::Refuse(0, AppRefusal::Service)
        );
        assert_eq!(
            check(&list, "a@x.org", &n, "imap", Some("198.51.100.1"), 999),
            AppCheck::Refuse(0, AppRefusal::Network)
        );
        assert_eq!(
            check(&list, "a@x.org", &n, "imap", None, 999),
            AppCheck::Refuse(0, AppRefusal::Network)
        );
        assert_eq!(
            check(&list, "a@x.org", &n, "imap", Some("192.0.2.9"), 1000),
            AppCheck::Refuse(0, AppRefusal::Expired)
        );
        assert_eq!(
            check(&list, "b@x.org", &n, "imap", Some("192.0.2.9"), 999),
            AppCheck::NoMatch
        );
        assert!(normalize(b"T9D3K!px189145").is_none());
        assert!(normalize(b"abcdefghijklmnopqrstuvw").is_none());
    }
}
