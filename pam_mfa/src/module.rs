//! The PAM roles (`app_password`, `split`, `verify`, and the account hook),
//! written against [`PamApi`], a safe view of a PAM handle. They gather the
//! request, call the pure decision in [`crate::decide`] under the mailbox
//! lock, write the new state and log the outcome. The unsafe glue that
//! implements [`PamApi`] for a real handle is in [`crate::ffi::pam`].
//!
//! One login runs up to four of these calls on one handle; what one call
//! learned (configuration, policy, record, the verdict) is left in a
//! [`Memo`] on the handle, so a login loads the configuration and reads the
//! record once.

use crate::app_password;
use crate::args::{Args, Role};
use crate::clock;
use crate::config::Config;
use crate::decide::{self, Accept, AppDecision, Outcome, Refusal, Request};
use crate::lockout::Lock;
use crate::log::{Level, Logger};
use crate::mailbox::Mailbox;
use crate::policy::{DomainPolicy, NoCodeReason};
use crate::recovery;
use crate::secret::{SecretBytes, SecretString};
use crate::split::{self, Factor};
use crate::store::any::{AnyOpened, AnyStore};
use crate::store::backend::{Backend, MailboxLock, OpenedMailbox};
use crate::store::records::{MailboxRecord, MailboxState};
use crate::store::{Durability, OnMissing, StoreError};
use crate::webmail;
use pam::constants::PamResultCode as Code;
use std::path::PathBuf;

/// What the roles need from a PAM handle.
pub trait PamApi {
    /// PAM_USER (asking through the conversation if unset), as raw bytes.
    fn user(&mut self) -> Result<Vec<u8>, Code>;
    fn service(&self) -> Option<String>;
    fn rhost(&self) -> Option<String>;
    /// PAM_AUTHTOK, asking "Password: " through the conversation if unset.
    fn authtok(&mut self) -> Result<SecretBytes, Code>;
    fn set_authtok(&mut self, tok: &[u8]) -> Result<(), Code>;
    /// Sets PAM_USER, so the modules after this one judge that account.
    fn set_user(&mut self, user: &str) -> Result<(), Code>;
    /// Leaves a [`Memo`] on the handle for the later calls (pam_set_data).
    fn set_memo(&mut self, memo: Memo) -> Result<(), Code>;
    /// The [`Memo`] an earlier call of this login left, if any.
    fn memo(&self) -> Option<Memo>;
    /// Asks a hidden question through the conversation.
    fn ask_hidden(&mut self, prompt: &str) -> Result<SecretBytes, Code>;
    /// Requests a failure delay from libpam (applied only if the stack fails).
    fn fail_delay(&mut self, usec: u32);
}

/// What earlier calls of the same login learned. Only this module's own
/// calls write it, inside one process, for one PAM handle.
#[derive(Clone, Default)]
pub struct Memo {
    /// The configuration and the file it came from.
    config: Option<(PathBuf, Config)>,
    /// The mailbox the fields below are about (a module in between could
    /// change PAM_USER; then they are ignored).
    mailbox: Option<Mailbox>,
    /// What `split` found, for `verify`.
    split: Option<SplitFound>,
    /// The mailbox file `split` read, still open for `verify`.
    opened: Option<std::sync::Arc<AnyOpened>>,
    /// An accepting call found the mailbox not blocked, so `account` has
    /// nothing to read.
    account_ok: bool,
    /// How far this login's auth lines got. Kept when PAM_USER changes: it
    /// is about the stack, not about one mailbox.
    progress: Progress,
}

/// What `split` read and cut off, so `verify` decides on the same view
/// without reading the policy and record again.
#[derive(Clone)]
struct SplitFound {
    policy: DomainPolicy,
    /// `None`: the store has no file for the mailbox.
    record: Option<MailboxRecord>,
    /// The code cut off the typed string; `None` if none was typed (or none
    /// was needed, and the string went on whole).
    factor: Option<Factor>,
    /// The typed string's keyed hash, when the login comes from a webmail
    /// server (see `webmail`).
    webmail_tag: Option<String>,
}

/// What `account` needs to know about the auth lines that ran before it:
/// `split` cut a code off, so a `verify` line must have accepted the login.
/// If none ran (no verify line) or one refused and the stack still passed
/// (a `sufficient` or `optional` verify), password + any digits would log
/// in; `account` refuses that instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Progress {
    #[default]
    NoSplit,
    Split,
    VerifyRefused,
    VerifyAccepted,
}

