//! Webmail sessions: a bounded, revocable exception to "a code logs in
//! once". Roundcube and its kind keep the string the user typed and log in
//! to IMAP and SMTP again with it on nearly every click, so the code's
//! second use would be refused as a replay half a minute after login. Here
//! the identical password+code string, once accepted from a webmail
//! server's address, may log in again from those addresses for the listed
//! services until the window ends. The password module still checks the
//! password every time; only the code's once-only rule is relaxed.
//!
//! What is stored is a keyed hash of the typed string, never the string:
//! HMAC-SHA256 with the mailbox's own webmail key, a random key kept in its
//! record (sealed in the database, 0600 in files), so the state alone (a
//! dump, a backup, `mfa-ctl sessions`) gives nothing to guess passwords
//! against. The key outlives a new enrolment, so a webmail tab still open
//! with the old string is recognised as an ended session, not counted as
//! wrong codes against its owner.

use crate::config::Config;
use crate::policy::DomainPolicy;
use crate::secret::{self, RandomError, SecretString};
use crate::store::records::{MailboxRecord, MailboxState, WebmailSession};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::IpAddr;

/// A mailbox's webmail key: 32 random bytes, hex. Debug never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebmailKey(SecretString);

impl std::fmt::Debug for WebmailKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebmailKey(..)")
    }
}

/// Gives the record a webmail key if it has none (`mfa-ctl`, when a seed
/// is put in force); an existing key is kept.
pub fn ensure_key(record: &mut MailboxRecord) -> Result<(), RandomError> {
    if record.webmail_key.is_none() {
        let raw = secret::random_bytes(32)?;
        record.webmail_key = Some(WebmailKey(zeroize::Zeroizing::new(secret::hex(&raw))));
    }
    Ok(())
}

/// The window in force for `policy`'s domain, whether or not it applies
/// to a given login (for listing and ending sessions).
pub fn configured_window(cfg: &Config, policy: &DomainPolicy) -> u64 {
    policy.webmail_window.unwrap_or(cfg.webmail.reuse_window)
}

/// When a session ends: at its own end (logout, block, new seed), the
/// window from its start (a window shortened since counts), or
/// `idle_timeout` after its last use, whichever comes first.
pub fn ends(s: &WebmailSession, cfg: &Config, window: u64) -> u64 {
    s.expires
        .min(s.started.saturating_add(window))
        .min(s.last_use.saturating_add(cfg.webmail.idle_timeout))
}

/// Open sessions kept per mailbox: a new one beyond this ends the oldest,
/// so the list stays small however many logins a mailbox makes.
pub const MAX_SESSIONS: usize = 20;

/// The window for a login of `service` from `rhost`, in seconds, or `None`
/// when the webmail exception does not apply to it: off in the
/// configuration (no networks), off for the domain (`--webmail-window 0`),
/// an address outside the networks (or none), or a service not listed.
pub fn window_for(cfg: &Config, policy: &DomainPolicy, service: &str, rhost: Option<&str>) -> Option<u64> {
    let w = &cfg.webmail;
    if w.networks.is_empty() {
        return None;
    }
    let window = policy.webmail_window.unwrap_or(w.reuse_window);
    if window == 0 {
        return None;
    }
    let ip: IpAddr = rhost?.parse().ok()?;
    if !w.networks.iter().any(|n| n.contains(ip)) {
        return None;
    }
    if let Some(services) = &w.services
        && !services.iter().any(|s| s == service)
    {
        return None;
    }
    Some(window)
}

/// The keyed hash a session is known by: the whole typed string (password
/// and code), bound to the mailbox. `None` for a record without a webmail
/// key (enrolled before there were webmail sessions, and not through
/// `mfa-ctl` since): such a mailbox gets no sessions until its key exists.
pub fn tag(record: &MailboxRecord, mailbox: &str, typed: &[u8]) -> Option<String> {
    let key = record.webmail_key.as_ref()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.0.as_bytes()).ok()?;
    mac.update(b"pam_mfa webmail session v1\0");
    mac.update(mailbox.as_bytes());
    mac.update(b"\0");
    mac.update(typed);
    Some(secret::hex(&mac.finalize().into_bytes()))
}

