//! The command line, as clap definitions. Other tools (hosting panels,
//! scripts) depend on these names, so they are a documented interface; the
//! man page and shell completions are generated from these same definitions
//! so they can never drift from it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "mfa-ctl",
    version,
    about = "Manage pam_mfa: TOTP second factor for mail logins",
    long_about = "Manage pam_mfa, the TOTP second factor for mail logins (\"password+code\" typed as one string): \
                  domain policy, enrolment with a terminal QR code, disabling, recovery codes, app passwords \
                  for mail clients, recent logins and lock-outs. It works on the same store as the PAM module.",
    after_help = "Exit status: 0 done; 1 refused (wrong code, no such entry, policy forbids it); \
                  2 usage, configuration or I/O error.\nWith --json every command prints one JSON object on stdout; \
                  check the exit status before using it (a list stopped by an error leaves it unfinished)."
)]
pub struct Cli {
    /// pam_mfa configuration file (the one the PAM module uses); default
    /// /etc/pam_mfa.toml, whose absence means the defaults. A file named
    /// here must exist.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print one JSON object on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Flattened: these are top-level commands like the ones below; they are
    // grouped because each needs the configuration and the store opened.
    #[command(flatten)]
    Admin(AdminCommand),

    /// Check the setup: configuration, store, PAM service files, Dovecot, clock
    ///
    /// Run it after setting up or changing anything. Each problem is one line,
    /// `ERROR FILE:LINE: what is wrong — what to do` or `WARNING ...`. It runs
    /// even when the configuration is broken (that is then one of the errors).
    /// Exit status: 0 no error (warnings allowed), 1 at least one error, 2
    /// doctor could not run (a PAM file or folder cannot be read).
    ///
    /// Dovecot is checked with `doveconf -n` where doveconf is on PATH; the
    /// environment variable PAM_MFA_DOVECONF names another program to run
    /// instead (tests use a script), and set but empty skips the check.
    Doctor(DoctorArgs),

    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff), or write one page per command into a folder
    Man {
        /// Write mfa-ctl.N, mfa-ctl-enroll.N, ... here instead of printing mfa-ctl.N
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Manual section, in the page headers, file names and cross-references
        /// (8 where mfa-ctl is installed in sbin)
        #[arg(long, value_name = "N", default_value = "1")]
        section: String,
    },
}

