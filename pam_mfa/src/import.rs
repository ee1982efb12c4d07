//! Reading the secret files of the modules hosts move from —
//! google-authenticator-libpam's `~/.google_authenticator` and pam_oath's
//! users file — into seeds pam_mfa stores, so users keep the entry their
//! authenticator app already has. Pure: bytes in, tokens and findings out;
//! the store, file checks and mailbox names are `admin.rs`'s. Secrets and
//! scratch codes live only in zeroizing types, and no message quotes any
//! part of a file's content but option names, line numbers and the user
//! names of lines that were read whole (a line that was not may have a
//! password or a key where its user name should be).
//!
//! The formats, as the programs themselves read them:
//! - google-authenticator (`src/pam_google_authenticator.c`, `FILEFORMAT`):
//!   line 1 the base32 secret (spaces, tabs and dashes skipped, any case,
//!   `0`/`1`/`8` read as `O`/`L`/`B`); option lines `" NAME value`, the
//!   first of a name counting; TOTP only with `" TOTP_AUTH` and without
//!   `" HOTP_COUNTER`; `STEP_SIZE` 1..=60 (default 30); `WINDOW_SIZE`
//!   1..=100 (default 3: the codes of steps -(n-1)/2 ..= n/2 are valid);
//!   `DISALLOW_REUSE` followed by the time steps already used; `TIME_SKEW`
//!   the skew in steps it learned; then 8-digit scratch codes
//!   (10000000..=99999999), read up to the first line that is neither an
//!   option nor one; codes are always 6 digits, HMAC-SHA1; at most 64 KiB.
//! - pam_oath (liboath `usersfile.c`): whitespace-separated
//!   `TYPE USER PASSWORD HEXSECRET [COUNTER [LASTOTP [TIME]]]`, TYPE one of
//!   `HOTP`, `HOTP/E`, `HOTP/E/{6,7,8}` (counter-based) or
//!   `HOTP/T30`, `HOTP/T60`, `HOTP/T{30,60}/{6,7,8}` (time-based); any other
//!   first word (comments `#` included) makes liboath skip the line;
//!   PASSWORD `-` none, `+` checked by another module, else the password in
//!   plain text; one user may have several lines, each a valid token.

use crate::secret::{SecretBytes, SecretString};
use crate::totp::{Algorithm, MIN_SECRET_BYTES, MIN_USABLE_SECRET_BYTES, TotpSeed};
use serde::{Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// The longest key imported: 512 bits, four times what authenticator apps
/// make (80 to 160 bits, 256 at most for SHA-256). A longer one is no real
/// token's, and megabytes of it would make a mailbox the store refuses.
pub const MAX_SECRET_BYTES: usize = 64;
/// google-authenticator learns a clock skew only within this many steps
/// either way (`check_timebased_code`: 25*60).
const GA_MAX_SKEW: u64 = 25 * 60;
/// google-authenticator refuses larger files (`open_secret_file`).
pub const GA_MAX_FILE: usize = 64 * 1024;
/// pam_oath users files are one line per token; this is far above any real one.
pub const OATH_MAX_FILE: usize = 256 * 1024 * 1024;

/// What an import needs to know about this installation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Import secrets of 80 to 127 bits ([`crate::totp::TotpSeed::is_weak`]).
    pub allow_short_secrets: bool,
    /// pam_mfa's `[totp] window`, which notes compare the file's window with.
    pub window: u8,
    /// The time of the import (Unix seconds), which bounds the time steps
    /// `DISALLOW_REUSE` can have seen used.
    pub now: u64,
}

/// A token read from a file, ready to store.
pub struct Token {
    /// SHA-1; `created` is 0 until the admin sets the time of the import.
    pub seed: TotpSeed,
    /// Scratch codes, normalised (8 ASCII digits), without duplicates, at
    /// most [`crate::recovery::MAX_SCRATCH_CODES`].
    pub scratch_codes: Vec<SecretString>,
    /// The last time step the old module accepted (google-authenticator's
    /// `DISALLOW_REUSE` list), so a code used there is not accepted again here.
    pub last_step: Option<u64>,
    /// Bits of the secret.
    pub secret_bits: usize,
    pub notes: Vec<Note>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("seed", &self.seed)
            .field("scratch_codes", &self.scratch_codes.len())
            .field("last_step", &self.last_step)
            .field("secret_bits", &self.secret_bits)
            .field("notes", &self.notes)
            .finish()
    }
}

/// Something the admin should know about an imported token: what the old
/// module did that pam_mfa does differently. Never a reason to refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The file accepted codes further from now than pam_mfa's window.
    WiderWindow { theirs: u32, ours: u8 },
    /// No `DISALLOW_REUSE`: the old module let a code log in repeatedly.
    ReuseAllowed,
    /// `DISALLOW_REUSE` steps later than google-authenticator could have
    /// accepted by the time of the import: not carried over.
    FutureStepsIgnored { count: usize },
    /// `RATE_LIMIT`: pam_mfa's lock-out applies instead.
    RateLimit,
    /// google-authenticator had learned the phone's clock is off by `steps`.
    TimeSkew { steps: i64, ours: u8 },
    /// Imported with `allow_short_secrets`.
    WeakSecret { bits: usize },
    /// Scratch codes carried over as (weaker) recovery codes.
    ScratchCodes { count: usize },
    /// Lines after the scratch codes that google-authenticator never reads.
    IgnoredLines { count: usize },
    /// pam_oath held this user's password in plain text: not imported.
    PasswordNotImported,
}

