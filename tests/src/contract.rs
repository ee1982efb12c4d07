//! The store contract as tests, written once against [`Backend`] so that
//! every backend runs the same suite: the file store and PostgreSQL behave
//! alike for the module and mfa-ctl only if they pass the same checks. It
//! lives in the test crate, not in pam_mfa, because a backend's setup can
//! need what only the tests have (a real PostgreSQL server, [`crate::pg`]).
//!
//! [`contract_tests!`](crate::contract_tests)`(fresh, missing)` makes one
//! `#[test]` per check, where `fresh()` gives `(keep_alive, store)`: a store
//! that is set up and empty, with whatever keeps it alive (a temp folder, a
//! database) dropped after the store; and `missing()` the same for a store
//! that is not there.

use pam_mfa::config::Config;
use pam_mfa::mailbox::Mailbox;
use pam_mfa::policy::{DomainPolicy, Policy};
use pam_mfa::store::backend::{Backend, MailboxLock};
use pam_mfa::store::records::{MailboxRecord, MailboxState};
use pam_mfa::store::{Durability, OnMissing, StoreError};
use pam_mfa::totp::{Algorithm, TotpSeed};

fn mb(name: &str) -> Mailbox {
    Mailbox::parse(name.as_bytes(), None).unwrap()
}

fn enrolled() -> MailboxRecord {
    MailboxRecord {
        totp: Some(TotpSeed {
            secret: String::from(pam_mfa::totp::RFC6238_KEY).into(),
            digits: 6,
            period: 30,
            algorithm: Algorithm::SHA1,
            created: 1,
        }),
        ..Default::default()
    }
}

fn state(step: u64) -> MailboxState {
    MailboxState {
        last_step: Some(step),
        ..Default::default()
    }
}

/// A store that is not there is an error from every read, never "empty".
pub fn missing_store_is_an_error<B: Backend>(store: &B) {
    // Each backend says "not there" its own way (a missing folder, a
    // database out of reach); what every one must do is refuse, with an
    // error that is not one of a login's ordinary retries.
    let is_missing = |r: Result<(), StoreError>| match r {
        Err(StoreError::Conflict { .. } | StoreError::ChangedDuringLogin { .. }) | Ok(()) => {
            eprintln!("a missing store answered {r:?}");
            false
        }
        Err(_) => true,
    };
    assert!(is_missing(store.check_ready()));
    assert!(is_missing(store.read_mailbox(&mb("a@example.org")).map(|_| ())));
    assert!(is_missing(
        store.policy_for("example.org", &Config::default()).map(|_| ())
    ));
    assert!(is_missing(
        store.lock(&mb("a@example.org"), OnMissing::Skip).map(|_| ())
    ));
}

/// A mailbox the store does not know: nothing to read, nothing to lock.
pub fn unknown_mailbox_is_none<B: Backend>(store: &B) {
    store.check_ready().unwrap();
    assert!(store.read_mailbox(&mb("nobody@example.org")).unwrap().is_none());
    assert!(
        store
            .lock(&mb("nobody@example.org"), OnMissing::Skip)
            .unwrap()
            .is_none()
    );
}

/// What is written through a lock is what the next reader and locker see,
/// record and state together.
pub fn writes_round_trip<B: Backend>(store: &B) {
    let alice = mb("alice@example.org");
    let mut l = store.lock(&alice, OnMissing::Create).unwrap().unwrap();
    assert!(l.record().is_none());
    l.write(&enrolled(), &state(7)).unwrap();
    drop(l);
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!((file.record, file.state), (enrolled(), state(7)));
    let mut l = store.lock(&alice, OnMissing::Skip).unwrap().unwrap();
    assert_eq!((l.record(), l.state()), (Some(&enrolled()), &state(7)));
    l.write_state(&state(8), Durability::Configured).unwrap();
    drop(l);
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!((file.record, file.state), (enrolled(), state(8)), "the record kept");
}

