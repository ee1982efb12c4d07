//! One function per command: call the `pam_mfa::admin` operation, then say
//! what happened and what to do next. No rule is decided here; the store,
//! the policy and the code checks are the library's, shared with the module.
//! The JSON forms are the library's views, serialised as they are.

use crate::cli::{AdminCommand, AppPasswordCmd, DisableArgs, DoctorArgs, DomainCmd, EnrollArgs, SmsCmd, StoreCmd};
use crate::error::Error;
use crate::show::{self, Reply, list_or, when, when_or};
use crate::{enroll, qr};
use pam_mfa::admin::{
    Admin, AppPasswordView, DomainView, Enrolment, LockState, LoginNeeds, LoginView, MfaState, Proof, SentView, Status,
};
use pam_mfa::doctor::{self, Finding, Level};
use pam_mfa::duration;
use pam_mfa::mailbox::Mailbox;
use pam_mfa::policy::Policy;
use pam_mfa::secret;
use pam_mfa::store::ExistingFolder;
use pam_mfa::text::escape_controls;
use serde::Serialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Error>;

/// Options that change how results are shown, not what is done.
pub struct Ui {
    pub json: bool,
}

pub fn run(admin: &Admin, command: AdminCommand, ui: &Ui, now: u64) -> Result<Reply> {
    match command {
        AdminCommand::Domain(DomainCmd::Set {
            domain,
            policy,
            grace,
            webmail_window,
        }) => domain_set(admin, &domain, policy.into(), grace, webmail_window.map(|w| w.0), now),
        AdminCommand::Domain(DomainCmd::Show { domain }) => domain_show(admin, &domain),
        AdminCommand::Domain(DomainCmd::List) => domain_list(admin),
        AdminCommand::Enroll(args) => enroll(admin, &args, ui, now),
        AdminCommand::Disable(args) => disable(admin, &args, now),
        AdminCommand::Status(a) => status(admin, &admin.mailbox(&a.mailbox)?, now),
        AdminCommand::List { domain, weak } => crate::listing::list(admin, domain.as_deref(), weak, ui.json, now),
        AdminCommand::RecoveryCodes(a) => recovery_codes(admin, &admin.mailbox(&a.mailbox)?, now),
        AdminCommand::AppPassword(AppPasswordCmd::Add {
            mailbox,
            label,
            services,
            from,
            expires,
        }) => {
            let mb = admin.mailbox(&mailbox)?;
            app_password_add(admin, &mb, &label, &services, &from, expires, now)
        }
        AdminCommand::AppPassword(AppPasswordCmd::List { mailbox }) => {
            app_password_list(admin, &admin.mailbox(&mailbox)?)
        }
        AdminCommand::AppPassword(AppPasswordCmd::Revoke { mailbox, label }) => {
            app_password_revoke(admin, &admin.mailbox(&mailbox)?, &label)
        }
        AdminCommand::Sms(SmsCmd::Add { mailbox, number, proof }) => {
            let mb = admin.mailbox(&mailbox)?;
            sms_add(admin, &mb, &number, proof.proof(), now)
        }
        AdminCommand::Sms(SmsCmd::Confirm { mailbox, code }) => {
            sms_confirm(admin, &admin.mailbox(&mailbox)?, &code, now)
        }
        AdminCommand::Sms(SmsCmd::Remove { mailbox, proof }) => {
            sms_remove(admin, &admin.mailbox(&mailbox)?, proof.proof(), now)
        }
        AdminCommand::SendCode(a) => send_code(admin, &admin.mailbox(&a.mailbox)?, now),
        AdminCommand::Logins { mailbox, limit } => logins(admin, &admin.mailbox(&mailbox)?, limit),
        AdminCommand::Unlock(a) => unlock(admin, &admin.mailbox(&a.mailbox)?, now),
        AdminCommand::Sessions(a) => sessions(admin, &admin.mailbox(&a.mailbox)?, now),
        AdminCommand::Logout(a) => logout(admin, &admin.mailbox(&a.mailbox)?, now),
        AdminCommand::Store(StoreCmd::Init { dir, adopt }) => store_init(admin, dir.as_deref(), adopt),
        AdminCommand::Store(StoreCmd::Copy { from, dry_run, replace }) => {
            store_copy(admin, &from, dry_run, replace, ui)
        }
        AdminCommand::Import(cmd) => crate::import::run(admin, cmd, ui, now),
    }
}

