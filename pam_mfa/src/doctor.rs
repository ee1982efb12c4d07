//! `mfa-ctl doctor`: checks a setup (configuration, store, PAM service files,
//! Dovecot, clock) and says what is wrong and what to do. A stack with the
//! lines in the wrong order or with the wrong controls still "works" in a
//! quick test, and fails open or locks users out only in the case nobody
//! tried; this is where those cases are named before a user finds them.
//!
//! The PAM and doveconf readers and the stack rules are pure functions over
//! text (unit-tested below); [`run`] gathers the files and runs them.

use crate::args::{Args, Role};
use crate::config::{self, Config};
use crate::store::{MARKER, MARKER_TEXT, Store, StoreError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One thing wrong: where, what, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub message: String,
    pub fix: String,
}

impl Finding {
    fn new(level: Level, file: Option<&Path>, line: Option<usize>, message: String, fix: impl Into<String>) -> Finding {
        Finding {
            level,
            file: file.map(Path::to_path_buf),
            line,
            message,
            fix: fix.into(),
        }
    }

    fn error(file: &Path, line: Option<usize>, message: String, fix: impl Into<String>) -> Finding {
        Finding::new(Level::Error, Some(file), line, message, fix)
    }

    fn warning(file: &Path, line: Option<usize>, message: String, fix: impl Into<String>) -> Finding {
        Finding::new(Level::Warning, Some(file), line, message, fix)
    }
}

// ---------------------------------------------------------------------------
// PAM service files

/// A line's control field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Required,
    Requisite,
    Sufficient,
    Optional,
    Include,
    Substack,
    /// `[value=action ...]`, as written (a word without `=` has an empty action).
    Bracket(Vec<(String, String)>),
}

/// What a control does with a module's failure and success, as far as the
/// stack rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A failure fails the stack, the rest still runs.
    Required,
    /// A failure ends the stack at once.
    Requisite,
    /// A success ends the stack; a failure is ignored.
    Sufficient,
    /// A failure is ignored.
    Optional,
    /// A bracket control this checker cannot reduce to one of the above.
    Unclear,
}

impl Control {
    pub fn effect(&self) -> Effect {
        match self {
            Control::Required => Effect::Required,
            Control::Requisite => Effect::Requisite,
            Control::Sufficient => Effect::Sufficient,
            Control::Optional | Control::Include | Control::Substack => Effect::Optional,
            Control::Bracket(pairs) => {
                let action = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
                // What happens to a failure decides whether a check can be
                // bypassed, so `default` is judged before `success`.
                match (action("default"), action("success")) {
                    (Some("die"), _) => Effect::Requisite,
                    (Some("bad"), _) => Effect::Required,
                    (_, Some("done")) => Effect::Sufficient,
                    _ => Effect::Unclear,
                }
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Control::Required => "required".into(),
            Control::Requisite => "requisite".into(),
            Control::Sufficient => "sufficient".into(),
            Control::Optional => "optional".into(),
            Control::Include => "include".into(),
            Control::Substack => "substack".into(),
            Control::Bracket(pairs) => {
                let inner: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") })
                    .collect();
                format!("[{}]", inner.join(" "))
            }
        }
    }
}

/// One entry of a PAM service file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where the entry starts (1-based; continuation lines follow it).
    pub line: usize,
    /// `auth`, `account`, `password` or `session`, lowercased; `None` for
    /// Debian's `@include`, which takes every type of the named file.
    pub ty: Option<String>,
    /// The leading `-`: a missing module is not logged.
    pub quiet: bool,
    pub control: Control,
    /// The module path, or the file named by `include`, `substack`, `@include`.
    pub module: String,
    pub args: Vec<String>,
}

impl Rule {
    pub fn is_include(&self) -> bool {
        matches!(self.control, Control::Include | Control::Substack)
    }

    /// Whether the line loads pam_mfa (by the file name of the module path:
    /// `pam_mfa.so` as installed, `libpam_mfa.so` as cargo builds it).
    pub fn is_pam_mfa(&self) -> bool {
        !self.is_include() && is_pam_mfa_path(&self.module)
    }

    fn of_type(&self, ty: &str) -> bool {
        self.ty.as_deref().is_none_or(|t| t == ty)
    }

    /// The pam_mfa role of the line: from its arguments if they parse, else
    /// from a role word among them (so one bad argument does not also hide
    /// where the line stands in the stack).
    fn role(&self) -> Option<Role> {
        match Args::parse(self.args.iter().map(|a| a.as_bytes())) {
            Ok(a) => a.role,
            Err(_) => self.args.iter().find_map(|a| match a.as_str() {
                "split" => Some(Role::Split),
                "verify" => Some(Role::Verify),
                "app_password" => Some(Role::AppPassword),
                _ => None,
            }),
        }
    }

    fn has_arg(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }
}

pub fn is_pam_mfa_path(module: &str) -> bool {
    Path::new(module)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "pam_mfa.so" || n == "libpam_mfa.so")
}

/// A line libpam cannot read; it makes the stack fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub why: String,
}