/// Everything a role needs, gathered once.
struct Ctx {
    log: Logger,
    cfg: Config,
    store: AnyStore,
    mailbox: Mailbox,
    service: String,
    rhost: Option<String>,
    now: u64,
}

impl Ctx {
    fn request(&self) -> Request<'_> {
        Request {
            mailbox: self.mailbox.as_str(),
            service: &self.service,
            rhost: self.rhost.as_deref(),
            now: self.now,
            webmail_tag: None,
            new_sms_code: None,
        }
    }

    fn who(&self) -> String {
        format!(
            "mailbox={} service={} rhost={}",
            self.mailbox,
            self.service,
            self.rhost.as_deref().unwrap_or("-")
        )
    }

    fn store_failed(&self, role: &str, e: &StoreError) -> Code {
        let who = self.who();
        if e.is_unavailable() && !explain_unavailable_now(self.now) {
            // A database that is down refuses every login: one line each,
            // and what to do only once a minute, not a flood of the same.
            self.log.err(&format!(
                "{role}: {who} result=refused reason=\"store unavailable\" (see the last \"store error\" line)"
            ));
        } else {
            self.log
                .err(&format!("{role}: {who} result=refused reason=\"store error\": {e}"));
        }
        Code::PAM_AUTHINFO_UNAVAIL
    }
}

/// Whether an unavailable store should be explained in full now: at most
/// once a minute per process.
fn explain_unavailable_now(now: u64) -> bool {
    static LAST: std::sync::Mutex<Option<u64>> = std::sync::Mutex::new(None);
    let Ok(mut last) = LAST.lock() else {
        return true;
    };
    match *last {
        Some(t) if now >= t && now - t < 60 => false,
        _ => {
            *last = Some(now);
            true
        }
    }
}