// ---- domains ----

fn domain_set(
    admin: &Admin,
    domain: &str,
    policy: Policy,
    grace: Option<u64>,
    webmail_window: Option<Option<u64>>,
    now: u64,
) -> Result<Reply> {
    let v = admin.domain_set(domain, policy, grace, webmail_window, now)?;
    let mut human = format!("{}: MFA {}", v.domain, v.policy.policy);
    if let (Some(g), Some(ends)) = (v.policy.grace, v.policy.grace_ends()) {
        human.push_str(&format!(
            "; mailboxes that have not enrolled may log in with the password alone for {} more (until {})",
            duration::format(g),
            when(ends)
        ));
    }
    human.push_str(".\n");
    Ok(Reply::new(human, json!(v)))
}

fn domain_show(admin: &Admin, domain: &str) -> Result<Reply> {
    let v = admin.domain_show(domain)?;
    let mut human = format!("domain:  {}\npolicy:  {}", v.domain, v.policy.policy);
    if v.explicit {
        human.push_str(&format!(" (set {})\n", when(v.policy.since)));
    } else {
        human.push_str(" (default_policy of the configuration: the domain has no policy of its own)\n");
    }
    if let (Some(g), Some(ends)) = (v.policy.grace, v.policy.grace_ends()) {
        human.push_str(&format!("grace:   {}, ends {}\n", duration::format(g), when(ends)));
    }
    match v.policy.webmail_window {
        Some(0) => human.push_str("webmail: no webmail sessions for this domain\n"),
        Some(w) => human.push_str(&format!("webmail: sessions last {}\n", duration::format(w))),
        None => {}
    }
    Ok(Reply::new(human, json!(v)))
}

/// A list as a table, or when it is empty the sentence that says so and
/// what to do: an empty table would show only its headers.
fn table_or<T>(items: &[T], empty: String, headers: &[&str], row: impl Fn(&T) -> Vec<String>) -> String {
    if items.is_empty() {
        return empty;
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    show::table(headers, &rows)
}

fn domain_list(admin: &Admin) -> Result<Reply> {
    let list: Vec<DomainView> = admin.domain_list()?;
    let human = table_or(
        &list,
        format!(
            "No domain has a policy of its own: all follow default_policy = {}.\n",
            admin.cfg.default_policy
        ),
        &["DOMAIN", "POLICY", "GRACE", "GRACE ENDS", "SET"],
        |v| {
            vec![
                v.domain.clone(),
                v.policy.policy.to_string(),
                v.policy.grace.map_or_else(|| "-".into(), duration::format),
                when_or(v.policy.grace_ends(), "-"),
                when(v.policy.since),
            ]
        },
    );
    Ok(Reply::new(
        human,
        json!({"default_policy": admin.cfg.default_policy, "domains": list}),
    ))
}

// ---- enrolment and disabling ----

fn enroll(admin: &Admin, args: &EnrollArgs, ui: &Ui, now: u64) -> Result<Reply> {
    let mb = admin.mailbox(&args.mailbox)?;
    if let Some(code) = args.confirm.as_deref() {
        admin.enroll_confirm(&mb, code, now)?;
        return Ok(Reply::new(
            enabled_text(mb.as_str()),
            json!({"mailbox": mb.as_str(), "state": MfaState::Enabled}),
        ));
    }
    if !args.begin && ui.json {
        return Err(Error::InteractiveJson);
    }
    let e = admin.enroll_begin(&mb, now)?;
    let mut human = enrolment_text(&e, !args.no_qr && !ui.json, args.invert)?;
    if args.begin {
        human.push_str(&format!(
            "\nMFA stays off until the code is confirmed: mfa-ctl enroll {mb} --confirm CODE\n"
        ));
        let begun = Begun {
            enrolment: &e,
            state: MfaState::Pending,
        };
        return Ok(Reply::new(human, json!(begun)));
    }
    enroll::challenge(admin, &mb, &e, &human)?;
    Ok(Reply::new(enabled_text(mb.as_str()), Value::Null))
}

/// `enroll --begin --json`: the enrolment to show, and the state it leaves.
#[derive(Serialize)]
struct Begun<'a> {
    #[serde(flatten)]
    enrolment: &'a Enrolment,
    state: MfaState,
}