impl Note {
    /// The stable name scripts see (`kind` in `--json`).
    pub fn kind(&self) -> &'static str {
        match self {
            Note::WiderWindow { .. } => "wider_window",
            Note::ReuseAllowed => "reuse_allowed",
            Note::FutureStepsIgnored { .. } => "future_steps_ignored",
            Note::RateLimit => "rate_limit",
            Note::TimeSkew { .. } => "time_skew",
            Note::WeakSecret { .. } => "weak_secret",
            Note::ScratchCodes { .. } => "scratch_codes",
            Note::IgnoredLines { .. } => "ignored_lines",
            Note::PasswordNotImported => "password_not_imported",
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::WiderWindow { theirs, ours } => write!(
                f,
                "the file accepted codes up to {theirs} steps before or after the current one (WINDOW_SIZE); \
                 pam_mfa accepts {ours} for every mailbox ([totp] window): a phone clock further off is refused"
            ),
            Note::ReuseAllowed => f.write_str(
                "the file let one code log in several times (no DISALLOW_REUSE); pam_mfa accepts each code once",
            ),
            Note::RateLimit => f.write_str(
                "the file's RATE_LIMIT is not carried over: pam_mfa's lock-out ([lockout]) applies to every mailbox",
            ),
            // Worded without the count, so that the notes of a bulk import
            // group by sentence.
            Note::FutureStepsIgnored { .. } => f.write_str(
                "DISALLOW_REUSE lists time steps later than google-authenticator could have accepted by now \
                 (beyond its window and learnt skew): they were not carried over, since they would refuse every \
                 code of this user until then; check this server's clock",
            ),
            // Worded without the number of steps, so that the notes of a
            // bulk import group by sentence.
            Note::TimeSkew { steps, ours } if steps.unsigned_abs() > u64::from(*ours) => write!(
                f,
                "google-authenticator had learned that this phone's clock is off by more than the {ours} steps \
                 either side pam_mfa accepts (TIME_SKEW): this user's codes are refused until the phone's clock \
                 is set right"
            ),
            Note::TimeSkew { ours, .. } => write!(
                f,
                "google-authenticator had learned that this phone's clock is off (TIME_SKEW), by no more than \
                 the {ours} steps either side pam_mfa accepts for every mailbox"
            ),
            Note::WeakSecret { bits } => write!(
                f,
                "the secret has {bits} bits, fewer than the 128 new secrets have: ask the user to enrol anew \
                 (mfa-ctl list --weak lists these mailboxes)"
            ),
            Note::ScratchCodes { .. } => f.write_str(
                "the scratch codes became recovery codes, typed after the password with a dash in the middle \
                 (12345678 as 1234-5678); being 8 digits they are weaker than pam_mfa's own: \
                 replace them with mfa-ctl recovery-codes",
            ),
            Note::IgnoredLines { count } => write!(
                f,
                "{count} lines after the scratch codes were ignored, as google-authenticator ignores them"
            ),
            Note::PasswordNotImported => f.write_str(
                "the users file holds this user's password; passwords are not imported: \
                 your password module must know it",
            ),
        }
    }
}

/// `{"kind": ..., "message": ...}`: a name for scripts, a sentence for people.
impl Serialize for Note {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("Note", 2)?;
        out.serialize_field("kind", self.kind())?;
        out.serialize_field("message", &self.to_string())?;
        out.end()
    }
}

/// Why a token is not imported. Says what is wrong, never what the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Empty,
    TooLarge {
        limit: usize,
    },
    /// NUL bytes: google-authenticator refuses such a file too.
    NotText,
    NotBase32,
    NoSecret,
    /// Counter-based: pam_mfa has time-based codes only.
    Hotp,
    /// google-authenticator: neither `TOTP_AUTH` nor `HOTP_COUNTER`.
    NoTotp,
    /// An option google-authenticator itself would refuse.
    BadOption {
        option: &'static str,
    },
    /// A step size pam_mfa cannot honour.
    Period {
        seconds: u64,
    },
    /// More scratch codes than google-authenticator writes.
    TooManyScratchCodes,
    /// 80 to 127 bits, without `allow_short_secrets`.
    ShortSecret {
        bits: usize,
    },
    /// Fewer than 80 bits: never.
    TooShortSecret {
        bits: usize,
    },
    /// More than [`MAX_SECRET_BYTES`].
    LongSecret {
        bits: usize,
    },
    /// pam_oath: the secret is not hexadecimal.
    NotHex,
    /// pam_oath: a first word that is not a token type.
    UnknownType,
    /// pam_oath: no user, or no secret, on the line.
    Incomplete,
    /// pam_oath: a key or a password marker (`-`, `+`) where the user name
    /// should be: the line's fields are shifted.
    ShiftedFields,
    /// pam_oath: the user's token was taken from another line.
    AnotherToken {
        line: usize,
    },
}

impl Refused {
    /// The stable name scripts see (`kind` in `--json`).
    pub fn kind(&self) -> &'static str {
        match self {
            Refused::Empty => "empty",
            Refused::TooLarge { .. } => "too_large",
            Refused::NotText => "not_text",
            Refused::NotBase32 => "not_base32",
            Refused::NoSecret => "no_secret",
            Refused::Hotp => "hotp",
            Refused::NoTotp => "no_totp",
            Refused::BadOption { .. } => "bad_option",
            Refused::Period { .. } => "period",
            Refused::TooManyScratchCodes => "too_many_scratch_codes",
            Refused::ShortSecret { .. } => "short_secret",
            Refused::TooShortSecret { .. } => "too_short_secret",
            Refused::LongSecret { .. } => "long_secret",
            Refused::NotHex => "not_hex",
            Refused::UnknownType => "unknown_type",
            Refused::Incomplete => "incomplete",
            Refused::ShiftedFields => "shifted_fields",
            Refused::AnotherToken { .. } => "another_token",
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Empty => f.write_str("the file is empty"),
            Refused::TooLarge { limit } => write!(f, "the file is larger than {} KiB", limit / 1024),
            Refused::NotText => f.write_str("the file holds NUL bytes: it is no secret file"),
            Refused::NotBase32 => f.write_str("the first line is not a base32 secret"),
            Refused::NoSecret => f.write_str("the first line holds no secret"),
            Refused::Hotp => f.write_str(
                "a counter-based (HOTP) token: pam_mfa has time-based (TOTP) codes only; the user must enrol anew",
            ),
            Refused::NoTotp => f.write_str(
                "neither TOTP_AUTH nor HOTP_COUNTER: the file holds no token google-authenticator would check",
            ),
            Refused::BadOption { option } => {
                write!(
                    f,
                    "the {option} option is invalid (google-authenticator refuses it too)"
                )
            }
            Refused::Period { seconds } => write!(
                f,
                "codes change every {seconds} s: pam_mfa supports 10 to 300 seconds; the user must enrol anew"
            ),
            Refused::TooManyScratchCodes => write!(
                f,
                "the file holds more than {} scratch codes, the most google-authenticator writes: it was edited \
                 or is not what it seems, and every code carried over is one more to guess; remove the codes \
                 the user does not hold and import again",
                crate::recovery::MAX_SCRATCH_CODES
            ),
            Refused::ShortSecret { bits } => write!(
                f,
                "the secret has {bits} bits, fewer than the 128 required (importing it needs an explicit choice)"
            ),
            Refused::TooShortSecret { bits } => write!(
                f,
                "the secret has {bits} bits, fewer than the 80 pam_mfa accepts at all; the user must enrol anew"
            ),
            Refused::LongSecret { bits } => write!(
                f,
                "the secret has {bits} bits, more than the {} pam_mfa imports (no authenticator app uses a \
                 longer key): the file is damaged or not what it seems; the user must enrol anew",
                MAX_SECRET_BYTES * 8
            ),
            Refused::NotHex => f.write_str("the secret is not hexadecimal"),
            Refused::UnknownType => f.write_str("not a token type pam_oath knows (pam_oath skips the line too)"),
            Refused::Incomplete => f.write_str("the line has no user or no secret"),
            Refused::ShiftedFields => f.write_str(
                "where the user name should be, the line holds a key or a password marker (- or +): its fields \
                 seem shifted; fix the line and import again",
            ),
            Refused::AnotherToken { line } => write!(
                f,
                "another token of this user: pam_mfa keeps one per mailbox and took the one on line {line}"
            ),
        }
    }
}

