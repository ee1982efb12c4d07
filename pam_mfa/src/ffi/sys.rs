//! The few libc calls the library needs besides PAM (user ids, local time,
//! the kernel's clock state), each behind a safe function, so that the
//! module, the logger and mfa-ctl reach them without the PAM glue.

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
    uid_of_name(name)
}

/// The uid of the user called `name` (getpwnam_r), numeric or not: where a
/// name comes from a file or a mailbox, `1000` is whoever is called 1000,
/// not uid 1000.
pub fn uid_of_name(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `passwd` is plain old data; an all-zero value is valid and getpwnam_r overwrites it.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live local of the right type, and `buf.len()` is the true size of the scratch buffer.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

/// `openat(2)` of one path component `name` in the folder `dir` (the current
/// folder when `None`), with `flags` and O_CLOEXEC. With O_NOFOLLOW it never
/// follows a symbolic link, which walking a path one component at a time
/// needs and std's `open` cannot do for the components before the last.
pub fn openat(
    dir: Option<&std::fs::File>,
    name: &std::ffi::OsStr,
    flags: libc::c_int,
) -> std::io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    let cname =
        std::ffi::CString::new(name.as_bytes()).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `cname` is a live NUL-terminated string, and `dirfd` is AT_FDCWD or the descriptor of a `File` borrowed for this call.
    let fd = unsafe { libc::openat(dirfd, cname.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat: open, and owned by nothing else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
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

/// Makes the child `cmd` starts close every file descriptor it would
/// inherit besides stdin, stdout and stderr, when it executes its program:
/// whatever the host process (Dovecot's auth worker) left open without
/// close-on-exec stays out of the delivery command. Marking them
/// close-on-exec, rather than closing them, leaves std's own pipe that
/// reports a failed exec working.
pub fn close_inherited_fds_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // The fallback's bound, read here: after fork only async-signal-safe
    // calls may run.
    // SAFETY: sysconf has no preconditions.
    let open_max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let open_max = libc::c_int::try_from(open_max.clamp(3, 65_536)).unwrap_or(65_536);
    let hook = move || {
        // SAFETY: a raw close_range(2) system call on descriptor numbers only (async-signal-safe; no memory is touched).
        let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
        if rc != 0 {
            // Kernels before 5.11: one fcntl per possible descriptor.
            for fd in 3..open_max {
                // SAFETY: fcntl on a descriptor number (async-signal-safe); an unused number answers EBADF.
                let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                if flags >= 0 {
                    // SAFETY: as above, adding FD_CLOEXEC to the descriptor's flags.
                    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs in the child between fork and exec and only makes the system calls above: no allocation, no lock, nothing that is not async-signal-safe.
    unsafe { cmd.pre_exec(hook) };
}

/// Whether the child `pid` has ended, without reaping it (waitid with
/// WNOWAIT): while it is not reaped its process id, and so its process
/// group's, cannot be given to another process, which makes
/// [`kill_process_group`] safe to call after this said yes.
pub fn child_has_exited(pid: u32) -> std::io::Result<bool> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: `siginfo_t` is plain old data; an all-zero value is valid (si_pid 0 means "no child changed state").
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live local; waitid only writes into it and, with WNOWAIT, leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                id,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            // SAFETY: waitid filled `info` for a child state change (or left it zeroed); si_pid reads its pid field.
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// SIGKILL to every process of the process group `pgid` (a delivery
/// command started as its own group's leader, and whatever it started).
/// Refuses 0 and 1, which would mean this process's own group or init's.
pub fn kill_process_group(pgid: u32) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    if pgid <= 1 {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: killpg only sends a signal; pgid > 1 names one process group, never every process or our own group.
    let rc = unsafe { libc::killpg(pgid, libc::SIGKILL) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers are uids for `store_owner` only; by name, no user is "0".
    #[test]
    fn names_and_numbers() {
        assert_eq!(uid_of_name("root"), Some(0));
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(uid_of("0"), Some(0));
        assert_eq!(uid_of_name("0"), None);
        assert_eq!(uid_of_name("54321"), None);
        assert_eq!(uid_of_name("no\0such"), None);
    }
}
