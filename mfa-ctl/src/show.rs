//! How results look: dates for people, aligned tables, and the pair of
//! outputs every command produces (text for people, one JSON object for
//! scripts and hosting panels). Both are held in zeroizing strings because
//! some carry a secret that is shown once (seed, app password, recovery codes).

use pam_mfa::text::escape_controls;
use zeroize::Zeroizing;

/// What a command prints on success: `human` unless `--json`, then `json`.
pub struct Reply {
    pub human: Zeroizing<String>,
    pub json: Zeroizing<String>,
    /// Already written to stdout as it was read (`list`): nothing is left to print.
    pub printed: bool,
}

impl Reply {
    /// Takes the JSON value by value so the copies of secrets it holds are
    /// wiped once it is serialised.
    pub fn new(human: impl Into<String>, mut json: serde_json::Value) -> Reply {
        let text = Zeroizing::new(json.to_string());
        scrub(&mut json);
        Reply {
            human: Zeroizing::new(human.into()),
            json: escape_json_controls(text),
            printed: false,
        }
    }

    /// The reply of a command that printed its output as it went.
    pub fn printed() -> Reply {
        Reply {
            printed: true,
            ..Reply::new("", serde_json::Value::Null)
        }
    }
}

/// Characters serde_json writes raw that a terminal or a log viewer acts on:
/// DEL, C1 controls (U+009B alone starts an escape sequence on many
/// terminals), bidi overrides and isolates, and the line and paragraph
/// separators JavaScript treats as line ends.
fn json_needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// serde_json's text with those characters written as `\uXXXX`: still the
/// same JSON, since outside strings its text has none of them.
fn escape_json_controls(text: Zeroizing<String>) -> Zeroizing<String> {
    let n = text.chars().filter(|c| json_needs_escape(*c)).count();
    if n == 0 {
        return text;
    }
    // Sized up front: a growing String would leave copies of secrets behind.
    let mut out = Zeroizing::new(String::with_capacity(text.len() + 6 * n));
    for c in text.chars() {
        if json_needs_escape(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn scrub(v: &mut serde_json::Value) {
    use zeroize::Zeroize;
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
        serde_json::Value::Object(o) => o.values_mut().for_each(scrub),
        _ => {}
    }
}

/// `2026-11-23 14:03 UTC`: UTC so the same login reads the same for an
/// admin and a panel in another zone, and so golden tests need no TZ.
pub fn when(ts: u64) -> String {
    let days = i64::try_from(ts / 86_400).unwrap_or(i64::MAX / 2);
    let secs = ts % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs / 60 % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `when`, or `never` / `-` for a missing instant.
pub fn when_or(ts: Option<u64>, none: &str) -> String {
    ts.map_or_else(|| none.to_string(), when)
}

/// Left-aligned columns separated by two spaces, with a header row. Cells
/// hold text from the store (client addresses, labels, service names), so
/// control characters are shown escaped, never sent to the terminal.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| escaped_row(r)).collect();
    let widths = column_widths(headers, &rows);
    let mut out = table_line(headers, &widths);
    for row in &rows {
        out.push_str(&table_line(row, &widths));
    }
    out
}

/// A row's cells with control characters shown escaped, as [`table`] shows them.
pub fn escaped_row(row: &[String]) -> Vec<String> {
    row.iter().map(|c| escape_controls(c).into_owned()).collect()
}

/// The width of each column: its widest cell or header (rows escaped).
pub fn column_widths(headers: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

/// One line of a [`table`] with these column widths (cells escaped); a
/// cell wider than its column pushes the rest of its line right.
pub fn table_line<S: AsRef<str>>(row: &[S], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
        let cell = cell.as_ref();
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        line.extend(std::iter::repeat_n(' ', w.saturating_sub(cell.chars().count())));
    }
    let mut out = line.trim_end().to_string();
    out.push('\n');
    out
}

/// A list for a table cell: `imap, smtp`, or `empty` when there is none.
pub fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(when(1_795_443_780), "2026-11-23 14:23 UTC");
        assert_eq!(when(pam_mfa::clock::MAX_SANE_TIME), "9999-12-31 23:59 UTC");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONGER"],
            &[vec!["xyz".into(), "1".into()], vec!["".into(), "".into()]],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\n\n");
    }

    #[test]
    fn cells_and_json_are_escaped() {
        let t = table(&["IP"], &[vec!["\x1b]0;x\x07\u{9b}1m".into()]]);
        assert_eq!(t, "IP\n\\x1b]0;x\\x07\\x9b1m\n");
        let r = Reply::new("", serde_json::json!({"ip": "a\x1b\u{7f}\u{9b}\u{202e}b"}));
        assert_eq!(r.json.as_str(), r#"{"ip":"a\u001b\u007f\u009b\u202eb"}"#);
        let back: serde_json::Value = serde_json::from_str(&r.json).unwrap();
        assert_eq!(back["ip"], "a\x1b\u{7f}\u{9b}\u{202e}b");
    }
}