/// Parallel read-modify-writes of one mailbox lose no update.
pub fn concurrent_writers_lose_nothing<B: Backend>(store: &B) {
    let alice = mb("alice@example.org");
    let mut l = store.lock(&alice, OnMissing::Create).unwrap().unwrap();
    l.write(&enrolled(), &MailboxState::default()).unwrap();
    drop(l);
    let (threads, rounds) = (8, 25);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..rounds {
                    let mut l = store.lock(&alice, OnMissing::Skip).unwrap().unwrap();
                    let mut next = l.state().clone();
                    next.failures += 1;
                    l.write_state(&next, Durability::Configured).unwrap();
                }
            });
        }
    });
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!(file.state.failures, threads * rounds);
}

/// A record that grows far past its first size, then shrinks to nothing:
/// read back whole each time; empty, the mailbox is forgotten.
pub fn records_grow_and_go<B: Backend>(store: &B) {
    let alice = mb("alice@example.org");
    let mut record = enrolled();
    for i in 0..60 {
        let (ap, _) = pam_mfa::app_password::generate(
            alice.as_str(),
            &format!("device {i:02} {}", "x".repeat(40)),
            vec![],
            vec![],
            None,
            1,
        )
        .unwrap();
        record.app_passwords.push(ap);
        let mut l = store.lock(&alice, OnMissing::Create).unwrap().unwrap();
        l.write(&record, &state(i)).unwrap();
    }
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!((file.record, file.state), (record, state(59)));
    let mut l = store.lock(&alice, OnMissing::Skip).unwrap().unwrap();
    l.write(&MailboxRecord::default(), &MailboxState::default()).unwrap();
    drop(l);
    assert!(store.read_mailbox(&alice).unwrap().is_none());
    let mut l = store.lock(&alice, OnMissing::Create).unwrap().unwrap();
    l.write(&enrolled(), &state(1)).unwrap();
    l.purge().unwrap();
    assert!(store.read_mailbox(&alice).unwrap().is_none());
    assert!(store.lock(&alice, OnMissing::Skip).unwrap().is_none());
}

/// A mailbox too large for the store to read back is never written: the
/// write is refused (saying so, with the sizes) and what was there stays,
/// on every backend alike, so a copy between backends never meets one.
pub fn oversized_mailboxes_are_refused<B: Backend>(store: &B) {
    let alice = mb("alice@example.org");
    let mut l = store.lock(&alice, OnMissing::Create).unwrap().unwrap();
    l.write(&enrolled(), &state(1)).unwrap();
    let mut huge = enrolled();
    if let Some(seed) = huge.totp.as_mut() {
        seed.secret = "A".repeat(pam_mfa::store::records::MAX_JSON).into();
    }
    let refused = l.write(&huge, &state(2)).unwrap_err();
    assert!(matches!(refused, StoreError::TooLarge { .. }), "{refused:?}");
    let said = refused.to_string();
    assert!(
        said.contains("alice@example.org") && said.contains("nothing was written"),
        "{said}"
    );
    assert!(!said.contains("AAAAAAAA"), "no content in the message: {said}");
    // A login's state that would grow past the limit is refused alike.
    let mut long = state(3);
    long.last_failed = Some("f".repeat(pam_mfa::store::records::MAX_JSON));
    assert!(matches!(
        l.write_state(&long, Durability::Synced),
        Err(StoreError::TooLarge { .. })
    ));
    drop(l);
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!((file.record, file.state), (enrolled(), state(1)));
    // Exactly at the limit is written and read back; a byte more is not.
    let sized = |len: usize| {
        let mut r = enrolled();
        if let Some(seed) = r.totp.as_mut() {
            seed.secret = "A".repeat(len).into();
        }
        r
    };
    let json_len = |r: &MailboxRecord| {
        pam_mfa::store::records::MailboxFile {
            record: r.clone(),
            state: state(4),
        }
        .json_len()
        .unwrap()
    };
    let overhead = json_len(&sized(0));
    let big = sized(pam_mfa::store::records::MAX_JSON - overhead);
    assert_eq!(json_len(&big), pam_mfa::store::records::MAX_JSON);
    let mut l = store.lock(&alice, OnMissing::Skip).unwrap().unwrap();
    let one_more = sized(pam_mfa::store::records::MAX_JSON - overhead + 1);
    assert!(matches!(
        l.write(&one_more, &state(4)),
        Err(StoreError::TooLarge { .. })
    ));
    l.write(&big, &state(4)).unwrap();
    drop(l);
    assert_eq!(store.read_mailbox(&alice).unwrap().unwrap().record, big);
}

