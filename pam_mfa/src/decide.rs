//! The decision "accept this login?", as pure functions of the request, the
//! stored records, the policy, the configuration and the time. The PAM entry
//! points only gather these inputs, call here under the mailbox lock, write
//! back the new state and log the outcome; everything that can be argued
//! about is here and tested directly.

use crate::app_password::{self, AppCheck, AppRefusal};
use crate::config::Config;
use crate::lockout::{self, Lock};
use crate::policy::{self, DomainPolicy, NoCodeReason, Requirement};
use crate::recovery;
use crate::secret;
use crate::sms::{self, Limit, Purpose};
use crate::split::Factor;
use crate::store::records::{LastUse, Login, LoginResult, MailboxRecord, MailboxState, Method};
use crate::totp::{CodeCheck, SeedError, TotpSeed};
use crate::webmail;

/// One login attempt, as the module saw it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The normalised mailbox name (`local@domain`).
    pub mailbox: &'a str,
    pub service: &'a str,
    pub rhost: Option<&'a str>,
    pub now: u64,
    /// The keyed hash of the whole typed string (`webmail::tag`), when
    /// `split` found the login may be a webmail session's.
    pub webmail_tag: Option<&'a str>,
    /// A fresh code to text if this login asks for one (no code typed, a
    /// confirmed number, within the limits). The caller draws it from the
    /// OS RNG, so the decision itself stays a pure function; `None` sends
    /// nothing.
    pub new_sms_code: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(Accept),
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    Code {
        step: u64,
    },
    /// The string of an open webmail session, logging in again.
    WebmailSession {
        started: u64,
        ends: u64,
    },
    RecoveryCode {
        index: usize,
        left: usize,
    },
    /// The code sent by text message.
    Sms,
    PasswordOnly(NoCodeReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    CodeMissing,
    WrongCode {
        failures: u32,
        counted: bool,
    },
    Replayed {
        step: u64,
    },
    EnrolmentRequired,
    /// The string of a webmail session that has ended (window, logout):
    /// refused, not counted.
    WebmailSessionEnded,
    Locked(Lock),
    /// The stored seed is unusable: an admin must look (fail closed).
    BadSeed(SeedError),
    /// No code typed: `new_sms_code` was recorded as sent to `to`; the
    /// caller delivers it once this state is stored.
    CodeSent {
        to: String,
    },
    /// No code typed, and the text with one could not be delivered (the
    /// caller's verdict after [`Refusal::CodeSent`]; `why` is for the log).
    SmsNotSent {
        why: String,
    },
    /// No code typed; none sent, the last text being younger than
    /// `resend_after`.
    SmsResendTooSoon {
        until: u64,
    },
    /// No code typed; none sent, `max_per_hour` being reached.
    SmsHourlyCap {
        until: u64,
    },
    /// The code sent by text message, typed after `code_lifetime`.
    SmsExpired,
    /// The code sent by text message, accepted once already.
    SmsReplayed,
    /// The mailbox has a number but the configuration has no `[sms]`.
    SmsNotConfigured,
}

impl Refusal {
    /// What the login history records.
    pub fn result(&self) -> LoginResult {
        match self {
            Refusal::CodeMissing => LoginResult::CodeMissing,
            Refusal::WrongCode { .. } => LoginResult::WrongCode,
            Refusal::Replayed { .. } => LoginResult::Replayed,
            Refusal::EnrolmentRequired => LoginResult::EnrolmentRequired,
            Refusal::WebmailSessionEnded => LoginResult::WebmailSessionEnded,
            Refusal::Locked(Lock::Backoff { .. }) => LoginResult::BackingOff,
            Refusal::Locked(Lock::Blocked) => LoginResult::Blocked,
            Refusal::BadSeed(_) => LoginResult::BadSeed,
            Refusal::CodeSent { .. } => LoginResult::CodeSentBySms,
            Refusal::SmsNotSent { .. } => LoginResult::SmsNotSent,
            Refusal::SmsResendTooSoon { .. } => LoginResult::SmsResendTooSoon,
            Refusal::SmsHourlyCap { .. } => LoginResult::SmsHourlyCap,
            Refusal::SmsExpired => LoginResult::SmsExpired,
            Refusal::SmsReplayed => LoginResult::Replayed,
            Refusal::SmsNotConfigured => LoginResult::SmsNotConfigured,
        }
    }

    /// Short text for logs and `mfa-ctl logins`.
    pub fn reason(&self) -> &'static str {
        self.result().as_str()
    }
}