/// The screen a user scans: QR code, the secret for typing by hand, the URI.
pub fn enrolment_text(e: &Enrolment, with_qr: bool, invert: bool) -> Result<String> {
    let mut out = format!("Enrolling {} for MFA (issuer \"{}\").\n", e.mailbox, e.issuer);
    if with_qr {
        out.push_str(
            "\nScan this QR code with an authenticator app (Google Authenticator, Authy, Aegis, FreeOTP, \
             Microsoft Authenticator, ...):\n\n",
        );
        out.push_str(&qr::render(e.otpauth_uri.as_str(), invert).map_err(Error::Qr)?);
        out.push_str(if invert {
            "\n\nIf the app does not read it, run this again without --invert (drawn for a light terminal background).\n"
        } else {
            "\n\nIf the app does not read it, run this again with --invert (drawn for a dark terminal background).\n"
        });
    }
    out.push_str(&format!(
        "\nCannot scan? Add the account by hand, time-based, {} digits, every {} s:\n  account: {}\n  key:     {}\n\notpauth URI: {}\n",
        e.digits,
        e.period,
        e.mailbox,
        secret::grouped(e.secret.as_str(), ' ').as_str(),
        e.otpauth_uri.as_str()
    ));
    Ok(out)
}

pub fn enabled_text(mb: &str) -> String {
    format!(
        "MFA is now on for {mb}. Log in with the password immediately followed by the code the app shows.\n\
         Mail clients that cannot do that need an app password: mfa-ctl app-password add {mb} --label NAME --service imap\n\
         For a lost phone, print recovery codes now: mfa-ctl recovery-codes {mb}\n"
    )
}

fn disable(admin: &Admin, args: &DisableArgs, now: u64) -> Result<Reply> {
    let mb = admin.mailbox(&args.mailbox)?;
    admin.disable(&mb, args.code.as_deref(), args.force, now)?;
    let after = admin.status(&mb, now)?;
    let mut human = format!(
        "MFA is now off for {mb}{}. The user may delete the entry \"{} ({mb})\" from the authenticator app; \
         its recovery codes no longer work.\n",
        if args.force {
            " (forced by an admin; logged)"
        } else {
            ""
        },
        admin.cfg.issuer
    );
    if after.login_needs == LoginNeeds::EnrolmentRequired {
        human.push_str(&format!(
            "The domain {} requires MFA: logins of {mb} are refused until it enrols again (mfa-ctl enroll {mb}).\n",
            mb.domain()
        ));
    }
    Ok(Reply::new(
        human,
        json!({"mailbox": mb.as_str(), "state": after.state, "forced": args.force,
               "login_needs": after.login_needs}),
    ))
}

// ---- status ----

fn status(admin: &Admin, mb: &Mailbox, now: u64) -> Result<Reply> {
    let s = admin.status(mb, now)?;
    Ok(Reply::new(status_human(&s), json!(s)))
}

