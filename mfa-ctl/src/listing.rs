//! `mfa-ctl list`, printed as the store is read: a domain may hold a million
//! mailboxes, so neither their statuses nor the text are ever held whole.
//! The table takes its column widths from its first page of rows; the JSON
//! is the document a [`Reply`] would print, `{"mailboxes":[...]}`, written
//! element by element with the same escaping. On a terminal a spinner on
//! stderr counts the mailboxes read when that takes a while.

use crate::error::Error;
use crate::show::{self, Reply, when_or};
use indicatif::{ProgressBar, ProgressStyle};
use pam_mfa::admin::{Admin, Status};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const HEADERS: [&str; 9] = [
    "MAILBOX",
    "MFA",
    "SECRET",
    "POLICY",
    "LOGIN NEEDS",
    "LOCK",
    "RECOVERY",
    "APP PW",
    "LAST LOGIN",
];

/// Rows whose cells set the table's column widths: held until then, so a
/// listing of up to this many reads exactly as [`show::table`] prints it.
const WIDTH_ROWS: usize = 1000;
/// Output is handed to stdout in pieces of about this size (one write
/// per line would cost a system call per mailbox)...
const CHUNK: usize = 64 * 1024;
/// ...or this long after the last, so rows found far apart (`--weak`)
/// still show as they are found.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A listing still running after this long shows the spinner: a short
/// one should not flash it.
const SPINNER_AFTER: Duration = Duration::from_millis(500);

/// Lists the mailboxes (only the weak ones with `weak`) to stdout as they
/// are read. The output is printed here, so the reply is
/// [`Reply::printed`]. An error after part of it was printed is
/// [`Error::Interrupted`]: that part stays as it is, unfinished.
pub fn list(admin: &Admin, domain: Option<&str>, weak: bool, json: bool, now: u64) -> Result<Reply, Error> {
    let mut out = Out::new(json);
    let mut format = if json {
        Format::Json { opened: false }
    } else {
        Format::Table(Table::default())
    };
    let listed = (|| {
        for status in admin.statuses(domain, now)? {
            out.read_one()?;
            let status = status?;
            if !weak || status.weak {
                format.row(&status, &mut out)?;
            }
        }
        format.end(weak, &mut out)?;
        out.flush()
    })();
    out.progress.finish();
    match listed {
        Ok(()) => Ok(Reply::printed()),
        Err(e) => {
            // The rows read before the error, for a person to see how far
            // it got. Not for JSON: a program reading it learns nothing from
            // more of an unfinished document than it already has.
            if !json {
                let _ = format.end_early(&mut out).and_then(|()| out.flush());
            }
            Err(if out.written {
                Error::Interrupted(Box::new(e))
            } else {
                e
            })
        }
    }
}

fn cells(s: &Status) -> Vec<String> {
    let secret = if s.weak {
        "weak"
    } else if s.app {
        "ok"
    } else {
        "-"
    };
    vec![
        s.mailbox.clone(),
        s.state.to_string(),
        secret.to_string(),
        s.policy.policy.to_string(),
        s.login_needs.to_string(),
        s.lock.to_string(),
        s.recovery_codes_left.to_string(),
        s.app_passwords.to_string(),
        when_or(s.last_login.as_ref().map(|l| l.at), "-"),
    ]
}

enum Format {
    /// `opened`: `{"mailboxes":[` is written, with at least one element.
    Json {
        opened: bool,
    },
    Table(Table),
}

impl Format {
    fn row(&mut self, s: &Status, out: &mut Out) -> Result<(), Error> {
        match self {
            Format::Json { opened } => {
                let value = serde_json::to_value(s).map_err(|e| Error::Output(std::io::Error::other(e)))?;
                out.push(if *opened { "," } else { "{\"mailboxes\":[" })?;
                *opened = true;
                // Through Reply, so each element is escaped as every other
                // JSON output is (controls a terminal or log viewer acts on).
                out.push(Reply::new("", value).json.as_str())
            }
            Format::Table(t) => t.row(&cells(s), out),
        }
    }

    fn end(&mut self, weak: bool, out: &mut Out) -> Result<(), Error> {
        match self {
            Format::Json { opened } => out.push(if *opened { "]}\n" } else { "{\"mailboxes\":[]}\n" }),
            // An empty table would show only its headers: say so instead.
            Format::Table(t) if t.is_empty() => out.push(if weak {
                "No mailbox has a secret shorter than 128 bits: nobody needs to enrol again for that.\n"
            } else {
                "No mailbox has MFA data in the store yet (enrol one with: mfa-ctl enroll MAILBOX).\n"
            }),
            Format::Table(t) => t.write_held(out),
        }
    }