/// What the login history records for a refused app password.
impl From<&AppRefusal> for LoginResult {
    fn from(why: &AppRefusal) -> LoginResult {
        match why {
            AppRefusal::Expired => LoginResult::AppPasswordExpired,
            AppRefusal::Service => LoginResult::AppPasswordService,
            AppRefusal::Network => LoginResult::AppPasswordNetwork,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The state to store, or `None` to leave the store untouched.
    pub state: Option<MailboxState>,
}

fn login(req: &Request, method: Method, result: LoginResult) -> Login {
    Login {
        at: req.now,
        service: req.service.to_string(),
        rhost: req.rhost.unwrap_or_default().to_string(),
        method,
        result,
        count: 0,
    }
}

/// Whether a login of this mailbox must give a code now: `split` cuts one
/// off and `verify` (with `prompt`) asks for one only then.
pub fn needs_code(policy: &DomainPolicy, record: Option<&MailboxRecord>, now: u64) -> bool {
    policy::requirement(policy, record.is_some_and(MailboxRecord::mfa_on), now) == Requirement::Code
}

/// What a login that got the password right may do, given the factor typed
/// after it (if any). `record` is `None` for a mailbox the store does not
/// know; such a mailbox gets no state (nothing is written for it).
pub fn decide(
    req: &Request,
    factor: Option<&Factor>,
    policy: &DomainPolicy,
    record: Option<&MailboxRecord>,
    state: &MailboxState,
    cfg: &Config,
) -> Decision {
    let enrolled = record.is_some_and(MailboxRecord::mfa_on);
    let keep = cfg.state.keep_logins;
    let mut next = state.clone();
    let finish = |outcome: Outcome, next: MailboxState| Decision {
        state: record.is_some().then_some(next),
        outcome,
    };
    match policy::requirement(policy, enrolled, req.now) {
        Requirement::PasswordOnly(why) => {
            next.push_login(login(req, Method::PasswordOnly, LoginResult::Ok), keep);
            return finish(Outcome::Accepted(Accept::PasswordOnly(why)), next);
        }
        Requirement::EnrolmentRequired => {
            let r = Refusal::EnrolmentRequired;
            next.push_login(login(req, Method::PasswordOnly, r.result()), keep);
            return finish(Outcome::Refused(r), next);
        }
        Requirement::Code => {}
    }
    let Some(record) = record else {
        return finish(Outcome::Refused(Refusal::EnrolmentRequired), next);
    };
    let window = webmail::window_for(cfg, policy, req.service, req.rhost);
    match (window, req.webmail_tag, factor) {
        (Some(window), Some(tag), Some(Factor::Totp(_))) => {
            decide_webmail(req, factor, record, state, cfg, window, tag)
        }
        _ => decide_code(req, factor, record, state, cfg),
    }
}

/// A code login from a webmail server: the string of an open session logs
/// in again, whatever the code's age; otherwise the code is judged as any
/// other, and a fresh one opens a session for its string. Everything that
/// refuses a code first (a lock-out, an unusable seed) refuses a session
/// too.
fn decide_webmail(
    req: &Request,
    factor: Option<&Factor>,
    record: &MailboxRecord,
    state: &MailboxState,
    cfg: &Config,
    window: u64,
    tag: &str,
) -> Decision {
    let usable = record.totp.as_ref().is_none_or(|s| s.generator().is_ok())
        && lockout::lock(state, &cfg.lockout, req.now).is_none();
    if usable && webmail::find_open(state, tag, cfg, window, req.now).is_some() {
        let mut next = state.clone();
        webmail::prune(&mut next, cfg, window, req.now);
        if let Some(s) =
            webmail::find_open(&next, tag, cfg, window, req.now).and_then(|i| next.webmail_sessions.get_mut(i))
        {
            s.last_use = req.now;
            s.uses = s.uses.saturating_add(1);
            let accept = Accept::WebmailSession {
                started: s.started,
                ends: webmail::ends(s, cfg, window),
            };
            next.push_login(
                login(req, Method::WebmailSession, LoginResult::Ok),
                cfg.state.keep_logins,
            );
            return Decision {
                outcome: Outcome::Accepted(accept),
                state: Some(next),
            };
        }
    }
    if usable && webmail::is_ended(state, tag, cfg, window, req.now) {
        let mut next = state.clone();
        webmail::prune(&mut next, cfg, window, req.now);
        let r = Refusal::WebmailSessionEnded;
        next.push_login(login(req, Method::WebmailSession, r.result()), cfg.state.keep_logins);
        return Decision {
            outcome: Outcome::Refused(r),
            state: Some(next),
        };
    }
    let mut d = decide_code(req, factor, record, state, cfg);
    if let (Outcome::Accepted(Accept::Code { .. } | Accept::Sms), Some(next)) = (&d.outcome, d.state.as_mut()) {
        webmail::open(
            next,
            tag.to_string(),
            (req.service, req.rhost.unwrap_or_default()),
            cfg,
            window,
            req.now,
        );
    }
    d
}

/// The second factor of a mailbox that must give one: lock-out, seed,
/// window, replay, failure counting, and codes by text message (sending one
/// when none was typed, accepting the one sent). `mfa-ctl disable --code`
/// checks its code here too, so proving possession to switch MFA off is
/// held to the same rules as a login.
pub fn decide_code(
    req: &Request,
    factor: Option<&Factor>,
    record: &MailboxRecord,
    state: &MailboxState,
    cfg: &Config,
) -> Decision {
    let keep = cfg.state.keep_logins;
    let next = state.clone();
    let finish = |outcome: Outcome, mut next: MailboxState| {
        // A block ends the mailbox's webmail sessions: `mfa-ctl unlock`
        // lets the owner in again, not whoever held a session's string.
        if next.failures >= cfg.lockout.block_after {
            for s in &mut next.webmail_sessions {
                s.expires = s.expires.min(req.now);
            }
        }
        Decision {
            state: Some(next),
            outcome,
        }
    };
    let sms = record.sms_number();
    if record.totp.is_none() && sms.is_none() {
        return finish(Outcome::Refused(Refusal::EnrolmentRequired), next);
    }
    if let Some(lock) = lockout::lock(state, &cfg.lockout, req.now) {
        // Not counted and not written: a locked mailbox under attack costs
        // no writes, and gets no text message.
        return Decision {
            outcome: Outcome::Refused(Refusal::Locked(lock)),
            state: None,
        };
    }
    let generator = match record.totp.as_ref().map(TotpSeed::generator).transpose() {
        Ok(g) => g,
        Err(e) => {
            return Decision {
                outcome: Outcome::Refused(Refusal::BadSeed(e)),
                state: None,
            };
        }
    };
    // Failed attempts are fingerprinted with a key only the record holds:
    // the app's seed, or for a mailbox with only a number its text key.
    let fp_key: &[u8] = match (&generator, sms) {
        (Some(g), _) => g.key(),
        (None, Some((s, _))) => s.key.as_bytes(),
        (None, None) => &[],
    };
    let method = match (factor, &generator) {
        (Some(Factor::Recovery(_)), _) => Method::RecoveryCode,
        (_, None) => Method::Sms,
        _ => Method::Code,
    };
    let refuse_counted = |mut next: MailboxState, what: &[u8]| {
        let fp = secret::fingerprint(fp_key, what);
        let counted = lockout::record_failure(&mut next, fp, req.now);
        let r = Refusal::WrongCode {
            failures: next.failures,
            counted,
        };
        next.push_login(login(req, method, r.result()), keep);
        finish(Outcome::Refused(r), next)
    };
    let refuse_uncounted = |mut next: MailboxState, method: Method, r: Refusal| {
        next.push_login(login(req, method, r.result()), keep);
        finish(Outcome::Refused(r), next)
    };
    match factor {
        None => {
            // Counted once however often it repeats: a client with a stored
            // password and no code must not lock its owner out (nor does
            // asking for a text again and again).
            let mut next = next;
            lockout::record_failure(&mut next, secret::fingerprint(fp_key, b"missing"), req.now);
            let (method, r) = match (sms, cfg.sms.as_ref()) {
                (None, _) => (Method::Code, Refusal::CodeMissing),
                (Some(_), None) => (Method::Sms, Refusal::SmsNotConfigured),
                (Some((sms_rec, number)), Some(sms_cfg)) => match sms::may_send(state, sms_cfg, req.now) {
                    Err(Limit::ResendTooSoon { until }) => (Method::Sms, Refusal::SmsResendTooSoon { until }),
                    Err(Limit::HourlyCap { until }) => (Method::Sms, Refusal::SmsHourlyCap { until }),
                    Ok(()) => match req.new_sms_code {
                        Some(code) => {
                            sms::record_send(&mut next, sms_rec, req.mailbox, number, Purpose::Login, code, req.now);
                            (Method::Sms, Refusal::CodeSent { to: number.to_string() })
                        }
                        None => (Method::Sms, Refusal::CodeMissing),
                    },
                },
            };
            next.push_login(login(req, method, r.result()), keep);
            finish(Outcome::Refused(r), next)
        }
        Some(Factor::Totp(code)) => {
            // The code sent last, if this is it; else the app's code.
            let sent = state.sms_code.as_ref().filter(|s| s.purpose == Purpose::Login);
            if let (Some((sms_rec, number)), Some(sent)) = (sms, sent) {
                let check = |lifetime| {
                    sms::check(
                        sms_rec,
                        sent,
                        req.mailbox,
                        number,
                        Purpose::Login,
                        code,
                        lifetime,
                        req.now,
                    )
                };
                match cfg.sms.as_ref().map(|c| check(c.code_lifetime)) {
                    Some(sms::Check::Fresh) => {
                        let mut next = next;
                        if let Some(s) = next.sms_code.as_mut() {
                            s.used = true;
                        }
                        lockout::reset(&mut next);
                        next.push_login(login(req, Method::Sms, LoginResult::Ok), keep);
                        return finish(Outcome::Accepted(Accept::Sms), next);
                    }
                    // Not counted, like an app code's replay: a mail client
                    // opens several connections with the same string.
                    Some(sms::Check::Used) => return refuse_uncounted(next, Method::Sms, Refusal::SmsReplayed),
                    // Not counted either: the right code, typed too late.
                    Some(sms::Check::Expired) => return refuse_uncounted(next, Method::Sms, Refusal::SmsExpired),
                    Some(sms::Check::NoMatch) => {}
                    // Without [sms] nothing says how long a code lives: the
                    // code sent is refused, not counted, and the log says why.
                    None => {
                        if check(u64::MAX) != sms::Check::NoMatch {
                            return refuse_uncounted(next, Method::Sms, Refusal::SmsNotConfigured);
                        }
                    }
                }
            }
            let Some(generator) = &generator else {
                // Only a number: a wrong guess at the code sent. The same
                // guess at the same code counts once; at a newer code, again.
                let mut what = b"sms:".to_vec();
                what.extend_from_slice(code.as_bytes());
                what.extend_from_slice(format!(":sent:{}", sent.map_or(0, |s| s.at)).as_bytes());
                let d = refuse_counted(next, &what);
                zeroize::Zeroize::zeroize(&mut what);
                return d;
            };
            match generator.check(code, req.now, cfg.totp.window, state.last_step) {
                CodeCheck::Fresh { step } => {
                    let mut next = next;
                    next.last_step = Some(step);
                    lockout::reset(&mut next);
                    next.push_login(login(req, Method::Code, LoginResult::Ok), keep);
                    finish(Outcome::Accepted(Accept::Code { step }), next)
                }
                CodeCheck::Replayed { step } => {
                    // Not counted: a replay is no guess, and parallel connections
                    // of one client replay the same string all the time.
                    refuse_uncounted(next, Method::Code, Refusal::Replayed { step })
                }
                CodeCheck::Wrong => {
                    // The step is part of the fingerprint: a wrong code repeated
                    // within one step (a client retrying) counts once, but one
                    // fixed guess sent every step counts every step. Without it a
                    // guess of a future step's code would be tried for free until
                    // that step came into the window.
                    let mut what = b"code:".to_vec();
                    what.extend_from_slice(code.as_bytes());
                    what.extend_from_slice(format!(":step:{}", generator.step_of(req.now)).as_bytes());
                    let d = refuse_counted(next, &what);
                    zeroize::Zeroize::zeroize(&mut what);
                    d
                }
            }
        }
        Some(Factor::Recovery(code)) => {
            let set = record.recovery.as_ref();
            let found = set.and_then(|set| {
                let used = state.recovery_used_of(&set.id);
                recovery::find(set, used, req.mailbox, code).map(|i| (set, used.len(), i))
            });
            match found {
                Some((set, used, index)) => {
                    let mut next = next;
                    if next.recovery_set.as_deref() != Some(set.id.as_str()) {
                        next.recovery_set = Some(set.id.clone());
                        next.recovery_used.clear();
                    }
                    next.recovery_used.push(u16::try_from(index).unwrap_or(u16::MAX));
                    lockout::reset(&mut next);
                    next.push_login(login(req, Method::RecoveryCode, LoginResult::Ok), keep);
                    let left = set.hashes.len().saturating_sub(used + 1);
                    finish(Outcome::Accepted(Accept::RecoveryCode { index, left }), next)
                }
                // Used up meanwhile (a parallel login took it): a wrong code now.
                None => {
                    let mut what = b"recovery:".to_vec();
                    what.extend_from_slice(code.as_bytes());
                    let d = refuse_counted(next, &what);
                    zeroize::Zeroize::zeroize(&mut what);
                    d
                }
            }
        }
    }
}

/// Outcome of the `app_password` role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppDecision {
    /// Not an app password of this mailbox: let the rest of the stack decide.
    NotApplicable,
    Accepted {
        label: String,
        state: MailboxState,
    },
    Refused {
        label: String,
        why: AppRefusal,
        state: MailboxState,
    },
}

/// Whether `candidate` (normalised) is a usable app password of the mailbox.
pub fn decide_app_password(
    req: &Request,
    candidate: &str,
    record: &MailboxRecord,
    state: &MailboxState,
    cfg: &Config,
) -> AppDecision {
    let keep = cfg.state.keep_logins;
    let mut next = state.clone();
    match app_password::check(
        &record.app_passwords,
        req.mailbox,
        candidate,
        req.service,
        req.rhost,
        req.now,
    ) {
        AppCheck::NoMatch => AppDecision::NotApplicable,
        AppCheck::Accept(i) => {
            let (id, label) = record
                .app_passwords
                .get(i)
                .map(|a| (a.id.clone(), a.label.clone()))
                .unwrap_or_default();
            next.app_password_use.insert(
                id,
                LastUse {
                    at: req.now,
                    rhost: req.rhost.unwrap_or_default().to_string(),
                },
            );
            next.push_login(login(req, Method::AppPassword, LoginResult::Ok), keep);
            AppDecision::Accepted { label, state: next }
        }
        AppCheck::Refuse(i, why) => {
            let label = record.app_passwords.get(i).map(|a| a.label.clone()).unwrap_or_default();
            next.push_login(login(req, Method::AppPassword, LoginResult::from(&why)), keep);
            AppDecision::Refused {
                label,
                why,
                state: next,
            }
        }
    }
}

/// The `account` role: only a blocked mailbox is refused here. A back-off
/// already refused the code in `verify`; `account` must never be the reason
/// an ordinary login fails.
pub fn account_blocked(record: Option<&MailboxRecord>, state: &MailboxState, cfg: &Config) -> bool {
    record.is_some_and(MailboxRecord::mfa_on) && state.failures >= cfg.lockout.block_after
}

#[cfg(test)]
mod tests {
    //! The decision at fixed instants: no clock, no files, no PAM.
    use super::*;
    use crate::policy::Policy;
    use crate::recovery;
    use crate::totp::{Algorithm, TotpSeed};
    use zeroize::Zeroizing;

