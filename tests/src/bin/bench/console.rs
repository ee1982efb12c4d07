//! Keeps the cost of syslog(3)'s /dev/console fallback out of every
//! module's figures.

use std::process::Command;

/// Without a syslog daemon, syslog(3) (used by libpam, pam_google_authenticator
/// and pam_oath) writes each line to /dev/console, which costs 0.5 to 3 ms here,
/// while pam_mfa sends to a socket. So the bench re-runs itself in a private
/// mount namespace where /dev/console is /dev/null: every module's log line
/// then costs about what a syslog daemon's socket would (nothing outside the
/// namespace changes). `--console` measures without this.
pub fn reexec_without_console(args: &[String]) {
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind /dev/null /dev/console || exit 99; exec \"$0\" \"$@\"")
        .arg(&exe)
        .args(args)
        .env("PAM_MFA_BENCH_NS", "1")
        .status();
    match status.map(|s| s.code()) {
        Ok(Some(99)) | Err(_) => {
            eprintln!(
                "bench: WARNING: cannot hide /dev/console (unshare/mount need root); syslog lines of libpam and the \
                 C modules go to the console and their figures include that cost"
            );
        }
        Ok(code) => std::process::exit(code.unwrap_or(1)),
    }
}
