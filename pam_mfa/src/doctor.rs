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
use crate::store::any::AnyStore;
use crate::store::backend::Backend;
use crate::store::{MARKER, MARKER_TEXT, StoreError};
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

/// The return codes libpam knows by name in a `[value=action]` control
/// (`default` aside). libpam matches them case-sensitively.
const RETURN_CODES: &[&str] = &[
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
    "conv_again",
    "incomplete",
];

/// Return codes that are neither the module's success nor a failure of its
/// check: PAM_IGNORE (the module has no say) and `new_authtok_reqd` (the
/// right password, expired; the login still fails). Whatever their action,
/// they cannot make a login succeed; only a jump on them skips lines.
const NEUTRAL_CODES: &[&str] = &["ignore", "new_authtok_reqd"];

/// One action of a `[value=action]` control (pam.conf(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Ignore,
    Ok,
    Done,
    Bad,
    Die,
    Reset,
    /// Skip the next N modules.
    Jump(usize),
    /// Not an action libpam knows (as written).
    Unknown(String),
}

impl Action {
    fn parse(word: &str) -> Action {
        match word {
            "ignore" => Action::Ignore,
            "ok" => Action::Ok,
            "done" => Action::Done,
            "bad" => Action::Bad,
            "die" => Action::Die,
            "reset" => Action::Reset,
            other => match other.parse::<usize>() {
                Ok(n) if n > 0 && other.bytes().all(|b| b.is_ascii_digit()) => Action::Jump(n),
                _ => Action::Unknown(other.to_string()),
            },
        }
    }

    fn text(&self) -> String {
        match self {
            Action::Ignore => "ignore".into(),
            Action::Ok => "ok".into(),
            Action::Done => "done".into(),
            Action::Bad => "bad".into(),
            Action::Die => "die".into(),
            Action::Reset => "reset".into(),
            Action::Jump(n) => n.to_string(),
            Action::Unknown(w) => w.clone(),
        }
    }

    /// What the action does to the stack when the module succeeded.
    pub fn on_success(&self) -> OnSuccess {
        match self {
            // `ignore` on a success: the line does not count, the stack goes on.
            Action::Ok | Action::Ignore => OnSuccess::Continue,
            Action::Done => OnSuccess::End,
            Action::Jump(n) => OnSuccess::Jump(*n),
            Action::Bad | Action::Die => OnSuccess::Fail,
            Action::Reset | Action::Unknown(_) => OnSuccess::Unclear,
        }
    }

    /// What the action does to the stack when the module failed. Checked
    /// through libpam 1.5 (pam_dispatch.c): `ok` on a failure records the
    /// failure as the stack's result, which no later success overwrites (the
    /// login fails, the rest runs: like `bad`); `done` on a failure ends
    /// the stack with that failure (like `die`).
    pub fn on_failure(&self) -> OnFailure {
        match self {
            Action::Die | Action::Done => OnFailure::End,
            Action::Bad | Action::Ok => OnFailure::Fail,
            Action::Ignore => OnFailure::Ignored,
            Action::Jump(n) => OnFailure::Jump(*n),
            Action::Reset | Action::Unknown(_) => OnFailure::Unclear,
        }
    }
}

/// What a line does when its module succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSuccess {
    /// The stack goes on (`ok`, `ignore`).
    Continue,
    /// The stack ends with success (`done`, `sufficient`).
    End,
    /// The next N modules are skipped (`success=N`).
    Jump(usize),
    /// The success fails the stack (`bad`, `die`): nobody gets through.
    Fail,
    /// `reset` or an unknown action.
    Unclear,
}

/// What a line does when its module fails with one return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The stack ends at once, failed (`die`; `done`).
    End,
    /// The stack fails, and the lines after this one still run (`bad`; `ok`).
    Fail,
    /// The failure does not count (`ignore`).
    Ignored,
    /// The next N modules are skipped and the failure does not count.
    Jump(usize),
    /// `reset` or an unknown action.
    Unclear,
}

/// A control reduced to what it does on success and on each failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reduction {
    /// The action on `success`.
    pub success: Action,
    /// Each failure return code listed, with its action, then `default`
    /// (the action of every failure code not listed; `bad` when no
    /// `default` is given).
    pub failures: Vec<(String, Action)>,
    /// The actions on the neutral codes (`ignore`, `new_authtok_reqd`).
    pub neutral: Vec<(String, Action)>,
    /// Why the control cannot be judged fully: unknown return codes or
    /// actions, `reset`.
    pub unclear: Vec<String>,
}

impl Reduction {
    pub fn on_success(&self) -> OnSuccess {
        self.success.on_success()
    }

    /// The `code=action` words of the failures handled as `pred` says.
    pub fn failing(&self, pred: impl Fn(OnFailure) -> bool) -> Vec<String> {
        self.failures
            .iter()
            .filter(|(_, a)| pred(a.on_failure()))
            .map(|(c, a)| format!("{c}={}", a.text()))
            .collect()
    }

    /// The failures that do not count (ignored, or jumped on), as `code=action`.
    fn ignored_failures(&self) -> Vec<String> {
        self.failing(|f| matches!(f, OnFailure::Ignored | OnFailure::Jump(_)))
    }

    /// Every failure ends the stack at once (requisite-like).
    pub fn every_failure_ends(&self) -> bool {
        self.failures.iter().all(|(_, a)| a.on_failure() == OnFailure::End)
    }

    /// Every failure fails the stack, at once or after the rest ran.
    pub fn every_failure_fails(&self) -> bool {
        self.failures
            .iter()
            .all(|(_, a)| matches!(a.on_failure(), OnFailure::End | OnFailure::Fail))
    }

    /// Every jump the line can take: (`code=N`, N).
    pub fn jumps(&self) -> Vec<(String, usize)> {
        std::iter::once(("success".to_string(), self.success.clone()))
            .chain(self.failures.iter().cloned())
            .chain(self.neutral.iter().cloned())
            .filter_map(|(c, a)| match a {
                Action::Jump(n) => Some((format!("{c}={n}"), n)),
                _ => None,
            })
            .collect()
    }

    /// The action for a neutral code (`ignore`, `new_authtok_reqd`).
    fn neutral(&self, code: &str) -> Option<&Action> {
        self.neutral.iter().find(|(c, _)| c == code).map(|(_, a)| a)
    }
}

