//! Compiled only for tests (`#[cfg(test)] mod tests;` in module.rs).
//!
//! The roles in-process, through a scripted fake PAM handle: the seams that
//! the real-libpam tests cannot reach (PAM_USER changed by a module in
//! between, the mailbox file removed or replaced between `split` and
//! `verify`, libpam refusing to keep data, conversations present or not).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use super::*;
use crate::admin::Admin;
use std::os::unix::fs::PermissionsExt;
use zeroize::Zeroizing;

const PW: &str = "T9D3K!px";
const ALICE: &str = "alice@example.org";

/// A PAM handle that holds its items in fields, answers hidden prompts from
/// a script (and fails the test on a prompt the script does not expect),
/// and can be told to refuse pam_set_data.
struct FakeHandle {
    user: Vec<u8>,
    service: &'static str,
    rhost: Option<String>,
    authtok: Option<SecretBytes>,
    memo: Option<Memo>,
    /// `None`: the application has no conversation function.
    answers: Option<Vec<&'static str>>,
    prompts: Vec<String>,
    refuse_memo: bool,
}

impl FakeHandle {
    fn new(user: &str, typed: Option<&str>) -> FakeHandle {
        FakeHandle {
            user: user.as_bytes().to_vec(),
            service: "imap",
            rhost: Some("192.0.2.7".into()),
            authtok: typed.map(|t| Zeroizing::new(t.as_bytes().to_vec())),
            memo: None,
            answers: Some(Vec::new()),
            prompts: Vec::new(),
            refuse_memo: false,
        }
    }

    fn authtok_text(&self) -> String {
        String::from_utf8(self.authtok.as_ref().unwrap().to_vec()).unwrap()
    }
}

impl PamApi for FakeHandle {
    fn user(&mut self) -> Result<Vec<u8>, Code> {
        Ok(self.user.clone())
    }
    fn service(&self) -> Option<String> {
        Some(self.service.to_string())
    }
    fn rhost(&self) -> Option<String> {
        self.rhost.clone()
    }
    fn authtok(&mut self) -> Result<SecretBytes, Code> {
        if let Some(t) = &self.authtok {
            return Ok(t.clone());
        }
        let t = self.ask_hidden("Password: ")?;
        self.authtok = Some(t.clone());
        Ok(t)
    }
    fn set_authtok(&mut self, tok: &[u8]) -> Result<(), Code> {
        self.authtok = Some(Zeroizing::new(tok.to_vec()));
        Ok(())
    }
    fn set_user(&mut self, user: &str) -> Result<(), Code> {
        self.user = user.as_bytes().to_vec();
        Ok(())
    }
    fn set_memo(&mut self, memo: Memo) -> Result<(), Code> {
        if self.refuse_memo {
            return Err(Code::PAM_BUF_ERR);
        }
        self.memo = Some(memo);
        Ok(())
    }
    fn memo(&self) -> Option<Memo> {
        self.memo.clone()
    }
    fn ask_hidden(&mut self, prompt: &str) -> Result<SecretBytes, Code> {
        self.prompts.push(prompt.to_string());
        let Some(answers) = self.answers.as_mut() else {
            return Err(Code::PAM_CONV_ERR);
        };
        assert!(!answers.is_empty(), "unexpected prompt {prompt:?}");
        Ok(Zeroizing::new(answers.remove(0).as_bytes().to_vec()))
    }
    fn fail_delay(&mut self, _usec: u32) {}
}

