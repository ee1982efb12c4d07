//! A stand-in for an SMS gateway: a delivery command (a shell script: the
//! real interface pam_mfa has to a gateway) that records what it was given,
//! one folder per message: its environment as the kernel handed it over
//! (`/proc/PID/environ`, not what the shell makes of it), its command line,
//! its open descriptors and its pid. Tests read the messages back.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Gateway {
    /// Root-owned, 0700: the command's folder and the messages' folder in it.
    pub dir: tempfile::TempDir,
    pub command: PathBuf,
    pub out: PathBuf,
}

/// What one run of the command was given.
#[derive(Debug, Clone)]
pub struct Message {
    pub env: BTreeMap<String, String>,
    /// `/proc/PID/cmdline`, arguments joined by spaces.
    pub cmdline: String,
    /// `ls -l /proc/PID/fd`.
    pub fds: String,
    pub pid: u32,
    /// The recording finished (a killed command may not get that far).
    pub complete: bool,
}

impl Message {
    pub fn code(&self) -> &str {
        self.env.get("PAM_MFA_CODE").map_or("", String::as_str)
    }

    pub fn purpose(&self) -> &str {
        self.env.get("PAM_MFA_PURPOSE").map_or("", String::as_str)
    }
}

impl Gateway {
    /// A gateway that records and succeeds.
    pub fn new() -> Gateway {
        Gateway::with("exit 0")
    }

    /// A gateway that records, then runs `then` (`exit 3`, `sleep 30`, ...).
    pub fn with(then: &str) -> Gateway {
        let dir = tempfile::Builder::new().prefix("pam_mfa-gateway").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let command = dir.path().join("send-sms");
        let script = format!(
            "#!/bin/sh\n\
             # Records what pam_mfa hands a delivery command, one folder a message.\n\
             m=$(mktemp -d {out}/msg.$(date +%s%N).XXXXXX)\n\
             tr '\\0' '\\n' < /proc/$$/environ > \"$m/env\"\n\
             tr '\\0' ' ' < /proc/$$/cmdline > \"$m/cmdline\"\n\
             ls -l /proc/$$/fd/ > \"$m/fds\" 2>&1\n\
             echo $$ > \"$m/pid\"\n\
             touch \"$m/complete\"\n\
             {then}\n",
            out = out.display()
        );
        std::fs::write(&command, script).unwrap();
        std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o755)).unwrap();
        Gateway { dir, command, out }
    }

    /// The `[sms]` table naming this gateway, with `extra` keys.
    pub fn config(&self, extra: &str) -> String {
        format!("\n[sms]\ncommand = {:?}\n{extra}\n", self.command.display().to_string())
    }

    /// Every message so far, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs.iter().map(|d| read_message(d)).collect()
    }

    /// The code of the only message since `before` messages; panics unless
    /// exactly one more was sent.
    pub fn one_more(&self, before: usize) -> Message {
        let all = self.messages();
        assert_eq!(all.len(), before + 1, "expected exactly one more message: {all:#?}");
        all.into_iter().last().unwrap()
    }
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway::new()
    }
}

fn read_message(d: &Path) -> Message {
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap_or_default();
    let env = read("env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Message {
        env,
        cmdline: read("cmdline").trim().to_string(),
        fds: read("fds"),
        pid: read("pid").trim().parse().unwrap_or(0),
        complete: d.join("complete").exists(),
    }
}