impl Control {
    /// The control as `[value=action]` pairs: the bracket as written, or a
    /// keyword's expansion from pam.conf(5). `None` for include and substack.
    fn pairs(&self) -> Option<Vec<(String, String)>> {
        let expand =
            |list: &[(&str, &str)]| Some(list.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect());
        match self {
            Control::Required => expand(&[
                ("success", "ok"),
                ("new_authtok_reqd", "ok"),
                ("ignore", "ignore"),
                ("default", "bad"),
            ]),
            Control::Requisite => expand(&[
                ("success", "ok"),
                ("new_authtok_reqd", "ok"),
                ("ignore", "ignore"),
                ("default", "die"),
            ]),
            Control::Sufficient => expand(&[("success", "done"), ("new_authtok_reqd", "done"), ("default", "ignore")]),
            Control::Optional => expand(&[("success", "ok"), ("new_authtok_reqd", "ok"), ("default", "ignore")]),
            Control::Include | Control::Substack => None,
            Control::Bracket(pairs) => Some(pairs.clone()),
        }
    }

    /// What the control does with each return code, as libpam applies it:
    /// a return code listed takes its own action (the last one written, as
    /// libpam assigns them in order), every other one the first `default=`
    /// (`bad` without one). `None` for include and substack.
    pub fn reduce(&self) -> Option<Reduction> {
        let mut unclear = Vec::new();
        let mut default: Option<Action> = None;
        let mut listed: Vec<(String, Action)> = Vec::new();
        for (code, word) in self.pairs()? {
            let action = Action::parse(&word);
            match &action {
                Action::Unknown(w) if w.is_empty() => unclear.push(format!("'{code}' has no action")),
                Action::Unknown(w) => unclear.push(format!("unknown action '{code}={w}'")),
                Action::Reset => unclear.push(format!("'{code}=reset' forgets what the lines before decided")),
                _ => {}
            }
            if code == "default" {
                default.get_or_insert(action);
            } else if !RETURN_CODES.contains(&code.as_str()) {
                unclear.push(format!("unknown return code '{code}' (libpam's names are lower case)"));
            } else if let Some(entry) = listed.iter_mut().find(|(c, _)| *c == code) {
                entry.1 = action;
            } else {
                listed.push((code, action));
            }
        }
        let default = default.unwrap_or(Action::Bad);
        let of = |code: &str| {
            listed
                .iter()
                .find(|(c, _)| c == code)
                .map_or_else(|| default.clone(), |(_, a)| a.clone())
        };
        let mut failures: Vec<(String, Action)> = listed
            .iter()
            .filter(|(c, _)| c != "success" && !NEUTRAL_CODES.contains(&c.as_str()))
            .cloned()
            .collect();
        failures.push(("default".into(), default.clone()));
        Some(Reduction {
            success: of("success"),
            failures,
            neutral: NEUTRAL_CODES.iter().map(|c| ((*c).to_string(), of(c))).collect(),
            unclear,
        })
    }