/// Reads arguments, configuration, clock, user and items; on any problem logs
/// why and returns the PAM code to give back (always a refusal).
fn gather(pam: &mut dyn PamApi, args: &[&[u8]]) -> Result<(Args, Ctx, Memo), Code> {
    let parsed = Args::parse(args.iter().copied());
    let args = match parsed {
        Ok(a) => a,
        Err(e) => {
            Logger::new(None, false).err(&format!("bad module arguments in the PAM service file: {e}"));
            return Err(Code::PAM_SERVICE_ERR);
        }
    };
    let log = Logger::new(args.log_socket.clone(), args.debug);
    if args.fail_delay_ms > 0 {
        // Asked for up front by every role: libpam applies the longest delay
        // requested only when the whole stack fails, so a wrong password and
        // a wrong code take the same time.
        pam.fail_delay(args.fail_delay_ms.saturating_mul(1000));
    }
    let mut memo = pam.memo().unwrap_or_default();
    let (config_path, if_missing) = crate::config::source(args.config.as_deref());
    let cfg = match &memo.config {
        Some((path, cfg)) if path == config_path => cfg.clone(),
        // The lines of one login read two stores or two policies: whatever
        // `verify` then decides rests on what another configuration said.
        Some((path, _)) => {
            log.err(&format!(
                "{}: the pam_mfa lines of this PAM service name different configuration files ({} on an earlier line, {} here); give every pam_mfa line the same config= (or none)",
                args.role.map_or("account", Role::as_str),
                path.display(),
                config_path.display()
            ));
            return Err(Code::PAM_SERVICE_ERR);
        }
        _ => match Config::load_cached(config_path, crate::ffi::sys::effective_uid(), if_missing) {
            Ok(c) => {
                memo.config = Some((config_path.to_path_buf(), c.clone()));
                c
            }
            Err(e) => {
                log.err(&format!("{e}; logins are refused until it is fixed"));
                return Err(Code::PAM_SERVICE_ERR);
            }
        },
    };
    let now = match clock::now() {
        Ok(t) if t <= clock::MAX_SANE_TIME => t,
        Ok(t) => {
            log.err(&format!(
                "the system clock says {t} s after 1970, beyond year 9999; fix the time (NTP)"
            ));
            return Err(Code::PAM_AUTH_ERR);
        }
        Err(e) => {
            log.err(&e.to_string());
            return Err(Code::PAM_AUTH_ERR);
        }
    };
    let service = pam
        .service()
        .map_or_else(|| "-".to_string(), |s| crate::text::escape_field(&s).into_owned());
    let rhost = pam
        .rhost()
        .filter(|r| !r.is_empty())
        .map(|r| crate::text::clean_rhost(&r));
    let raw_user = pam.user()?;
    let mailbox = match Mailbox::parse(&raw_user, cfg.default_domain.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            log.log(
                Level::Notice,
                &format!(
                    "{}: service={service} rhost={} result=refused reason=\"bad user name\": {e}",
                    args.role.map_or("account", Role::as_str),
                    rhost.as_deref().unwrap_or("-")
                ),
            );
            return Err(Code::PAM_USER_UNKNOWN);
        }
    };
    let owner = match cfg.store_owner.as_deref().map(crate::ffi::sys::uid_of) {
        None => None,
        Some(Some(uid)) => Some(uid),
        Some(None) => {
            log.err(&format!(
                "configuration {}: store_owner = {:?} is not a known user; logins are refused until it is fixed",
                config_path.display(),
                cfg.store_owner.as_deref().unwrap_or_default()
            ));
            return Err(Code::PAM_SERVICE_ERR);
        }
    };
    let store = match AnyStore::open(&cfg, owner) {
        Ok(s) => s,
        Err(e) => {
            log.err(&format!(
                "{}: mailbox={mailbox} result=refused reason=\"store error\": {e}",
                args.role.map_or("account", Role::as_str)
            ));
            return Err(Code::PAM_AUTHINFO_UNAVAIL);
        }
    };
    // One identity for both factors: the lines after these (the password
    // module) judge the account pam_mfa judges, not another spelling of it
    // (`Bob@Example.org`, a bare name) that the password module may keep as
    // a separate account with its own password.
    if matches!(args.role, Some(Role::Split | Role::AppPassword)) && raw_user != mailbox.as_str().as_bytes() {
        if let Err(e) = pam.set_user(mailbox.as_str()) {
            log.err(&format!(
                "{}: mailbox={mailbox} cannot set PAM_USER to the mailbox name (PAM error {e:?}); the login is refused",
                args.role.map_or("auth", Role::as_str)
            ));
            return Err(Code::PAM_SYSTEM_ERR);
        }
        log.debug(|| format!("mailbox={mailbox} PAM_USER set from the name as typed"));
    }
    let role = args.role.map_or("account", Role::as_str);
    if matches!(args.role, Some(Role::Split | Role::AppPassword)) {
        // A new authentication attempt (an application may reuse its handle
        // for another try, or another user): nothing of an earlier one holds.
        memo = Memo {
            config: memo.config,
            mailbox: Some(mailbox.clone()),
            ..Memo::default()
        };
    } else if memo.mailbox.as_ref() != Some(&mailbox) {
        // `split` cut the typed string for another mailbox's codes (or
        // `verify` judged another mailbox), and the password module checked
        // what was left: nothing this login did is about this mailbox.
        if let (Some(before), true) = (&memo.mailbox, memo.progress != Progress::NoSplit) {
            log.err(&format!(
                "{role}: mailbox={mailbox} result=refused reason=\"PAM_USER changed after split\" split_mailbox={before}; no module after split may change the user name"
            ));
            return Err(Code::PAM_AUTH_ERR);
        }
        memo = Memo {
            config: memo.config,
            mailbox: Some(mailbox.clone()),
            ..Memo::default()
        };
    }
    // Without `split` (a `prompt` stack) nobody handed the password module
    // the canonical name: it judged the name as typed, which may be another
    // account of its own (`Bob@example.org`). Counting this mailbox's codes
    // for it would let that account lock the owner out.
    if args.role == Some(Role::Verify) && memo.progress == Progress::NoSplit && raw_user != mailbox.as_str().as_bytes()
    {
        log.log(
            Level::Notice,
            &format!(
                "{role}: mailbox={mailbox} result=refused reason=\"user name not in canonical form\"; without a split line the password module judged the name as typed: log in as {mailbox}, or put pam_mfa split before the password module"
            ),
        );
        return Err(Code::PAM_USER_UNKNOWN);
    }
    Ok((
        args,
        Ctx {
            log,
            cfg,
            store,
            mailbox,
            service,
            rhost,
            now,
        },
        memo,
    ))
}

