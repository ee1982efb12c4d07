//! Mailbox names: the one parser that turns what a client typed as a user name
//! into `local@domain`, and refuses anything that could escape or confuse the
//! store (its parts become file names).
//!
//! Both parts are lower-cased: mail systems treat `Alice@Example.ORG` and
//! `alice@example.org` as one mailbox, and one mailbox must have one record.
//! Lower-casing is ASCII only, and a name with any other letter is refused:
//! Unicode case rules fold names that password modules keep apart (the
//! Kelvin sign `K` becomes `k`), and the module hands the password module
//! the name it parsed (PAM_USER), so both must mean one account.

use std::fmt;

/// RFC 5321 bounds: local part 64 octets, whole address 320 (64 + @ + 255).
pub const MAX_LOCAL: usize = 64;
pub const MAX_DOMAIN: usize = 253;
pub const MAX_MAILBOX: usize = 320;

/// A mailbox, by its canonical address: the one identity the module, the
/// store, the logs and mfa-ctl use (and what PAM_USER is set to).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox {
    /// `local@domain`, checked and lower-cased.
    address: String,
    /// Where the `@` is in `address`.
    at: usize,
}

impl Mailbox {
    /// Parses a user name as PAM hands it over (bytes: it may not be UTF-8).
    /// A bare name takes `default_domain`.
    pub fn parse(raw: &[u8], default_domain: Option<&str>) -> Result<Mailbox, MailboxError> {
        if raw.is_empty() {
            return Err(MailboxError::Empty);
        }
        if raw.len() > MAX_MAILBOX {
            return Err(MailboxError::TooLong(raw.len()));
        }
        let text = std::str::from_utf8(raw).map_err(|_| MailboxError::NotUtf8)?;
        if let Some(c) = text.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(MailboxError::BadChar(c));
        }
        let (local, domain) = match text.split_once('@') {
            Some((l, d)) => (l, d),
            None => match default_domain {
                Some(d) => (text, d),
                None => return Err(MailboxError::NoDomain),
            },
        };
        let local = check_local(local)?;
        let domain = check_domain(domain)?;
        Ok(Mailbox {
            at: local.len(),
            address: format!("{local}@{domain}"),
        })
    }

    /// A domain name alone, checked by the same rules (for `mfa-ctl domain`).
    pub fn parse_domain(raw: &str) -> Result<String, MailboxError> {
        check_domain(raw)
    }

    pub fn local(&self) -> &str {
        self.address.get(..self.at).unwrap_or_default()
    }

    pub fn domain(&self) -> &str {
        self.address.get(self.at + 1..).unwrap_or_default()
    }

    /// The canonical address, `local@domain`.
    pub fn as_str(&self) -> &str {
        &self.address
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

fn check_local(local: &str) -> Result<String, MailboxError> {
    if let Some(c) = local.chars().find(|c| !c.is_ascii()) {
        return Err(MailboxError::NonAscii(c));
    }
    let local = local.to_ascii_lowercase();
    if local.is_empty() {
        return Err(MailboxError::EmptyPart("local part"));
    }
    if local.len() > MAX_LOCAL {
        return Err(MailboxError::TooLong(local.len()));
    }
    // The local part becomes a file name: no separators, no leading dot (hidden
    // files, `.` and `..`), no `..` anywhere, nothing a shell or a log would
    // misread.
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(MailboxError::Dots);
    }
    if let Some(c) = local
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-=?^_`{|}~.".contains(c)))
    {
        return Err(MailboxError::BadChar(c));
    }
    Ok(local)
}

fn check_domain(domain: &str) -> Result<String, MailboxError> {
    if domain.is_empty() {
        return Err(MailboxError::EmptyPart("domain"));
    }
    if domain.len() > MAX_DOMAIN {
        return Err(MailboxError::TooLong(domain.len()));
    }
    if !domain.is_ascii() {
        return Err(MailboxError::NonAsciiDomain);
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(MailboxError::Dots);
        }
        if label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return Err(MailboxError::BadLabel(label.to_string()));
        }
        if let Some(c) = label.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '-')) {
            return Err(MailboxError::BadChar(c));
        }
    }
    Ok(domain.to_ascii_lowercase())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxError {
    Empty,
    TooLong(usize),
    NotUtf8,
    BadChar(char),
    NonAscii(char),
    NoDomain,
    EmptyPart(&'static str),
    Dots,
    NonAsciiDomain,
    BadLabel(String),
}

impl fmt::Display for MailboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailboxError::Empty => f.write_str("the user name is empty"),
            MailboxError::TooLong(n) => write!(
                f,
                "the user name is too long ({n} bytes; at most {MAX_LOCAL} for the local part, {MAX_DOMAIN} for the domain, {MAX_MAILBOX} in all)"
            ),
            MailboxError::NotUtf8 => f.write_str("the user name is not valid UTF-8"),
            // {:?} escapes control characters so the log line stays one line.
            MailboxError::BadChar(c) => write!(
                f,
                "the user name contains the character {c:?}, which a mailbox name may not hold"
            ),
            MailboxError::NonAscii(c) => write!(
                f,
                "the user name contains the non-ASCII character {c:?}; pam_mfa takes ASCII names only (log in with the mailbox's ASCII address)"
            ),
            MailboxError::NoDomain => {
                f.write_str("the user name has no @domain and no default_domain is set in the configuration")
            }
            MailboxError::EmptyPart(p) => write!(f, "the {p} of the user name is empty"),
            MailboxError::Dots => {
                f.write_str("the user name has a leading, trailing or doubled dot, which a mailbox name may not hold")
            }
            MailboxError::NonAsciiDomain => {
                f.write_str("the domain is not ASCII: write an internationalised domain in its xn-- (punycode) form")
            }
            MailboxError::BadLabel(l) => write!(f, "the domain label '{l}' is not a valid host name label"),
        }
    }
}

impl std::error::Error for MailboxError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        Mailbox::parse(s.as_bytes(), Some("example.org")).unwrap().to_string()
    }

    #[test]
    fn normalises() {
        assert_eq!(ok("Alice@Example.ORG"), "alice@example.org");
        assert_eq!(ok("bob"), "bob@example.org");
        assert_eq!(ok("j.doe+tag@mail.example.org"), "j.doe+tag@mail.example.org");
    }

    /// Unicode case folding would make two names the password module keeps
    /// apart one mailbox here (the Kelvin sign folds to `k`).
    #[test]
    fn ascii_only() {
        let p = |s: &str| Mailbox::parse(s.as_bytes(), Some("example.org"));
        assert_eq!(p("Ünïcode@example.org"), Err(MailboxError::NonAscii('Ü')));
        assert_eq!(p("\u{212a}im@example.org"), Err(MailboxError::NonAscii('\u{212a}')));
        assert_eq!(p("bo\u{130}b"), Err(MailboxError::NonAscii('\u{130}')));
        assert_eq!(ok("KIM@EXAMPLE.ORG"), "kim@example.org");
    }

    #[test]
    fn refuses_escapes_and_junk() {
        let bad: &[&[u8]] = &[
            b"",
            b"../etc/passwd",
            b"a/b@example.org",
            b"..@example.org",
            b".hidden@example.org",
            b"a@../x",
            b"a@x/y",
            b"a@example..org",
            b"a\0b@example.org",
            b"a\nb@example.org",
            b"a b@example.org",
            b"@",
            b"@example.org",
            b"a@",
            b"a@b@c",
            b"\xff\xfe@example.org",
            b"a@-x.org",
            b"a@ex\xc3\xa4mple.org",
        ];
        for raw in bad {
            assert!(Mailbox::parse(raw, Some("example.org")).is_err(), "{raw:?}");
        }
        let long = vec![b'a'; 1 << 20];
        assert_eq!(Mailbox::parse(&long, None), Err(MailboxError::TooLong(1 << 20)));
        assert_eq!(Mailbox::parse(b"bare", None), Err(MailboxError::NoDomain));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_never_yields_a_path(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            if let Ok(m) = Mailbox::parse(&raw, Some("example.org")) {
                proptest::prop_assert!(!m.local().contains('/') && !m.domain().contains('/'));
                proptest::prop_assert!(!m.local().starts_with('.') && !m.domain().starts_with('.'));
                proptest::prop_assert!(!m.local().contains("..") && !m.domain().contains(".."));
                // Parsing the normalised form gives the same mailbox.
                proptest::prop_assert_eq!(Mailbox::parse(m.to_string().as_bytes(), None), Ok(m));
            }
        }
    }
}