/// Joins physical lines into entries the way libpam does: `#` ends the entry
/// (the rest is a comment), a backslash at the end continues it on the next
/// line, and blank or comment-only lines are skipped, even inside a
/// continuation. Returns each entry with the line it starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (content, comment) = match raw.split_once('#') {
            Some((before, _)) => (before, true),
            None => (raw, false),
        };
        let entry = cur.get_or_insert_with(|| (i + 1, String::new()));
        let body = content.trim_end();
        match body.strip_suffix('\\') {
            Some(b) if !comment => {
                entry.1.push_str(b);
                entry.1.push(' ');
            }
            _ => {
                entry.1.push_str(body);
                out.extend(cur.take());
            }
        }
    }
    out.extend(cur);
    out
}

/// Splits off the next whitespace-separated word.
fn word(rest: &mut &str) -> Option<String> {
    let s = rest.trim_start();
    if s.is_empty() {
        *rest = s;
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let (w, tail) = s.split_at(end);
    *rest = tail;
    Some(w.to_string())
}

/// The module arguments: words, or `[...]` for an argument with spaces in
/// it (`\]` for a `]` inside).
fn module_args(mut rest: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(inner) = rest.strip_prefix('[') else {
            match word(&mut rest) {
                Some(w) => out.push(w),
                None => return Ok(out),
            }
            continue;
        };
        let mut arg = String::new();
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if chars.peek().is_some_and(|(_, n)| *n == ']') => {
                    arg.push(']');
                    chars.next();
                }
                ']' => {
                    end = Some(i + 1);
                    break;
                }
                c => arg.push(c),
            }
        }
        let Some(end) = end else {
            return Err("an argument opened with '[' is not closed with ']'".into());
        };
        out.push(arg);
        rest = inner.get(end..).unwrap_or_default();
    }
}

fn parse_entry(line: usize, text: &str) -> Result<Option<Rule>, String> {
    let mut rest = text;
    let Some(first) = word(&mut rest) else {
        return Ok(None);
    };
    if first.eq_ignore_ascii_case("@include") {
        let name = word(&mut rest).ok_or("@include without a file name")?;
        return Ok(Some(Rule {
            line,
            ty: None,
            quiet: false,
            control: Control::Include,
            module: name,
            args: Vec::new(),
        }));
    }
    let (quiet, ty) = match first.strip_prefix('-') {
        Some(t) => (true, t.to_ascii_lowercase()),
        None => (false, first.to_ascii_lowercase()),
    };
    if !matches!(ty.as_str(), "auth" | "account" | "password" | "session") {
        return Err(format!("unknown type '{ty}' (auth, account, password or session)"));
    }
    rest = rest.trim_start();
    let control = if let Some(inner) = rest.strip_prefix('[') {
        let (inside, after) = inner
            .split_once(']')
            .ok_or("a control opened with '[' is not closed with ']'")?;
        rest = after;
        Control::Bracket(
            inside
                .split_whitespace()
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_ascii_lowercase(), v.to_ascii_lowercase()),
                    None => (p.to_ascii_lowercase(), String::new()),
                })
                .collect(),
        )
    } else {
        let c = word(&mut rest).ok_or("no control (required, requisite, sufficient, ...)")?;
        match c.to_ascii_lowercase().as_str() {
            "required" => Control::Required,
            "requisite" => Control::Requisite,
            "sufficient" => Control::Sufficient,
            "optional" => Control::Optional,
            "include" => Control::Include,
            "substack" => Control::Substack,
            other => return Err(format!("unknown control '{other}'")),
        }
    };
    let module = word(&mut rest).ok_or("no module")?;
    Ok(Some(Rule {
        line,
        ty: Some(ty),
        quiet,
        control,
        module,
        args: module_args(rest)?,
    }))
}

/// Parses a PAM service file.
pub fn parse_pam(text: &str) -> Vec<Result<Rule, BadLine>> {
    logical_lines(text)
        .into_iter()
        .filter_map(|(line, entry)| match parse_entry(line, &entry) {
            Ok(rule) => rule.map(Ok),
            Err(why) => Some(Err(BadLine { line, why })),
        })
        .collect()
}

/// Whether a service file itself (not through includes) loads pam_mfa.
pub fn names_pam_mfa(text: &str) -> bool {
    parse_pam(text).iter().flatten().any(Rule::is_pam_mfa)
}

/// One entry of a stack, with the file it is in (includes bring in others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub file: PathBuf,
    pub rule: Rule,
}

/// Reads an included file by the name the include gives: its path and text.
pub type Loader<'a> = dyn FnMut(&str) -> Result<(PathBuf, String), String> + 'a;

/// libpam's own limit is deeper; past this an include is a loop.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The entries of one type (`auth`, `account`) in order, with each include
/// kept in place, followed by the entries it brings in.
pub fn expand(file: &Path, text: &str, ty: &str, load: &mut Loader<'_>) -> (Vec<Placed>, Vec<Finding>) {
    let mut out = Vec::new();
    let mut findings = Vec::new();
    expand_into(file, text, ty, load, 0, &mut out, &mut findings);
    (out, findings)
}