fn same(s: &WebmailSession, tag: &str) -> bool {
    secret::ct_eq(s.tag.as_bytes(), tag.as_bytes())
}

/// The open session of `tag`, if one may log in now.
pub fn find_open(state: &MailboxState, tag: &str, cfg: &Config, window: u64, now: u64) -> Option<usize> {
    state
        .webmail_sessions
        .iter()
        .position(|s| same(s, tag) && now < ends(s, cfg, window))
}

/// Whether `tag` is a session that has ended and is still remembered: its
/// string is refused as such, not counted as a wrong code, so a webmail
/// left open that keeps clicking does not lock its owner out.
pub fn is_ended(state: &MailboxState, tag: &str, cfg: &Config, window: u64, now: u64) -> bool {
    state
        .webmail_sessions
        .iter()
        .any(|s| same(s, tag) && now >= ends(s, cfg, window))
}

/// Opens a session for a string just accepted with a fresh code; forgets
/// long-ended ones and, beyond [`MAX_SESSIONS`], the oldest.
pub fn open(state: &mut MailboxState, tag: String, req: (&str, &str), cfg: &Config, window: u64, now: u64) {
    prune(state, cfg, window, now);
    let (service, rhost) = req;
    state.webmail_sessions.push(WebmailSession {
        tag,
        started: now,
        last_use: now,
        expires: now.saturating_add(window),
        service: service.to_string(),
        rhost: rhost.to_string(),
        uses: 0,
    });
    while state.webmail_sessions.len() > MAX_SESSIONS {
        let oldest = state
            .webmail_sessions
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.started)
            .map_or(0, |(i, _)| i);
        state.webmail_sessions.remove(oldest);
    }
}

/// Forgets sessions that ended more than a window ago (until then an ended
/// one is remembered, see [`is_ended`]).
pub fn prune(state: &mut MailboxState, cfg: &Config, window: u64, now: u64) {
    let keep = window.max(cfg.webmail.reuse_window);
    state
        .webmail_sessions
        .retain(|s| now < ends(s, cfg, window).saturating_add(keep));
}