impl std::error::Error for Refused {}

// ---- google-authenticator ----

/// Reads a google-authenticator secret file (`~/.google_authenticator`).
pub fn google_authenticator(text: &[u8], opts: &Options) -> Result<Token, Refused> {
    if text.is_empty() {
        return Err(Refused::Empty);
    }
    if text.len() > GA_MAX_FILE {
        return Err(Refused::TooLarge { limit: GA_MAX_FILE });
    }
    if text.contains(&0) {
        return Err(Refused::NotText);
    }
    let mut lines = text.split(|b| *b == b'\n');
    let key = ga_base32_decode(lines.next().unwrap_or_default()).ok_or(Refused::NotBase32)?;
    if key.is_empty() {
        return Err(Refused::NoSecret);
    }
    // An option line is `" NAME value`; the first line of a name counts.
    let option = |name: &str| -> Option<&[u8]> {
        text.split(|b| *b == b'\n').skip(1).find_map(|line| {
            let rest = line.strip_prefix(b"\" ")?.strip_prefix(name.as_bytes())?;
            match rest.first() {
                None => Some(b"".as_slice()),
                Some(b' ' | b'\t' | b'\r') => Some(trim(rest)),
                Some(_) => None,
            }
        })
    };
    if option("HOTP_COUNTER").is_some() {
        return Err(Refused::Hotp);
    }
    if option("TOTP_AUTH").is_none() {
        return Err(Refused::NoTotp);
    }
    let period = match option("STEP_SIZE") {
        None => 30,
        Some(v) => ga_number(v, 1..=60).ok_or(Refused::BadOption { option: "STEP_SIZE" })?,
    };
    if !(10..=300).contains(&period) {
        return Err(Refused::Period { seconds: period });
    }
    let window = match option("WINDOW_SIZE") {
        None => 3,
        Some(v) => ga_number(v, 1..=100).ok_or(Refused::BadOption { option: "WINDOW_SIZE" })?,
    };
    let (secret_bits, mut notes) = judge_length(key.len(), opts)?;
    // Steps -(n-1)/2 ..= n/2: the furthest step either side is n/2.
    let reach = u32::try_from(window / 2).unwrap_or(u32::MAX);
    if reach > u32::from(opts.window) {
        notes.push(Note::WiderWindow {
            theirs: reach,
            ours: opts.window,
        });
    }
    let skew = option("TIME_SKEW")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
        .filter(|s| *s != 0);
    let last_step = match option("DISALLOW_REUSE") {
        None => {
            notes.push(Note::ReuseAllowed);
            None
        }
        // Only a hint against replays: a malformed entry is no reason to
        // refuse, it is just not carried over.
        Some(list) => {
            let steps = list
                .split(|b| b.is_ascii_whitespace())
                .filter_map(|t| std::str::from_utf8(t).ok()?.parse::<u64>().ok());
            let (last, future) = reuse_steps(steps, opts.now / period, window, skew, opts.window);
            if future > 0 {
                notes.push(Note::FutureStepsIgnored { count: future });
            }
            last
        }
    };
    if option("RATE_LIMIT").is_some() {
        notes.push(Note::RateLimit);
    }
    if let Some(steps) = skew {
        notes.push(Note::TimeSkew {
            steps,
            ours: opts.window,
        });
    }
    let (scratch_codes, ignored) = ga_scratch_codes(text)?;
    if !scratch_codes.is_empty() {
        notes.push(Note::ScratchCodes {
            count: scratch_codes.len(),
        });
    }
    if ignored > 0 {
        notes.push(Note::IgnoredLines { count: ignored });
    }
    Ok(Token {
        seed: seed_of(&key, 6, period),
        scratch_codes,
        last_step,
        secret_bits,
        notes,
    })
}

/// google-authenticator's base32: A-Z (any case) and 2-7, with `0`, `1`,
/// `8` read as `O`, `L`, `B` and spaces, tabs, CR and dashes skipped;
/// trailing bits that make no whole byte are dropped. `None` on any other
/// character (padding `=` included: google-authenticator refuses it too).
fn ga_base32_decode(line: &[u8]) -> Option<SecretBytes> {
    let mut out = Zeroizing::new(Vec::with_capacity(line.len() * 5 / 8 + 1));
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &c in line {
        let value = match c {
            b' ' | b'\t' | b'\r' | b'-' => continue,
            b'0' => b'O' - b'A',
            b'1' => b'L' - b'A',
            b'8' => b'B' - b'A',
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = ((buffer << 5) | u32::from(value)) & 0xfff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap_or_default());
        }
    }
    Some(out)
}

/// The last of the `DISALLOW_REUSE` steps that google-authenticator could
/// have seen used by `now_step`, and how many are later than that.
///
/// google-authenticator keeps a used step only while it is fewer than
/// `WINDOW_SIZE` steps from the step of a login (its own clock, shifted by
/// the skew it learnt, which it looks for no further than [`GA_MAX_SKEW`]
/// steps), so no entry it wrote is later than `now_step + WINDOW_SIZE +
/// |TIME_SKEW|` (the skew counted up to that, and the whole at least
/// pam_mfa's window).
/// A later one is no code the phone showed yet, and carried over as the
/// replay guard it would refuse every code of the user until that time: a
/// lock-out that anyone who can write the file could set for years. So it is
/// ignored (and noted). Earlier steps than the window back are kept: as the
/// last used step they change nothing.
fn reuse_steps(
    steps: impl Iterator<Item = u64>,
    now_step: u64,
    window: u64,
    skew: Option<i64>,
    ours: u8,
) -> (Option<u64>, usize) {
    // A larger skew was written by hand, and must not open the bound again.
    let skew = skew.map_or(0, |s| s.unsigned_abs().min(GA_MAX_SKEW));
    let reach = window.saturating_add(skew).max(u64::from(ours));
    let latest = now_step.saturating_add(reach);
    let mut future = 0;
    let last = steps
        .filter(|s| {
            let ok = *s <= latest;
            future += usize::from(!ok);
            ok
        })
        .max();
    (last, future)
}