fn expand_into(
    file: &Path,
    text: &str,
    ty: &str,
    load: &mut Loader<'_>,
    depth: usize,
    out: &mut Vec<Placed>,
    findings: &mut Vec<Finding>,
) {
    for entry in parse_pam(text) {
        let rule = match entry {
            Ok(r) => r,
            Err(bad) => {
                findings.push(Finding::error(
                    file,
                    Some(bad.line),
                    format!(
                        "libpam cannot read this line ({}), and a line it cannot read makes the stack fail",
                        bad.why
                    ),
                    "write it as: TYPE CONTROL MODULE [ARGUMENTS] (see pam.conf(5))",
                ));
                continue;
            }
        };
        if !rule.of_type(ty) {
            continue;
        }
        out.push(Placed {
            file: file.to_path_buf(),
            rule: rule.clone(),
        });
        if !rule.is_include() {
            continue;
        }
        if depth >= MAX_INCLUDE_DEPTH {
            findings.push(Finding::warning(
                file,
                Some(rule.line),
                format!(
                    "includes {} more than {MAX_INCLUDE_DEPTH} levels deep; this looks like an include loop",
                    rule.module
                ),
                "check which files include each other",
            ));
            continue;
        }
        match load(&rule.module) {
            Ok((path, inner)) => expand_into(&path, &inner, ty, load, depth + 1, out, findings),
            Err(why) => findings.push(Finding::warning(
                file,
                Some(rule.line),
                format!("includes {}, which cannot be read ({why})", rule.module),
                "create the file or fix the name; libpam fails the stack on a missing include",
            )),
        }
    }
}

/// The recommended stack, for the "what to do" parts.
const SEE_EXAMPLE: &str = "see packaging/examples/pam.d/imap";

/// Checks one service file: its pam_mfa lines' arguments, and the order and
/// controls of its auth stack and its account stack. `load` reads included
/// files; `exists` says whether a file exists (for `config=`).
pub fn check_service(file: &Path, text: &str, load: &mut Loader<'_>, exists: &dyn Fn(&Path) -> bool) -> Vec<Finding> {
    let (auth, mut findings) = expand(file, text, "auth", load);
    let (account, more) = expand(file, text, "account", load);
    findings.extend(more);
    for p in auth.iter().chain(&account) {
        findings.extend(check_arguments(p, exists));
    }
    findings.extend(check_auth(file, &auth));
    findings.extend(check_account(file, &account));
    dedup(findings)
}

fn check_arguments(p: &Placed, exists: &dyn Fn(&Path) -> bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if !p.rule.is_pam_mfa() {
        return out;
    }
    let at = Some(p.rule.line);
    match Args::parse(p.rule.args.iter().map(|a| a.as_bytes())) {
        Err(why) => out.push(Finding::error(
            &p.file,
            at,
            format!("pam_mfa refuses this line: {why}"),
            "correct the argument; until then pam_mfa refuses every login through this service",
        )),
        Ok(args) => {
            if args.role.is_none() && p.rule.ty.as_deref() == Some("auth") {
                out.push(Finding::error(
                    &p.file,
                    at,
                    "this auth line names pam_mfa.so without a role, so pam_mfa refuses every login through it".into(),
                    format!("add split, verify or app_password ({SEE_EXAMPLE})"),
                ));
            }
            if let Some(cfg) = args.config.as_deref()
                && !exists(cfg)
            {
                out.push(Finding::error(
                    &p.file,
                    at,
                    format!(
                        "config={} does not exist, so pam_mfa refuses every login through this line",
                        cfg.display()
                    ),
                    "fix the path, or create the file (packaging/pam_mfa.toml lists every key)",
                ));
            }
        }
    }
    out
}

/// Where each pam_mfa role stands in an auth stack.
fn find_role(stack: &[Placed], role: Role) -> Vec<usize> {
    stack
        .iter()
        .enumerate()
        .filter(|(_, p)| p.rule.is_pam_mfa() && p.rule.role() == Some(role))
        .map(|(i, _)| i)
        .collect()
}

fn unclear(p: &Placed, what: &str) -> Finding {
    Finding::warning(
        &p.file,
        Some(p.rule.line),
        format!(
            "doctor cannot judge the control {} of the {what} line",
            p.rule.control.text()
        ),
        "make sure it acts as the recommended control does, or use that keyword",
    )
}