/// A store and configuration in a temp folder, with alice enrolled.
struct World {
    dir: tempfile::TempDir,
    config: PathBuf,
    admin: Admin,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pam_mfa.toml");
        std::fs::write(
            &config,
            format!(
                "store = \"{}\"\ndefault_domain = \"example.org\"\n",
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let admin = Admin::open(Some(&config)).unwrap();
        admin.store.init(crate::store::ExistingFolder::Refuse).unwrap();
        let w = World { dir, config, admin };
        let mb = w.mailbox(ALICE);
        let t = clock::now().unwrap();
        w.admin.enroll_begin(&mb, t).unwrap();
        let pending = w.record().pending.unwrap();
        let code = pending.generator().unwrap().code_at(t - 30);
        w.admin.enroll_confirm(&mb, &code, t).unwrap();
        w
    }

    fn mailbox(&self, name: &str) -> Mailbox {
        self.admin.mailbox(name).unwrap()
    }

    fn record(&self) -> MailboxRecord {
        self.admin.store.read_record(&self.mailbox(ALICE)).unwrap().unwrap()
    }

    /// The code of the step after now: fresh for one login.
    fn next_code(&self) -> String {
        self.next_code_and_step().0
    }

    fn next_code_and_step(&self) -> (String, u64) {
        let g = self.record().totp.unwrap().generator().unwrap();
        let t = clock::now().unwrap() + 30;
        (g.code_at(t).to_string(), t / 30)
    }

    fn args(&self, role: &str) -> Vec<String> {
        let mut a = vec![
            format!("config={}", self.config.display()),
            format!("log_socket={}", self.dir.path().join("no-syslog").display()),
            "nodelay".to_string(),
        ];
        if !role.is_empty() {
            a.extend(role.split(' ').map(str::to_string));
        }
        a
    }

    fn call(&self, h: &mut FakeHandle, role: &str) -> Code {
        let args = self.args(role);
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        if role.is_empty() {
            account(h, &raw)
        } else {
            authenticate(h, &raw)
        }
    }

    /// alice's password and a fresh code, as typed, once split has taken them.
    #[track_caller]
    fn split_alice(&self) -> FakeHandle {
        let mut h = FakeHandle::new(ALICE, Some(&format!("{PW}{}", self.next_code())));
        assert_eq!(self.call(&mut h, "split"), Code::PAM_SUCCESS);
        h
    }

    fn failures(&self) -> u32 {
        self.admin
            .store
            .read_mailbox(&self.mailbox(ALICE))
            .unwrap()
            .unwrap()
            .state
            .failures
    }
}

/// The recommended stack, played through: split hands the password on
/// (under the canonical name), verify accepts the code, account agrees; the
/// same string again is a replay.
#[test]
fn split_password_verify_account() {
    let w = World::new();
    let typed = format!("{PW}{}", w.next_code());
    let mut h = FakeHandle::new("Alice@Example.ORG", Some(&typed));
    assert_eq!(w.call(&mut h, "split"), Code::PAM_SUCCESS);
    assert_eq!(h.authtok_text(), PW, "the password module sees the password alone");
    assert_eq!(h.user, ALICE.as_bytes(), "and the canonical name");
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_SUCCESS);
    assert_eq!(w.call(&mut h, ""), Code::PAM_SUCCESS);
    let mut again = FakeHandle::new(ALICE, Some(&typed));
    assert_eq!(w.call(&mut again, "split"), Code::PAM_SUCCESS);
    assert_eq!(w.call(&mut again, "verify"), Code::PAM_AUTH_ERR, "a replay");
}

/// A module between split and verify that changes PAM_USER: what split cut
/// off was for the other mailbox, so the login is refused, not judged for
/// the new name.
#[test]
fn pam_user_changed_between_split_and_verify() {
    let w = World::new();
    let mut h = w.split_alice();
    h.user = b"bob@example.org".to_vec();
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_AUTH_ERR);
    assert_eq!(w.call(&mut h, ""), Code::PAM_AUTH_ERR);
    // Nothing was counted against alice, and her code was not used.
    assert_eq!(w.failures(), 0);
    let mut h = w.split_alice();
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_SUCCESS);
}

/// mfa-ctl removes the mailbox (disable --force) between split and verify:
/// refused as a store error that says what happened, not accepted as "no
/// MFA" on the strength of what split cut off.
#[test]
fn mailbox_removed_between_split_and_verify() {
    let w = World::new();
    let mut h = w.split_alice();
    let mb = w.mailbox(ALICE);
    w.admin
        .store
        .lock(&mb, OnMissing::Skip)
        .unwrap()
        .unwrap()
        .purge()
        .unwrap();
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_AUTHINFO_UNAVAIL);
}

/// The file replaced by a larger one between split and verify (mfa-ctl
/// added app passwords): verify follows it, and the accepted step lands in
/// the new file.
#[test]
fn mailbox_replaced_between_split_and_verify() {
    let w = World::new();
    let mb = w.mailbox(ALICE);
    let path = w.admin.store.files().unwrap().mailbox_path(&mb);
    let (code, step) = w.next_code_and_step();
    let mut h = FakeHandle::new(ALICE, Some(&format!("{PW}{code}")));
    assert_eq!(w.call(&mut h, "split"), Code::PAM_SUCCESS);
    let before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    let mut n = 0;
    while std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()) == before {
        w.admin
            .app_password_add(&mb, &format!("device {n}"), &[], &[], None, clock::now().unwrap())
            .unwrap();
        n += 1;
        assert!(n < 100, "the file was never replaced");
    }
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_SUCCESS);
    let state = w.admin.store.read_mailbox(&mb).unwrap().unwrap().state;
    assert_eq!(state.last_step, Some(step));
    assert_eq!(w.admin.app_password_list(&mb).unwrap().len(), n);
}