fn status_human(s: &Status) -> String {
    let mb = &s.mailbox;
    let state = match s.state {
        MfaState::Pending if s.sms_pending.is_some() => {
            format!("pending (a number waits for the code texted to it; finish with: mfa-ctl sms confirm {mb} CODE)")
        }
        MfaState::Pending => {
            format!("pending (a secret was shown but not confirmed; finish with: mfa-ctl enroll {mb} --confirm CODE)")
        }
        MfaState::Enabled if s.weak => format!(
            "enabled, with a secret shorter than 128 bits: have the user enrol again \
             (mfa-ctl disable {mb} --force, then mfa-ctl enroll {mb})"
        ),
        MfaState::Enabled | MfaState::Disabled => s.state.to_string(),
    };
    let needs = match s.login_needs {
        LoginNeeds::Code => match (s.app, s.sms.is_some()) {
            (true, true) => "password followed by the code from the app, or by a code texted to the phone \
                 (a login with the password alone texts one)"
                .to_string(),
            (false, true) => {
                "password followed by the code texted to the phone (a login with the password alone texts one)"
                    .to_string()
            }
            _ => "password followed by the code from the app".to_string(),
        },
        LoginNeeds::PasswordOnly => match s.grace_ends {
            Some(ends) => format!(
                "password only, until {} (grace period; then MFA is required)",
                when(ends)
            ),
            None => "password only".to_string(),
        },
        LoginNeeds::EnrolmentRequired => {
            format!("nothing works: the domain requires MFA; enrol with: mfa-ctl enroll {mb}")
        }
    };
    let lock = match s.lock {
        LockState::Backoff => format!(
            "backing off until {} after {} failed codes (mfa-ctl unlock {mb} clears it)",
            when_or(s.locked_until, "-"),
            s.failures
        ),
        LockState::Blocked => format!(
            "blocked after {} failed codes; clear with: mfa-ctl unlock {mb}",
            s.failures
        ),
        LockState::None => format!(
            "none ({} failed code{} in a row)",
            s.failures,
            if s.failures == 1 { "" } else { "s" }
        ),
    };
    let policy = if s.policy.policy == Policy::Disabled {
        "disabled (no code is ever asked in this domain)".to_string()
    } else {
        s.policy.policy.to_string()
    };
    let last = s.last_login.as_ref().map_or_else(|| "-".to_string(), login_line);
    let sms = match (&s.sms, &s.sms_pending) {
        (Some(n), None) => n.clone(),
        (Some(n), Some(p)) => format!("{n} ({p} waiting for its code: mfa-ctl sms confirm {mb} CODE)"),
        (None, Some(p)) => format!("none; {p} waiting for its code: mfa-ctl sms confirm {mb} CODE"),
        (None, None) => "none".to_string(),
    };
    format!(
        "mailbox:         {mb}\nMFA:             {state}\ndomain policy:   {policy}\nlogin needs:     {needs}\n\
         lock-out:        {lock}\ntext messages:   {sms}\nrecovery codes:  {} left\napp passwords:   {}\n\
         last login:      {last}\n",
        s.recovery_codes_left, s.app_passwords
    )
}

fn login_line(l: &LoginView) -> String {
    format!(
        "{} {} from {}, {}, {}",
        when(l.at),
        escape_controls(&l.service),
        l.ip.as_deref().map_or_else(|| "-".into(), escape_controls),
        l.method.as_str(),
        escape_controls(&l.result)
    )
}

// ---- recovery codes and app passwords ----

fn recovery_codes(admin: &Admin, mb: &Mailbox, now: u64) -> Result<Reply> {
    let codes = admin.recovery_codes(mb, now)?;
    let mut human = format!("New recovery codes for {mb} (any older codes no longer work):\n\n");
    for c in &codes {
        human.push_str(&format!("  {}\n", c.as_str()));
    }
    human.push_str(
        "\nEach code works once, typed in place of the 6-digit code (the password followed by the code), \
         when the phone is not at hand.\nKeep them somewhere safe: they are shown only now.\n",
    );
    let list: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    Ok(Reply::new(human, json!({"mailbox": mb.as_str(), "codes": list})))
}

fn app_password_add(
    admin: &Admin,
    mb: &Mailbox,
    label: &str,
    services: &[String],
    from: &[String],
    expires: Option<u64>,
    now: u64,
) -> Result<Reply> {
    let (v, password) = admin.app_password_add(mb, label, services, from, expires, now)?;
    let human = format!(
        "App password \"{}\" for {mb}:\n\n  {}\n\n\
         Type it in the mail client instead of the password (dashes and spaces are optional). It is shown only now.\n\
         services: {}\nfrom:     {}\nexpires:  {}\n",
        escape_controls(&v.label),
        password.as_str(),
        list_or(&v.services, "any"),
        list_or(&v.from, "anywhere"),
        when_or(v.expires, "never"),
    );
    let added = Added {
        mailbox: mb.as_str(),
        view: &v,
        password: password.as_str(),
    };
    Ok(Reply::new(human, json!(added)))
}

