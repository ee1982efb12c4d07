//! The application side of libpam, as a mail server uses it, and as a
//! conversation-speaking service does (each prompt answered on its own).
//! The only FFI of the test harness.

use std::ffi::{CString, c_char, c_int, c_void};
use std::path::Path;

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_SERVICE_ERR: i32 = 3;
pub const PAM_PERM_DENIED: i32 = 6;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_AUTHINFO_UNAVAIL: i32 = 9;
pub const PAM_USER_UNKNOWN: i32 = 10;
pub const PAM_MAXTRIES: i32 = 11;
const PAM_RHOST: c_int = 4;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    appdata: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

/// How hidden prompts are answered: with one string each time, or by a
/// script that sees the prompt.
type Script<'a> = std::cell::RefCell<&'a mut dyn FnMut(&str) -> String>;

struct Answers<'a> {
    user: CString,
    typed: CString,
    prompts: std::cell::Cell<u32>,
    script: Option<Script<'a>>,
}

/// Answers like Dovecot: every hidden prompt with the typed string, every
/// visible one with the user name; messages are dropped.
extern "C" fn conversation(
    n: c_int,
    msgs: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let n = usize::try_from(n).unwrap_or(0);
    // SAFETY: appdata is the `Answers` that `login` keeps alive for the whole handle.
    let answers = unsafe { &*(appdata as *const Answers<'_>) };
    // SAFETY: libpam frees this array and each `resp` with free(3), so they come from calloc/strdup.
    let out = unsafe { libc::calloc(n.max(1), std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if out.is_null() {
        return 5; // PAM_BUF_ERR
    }
    for i in 0..n {
        // SAFETY: libpam passes `n` valid message pointers (Linux-PAM layout: array of pointers).
        let style = unsafe { (**msgs.add(i)).msg_style };
        let scripted = match (style, &answers.script) {
            (PAM_PROMPT_ECHO_OFF, Some(script)) => {
                // SAFETY: libpam passes a valid, NUL-terminated prompt with each message.
                let prompt = unsafe { std::ffi::CStr::from_ptr((**msgs.add(i)).msg) };
                let answer = (script.borrow_mut())(&prompt.to_string_lossy());
                Some(CString::new(answer).unwrap())
            }
            _ => None,
        };
        let text = match style {
            PAM_PROMPT_ECHO_OFF => Some(scripted.as_ref().unwrap_or(&answers.typed)),
            PAM_PROMPT_ECHO_ON => Some(&answers.user),
            _ => None,
        };
        if let Some(t) = text {
            answers.prompts.set(answers.prompts.get() + 1);
            // SAFETY: `out` has `n` zeroed entries; strdup copies a valid C string.
            unsafe { (*out.add(i)).resp = libc::strdup(t.as_ptr()) };
        }
    }
    // SAFETY: `resp` is libpam's out-pointer.
    unsafe { *resp = out };
    PAM_SUCCESS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginResult {
    /// pam_authenticate's result.
    pub auth: i32,
    /// pam_acct_mgmt's result, if authentication passed.
    pub acct: Option<i32>,
    /// How many prompts the conversation answered.
    pub prompts: u32,
}

impl LoginResult {
    pub fn ok(&self) -> bool {
        self.auth == PAM_SUCCESS && self.acct == Some(PAM_SUCCESS)
    }
}

pub fn login(confdir: &Path, service: &str, user: &[u8], typed: &[u8], rhost: Option<&str>) -> LoginResult {
    login_with(confdir, service, user, typed, None, rhost)
}

/// A login whose hidden prompts `script` answers, seeing each prompt (a
/// service that asks for the password and then for a code).
pub fn login_scripted(
    confdir: &Path,
    service: &str,
    user: &str,
    script: &mut dyn FnMut(&str) -> String,
    rhost: Option<&str>,
) -> LoginResult {
    login_with(confdir, service, user.as_bytes(), b"", Some(script), rhost)
}

fn login_with(
    confdir: &Path,
    service: &str,
    user: &[u8],
    typed: &[u8],
    script: Option<&mut dyn FnMut(&str) -> String>,
    rhost: Option<&str>,
) -> LoginResult {
    let service = CString::new(service).unwrap();
    // A user or password with a NUL cannot pass through C; cut it there like C would.
    let cut = |b: &[u8]| CString::new(b.split(|c| *c == 0).next().unwrap_or_default()).unwrap();
    let answers = Box::new(Answers {
        user: cut(user),
        typed: cut(typed),
        prompts: std::cell::Cell::new(0),
        script: script.map(std::cell::RefCell::new),
    });
    let conv = PamConv {
        conv: conversation,
        appdata: &*answers as *const Answers<'_> as *mut c_void,
    };
    let confdir = CString::new(confdir.as_os_str().as_encoded_bytes()).unwrap();
    let mut pamh: *mut c_void = std::ptr::null_mut();
    let user_c = cut(user);
    // SAFETY: all pointers are live locals for the duration of the handle.
    let rc = unsafe { pam_start_confdir(service.as_ptr(), user_c.as_ptr(), &conv, confdir.as_ptr(), &mut pamh) };
    assert_eq!(rc, PAM_SUCCESS, "pam_start_confdir failed");
    let rhost_c = rhost.map(|r| CString::new(r).unwrap());
    if let Some(r) = &rhost_c {
        // SAFETY: the handle is live; libpam copies the string.
        unsafe { pam_set_item(pamh, PAM_RHOST, r.as_ptr() as *const c_void) };
    }
    // SAFETY: the handle is live.
    let auth = unsafe { pam_authenticate(pamh, 0) };
    let acct = (auth == PAM_SUCCESS).then(|| {
        // SAFETY: the handle is live.
        unsafe { pam_acct_mgmt(pamh, 0) }
    });
    // SAFETY: the handle is live and not used after this.
    unsafe { pam_end(pamh, auth) };
    LoginResult {
        auth,
        acct,
        prompts: answers.prompts.get(),
    }
}

/// A file opened WITHOUT close-on-exec (Rust opens every file with it): what
/// a host process may have lying around, for tests that check a child of
/// the module does not inherit it.
pub fn inheritable_file(path: &Path) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create(path).unwrap();
    // SAFETY: fcntl on a descriptor this function owns; it only changes that descriptor's flags.
    let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0);
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, flags & !libc::FD_CLOEXEC) };
    assert_eq!(rc, 0);
    f
}