/// Domain policies: the default until set, then the domain's own.
pub fn domain_policies<B: Backend>(store: &B) {
    let cfg = Config::default();
    assert_eq!(store.read_domain("example.org").unwrap(), None);
    assert_eq!(
        store.policy_for("example.org", &cfg).unwrap(),
        DomainPolicy::default_for(cfg.default_policy)
    );
    let required = DomainPolicy {
        policy: Policy::Required,
        grace: Some(3600),
        since: 5,
        webmail_window: Some(600),
    };
    store.write_domain("example.org", &required).unwrap();
    store
        .write_domain("b.example", &DomainPolicy::default_for(Policy::Disabled))
        .unwrap();
    assert_eq!(store.policy_for("example.org", &cfg).unwrap(), required);
    let names: Vec<String> = store.list_domains().unwrap().into_iter().map(|(d, _)| d).collect();
    assert_eq!(names, ["b.example", "example.org"]);
}

/// A domain listed in pages: every mailbox once, in order, no other domain's.
pub fn list_in_pages<B: Backend>(store: &B) {
    for i in 0..25 {
        let mut l = store
            .lock(&mb(&format!("user{i:02}@example.org")), OnMissing::Create)
            .unwrap()
            .unwrap();
        l.write(&enrolled(), &state(1)).unwrap();
    }
    let mut l = store
        .lock(&mb("other@example.net"), OnMissing::Create)
        .unwrap()
        .unwrap();
    l.write(&enrolled(), &state(1)).unwrap();
    drop(l);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<Mailbox> = None;
    loop {
        let page = store.list_page("example.org", after.as_ref(), 10).unwrap();
        if page.is_empty() {
            break;
        }
        sizes.push(page.len());
        after = page.last().cloned();
        seen.extend(page.into_iter().map(|m| m.to_string()));
    }
    assert_eq!(sizes, [10, 10, 5]);
    let want: Vec<String> = (0..25).map(|i| format!("user{i:02}@example.org")).collect();
    assert_eq!(seen, want);
}

/// A record with a number for codes by text message, one waiting for its
/// code and the key; a state with a sent code and the send times.
fn with_sms() -> (MailboxRecord, MailboxState) {
    let mut record = enrolled();
    record.sms = Some(pam_mfa::sms::SmsRecord {
        number: Some("+4915112344567".into()),
        pending: Some("+15551234567".into()),
        ..pam_mfa::sms::SmsRecord::new().unwrap()
    });
    let mut state = state(3);
    let rec = record.sms.as_ref().unwrap();
    pam_mfa::sms::record_send(
        &mut state,
        rec,
        "alice@example.org",
        "+4915112344567",
        pam_mfa::sms::Purpose::Login,
        "123456",
        1_700_000_000,
    );
    state.sms_code.as_mut().unwrap().tries = 2;
    (record, state)
}