/// `app-password add --json`: the new app password, shown this once.
#[derive(Serialize)]
struct Added<'a> {
    mailbox: &'a str,
    #[serde(flatten)]
    view: &'a AppPasswordView,
    password: &'a str,
}

fn app_password_list(admin: &Admin, mb: &Mailbox) -> Result<Reply> {
    let list = admin.app_password_list(mb)?;
    let human = table_or(
        &list,
        format!(
            "{mb} has no app passwords (create one with: mfa-ctl app-password add {mb} --label NAME --service imap).\n"
        ),
        &[
            "LABEL",
            "SERVICES",
            "FROM",
            "CREATED",
            "EXPIRES",
            "LAST USED",
            "LAST IP",
        ],
        |a| {
            vec![
                a.label.clone(),
                list_or(&a.services, "any"),
                list_or(&a.from, "anywhere"),
                when(a.created),
                when_or(a.expires, "never"),
                when_or(a.last_used, "never"),
                a.last_rhost.clone().unwrap_or_else(|| "-".into()),
            ]
        },
    );
    Ok(Reply::new(
        human,
        json!({"mailbox": mb.as_str(), "app_passwords": list}),
    ))
}

fn app_password_revoke(admin: &Admin, mb: &Mailbox, label: &str) -> Result<Reply> {
    admin.app_password_revoke(mb, label)?;
    Ok(Reply::new(
        format!(
            "App password \"{}\" of {mb} is revoked: mail clients using it can no longer log in.\n",
            escape_controls(label)
        ),
        json!({"mailbox": mb.as_str(), "label": label, "revoked": true}),
    ))
}

// ---- codes by text message ----

fn sms_add(admin: &Admin, mb: &Mailbox, number: &str, proof: Proof<'_>, now: u64) -> Result<Reply> {
    let sent = admin.sms_add(mb, number, proof, now)?;
    let human = format!(
        "A confirmation code was texted to {} for {mb}. The number is pending until it is confirmed with:\n  \
         mfa-ctl sms confirm {mb} CODE\nThe code is valid until {}.\n",
        sent.to,
        when(sent.expires)
    );
    Ok(Reply::new(human, json!({"state": MfaState::Pending, "sent": sent})))
}

fn sms_confirm(admin: &Admin, mb: &Mailbox, code: &str, now: u64) -> Result<Reply> {
    let number = admin.sms_confirm(mb, code, now)?;
    let human = format!(
        "Codes by text message are now on for {mb} ({number}). A login with the password alone texts a code; \
         the user then logs in with the password immediately followed by that code.\n\
         For a lost phone, print recovery codes now: mfa-ctl recovery-codes {mb}\n"
    );
    Ok(Reply::new(
        human,
        json!({"mailbox": mb.as_str(), "sms": number, "state": MfaState::Enabled}),
    ))
}

fn sms_remove(admin: &Admin, mb: &Mailbox, proof: Proof<'_>, now: u64) -> Result<Reply> {
    let force = proof == Proof::Force;
    let removed = admin.sms_remove(mb, proof, now)?;
    let after = admin.status(mb, now)?;
    let mut human = format!("The number {removed} is removed from {mb}; no more codes are texted to it.\n");
    if after.login_needs == LoginNeeds::EnrolmentRequired {
        human.push_str(&format!(
            "The domain {} requires MFA: logins of {mb} are refused until it enrols again (mfa-ctl enroll {mb}, or mfa-ctl sms add {mb} NUMBER).\n",
            mb.domain()
        ));
    }
    Ok(Reply::new(
        human,
        json!({"mailbox": mb.as_str(), "removed": removed, "forced": force, "state": after.state,
               "login_needs": after.login_needs}),
    ))
}

fn send_code(admin: &Admin, mb: &Mailbox, now: u64) -> Result<Reply> {
    let sent: SentView = admin.send_code(mb, now)?;
    let human = format!(
        "A login code was texted to {} for {mb}; it is valid until {}, once.\n",
        sent.to,
        when(sent.expires)
    );
    Ok(Reply::new(human, json!(sent)))
}