    /// How to name the part of the control that acts on success in a
    /// message: the keyword itself, or the `success=` pair as reduced.
    fn success_part(&self, r: &Reduction) -> String {
        match self {
            Control::Bracket(_) => format!("success={}", r.success.text()),
            other => other.text(),
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
        match self.pam_mfa_args() {
            Ok(a) => a.role,
            Err(_) => self.args.iter().find_map(|a| match a.as_str() {
                "split" => Some(Role::Split),
                "verify" => Some(Role::Verify),
                "app_password" => Some(Role::AppPassword),
                _ => None,
            }),
        }
    }

    /// The arguments as pam_mfa reads them.
    fn pam_mfa_args(&self) -> Result<Args, String> {
        Args::parse(self.args.iter().map(|a| a.as_bytes()))
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
                // As written: libpam matches return codes and actions
                // case-sensitively (`AUTH_ERR=ignore` is not auth_err).
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (p.to_string(), String::new()),
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
    /// The entry came in through a `substack` (at any depth): its `done`
    /// and jumps act inside the substack only.
    pub in_substack: bool,
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
    expand_into(file, text, ty, load, (0, false), &mut out, &mut findings);
    (out, findings)
}

fn expand_into(
    file: &Path,
    text: &str,
    ty: &str,
    load: &mut Loader<'_>,
    (depth, in_substack): (usize, bool),
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
            in_substack,
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
            Ok((path, inner)) => {
                let sub = in_substack || rule.control == Control::Substack;
                expand_into(&path, &inner, ty, load, (depth + 1, sub), out, findings);
            }
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
    findings.extend(check_same_config(&auth, &account));
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
    match p.rule.pam_mfa_args() {
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

fn unclear(p: &Placed, what: &str, why: &str) -> Finding {
    Finding::warning(
        &p.file,
        Some(p.rule.line),
        format!(
            "doctor cannot judge the control {} of the {what} line ({why})",
            p.rule.control.text()
        ),
        "make sure it acts as the recommended control does, or use that keyword",
    )
}

/// Where a jump of `n` modules from the entry at `from` lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landing {
    /// On this index of the stack (`stack.len()`: the end; the stack then
    /// ends with what the lines so far decided).
    At(usize),
    /// Past the end: libpam fails the stack.
    PastEnd,
    /// A substack lies on the way (libpam counts it as one module).
    Unknown,
}

fn landing(stack: &[Placed], from: usize, n: usize) -> Landing {
    if stack.get(from).is_none_or(|p| p.in_substack) {
        return Landing::Unknown;
    }
    let mut left = n;
    for (i, p) in stack.iter().enumerate().skip(from + 1) {
        match p.rule.control {
            Control::Substack => return Landing::Unknown,
            // Included entries follow in place, at the same level.
            Control::Include => continue,
            _ if p.in_substack => return Landing::Unknown,
            _ => {}
        }
        if left == 0 {
            return Landing::At(i);
        }
        left -= 1;
    }
    if left == 0 {
        Landing::At(stack.len())
    } else {
        Landing::PastEnd
    }
}

/// A line whose skipping breaks the login rules, and what skipping it means.
#[derive(Debug, Clone, Copy)]
struct Essential {
    at: usize,
    name: &'static str,
    consequence: &'static str,
}

/// Findings for the jumps a line can take that skip an essential line (or
/// that cannot be followed). `what` names the line in messages.
fn check_jumps(
    stack: &[Placed],
    i: usize,
    r: &Reduction,
    essentials: &[Essential],
    what: &str,
    stack_name: &str,
) -> Vec<Finding> {
    let Some(p) = stack.get(i) else { return Vec::new() };
    let mut out = Vec::new();
    for (word, n) in r.jumps() {
        match landing(stack, i, n) {
            Landing::At(t) => {
                let skipped: Vec<&Essential> = essentials.iter().filter(|e| e.at > i && e.at < t).collect();
                if let Some(first) = skipped.first() {
                    let names: Vec<&str> = skipped.iter().map(|e| e.name).collect();
                    out.push(Finding::error(
                        &p.file,
                        Some(p.rule.line),
                        format!(
                            "the {what} line can jump over the {} ({word}): {}",
                            names.join(" and the "),
                            first.consequence
                        ),
                        format!("do not jump over pam_mfa's lines or the password module ({SEE_EXAMPLE})"),
                    ));
                }
            }
            Landing::PastEnd => {}
            Landing::Unknown => out.push(unclear(
                p,
                what,
                &format!(
                    "the jump {word} crosses a substack; doctor cannot count where it lands in the {stack_name} stack"
                ),
            )),
        }
    }
    out
}

/// The module's file name, for messages.
fn module_name(p: &Placed) -> &str {
    Path::new(&p.rule.module)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(&p.rule.module)
}

/// The stack with split: app_password (optional), split, the password
/// module, verify. Without split, verify with `prompt` asks for the code
/// itself (for applications that show prompts to a person).
fn check_auth(file: &Path, stack: &[Placed]) -> Vec<Finding> {
    let mut out = Vec::new();
    let verifies = find_role(stack, Role::Verify);
    let split = find_role(stack, Role::Split).first().copied();
    let prompt_mode = split.is_none()
        && verifies
            .first()
            .and_then(|&v| stack.get(v))
            .is_some_and(|p| p.rule.has_arg("prompt"));
    if split.is_none() && !prompt_mode {
        out.push(Finding::error(
            file,
            None,
            "the auth stack has no `pam_mfa.so split` line, so no code is ever split off or checked \
             for logins through this service"
                .into(),
            format!(
                "add `auth requisite pam_mfa.so split` before the password module ({SEE_EXAMPLE}); for an \
                 application that shows prompts to a person, `auth required pam_mfa.so verify prompt` after \
                 a requisite password module instead"
            ),
        ));
        return out;
    }

    // The password line: right after split, or right before `verify prompt`.
    let (password_at, verify) = match split {
        Some(s) => {
            let v = verifies.iter().copied().find(|&v| v > s + 1);
            (Some(s + 1), v)
        }
        None => {
            let v = verifies.first().copied();
            (v.and_then(|v| v.checked_sub(1)), v)
        }
    };

    let mut essentials = Vec::new();
    if let Some(s) = split {
        essentials.push(Essential {
            at: s,
            name: "split line",
            consequence: "split never runs, so no code is split off, and what the rest of the stack checks \
                          is not what the rules assume",
        });
    }
    if let Some(pw) = password_at.filter(|&pw| stack.get(pw).is_some_and(|p| !p.rule.is_pam_mfa())) {
        essentials.push(Essential {
            at: pw,
            name: "password line",
            consequence: "the password is never checked, so the code alone logs in",
        });
    }
    if let Some(v) = verify {
        essentials.push(Essential {
            at: v,
            name: "verify line",
            consequence: "the code is never checked, so the password alone logs in",
        });
    }

    if let Some(s) = split {
        out.extend(check_split(stack, s, &essentials));
    }
    for &a in &find_role(stack, Role::AppPassword) {
        out.extend(check_app_password(stack, a, split));
    }
    out.extend(check_password(stack, split, password_at, &essentials));
    out.extend(check_verifies(file, stack, split, password_at, verify, &verifies));

    // Every other line up to verify: nothing may end the stack with
    // success or jump over the lines above.
    let own: Vec<usize> = split.into_iter().chain(password_at).collect();
    let guard = Guard {
        end: verify.unwrap_or(stack.len()),
        own: &own,
        essentials: &essentials,
        stack_name: "auth",
        the_stack: "the stack",
        before: "verify has checked the code",
        substack: "what a substack before verify lets through is not followed by doctor",
        fix: format!(
            "make it requisite or required, or move it after `auth required pam_mfa.so verify` ({SEE_EXAMPLE})"
        ),
    };
    out.extend(check_lines_before(stack, &guard, |i, what| match split {
        Some(s) if i < s => format!(
            "a password {what} accepts logs in without a code, and since split never ran, pam_mfa's account step \
             cannot catch it"
        ),
        Some(_) => "the password alone logs in, the code is never checked".into(),
        None => "the code is never asked for: the password alone logs in".into(),
    }));
    out
}

/// A line the lines before it must not get around (verify in the auth stack,
/// pam_mfa's line in the account stack), with the words its findings use.
struct Guard<'a> {
    /// The guarded line: the lines before it are checked.
    end: usize,
    /// Lines before it that have rules of their own (split, the password line).
    own: &'a [usize],
    essentials: &'a [Essential],
    /// "auth" or "account".
    stack_name: &'a str,
    /// What a success that ends the stack ends.
    the_stack: &'a str,
    /// What that success comes before.
    before: &'a str,
    /// Why a substack among those lines is not judged.
    substack: &'a str,
    /// What to do about a line that ends the stack with success.
    fix: String,
}

/// Findings for the lines before a guarded line (pam_mfa's own lines and
/// the lines in `own` aside): a success that ends the stack early, a jump
/// over an essential line, a substack doctor does not follow. `why` says
/// what an early end lets through, for the line at an index with a name.
fn check_lines_before(stack: &[Placed], g: &Guard<'_>, why: impl Fn(usize, &str) -> String) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, p) in stack.iter().enumerate().take(g.end) {
        if g.own.contains(&i) || p.rule.is_pam_mfa() || p.in_substack {
            continue;
        }
        if p.rule.control == Control::Substack {
            out.push(unclear(p, &format!("substack {}", p.rule.module), g.substack));
            continue;
        }
        let Some(r) = p.rule.control.reduce() else { continue };
        let what = module_name(p);
        let before = out.len();
        if r.on_success() == OnSuccess::End {
            out.push(Finding::error(
                &p.file,
                Some(p.rule.line),
                format!(
                    "{what} can end {} with success ({}) before {}: {}",
                    g.the_stack,
                    p.rule.control.success_part(&r),
                    g.before,
                    why(i, what)
                ),
                g.fix.clone(),
            ));
        }
        out.extend(check_jumps(stack, i, &r, g.essentials, what, g.stack_name));
        if out.len() == before
            && let Some(why) = r.unclear.first()
        {
            out.push(unclear(p, what, why));
        }
    }
    out
}

fn check_split(stack: &[Placed], s: usize, essentials: &[Essential]) -> Vec<Finding> {
    let Some(p) = stack.get(s) else { return Vec::new() };
    let ctl = p.rule.control.text();
    let words = Requisite {
        name: "split",
        fix: "make it: auth requisite pam_mfa.so split",
        ends: &|part| format!("split's success ends the stack ({part}), so any password logs in"),
        ignored: &|codes| {
            format!(
                "split is {ctl}, not requisite: when split refuses a login (a blocked mailbox, a missing code) the \
                 refusal is ignored ({codes}), and the password module and verify still run"
            )
        },
        going_on: &|codes| {
            format!(
                "split is {ctl}, not requisite: when split refuses a login (a blocked mailbox, a missing code), \
                 the password module and verify still run{codes}"
            )
        },
    };
    check_requisite(stack, s, essentials, &words)
}

/// How the findings on a line that must be requisite (split, the password
/// line) name it and say what its control lets happen.
struct Requisite<'a> {
    /// The line, as the shared findings name it.
    name: &'a str,
    fix: &'a str,
    /// Its success ends the stack; given the part of the control that does it.
    ends: &'a dyn Fn(&str) -> String,
    /// A failure does not count; given the `code=action` words.
    ignored: &'a dyn Fn(&str) -> String,
    /// A failure fails the stack, but the lines after it still run; given
    /// ` (code=action ...)` for a bracket, nothing for a keyword.
    going_on: &'a dyn Fn(&str) -> String,
}