/// What codes by text message keep (number, pending number and key in the
/// record; the sent code and send times in the state) is read back whole
/// by every way in: a read, a lock, a login's first look.
pub fn sms_fields_round_trip<B: Backend>(store: &B) {
    let alice = mb("alice@example.org");
    let (record, state) = with_sms();
    let mut l = store.lock(&alice, OnMissing::Create).unwrap().unwrap();
    l.write(&record, &state).unwrap();
    drop(l);
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!((&file.record, &file.state), (&record, &state));
    let l = store.lock(&alice, OnMissing::Skip).unwrap().unwrap();
    assert_eq!((l.record(), l.state()), (Some(&record), &state));
    drop(l);
    let (_, opened) = store.open_login(&alice, &Config::default()).unwrap();
    let opened = opened.unwrap();
    let content = pam_mfa::store::backend::OpenedMailbox::content(&opened);
    assert_eq!((&content.record, &content.state), (&record, &state));
    // A login's state write keeps the record's number and key.
    let mut next = state.clone();
    next.sms_code.as_mut().unwrap().used = true;
    let mut l = store.relock(&opened).unwrap().unwrap();
    l.write_state(&next, Durability::Configured).unwrap();
    drop(l);
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!((file.record, file.state), (record, next));
}

/// Logins racing to text the same mailbox, each as the module decides one
/// (a first look, the decision, an optimistic or real locked write, a
/// second round after a conflict): `resend_after` lets exactly one send.
pub fn racing_texts_send_once<B: Backend>(store: &B) {
    use pam_mfa::decide::{self, Outcome, Refusal, Request};
    let alice = mb("alice@example.org");
    let (mut record, _) = with_sms();
    record.totp = None;
    let mut l = store.lock(&alice, OnMissing::Create).unwrap().unwrap();
    l.write(&record, &MailboxState::default()).unwrap();
    drop(l);
    let cfg = Config {
        sms: Some(pam_mfa::config::SmsConfig {
            command: "/bin/true".into(),
            ..Default::default()
        }),
        ..Config::default()
    };
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let now = 1_700_000_000;
    std::thread::scope(|s| {
        for i in 0..8 {
            let (sent, cfg, alice) = (&sent, &cfg, &alice);
            s.spawn(move || {
                let code = format!("{:06}", 100_000 + i);
                let req = Request {
                    mailbox: alice.as_str(),
                    service: "imap",
                    rhost: None,
                    now,
                    new_sms_code: Some(&code),
                    webmail_tag: None,
                };
                let (policy, opened) = store.open_login(alice, cfg).unwrap();
                let mut lock = store.relock(&opened.unwrap()).unwrap().unwrap();
                for round in 0..2 {
                    let d = decide::decide(&req, None, &policy, lock.record(), lock.state(), cfg);
                    match lock.write_state(d.state.as_ref().unwrap(), Durability::Configured) {
                        Err(StoreError::Conflict { .. }) if round == 0 => {
                            drop(lock);
                            lock = store.lock(alice, OnMissing::Skip).unwrap().unwrap();
                        }
                        Err(e) => panic!("{e}"),
                        Ok(()) => {
                            if matches!(d.outcome, Outcome::Refused(Refusal::CodeSent { .. })) {
                                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(sent.into_inner(), 1, "racing logins sent more than one text");
    let file = store.read_mailbox(&alice).unwrap().unwrap();
    assert_eq!(file.state.sms_sent, [now]);
}

/// One `#[test]` per check of [`crate::contract`], for a backend:
/// `fresh()` returns `(keep_alive, store)` set up and empty, `missing()` the
/// same for a store that is not there.
#[macro_export]
macro_rules! contract_tests {
    ($fresh:expr, $missing:expr) => {
        #[test]
        fn missing_store_is_an_error() {
            let (_keep, store) = $missing();
            $crate::contract::missing_store_is_an_error(&store);
        }
        $crate::contract_tests!(@each $fresh;
            unknown_mailbox_is_none, writes_round_trip, concurrent_writers_lose_nothing,
            records_grow_and_go, oversized_mailboxes_are_refused, domain_policies, list_in_pages,
            sms_fields_round_trip, racing_texts_send_once);
    };
    (@each $fresh:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let (_keep, store) = $fresh();
                $crate::contract::$check(&store);
            }
        )*
    };
}
