//! Module arguments, in PAM's usual `word` / `key=value` style:
//!
//! ```text
//! auth sufficient pam_mfa.so app_password
//! auth requisite  pam_mfa.so split  [config=/etc/pam_mfa.toml] [debug]
//! auth required   pam_mfa.so verify [prompt] [fail_delay=2000]
//! ```
//! An unknown argument is an error (fail closed): a typo such as `verfiy`
//! must not silently turn a check into nothing.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    AppPassword,
    Split,
    Verify,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::AppPassword => "app_password",
            Role::Split => "split",
            Role::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub role: Option<Role>,
    /// `config=`, if given (then the file must exist).
    pub config: Option<PathBuf>,
    pub debug: bool,
    /// `verify` asks for the code through the conversation when `split` gave none.
    pub prompt: bool,
    /// Failure delay requested from libpam, in milliseconds.
    pub fail_delay_ms: u32,
    /// Where syslog lines go (default /dev/log); for chroots and tests.
    pub log_socket: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            role: None,
            config: None,
            debug: false,
            prompt: false,
            fail_delay_ms: 2000,
            log_socket: None,
        }
    }
}

impl Args {
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Result<Args, String> {
        let mut out = Args::default();
        let mut seen: Vec<&str> = Vec::new();
        for raw in args {
            let arg = std::str::from_utf8(raw).map_err(|_| "an argument is not UTF-8".to_string())?;
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg, None),
            };
            // Two `config=` (or `fail_delay=`...) on one line: which one the
            // admin meant is a guess, and a guess about the store is not ours
            // to make.
            if value.is_some() {
                if seen.contains(&key) {
                    return Err(format!("'{key}=' given twice: give it once"));
                }
                seen.push(key);
            }
            let mut set_role = |r: Role| match out.role {
                Some(old) if old != r => Err(format!(
                    "both '{}' and '{}' given: one role per line",
                    old.as_str(),
                    r.as_str()
                )),
                _ => {
                    out.role = Some(r);
                    Ok(())
                }
            };
            match (key, value) {
                ("split", None) => set_role(Role::Split)?,
                ("verify", None) => set_role(Role::Verify)?,
                ("app_password", None) => set_role(Role::AppPassword)?,
                ("debug", None) => out.debug = true,
                ("prompt", None) => out.prompt = true,
                ("nodelay", None) => out.fail_delay_ms = 0,
                ("config", Some(v)) if v.starts_with('/') => out.config = Some(PathBuf::from(v)),
                ("log_socket", Some(v)) if v.starts_with('/') => out.log_socket = Some(PathBuf::from(v)),
                ("fail_delay", Some(v)) => {
                    out.fail_delay_ms = v
                        .parse()
                        .ok()
                        .filter(|ms| *ms <= 60_000)
                        .ok_or_else(|| format!("fail_delay={v}: give milliseconds, 0 to 60000"))?;
                }
                ("config", _) => {
                    return Err(format!("'{arg}': give an absolute path, e.g. config=/etc/pam_mfa.toml"));
                }
                ("log_socket", _) => {
                    return Err(format!("'{arg}': give an absolute path, e.g. log_socket=/dev/log"));
                }
                _ => {
                    return Err(format!(
                        "unknown argument '{arg}'; known: split, verify, app_password, prompt, debug, nodelay, fail_delay=MS, config=PATH, log_socket=PATH"
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn parses() {
        let a = p(&["verify", "prompt", "debug", "config=/tmp/x.toml", "fail_delay=10"]).unwrap();
        assert_eq!(a.role, Some(Role::Verify));
        assert!(a.prompt && a.debug);
        assert_eq!(a.config, Some(PathBuf::from("/tmp/x.toml")));
        assert_eq!(a.fail_delay_ms, 10);
        assert_eq!(p(&[]).unwrap(), Args::default());
        assert_eq!(p(&["nodelay"]).unwrap().fail_delay_ms, 0);
    }

    #[test]
    fn refuses_typos_and_conflicts() {
        assert!(p(&["verfiy"]).unwrap_err().contains("unknown argument 'verfiy'"));
        assert!(p(&["split", "verify"]).is_err());
        assert!(p(&["config=relative.toml"]).is_err());
        assert!(p(&["fail_delay=soon"]).is_err());
        assert!(p(&["debug=1"]).is_err());
        assert!(p(&["config=/a.toml", "config=/b.toml"]).unwrap_err().contains("twice"));
        assert!(p(&["log_socket=dev/log"]).unwrap_err().contains("log_socket=/dev/log"));
    }
}
