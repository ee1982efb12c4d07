//! Text that came from outside (client addresses, service names, labels)
//! on its way to a log line or a terminal: control characters are shown as
//! escapes, so nobody can forge a second log line or send escape sequences
//! to the terminal of an admin reading `mfa-ctl logins`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters shown escaped: C0 and C1 controls, DEL, and the bidi
/// overrides and isolates that make a terminal show text in another order
/// than it is.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `s` holds a character [`escape_controls`] would escape: names
/// an admin chooses (labels) are refused with one rather than stored.
pub fn has_controls(s: &str) -> bool {
    s.chars().any(needs_escape)
}

/// `s` with every such character written as `\xNN` (below U+0100) or
/// `\u{NNNN}`; unchanged (borrowed) when there is nothing to escape.
/// Backslashes are left alone, so escaping twice changes nothing: a
/// backslash typed by a client can look like an escape, but it cannot do
/// what the character would have done.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    escape_where(s, needs_escape)
}

/// [`escape_controls`], and white space too: for a value that stands
/// unquoted in a `key=value` log line (client address, service), where a
/// space would let it add fields of its own (`rhost=1.2.3.4 result=accepted`).
pub fn escape_field(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| needs_escape(c) || c.is_whitespace())
}

fn escape_where(s: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if escape(c) && u32::from(c) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The longest client address (PAM_RHOST) kept, in bytes: a host name is at
/// most 253, an IPv6 address with a zone well under that.
pub const MAX_RHOST: usize = 255;

/// Marks a client address that was cut to [`MAX_RHOST`].
pub const CUT_MARK: &str = "...(cut)";

/// A client address as it is stored and logged: control characters and
/// white space escaped ([`escape_field`]), then cut to at most [`MAX_RHOST`] bytes (on a character boundary) and
/// marked as cut, so a hostile PAM_RHOST can neither grow a mailbox file
/// nor reach a terminal raw.
pub fn clean_rhost(raw: &str) -> String {
    // Only the start can be kept, so only the start is escaped: a 300 KB
    // address must not cost a larger copy.
    let mut end = raw.len().min(MAX_RHOST + 1);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let escaped = escape_field(raw.get(..end).unwrap_or_default());
    if end == raw.len() && escaped.len() <= MAX_RHOST {
        return escaped.into_owned();
    }
    let mut keep = (MAX_RHOST - CUT_MARK.len()).min(escaped.len());
    while !escaped.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{CUT_MARK}", escaped.get(..keep).unwrap_or_default())
}

/// A PAM service name as libpam passes it to modules (it lowercases the
/// name given to `pam_start`): 1 to 32 of a-z, 0-9, - and _. One rule for
/// app passwords' `--service` and `webmail.services`.
pub fn is_service_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_only() {
        assert!(matches!(escape_controls("192.0.2.7"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("a\x1b[2Jb\n"), "a\\x1b[2Jb\\x0a");
        assert_eq!(escape_controls("\u{9b}31m"), "\\x9b31m");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
        let once = escape_controls("a\x1bb").into_owned();
        assert_eq!(escape_controls(&once), once, "escaping twice changes nothing");
        assert_eq!(escape_controls("ünïcode"), "ünïcode");
    }

    #[test]
    fn fields_cannot_add_fields() {
        assert_eq!(escape_field("10.0.0.1 result=accepted"), "10.0.0.1\\x20result=accepted");
        assert_eq!(escape_field("a\u{a0}b\u{2028}c"), "a\\xa0b\\u{2028}c");
        assert_eq!(
            clean_rhost("10.0.0.1\nFAKE result=accepted"),
            "10.0.0.1\\x0aFAKE\\x20result=accepted"
        );
    }

    #[test]
    fn rhost_is_bounded_and_marked() {
        assert_eq!(clean_rhost("192.0.2.7"), "192.0.2.7");
        let long = "é".repeat(200_000);
        let c = clean_rhost(&long);
        assert!(c.len() <= MAX_RHOST && c.ends_with(CUT_MARK), "{}", c.len());
        let c = clean_rhost(&"\x1b".repeat(1000));
        assert!(c.len() <= MAX_RHOST && c.starts_with("\\x1b") && c.ends_with(CUT_MARK));
        assert_eq!(clean_rhost(&"a".repeat(MAX_RHOST)).len(), MAX_RHOST);
    }

    proptest::proptest! {
        #[test]
        fn cleaned_text_has_no_controls(s in ".{0,600}") {
            let c = clean_rhost(&s);
            proptest::prop_assert!(c.len() <= MAX_RHOST);
            proptest::prop_assert!(!c.chars().any(needs_escape));
        }
    }
}