/// libpam refuses to keep data for the next line: verify could not get the
/// code, so split itself refuses.
#[test]
fn set_memo_failure_refuses() {
    let w = World::new();
    let mut h = FakeHandle::new(ALICE, Some(&format!("{PW}{}", w.next_code())));
    h.refuse_memo = true;
    assert_eq!(w.call(&mut h, "split"), Code::PAM_SYSTEM_ERR);
}

/// `prompt` on a stack without split: the code is asked for through the
/// conversation; without a conversation there is no code, and the login is
/// refused (counted as a missing code), never let in.
#[test]
fn prompt_with_and_without_a_conversation() {
    let w = World::new();
    let code: &'static str = Box::leak(w.next_code().into_boxed_str());
    let mut h = FakeHandle::new(ALICE, Some(PW));
    h.answers = Some(vec![code]);
    assert_eq!(w.call(&mut h, "verify prompt"), Code::PAM_SUCCESS);
    assert_eq!(h.prompts, ["Verification code: "]);
    assert_eq!(w.call(&mut h, ""), Code::PAM_SUCCESS);

    let mut h = FakeHandle::new(ALICE, Some(PW));
    h.answers = None;
    assert_eq!(w.call(&mut h, "verify prompt"), Code::PAM_AUTH_ERR);
    assert_eq!(h.prompts, ["Verification code: "]);
    assert_eq!(w.failures(), 1);
    // Without `prompt` nothing is asked.
    let mut h = FakeHandle::new(ALICE, Some(PW));
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_AUTH_ERR);
    assert!(h.prompts.is_empty());
}

/// Split ran and no verify line did (or one refused and the stack went on):
/// account refuses; without split, account only looks for a block.
#[test]
fn account_checks_the_stack() {
    let w = World::new();
    let mut h = FakeHandle::new(ALICE, Some(&format!("{PW}000000")));
    assert_eq!(w.call(&mut h, "split"), Code::PAM_SUCCESS);
    assert_eq!(w.call(&mut h, ""), Code::PAM_PERM_DENIED, "no verify");
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_AUTH_ERR);
    assert_eq!(w.call(&mut h, ""), Code::PAM_PERM_DENIED, "verify refused");
    let mut h = FakeHandle::new(ALICE, None);
    assert_eq!(w.call(&mut h, ""), Code::PAM_SUCCESS, "no split: nothing to check");
}

/// mfa-ctl sets a mailbox up between split (which found no file, so handed
/// the whole string on as the password) and verify: refused as changed,
/// never accepted with the password alone.
#[test]
fn mailbox_set_up_between_split_and_verify() {
    let w = World::new();
    let bob = w.mailbox("bob@example.org");
    let mut h = FakeHandle::new("bob@example.org", Some("bob-password"));
    assert_eq!(w.call(&mut h, "split"), Code::PAM_SUCCESS);
    assert_eq!(h.authtok_text(), "bob-password");
    let t = clock::now().unwrap();
    w.admin.enroll_begin(&bob, t).unwrap();
    let pending = w.admin.store.read_record(&bob).unwrap().unwrap().pending.unwrap();
    let code = pending.generator().unwrap().code_at(t - 30);
    w.admin.enroll_confirm(&bob, &code, t).unwrap();
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_AUTHINFO_UNAVAIL);
}

/// ...and switches it off in between (its file stays, with the history):
/// split cut a code the password module never saw; refused as changed.
#[test]
fn mailbox_switched_off_between_split_and_verify() {
    let w = World::new();
    let mut h = w.split_alice();
    w.admin
        .disable(&w.mailbox(ALICE), None, true, clock::now().unwrap())
        .unwrap();
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_AUTHINFO_UNAVAIL);
}

