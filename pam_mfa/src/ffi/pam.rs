//! The PAM glue: the `pam_sm_*` entry points libpam calls and a [`PamApi`]
//! over a real PAM handle. Every entry point runs inside `catch_unwind`, so
//! no panic can cross into the host process (Dovecot's auth worker, sshd);
//! each unsafe block says why it is sound.

use crate::module::{self, Memo, PamApi};
use crate::secret::SecretBytes;
use pam::constants::{PAM_PROMPT_ECHO_OFF, PamFlag, PamResultCode as Code};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, Service, User};
use pam::module::{PamHandle, PamHooks};
use std::ffi::{CStr, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use zeroize::Zeroizing;

const PAM_USER: c_int = 2;
const PAM_AUTHTOK: c_int = 6;
const MEMO_KEY: &str = "pam_mfa_memo";

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_fail_delay(pamh: *mut PamHandle, usec: u32) -> c_int;
}

pub struct PamMfa;
pam::pam_hooks!(PamMfa);

/// Runs a hook body, turning a panic into PAM_SYSTEM_ERR. pam-bindings has a
/// guard of its own around each hook; this one is ours, so the guarantee does
/// not depend on a dependency's internals.
fn guarded(f: impl FnOnce() -> Code) -> Code {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(payload) => {
            // Dropping a panic payload can itself panic; forget it instead.
            std::mem::forget(payload);
            crate::log::Logger::new(None, false).err("internal error (a bug): the login was refused; please report it");
            Code::PAM_SYSTEM_ERR
        }
    }
}

fn arg_bytes<'a>(args: &'a [&'a CStr]) -> Vec<&'a [u8]> {
    args.iter().map(|a| a.to_bytes()).collect()
}

impl PamHooks for PamMfa {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> Code {
        guarded(|| module::authenticate(&mut Handle(pamh), &arg_bytes(&args)))
    }

    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> Code {
        guarded(|| module::account(&mut Handle(pamh), &arg_bytes(&args)))
    }

    /// No credentials to set, but success: Dovecot calls pam_setcred with
    /// `setcred=yes`, and an all-IGNORE stack would fail it.
    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> Code {
        Code::PAM_SUCCESS
    }
}

struct Handle<'a>(&'a mut PamHandle);

fn cstr_item(c: Option<&CStr>) -> Option<String> {
    c.map(|c| c.to_string_lossy().into_owned())
}

impl PamApi for Handle<'_> {
    fn user(&mut self) -> Result<Vec<u8>, Code> {
        if let Ok(Some(User(u))) = self.0.get_item::<User>() {
            return Ok(u.to_bytes().to_vec());
        }
        match self.0.get_user(None) {
            Ok(u) => Ok(u.into_bytes()),
            // pam-bindings refuses non-UTF-8 names; read the raw item instead
            // so the name parser can say what is wrong with it.
            Err(_) => match self.0.get_item::<User>() {
                Ok(Some(User(u))) => Ok(u.to_bytes().to_vec()),
                _ => Err(Code::PAM_USER_UNKNOWN),
            },
        }
    }

    fn service(&self) -> Option<String> {
        cstr_item(self.0.get_item::<Service>().ok().flatten().map(|s| s.0))
    }

    fn rhost(&self) -> Option<String> {
        cstr_item(self.0.get_item::<RHost>().ok().flatten().map(|s| s.0))
    }

    fn authtok(&mut self) -> Result<SecretBytes, Code> {
        if let Ok(Some(tok)) = self.0.get_item::<AuthTok>() {
            return Ok(Zeroizing::new(tok.as_bytes().to_vec()));
        }
        let typed = self.ask_hidden("Password: ")?;
        self.set_authtok(&typed)?;
        Ok(typed)
    }

    fn set_authtok(&mut self, tok: &[u8]) -> Result<(), Code> {
        if tok.contains(&0) {
            return Err(Code::PAM_AUTHTOK_ERR);
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(tok.len() + 1));
        buf.extend_from_slice(tok);
        buf.push(0);
        let pamh: *mut PamHandle = &raw mut *self.0;
        // SAFETY: `pamh` is the live handle libpam passed to this hook; `buf` is NUL-terminated with no interior NUL and outlives the call; libpam copies the string (and wipes its old copy) before returning.
        let rc = unsafe { pam_set_item(pamh, PAM_AUTHTOK, buf.as_ptr().cast()) };
        if rc == 0 { Ok(()) } else { Err(Code::PAM_SYSTEM_ERR) }
    }

    fn set_user(&mut self, user: &str) -> Result<(), Code> {
        let name = std::ffi::CString::new(user).map_err(|_| Code::PAM_USER_UNKNOWN)?;
        let pamh: *mut PamHandle = &raw mut *self.0;
        // SAFETY: `pamh` is the live handle libpam passed to this hook; `name` is NUL-terminated and outlives the call; libpam copies the string.
        let rc = unsafe { pam_set_item(pamh, PAM_USER, name.as_ptr().cast()) };
        if rc == 0 { Ok(()) } else { Err(Code::PAM_SYSTEM_ERR) }
    }

    fn set_memo(&mut self, memo: Memo) -> Result<(), Code> {
        self.0.set_data(MEMO_KEY, Box::new(memo))
    }

    fn memo(&self) -> Option<Memo> {
        // SAFETY: only `set_memo` above stores under MEMO_KEY, always a `Memo`, so the pointer libpam returns is a live `Memo` owned by the handle for as long as `self` borrows it.
        let memo = unsafe { self.0.get_data::<Memo>(MEMO_KEY) };
        memo.ok().cloned()
    }

    fn ask_hidden(&mut self, prompt: &str) -> Result<SecretBytes, Code> {
        let conv = match self.0.get_item::<Conv>() {
            Ok(Some(c)) => c,
            _ => return Err(Code::PAM_CONV_ERR),
        };
        match conv.send(PAM_PROMPT_ECHO_OFF, prompt) {
            Ok(Some(answer)) => Ok(Zeroizing::new(answer.as_bytes().to_vec())),
            Ok(None) => Err(Code::PAM_CONV_ERR),
            Err(code) => Err(code),
        }
    }

    fn fail_delay(&mut self, usec: u32) {
        let pamh: *mut PamHandle = &raw mut *self.0;
        // SAFETY: `pamh` is the live handle libpam passed to this hook; pam_fail_delay only records the number in it.
        let _ = unsafe { pam_fail_delay(pamh, usec) };
    }
}