/// pam_sm_authenticate.
pub fn authenticate(pam: &mut dyn PamApi, raw_args: &[&[u8]]) -> Code {
    let (args, ctx, mut memo) = match gather(pam, raw_args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let code = match args.role {
        Some(Role::Split) => split_role(pam, &ctx, &mut memo),
        Some(Role::Verify) => verify_role(pam, &args, &ctx, &mut memo),
        Some(Role::AppPassword) => app_password_role(pam, &ctx, &mut memo),
        None => {
            ctx.log
                .err("an auth line names pam_mfa.so without a role: add split, verify or app_password");
            return Code::PAM_SERVICE_ERR;
        }
    };
    if let Err(e) = pam.set_memo(memo) {
        // `verify` cannot get the code without it: refuse rather than guess.
        ctx.log.err(&format!(
            "{}: {} cannot keep data for the next lines of the stack (PAM error {e:?})",
            args.role.map_or("auth", Role::as_str),
            ctx.who()
        ));
        return Code::PAM_SYSTEM_ERR;
    }
    code
}

/// `split`: cuts the code off the typed string for mailboxes that need one.
fn split_role(pam: &mut dyn PamApi, ctx: &Ctx, memo: &mut Memo) -> Code {
    memo.progress = Progress::Split;
    // Policy, record and state in one look: the state is needed only for a
    // typed recovery code (which ones are used), but it comes with the record.
    let (policy, opened) = match ctx.store.open_login(&ctx.mailbox, &ctx.cfg) {
        Ok((p, o)) => (p, o.map(std::sync::Arc::new)),
        Err(e) => return ctx.store_failed("split", &e),
    };
    let (record, state) = match &opened {
        Some(o) => (
            (!o.content().record.is_empty()).then(|| o.content().record.clone()),
            &o.content().state,
        ),
        None => (None, &MailboxState::default()),
    };
    let typed = match pam.authtok() {
        Ok(t) => t,
        Err(code) => {
            ctx.log.log(
                Level::Notice,
                &format!(
                    "split: {} result=refused reason=\"no password from the application\"",
                    ctx.who()
                ),
            );
            return code;
        }
    };
    let needs_code = decide::needs_code(&policy, record.as_ref(), ctx.now);
    // Hashed before the string is cut; kept only if a TOTP code was cut off.
    let webmail_tag = match &record {
        Some(rec)
            if needs_code && webmail::window_for(&ctx.cfg, &policy, &ctx.service, ctx.rhost.as_deref()).is_some() =>
        {
            webmail::tag(rec, ctx.mailbox.as_str(), &typed)
        }
        _ => None,
    };
    let parts = match (&record, needs_code) {
        (Some(rec), true) => {
            let codes = split::Codes {
                digits: rec.code_digits(),
                scratch: rec.recovery.as_ref().is_some_and(|set| set.scratch),
                is_recovery: |candidate: &str| {
                    rec.recovery.as_ref().is_some_and(|set| {
                        recovery::find(set, state.recovery_used_of(&set.id), ctx.mailbox.as_str(), candidate).is_some()
                    })
                },
            };
            split::split(&typed, &codes)
        }
        // No code needed: the typed string goes on untouched.
        _ => split::Split {
            password: typed,
            factor: None,
        },
    };
    if let Err(code) = pam.set_authtok(&parts.password) {
        ctx.log.err(&format!(
            "split: {} cannot set PAM_AUTHTOK (PAM error {code:?})",
            ctx.who()
        ));
        return Code::PAM_SYSTEM_ERR;
    }
    let factor = parts.factor;
    let webmail_tag = webmail_tag.filter(|_| matches!(factor, Some(Factor::Totp(_))));
    ctx.log.debug(|| {
        let kind = factor.as_ref().map_or("none", Factor::kind);
        format!("split: {} needs_code={needs_code} factor={kind}", ctx.who())
    });
    memo.split = Some(SplitFound {
        policy,
        record,
        factor,
        webmail_tag,
    });
    memo.opened = opened;
    Code::PAM_SUCCESS
}

/// The factor for `verify` when no `split` ran: asked for with `prompt`.
/// `scratch`: the mailbox holds imported scratch codes, typed `1234-5678`
/// here as after a password, so that one form means one thing everywhere.
/// An empty answer is no code (which texts one to a mailbox with a number).
fn prompt_for_factor(pam: &mut dyn PamApi, prompt: &str, scratch: bool) -> Option<Factor> {
    let answer = pam.ask_hidden(prompt).ok()?;
    let text = std::str::from_utf8(&answer).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    if let Some(code) = recovery::normalize(text) {
        return Some(Factor::Recovery(code));
    }
    if scratch && let Some(code) = recovery::scratch_form(text.trim().as_bytes()) {
        return Some(Factor::Recovery(code));
    }
    Some(Factor::Totp(crate::totp::clean_code(text)))
}

const PROMPT: &str = "Verification code: ";
/// For a mailbox with a number: says how to get a code.
const PROMPT_SMS: &str = "Verification code (leave empty to get one by text message): ";
const PROMPT_AGAIN: &str = "Verification code (sent by text message): ";

/// Where `verify` gets the factor from.
enum FactorFrom<'a> {
    /// What `split` cut off the typed string.
    Split(&'a SplitFound),
    /// Asked for with `prompt` (if the module line says so and a code is needed).
    Prompt,
    /// Asked already (the second question after a code was texted).
    Given(Option<Factor>),
}

/// A code the decision recorded as sent, to deliver now.
struct Text {
    to: String,
    code: SecretString,
}

/// `verify`: checks the code (window, replay, lock-out) after the password
/// module accepted the password; without a code, texts one to a mailbox
/// with a confirmed number (the password was checked: nothing is ever sent
/// before that).
fn verify_role(pam: &mut dyn PamApi, args: &Args, ctx: &Ctx, memo: &mut Memo) -> Code {
    let split = memo.split.take();
    let policy = match &split {
        Some(found) => found.policy.clone(),
        None => match ctx.store.policy_for(ctx.mailbox.domain(), &ctx.cfg) {
            Ok(p) => p,
            Err(e) => return ctx.store_failed("verify", &e),
        },
    };
    let from = match &split {
        Some(found) => FactorFrom::Split(found),
        None => FactorFrom::Prompt,
    };
    let (mut decision, text, scratch, factor) = match decide_locked(pam, args, ctx, &policy, from, memo.opened.take()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(text) = text {
        // Sent after the new state is stored, outside the lock: a parallel
        // login waits for no gateway, and finds this send when it decides.
        match send_text(ctx, &text) {
            Ok(()) => {
                log_verify(ctx, &decision.outcome, factor.as_ref());
                // A conversation-speaking service (`prompt`) asks again, once.
                if args.prompt && split.is_none() {
                    let again = prompt_for_factor(pam, PROMPT_AGAIN, scratch);
                    let given;
                    (decision, given) = match decide_locked(pam, args, ctx, &policy, FactorFrom::Given(again), None) {
                        Ok((d, _, _, f)) => (d, f),
                        Err(code) => return code,
                    };
                    log_verify(ctx, &decision.outcome, given.as_ref());
                }
            }
            Err(why) => {
                note_not_sent(ctx);
                decision.outcome = Outcome::Refused(Refusal::SmsNotSent { why });
                log_verify(ctx, &decision.outcome, factor.as_ref());
            }
        }
    } else {
        log_verify(ctx, &decision.outcome, factor.as_ref());
    }
    match decision.outcome {
        Outcome::Accepted(_) => {
            // A success resets the failure counter: not blocked.
            memo.account_ok = true;
            memo.progress = Progress::VerifyAccepted;
            Code::PAM_SUCCESS
        }
        Outcome::Refused(r) => {
            memo.progress = Progress::VerifyRefused;
            if matches!(r, Refusal::Locked(_)) {
                Code::PAM_MAXTRIES
            } else {
                Code::PAM_AUTH_ERR
            }
        }
    }
}

/// The decision on the mailbox as it is now, under its lock, and its new
/// state stored; with the code to text if it recorded one as sent, whether
/// the mailbox holds imported scratch codes (for a second question), and
/// the factor decided on (for the log line). `Err`: the PAM code of a
/// refusal already logged.
fn decide_locked(
    pam: &mut dyn PamApi,
    args: &Args,
    ctx: &Ctx,
    policy: &DomainPolicy,
    from: FactorFrom<'_>,
    opened: Option<std::sync::Arc<AnyOpened>>,
) -> Result<(decide::Decision, Option<Text>, bool, Option<Factor>), Code> {
    let split = match &from {
        FactorFrom::Split(found) => Some(*found),
        _ => None,
    };
    let again = matches!(from, FactorFrom::Given(_));
    let mut given = match from {
        FactorFrom::Given(f) => Some(f),
        _ => None,
    };
    let changed = || {
        ctx.store_failed(
            "verify",
            &StoreError::ChangedDuringLogin {
                mailbox: ctx.mailbox.to_string(),
            },
        )
    };
    // The decision is taken on the mailbox as it is now, under its lock,
    // whatever `split` saw: what `split` read, locked again (a file
    // followed if it was replaced; a database row written only if it is
    // still the version read), or a fresh look. A database's optimistic
    // write that finds the row changed writes nothing: the second round
    // decides again under a real lock.
    let mut opened = opened;
    let mut factor = None;
    let mut first_round = true;
    loop {
        let locked = match opened.take() {
            Some(o) => match ctx.store.relock(&o) {
                Ok(Some(l)) => Some(l),
                Ok(None) => return Err(changed()),
                Err(e) => return Err(ctx.store_failed("verify", &e)),
            },
            None => match ctx.store.lock(&ctx.mailbox, OnMissing::Skip) {
                Ok(l) => l,
                Err(e) => return Err(ctx.store_failed("verify", &e)),
            },
        };
        let record = locked.as_ref().and_then(|l| l.record());
        let needs_code = decide::needs_code(policy, record, ctx.now);
        let digits = record.map_or(ctx.cfg.totp.digits, MailboxRecord::code_digits);
        let scratch = record.and_then(|r| r.recovery.as_ref()).is_some_and(|set| set.scratch);
        if first_round {
            factor = match (split, given.take()) {
                // `split` cut a code off only if one was needed when it
                // looked; if mfa-ctl set the mailbox up or switched it off
                // since, the password module judged a string cut for the
                // other case (fail closed; the user tries again).
                (Some(found), _) if decide::needs_code(policy, found.record.as_ref(), ctx.now) != needs_code => {
                    return Err(changed());
                }
                (Some(found), _) => found.factor.clone(),
                (None, Some(f)) => f,
                (None, None) if args.prompt && needs_code => {
                    let texts = record.and_then(MailboxRecord::sms_number).is_some() && ctx.cfg.sms.is_some();
                    prompt_for_factor(pam, if texts { PROMPT_SMS } else { PROMPT }, scratch)
                }
                (None, None) => None,
            };
        } else if split.is_some_and(|found| decide::needs_code(policy, found.record.as_ref(), ctx.now) != needs_code) {
            return Err(changed());
        }
        // A code to text, should the decision send one: only a login that
        // typed none, of a mailbox with a number, asking the first time.
        let new_code = match (&factor, record.and_then(MailboxRecord::sms_number)) {
            (None, Some(_)) if !again => match crate::sms::new_code(digits) {
                Ok(c) => Some(c),
                Err(e) => {
                    ctx.log
                        .err(&format!("verify: {} result=refused reason=\"{e}\"", ctx.who()));
                    return Err(Code::PAM_AUTH_ERR);
                }
            },
            _ => None,
        };
        let req = Request {
            new_sms_code: new_code.as_deref().map(String::as_str),
            webmail_tag: split.and_then(|f| f.webmail_tag.as_deref()),
            ..ctx.request()
        };
        let Some(mut locked) = locked else {
            let d = decide::decide(&req, factor.as_ref(), policy, None, &Default::default(), &ctx.cfg);
            return Ok((d, None, scratch, factor));
        };
        let d = decide::decide(&req, factor.as_ref(), policy, locked.record(), locked.state(), &ctx.cfg);
        // A used recovery code does not expire, so its use must survive a
        // power cut even with `durable = false`; so must a text's send, which
        // the limits count.
        let durability = match d.outcome {
            Outcome::Accepted(Accept::RecoveryCode { .. }) | Outcome::Refused(Refusal::CodeSent { .. }) => {
                Durability::Synced
            }
            _ => Durability::Configured,
        };
        // An acceptance that writes nothing (the password alone, for a
        // mailbox with no record) must still rest on the mailbox as it is
        // now: an optimistic lock checks it was not set up meanwhile.
        let stored = match (&d.state, &d.outcome) {
            (Some(new_state), _) => locked.write_state(new_state, durability),
            (None, Outcome::Accepted(_)) => locked.confirm(),
            (None, Outcome::Refused(_)) => Ok(()),
        };
        match stored {
            Err(StoreError::Conflict { .. }) if first_round => {
                first_round = false;
                continue;
            }
            // Without the new state the replay protection cannot be kept:
            // a success becomes a refusal (fail closed).
            Err(e) => return Err(ctx.store_failed("verify", &e)),
            Ok(()) => {
                let text = match (&d.outcome, new_code) {
                    (Outcome::Refused(Refusal::CodeSent { to }), Some(code)) => Some(Text { to: to.clone(), code }),
                    _ => None,
                };
                return Ok((d, text, scratch, factor));
            }
        }
    }
}

/// Runs the delivery command for a code the decision recorded as sent.
/// `Err`: why not, for the log (never the code).
fn send_text(ctx: &Ctx, text: &Text) -> Result<(), String> {
    let Some(sms_cfg) = ctx.cfg.sms.as_ref() else {
        return Err("the configuration has no [sms] section".into());
    };
    let message = crate::sms::message(sms_cfg, &ctx.cfg.issuer, &text.code);
    let delivery = crate::deliver::Delivery {
        mailbox: ctx.mailbox.as_str(),
        to: &text.to,
        code: &text.code,
        message: &message,
        purpose: crate::sms::Purpose::Login,
    };
    crate::deliver::deliver(sms_cfg, &delivery, crate::ffi::sys::effective_uid()).map_err(|e| e.to_string())
}

/// The login history says "code sent by sms" for a text that then failed:
/// corrected, so `mfa-ctl logins` does not tell the user a code is on its
/// way. The send still counts toward the limits (a gateway may have
/// charged for it).
fn note_not_sent(ctx: &Ctx) {
    use crate::store::records::LoginResult;
    let Ok(Some(mut locked)) = ctx.store.lock(&ctx.mailbox, OnMissing::Skip) else {
        return;
    };
    let mut state = locked.state().clone();
    if state.amend_login(ctx.now, LoginResult::CodeSentBySms, LoginResult::SmsNotSent)
        && let Err(e) = locked.write_state(&state, Durability::Configured)
    {
        ctx.log.err(&format!(
            "verify: {} could not record that the text was not sent: {e}",
            ctx.who()
        ));
    }
}

/// `factor`: what was typed, so that a refusal says what was tried (a
/// wrong scratch code is `factor=scratch_code`); never the code itself.
fn log_verify(ctx: &Ctx, outcome: &Outcome, factor: Option<&Factor>) {
    let who = ctx.who();
    match outcome {
        Outcome::Accepted(a) => {
            let method = match a {
                Accept::Code { .. } => "code".to_string(),
                Accept::Sms => "sms".to_string(),
                Accept::WebmailSession { started, ends } => {
                    format!("webmail_session session_started={started} session_ends={ends}")
                }
                Accept::RecoveryCode { left, .. } => format!(
                    "{} recovery_codes_left={left}",
                    factor.map_or("recovery_code", Factor::kind)
                ),
                Accept::PasswordOnly(NoCodeReason::DomainDisabled) => "password_only policy=disabled".to_string(),
                Accept::PasswordOnly(NoCodeReason::NotEnrolled) => {
                    "password_only policy=optional enrolled=no".to_string()
                }
                Accept::PasswordOnly(NoCodeReason::Grace { ends }) => {
                    format!("password_only policy=required enrolled=no grace_ends={ends}")
                }
            };
            ctx.log
                .log(Level::Info, &format!("verify: {who} result=accepted method={method}"));
            if let Accept::Code { step } = a {
                ctx.log.debug(|| format!("verify: {who} accepted step={step}"));
            }
        }
        Outcome::Refused(r) => {
            let extra = match r {
                Refusal::WrongCode { failures, counted } => format!(" failures={failures} counted={counted}"),
                Refusal::Locked(Lock::Backoff { until }) => format!(" until={until}"),
                Refusal::Locked(Lock::Blocked) => format!(" fix=\"mfa-ctl unlock {}\"", ctx.mailbox),
                Refusal::EnrolmentRequired => format!(" fix=\"mfa-ctl enroll {}\"", ctx.mailbox),
                Refusal::BadSeed(e) => format!(": {e}"),
                Refusal::CodeSent { to } => format!(" to=\"{}\"", crate::sms::mask(to)),
                Refusal::SmsNotSent { why } => format!(": {why}"),
                Refusal::SmsResendTooSoon { until } | Refusal::SmsHourlyCap { until } => {
                    format!(" next_sms_after={until}")
                }
                Refusal::SmsNotConfigured => format!(
                    " fix=\"add an [sms] section to the configuration (pam_mfa.toml(5)), or remove the number: mfa-ctl sms remove {}\"",
                    ctx.mailbox
                ),
                _ => String::new(),
            };
            let level = if matches!(
                r,
                Refusal::BadSeed(_) | Refusal::SmsNotSent { .. } | Refusal::SmsNotConfigured
            ) {
                Level::Err
            } else {
                Level::Notice
            };
            let tried = factor.map(|f| format!(" factor={}", f.kind())).unwrap_or_default();
            ctx.log.log(
                level,
                &format!("verify: {who} result=refused reason=\"{}\"{tried}{extra}", r.reason()),
            );
        }
    }
}

/// `app_password`: a valid app password logs in by itself (`sufficient`);
/// anything else is left to the rest of the stack (PAM_IGNORE).
fn app_password_role(pam: &mut dyn PamApi, ctx: &Ctx, memo: &mut Memo) -> Code {
    let typed = match pam.authtok() {
        Ok(t) => t,
        Err(_) => return Code::PAM_IGNORE,
    };
    let Some(candidate) = app_password::normalize(&typed) else {
        return Code::PAM_IGNORE;
    };
    let mut locked = match ctx.store.lock(&ctx.mailbox, OnMissing::Skip) {
        Ok(Some(l)) => l,
        Ok(None) => return Code::PAM_IGNORE,
        Err(e) => {
            ctx.store_failed("app_password", &e);
            return Code::PAM_IGNORE;
        }
    };
    let (record, state) = match locked.record() {
        Some(r) if !r.app_passwords.is_empty() => (r.clone(), locked.state().clone()),
        _ => return Code::PAM_IGNORE,
    };
    let req = ctx.request();
    let who = ctx.who();
    match decide::decide_app_password(&req, &candidate, &record, &state, &ctx.cfg) {
        AppDecision::NotApplicable => Code::PAM_IGNORE,
        AppDecision::Accepted { label, state } => {
            memo.account_ok = !decide::account_blocked(Some(&record), &state, &ctx.cfg);
            if let Err(e) = locked.write_state(&state, Durability::Configured) {
                ctx.store_failed("app_password", &e);
                return Code::PAM_IGNORE;
            }
            ctx.log.log(
                Level::Info,
                &format!("app_password: {who} result=accepted method=app_password label={label:?}"),
            );
            Code::PAM_SUCCESS
        }
        AppDecision::Refused { label, why, state } => {
            let _ = locked.write_state(&state, Durability::Configured);
            ctx.log.log(
                Level::Notice,
                &format!(
                    "app_password: {who} result=refused reason=\"{}\" label={label:?}",
                    crate::store::records::LoginResult::from(&why).as_str()
                ),
            );
            Code::PAM_AUTH_ERR
        }
    }
}

/// pam_sm_acct_mgmt: refuses only a blocked mailbox.
pub fn account(pam: &mut dyn PamApi, raw_args: &[&[u8]]) -> Code {
    let (_, ctx, memo) = match gather(pam, raw_args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let stack_error = match memo.progress {
        Progress::NoSplit | Progress::VerifyAccepted => None,
        Progress::Split => Some("no verify line ran after split"),
        Progress::VerifyRefused => Some("verify refused the code but the stack let the login through"),
    };
    if let Some(what) = stack_error {
        ctx.log.err(&format!(
            "account: {} result=refused reason=\"stack error: {what}; see pam_mfa(8)\" fix=\"the auth stack needs split requisite, the password module requisite, verify required (mfa-ctl doctor checks it)\"",
            ctx.who()
        ));
        return Code::PAM_PERM_DENIED;
    }
    if memo.account_ok {
        return Code::PAM_SUCCESS;
    }
    let (record, state) = match Backend::read_mailbox(&ctx.store, &ctx.mailbox) {
        Ok(Some(f)) if !f.record.is_empty() => (f.record, f.state),
        Ok(_) => return Code::PAM_SUCCESS,
        Err(e) => return ctx.store_failed("account", &e),
    };
    if decide::account_blocked(Some(&record), &state, &ctx.cfg) {
        ctx.log.log(
            Level::Notice,
            &format!(
                "account: {} result=refused reason=\"blocked after too many failed codes\" fix=\"mfa-ctl unlock {}\"",
                ctx.who(),
                ctx.mailbox
            ),
        );
        return Code::PAM_PERM_DENIED;
    }
    Code::PAM_SUCCESS
}

#[cfg(test)]
mod tests;