/// The commands that work on the store.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Per-domain policy: required, optional or disabled
    #[command(subcommand)]
    Domain(DomainCmd),

    /// Turn MFA on for a mailbox: QR code, then a code from the app ("Challenge")
    ///
    /// Without --begin/--confirm it is interactive: it shows the QR code, the
    /// secret and the otpauth URI, then asks for the code the app shows and
    /// activates MFA only when that code is valid. Until then the secret is
    /// pending and logins work as before.
    Enroll(EnrollArgs),

    /// Turn MFA off for a mailbox (needs a current code, or --force by an admin)
    Disable(DisableArgs),

    /// MFA state of a mailbox and what its logins need
    Status(MailboxArg),

    /// MFA state of every mailbox in the store
    ///
    /// Printed as the store is read, sorted by domain and mailbox, so a
    /// domain of a million mailboxes lists without being held in memory. On
    /// a terminal, stderr shows how many mailboxes were read when the
    /// listing takes a while (not with --json). With --json the output is
    /// one JSON object, {"mailboxes":[...]}, written as it goes: if an error
    /// stops the listing half way, stdout holds an unfinished document (no
    /// error object is added to it), the error is on stderr and the exit
    /// status is 2, so a script must check the exit status before using it.
    List {
        /// Only mailboxes of this domain
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// Only mailboxes whose secret is shorter than 128 bits (carried
        /// over from an old setup): ask their users to enrol again
        #[arg(long)]
        weak: bool,
    },

    /// New set of single-use recovery codes (replaces the old set; shown once)
    RecoveryCodes(MailboxArg),

    /// Passwords for mail clients that cannot type a code
    #[command(subcommand)]
    AppPassword(AppPasswordCmd),

    /// Codes by text message: a number to text login codes to, for users
    /// without an authenticator app
    ///
    /// The message goes out through the delivery command of the
    /// configuration's [sms] section (pam_mfa.toml(5)); pam_mfa never talks
    /// to a gateway itself. A mailbox may have the app, a number, or both;
    /// a confirmed number counts as enrolled for the domain policy. A login
    /// with the right password and no code texts a code to the number; the
    /// user then logs in with the password followed by that code.
    #[command(subcommand)]
    Sms(SmsCmd),

    /// Text a login code to a mailbox's number now
    ///
    /// What a hosting panel calls when its user clicks "text me a code"
    /// (the panel must have checked who is asking). The same limits as a
    /// login without a code: none while the code texted last is unused and
    /// younger than sms.resend_after, at most sms.max_per_hour, none to a
    /// locked mailbox;
    /// a new code replaces the one sent before. Exit status: 0 sent; 1
    /// refused (no number, a limit, locked; nothing sent); 2 the delivery
    /// command failed, timed out or is missing or unsafe (the attempt still
    /// counts toward the limits), or another error.
    SendCode(MailboxArg),

    /// Recent logins of a mailbox, newest first
    Logins {
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
        /// How many to show
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },

    /// Clear a mailbox's lock-out after failed codes
    Unlock(MailboxArg),

    /// Open webmail sessions of a mailbox (see [webmail] in pam_mfa.toml(5))
    Sessions(MailboxArg),

    /// End all webmail sessions of a mailbox: the next click needs a new code
    Logout(MailboxArg),

    /// Set up the store (folder, marker, domains/, mailboxes/)
    #[command(subcommand)]
    Store(StoreCmd),

    /// Move users in from google-authenticator or pam_oath without a new scan
    ///
    /// Reads the other module's secret files and enrols each user with the
    /// same secret, so the entry the user's authenticator app already has
    /// keeps working. Idempotent: importing the same file again changes
    /// nothing ("unchanged"). A mailbox that has MFA with another secret is
    /// left alone unless --replace. Each mailbox is written whole, one at a
    /// time: an import stopped half way leaves every mailbox it imported
    /// complete and the rest untouched, and running it again finishes it.
    ///
    /// Exit status: 0 when the import ran to its end, also if some entries
    /// were skipped (each is listed with its reason: they are findings, not
    /// errors of the command; with --json see "skipped" and
    /// "skipped_entries"); 1 when the single file given cannot be imported,
    /// the --dir folder, --list file or users file is refused (a symbolic
    /// link in its path, a second hard link, an owner or mode not trusted),
    /// or the domain's policy is disabled; 2 usage, configuration or I/O
    /// error (a file or folder that cannot be read, a store error).
    #[command(subcommand)]
    Import(ImportCmd),
}

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Create the store folder (0700), its marker file, domains/ and
    /// mailboxes/, whichever are missing
    Init {
        /// Set up this folder instead of the configuration's `store` (for
        /// staging a package or `make install DESTDIR=...`)
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Make a folder that exists but is no store (no marker, or a
        /// sub-folder missing) into a new, empty store. Without it such a
        /// folder is refused: it may be a mount point whose disk is missing.
        #[arg(long)]
        adopt: bool,
    },
    /// Copy every domain policy and mailbox (secrets, state, app passwords,
    /// recovery codes, last logins) from the store another configuration
    /// names into this one: files to PostgreSQL and back. Idempotent; a
    /// mailbox the target holds with other content is left alone and listed
    Copy {
        /// The configuration file naming the store to copy from
        #[arg(long, value_name = "OTHER_CONFIG")]
        from: PathBuf,
        /// Say what would be copied, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Overwrite mailboxes the target holds with other content
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check only this PAM service file (repeat for more); then the PAM
    /// folder is not scanned
    #[arg(long = "pam-file", value_name = "FILE")]
    pub pam_files: Vec<PathBuf>,
    /// Folder scanned for service files that load pam_mfa.so, and where
    /// includes are looked up
    #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
    pub pam_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct MailboxArg {
    /// Mailbox (user@domain; a bare name gets the configured default_domain)
    #[arg(value_name = "MAILBOX")]
    pub mailbox: String,
}

#[derive(Debug, Subcommand)]
pub enum DomainCmd {
    /// Set a domain's policy
    Set {
        #[arg(value_name = "DOMAIN")]
        domain: String,
        #[arg(value_enum, value_name = "POLICY")]
        policy: PolicyArg,
        /// For required: how long unenrolled mailboxes may still log in with
        /// the password alone (e.g. 7d, 12h)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        grace: Option<u64>,
        /// How long a password+code string accepted from the webmail servers
        /// may log in again for this domain (e.g. 4h; 0 = no webmail
        /// sessions; "default" = the configuration's webmail.reuse_window).
        /// Unset: unchanged
        #[arg(long, value_name = "DURATION", value_parser = parse_window)]
        webmail_window: Option<WebmailWindow>,
    },
    /// Show the policy in force for a domain
    Show {
        #[arg(value_name = "DOMAIN")]
        domain: String,
    },
    /// List the domains that have a policy of their own
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Every mailbox must give a code (after the grace period)
    Required,
    /// Mailboxes that enrolled must give a code
    Optional,
    /// Never ask for a code in this domain
    Disabled,
}

impl From<PolicyArg> for pam_mfa::policy::Policy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Required => pam_mfa::policy::Policy::Required,
            PolicyArg::Optional => pam_mfa::policy::Policy::Optional,
            PolicyArg::Disabled => pam_mfa::policy::Policy::Disabled,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SmsCmd {
    /// Text a confirmation code to NUMBER; it stays pending until confirmed
    ///
    /// NUMBER in E.164 form: + and the country code, then the number without
    /// its leading 0, 8 to 15 digits (spaces and dashes between them are
    /// fine), e.g. +49 151 23456789. A number already confirmed stays in
    /// force until the new one is confirmed, so a mistyped number locks
    /// nobody out. Held to the same limits as login codes. A mailbox that
    /// has MFA on (the app or a number) needs --code or --force.
    Add {
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
        #[arg(value_name = "NUMBER", allow_hyphen_values = true)]
        number: String,
        #[command(flatten)]
        proof: ProofArgs,
    },
    /// Turn the pending number on with the code texted to it
    Confirm {
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
        #[arg(value_name = "CODE")]
        code: String,
    },
    /// Remove the mailbox's number (confirmed or pending)
    ///
    /// A confirmed number that is the mailbox's only second factor (no app)
    /// is removed only with --code or --force, as disable asks; in a domain
    /// that requires MFA only with --force (its logins then fail until it
    /// enrols again).
    Remove {
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
        #[command(flatten)]
        proof: ProofArgs,
    },
}

/// Proof that the user may change a mailbox's factors, where MFA is on.
#[derive(Debug, Args)]
pub struct ProofArgs {
    /// A current code: the one the app shows, or one texted to the
    /// mailbox's confirmed number (mfa-ctl send-code)
    #[arg(long, value_name = "CODE", conflicts_with = "force")]
    pub code: Option<String>,
    /// Admin override, e.g. for a lost phone (logged)
    #[arg(long)]
    pub force: bool,
}

impl ProofArgs {
    pub fn proof(&self) -> pam_mfa::admin::Proof<'_> {
        match (&self.code, self.force) {
            (Some(c), _) => pam_mfa::admin::Proof::Code(c),
            (None, true) => pam_mfa::admin::Proof::Force,
            (None, false) => pam_mfa::admin::Proof::None,
        }
    }
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    #[arg(value_name = "MAILBOX")]
    pub mailbox: String,
    /// Step 1 without a prompt: create the pending secret and print it
    #[arg(long, conflicts_with = "confirm")]
    pub begin: bool,
    /// Step 2 without a prompt: activate the pending secret if CODE is valid
    #[arg(long, value_name = "CODE")]
    pub confirm: Option<String>,
    /// Draw the QR code for a light-background terminal (default: dark background)
    #[arg(long, conflicts_with = "confirm")]
    pub invert: bool,
    /// Do not draw the QR code (secret and URI only)
    #[arg(long, conflicts_with = "confirm")]
    pub no_qr: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("proof").required(true).args(["code", "force"]))]