/// Without split (a `prompt` stack) the password module judged the name as
/// typed: another spelling than the mailbox's is refused before any code is
/// counted.
#[test]
fn prompt_stack_needs_the_canonical_name() {
    let w = World::new();
    let mut h = FakeHandle::new("Alice@Example.org", Some(PW));
    h.answers = Some(vec!["000000"]);
    assert_eq!(w.call(&mut h, "verify prompt"), Code::PAM_USER_UNKNOWN);
    assert!(h.prompts.is_empty(), "nothing asked");
    assert_eq!(w.failures(), 0);
}

/// One handle, two attempts (applications may retry on the same handle):
/// a split that went nowhere in the first does not make account refuse an
/// app password login in the second.
#[test]
fn a_new_attempt_on_the_same_handle_starts_afresh() {
    let w = World::new();
    let mb = w.mailbox(ALICE);
    let (_, app) = w
        .admin
        .app_password_add(&mb, "phone", &[], &[], None, clock::now().unwrap())
        .unwrap();
    let mut h = FakeHandle::new("bob@example.org", Some("bob-password"));
    assert_eq!(w.call(&mut h, "split"), Code::PAM_SUCCESS);
    // (the password module refused bob; the application tries again)
    h.user = ALICE.as_bytes().to_vec();
    h.authtok = Some(Zeroizing::new(app.as_bytes().to_vec()));
    assert_eq!(w.call(&mut h, "app_password"), Code::PAM_SUCCESS);
    assert_eq!(w.call(&mut h, ""), Code::PAM_SUCCESS);
}

/// A module after verify that changes the user: account refuses, since the
/// code verify accepted was another mailbox's.
#[test]
fn user_changed_after_verify_is_refused_by_account() {
    let w = World::new();
    let mut h = w.split_alice();
    assert_eq!(w.call(&mut h, "verify"), Code::PAM_SUCCESS);
    h.user = b"bob@example.org".to_vec();
    assert_eq!(w.call(&mut h, ""), Code::PAM_AUTH_ERR);
}

/// `prompt` with imported scratch codes: answered `1234-5678`, as after a
/// password, they are a scratch code (used once; a wrong one counted);
/// 8 bare digits are a TOTP code, even for a mailbox whose TOTP codes have
/// 8 digits and a scratch code with the same digits, and no scratch code
/// is spent then.
#[test]
fn prompt_tells_scratch_codes_from_eight_digit_totp_codes() {
    let w = World::new();
    let mb = w.mailbox(ALICE);
    let now = clock::now().unwrap();
    let set_up = |digits: u8, scratch: &str| {
        let mut lock = w.admin.store.lock(&mb, OnMissing::Skip).unwrap().unwrap();
        let mut record = lock.record().cloned().unwrap();
        record.totp.as_mut().unwrap().digits = digits;
        let codes = [Zeroizing::new(scratch.to_string())];
        record.recovery = Some(recovery::from_codes(ALICE, &codes, now).unwrap());
        lock.write(&record, &MailboxState::default()).unwrap();
    };
    let answer = |typed: &str| {
        let typed: &'static str = Box::leak(typed.to_string().into_boxed_str());
        let mut h = FakeHandle::new(ALICE, Some(PW));
        h.answers = Some(vec![typed]);
        w.call(&mut h, "verify prompt")
    };
    let state = || w.admin.store.read_mailbox(&mb).unwrap().unwrap().state;

    set_up(6, "60500093");
    assert_eq!(answer("60500093"), Code::PAM_AUTH_ERR, "bare digits are a TOTP code");
    assert_eq!((state().failures, state().recovery_used.len()), (1, 0));
    assert_eq!(answer("6050-0093"), Code::PAM_SUCCESS, "a scratch code");
    assert_eq!(state().recovery_used, [0]);
    assert_eq!(answer("6050-0093"), Code::PAM_AUTH_ERR, "used once only");
    assert_eq!(state().failures, 1, "and counted when tried again");

    set_up(8, "00000000");
    let g = w.record().totp.unwrap().generator().unwrap();
    let (code, step) = (g.code_at(now + 30).to_string(), (now + 30) / 30);
    set_up(8, &code);
    assert_eq!(answer(&code), Code::PAM_SUCCESS, "the 8-digit TOTP code");
    assert_eq!(state().last_step, Some(step), "accepted as the TOTP code");
    assert!(state().recovery_used.is_empty(), "no scratch code spent");
    let dashed = format!("{}-{}", &code[..4], &code[4..]);
    assert_eq!(
        answer(&dashed),
        Code::PAM_SUCCESS,
        "dashed, the same digits are the scratch code"
    );
    assert_eq!(state().recovery_used, [0]);
}
