//! All of the crate's unsafe code: the `pam_sm_*` entry points libpam calls,
//! a [`PamApi`] over a real PAM handle, and the few libc calls the library
//! needs. Every entry point runs inside `catch_unwind`, so no panic can cross
//! into the host process (Dovecot's auth worker, sshd); each unsafe block
//! says why it is sound.

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

/// The effective uid of this process (trusted to own the config file).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Resolves `store_owner`: a numeric uid, or a user name via getpwnam_r.
pub fn uid_of(name: &str) -> Option<u32> {
    if let Ok(uid) = name.parse::<u32>() {
        return Some(uid);
    }
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `passwd` is plain old data; an all-zero value is valid and getpwnam_r overwrites it.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live local of the right type, and `buf.len()` is the true size of the scratch buffer.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

/// Local time as syslog (RFC 3164) writes it: `Nov 23 14:05:09`.
pub fn syslog_timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = crate::clock::now().unwrap_or(0);
    let t: libc::time_t = libc::time_t::try_from(now).unwrap_or(0);
    // SAFETY: `tm` is plain old data; an all-zero value is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals; localtime_r is the thread-safe variant and writes only into `tm`.
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if !ok {
        return "Jan  1 00:00:00".to_string();
    }
    let month = usize::try_from(tm.tm_mon)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// Whether the kernel considers the system clock synchronised (by NTP or
/// another time daemon); `None` if it cannot be asked. TOTP codes are only
/// as right as the clock.
pub fn clock_synchronised() -> Option<bool> {
    // SAFETY: `timex` is plain old data; an all-zero value asks for nothing to be changed (modes = 0).
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a live local; with modes = 0 adjtimex only reads the kernel's clock state into it.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}