pub struct DisableArgs {
    #[arg(value_name = "MAILBOX")]
    pub mailbox: String,
    /// The code the user's app shows now (proof the user has the phone)
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
    /// Admin override, e.g. for a lost phone (logged)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordCmd {
    /// Create an app password (shown once)
    Add {
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
        /// Name to recognise it by, e.g. "Phone mail app"
        #[arg(long, value_name = "LABEL")]
        label: String,
        /// PAM service it may log in to (imap, pop3, smtp, sieve, ...); repeat or
        /// separate with commas; none given: every service
        #[arg(long = "service", value_name = "SVC", value_delimiter = ',')]
        services: Vec<String>,
        /// Source network it may log in from (CIDR or address); repeat for more;
        /// none given: anywhere
        #[arg(long = "from", value_name = "CIDR", value_delimiter = ',')]
        from: Vec<String>,
        /// Stops working after this long (e.g. 90d)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<u64>,
    },
    /// List a mailbox's app passwords with their last use
    List {
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
    },
    /// Revoke an app password by its label
    Revoke {
        #[arg(value_name = "MAILBOX")]
        mailbox: String,
        #[arg(value_name = "LABEL")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Import google-authenticator secret files (~/.google_authenticator)
    ///
    /// One user: MAILBOX FILE. Many: --dir DIR (one file per user, named
    /// after the user, as with pam_google_authenticator's
    /// secret=/var/lib/ga/${USER}) or --list FILE (lines "user path", the
    /// path a secret file or a home folder holding .google_authenticator);
    /// both with --domain for user names without @.
    ///
    /// Carried over: the secret, the step size (STEP_SIZE), the time steps
    /// already used (DISALLOW_REUSE; steps later than google-authenticator
    /// could have seen by now are ignored, with a note), and the emergency
    /// scratch codes (at most 10, as google-authenticator writes: a file
    /// with more is refused), which become recovery codes, typed after the
    /// password with a dash in the middle: 12345678 as 1234-5678 (8 digits:
    /// weaker than pam_mfa's own; replace them with mfa-ctl recovery-codes
    /// MAILBOX). Noted, not carried over: a WINDOW_SIZE wider than
    /// pam_mfa's [totp] window, RATE_LIMIT, a learnt TIME_SKEW, reuse
    /// allowed. Refused: counter-based (HOTP) files, step sizes under 10 s,
    /// secrets over 512 bits. Files that are not regular, have a second
    /// hard link, are writable by group or others, or belong to someone
    /// other than root, the user or the owner of their folder are not read;
    /// nor is a path with a symbolic link anywhere in it (name real paths).
    #[command(name = "google-authenticator")]
    GoogleAuthenticator(GaImportArgs),

    /// Import the time-based tokens of a pam_oath users file
    ///
    /// Lines "HOTP/T30[/6|/7|/8] user password hexsecret ..." (and HOTP/T60):
    /// each user's first time-based token is imported, with its digits and
    /// step size. Skipped and listed by line number with the reason (never
    /// with what the line holds, which may be a password or a key out of
    /// place): counter-based (HOTP, HOTP/E) tokens, further tokens of a
    /// user, unknown token types, lines with fields missing or shifted. A
    /// password in the file is never imported (pam_mfa leaves passwords to
    /// your password module): such users are named. pam_oath's window is a
    /// module argument, not in the file: pam_mfa's [totp] window applies.
    Oath(OathImportArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("from").required(true).args(["mailbox", "dir", "list"]))]
pub struct GaImportArgs {
    /// Mailbox to enrol (user@domain; a bare name gets the configured default_domain), with FILE
    #[arg(value_name = "MAILBOX", requires = "file", conflicts_with = "domain")]
    pub mailbox: Option<String>,
    /// That user's secret file, e.g. /home/alice/.google_authenticator
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A folder of secret files, each named after its user
    #[arg(long, value_name = "DIR", requires = "domain")]
    pub dir: Option<PathBuf>,
    /// A file of "user path" lines (path: a secret file, or a home folder
    /// holding .google_authenticator; relative to the list's folder)
    #[arg(long, value_name = "FILE", requires = "domain")]
    pub list: Option<PathBuf>,
    /// Domain of the users: alice becomes alice@DOMAIN (names with @ are kept)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    #[command(flatten)]
    pub flags: ImportFlags,
}

#[derive(Debug, Args)]
pub struct OathImportArgs {
    /// pam_oath's users file (its usersfile= argument, e.g. /etc/users.oath)
    #[arg(value_name = "USERSFILE")]
    pub usersfile: PathBuf,
    /// Domain of the users: alice becomes alice@DOMAIN (names with @ are
    /// kept; default: the configured default_domain)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    #[command(flatten)]
    pub flags: ImportFlags,
}

/// What every import takes.
#[derive(Debug, Clone, Copy, Args)]
pub struct ImportFlags {
    /// Say what would be imported; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite mailboxes that have MFA with another secret (the entry
    /// their users' apps have now stops working)
    #[arg(long)]
    pub replace: bool,
    /// Also import secrets of 80 to 127 bits (google-authenticator before
    /// 2016 made 80). They stay weak: mfa-ctl list --weak lists them, so
    /// those users can be asked to enrol again. Under 80 bits: never
    #[arg(long)]
    pub allow_short_secrets: bool,
}

impl From<ImportFlags> for pam_mfa::admin::ImportOptions {
    fn from(f: ImportFlags) -> Self {
        pam_mfa::admin::ImportOptions {
            dry_run: f.dry_run,
            replace: f.replace,
            allow_short_secrets: f.allow_short_secrets,
        }
    }
}

/// `--webmail-window`: seconds, or `None` for "default" (the configuration's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebmailWindow(pub Option<u64>);

fn parse_window(s: &str) -> Result<WebmailWindow, String> {
    if s == "default" {
        return Ok(WebmailWindow(None));
    }
    parse_duration(s).map(|w| WebmailWindow(Some(w)))
}

fn parse_duration(s: &str) -> Result<u64, String> {
    pam_mfa::duration::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn disable_needs_code_or_force() {
        assert!(Cli::try_parse_from(["mfa-ctl", "disable", "a@b.c"]).is_err());
        assert!(Cli::try_parse_from(["mfa-ctl", "disable", "a@b.c", "--code", "1", "--force"]).is_err());
        assert!(Cli::try_parse_from(["mfa-ctl", "disable", "a@b.c", "--force"]).is_ok());
    }

    #[test]
    fn begin_and_confirm_exclude_each_other() {
        assert!(Cli::try_parse_from(["mfa-ctl", "enroll", "a@b.c", "--begin", "--confirm", "123456"]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let c = Cli::try_parse_from(["mfa-ctl", "status", "a@b.c", "--json", "--config", "/x"]).unwrap();
        assert!(c.json);
        assert_eq!(c.config, Some(PathBuf::from("/x")));
    }

    #[test]
    fn doctor_and_store_init() {
        let c = Cli::try_parse_from(["mfa-ctl", "doctor", "--pam-file", "/a", "--pam-file", "/b"]).unwrap();
        let Command::Doctor(d) = c.command else {
            panic!("parsed as {:?}", c.command)
        };
        assert_eq!(d.pam_files, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(d.pam_dir, PathBuf::from("/etc/pam.d"));
        let c = Cli::try_parse_from(["mfa-ctl", "store", "init", "/stage/var/lib/pam_mfa"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Admin(AdminCommand::Store(StoreCmd::Init {
                dir: Some(_),
                adopt: false
            }))
        ));
    }

    #[test]
    fn import_forms() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["mfa-ctl", "import"], args].concat());
        let ga = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(Command::Admin(AdminCommand::Import(ImportCmd::GoogleAuthenticator(a)))) => Some(a),
            _ => None,
        };
        let one = ga(&[
            "google-authenticator",
            "a@b.c",
            "/home/a/.google_authenticator",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(one.mailbox.as_deref(), Some("a@b.c"));
        assert!(one.flags.dry_run && !one.flags.replace);
        let dir = ga(&[
            "google-authenticator",
            "--dir",
            "/var/lib/ga",
            "--domain",
            "b.c",
            "--replace",
        ])
        .unwrap();
        assert_eq!(dir.dir, Some(PathBuf::from("/var/lib/ga")));
        assert!(
            ga(&[
                "google-authenticator",
                "--list",
                "/l",
                "--domain",
                "b.c",
                "--allow-short-secrets"
            ])
            .is_some()
        );
        // Exactly one source; a bulk form needs its domain; one user takes none.
        for bad in [
            &["google-authenticator"][..],
            &["google-authenticator", "a@b.c"],
            &["google-authenticator", "--dir", "/d"],
            &["google-authenticator", "--list", "/l"],
            &["google-authenticator", "--dir", "/d", "--list", "/l", "--domain", "b.c"],
            &["google-authenticator", "a@b.c", "/f", "--dir", "/d", "--domain", "b.c"],
            &["google-authenticator", "a@b.c", "/f", "--domain", "b.c"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let Ok(Command::Admin(AdminCommand::Import(ImportCmd::Oath(o)))) =
            parse(&["oath", "/etc/users.oath", "--domain", "b.c", "--json"]).map(|c| c.command)
        else {
            panic!("oath")
        };
        assert_eq!(o.domain.as_deref(), Some("b.c"));
        assert!(parse(&["oath", "/etc/users.oath"]).is_ok(), "domain optional");
    }

    #[test]
    fn sms_forms() {
        let c = Cli::try_parse_from(["mfa-ctl", "sms", "add", "a@b.c", "+49 151 2345 6789"]).unwrap();
        let Command::Admin(AdminCommand::Sms(SmsCmd::Add { number, .. })) = c.command else {
            panic!("parsed as {:?}", c.command)
        };
        assert_eq!(number, "+49 151 2345 6789");
        assert!(Cli::try_parse_from(["mfa-ctl", "sms", "confirm", "a@b.c", "123456"]).is_ok());
        assert!(Cli::try_parse_from(["mfa-ctl", "sms", "remove", "a@b.c", "--force"]).is_ok());
        let add = ["mfa-ctl", "sms", "add", "a@b.c", "+4915123456789"];
        assert!(Cli::try_parse_from([&add[..], &["--code", "123456"]].concat()).is_ok());
        assert!(Cli::try_parse_from([&add[..], &["--code", "1", "--force"]].concat()).is_err());
        assert!(Cli::try_parse_from(["mfa-ctl", "send-code", "a@b.c"]).is_ok());
        assert!(Cli::try_parse_from(["mfa-ctl", "sms", "add", "a@b.c"]).is_err());
    }

    #[test]
    fn services_repeat_or_comma() {
        let c = Cli::try_parse_from([
            "mfa-ctl",
            "app-password",
            "add",
            "a@b.c",
            "--label",
            "x",
            "--service",
            "imap,smtp",
            "--service",
            "sieve",
        ])
        .unwrap();
        let Command::Admin(AdminCommand::AppPassword(AppPasswordCmd::Add { services, .. })) = c.command else {
            panic!("parsed as {:?}", c.command)
        };
        assert_eq!(services, ["imap", "smtp", "sieve"]);
    }
}
