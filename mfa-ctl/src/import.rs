//! `mfa-ctl import`: moving users in from google-authenticator or pam_oath.
//! The reading, checking and storing are the library's
//! (`pam_mfa::import`, `Admin::import_*`); here the progress bar of bulk
//! imports and the words that say what happened and what to do next.

use crate::cli::{GaImportArgs, ImportCmd, OathImportArgs};
use crate::error::Error;
use crate::show::Reply;
use pam_mfa::admin::{Admin, ImportOutcome, ImportProgress, ImportSummary, ImportedMailbox};
use pam_mfa::text::escape_controls;
use serde_json::Value;

type Result<T> = std::result::Result<T, Error>;

/// How many skipped entries and example mailboxes the text shows; `--json`
/// lists them all.
const SHOWN: usize = 50;
const EXAMPLES: usize = 5;

pub fn run(admin: &Admin, cmd: ImportCmd, ui: &crate::commands::Ui, now: u64) -> Result<Reply> {
    match cmd {
        ImportCmd::GoogleAuthenticator(GaImportArgs {
            mailbox: Some(mailbox),
            file: Some(file),
            flags,
            ..
        }) => {
            let mb = admin.mailbox(&mailbox)?;
            let done = admin.import_google_authenticator(&mb, &file, flags.into(), now)?;
            Ok(one(&done, flags.dry_run))
        }
        ImportCmd::GoogleAuthenticator(GaImportArgs {
            dir: Some(dir),
            domain: Some(domain),
            flags,
            ..
        }) => bulk(ui, |p| {
            admin.import_google_authenticator_dir(&dir, &domain, flags.into(), now, p)
        }),
        ImportCmd::GoogleAuthenticator(GaImportArgs {
            list: Some(list),
            domain: Some(domain),
            flags,
            ..
        }) => bulk(ui, |p| {
            admin.import_google_authenticator_list(&list, &domain, flags.into(), now, p)
        }),
        // clap's argument group lets no other combination through; should
        // one slip by, it is the usage error clap would have given.
        ImportCmd::GoogleAuthenticator(_) => {
            use clap::CommandFactory;
            crate::cli::Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "give MAILBOX FILE, --dir DIR --domain DOMAIN or --list FILE --domain DOMAIN",
                )
                .exit()
        }
        ImportCmd::Oath(OathImportArgs {
            usersfile,
            domain,
            flags,
        }) => bulk(ui, |p| {
            admin.import_oath(&usersfile, domain.as_deref(), flags.into(), now, p)
        }),
    }
}

/// One mailbox imported from one file.
fn one(v: &ImportedMailbox, dry_run: bool) -> Reply {
    let mb = escape_controls(&v.mailbox);
    let from = escape_controls(&v.source);
    let mut human = match (v.outcome, dry_run) {
        (ImportOutcome::Unchanged, _) => {
            format!("{mb} already has the secret of {from}: nothing changed.\n")
        }
        (outcome, _) => {
            let verb = match (outcome, dry_run) {
                (ImportOutcome::Replaced, false) => "Replaced the secret of",
                (ImportOutcome::Replaced, true) => "Would replace the secret of",
                (_, true) => "Would import",
                (_, false) => "Imported",
            };
            let mut s = format!(
                "{verb} {mb} from {from}: time-based codes of {} digits every {} s",
                v.digits, v.period
            );
            if v.recovery_codes > 0 {
                s.push_str(&format!(
                    ", {} scratch codes as recovery codes (typed with a dash in the middle: 1234-5678)",
                    v.recovery_codes
                ));
            }
            s.push_str(".\n");
            if !dry_run {
                s.push_str("The user's authenticator app keeps working as it is: no new scan.\n");
                if outcome == ImportOutcome::Replaced {
                    s.push_str("The secret the mailbox had before no longer works.\n");
                }
            }
            s
        }
    };
    for n in &v.notes {
        human.push_str(&format!("Note: {n}.\n"));
    }
    if dry_run {
        human.push_str("Dry run: nothing was written.\n");
    }
    // Flat, as the other commands' objects are: the mailbox's view and dry_run.
    let mut json = serde_json::to_value(v).unwrap_or(Value::Null);
    if let Some(fields) = json.as_object_mut() {
        fields.insert("dry_run".into(), Value::Bool(dry_run));
    }
    Reply::new(human, json)
}

/// A bulk import with a progress bar on a terminal (never with `--json`,
/// in a pipe or a log), then its summary.
fn bulk(
    ui: &crate::commands::Ui,
    import: impl FnOnce(&mut dyn FnMut(ImportProgress)) -> std::result::Result<ImportSummary, pam_mfa::admin::AdminError>,
) -> Result<Reply> {
    use std::io::IsTerminal;
    let bar = (!ui.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let result = import(&mut |p| {
        if let Some(bar) = &bar {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let s = result?;
    Ok(Reply::new(
        summary_text(&s),
        serde_json::to_value(&s).unwrap_or(Value::Null),
    ))
}

/// Counts, every skipped entry with its reason (up to [`SHOWN`]), and the
/// notes grouped, each with a few of the mailboxes it concerns.
pub fn summary_text(s: &ImportSummary) -> String {
    let mut out = format!(
        "{} import from {}{}: {} imported, {} replaced, {} unchanged, {} skipped.\n",
        s.format,
        escape_controls(&s.source),
        if s.dry_run {
            " (dry run: nothing was written)"
        } else {
            ""
        },
        s.imported,
        s.replaced,
        s.unchanged,
        s.skipped
    );
    if !s.skipped_entries.is_empty() {
        out.push_str("Skipped (the other entries were imported regardless):\n");
        for k in s.skipped_entries.iter().take(SHOWN) {
            let who = k
                .mailbox
                .as_deref()
                .map(|m| format!(" ({})", escape_controls(m)))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {}{who}: {}\n",
                escape_controls(&k.source),
                escape_controls(&k.reason)
            ));
        }
        if s.skipped_entries.len() > SHOWN {
            out.push_str(&format!(
                "  ... and {} more (--json lists them all)\n",
                s.skipped_entries.len() - SHOWN
            ));
        }
        let any = |kind: &str| s.skipped_entries.iter().any(|k| k.kind == kind);
        if any("short_secret") {
            out.push_str(
                "Secrets of 80 to 127 bits are imported with --allow-short-secrets (then ask those users to \
                 enrol again: mfa-ctl list --weak lists them).\n",
            );
        }
        if any("would_replace") {
            out.push_str("Mailboxes that have MFA with another secret are overwritten with --replace.\n");
        }
    }
    // Notes grouped by their sentence, in the order first met.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for m in &s.mailboxes {
        for n in &m.notes {
            let text = n.to_string();
            match groups.iter_mut().find(|(t, _)| *t == text) {
                Some((_, mbs)) => mbs.push(&m.mailbox),
                None => groups.push((text, vec![&m.mailbox])),
            }
        }
    }
    if !groups.is_empty() {
        out.push_str("Notes:\n");
        for (text, mbs) in &groups {
            let mut shown: Vec<String> = mbs
                .iter()
                .take(EXAMPLES)
                .map(|m| escape_controls(m).into_owned())
                .collect();
            if mbs.len() > EXAMPLES {
                shown.push(format!("and {} more", mbs.len() - EXAMPLES));
            }
            out.push_str(&format!(
                "  {} mailbox{}: {text}.\n    {}\n",
                mbs.len(),
                if mbs.len() == 1 { "" } else { "es" },
                shown.join(", ")
            ));
        }
    }
    out
}