/// Findings for a line that must be requisite: a success that ends the
/// stack or fails it, a jump over an essential line, a failure ignored or
/// one after which the stack goes on.
fn check_requisite(stack: &[Placed], i: usize, essentials: &[Essential], words: &Requisite<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(p) = stack.get(i) else { return out };
    let Some(r) = p.rule.control.reduce() else { return out };
    let at = Some(p.rule.line);
    match r.on_success() {
        OnSuccess::End => out.push(Finding::error(
            &p.file,
            at,
            (words.ends)(&p.rule.control.success_part(&r)),
            words.fix,
        )),
        OnSuccess::Fail => out.push(nobody(p, words.name, &r, words.fix)),
        OnSuccess::Continue | OnSuccess::Jump(_) | OnSuccess::Unclear => {}
    }
    out.extend(check_jumps(stack, i, &r, essentials, words.name, "auth"));
    let ignored = r.ignored_failures();
    let going_on = r.failing(|f| f == OnFailure::Fail);
    if !ignored.is_empty() {
        out.push(Finding::error(
            &p.file,
            at,
            (words.ignored)(&ignored.join(" ")),
            words.fix,
        ));
    } else if !going_on.is_empty() {
        let codes = if matches!(p.rule.control, Control::Bracket(_)) {
            format!(" ({})", going_on.join(" "))
        } else {
            String::new()
        };
        out.push(Finding::error(&p.file, at, (words.going_on)(&codes), words.fix));
    }
    if out.is_empty()
        && let Some(why) = r.unclear.first()
    {
        out.push(unclear(p, words.name, why));
    }
    out
}

/// A role line whose success fails the stack.
fn nobody(p: &Placed, what: &str, r: &Reduction, fix: impl Into<String>) -> Finding {
    Finding::error(
        &p.file,
        Some(p.rule.line),
        format!(
            "the {what} line fails the stack when its module succeeds ({}), so nobody can log in",
            p.rule.control.success_part(r)
        ),
        fix,
    )
}

fn check_app_password(stack: &[Placed], a: usize, split: Option<usize>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(p) = stack.get(a) else { return out };
    let at = Some(p.rule.line);
    if split.is_some_and(|s| a > s) {
        out.push(Finding::error(
            &p.file,
            at,
            "app_password comes after split: split has already cut what was typed into password and code, \
             so an app password is not recognised"
                .into(),
            "move the app_password line before the split line",
        ));
    }
    let Some(r) = p.rule.control.reduce() else { return out };
    let fix = "make it: auth sufficient pam_mfa.so app_password";
    match r.on_success() {
        OnSuccess::End => {}
        OnSuccess::Jump(_) | OnSuccess::Unclear => {
            out.push(unclear(
                p,
                "app_password",
                r.unclear.first().map_or("a jump on success", String::as_str),
            ));
            return out;
        }
        OnSuccess::Continue | OnSuccess::Fail => {
            out.push(Finding::error(
                &p.file,
                at,
                format!(
                    "app_password is {}, not sufficient: an accepted app password does not end the stack, so the \
                     password module then checks it as the mailbox password and app passwords never work",
                    p.rule.control.text()
                ),
                fix,
            ));
            return out;
        }
    }
    // app_password returns PAM_IGNORE for anything that is not an app password.
    if let Some(action) = r.neutral("ignore")
        && matches!(action, Action::Bad | Action::Die | Action::Ok)
    {
        out.push(Finding::error(
            &p.file,
            at,
            format!(
                "app_password is {}: its PAM_IGNORE (the typed string is not an app password) fails the stack \
                 (ignore={}), so only app passwords log in",
                p.rule.control.text(),
                action.text()
            ),
            fix,
        ));
    } else if let Some(why) = r.unclear.first() {
        out.push(unclear(p, "app_password", why));
    }
    out
}

fn check_password(
    stack: &[Placed],
    split: Option<usize>,
    password_at: Option<usize>,
    essentials: &[Essential],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let split_line = split.and_then(|s| stack.get(s));
    let Some(p) = password_at.and_then(|pw| stack.get(pw)) else {
        // Split mode: split is the last line. Prompt mode: verify is the first.
        let (place, message) = match split_line {
            Some(s) => (
                s,
                "nothing follows split in the auth stack: the password is never checked",
            ),
            None => match stack.iter().find(|p| p.rule.is_pam_mfa()) {
                Some(v) => (v, "no password module comes before verify: the code alone logs in"),
                None => return out,
            },
        };
        out.push(Finding::error(
            &place.file,
            Some(place.rule.line),
            message.into(),
            format!("add the password module (requisite) before verify ({SEE_EXAMPLE})"),
        ));
        return out;
    };
    let at = Some(p.rule.line);
    if p.rule.is_include() {
        out.push(Finding::warning(
            &p.file,
            at,
            format!(
                "the password is checked through an include ({}); doctor cannot judge the password check through \
                 an include",
                p.rule.module
            ),
            "make sure a wrong password ends the stack (requisite) and the password module uses use_first_pass",
        ));
        return out;
    }
    if p.rule.is_pam_mfa() {
        out.push(Finding::error(
            &p.file,
            at,
            if split.is_some() {
                "no password module between split and this pam_mfa line: the password is never checked".into()
            } else {
                "no password module comes before verify: the code alone logs in".into()
            },
            if split.is_some() {
                "add your password module (e.g. `auth requisite pam_unix.so use_first_pass`) right after split"
            } else {
                "add your password module (e.g. `auth requisite pam_unix.so`) right before verify"
            },
        ));
        return out;
    }
    let module = &p.rule.module;
    let ctl = p.rule.control.text();
    let fix = format!("make it: auth requisite {module} ...");
    let words = Requisite {
        name: "password",
        fix: &fix,
        ends: &|part| {
            format!(
                "the password module {module} ends the stack on success ({part}): a right password ends it before \
                 verify, so the code is never checked"
            )
        },
        ignored: &|codes| {
            format!(
                "the password module {module} is {ctl}: a wrong password does not stop the login ({codes}), so the \
                 code alone logs in, and wrong passwords reach verify's failure counter (lock-out)"
            )
        },
        going_on: &|codes| {
            format!(
                "the password module {module} is {ctl}, not requisite: after a wrong password verify still runs and \
                 counts a failed code{codes}, so anyone who knows a mailbox name can lock its owner out"
            )
        },
    };
    if let Some(pw) = password_at {
        out.extend(check_requisite(stack, pw, essentials, &words));
    }
    if split.is_some() && !p.rule.has_arg("use_first_pass") && !p.rule.has_arg("try_first_pass") {
        out.push(Finding::error(
            &p.file,
            at,
            format!(
                "the password module {module} has no use_first_pass: it does not check the password split off by \
                 pam_mfa but asks again, and the mail server answers with the whole password+code"
            ),
            format!("add use_first_pass to the arguments of {module}"),
        ));
    }
    out
}