fn check_auth(file: &Path, stack: &[Placed]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(&split) = find_role(stack, Role::Split).first() else {
        out.push(Finding::error(
            file,
            None,
            "the auth stack has no `pam_mfa.so split` line, so no code is ever split off or checked \
             for logins through this service"
                .into(),
            format!("add `auth requisite pam_mfa.so split` before the password module ({SEE_EXAMPLE})"),
        ));
        return out;
    };
    let Some(split_line) = stack.get(split) else {
        return out;
    };
    match split_line.rule.control.effect() {
        Effect::Requisite => {}
        Effect::Unclear => out.push(unclear(split_line, "split")),
        e => out.push(Finding::error(
            &split_line.file,
            Some(split_line.rule.line),
            match e {
                Effect::Sufficient => "split is sufficient: its success ends the stack, so any password logs in".into(),
                other => format!(
                    "split is {}, not requisite: when split refuses a login (a blocked mailbox, a missing code), \
                     the password module and verify still run{}",
                    split_line.rule.control.text(),
                    if other == Effect::Optional {
                        " and the refusal is ignored"
                    } else {
                        ""
                    }
                ),
            },
            "make it: auth requisite pam_mfa.so split",
        )),
    }

    for &a in &find_role(stack, Role::AppPassword) {
        let Some(p) = stack.get(a) else { continue };
        if a > split {
            out.push(Finding::error(
                &p.file,
                Some(p.rule.line),
                "app_password comes after split: split has already cut what was typed into password and code, \
                 so an app password is not recognised"
                    .into(),
                "move the app_password line before the split line",
            ));
        }
        match p.rule.control.effect() {
            Effect::Sufficient => {}
            Effect::Unclear => out.push(unclear(p, "app_password")),
            _ => out.push(Finding::error(
                &p.file,
                Some(p.rule.line),
                format!(
                    "app_password is {}, not sufficient: an accepted app password does not end the stack, so the \
                     password module then checks it as the mailbox password and app passwords never work",
                    p.rule.control.text()
                ),
                "make it: auth sufficient pam_mfa.so app_password",
            )),
        }
    }

    let verifies = find_role(stack, Role::Verify);
    let password_at = split + 1;
    match stack.get(password_at) {
        None => out.push(Finding::error(
            &split_line.file,
            Some(split_line.rule.line),
            "nothing follows split in the auth stack: the password is never checked".into(),
            format!("add the password module with use_first_pass after split, then verify ({SEE_EXAMPLE})"),
        )),
        Some(p) if p.rule.is_include() => out.push(Finding::warning(
            &p.file,
            Some(p.rule.line),
            format!(
                "the password is checked through an include ({}); doctor cannot judge the password check through \
                 an include",
                p.rule.module
            ),
            "make sure a wrong password ends the stack (requisite) and the password module uses use_first_pass",
        )),
        Some(p) if p.rule.is_pam_mfa() => out.push(Finding::error(
            &p.file,
            Some(p.rule.line),
            "no password module between split and this pam_mfa line: the password is never checked".into(),
            "add your password module (e.g. `auth requisite pam_unix.so use_first_pass`) right after split",
        )),
        Some(p) => {
            let at = Some(p.rule.line);
            match p.rule.control.effect() {
                Effect::Requisite => {}
                Effect::Unclear => out.push(unclear(p, "password")),
                Effect::Required => out.push(Finding::error(
                    &p.file,
                    at,
                    format!(
                        "the password module {} is required, not requisite: after a wrong password verify still \
                         runs and counts a failed code, so anyone who knows a mailbox name can lock its owner out",
                        p.rule.module
                    ),
                    format!("make it: auth requisite {} ...", p.rule.module),
                )),
                Effect::Sufficient => out.push(Finding::error(
                    &p.file,
                    at,
                    format!(
                        "the password module {} is sufficient: a right password ends the stack before verify, so \
                         the code is never checked",
                        p.rule.module
                    ),
                    format!("make it: auth requisite {} ...", p.rule.module),
                )),
                Effect::Optional => out.push(Finding::error(
                    &p.file,
                    at,
                    format!(
                        "the password module {} is optional: a wrong password does not fail the login",
                        p.rule.module
                    ),
                    format!("make it: auth requisite {} ...", p.rule.module),
                )),
            }
            if !p.rule.has_arg("use_first_pass") && !p.rule.has_arg("try_first_pass") {
                out.push(Finding::error(
                    &p.file,
                    at,
                    format!(
                        "the password module {} has no use_first_pass: it does not check the password split off by \
                         pam_mfa but asks again, and the mail server answers with the whole password+code",
                        p.rule.module
                    ),
                    format!("add use_first_pass to the arguments of {}", p.rule.module),
                ));
            }
        }
    }

    match verifies.iter().copied().find(|&v| v > password_at) {
        Some(v) => {
            if let Some(p) = stack.get(v) {
                let at = Some(p.rule.line);
                match p.rule.control.effect() {
                    Effect::Required | Effect::Requisite => {}
                    Effect::Unclear => out.push(unclear(p, "verify")),
                    Effect::Sufficient | Effect::Optional => out.push(Finding::error(
                        &p.file,
                        at,
                        format!(
                            "verify is {}: a wrong code does not fail the login, so the password and any six digits \
                             log in",
                            p.rule.control.text()
                        ),
                        "make it: auth required pam_mfa.so verify",
                    )),
                }
            }
        }
        // A verify right after split is already reported as "no password module".
        None if verifies.contains(&password_at) => {}
        None => out.push(Finding::error(
            file,
            verifies
                .first()
                .and_then(|&v| stack.get(v))
                .filter(|p| p.file == file)
                .map(|p| p.rule.line),
            if verifies.is_empty() {
                "the auth stack has no `pam_mfa.so verify` line: the code split off is never checked (pam_mfa's \
                 account step then refuses the logins of enrolled mailboxes)"
                    .into()
            } else {
                "verify comes before split and the password module: it runs before there is a code to check".into()
            },
            format!("add `auth required pam_mfa.so verify` after the password module ({SEE_EXAMPLE})"),
        )),
    }
    out
}