    const T: u64 = 1_700_000_015; // inside step 56_666_667
    const MB: &str = "alice@example.org";

    fn seed() -> TotpSeed {
        TotpSeed {
            secret: Zeroizing::new(crate::totp::RFC6238_KEY.into()),
            digits: 6,
            period: 30,
            algorithm: Algorithm::SHA1,
            created: 0,
        }
    }

    fn code(t: u64) -> Factor {
        Factor::Totp(seed().generator().unwrap().code_at(t))
    }

    fn enrolled() -> MailboxRecord {
        MailboxRecord {
            totp: Some(seed()),
            ..Default::default()
        }
    }

    fn req(now: u64) -> Request<'static> {
        Request {
            mailbox: MB,
            service: "imap",
            rhost: Some("192.0.2.7"),
            now,
            webmail_tag: None,
            new_sms_code: None,
        }
    }

    fn optional() -> DomainPolicy {
        DomainPolicy::default_for(Policy::Optional)
    }

    fn cfg() -> Config {
        Config::default()
    }

    #[test]
    fn fresh_code_is_accepted_and_remembered() {
        let d = decide(
            &req(T),
            Some(&code(T)),
            &optional(),
            Some(&enrolled()),
            &MailboxState::default(),
            &cfg(),
        );
        assert_eq!(d.outcome, Outcome::Accepted(Accept::Code { step: T / 30 }));
        let s = d.state.unwrap();
        assert_eq!(s.last_step, Some(T / 30));
        assert_eq!(s.logins.last().unwrap().method, Method::Code);
        assert_eq!(s.logins.last().unwrap().rhost, "192.0.2.7");
        // The same code against the new state: a replay, not counted.
        let d2 = decide(&req(T + 1), Some(&code(T)), &optional(), Some(&enrolled()), &s, &cfg());
        assert_eq!(d2.outcome, Outcome::Refused(Refusal::Replayed { step: T / 30 }));
        assert_eq!(d2.state.unwrap().failures, 0);
    }