/// Ends every session now (`mfa-ctl logout`, a block, a new seed), keeping
/// them as ended; returns how many were open.
pub fn end_all(state: &mut MailboxState, cfg: &Config, window: u64, now: u64) -> usize {
    let mut open = 0;
    for s in &mut state.webmail_sessions {
        if now < ends(s, cfg, window) {
            open += 1;
        }
        s.expires = s.expires.min(now);
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebmailConfig;
    use crate::net::Cidr;
    use crate::policy::Policy;

    fn cfg(networks: &[&str], services: Option<&[&str]>) -> Config {
        Config {
            webmail: WebmailConfig {
                reuse_window: 3600,
                idle_timeout: 3600,
                networks: networks.iter().map(|n| Cidr::parse(n).unwrap()).collect(),
                services: services.map(|s| s.iter().map(|x| x.to_string()).collect()),
            },
            ..Config::default()
        }
    }

    #[test]
    fn applies_only_inside_networks_services_and_a_window() {
        let pol = DomainPolicy::default_for(Policy::Required);
        let c = cfg(&["192.0.2.80/32"], Some(&["imap", "smtp"]));
        assert_eq!(window_for(&c, &pol, "imap", Some("192.0.2.80")), Some(3600));
        assert_eq!(window_for(&c, &pol, "smtp", Some("192.0.2.80")), Some(3600));
        assert_eq!(window_for(&c, &pol, "pop3", Some("192.0.2.80")), None);
        assert_eq!(window_for(&c, &pol, "imap", Some("192.0.2.81")), None);
        assert_eq!(window_for(&c, &pol, "imap", None), None);
        assert_eq!(window_for(&c, &pol, "imap", Some("webmail.example")), None);
        assert_eq!(window_for(&cfg(&[], None), &pol, "imap", Some("192.0.2.80")), None);
        let all = cfg(&["192.0.2.0/24"], None);
        assert_eq!(window_for(&all, &pol, "pop3", Some("192.0.2.9")), Some(3600));
        let short = DomainPolicy {
            webmail_window: Some(60),
            ..pol.clone()
        };
        assert_eq!(window_for(&all, &short, "imap", Some("192.0.2.9")), Some(60));
        let off = DomainPolicy {
            webmail_window: Some(0),
            ..pol
        };
        assert_eq!(window_for(&all, &off, "imap", Some("192.0.2.9")), None);
    }

    #[test]
    fn sessions_end_and_are_capped() {
        let c = cfg(&["192.0.2.80"], None);
        let mut s = MailboxState::default();
        for i in 0..(MAX_SESSIONS as u64 + 5) {
            open(&mut s, format!("t{i}"), ("imap", "192.0.2.80"), &c, 100, 1000 + i);
        }
        assert_eq!(s.webmail_sessions.len(), MAX_SESSIONS);
        assert!(find_open(&s, "t0", &c, 100, 1030).is_none(), "the oldest were replaced");
        assert!(find_open(&s, "t24", &c, 100, 1030).is_some());
        assert!(find_open(&s, "t24", &c, 100, 1000 + 24 + 100).is_none(), "ended");
        assert!(
            find_open(&s, "t24", &c, 10, 1000 + 24 + 10).is_none(),
            "window shortened since"
        );
        assert!(is_ended(&s, "t24", &c, 100, 1000 + 24 + 100));
        assert!(!is_ended(&s, "t24", &c, 100, 1000 + 24 + 99));
        assert!(find_open(&s, "t24", &c, 100, 1110).is_some());
        // t11 .. t24 still open (a window of 100 from 1011 .. 1024).
        assert_eq!(end_all(&mut s, &c, 100, 1110), 14);
        assert!(find_open(&s, "t24", &c, 100, 1110).is_none());
        assert!(is_ended(&s, "t24", &c, 100, 1110));
        // Remembered for a reuse_window (3600 here) after they ended: t10
        // ended at 1110 too, t5 .. t9 before.
        prune(&mut s, &c, 100, 1110 + 3599);
        assert_eq!(s.webmail_sessions.len(), 15);
        prune(&mut s, &c, 100, 1110 + 3600);
        assert!(s.webmail_sessions.is_empty());
    }

    #[test]
    fn idle_sessions_end() {
        let mut c = cfg(&["192.0.2.80"], None);
        c.webmail.idle_timeout = 600;
        let mut s = MailboxState::default();
        open(&mut s, "t".into(), ("imap", "192.0.2.80"), &c, 3600, 1000);
        assert!(find_open(&s, "t", &c, 3600, 1599).is_some());
        assert!(find_open(&s, "t", &c, 3600, 1600).is_none());
        s.webmail_sessions[0].last_use = 1500;
        assert!(find_open(&s, "t", &c, 3600, 2099).is_some());
    }

    #[test]
    fn tags_need_the_mailbox_key_and_bind_mailbox_and_string() {
        let mut rec = MailboxRecord::default();
        assert_eq!(tag(&rec, "a@example.org", b"pw123456"), None);
        ensure_key(&mut rec).unwrap();
        let key = rec.webmail_key.clone();
        ensure_key(&mut rec).unwrap();
        assert_eq!(rec.webmail_key, key, "kept");
        let t = tag(&rec, "a@example.org", b"pw123456").unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(Some(&t), tag(&rec, "b@example.org", b"pw123456").as_ref());
        assert_ne!(Some(&t), tag(&rec, "a@example.org", b"pw123457").as_ref());
        assert_eq!(format!("{:?}", rec.webmail_key.unwrap()), "WebmailKey(..)");
    }
}