// ---- logins, lock-out, store ----

fn logins(admin: &Admin, mb: &Mailbox, limit: usize) -> Result<Reply> {
    let logins: Vec<LoginView> = admin.logins(mb, limit)?.iter().map(LoginView::from).collect();
    let human = table_or(
        &logins,
        format!("No logins recorded for {mb}.\n"),
        &["TIME", "SERVICE", "IP", "METHOD", "RESULT"],
        |l| {
            let method = match l.count {
                0 | 1 => l.method.as_str().to_string(),
                n => format!("{} x{n}", l.method.as_str()),
            };
            vec![
                when(l.at),
                l.service.clone(),
                l.ip.clone().unwrap_or_else(|| "-".into()),
                method,
                l.result.clone(),
            ]
        },
    );
    Ok(Reply::new(human, json!({"mailbox": mb.as_str(), "logins": logins})))
}

fn sessions(admin: &Admin, mb: &Mailbox, now: u64) -> Result<Reply> {
    let sessions = admin.sessions(mb, now)?;
    let human = table_or(
        &sessions,
        format!("No open webmail sessions for {mb}.\n"),
        &["STARTED", "LAST USE", "CLIENT", "SERVICE", "USES", "EXPIRES"],
        |s| {
            vec![
                when(s.started),
                when(s.last_use),
                if s.client.is_empty() {
                    "-".into()
                } else {
                    s.client.clone()
                },
                s.service.clone(),
                s.uses.to_string(),
                when(s.expires),
            ]
        },
    );
    Ok(Reply::new(human, json!({"mailbox": mb.as_str(), "sessions": sessions})))
}

fn logout(admin: &Admin, mb: &Mailbox, now: u64) -> Result<Reply> {
    let ended = admin.logout(mb, now)?;
    let human = match ended {
        0 => format!("{mb} had no open webmail sessions; nothing changed.\n"),
        n => format!("{mb}: {n} webmail session(s) ended; the next click in the webmail asks for a new code.\n"),
    };
    Ok(Reply::new(
        human,
        json!({"mailbox": mb.as_str(), "sessions_ended": ended}),
    ))
}

fn unlock(admin: &Admin, mb: &Mailbox, now: u64) -> Result<Reply> {
    let was = admin.unlock(mb, now)?;
    let human = if was {
        format!("{mb} is unlocked: its failed-code counter is back to 0.\n")
    } else {
        format!("{mb} was not locked (no failed codes); nothing changed.\n")
    };
    Ok(Reply::new(human, json!({"mailbox": mb.as_str(), "was_locked": was})))
}

