//! The PAM stacks being compared, written side by side so what each row of
//! the table measures can be read in one place.

use crate::stores::{World, write_file};
use std::path::Path;

/// Writes one service file per stack into `w.confdir`.
pub fn write(w: &World, module: &Path, cfg_path: &Path, pwdfile: &Path) {
    let m = module.display();
    let log = w.root.join("log.sock");
    let mfa = |cfg: &Path, password: &str| {
        let a = format!("config={} log_socket={} nodelay", cfg.display(), log.display());
        pam_mfa_tests::recommended_stack(module, &a, password, "")
    };
    let ga = |password: &str| {
        format!(
            "auth required pam_google_authenticator.so secret={}/${{USER}} user=root forward_pass\n\
             auth required {password}\n\
             account required pam_permit.so\n",
            w.ga_dir.display()
        )
    };
    let oath = format!(
        "auth required pam_oath.so usersfile={} digits=6\nauth required pam_permit.so\naccount required pam_permit.so\n",
        w.oath_file.display()
    );
    let pwd = format!("pam_pwdfile.so pwdfile={} use_first_pass", pwdfile.display());
    let mut services = vec![
        (
            "permit",
            "auth required pam_permit.so\naccount required pam_permit.so\n".to_string(),
        ),
        (
            "mfa-loaded",
            format!("auth required pam_permit.so\naccount required pam_permit.so\nsession optional {m}\n"),
        ),
        ("mfa-durable", mfa(cfg_path, "pam_permit.so")),
        ("mfa-relaxed", mfa(&w.root.join("mfa-relaxed.toml"), "pam_permit.so")),
        ("mfa-pwdfile", mfa(cfg_path, &pwd)),
        ("ga", ga("pam_permit.so")),
        ("ga-pwdfile", ga(&pwd)),
        ("oath", oath),
    ];
    if let Some(pg) = &w.pg {
        for (name, cfg) in [("mfa-pg-socket", &pg.socket_cfg), ("mfa-pg-tls", &pg.tls_cfg)] {
            services.push((name, mfa(cfg, "pam_permit.so")));
        }
    }
    for (name, text) in services {
        write_file(&w.confdir.join(name), text.as_bytes(), 0o644);
    }
}