/// An option's number as google-authenticator reads it: decimal, within
/// `range`, followed by nothing but blanks.
fn ga_number(value: &[u8], range: std::ops::RangeInclusive<u64>) -> Option<u64> {
    let digits = value.split(|b| *b == b' ' || *b == b'\t').next()?;
    let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    range.contains(&n).then_some(n)
}

/// The scratch codes: after line 1, skipping blank lines and option lines,
/// each line one code of 8 digits not starting with 0, up to the first line
/// that is none (google-authenticator stops reading there). Returns the
/// codes and how many non-blank lines were left unread; refuses more than
/// google-authenticator writes (each is a guess more at 26 bits, and which
/// of them the user holds cannot be told).
fn ga_scratch_codes(text: &[u8]) -> Result<(Vec<SecretString>, usize), Refused> {
    let mut codes: Vec<SecretString> = Vec::new();
    let mut lines = text.split(|b| *b == b'\n').skip(1);
    let mut ignored = 0;
    for line in lines.by_ref() {
        let line = trim(line);
        if line.is_empty() || line.starts_with(b"\"") {
            continue;
        }
        let is_code = line.len() == crate::recovery::SCRATCH_LEN
            && line.iter().all(u8::is_ascii_digit)
            && line.first() != Some(&b'0');
        if !is_code {
            ignored = 1;
            break;
        }
        let mut code = Zeroizing::new(String::with_capacity(line.len()));
        code.extend(line.iter().map(|b| char::from(*b)));
        if !codes
            .iter()
            .any(|c| crate::secret::ct_eq(c.as_bytes(), code.as_bytes()))
        {
            if codes.len() == crate::recovery::MAX_SCRATCH_CODES {
                return Err(Refused::TooManyScratchCodes);
            }
            codes.push(code);
        }
    }
    // Past the first line that is no code, google-authenticator reads no
    // more codes: count what it leaves (options there are still options).
    ignored += lines
        .map(trim)
        .filter(|l| !l.is_empty() && !l.starts_with(b"\""))
        .count();
    Ok((codes, ignored))
}

// ---- pam_oath ----

/// A pam_oath users file, read: the first usable time-based token of each
/// user, in the order users first appear, and every line not imported.
#[derive(Debug, Default)]
pub struct OathFile {
    pub users: Vec<OathUser>,
    pub skipped: Vec<OathSkip>,
}

#[derive(Debug)]
pub struct OathUser {
    /// As written in the file (the PAM user name pam_oath compared).
    pub user: String,
    /// 1-based.
    pub line: usize,
    pub token: Token,
}

/// A line of the users file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OathSkip {
    pub line: usize,
    /// The user, only where it is a user imported from another line (whose
    /// name is shown for that line anyway). On a line that was not read
    /// whole the fields may be shifted, and what stands in the user's place
    /// may be a password or a key: it is never passed on.
    pub user: Option<String>,
    pub reason: Refused,
}

/// Reads a pam_oath users file.
pub fn oath_users(text: &[u8], opts: &Options) -> OathFile {
    let mut file = OathFile::default();
    // Each user's line, by name: one look-up per line whatever the size of
    // the file.
    let mut first_line = std::collections::HashMap::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let mut words = raw
            .split(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .filter(|w| !w.is_empty());
        let Some(kind) = words.next() else {
            continue;
        };
        if kind.starts_with(b"#") {
            continue;
        }
        let user = words.next();
        let mut skip = |reason: Refused| {
            file.skipped.push(OathSkip {
                line,
                user: None,
                reason,
            })
        };
        let Some((period, digits)) = oath_type(kind) else {
            skip(Refused::UnknownType);
            continue;
        };
        let Some(user) = user else {
            skip(Refused::Incomplete);
            continue;
        };
        if shifted(user) {
            skip(Refused::ShiftedFields);
            continue;
        }
        let Some(period) = period else {
            skip(Refused::Hotp);
            continue;
        };
        let (Some(password), Some(hex)) = (words.next(), words.next()) else {
            skip(Refused::Incomplete);
            continue;
        };
        let user = String::from_utf8_lossy(user).into_owned();
        if let Some(&first) = first_line.get(&user) {
            let reason = Refused::AnotherToken { line: first };
            file.skipped.push(OathSkip {
                line,
                user: Some(user),
                reason,
            });
            continue;
        }
        // Judged by its length before it is decoded: a line may hold
        // megabytes, and none of it needs copying to be refused.
        let token = if hex.len() > 2 * MAX_SECRET_BYTES {
            Err(Refused::LongSecret {
                bits: hex.len() / 2 * 8,
            })
        } else {
            hex_decode(hex)
                .ok_or(Refused::NotHex)
                .and_then(|key| oath_token(&key, digits, period, password, opts))
        };
        match token {
            Ok(token) => {
                first_line.insert(user.clone(), line);
                file.users.push(OathUser { user, line, token });
            }
            Err(reason) => skip(reason),
        }
    }
    file
}

/// Whether a user field is what a line with a missing field would have
/// there: the password marker (`-`, `+`) or a key (hex of 80 bits or more).
fn shifted(user: &[u8]) -> bool {
    user == b"-"
        || user == b"+"
        || (user.len() >= 2 * MIN_USABLE_SECRET_BYTES && user.iter().all(u8::is_ascii_hexdigit))
}

/// The token type words liboath's `parse_type` accepts: (period for
/// time-based, none for counter-based; digits).
fn oath_type(word: &[u8]) -> Option<(Option<u64>, u8)> {
    Some(match word {
        b"HOTP" | b"HOTP/E" | b"HOTP/E/6" => (None, 6),
        b"HOTP/E/7" => (None, 7),
        b"HOTP/E/8" => (None, 8),
        b"HOTP/T30" | b"HOTP/T30/6" => (Some(30), 6),
        b"HOTP/T30/7" => (Some(30), 7),
        b"HOTP/T30/8" => (Some(30), 8),
        b"HOTP/T60" | b"HOTP/T60/6" => (Some(60), 6),
        b"HOTP/T60/7" => (Some(60), 7),
        b"HOTP/T60/8" => (Some(60), 8),
        _ => return None,
    })
}

