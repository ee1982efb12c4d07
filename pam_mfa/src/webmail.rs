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
//! HMAC-SHA256 keyed with the mailbox's TOTP seed (which never leaves the
//! store: in the database it is sealed), so the state alone (a dump, a
//! backup, `mfa-ctl sessions`) gives nothing to guess passwords against,
//! and a new seed (re-enrolment) ends every session by itself.

use crate::config::Config;
use crate::policy::DomainPolicy;
use crate::secret;
use crate::store::records::{MailboxState, WebmailSession};
use crate::totp::TotpSeed;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::IpAddr;

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
/// and code), bound to the mailbox and keyed with its seed.
pub fn tag(seed: &TotpSeed, mailbox: &str, typed: &[u8]) -> Option<String> {
    let generator = seed.generator().ok()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(generator.key()).ok()?;
    mac.update(b"pam_mfa webmail session v1\0");
    mac.update(mailbox.as_bytes());
    mac.update(b"\0");
    mac.update(typed);
    Some(secret::hex(&mac.finalize().into_bytes()))
}

/// The open session of `tag`, if one may log in now: not past its own end,
/// nor past `window` from its start (a window shortened since counts).
pub fn find_open(state: &MailboxState, tag: &str, window: u64, now: u64) -> Option<usize> {
    state
        .webmail_sessions
        .iter()
        .position(|s| secret::ct_eq(s.tag.as_bytes(), tag.as_bytes()) && now < ends(s, window))
}

/// Whether `tag` is a session that has ended (window over, logout) and is
/// still remembered: its string is refused as such, not counted as a wrong
/// code, so a webmail left open that keeps clicking does not lock its
/// owner out.
pub fn is_ended(state: &MailboxState, tag: &str, window: u64, now: u64) -> bool {
    state
        .webmail_sessions
        .iter()
        .any(|s| secret::ct_eq(s.tag.as_bytes(), tag.as_bytes()) && now >= ends(s, window))
}

/// When a session ends under the window in force now.
pub fn ends(s: &WebmailSession, window: u64) -> u64 {
    s.expires.min(s.started.saturating_add(window))
}

/// Opens a session for a string just accepted with a fresh code; drops the
/// ended ones and, beyond [`MAX_SESSIONS`], the oldest.
pub fn open(state: &mut MailboxState, tag: String, service: &str, rhost: &str, window: u64, now: u64) {
    prune(state, window, now);
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
pub fn prune(state: &mut MailboxState, window: u64, now: u64) {
    state
        .webmail_sessions
        .retain(|s| now < ends(s, window).saturating_add(window));
}

/// Ends every session now (`mfa-ctl logout`); returns how many were open.
pub fn end_all(state: &mut MailboxState, window: u64, now: u64) -> usize {
    let mut open = 0;
    for s in &mut state.webmail_sessions {
        if now < ends(s, window) {
            open += 1;
            s.expires = now;
        }
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
        let mut s = MailboxState::default();
        for i in 0..(MAX_SESSIONS as u64 + 5) {
            open(&mut s, format!("t{i}"), "imap", "192.0.2.80", 100, 1000 + i);
        }
        assert_eq!(s.webmail_sessions.len(), MAX_SESSIONS);
        assert!(find_open(&s, "t0", 100, 1030).is_none(), "the oldest were replaced");
        assert!(find_open(&s, "t24", 100, 1030).is_some());
        assert!(find_open(&s, "t24", 100, 1000 + 24 + 100).is_none(), "ended");
        assert!(
            find_open(&s, "t24", 10, 1000 + 24 + 10).is_none(),
            "window shortened since"
        );
        assert!(is_ended(&s, "t24", 100, 1000 + 24 + 100));
        assert!(!is_ended(&s, "t24", 100, 1000 + 24 + 99));
        prune(&mut s, 100, 1000 + 15 + 200);
        assert_eq!(s.webmail_sessions.len(), 9, "ended ones kept one window more");
        assert!(find_open(&s, "t24", 100, 1110).is_some());
        assert_eq!(end_all(&mut s, 100, 1110), 9);
        assert!(find_open(&s, "t24", 100, 1110).is_none());
        assert!(is_ended(&s, "t24", 100, 1110));
    }
}