fn store_copy(admin: &Admin, from: &Path, dry_run: bool, replace: bool, ui: &Ui) -> Result<Reply> {
    use std::io::IsTerminal;
    // A bar only for a person watching: not in JSON, logs or pipes.
    let bar = (!ui.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} mailboxes copied or checked ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let summary = admin.store_copy(from, dry_run, replace, &mut |p| {
        if let Some(bar) = &bar {
            bar.set_position(p.mailboxes_done as u64);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let s = summary?;
    let verb = if s.dry_run { "would copy" } else { "copied" };
    let mut human = format!(
        "From {} to {}: {verb} {} domain policies ({} already there) and {} mailboxes ({} already there).\n",
        escape_controls(&s.from),
        escape_controls(&s.to),
        s.domains_copied,
        s.domains_unchanged,
        s.mailboxes_copied,
        s.mailboxes_unchanged
    );
    if !s.mailboxes_differing.is_empty() {
        human.push_str(&format!(
            "{} mailboxes are in the target with other content and were left alone (--replace overwrites them):\n",
            s.mailboxes_differing.len()
        ));
        for m in &s.mailboxes_differing {
            human.push_str(&format!("  {}\n", escape_controls(m)));
        }
    }
    Ok(Reply::new(human, serde_json::to_value(&s).unwrap_or(Value::Null)))
}

fn store_init(admin: &Admin, dir: Option<&Path>, adopt: bool) -> Result<Reply> {
    let existing = if adopt {
        ExistingFolder::Adopt
    } else {
        ExistingFolder::Refuse
    };
    let (root, created) = admin.store_init(dir, existing)?;
    let root_text = escape_controls(&root).into_owned();
    let human = if created.is_empty() {
        format!("The store {root_text} was already complete; nothing was created.\n")
    } else {
        let mut h = format!("Store {root_text}: created\n");
        for p in &created {
            h.push_str(&format!("  {}\n", escape_controls(p)));
        }
        h
    };
    Ok(Reply::new(human, json!({"store": root, "created": created})))
}

/// The doveconf program doctor asks: `PAM_MFA_DOVECONF` if set (empty: no
/// Dovecot check; tests point it at a script), else `doveconf` on PATH, if
/// there is one.
fn doveconf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PAM_MFA_DOVECONF") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("doveconf"))
        .find(|p| p.is_file())
}

/// `mfa-ctl doctor`: runs the checks and returns what to print and the exit
/// status (0 no error, 1 an error found); `Err` when it could not run (2).
pub fn doctor(config: Option<&Path>, args: &DoctorArgs) -> Result<(Reply, u8)> {
    let opts = doctor::Options {
        config: config.map(Path::to_path_buf),
        pam_files: args.pam_files.clone(),
        pam_dir: args.pam_dir.clone(),
        doveconf: doveconf(),
    };
    let report = doctor::run(&opts).map_err(Error::Doctor)?;
    let (errors, warnings) = (report.errors(), report.warnings());
    let mut human: String = report.findings.iter().map(finding_line).collect();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let files: Vec<String> = report
        .pam_files
        .iter()
        .map(|p| escape_controls(&p.to_string_lossy()).into_owned())
        .collect();
    human.push_str(&match report.store.as_deref() {
        Some(store) => format!(
            "doctor: checked the store {} and the PAM service files {}\n",
            escape_controls(store),
            list_or(&files, "-")
        ),
        None => format!(
            "doctor: checked the PAM service files {} (not the store: the configuration is broken)\n",
            list_or(&files, "-")
        ),
    });
    if !report.configs.is_empty() {
        let configs: Vec<String> = report
            .configs
            .iter()
            .map(|p| escape_controls(&p.to_string_lossy()).into_owned())
            .collect();
        human.push_str(&format!(
            "doctor: also checked the configurations named with config= and their stores: {}\n",
            list_or(&configs, "-")
        ));
    }
    human.push_str(&if errors + warnings == 0 {
        "doctor: no problems found\n".to_string()
    } else {
        format!("doctor: {}, {}\n", plural(errors, "error"), plural(warnings, "warning"))
    });
    let findings: Vec<Value> = report.findings.iter().map(finding_json).collect();
    let json = json!({
        "findings": findings,
        "errors": errors,
        "warnings": warnings,
        "store": report.store.as_deref(),
        "pam_files": report.pam_files.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
        "configs": report.configs.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
    });
    Ok((Reply::new(human, json), u8::from(errors > 0)))
}

/// `ERROR FILE:LINE: what is wrong — what to do`; everything from a file
/// escaped, so a hostile service file cannot drive the admin's terminal.
fn finding_line(f: &Finding) -> String {
    let level = match f.level {
        Level::Error => "ERROR",
        Level::Warning => "WARNING",
    };
    let place = match (&f.file, f.line) {
        (Some(p), Some(n)) => format!("{}:{n}: ", escape_controls(&p.to_string_lossy())),
        (Some(p), None) => format!("{}: ", escape_controls(&p.to_string_lossy())),
        (None, _) => String::new(),
    };
    let fix = if f.fix.is_empty() {
        String::new()
    } else {
        format!(" \u{2014} {}", escape_controls(&f.fix))
    };
    format!("{level} {place}{}{fix}\n", escape_controls(&f.message))
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "level": f.level.as_str(),
        "file": f.file.as_deref().map(|p| p.to_string_lossy()),
        "line": f.line,
        "message": f.message,
        "fix": f.fix,
    })
}