fn oath_token(key: &[u8], digits: u8, period: u64, password: &[u8], opts: &Options) -> Result<Token, Refused> {
    let (secret_bits, mut notes) = judge_length(key.len(), opts)?;
    // `-`: no password; `+`: checked by another module, as with pam_mfa.
    if password != b"-" && password != b"+" {
        notes.push(Note::PasswordNotImported);
    }
    Ok(Token {
        seed: seed_of(key, digits, period),
        scratch_codes: Vec::new(),
        last_step: None,
        secret_bits,
        notes,
    })
}

/// Hex digits in pairs, any case (liboath's `oath_hex2bin`).
fn hex_decode(hex: &[u8]) -> Option<SecretBytes> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
    for pair in hex.chunks_exact(2) {
        let nibble = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
        let (hi, lo) = (nibble(*pair.first()?)?, nibble(*pair.get(1)?)?);
        out.push((hi << 4) | lo);
    }
    Some(out)
}

// ---- shared ----

/// The secret's length against pam_mfa's rules: bits, and the note a weak
/// secret gets when it is let in.
fn judge_length(bytes: usize, opts: &Options) -> Result<(usize, Vec<Note>), Refused> {
    let bits = bytes * 8;
    if bytes > MAX_SECRET_BYTES {
        return Err(Refused::LongSecret { bits });
    }
    if bytes < MIN_USABLE_SECRET_BYTES {
        return Err(Refused::TooShortSecret { bits });
    }
    if bytes < MIN_SECRET_BYTES {
        if !opts.allow_short_secrets {
            return Err(Refused::ShortSecret { bits });
        }
        return Ok((bits, vec![Note::WeakSecret { bits }]));
    }
    Ok((bits, Vec::new()))
}