fn check_account(file: &Path, stack: &[Placed]) -> Vec<Finding> {
    let mut out = Vec::new();
    let ours: Vec<&Placed> = stack.iter().filter(|p| p.rule.is_pam_mfa()).collect();
    if ours.is_empty() {
        out.push(Finding::error(
            file,
            None,
            "there is no `account` line for pam_mfa.so: Dovecot always calls pam_acct_mgmt, and pam_mfa's account \
             step is what refuses a blocked mailbox and catches a broken auth stack"
                .into(),
            "add: account required pam_mfa.so",
        ));
    }
    for p in ours {
        match p.rule.control.effect() {
            Effect::Required | Effect::Requisite => {}
            Effect::Unclear => out.push(unclear(p, "account")),
            _ => out.push(Finding::error(
                &p.file,
                Some(p.rule.line),
                format!(
                    "the pam_mfa account line is {}: its refusal (blocked mailbox, broken auth stack) is ignored",
                    p.rule.control.text()
                ),
                "make it: account required pam_mfa.so",
            )),
        }
    }
    out
}

/// Drops repeated findings (an included file is seen once per type and per
/// file that includes it), keeping the first.
pub fn dedup(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Dovecot

/// Warnings about the output of `doveconf -n` (Dovecot 2.3 syntax): a PAM
/// passdb whose results the auth cache keeps.
pub fn check_doveconf(text: &str) -> Vec<Finding> {
    // (section name, settings) of every section, at any depth.
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut top: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(head) = l.strip_suffix('{') {
            sections.push((head.trim().to_string(), Vec::new()));
            open.push(sections.len() - 1);
        } else if l == "}" {
            open.pop();
        } else if let Some((k, v)) = l.split_once('=') {
            let kv = (k.trim().to_string(), v.trim().to_string());
            match open.last().and_then(|&i| sections.get_mut(i)) {
                Some((_, settings)) => settings.push(kv),
                None => top.push(kv),
            }
        }
    }
    let get = |settings: &[(String, String)], key: &str| {
        settings.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let cache_size = get(&top, "auth_cache_size").unwrap_or_default();
    // `0`, `0 M`: any non-zero digit means a cache.
    if !cache_size.chars().any(|c| c.is_ascii_digit() && c != '0') {
        return Vec::new();
    }
    let ttl = get(&top, "auth_cache_ttl").unwrap_or_else(|| "1 hours".into());
    let mut out = Vec::new();
    for (name, settings) in &sections {
        let is_passdb = name == "passdb" || name.starts_with("passdb ");
        if !is_passdb || get(settings, "driver").as_deref() != Some("pam") {
            continue;
        }
        if get(settings, "args").is_some_and(|a| a.contains("cache_key")) {
            out.push(Finding::new(
                Level::Warning,
                Some(Path::new("doveconf -n")),
                None,
                format!(
                    "a passdb with driver = pam has cache_key in its args and auth_cache_size = {cache_size}: \
                     Dovecot's auth cache makes one password+code string reusable for auth_cache_ttl ({ttl}), \
                     from anywhere, and pam_mfa never sees those logins"
                ),
                "remove cache_key from the passdb's args (or set auth_cache_size = 0), unless that re-use \
                 window is wanted",
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Clock

/// What [`crate::ffi::sys::clock_synchronised`] says, as a finding.
pub fn check_clock(synchronised: Option<bool>) -> Option<Finding> {
    match synchronised {
        Some(true) => None,
        Some(false) => Some(Finding::new(
            Level::Warning,
            None,
            None,
            "the clock is not synchronised (NTP); TOTP codes depend on it".into(),
            "enable systemd-timesyncd or chrony",
        )),
        None => Some(Finding::new(
            Level::Warning,
            None,
            None,
            "whether the clock is synchronised (NTP) could not be checked; TOTP codes depend on it".into(),
            "make sure systemd-timesyncd or chrony runs",
        )),
    }
}

// ---------------------------------------------------------------------------
// Configuration and store

/// The configuration as pam_mfa reads it, and the store it names, with the
/// `store_owner` resolved; findings for what is wrong.
pub fn check_config(named: Option<&Path>) -> (Option<Store>, Vec<Finding>) {
    let (path, if_missing) = config::source(named);
    let cfg = match Config::load(path, crate::ffi::sys::effective_uid(), if_missing) {
        Ok(c) => c,
        Err(e) => {
            return (
                None,
                vec![Finding::error(
                    &e.path,
                    e.line,
                    e.message,
                    "correct the configuration: until then pam_mfa refuses every login (and doctor cannot check \
                     the store)",
                )],
            );
        }
    };
    let owner = match cfg.store_owner.as_deref() {
        None => None,
        Some(name) => match crate::ffi::sys::uid_of(name) {
            Some(uid) => Some(uid),
            None => {
                return (
                    None,
                    vec![Finding::error(
                        path,
                        None,
                        format!("store_owner = {name:?} is not a known user, so pam_mfa refuses every login"),
                        "create the user or correct store_owner",
                    )],
                );
            }
        },
    };
    (Some(Store::new(&cfg, owner)), Vec::new())
}

/// A store error as a finding: the message splits into what and what to do
/// at its first `; ` (the store's messages are written that way).
fn store_finding(e: &StoreError) -> Finding {
    let (path, text) = match e {
        StoreError::Missing { path, what } => (
            path,
            format!(
                "{what} is missing, so pam_mfa refuses every login; if the store is on another disk or share, mount \
                 it (and check `store =` in the configuration); on a new install run: mfa-ctl store init"
            ),
        ),
        StoreError::Unsafe { path, why } => (path, format!("pam_mfa refuses to use it, and so every login: {why}")),
        StoreError::Damaged { path, .. } | StoreError::Io { path, .. } | StoreError::RemovedDuringLogin { path } => {
            (path, e.to_string())
        }
    };
    let (message, fix) = text.split_once("; ").unwrap_or((&text, ""));
    Finding::error(path, None, message.to_string(), fix)
}

/// The store: everything [`Store::check_ready`] checks, plus the marker's
/// content and folders others can read (they would see which mailboxes use MFA).
pub fn check_store(store: &Store) -> Vec<Finding> {
    if let Err(e) = store.check_ready() {
        return vec![store_finding(&e)];
    }
    let mut out = Vec::new();
    let root = store.root();
    let marker = root.join(MARKER);
    match std::fs::read(&marker) {
        Ok(bytes) if bytes == MARKER_TEXT.as_bytes() => {}
        Ok(_) => out.push(Finding::error(
            &marker,
            None,
            format!(
                "the store marker does not say {:?}: the folder may belong to another program or a newer pam_mfa",
                MARKER_TEXT.trim_end()
            ),
            "check `store =` in the configuration; for a pam_mfa store, remove the marker and run: mfa-ctl store init",
        )),
        Err(e) => out.push(Finding::error(
            &marker,
            None,
            format!("cannot read the store marker: {e}"),
            "run doctor as root",
        )),
    }
    for dir in [root.to_path_buf(), root.join("domains"), root.join("mailboxes")] {
        if let Ok(meta) = std::fs::symlink_metadata(&dir) {
            let mode = meta.mode() & 0o7777;
            if mode & 0o077 != 0 {
                out.push(Finding::warning(
                    &dir,
                    None,
                    format!(
                        "its mode {mode:04o} lets others list it (which mailboxes and domains use MFA); store \
                         folders are 0700"
                    ),
                    format!("run: chmod 0700 {}", dir.display()),
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Gathering

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration named with `--config` (else the default path).
    pub config: Option<PathBuf>,
    /// Only these service files; empty: every file in `pam_dir` that loads pam_mfa.
    pub pam_files: Vec<PathBuf>,
    /// Where service files are scanned for and includes are found.
    pub pam_dir: PathBuf,
    /// The doveconf program to ask; `None`: no Dovecot check.
    pub doveconf: Option<PathBuf>,
}

/// What doctor found, and what it looked at.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub store: Option<PathBuf>,
    pub pam_files: Vec<PathBuf>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Error).count()
    }

    pub fn warnings(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Warning).count()
    }
}

/// Runs every check. `Err` when doctor cannot run at all: a named service
/// file or the PAM folder cannot be read.
pub fn run(opts: &Options) -> Result<Report, String> {
    let mut report = Report::default();
    let (store, findings) = check_config(opts.config.as_deref());
    report.findings.extend(findings);
    if let Some(store) = store {
        report.findings.extend(check_store(&store));
        report.store = Some(store.root().to_path_buf());
    }

    let services = if opts.pam_files.is_empty() {
        scan(&opts.pam_dir)?
    } else {
        let mut named = Vec::new();
        for f in &opts.pam_files {
            let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            named.push((f.clone(), text));
        }
        named
    };
    if opts.pam_files.is_empty() && services.is_empty() {
        report.findings.push(Finding::warning(
            &opts.pam_dir,
            None,
            "no service file here loads pam_mfa.so: nothing is switched on yet".into(),
            "see README (packaging/examples/pam.d has the service files for Dovecot)",
        ));
    }
    let pam_dir = opts.pam_dir.clone();
    let mut load = |name: &str| {
        let path = if name.starts_with('/') {
            PathBuf::from(name)
        } else {
            pam_dir.join(name)
        };
        std::fs::read_to_string(&path)
            .map(|t| (path.clone(), t))
            .map_err(|e| e.to_string())
    };
    let exists = |p: &Path| p.exists();
    for (file, text) in &services {
        if names_pam_mfa(text) {
            report.findings.extend(check_service(file, text, &mut load, &exists));
        } else {
            report.findings.push(Finding::warning(
                file,
                None,
                "no line of this file loads pam_mfa.so: logins through this service are not asked for a code".into(),
                format!("add the pam_mfa lines ({SEE_EXAMPLE}), or leave this file out"),
            ));
        }
        report.pam_files.push(file.clone());
    }

    if let Some(prog) = &opts.doveconf {
        report.findings.extend(run_doveconf(prog));
    }
    report
        .findings
        .extend(check_clock(crate::ffi::sys::clock_synchronised()));
    report.findings = dedup(std::mem::take(&mut report.findings));
    Ok(report)
}

/// The files in `dir` that load pam_mfa, sorted by name.
fn scan(dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        // Unreadable or not text: not a service file doctor could judge.
        if let Ok(text) = std::fs::read_to_string(&p)
            && names_pam_mfa(&text)
        {
            out.push((p, text));
        }
    }
    Ok(out)
}

fn run_doveconf(prog: &Path) -> Vec<Finding> {
    let source = Path::new("doveconf -n");
    let warn = |message: String| {
        vec![Finding::warning(
            source,
            None,
            message,
            "check that Dovecot's configuration loads (doveconf -n); the Dovecot settings were not checked",
        )]
    };
    match std::process::Command::new(prog)
        .arg("-n")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Err(e) => warn(format!("cannot run {} -n: {e}", prog.display())),
        Ok(out) if !out.status.success() => {
            let err = String::from_utf8_lossy(&out.stderr);
            warn(format!(
                "{} -n failed ({}): {}",
                prog.display(),
                out.status,
                err.lines().next().unwrap_or_default()
            ))
        }
        Ok(out) => check_doveconf(&String::from_utf8_lossy(&out.stdout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# comment
auth     sufficient  pam_mfa.so app_password
auth     requisite   pam_mfa.so split
auth     requisite   pam_pwdfile.so pwdfile=/etc/dovecot/passwd.mfa use_first_pass
auth     required    pam_mfa.so verify
account  required    pam_mfa.so
";

    fn no_includes(name: &str) -> Result<(PathBuf, String), String> {
        Err(format!("{name}: no such file"))
    }

    fn check(text: &str) -> Vec<Finding> {
        check_service(Path::new("svc"), text, &mut no_includes, &|_| true)
    }

    /// (level, line, a piece of the message) of each finding.
    fn summary(text: &str) -> Vec<(Level, Option<usize>, String)> {
        check(text).into_iter().map(|f| (f.level, f.line, f.message)).collect()
    }

    #[track_caller]
    fn has(text: &str, level: Level, line: Option<usize>, piece: &str) {
        let s = summary(text);
        assert!(
            s.iter().any(|(l, n, m)| *l == level && *n == line && m.contains(piece)),
            "no {level:?} at {line:?} containing {piece:?} in {s:#?}"
        );
    }

    #[test]
    fn parses_pam_syntax() {
        let text = "\
auth [success=done default=die] pam_x.so a [b c\\] d] e # comment
  # a comment line
-session optional \\
   pam_systemd.so \\

   arg
@include common-auth
account include common-account
";
        let rules: Vec<Rule> = parse_pam(text).into_iter().map(Result::unwrap).collect();
        assert_eq!(rules.len(), 4, "{rules:#?}");
        assert_eq!(
            rules[0].control,
            Control::Bracket(vec![
                ("success".into(), "done".into()),
                ("default".into(), "die".into())
            ])
        );
        assert_eq!(rules[0].args, ["a", "b c] d", "e"]);
        assert_eq!(rules[0].control.effect(), Effect::Requisite);
        assert_eq!((rules[1].line, rules[1].quiet), (3, true));
        assert_eq!(rules[1].module, "pam_systemd.so");
        assert_eq!(rules[1].args, ["arg"]);
        assert_eq!(
            (rules[2].ty.as_deref(), rules[2].module.as_str()),
            (None, "common-auth")
        );
        assert!(rules[3].is_include());
        assert_eq!(rules[3].line, 8);
    }

    #[test]
    fn bad_lines_are_reported() {
        let bad = parse_pam("auth\nfoo required x.so\nauth [default=die x.so\n");
        let lines: Vec<usize> = bad.iter().map(|r| r.as_ref().unwrap_err().line).collect();
        assert_eq!(lines, [1, 2, 3]);
        has(
            &format!("{GOOD}sesion required pam_x.so\n"),
            Level::Error,
            Some(7),
            "cannot read",
        );
    }

    #[test]
    fn bracket_controls() {
        let e = |c: &str| parse_pam(&format!("auth {c} x.so")).remove(0).unwrap().control.effect();
        assert_eq!(e("[default=bad success=ok]"), Effect::Required);
        assert_eq!(
            e("[success=done new_authtok_reqd=done default=ignore]"),
            Effect::Sufficient
        );
        assert_eq!(e("[success=1 default=ignore]"), Effect::Unclear);
        assert_eq!(e("Requisite"), Effect::Requisite);
    }

    #[test]
    fn the_recommended_stack_passes() {
        assert_eq!(check(GOOD), []);
        let tried = GOOD.replace("use_first_pass", "try_first_pass");
        assert_eq!(check(&tried), []);
        let bracket = GOOD
            .replace("requisite   pam_pwdfile", "[success=ok default=die] pam_pwdfile")
            .replace("sufficient  pam_mfa.so", "[success=done default=ignore] pam_mfa.so");
        assert_eq!(check(&bracket), []);
    }

    #[test]
    fn wrong_controls_are_errors() {
        has(
            &GOOD.replace("requisite   pam_pwdfile", "required pam_pwdfile"),
            Level::Error,
            Some(4),
            "lock its owner out",
        );
        has(
            &GOOD.replace("requisite   pam_pwdfile", "sufficient pam_pwdfile"),
            Level::Error,
            Some(4),
            "never checked",
        );
        has(
            &GOOD.replace("requisite   pam_mfa.so split", "required pam_mfa.so split"),
            Level::Error,
            Some(3),
            "not requisite",
        );
        has(
            &GOOD.replace("requisite   pam_mfa.so split", "sufficient pam_mfa.so split"),
            Level::Error,
            Some(3),
            "any password logs in",
        );
        has(
            &GOOD.replace("required    pam_mfa.so verify", "sufficient pam_mfa.so verify"),
            Level::Error,
            Some(5),
            "any six digits",
        );
        has(
            &GOOD.replace(
                "sufficient  pam_mfa.so app_password",
                "required pam_mfa.so app_password",
            ),
            Level::Error,
            Some(2),
            "not sufficient",
        );
        has(
            &GOOD.replace("account  required", "account optional"),
            Level::Error,
            Some(6),
            "is ignored",
        );
        has(
            &GOOD.replace(
                "required    pam_mfa.so verify",
                "[success=1 default=ignore] pam_mfa.so verify",
            ),
            Level::Warning,
            Some(5),
            "cannot judge",
        );
    }

    #[test]
    fn missing_and_misplaced_lines() {
        has(
            &GOOD.replace("auth     required    pam_mfa.so verify\n", ""),
            Level::Error,
            None,
            "no `pam_mfa.so verify`",
        );
        has(
            &GOOD.replace("account  required    pam_mfa.so\n", ""),
            Level::Error,
            None,
            "no `account` line",
        );
        has(
            &GOOD.replace("auth     requisite   pam_mfa.so split\n", ""),
            Level::Error,
            None,
            "no `pam_mfa.so split`",
        );
        let late = "auth requisite pam_mfa.so split\nauth sufficient pam_mfa.so app_password\n\
                    auth requisite pam_unix.so use_first_pass\nauth required pam_mfa.so verify\naccount required pam_mfa.so\n";
        has(late, Level::Error, Some(2), "after split");
        has(
            &GOOD.replace(" use_first_pass", ""),
            Level::Error,
            Some(4),
            "no use_first_pass",
        );
        let no_password =
            "auth requisite pam_mfa.so split\nauth required pam_mfa.so verify\naccount required pam_mfa.so\n";
        has(no_password, Level::Error, Some(2), "no password module");
        let early = "auth required pam_mfa.so verify\nauth requisite pam_mfa.so split\n\
                     auth requisite pam_unix.so use_first_pass\naccount required pam_mfa.so\n";
        has(early, Level::Error, Some(1), "before split");
    }

    #[test]
    fn arguments_are_checked() {
        has(
            &GOOD.replace("verify", "verfiy"),
            Level::Error,
            Some(5),
            "unknown argument 'verfiy'",
        );
        has(
            &GOOD.replace("pam_mfa.so split", "pam_mfa.so"),
            Level::Error,
            Some(3),
            "without a role",
        );
        let cfg = GOOD.replace("pam_mfa.so verify", "pam_mfa.so verify config=/nowhere/x.toml");
        let f = check_service(Path::new("svc"), &cfg, &mut no_includes, &|p| {
            p != Path::new("/nowhere/x.toml")
        });
        assert!(
            f.iter()
                .any(|f| f.line == Some(5) && f.message.contains("/nowhere/x.toml does not exist")),
            "{f:#?}"
        );
    }

    #[test]
    fn includes() {
        let text = "auth sufficient pam_mfa.so app_password\nauth requisite pam_mfa.so split\n\
                    @include common-auth\nauth required pam_mfa.so verify\n@include common-account\n";
        let mut load = |name: &str| match name {
            "common-account" => Ok((
                PathBuf::from("/p/common-account"),
                "account required pam_mfa.so\n".to_string(),
            )),
            "common-auth" => Ok((
                PathBuf::from("/p/common-auth"),
                "auth [success=1 default=ignore] pam_unix.so\n".to_string(),
            )),
            other => Err(format!("{other}: no such file")),
        };
        let f = check_service(Path::new("svc"), text, &mut load, &|_| true);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].level, f[0].line), (Level::Warning, Some(3)));
        assert!(f[0].message.contains("through an include"), "{f:#?}");

        let f = check_service(
            Path::new("svc"),
            "@include svc\n",
            &mut |_: &str| Ok((PathBuf::from("svc"), "@include svc\n".to_string())),
            &|_| true,
        );
        assert!(f.iter().any(|f| f.message.contains("include loop")), "{f:#?}");
        let f = check_service(
            Path::new("svc"),
            &format!("{GOOD}@include gone\n"),
            &mut no_includes,
            &|_| true,
        );
        assert!(
            f.iter()
                .any(|f| f.line == Some(7) && f.message.contains("cannot be read")),
            "{f:#?}"
        );
    }

    #[test]
    fn names_our_module_by_file_name() {
        assert!(names_pam_mfa("auth required /x/target/debug/libpam_mfa.so verify"));
        assert!(names_pam_mfa("account required pam_mfa.so"));
        assert!(!names_pam_mfa(
            "auth required pam_unix.so\n# auth required pam_mfa.so\n"
        ));
        assert!(!names_pam_mfa("auth include pam_mfa.so"));
    }

    #[test]
    fn doveconf_cache_warning() {
        let conf = "auth_cache_size = 1M\npassdb {\n  args = cache_key=%u %s\n  driver = pam\n}\n";
        let f = check_doveconf(conf);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].message.contains("auth_cache_ttl (1 hours)"), "{f:#?}");
        assert_eq!(check_doveconf(&conf.replace("1M", "0")), []);
        assert_eq!(check_doveconf(&conf.replace("cache_key=%u ", "")), []);
        assert_eq!(check_doveconf(&conf.replace("pam", "passwd-file")), []);
        assert_eq!(check_doveconf(""), []);
    }

    #[test]
    fn clock() {
        assert_eq!(check_clock(Some(true)), None);
        assert!(check_clock(Some(false)).unwrap().message.contains("not synchronised"));
        assert!(check_clock(None).unwrap().message.contains("could not be checked"));
    }
}