    #[test]
    fn wrong_and_missing_codes_count() {
        let rec = enrolled();
        let mut s = MailboxState::default();
        let wrong = Factor::Totp(Zeroizing::new("000000".into()));
        let d = decide(&req(T), Some(&wrong), &optional(), Some(&rec), &s, &cfg());
        assert!(matches!(
            d.outcome,
            Outcome::Refused(Refusal::WrongCode {
                failures: 1,
                counted: true
            })
        ));
        s = d.state.unwrap();
        // Repeated identically: refused, not counted.
        let d = decide(&req(T + 5), Some(&wrong), &optional(), Some(&rec), &s, &cfg());
        assert!(matches!(
            d.outcome,
            Outcome::Refused(Refusal::WrongCode {
                failures: 1,
                counted: false
            })
        ));
        let d = decide(&req(T + 6), None, &optional(), Some(&rec), &s, &cfg());
        assert_eq!(d.outcome, Outcome::Refused(Refusal::CodeMissing));
        assert_eq!(d.state.unwrap().failures, 2);
    }

    /// One fixed wrong code, sent again and again: once per step it counts,
    /// so it reaches the back-off and the block like any other guessing.
    #[test]
    fn a_fixed_wrong_code_counts_again_in_every_later_step() {
        let rec = enrolled();
        let cfg = Config {
            lockout: crate::config::LockoutConfig {
                after: 2,
                backoff: 1,
                max_backoff: 1,
                block_after: 3,
            },
            ..cfg()
        };
        // A guess at the code of the step five ahead: wrong now, right later.
        let guess = code(T + 150);
        let mut s = MailboxState::default();
        let mut counted = Vec::new();
        for now in [T, T + 1, T + 10, T + 30, T + 31, T + 60] {
            let d = decide(&req(now), Some(&guess), &optional(), Some(&rec), &s, &cfg);
            match d.outcome {
                Outcome::Refused(Refusal::WrongCode { counted: c, .. }) => counted.push(c),
                Outcome::Refused(Refusal::Locked(Lock::Blocked)) => counted.push(false),
                other => panic!("at {now}: {other:?}"),
            }
            if let Some(next) = d.state {
                s = next;
            }
        }
        assert_eq!(counted, [true, false, false, true, false, true], "once per step");
        assert_eq!(s.failures, 3);
        // Blocked before the guessed step came into the window.
        let d = decide(&req(T + 120), Some(&guess), &optional(), Some(&rec), &s, &cfg);
        assert_eq!(d.outcome, Outcome::Refused(Refusal::Locked(Lock::Blocked)));
    }