fn check_verifies(
    file: &Path,
    stack: &[Placed],
    split: Option<usize>,
    password_at: Option<usize>,
    verify: Option<usize>,
    verifies: &[usize],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let fix = "make it: auth required pam_mfa.so verify";
    match verify.and_then(|v| stack.get(v)) {
        Some(p) => {
            if let Some(r) = p.rule.control.reduce() {
                let at = Some(p.rule.line);
                let ignored = r.ignored_failures();
                if r.on_success() == OnSuccess::Fail {
                    out.push(nobody(p, "verify", &r, fix));
                }
                if !ignored.is_empty() {
                    let codes = |c: &str| ignored.iter().any(|w| w.starts_with(&format!("{c}=")));
                    let why = if codes("default") || codes("auth_err") {
                        "a wrong code does not fail the login, so the password and any six digits log in"
                    } else if codes("maxtries") {
                        "during a back-off or a block (PAM_MAXTRIES) no code is needed: the password alone logs in"
                    } else {
                        "when verify refuses the login this way, the password alone logs in"
                    };
                    out.push(Finding::error(
                        &p.file,
                        at,
                        format!("verify is {} ({}): {why}", p.rule.control.text(), ignored.join(" ")),
                        fix,
                    ));
                } else if let Some(why) = r.unclear.first().filter(|_| out.is_empty()) {
                    out.push(unclear(p, "verify", why));
                }
            }
        }
        // A verify right after split is already reported as "no password module".
        None if password_at.is_some_and(|pw| verifies.contains(&pw)) => {}
        // Prompt mode without verify cannot happen; split mode:
        None if split.is_none() => {}
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
    // A second verify sees the code the first one accepted as a replay. (A
    // line whose arguments pam_mfa refuses already has its own error.)
    for p in verifies
        .iter()
        .skip(1)
        .filter_map(|&v| stack.get(v))
        .filter(|p| p.rule.pam_mfa_args().is_ok())
    {
        out.push(Finding::error(
            &p.file,
            Some(p.rule.line),
            "a second verify line: the code the first one accepted is refused here as a replay, so nobody can \
             log in"
                .into(),
            "keep one `auth required pam_mfa.so verify` line, after the password module",
        ));
    }
    out
}

fn check_account(file: &Path, stack: &[Placed]) -> Vec<Finding> {
    let mut out = Vec::new();
    let ours: Vec<usize> = stack
        .iter()
        .enumerate()
        .filter(|(_, p)| p.rule.is_pam_mfa())
        .map(|(i, _)| i)
        .collect();
    let Some(&first) = ours.first() else {
        out.push(Finding::error(
            file,
            None,
            "there is no `account` line for pam_mfa.so: Dovecot always calls pam_acct_mgmt, and pam_mfa's account \
             step is what refuses a blocked mailbox and catches a broken auth stack"
                .into(),
            "add: account required pam_mfa.so",
        ));
        return out;
    };
    let ours_line = Essential {
        at: first,
        name: "pam_mfa account line",
        consequence: "pam_mfa's account step never runs, which switches off the refusal of blocked mailboxes and \
                      of logins that no verify line accepted (pam_mfa(8))",
    };
    let guard = Guard {
        end: first,
        own: &[],
        essentials: std::slice::from_ref(&ours_line),
        stack_name: "account",
        the_stack: "the account stack",
        before: "pam_mfa's account line",
        substack: "whether it can end the account stack before pam_mfa's line is not followed by doctor",
        fix: "put `account required pam_mfa.so` first in the account stack, or make this line required".into(),
    };
    out.extend(check_lines_before(stack, &guard, |_, _| ours_line.consequence.into()));
    for p in ours.iter().filter_map(|&i| stack.get(i)) {
        let Some(r) = p.rule.control.reduce() else { continue };
        let fix = "make it: account required pam_mfa.so";
        let ignored = r.ignored_failures();
        if r.on_success() == OnSuccess::Fail {
            out.push(nobody(p, "pam_mfa account", &r, fix));
        }
        if !ignored.is_empty() {
            out.push(Finding::error(
                &p.file,
                Some(p.rule.line),
                format!(
                    "the pam_mfa account line is {}: its refusal (blocked mailbox, broken auth stack) is ignored ({})",
                    p.rule.control.text(),
                    ignored.join(" ")
                ),
                fix,
            ));
        } else if let Some(why) = r.unclear.first() {
            out.push(unclear(p, "account", why));
        }
    }
    out
}

/// pam_mfa refuses every login when its lines name different configuration
/// files (no `config=` means the default path).
fn check_same_config(auth: &[Placed], account: &[Placed]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut first: Option<(PathBuf, &Placed)> = None;
    for p in auth.iter().chain(account).filter(|p| p.rule.is_pam_mfa()) {
        let Ok(args) = p.rule.pam_mfa_args() else {
            continue;
        };
        let path = config::source(args.config.as_deref()).0.to_path_buf();
        match &first {
            None => first = Some((path, p)),
            Some((seen, at)) if *seen != path => out.push(Finding::error(
                &p.file,
                Some(p.rule.line),
                format!(
                    "this pam_mfa line reads the configuration {}, an earlier one ({}:{}) reads {}: pam_mfa refuses \
                     every login when its lines name different configuration files",
                    path.display(),
                    at.file.display(),
                    at.rule.line,
                    seen.display()
                ),
                "give every pam_mfa line of the service the same config= (or none)",
            )),
            Some(_) => {}
        }
    }
    out
}

/// The configuration files the pam_mfa lines of a service name with
/// `config=`, in order, without repeats.
pub fn named_configs(file: &Path, text: &str, load: &mut Loader<'_>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for ty in ["auth", "account"] {
        for p in expand(file, text, ty, load).0 {
            if !p.rule.is_pam_mfa() {
                continue;
            }
            if let Ok(Args { config: Some(c), .. }) = p.rule.pam_mfa_args()
                && !out.contains(&c)
            {
                out.push(c);
            }
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
pub fn check_config(named: Option<&Path>) -> (Option<AnyStore>, Vec<Finding>) {
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
    let mut findings = Vec::new();
    if let Some(sms) = &cfg.sms
        && let Err(e) = crate::deliver::check_trusted(&sms.command, crate::ffi::sys::effective_uid())
    {
        findings.push(Finding::error(
            path,
            None,
            format!("{e}; no code can be texted, so logins of mailboxes with a number are refused"),
            "install the delivery command owned by root, mode 0755, in folders only root can write to (see [sms] \
             in pam_mfa.toml(5))",
        ));
    }
    match AnyStore::open(&cfg, owner) {
        Ok(store) => (Some(store), findings),
        Err(e) => {
            findings.push(store_finding(&e));
            (None, findings)
        }
    }
}

/// A store error as a finding: the message splits into what and what to do
/// at its first `; ` (the store's messages are written that way).
fn store_finding(e: &StoreError) -> Finding {
    let (path, text) = match e {
        StoreError::Conflict { .. } | StoreError::ChangedDuringLogin { .. } => {
            let text = e.to_string();
            let (message, fix) = text.split_once("; ").unwrap_or((&text, ""));
            return Finding::new(Level::Error, None, None, message.to_string(), fix);
        }
        StoreError::Unreachable { .. }
        | StoreError::Database { .. }
        | StoreError::TooLarge { .. }
        | StoreError::DamagedRow { .. }
        | StoreError::SchemaVersion { .. }
        | StoreError::ReadOnly { .. }
        | StoreError::Key { .. } => {
            let text = e.to_string();
            let (message, fix) = text.split_once("; ").unwrap_or((&text, ""));
            return Finding::new(Level::Error, None, None, message.to_string(), fix);
        }
        StoreError::Missing { path, what } => (
            path,
            format!(
                "{what} is missing, so pam_mfa refuses every login; if the store is on another disk or share, mount \
                 it (and check `store =` in the configuration); on a new install run: mfa-ctl store init"
            ),
        ),
        StoreError::Unsafe { path, why } => (path, format!("pam_mfa refuses to use it, and so every login: {why}")),
        StoreError::Damaged { path, .. } | StoreError::Io { path, .. } | StoreError::NotAStore { path, .. } => {
            (path, e.to_string())
        }
    };
    let (message, fix) = text.split_once("; ").unwrap_or((&text, ""));
    Finding::error(path, None, message.to_string(), fix)
}

/// The store: everything [`Backend::check_ready`] checks, and for a file
/// store the marker's content and folders others can read (they would see
/// which mailboxes use MFA).
pub fn check_store(store: &AnyStore) -> Vec<Finding> {
    if let Err(e) = store.check_ready() {
        return vec![store_finding(&e)];
    }
    let Some(store) = store.files() else {
        return Vec::new();
    };
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
    pub store: Option<String>,
    pub pam_files: Vec<PathBuf>,
    /// Other configuration files named with `config=` in the service files
    /// that were loaded and whose stores were checked too.
    pub configs: Vec<PathBuf>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Error).count()
    }

    pub fn warnings(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Warning).count()
    }
}