    /// What is held back, without the closing parts of [`Format::end`].
    fn end_early(&mut self, out: &mut Out) -> Result<(), Error> {
        match self {
            Format::Table(t) if !t.is_empty() => t.write_held(out),
            _ => Ok(()),
        }
    }
}

/// A table written as it goes: its first [`WIDTH_ROWS`] rows are held to
/// set the widths, the later ones written at once with those widths.
#[derive(Default)]
struct Table {
    widths: Option<Vec<usize>>,
    held: Vec<Vec<String>>,
}

impl Table {
    fn is_empty(&self) -> bool {
        self.widths.is_none() && self.held.is_empty()
    }

    fn row(&mut self, cells: &[String], out: &mut Out) -> Result<(), Error> {
        let cells = show::escaped_row(cells);
        match &self.widths {
            Some(widths) => out.push(&show::table_line(&cells, widths)),
            None => {
                self.held.push(cells);
                if self.held.len() >= WIDTH_ROWS {
                    self.write_held(out)?;
                }
                Ok(())
            }
        }
    }

    /// The header and the held rows, setting the widths (once).
    fn write_held(&mut self, out: &mut Out) -> Result<(), Error> {
        let held = std::mem::take(&mut self.held);
        let widths = match &self.widths {
            Some(w) => w.clone(),
            None => {
                let w = show::column_widths(&HEADERS, &held);
                out.push(&show::table_line(&HEADERS, &w))?;
                self.widths = Some(w.clone());
                w
            }
        };
        for row in &held {
            out.push(&show::table_line(row, &widths))?;
        }
        Ok(())
    }
}

/// Stdout, written in pieces, and the spinner that must not be drawn over
/// what is written to the same terminal.
struct Out {
    pending: String,
    last_flush: Instant,
    /// Something was handed to stdout.
    written: bool,
    stdout_is_terminal: bool,
    progress: Progress,
}

impl Out {
    fn new(json: bool) -> Out {
        Out {
            pending: String::new(),
            last_flush: Instant::now(),
            written: false,
            stdout_is_terminal: std::io::stdout().is_terminal(),
            progress: Progress::new(json),
        }
    }

    /// One more mailbox read, whether it is shown or not.
    fn read_one(&mut self) -> Result<(), Error> {
        self.progress.tick();
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn push(&mut self, text: &str) -> Result<(), Error> {
        self.pending.push_str(text);
        if self.pending.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        self.written = true;
        let text = std::mem::take(&mut self.pending);
        let write = || {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()
        };
        match &self.progress.bar {
            // The spinner is wiped while the lines go out, then redrawn below them.
            Some(bar) if self.stdout_is_terminal => bar.suspend(write),
            _ => write(),
        }
        .map_err(Error::Output)
    }
}

/// The count of mailboxes read, on stderr: only for a person watching a
/// terminal (not in JSON, logs or pipes), and only once it takes a while.
struct Progress {
    wanted: bool,
    start: Instant,
    read: u64,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(json: bool) -> Progress {
        Progress {
            wanted: !json && std::io::stderr().is_terminal(),
            start: Instant::now(),
            read: 0,
            bar: None,
        }
    }

    fn tick(&mut self) {
        self.read += 1;
        if let Some(bar) = &self.bar {
            bar.set_position(self.read);
        } else if self.wanted && self.start.elapsed() >= SPINNER_AFTER {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {human_pos} mailboxes read ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            // Turning while a slow page or mailbox is read: still alive.
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_position(self.read);
            self.bar = Some(bar);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_listing_is_the_table_show_prints() {
        let rows = vec![
            vec![
                "a@example.org".to_string(),
                "enabled".into(),
                "ok".into(),
                "x\x1b".into(),
            ],
            vec!["longer@example.org".to_string(), "-".into()],
        ];
        let headers = ["MAILBOX", "MFA", "SECRET", "LAST"];
        let escaped: Vec<Vec<String>> = rows.iter().map(|r| show::escaped_row(r)).collect();
        let widths = show::column_widths(&headers, &escaped);
        let mut text = show::table_line(&headers, &widths);
        for r in &escaped {
            text.push_str(&show::table_line(r, &widths));
        }
        assert_eq!(text, show::table(&headers, &rows));
    }
}