    #[test]
    fn lockout_refuses_even_the_right_code_without_writing() {
        let s = MailboxState {
            failures: 5,
            last_failure: T - 10,
            ..Default::default()
        };
        let d = decide(&req(T), Some(&code(T)), &optional(), Some(&enrolled()), &s, &cfg());
        assert_eq!(
            d.outcome,
            Outcome::Refused(Refusal::Locked(Lock::Backoff { until: T + 20 }))
        );
        assert_eq!(d.state, None);
        // After the back-off the right code works and clears the counter.
        let d = decide(
            &req(T + 20),
            Some(&code(T + 20)),
            &optional(),
            Some(&enrolled()),
            &s,
            &cfg(),
        );
        assert!(matches!(d.outcome, Outcome::Accepted(Accept::Code { .. })));
        assert_eq!(d.state.unwrap().failures, 0);
        let blocked = MailboxState {
            failures: 100,
            ..Default::default()
        };
        let d = decide(
            &req(T),
            Some(&code(T)),
            &optional(),
            Some(&enrolled()),
            &blocked,
            &cfg(),
        );
        assert_eq!(d.outcome, Outcome::Refused(Refusal::Locked(Lock::Blocked)));
        assert!(account_blocked(Some(&enrolled()), &blocked, &cfg()));
        assert!(!account_blocked(None, &blocked, &cfg()));
    }

    #[test]
    fn policy_decides_when_no_code_is_needed() {
        let unknown = decide(&req(T), None, &optional(), None, &MailboxState::default(), &cfg());
        assert_eq!(
            unknown.outcome,
            Outcome::Accepted(Accept::PasswordOnly(NoCodeReason::NotEnrolled))
        );
        assert_eq!(
            unknown.state, None,
            "nothing is written for a mailbox the store does not know"
        );
        let disabled = DomainPolicy::default_for(Policy::Disabled);
        let d = decide(
            &req(T),
            None,
            &disabled,
            Some(&enrolled()),
            &MailboxState::default(),
            &cfg(),
        );
        assert_eq!(
            d.outcome,
            Outcome::Accepted(Accept::PasswordOnly(NoCodeReason::DomainDisabled))
        );
        let required = DomainPolicy {
            policy: Policy::Required,
            grace: Some(100),
            since: T - 50,
            webmail_window: None,
        };
        let d = decide(&req(T), None, &required, None, &MailboxState::default(), &cfg());
        assert_eq!(
            d.outcome,
            Outcome::Accepted(Accept::PasswordOnly(NoCodeReason::Grace { ends: T + 50 }))
        );
        let d = decide(&req(T + 50), None, &required, None, &MailboxState::default(), &cfg());
        assert_eq!(d.outcome, Outcome::Refused(Refusal::EnrolmentRequired));
        // A pending (unconfirmed) seed does not count as enrolled.
        let pending = MailboxRecord {
            pending: Some(seed()),
            ..Default::default()
        };
        let d = decide(
            &req(T),
            None,
            &optional(),
            Some(&pending),
            &MailboxState::default(),
            &cfg(),
        );
        assert!(matches!(d.outcome, Outcome::Accepted(Accept::PasswordOnly(_))));
    }