/// Runs every check. `Err` when doctor cannot run at all: the configuration
/// named with `--config` does not exist, or a named service file or the
/// PAM folder cannot be read.
pub fn run(opts: &Options) -> Result<Report, String> {
    let mut report = Report::default();
    if let Some(named) = opts.config.as_deref()
        && let Err(e) = std::fs::metadata(named)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Err(format!(
            "the configuration {} named with --config does not exist (or is a dangling symbolic link): fix the \
             path, or create the file (packaging/pam_mfa.toml lists every key)",
            named.display()
        ));
    }
    let (store, findings) = check_config(opts.config.as_deref());
    report.findings.extend(findings);
    if let Some(store) = store {
        report.findings.extend(check_store(&store));
        report.store = Some(store.describe());
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
    let main_config = config::source(opts.config.as_deref()).0.to_path_buf();
    for (file, text) in &services {
        if names_pam_mfa(text) {
            report.findings.extend(check_service(file, text, &mut load, &exists));
            // The configurations the lines name: each is loaded, and its
            // store checked, as pam_mfa will (a missing one is reported at
            // its line above).
            for cfg in named_configs(file, text, &mut load) {
                if cfg == main_config || report.configs.contains(&cfg) || !exists(&cfg) {
                    continue;
                }
                let (store, findings) = check_config(Some(&cfg));
                report.findings.extend(findings);
                if let Some(store) = store {
                    report.findings.extend(check_store(&store));
                }
                report.configs.push(cfg);
            }
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

    /// Checks with one included file, `extra`, that holds `extra`.
    fn check_with_extra(text: &str, extra: &str) -> Vec<Finding> {
        let mut load = |name: &str| match name {
            "extra" => Ok((PathBuf::from("/p/extra"), extra.to_string())),
            other => Err(format!("{other}: no such file")),
        };
        check_service(Path::new("svc"), text, &mut load, &|_| true)
    }

    #[track_caller]
    fn has_in(findings: &[Finding], level: Level, line: Option<usize>, piece: &str) {
        assert!(
            findings
                .iter()
                .any(|f| f.level == level && f.line == line && f.message.contains(piece)),
            "no {level:?} at {line:?} containing {piece:?} in {findings:#?}"
        );
    }

    #[track_caller]
    fn has(text: &str, level: Level, line: Option<usize>, piece: &str) {
        has_in(&check(text), level, line, piece);
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
        // Not requisite: its success ends the stack (see control_reduction).
        let r = rules[0].control.reduce().unwrap();
        assert_eq!((r.on_success(), r.every_failure_ends()), (OnSuccess::End, true));
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

    fn reduce(control: &str) -> Reduction {
        parse_pam(&format!("auth {control} x.so"))
            .remove(0)
            .unwrap()
            .control
            .reduce()
            .unwrap()
    }

    /// (on success, each failure as `code=action` with what it does) of a control.
    fn shape(control: &str) -> (OnSuccess, Vec<(String, OnFailure)>) {
        let r = reduce(control);
        let failures = r
            .failures
            .iter()
            .map(|(c, a)| (format!("{c}={}", a.text()), a.on_failure()))
            .collect();
        (r.on_success(), failures)
    }

    fn f(word: &str, on: OnFailure) -> (String, OnFailure) {
        (word.to_string(), on)
    }

    #[test]
    fn control_reduction_of_the_keywords() {
        use OnFailure::*;
        for (kw, success, failure) in [
            ("required", OnSuccess::Continue, f("default=bad", Fail)),
            ("Requisite", OnSuccess::Continue, f("default=die", End)),
            ("sufficient", OnSuccess::End, f("default=ignore", Ignored)),
            ("optional", OnSuccess::Continue, f("default=ignore", Ignored)),
        ] {
            assert_eq!(shape(kw), (success, vec![failure]), "{kw}");
            let r = reduce(kw);
            assert!(r.jumps().is_empty() && r.unclear.is_empty(), "{kw}: {r:?}");
        }
        assert!(reduce("requisite").every_failure_ends());
        assert!(!reduce("required").every_failure_ends());
        assert!(reduce("required").every_failure_fails());
        assert!(!reduce("optional").every_failure_fails());
        // The neutral codes of the expansions are harmless: no jump, nothing unclear.
        assert_eq!(reduce("requisite").neutral("ignore"), Some(&Action::Ignore));
        assert_eq!(reduce("sufficient").neutral("new_authtok_reqd"), Some(&Action::Done));
        assert!(Control::Include.reduce().is_none());
    }

    #[test]
    fn control_reduction_of_brackets() {
        use OnFailure::*;
        // The keywords written out reduce as the keywords do.
        assert_eq!(
            shape("[success=ok new_authtok_reqd=ok ignore=ignore default=die]"),
            shape("requisite")
        );
        assert_eq!(
            shape("[success=done new_authtok_reqd=done default=ignore]"),
            shape("sufficient")
        );
        // A listed return code takes its own action, not default's.
        assert_eq!(
            shape("[success=ok auth_err=ignore default=die]"),
            (
                OnSuccess::Continue,
                vec![f("auth_err=ignore", Ignored), f("default=die", End)]
            )
        );
        assert_eq!(
            shape("[success=ok maxtries=ignore default=bad]").1,
            [f("maxtries=ignore", Ignored), f("default=bad", Fail)]
        );
        // No default: every other code is bad, success included.
        assert_eq!(
            shape("[auth_err=die]"),
            (OnSuccess::Fail, vec![f("auth_err=die", End), f("default=bad", Fail)])
        );
        assert_eq!(shape("[success=ok]").1, [f("default=bad", Fail)]);
        // Jumps.
        assert_eq!(shape("[success=1 default=die]").0, OnSuccess::Jump(1));
        assert_eq!(
            shape("[success=ok auth_err=2 default=die]").1[0],
            f("auth_err=2", Jump(2))
        );
        assert_eq!(
            reduce("[success=ok ignore=3 default=die]").jumps(),
            [("ignore=3".to_string(), 3)]
        );
        // libpam: `ok` on a failure records it (the login fails), `done`
        // ends the stack with it.
        assert_eq!(shape("[success=ok default=ok]").1, [f("default=ok", Fail)]);
        assert_eq!(shape("[success=ok default=done]").1, [f("default=done", End)]);
        // The first default counts, the last of a listed code.
        assert_eq!(
            shape("[success=ok default=die default=ignore]").1,
            [f("default=die", End)]
        );
        assert_eq!(
            shape("[auth_err=die auth_err=ignore default=die]").1[0],
            f("auth_err=ignore", Ignored)
        );
        // What cannot be judged.
        for c in [
            "[success=ok default=reset]",
            "[success=ok default=frob]",
            "[success=ok AUTH_ERR=ignore default=die]",
            "[success=ok auth_err=0 default=die]",
            "[success default=die]",
        ] {
            assert!(!reduce(c).unclear.is_empty(), "{c}");
        }
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
        for (from, to, level, line, piece) in [
            (
                "requisite   pam_pwdfile",
                "required pam_pwdfile",
                Level::Error,
                4,
                "lock its owner out",
            ),
            (
                "requisite   pam_pwdfile",
                "sufficient pam_pwdfile",
                Level::Error,
                4,
                "never checked",
            ),
            (
                "requisite   pam_mfa.so split",
                "required pam_mfa.so split",
                Level::Error,
                3,
                "not requisite",
            ),
            (
                "requisite   pam_mfa.so split",
                "sufficient pam_mfa.so split",
                Level::Error,
                3,
                "any password logs in",
            ),
            (
                "required    pam_mfa.so verify",
                "sufficient pam_mfa.so verify",
                Level::Error,
                5,
                "any six digits",
            ),
            (
                "sufficient  pam_mfa.so app_password",
                "required pam_mfa.so app_password",
                Level::Error,
                2,
                "not sufficient",
            ),
            ("account  required", "account optional", Level::Error, 6, "is ignored"),
            (
                "required    pam_mfa.so verify",
                "[success=1 default=ignore] pam_mfa.so verify",
                Level::Error,
                5,
                "any six digits",
            ),
            (
                "required    pam_mfa.so verify",
                "[success=ok default=reset] pam_mfa.so verify",
                Level::Warning,
                5,
                "cannot judge",
            ),
        ] {
            has(&GOOD.replace(from, to), level, Some(line), piece);
        }
    }

    /// The stacks the second review found passing (each exploitable through libpam).
    #[test]
    fn reviewed_bypasses_are_errors() {
        // 1. split jumps over the password line: the code alone logs in.
        has(
            &GOOD.replace(
                "requisite   pam_mfa.so split",
                "[success=1 default=die] pam_mfa.so split",
            ),
            Level::Error,
            Some(3),
            "jump over the password line (success=1): the password is never checked",
        );
        // 2. A wrong password ignored.
        has(
            &GOOD.replace(
                "requisite   pam_pwdfile",
                "[success=ok auth_err=ignore default=die] pam_pwdfile",
            ),
            Level::Error,
            Some(4),
            "a wrong password does not stop the login (auth_err=ignore), so the code alone logs in",
        );
        // 3. A line before split that can end the stack.
        let early = GOOD.replace(
            "auth     requisite   pam_mfa.so split",
            "auth sufficient pam_unix.so\nauth     requisite   pam_mfa.so split",
        );
        has(
            &early,
            Level::Error,
            Some(3),
            "pam_unix.so can end the stack with success (sufficient) before verify",
        );
        has(&early, Level::Error, Some(3), "split never ran");
        // 4. verify ignores PAM_MAXTRIES, the account line PAM_PERM_DENIED.
        let backoff = GOOD
            .replace(
                "required    pam_mfa.so verify",
                "[success=ok maxtries=ignore default=bad] pam_mfa.so verify",
            )
            .replace(
                "account  required    pam_mfa.so",
                "account [success=ok perm_denied=ignore default=bad] pam_mfa.so\naccount required pam_permit.so",
            );
        has(&backoff, Level::Error, Some(5), "maxtries=ignore");
        has(&backoff, Level::Error, Some(5), "no code is needed");
        has(&backoff, Level::Error, Some(6), "is ignored (perm_denied=ignore)");
        // 5. done on success of split and of the password line.
        let done = GOOD
            .replace(
                "requisite   pam_mfa.so split",
                "[success=done default=die] pam_mfa.so split",
            )
            .replace("requisite   pam_pwdfile", "[success=done default=die] pam_pwdfile");
        has(
            &done,
            Level::Error,
            Some(3),
            "split's success ends the stack (success=done)",
        );
        has(&done, Level::Error, Some(4), "the code is never checked");
        // 6. A sufficient line between the password line and verify.
        let between = GOOD.replace(
            "auth     required    pam_mfa.so verify",
            "auth sufficient pam_permit.so\nauth     required    pam_mfa.so verify",
        );
        has(&between, Level::Error, Some(5), "the password alone logs in");
        // 7. An account line that ends the account stack before pam_mfa's.
        let account = GOOD.replace(
            "account  required    pam_mfa.so",
            "account sufficient pam_permit.so\naccount  required    pam_mfa.so",
        );
        has(&account, Level::Error, Some(6), "before pam_mfa's account line");
        // 8. verify twice.
        has(
            &format!("{GOOD}auth required pam_mfa.so verify\n"),
            Level::Error,
            Some(7),
            "second verify line",
        );
        // 9. Different config= files (the default path counts as one).
        let two = GOOD.replace("pam_mfa.so verify", "pam_mfa.so verify config=/etc/other.toml");
        has(&two, Level::Error, Some(5), "different configuration files");
        let same = GOOD.replace("pam_mfa.so", "pam_mfa.so config=/etc/pam_mfa.toml");
        assert_eq!(check(&same), []);
    }

    #[test]
    fn harmless_brackets_and_jumps_pass() {
        // A jump before split that lands before split skips nothing pam_mfa needs.
        let jump = GOOD.replace(
            "auth     requisite   pam_mfa.so split",
            "auth [success=1 default=ignore] pam_succeed_if.so user ingroup mail\n\
             auth requisite pam_deny.so\nauth     requisite   pam_mfa.so split",
        );
        assert_eq!(check(&jump), []);
        // A jump past the end of the stack fails the login (libpam).
        let past = GOOD.replace(
            "auth     requisite   pam_mfa.so split",
            "auth [success=9 default=ignore] pam_succeed_if.so user ingroup mail\nauth     requisite   pam_mfa.so split",
        );
        assert_eq!(check(&past), []);
        // `done` on a failure ends the stack failed, like die.
        let done = GOOD.replace("requisite   pam_pwdfile", "[success=ok default=done] pam_pwdfile");
        assert_eq!(check(&done), []);
        // sufficient after verify, and optional lines before split.
        let more = GOOD
            .replace(
                "auth     requisite   pam_mfa.so split",
                "auth optional pam_env.so\nauth     requisite   pam_mfa.so split",
            )
            .replace(
                "account  required    pam_mfa.so",
                "account  required    pam_mfa.so\naccount sufficient pam_permit.so",
            );
        assert_eq!(check(&format!("{more}auth sufficient pam_permit.so\n")), []);
        // Lines of a substack end only the substack: not judged, but said so.
        let sub = GOOD.replace(
            "auth     requisite   pam_mfa.so split",
            "auth substack extra\nauth     requisite   pam_mfa.so split",
        );
        let f = check_with_extra(&sub, "auth sufficient pam_permit.so\n");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].level, f[0].line), (Level::Warning, Some(3)), "{f:#?}");
    }

    #[test]
    fn jumps_that_cannot_be_followed_are_warnings() {
        let text = GOOD.replace(
            "auth     requisite   pam_mfa.so split",
            "auth [success=2 default=ignore] pam_succeed_if.so user ingroup mail\nauth substack extra\n\
             auth     requisite   pam_mfa.so split",
        );
        let f = check_with_extra(&text, "auth required pam_env.so\n");
        has_in(&f, Level::Warning, Some(3), "crosses a substack");
        assert!(f.iter().all(|f| f.level == Level::Warning), "{f:#?}");
    }

    #[test]
    fn verify_prompt_without_split() {
        let prompt =
            "auth requisite pam_unix.so\nauth required pam_mfa.so verify prompt\naccount required pam_mfa.so\n";
        assert_eq!(check(prompt), []);
        for (text, line, piece) in [
            (prompt.replace("requisite", "required"), Some(1), "lock its owner out"),
            (
                prompt.replace("requisite", "sufficient"),
                Some(1),
                "the code is never checked",
            ),
            (
                prompt.replace("auth requisite pam_unix.so\n", ""),
                Some(1),
                "no password module comes before verify",
            ),
            (
                prompt.replace("required pam_mfa.so verify", "optional pam_mfa.so verify"),
                Some(2),
                "any six digits",
            ),
            (
                format!("auth sufficient pam_permit.so\n{prompt}"),
                Some(1),
                "the code is never asked for",
            ),
            // Without prompt, verify has no code: "no split line".
            (prompt.replace(" prompt", ""), None, "no `pam_mfa.so split`"),
        ] {
            has(&text, Level::Error, line, piece);
        }
    }

    #[test]
    fn missing_and_misplaced_lines() {
        let late = "auth requisite pam_mfa.so split\nauth sufficient pam_mfa.so app_password\n\
                    auth requisite pam_unix.so use_first_pass\nauth required pam_mfa.so verify\naccount required pam_mfa.so\n";
        let no_password =
            "auth requisite pam_mfa.so split\nauth required pam_mfa.so verify\naccount required pam_mfa.so\n";
        let early = "auth required pam_mfa.so verify\nauth requisite pam_mfa.so split\n\
                     auth requisite pam_unix.so use_first_pass\naccount required pam_mfa.so\n";
        for (text, line, piece) in [
            (
                GOOD.replace("auth     required    pam_mfa.so verify\n", ""),
                None,
                "no `pam_mfa.so verify`",
            ),
            (
                GOOD.replace("account  required    pam_mfa.so\n", ""),
                None,
                "no `account` line",
            ),
            (
                GOOD.replace("auth     requisite   pam_mfa.so split\n", ""),
                None,
                "no `pam_mfa.so split`",
            ),
            (late.to_string(), Some(2), "after split"),
            (GOOD.replace(" use_first_pass", ""), Some(4), "no use_first_pass"),
            (no_password.to_string(), Some(2), "no password module"),
            (early.to_string(), Some(1), "before split"),
        ] {
            has(&text, Level::Error, line, piece);
        }
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
        has_in(&f, Level::Error, Some(5), "/nowhere/x.toml does not exist");
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
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!((f[0].level, f[0].line), (Level::Warning, Some(3)));
        assert!(f[0].message.contains("through an include"), "{f:#?}");
        // The included line is judged where it is: its success skips the
        // next module, which is verify.
        assert_eq!(
            (f[1].level, f[1].file.as_deref(), f[1].line),
            (Level::Error, Some(Path::new("/p/common-auth")), Some(1))
        );
        assert!(f[1].message.contains("jump over the verify line"), "{f:#?}");

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
        has_in(&f, Level::Warning, Some(7), "cannot be read");
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