/// The seed pam_mfa stores for `key`: base32 (RFC 4648, upper case, no
/// padding), encoded here into a buffer sized up front so no copy of the
/// secret is left behind.
fn seed_of(key: &[u8], digits: u8, period: u64) -> TotpSeed {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut secret = Zeroizing::new(String::with_capacity(key.len().div_ceil(5) * 8));
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    let push = |index: u32, secret: &mut String| {
        if let Some(c) = usize::try_from(index & 31).ok().and_then(|i| ALPHABET.get(i)) {
            secret.push(char::from(*c));
        }
    };
    for &b in key {
        buffer = ((buffer << 8) | u32::from(b)) & 0xfff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            push(buffer >> bits, &mut secret);
        }
    }
    if bits > 0 {
        push(buffer << (5 - bits), &mut secret);
    }
    TotpSeed {
        secret,
        digits,
        period,
        algorithm: Algorithm::SHA1,
        created: 0,
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(start, |e| e + 1);
    s.get(start..end.max(start)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::RFC6238_KEY;
    use proptest::prelude::*;

    /// The time of the imports here: step 56667 of 60 s, 113334 of 30 s.
    const NOW: u64 = 56_667 * 60 + 10;

    fn opts() -> Options {
        Options {
            allow_short_secrets: false,
            window: 1,
            now: NOW,
        }
    }

    /// A file as Debian's `google-authenticator -t -d -f -C -q -r 3 -R 30
    /// -w 3 -e 5` writes it (with the RFC 6238 key in place of a random one).
    fn ga_file(secret: &str, options: &str, codes: &str) -> Vec<u8> {
        format!("{secret}\n{options}{codes}").into_bytes()
    }

    const DEBIAN_OPTIONS: &str = "\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n";
    const CODES: &str = "60500093\n49439023\n95203348\n12282074\n11007235\n";

    #[test]
    fn a_debian_file() {
        let t = google_authenticator(&ga_file(RFC6238_KEY, DEBIAN_OPTIONS, CODES), &opts()).unwrap();
        assert_eq!(t.seed.secret.as_str(), RFC6238_KEY);
        assert_eq!(
            (t.seed.digits, t.seed.period, t.seed.algorithm),
            (6, 30, Algorithm::SHA1)
        );
        assert_eq!(t.seed.generator().unwrap().code_at(59).as_str(), "287082");
        assert_eq!(t.scratch_codes.len(), 5);
        assert_eq!(t.scratch_codes[1].as_str(), "49439023");
        assert_eq!(t.last_step, None);
        assert_eq!(t.secret_bits, 160);
        assert_eq!(t.notes, [Note::RateLimit, Note::ScratchCodes { count: 5 }]);
    }

    /// 26 characters (130 bits, 128 of them whole bytes): what Debian 12's
    /// google-authenticator writes. Decoded as it does, re-encoded canonically.
    #[test]
    fn a_128_bit_secret() {
        let t = google_authenticator(&ga_file("CJQ3YSCNCFC7ITIYBCYGIQCIDY", DEBIAN_OPTIONS, ""), &opts()).unwrap();
        assert_eq!(t.secret_bits, 128);
        assert_eq!(t.seed.secret.as_str(), "CJQ3YSCNCFC7ITIYBCYGIQCIDY");
        assert_eq!(t.seed.key().unwrap().len(), 16);
        assert!(!t.seed.is_weak());
    }

    #[test]
    fn google_authenticators_lenient_base32() {
        // Lower case, spaces, dashes, CR, and 0/1/8 for O/L/B.
        let messy = "gezd gnbv-gy3t qojq gezd gnbv gy3t qojq\r";
        let t = google_authenticator(&ga_file(messy, "\" TOTP_AUTH\n", ""), &opts()).unwrap();
        assert_eq!(t.seed.secret.as_str(), RFC6238_KEY);
        let typo = RFC6238_KEY.replace('O', "0");
        let t = google_authenticator(&ga_file(&typo, "\" TOTP_AUTH\n", ""), &opts()).unwrap();
        assert_eq!(t.seed.secret.as_str(), RFC6238_KEY);
        for bad in [format!("{RFC6238_KEY}===="), "GEZDGNBV!".into(), "".into()] {
            let r = google_authenticator(&ga_file(&bad, "\" TOTP_AUTH\n", ""), &opts());
            assert!(matches!(r, Err(Refused::NotBase32 | Refused::NoSecret)), "{bad}");
        }
    }

    #[test]
    fn options_carried_over_or_noted() {
        let options =
            "\" WINDOW_SIZE 17\n\" STEP_SIZE 60\n\" TOTP_AUTH\n\" DISALLOW_REUSE 56666 56667\n\" TIME_SKEW -3\n";
        let t = google_authenticator(&ga_file(RFC6238_KEY, options, ""), &opts()).unwrap();
        assert_eq!(t.seed.period, 60);
        assert_eq!(t.last_step, Some(56667));
        assert_eq!(
            t.notes,
            [
                Note::WiderWindow { theirs: 8, ours: 1 },
                Note::TimeSkew { steps: -3, ours: 1 }
            ]
        );
        assert!(t.notes[1].to_string().contains("refused until the phone's clock"));
        // A window of 3 (one step either side) is ours; 5 reaches 2.
        let t = google_authenticator(&ga_file(RFC6238_KEY, "\" WINDOW_SIZE 3\n\" TOTP_AUTH\n", ""), &opts()).unwrap();
        assert_eq!(t.notes, [Note::ReuseAllowed]);
        let t = google_authenticator(&ga_file(RFC6238_KEY, "\" WINDOW_SIZE 5\n\" TOTP_AUTH\n", ""), &opts());
        assert!(t.unwrap().notes.contains(&Note::WiderWindow { theirs: 2, ours: 1 }));
        // The first line of a name counts, as in google-authenticator.
        let o = "\" STEP_SIZE 60\n\" STEP_SIZE 30\n\" TOTP_AUTH\n";
        assert_eq!(
            google_authenticator(&ga_file(RFC6238_KEY, o, ""), &opts())
                .unwrap()
                .seed
                .period,
            60
        );
        // A name must end where the option name ends.
        let o = "\" TOTP_AUTHX\n";
        assert_eq!(
            google_authenticator(&ga_file(RFC6238_KEY, o, ""), &opts()).unwrap_err(),
            Refused::NoTotp
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused() {
        let refused = |options: &str| google_authenticator(&ga_file(RFC6238_KEY, options, ""), &opts()).unwrap_err();
        assert_eq!(refused("\" WINDOW_SIZE 5\n\" HOTP_COUNTER 1\n"), Refused::Hotp);
        assert_eq!(
            refused("\" HOTP_COUNTER 1\n\" TOTP_AUTH\n"),
            Refused::Hotp,
            "HOTP wins, as in GA"
        );
        assert_eq!(refused("\" RATE_LIMIT 3 30\n"), Refused::NoTotp);
        assert_eq!(
            refused("\" STEP_SIZE 5\n\" TOTP_AUTH\n"),
            Refused::Period { seconds: 5 }
        );
        for bad in ["0", "61", "x", "", "30x"] {
            assert_eq!(
                refused(&format!("\" STEP_SIZE {bad}\n\" TOTP_AUTH\n")),
                Refused::BadOption { option: "STEP_SIZE" },
                "{bad}"
            );
        }
        assert_eq!(
            refused("\" WINDOW_SIZE 101\n\" TOTP_AUTH\n"),
            Refused::BadOption { option: "WINDOW_SIZE" }
        );
        assert_eq!(google_authenticator(b"", &opts()).unwrap_err(), Refused::Empty);
        assert_eq!(
            google_authenticator(&vec![b'A'; GA_MAX_FILE + 1], &opts()).unwrap_err(),
            Refused::TooLarge { limit: GA_MAX_FILE }
        );
        assert_eq!(
            google_authenticator(b"GEZDGNBV\0\n\" TOTP_AUTH\n", &opts()).unwrap_err(),
            Refused::NotText
        );
    }

    /// 80 bits (google-authenticator before 2016): only on request, then
    /// noted; below 80 never.
    #[test]
    fn short_secrets() {
        let file = ga_file("GEZDGNBVGY3TQOJQ", "\" TOTP_AUTH\n\" DISALLOW_REUSE\n", "");
        assert_eq!(
            google_authenticator(&file, &opts()).unwrap_err(),
            Refused::ShortSecret { bits: 80 }
        );
        let allow = Options {
            allow_short_secrets: true,
            ..opts()
        };
        let t = google_authenticator(&file, &allow).unwrap();
        assert!(t.seed.is_weak());
        assert_eq!(t.notes, [Note::WeakSecret { bits: 80 }]);
        assert!(t.seed.generator().is_ok(), "a weak seed still computes codes");
        let tiny = ga_file("GEZDGNBVGY3TQ", "\" TOTP_AUTH\n", "");
        assert_eq!(
            google_authenticator(&tiny, &allow).unwrap_err(),
            Refused::TooShortSecret { bits: 64 }
        );
    }

    /// A key longer than 512 bits is no real token's: refused, before a
    /// store is asked to keep megabytes as one mailbox's secret.
    #[test]
    fn long_secrets_are_refused() {
        let key = |n: usize| -> Vec<u8> { (0..n).map(|i| i as u8).collect() };
        let ga = |n: usize| {
            let secret = seed_of(&key(n), 6, 30).secret.to_string();
            google_authenticator(&ga_file(&secret, "\" TOTP_AUTH\n", ""), &opts())
        };
        assert_eq!(ga(MAX_SECRET_BYTES).unwrap().secret_bits, 512);
        assert_eq!(ga(MAX_SECRET_BYTES + 1).unwrap_err(), Refused::LongSecret { bits: 520 });
        let oath = |hex: &str| oath_users(format!("HOTP/T30 alice - {hex}\n").as_bytes(), &opts());
        let hex = |n: usize| key(n).iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(oath(&hex(MAX_SECRET_BYTES)).users.len(), 1);
        let f = oath(&hex(MAX_SECRET_BYTES + 1));
        assert_eq!(f.skipped[0].reason, Refused::LongSecret { bits: 520 });
        // A huge one is refused by its length, not decoded first.
        let f = oath(&"ab".repeat(4 << 20));
        assert_eq!(f.skipped[0].reason, Refused::LongSecret { bits: 32 << 20 });
        assert!(!f.skipped[0].reason.to_string().contains("abab"));
    }

    /// google-authenticator writes at most 10 scratch codes: a file with
    /// more is refused rather than cut (which 10 the user holds is unknown,
    /// and each one more is another 26-bit guess).
    #[test]
    fn at_most_ten_scratch_codes() {
        let codes = |n: u32| (0..n).map(|i| format!("{}\n", 10_000_000 + i)).collect::<String>();
        let t = google_authenticator(&ga_file(RFC6238_KEY, "\" TOTP_AUTH\n", &codes(10)), &opts()).unwrap();
        assert_eq!(t.scratch_codes.len(), 10);
        let r = google_authenticator(&ga_file(RFC6238_KEY, "\" TOTP_AUTH\n", &codes(11)), &opts());
        assert_eq!(r.unwrap_err(), Refused::TooManyScratchCodes);
        // Repeated lines are one code, as before.
        let again = format!("{}{}", codes(10), codes(10));
        let t = google_authenticator(&ga_file(RFC6238_KEY, "\" TOTP_AUTH\n", &again), &opts()).unwrap();
        assert_eq!(t.scratch_codes.len(), 10);
        assert!(!Refused::TooManyScratchCodes.to_string().contains("1000000"));
    }

    /// DISALLOW_REUSE steps later than google-authenticator could have seen
    /// used by now (its WINDOW_SIZE and learnt skew ahead, at least ours) are
    /// not carried over: as the replay guard, step 10^12 would refuse every
    /// code of the user for ever. Noted, once per file.
    #[test]
    fn reuse_steps_in_the_future_are_ignored() {
        let now_step = NOW / 30;
        let file = |steps: &str, extra: &str| {
            ga_file(
                RFC6238_KEY,
                &format!("\" TOTP_AUTH\n\" WINDOW_SIZE 3\n{extra}\" DISALLOW_REUSE {steps}\n"),
                "",
            )
        };
        let read = |steps: String, extra: &str| google_authenticator(&file(&steps, extra), &opts()).unwrap();
        let t = read(format!("{} {}", now_step - 5, now_step + 3), "");
        assert_eq!((t.last_step, t.notes.as_slice()), (Some(now_step + 3), &[][..]));
        let t = read(
            format!("{} {} {} {}", now_step, now_step + 4, 1_000_000_000_000u64, u64::MAX),
            "",
        );
        assert_eq!(t.last_step, Some(now_step));
        assert_eq!(t.notes, [Note::FutureStepsIgnored { count: 3 }]);
        assert!(t.notes[0].to_string().contains("check this server's clock"));
        // A learnt skew moves the bound by as many steps.
        let t = read(format!("{}", now_step + 7), "\" TIME_SKEW -4\n");
        assert_eq!(t.last_step, Some(now_step + 7));
        let t = read(format!("{}", now_step + 8), "\" TIME_SKEW -4\n");
        assert_eq!(t.last_step, None);
        // Only future ones: nothing left, nothing carried over.
        let t = read(format!("{}", now_step + 4), "");
        assert_eq!((t.last_step, t.notes.len()), (None, 1));
        // A skew google-authenticator never learns (it looks 1500 steps
        // either way) widens the bound no further than that.
        let huge = format!("{} {}", now_step + 1503, now_step + 1504);
        let t = read(huge.clone(), "\" TIME_SKEW -9223372036854775808\n");
        assert_eq!(t.last_step, Some(now_step + 1503));
        let t = read(huge, "\" TIME_SKEW 1000000000\n");
        assert_eq!(t.last_step, Some(now_step + 1503));
    }

    #[test]
    fn scratch_codes_as_google_authenticator_reads_them() {
        // Options may follow codes; blank lines are skipped; duplicates kept once.
        let body = "\" TOTP_AUTH\n60500093\n\n\" DISALLOW_REUSE\n49439023\r\n60500093\n";
        let t = google_authenticator(&ga_file(RFC6238_KEY, body, ""), &opts()).unwrap();
        let codes: Vec<&str> = t.scratch_codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, ["60500093", "49439023"]);
        // Reading stops at the first line that is no code: google-authenticator
        // would never accept the codes after it.
        let body = "\" TOTP_AUTH\n\" DISALLOW_REUSE\n60500093\n0123456\n49439023\nnot a code\n";
        let t = google_authenticator(&ga_file(RFC6238_KEY, body, ""), &opts()).unwrap();
        assert_eq!(t.scratch_codes.len(), 1);
        assert_eq!(
            t.notes,
            [Note::ScratchCodes { count: 1 }, Note::IgnoredLines { count: 3 }]
        );
        for not_a_code in ["01234567", "1234567", "123456789", "1234567a"] {
            let t = google_authenticator(
                &ga_file(RFC6238_KEY, "\" TOTP_AUTH\n\" DISALLOW_REUSE\n", not_a_code),
                &opts(),
            )
            .unwrap();
            assert!(t.scratch_codes.is_empty(), "{not_a_code}");
        }
    }

    /// No part of a file's content reaches a message or a Debug form.
    #[test]
    fn messages_quote_no_secret() {
        let t = google_authenticator(&ga_file(RFC6238_KEY, DEBIAN_OPTIONS, CODES), &opts()).unwrap();
        let shown = format!("{t:?} {}", t.notes.iter().map(ToString::to_string).collect::<String>());
        assert!(!shown.contains(RFC6238_KEY) && !shown.contains("60500093"), "{shown}");
        let f = oath_users(
            b"HOTP/T30 alice s3cr3tpw 3132333435363738393031323334353637383930\n",
            &opts(),
        );
        let shown = format!("{f:?}");
        assert!(!shown.contains("s3cr3tpw") && !shown.contains("31323334"), "{shown}");
    }

    const OATH: &str = "\
# pam_oath users file
HOTP/T30\talice\t-\t3132333435363738393031323334353637383930
HOTP/T60/8 bob + 3132333435363738393031323334353637383930 0 123456 2024-01-01T00:00:00L

HOTP carol - 3132333435363738393031323334353637383930 5
HOTP/T30/7 dave@other.test secretpw 3132333435363738393031323334353637383930
HOTP/T30/6 alice - 3132333435363738393031323334353637383931
HOTP/T30/9 erin - 3132333435363738393031323334353637383930
HOTP/T30 frank - 00112233445566778899
HOTP/T30 gina - 3132zz
HOTP/T30 hank
  # indented comment
";

    #[test]
    fn an_oath_users_file() {
        let f = oath_users(OATH.as_bytes(), &opts());
        let users: Vec<(&str, usize, u8, u64)> = f
            .users
            .iter()
            .map(|u| (u.user.as_str(), u.line, u.token.seed.digits, u.token.seed.period))
            .collect();
        assert_eq!(
            users,
            [("alice", 2, 6, 30), ("bob", 3, 8, 60), ("dave@other.test", 6, 7, 30)]
        );
        assert_eq!(f.users[0].token.seed.secret.as_str(), RFC6238_KEY, "hex -> base32");
        assert!(f.users[0].token.notes.is_empty());
        assert!(f.users[1].token.notes.is_empty(), "+ is a password checked elsewhere");
        assert_eq!(f.users[2].token.notes, [Note::PasswordNotImported]);
        // Only a user imported from another line is named: any other
        // skipped line may have its fields shifted.
        let skipped: Vec<(usize, Option<&str>, Refused)> = f
            .skipped
            .iter()
            .map(|s| (s.line, s.user.as_deref(), s.reason.clone()))
            .collect();
        assert_eq!(
            skipped,
            [
                (5, None, Refused::Hotp),
                (7, Some("alice"), Refused::AnotherToken { line: 2 }),
                (8, None, Refused::UnknownType),
                (9, None, Refused::ShortSecret { bits: 80 }),
                (10, None, Refused::NotHex),
                (11, None, Refused::Incomplete),
            ]
        );
    }

    /// Lines with a field missing, so that a password or a key stands where
    /// the user should: refused, and nothing of them is kept to be shown.
    #[test]
    fn oath_shifted_fields() {
        let key = "3132333435363738393031323334353637383930";
        let text = format!(
            "HOTP/T30 s3cr3tpw {key}\nHOTP/T30 {key} - {key}\nHOTP/T30 - {key}\nHOTP/T30 + {key}\n\
             HOTP/T30 s3cr3tpw {key} 0\nHOTP/T30 deadbeef - {key}\n"
        );
        let f = oath_users(text.as_bytes(), &opts());
        let kinds: Vec<(usize, &str)> = f.skipped.iter().map(|s| (s.line, s.reason.kind())).collect();
        assert_eq!(
            kinds,
            [
                (1, "incomplete"),
                (2, "shifted_fields"),
                (3, "shifted_fields"),
                (4, "shifted_fields"),
                (5, "not_hex")
            ]
        );
        assert!(f.skipped.iter().all(|s| s.user.is_none()));
        let shown = format!("{f:?}");
        assert!(!shown.contains("s3cr3tpw") && !shown.contains("313233"), "{shown}");
        // A short hex-looking name is a name.
        assert_eq!(f.users.len(), 1);
        assert_eq!(f.users[0].user, "deadbeef");
    }

    /// A user's first time-based token that can be imported is the one:
    /// a refused one before it does not hide it.
    #[test]
    fn oath_first_usable_token_wins() {
        let text = "HOTP/T30 ann - 0011\nHOTP/E ann - 3132333435363738393031323334353637383930\n\
                    HOTP/T60 ann - 3132333435363738393031323334353637383930\n";
        let f = oath_users(text.as_bytes(), &opts());
        assert_eq!(f.users.len(), 1);
        assert_eq!((f.users[0].line, f.users[0].token.seed.period), (3, 60));
        assert_eq!(f.skipped.len(), 2);
    }

    /// Telling a user's further tokens from a new user's first one takes
    /// one look-up per line, not a scan of the users so far: a users file of
    /// a large host (here 60,000 users, each with a second, refused line)
    /// is read in half a second by a debug build, where the scan took 46 s.
    #[test]
    fn oath_files_of_many_users_read_in_linear_time() {
        let n = 60_000;
        let mut text = String::with_capacity(n * 130);
        for i in 0..n {
            text.push_str(&format!(
                "HOTP/T30 user{i} - 3132333435363738393031323334353637383930\n"
            ));
        }
        for i in 0..n {
            text.push_str(&format!(
                "HOTP/T60 user{i} - 3132333435363738393031323334353637383931\n"
            ));
        }
        let started = std::time::Instant::now();
        let f = oath_users(text.as_bytes(), &opts());
        let took = started.elapsed();
        assert_eq!((f.users.len(), f.skipped.len()), (n, n));
        assert_eq!(f.skipped[n - 1].reason, Refused::AnotherToken { line: n });
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn base32_round_trips() {
        for len in 0..40usize {
            let key: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let seed = seed_of(&key, 6, 30);
            let decoded = ga_base32_decode(seed.secret.as_bytes()).unwrap();
            assert_eq!(&decoded[..], &key[..], "{len}");
            if len >= MIN_USABLE_SECRET_BYTES {
                assert_eq!(&seed.key().unwrap()[..], &key[..], "totp-rs reads it alike ({len})");
            }
        }
    }

    proptest! {
        #[test]
        fn google_authenticator_never_panics(text in proptest::collection::vec(any::<u8>(), 0..600), allow: bool) {
            let o = Options { allow_short_secrets: allow, ..opts() };
            if let Ok(t) = google_authenticator(&text, &o) {
                prop_assert!(t.seed.generator().is_ok());
                prop_assert!(t.scratch_codes.iter().all(|c| crate::recovery::is_scratch(c)));
            }
        }

        #[test]
        fn google_authenticator_lines_never_panic(
            lines in proptest::collection::vec("(\" [A-Z_]{0,16}( [0-9 -]{0,12})?|[0-9]{0,9}|[A-Z2-7 ]{0,40})", 0..12),
        ) {
            let text = lines.join("\n");
            let _ = google_authenticator(text.as_bytes(), &opts());
        }

        /// Files shaped like real ones, with random values: whatever is
        /// imported computes codes and keeps the secret's bits.
        #[test]
        fn google_authenticator_shaped_files(
            secret in "[A-Z2-7]{10,60}",
            options in proptest::collection::vec(
                prop_oneof![
                    Just("\" TOTP_AUTH".to_string()),
                    Just("\" HOTP_COUNTER 1".to_string()),
                    (0u32..400).prop_map(|n| format!("\" STEP_SIZE {n}")),
                    (0u32..200).prop_map(|n| format!("\" WINDOW_SIZE {n}")),
                    "[0-9 ]{0,30}".prop_map(|l| format!("\" DISALLOW_REUSE {l}")),
                    (-50i64..50).prop_map(|n| format!("\" TIME_SKEW {n}")),
                    Just("\" RATE_LIMIT 3 30 1700000000".to_string()),
                    "[0-9]{6,9}",
                ],
                0..12,
            ),
            allow: bool,
        ) {
            let text = format!("{secret}\n{}\n", options.join("\n"));
            let o = Options { allow_short_secrets: allow, ..opts() };
            match google_authenticator(text.as_bytes(), &o) {
                Ok(t) => {
                    prop_assert!(t.seed.generator().is_ok());
                    prop_assert_eq!(t.secret_bits, secret.len() * 5 / 8 * 8);
                    prop_assert!(options.iter().any(|l| l == "\" TOTP_AUTH"));
                }
                Err(r) => prop_assert!(!r.to_string().contains(secret.as_str())),
            }
        }

        #[test]
        fn oath_never_panics(text in proptest::collection::vec(any::<u8>(), 0..600)) {
            let f = oath_users(&text, &opts());
            for u in &f.users {
                prop_assert!(u.token.seed.generator().is_ok());
            }
        }

        #[test]
        fn oath_lines_never_panic(
            lines in proptest::collection::vec("(HOTP(/[ET][0-9]{0,3}(/[0-9])?)?|#.*)?[ \t]{0,2}[a-z@.]{0,8}[ \t][-+a-z]{0,4}[ \t][0-9a-fA-F]{0,44}( [0-9]{1,4})?", 0..12),
        ) {
            let text = lines.join("\n");
            let _ = oath_users(text.as_bytes(), &opts());
        }
    }
}