    #[test]
    fn recovery_code_once() {
        let (set, codes) = recovery::generate(MB, 3, T).unwrap();
        let rec = MailboxRecord {
            recovery: Some(set),
            ..enrolled()
        };
        let f = Factor::Recovery(recovery::normalize(&codes[1]).unwrap());
        let d = decide(
            &req(T),
            Some(&f),
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &cfg(),
        );
        assert_eq!(d.outcome, Outcome::Accepted(Accept::RecoveryCode { index: 1, left: 2 }));
        let s = d.state.unwrap();
        let d = decide(&req(T + 1), Some(&f), &optional(), Some(&rec), &s, &cfg());
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::WrongCode { .. })));
    }

    #[test]
    fn clock_extremes_do_not_panic() {
        for now in [0, 1, 29, u64::MAX / 30, crate::clock::MAX_SANE_TIME, u64::MAX] {
            let d = decide(
                &req(now),
                Some(&code(now)),
                &optional(),
                Some(&enrolled()),
                &MailboxState::default(),
                &cfg(),
            );
            assert!(matches!(d.outcome, Outcome::Accepted(_) | Outcome::Refused(_)));
        }
    }

    #[test]
    fn bad_seed_fails_closed() {
        let mut rec = enrolled();
        if let Some(s) = rec.totp.as_mut() {
            s.secret = Zeroizing::new("GEZDGNBV".into());
        }
        let d = decide(
            &req(T),
            Some(&code(T)),
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &cfg(),
        );
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::BadSeed(_))));
        assert_eq!(d.state, None);
    }

    // ---- codes by text message ----

    const NUM: &str = "+4915112344567";

    fn with_number(record: MailboxRecord) -> MailboxRecord {
        MailboxRecord {
            sms: Some(crate::sms::SmsRecord {
                number: Some(NUM.into()),
                ..crate::sms::SmsRecord::new().unwrap()
            }),
            ..record
        }
    }

    fn sms_cfg() -> Config {
        Config {
            sms: Some(crate::config::SmsConfig {
                command: "/usr/local/sbin/send".into(),
                ..Default::default()
            }),
            ..cfg()
        }
    }

    /// A login at `now` that types nothing and would text `code`.
    fn ask(now: u64, code: &'static str) -> Request<'static> {
        Request {
            new_sms_code: Some(code),
            webmail_tag: None,
            ..req(now)
        }
    }

    fn typed(code: &str) -> Factor {
        Factor::Totp(Zeroizing::new(code.into()))
    }

    #[test]
    fn no_code_texts_one_which_then_logs_in_once() {
        let rec = with_number(MailboxRecord::default());
        let c = sms_cfg();
        let d = decide(
            &ask(T, "493817"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &c,
        );
        assert_eq!(d.outcome, Outcome::Refused(Refusal::CodeSent { to: NUM.into() }));
        let s = d.state.unwrap();
        let sent = s.sms_code.clone().unwrap();
        assert_eq!((sent.at, sent.used, s.sms_sent.clone()), (T, false, vec![T]));
        assert!(!sent.hash.contains("493817"));
        let last = s.logins.last().unwrap();
        assert_eq!((last.method, last.result), (Method::Sms, LoginResult::CodeSentBySms));
        // Typed with the password: accepted, and the failure the missing
        // code counted is cleared.
        assert_eq!(s.failures, 1);
        let d = decide(&req(T + 20), Some(&typed("493817")), &optional(), Some(&rec), &s, &c);
        assert_eq!(d.outcome, Outcome::Accepted(Accept::Sms));
        let s = d.state.unwrap();
        assert!(s.sms_code.as_ref().unwrap().used);
        assert_eq!(s.failures, 0);
        assert_eq!(s.logins.last().unwrap().method, Method::Sms);
        // Once only: again it is a replay, not counted.
        let d = decide(&req(T + 21), Some(&typed("493817")), &optional(), Some(&rec), &s, &c);
        assert_eq!(d.outcome, Outcome::Refused(Refusal::SmsReplayed));
        assert_eq!(d.state.unwrap().failures, 0);
    }

    #[test]
    fn a_texted_code_lives_code_lifetime() {
        let rec = with_number(MailboxRecord::default());
        let c = sms_cfg();
        let lifetime = c.sms.as_ref().unwrap().code_lifetime;
        let s = decide(
            &ask(T, "111222"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &c,
        )
        .state
        .unwrap();
        let at = |now| decide(&req(now), Some(&typed("111222")), &optional(), Some(&rec), &s, &c);
        assert_eq!(at(T + lifetime - 1).outcome, Outcome::Accepted(Accept::Sms));
        let late = at(T + lifetime);
        assert_eq!(late.outcome, Outcome::Refused(Refusal::SmsExpired));
        assert_eq!(late.state.unwrap().failures, s.failures, "too late is not a guess");
    }

    #[test]
    fn a_newer_text_replaces_the_older_code() {
        let rec = with_number(MailboxRecord::default());
        let c = sms_cfg();
        let s = decide(
            &ask(T, "111111"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &c,
        )
        .state
        .unwrap();
        let d = decide(&ask(T + 60, "222222"), None, &optional(), Some(&rec), &s, &c);
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::CodeSent { .. })));
        let s = d.state.unwrap();
        let d = decide(&req(T + 61), Some(&typed("111111")), &optional(), Some(&rec), &s, &c);
        assert!(matches!(
            d.outcome,
            Outcome::Refused(Refusal::WrongCode { counted: true, .. })
        ));
        let d = decide(&req(T + 62), Some(&typed("222222")), &optional(), Some(&rec), &s, &c);
        assert_eq!(d.outcome, Outcome::Accepted(Accept::Sms));
    }

    #[test]
    fn the_limits_send_nothing_and_change_no_code() {
        let rec = with_number(MailboxRecord::default());
        let c = sms_cfg();
        let s = decide(
            &ask(T, "111111"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &c,
        )
        .state
        .unwrap();
        let d = decide(&ask(T + 59, "999999"), None, &optional(), Some(&rec), &s, &c);
        assert_eq!(d.outcome, Outcome::Refused(Refusal::SmsResendTooSoon { until: T + 60 }));
        let after = d.state.unwrap();
        assert_eq!((&after.sms_code, &after.sms_sent), (&s.sms_code, &s.sms_sent));
        // The code sent still works.
        let d = decide(
            &req(T + 59),
            Some(&typed("111111")),
            &optional(),
            Some(&rec),
            &after,
            &c,
        );
        assert_eq!(d.outcome, Outcome::Accepted(Accept::Sms));
        // The hourly cap, with no resend block.
        let capped = Config {
            sms: c.sms.clone().map(|s| crate::config::SmsConfig {
                resend_after: 0,
                max_per_hour: 2,
                ..s
            }),
            ..c.clone()
        };
        let mut s = MailboxState::default();
        for (i, code) in ["1", "2"].into_iter().enumerate() {
            let d = decide(&ask(T + i as u64, code), None, &optional(), Some(&rec), &s, &capped);
            assert!(matches!(d.outcome, Outcome::Refused(Refusal::CodeSent { .. })));
            s = d.state.unwrap();
        }
        let d = decide(&ask(T + 2, "3"), None, &optional(), Some(&rec), &s, &capped);
        assert_eq!(d.outcome, Outcome::Refused(Refusal::SmsHourlyCap { until: T + 3600 }));
        assert_eq!(d.state.unwrap().sms_sent, [T, T + 1]);
        let d = decide(&ask(T + 3600, "4"), None, &optional(), Some(&rec), &s, &capped);
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::CodeSent { .. })));
    }

    /// Wrong guesses at a texted code count toward the same lock-out as
    /// app codes; a locked mailbox gets no text.
    #[test]
    fn wrong_texted_codes_lock_out_and_a_locked_mailbox_gets_no_text() {
        let rec = with_number(MailboxRecord::default());
        let c = Config {
            lockout: crate::config::LockoutConfig {
                after: 2,
                backoff: 60,
                max_backoff: 60,
                block_after: 3,
            },
            ..sms_cfg()
        };
        let mut s = decide(
            &ask(T, "123456"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &c,
        )
        .state
        .unwrap();
        assert_eq!(s.failures, 1, "the missing code");
        let d = decide(&req(T + 1), Some(&typed("000000")), &optional(), Some(&rec), &s, &c);
        assert!(matches!(
            d.outcome,
            Outcome::Refused(Refusal::WrongCode {
                failures: 2,
                counted: true
            })
        ));
        s = d.state.unwrap();
        assert_eq!(s.logins.last().unwrap().method, Method::Sms);
        // Backing off: even the right code, and no text either.
        let d = decide(&req(T + 2), Some(&typed("123456")), &optional(), Some(&rec), &s, &c);
        assert!(matches!(
            d.outcome,
            Outcome::Refused(Refusal::Locked(Lock::Backoff { .. }))
        ));
        let d = decide(&ask(T + 120, "777777"), None, &optional(), Some(&rec), &s, &c);
        assert!(
            matches!(d.outcome, Outcome::Refused(Refusal::CodeSent { .. })),
            "back-off over"
        );
        let d = decide(&req(T + 61), Some(&typed("111111")), &optional(), Some(&rec), &s, &c);
        s = d.state.unwrap();
        assert_eq!(s.failures, 3);
        let d = decide(&ask(T + 7200, "777777"), None, &optional(), Some(&rec), &s, &c);
        assert_eq!(d.outcome, Outcome::Refused(Refusal::Locked(Lock::Blocked)));
        assert_eq!(d.state, None, "nothing written, nothing sent");
        assert!(account_blocked(Some(&rec), &s, &c));
    }

    #[test]
    fn app_and_number_both_log_in() {
        let rec = with_number(enrolled());
        let c = sms_cfg();
        let d = decide(
            &ask(T, "314159"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &c,
        );
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::CodeSent { .. })));
        let s = d.state.unwrap();
        let d = decide(&req(T + 1), Some(&code(T)), &optional(), Some(&rec), &s, &c);
        assert_eq!(d.outcome, Outcome::Accepted(Accept::Code { step: T / 30 }));
        let d = decide(&req(T + 2), Some(&typed("314159")), &optional(), Some(&rec), &s, &c);
        assert_eq!(d.outcome, Outcome::Accepted(Accept::Sms));
        // A wrong one is an app code's wrong guess (counted per step).
        let d = decide(&req(T + 2), Some(&typed("000001")), &optional(), Some(&rec), &s, &c);
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::WrongCode { .. })));
        assert_eq!(d.state.unwrap().logins.last().unwrap().method, Method::Code);
    }

    #[test]
    fn a_code_sent_to_confirm_a_number_does_not_log_in() {
        let rec = with_number(MailboxRecord::default());
        let c = sms_cfg();
        let mut s = MailboxState::default();
        let sms_rec = rec.sms.as_ref().unwrap();
        crate::sms::record_send(&mut s, sms_rec, MB, NUM, crate::sms::Purpose::Confirm, "271828", T);
        let d = decide(&req(T + 1), Some(&typed("271828")), &optional(), Some(&rec), &s, &c);
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::WrongCode { .. })));
    }

    #[test]
    fn without_an_sms_section_nothing_is_sent_or_accepted() {
        let rec = with_number(MailboxRecord::default());
        let d = decide(
            &ask(T, "123456"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &cfg(),
        );
        assert_eq!(d.outcome, Outcome::Refused(Refusal::SmsNotConfigured));
        assert!(d.state.unwrap().sms_code.is_none());
        // A code sent while it was configured: refused, not counted.
        let s = decide(
            &ask(T, "123456"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &sms_cfg(),
        )
        .state
        .unwrap();
        let d = decide(&req(T + 1), Some(&typed("123456")), &optional(), Some(&rec), &s, &cfg());
        assert_eq!(d.outcome, Outcome::Refused(Refusal::SmsNotConfigured));
        assert_eq!(d.state.unwrap().failures, s.failures);
    }

    #[test]
    fn a_number_counts_as_enrolled_only_once_confirmed() {
        let c = sms_cfg();
        let mut rec = with_number(MailboxRecord::default());
        let required = DomainPolicy::default_for(Policy::Required);
        assert!(needs_code(&optional(), Some(&rec), T));
        let d = decide(
            &ask(T, "123456"),
            None,
            &required,
            Some(&rec),
            &MailboxState::default(),
            &c,
        );
        assert!(matches!(d.outcome, Outcome::Refused(Refusal::CodeSent { .. })));
        if let Some(s) = rec.sms.as_mut() {
            s.pending = s.number.take();
        }
        assert!(!needs_code(&optional(), Some(&rec), T));
        let d = decide(
            &ask(T, "123456"),
            None,
            &optional(),
            Some(&rec),
            &MailboxState::default(),
            &c,
        );
        assert!(matches!(d.outcome, Outcome::Accepted(Accept::PasswordOnly(_))));
        let d = decide(
            &ask(T, "123456"),
            None,
            &required,
            Some(&rec),
            &MailboxState::default(),
            &c,
        );
        assert_eq!(d.outcome, Outcome::Refused(Refusal::EnrolmentRequired));
        assert!(
            d.state.unwrap().sms_code.is_none(),
            "a pending number is never texted at login"
        );
    }

    #[test]
    fn app_passwords() {
        let (ap, shown) = crate::app_password::generate(MB, "phone", vec!["imap".into()], vec![], None, T).unwrap();
        let rec = MailboxRecord {
            app_passwords: vec![ap],
            ..Default::default()
        };
        let cand = crate::app_password::normalize(shown.as_bytes()).unwrap();
        match decide_app_password(&req(T), &cand, &rec, &MailboxState::default(), &cfg()) {
            AppDecision::Accepted { label, state } => {
                assert_eq!(label, "phone");
                assert_eq!(state.logins.last().unwrap().method, Method::AppPassword);
                assert_eq!(state.app_password_use.values().next().unwrap().rhost, "192.0.2.7");
            }
            other => panic!("{other:?}"),
        }
        let smtp = Request {
            service: "smtp",
            ..req(T)
        };
        assert!(matches!(
            decide_app_password(&smtp, &cand, &rec, &MailboxState::default(), &cfg()),
            AppDecision::Refused {
                why: AppRefusal::Service,
                ..
            }
        ));
        let other = crate::app_password::normalize(b"abcdabcdabcdabcdabcdabcd").unwrap();
        assert_eq!(
            decide_app_password(&req(T), &other, &rec, &MailboxState::default(), &cfg()),
            AppDecision::NotApplicable
        );
    }

    /// Webmail sessions at fixed instants: from 192.0.2.80 for imap and
    /// smtp, a window of one hour.
    mod webmail_sessions {
        use super::*;
        use crate::config::WebmailConfig;
        use crate::net::Cidr;

        const TAG: &str = "aa";

        fn wcfg() -> Config {
            Config {
                webmail: WebmailConfig {
                    reuse_window: 3600,
                    idle_timeout: 3600,
                    networks: vec![Cidr::parse("192.0.2.80").unwrap()],
                    services: Some(vec!["imap".into(), "smtp".into()]),
                },
                ..cfg()
            }
        }

        fn web(now: u64, service: &'static str, tag: &'static str) -> Request<'static> {
            Request {
                service,
                rhost: Some("192.0.2.80"),
                webmail_tag: Some(tag),
                ..req(now)
            }
        }

        fn run(r: &Request, f: &Factor, s: &MailboxState, c: &Config) -> Decision {
            decide(r, Some(f), &optional(), Some(&enrolled()), s, c)
        }

        /// The state after the code of T was accepted from the webmail.
        fn opened() -> MailboxState {
            let d = run(&web(T, "imap", TAG), &code(T), &MailboxState::default(), &wcfg());
            assert_eq!(d.outcome, Outcome::Accepted(Accept::Code { step: T / 30 }));
            let s = d.state.unwrap();
            assert_eq!(s.webmail_sessions.len(), 1);
            s
        }

        #[test]
        fn the_string_logs_in_again_long_after_its_code() {
            let s = opened();
            // Two hours of clicks, a code long out of its window.
            let mut st = s;
            for now in [T + 1, T + 120, T + 1800, T + 3599] {
                let d = run(&web(now, "smtp", TAG), &code(T), &st, &wcfg());
                assert_eq!(
                    d.outcome,
                    Outcome::Accepted(Accept::WebmailSession {
                        started: T,
                        ends: T + 3600
                    }),
                    "at {now}"
                );
                st = d.state.unwrap();
            }
            assert_eq!(st.webmail_sessions[0].uses, 4);
            assert_eq!(st.last_step, Some(T / 30), "a reuse is no new code");
            // Folded in the history: one code line, one line of 4 reuses.
            assert_eq!(st.logins.len(), 2);
            assert_eq!((st.logins[1].method, st.logins[1].count), (Method::WebmailSession, 4));
            // The window's end: refused as an ended session, not counted.
            let d = run(&web(T + 3600, "imap", TAG), &code(T), &st, &wcfg());
            assert_eq!(d.outcome, Outcome::Refused(Refusal::WebmailSessionEnded));
            assert_eq!(d.state.unwrap().failures, 0);
        }

        /// Unused for idle_timeout: ended (a closed tab), refused as such.
        #[test]
        fn an_idle_session_ends() {
            let mut c = wcfg();
            c.webmail.idle_timeout = 600;
            let s = opened();
            let d = run(&web(T + 599, "imap", TAG), &code(T), &s, &c);
            assert!(matches!(d.outcome, Outcome::Accepted(Accept::WebmailSession { .. })));
            let s = d.state.unwrap();
            let d = run(&web(T + 599 + 599, "imap", TAG), &code(T), &s, &c);
            assert!(matches!(d.outcome, Outcome::Accepted(Accept::WebmailSession { .. })));
            let s = d.state.unwrap();
            let d = run(&web(T + 1198 + 600, "imap", TAG), &code(T), &s, &c);
            assert_eq!(d.outcome, Outcome::Refused(Refusal::WebmailSessionEnded));
        }

        #[test]
        fn only_from_the_networks_for_the_services_and_the_same_string() {
            let s = opened();
            let outside = Request {
                rhost: Some("192.0.2.81"),
                ..web(T + 5, "imap", TAG)
            };
            assert!(matches!(
                run(&outside, &code(T), &s, &wcfg()).outcome,
                Outcome::Refused(Refusal::Replayed { .. })
            ));
            assert!(matches!(
                run(&web(T + 5, "pop3", TAG), &code(T), &s, &wcfg()).outcome,
                Outcome::Refused(Refusal::Replayed { .. })
            ));
            // Another string (another tag) with the same code: a replay.
            assert!(matches!(
                run(&web(T + 5, "imap", "bb"), &code(T), &s, &wcfg()).outcome,
                Outcome::Refused(Refusal::Replayed { .. })
            ));
            // Webmail switched off in the configuration: nothing reuses.
            assert!(matches!(
                run(&web(T + 5, "imap", TAG), &code(T), &s, &cfg()).outcome,
                Outcome::Refused(Refusal::Replayed { .. })
            ));
            // A domain window of 0: nothing reuses either.
            let off = DomainPolicy {
                webmail_window: Some(0),
                ..optional()
            };
            assert!(matches!(
                decide(
                    &web(T + 5, "imap", TAG),
                    Some(&code(T)),
                    &off,
                    Some(&enrolled()),
                    &s,
                    &wcfg()
                )
                .outcome,
                Outcome::Refused(Refusal::Replayed { .. })
            ));
        }

        #[test]
        fn a_lock_out_refuses_and_a_block_ends_sessions() {
            let c = Config {
                lockout: crate::config::LockoutConfig {
                    after: 1,
                    backoff: 60,
                    max_backoff: 60,
                    block_after: 2,
                },
                ..wcfg()
            };
            let mut s = opened();
            let wrong = Factor::Totp(Zeroizing::new("000000".into()));
            let d = decide(&req(T + 40), Some(&wrong), &optional(), Some(&enrolled()), &s, &c);
            s = d.state.unwrap();
            // Backing off: the session waits too.
            assert!(matches!(
                run(&web(T + 41, "imap", TAG), &code(T), &s, &c).outcome,
                Outcome::Refused(Refusal::Locked(Lock::Backoff { .. }))
            ));
            assert_eq!(s.webmail_sessions.len(), 1);
            let d = decide(&req(T + 200), Some(&wrong), &optional(), Some(&enrolled()), &s, &c);
            let mut s = d.state.unwrap();
            assert!(
                s.webmail_sessions.iter().all(|x| x.expires <= T + 200),
                "blocked: sessions end"
            );
            // Unlocked: the string is an ended session's, refused, not counted.
            crate::lockout::reset(&mut s);
            let d = run(&web(T + 201, "imap", TAG), &code(T), &s, &c);
            assert_eq!(d.outcome, Outcome::Refused(Refusal::WebmailSessionEnded));
            assert_eq!(d.state.unwrap().failures, 0);
        }

        #[test]
        fn a_recovery_code_opens_no_session() {
            let (set, shown) = recovery::generate(MB, 2, T).unwrap();
            let rec = MailboxRecord {
                recovery: Some(set),
                ..enrolled()
            };
            let f = Factor::Recovery(recovery::normalize(&shown[0]).unwrap());
            let d = decide(
                &web(T, "imap", TAG),
                Some(&f),
                &optional(),
                Some(&rec),
                &MailboxState::default(),
                &wcfg(),
            );
            assert!(matches!(d.outcome, Outcome::Accepted(Accept::RecoveryCode { .. })));
            assert!(d.state.unwrap().webmail_sessions.is_empty());
        }
    }
}
