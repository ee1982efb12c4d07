//! Every SQL text the PostgreSQL backend sends, in one place: the schema
//! (created and upgraded by `mfa-ctl store init`) and the statements each
//! connection prepares once. Values always travel as bind parameters,
//! never inside the text.
//!
//! Names and their text columns use `COLLATE "C"`: byte order, the order
//! Rust sorts strings in, so listings come out as the file store's do, and
//! keyset pagination (`local > $2`) walks the index without surprises from
//! a locale.

/// The schema version this build reads and writes. A database at another
/// version is refused (an older one until `mfa-ctl store init` upgrades
/// it, a newer one until this server runs the newer build).
pub const SCHEMA_VERSION: i64 = 1;

/// Sealing context of the key check in `pam_mfa_schema`: not a mailbox
/// name (those contain `@` and no space), so no mailbox's blob can stand
/// in for it, nor it for one.
pub const KEY_CHECK_CONTEXT: &str = "pam_mfa key check";
pub const KEY_CHECK_PLAINTEXT: &[u8] = b"pam_mfa";

/// Serialises concurrent `mfa-ctl store init` runs (a transaction-scoped
/// advisory lock; the number is arbitrary but fixed).
pub const INIT_LOCK: &str = "SELECT pg_advisory_xact_lock(7231604425113405013)";

/// Whether the schema table exists (in the role's search_path).
pub const SCHEMA_EXISTS: &str = "SELECT to_regclass('pam_mfa_schema') IS NOT NULL";

/// Version 1, as one script run inside init's transaction.
///
/// - `pam_mfa_schema`: one row (the `singleton` key admits no second), the
///   schema version and the key check, a fixed text sealed with the key
///   file's key, so that a server with another key is told at once rather
///   than mailbox by mailbox.
/// - `pam_mfa_domains`: a domain's own policy, as JSON.
/// - `pam_mfa_mailboxes`: one row per mailbox: its record (secrets) sealed
///   with the key and the mailbox name, NULL when it has none; its login
///   state as JSON text; `version`, bumped by every write, which is what
///   optimistic writes compare.
pub const CREATE_V1: &str = r#"
CREATE TABLE pam_mfa_schema (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL,
    key_check bytea
);
CREATE TABLE pam_mfa_domains (
    domain text COLLATE "C" PRIMARY KEY,
    policy text NOT NULL
);
CREATE TABLE pam_mfa_mailboxes (
    mailbox text COLLATE "C" PRIMARY KEY,
    domain text COLLATE "C" NOT NULL,
    local text COLLATE "C" NOT NULL,
    record bytea,
    state text NOT NULL,
    version bigint NOT NULL,
    CONSTRAINT pam_mfa_mailboxes_name CHECK (mailbox = local || '@' || domain)
);
CREATE UNIQUE INDEX pam_mfa_mailboxes_by_domain ON pam_mfa_mailboxes (domain, local);
INSERT INTO pam_mfa_schema (version) VALUES (1);
"#;

/// Upgrades: `(from, script)` takes a database at version `from` to
/// `from + 1`. Empty while version 1 is the only one; init applies them in
/// order inside its transaction.
pub const UPGRADES: &[(i64, &str)] = &[];

/// Read at every new connection (not at every login): the version decides
/// whether the connection may be used at all.
pub const READ_SCHEMA: &str = "SELECT version, key_check FROM pam_mfa_schema";
pub const READ_SCHEMA_FOR_UPDATE: &str = "SELECT version, key_check FROM pam_mfa_schema FOR UPDATE";
pub const SET_KEY_CHECK: &str = "UPDATE pam_mfa_schema SET key_check = $1 WHERE key_check IS NULL";

/// The statements a connection prepares (all at once, pipelined, right
/// after the schema check), as the fields of [`super::conn::Stmts`].
pub const BEGIN: &str = "BEGIN";
pub const COMMIT: &str = "COMMIT";

/// A login's first look: the domain's policy and the mailbox in one
/// statement (one round trip); the single-row `one` makes a row come back
/// even when neither exists.
pub const OPEN_LOGIN: &str = "SELECT d.policy, m.record, m.state, m.version \
     FROM (VALUES (1)) AS one (x) \
     LEFT JOIN pam_mfa_domains d ON d.domain = $1 \
     LEFT JOIN pam_mfa_mailboxes m ON m.mailbox = $2";
pub const READ_DOMAIN: &str = "SELECT policy FROM pam_mfa_domains WHERE domain = $1";
pub const WRITE_DOMAIN: &str = "INSERT INTO pam_mfa_domains (domain, policy) VALUES ($1, $2) \
     ON CONFLICT (domain) DO UPDATE SET policy = EXCLUDED.policy";
pub const LIST_DOMAINS: &str = "SELECT domain, policy FROM pam_mfa_domains ORDER BY domain";
pub const READ_MAILBOX: &str = "SELECT record, state, version FROM pam_mfa_mailboxes WHERE mailbox = $1";
pub const LOCK_MAILBOX: &str = "SELECT record, state, version FROM pam_mfa_mailboxes WHERE mailbox = $1 FOR UPDATE";
/// A new row's first version: the microseconds since 1970, not 0 or 1, so
/// that a mailbox removed and made again never comes back at a version a
/// login read before the removal (whose optimistic write must not match
/// the new row).
macro_rules! first_version {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
    };
}

/// [`super::OnMissing::Create`]: an empty row, inside the lock's
/// transaction (gone again if the lock is dropped without a write). A row
/// another writer is inserting at the same time is waited for, not
/// duplicated.
pub const CREATE_EMPTY: &str = concat!(
    "INSERT INTO pam_mfa_mailboxes (mailbox, domain, local, record, state, version) \
     VALUES ($1, $2, $3, NULL, '{}', ",
    first_version!(),
    ") ON CONFLICT (mailbox) DO NOTHING"
);
/// Writing a mailbox whose row was deleted through the same lock.
pub const INSERT_MAILBOX: &str = concat!(
    "INSERT INTO pam_mfa_mailboxes (mailbox, domain, local, record, state, version) \
     VALUES ($1, $2, $3, $4, $5, ",
    first_version!(),
    ") ON CONFLICT (mailbox) DO NOTHING RETURNING version"
);
/// The writes are conditional on the version the writer read: under a row
/// lock that is always the current one; for an optimistic lock, no row
/// matched means someone wrote in between (a conflict, nothing written).
/// They answer the new version, which the lock keeps for its next write.
pub const UPDATE_STATE: &str = "UPDATE pam_mfa_mailboxes SET state = $3, version = version + 1 \
     WHERE mailbox = $1 AND version = $2 RETURNING version";
pub const UPDATE_ALL: &str = "UPDATE pam_mfa_mailboxes SET record = $3, state = $4, version = version + 1 \
     WHERE mailbox = $1 AND version = $2 RETURNING version";
/// `mfa-ctl disable --force` on a row that cannot be read: nothing of it
/// is read, so it is removed unconditionally (an admin's decision).
pub const FORGET_MAILBOX: &str = "DELETE FROM pam_mfa_mailboxes WHERE mailbox = $1";
pub const DELETE_MAILBOX: &str = "DELETE FROM pam_mfa_mailboxes WHERE mailbox = $1 AND version = $2";
/// Keyset pagination over the `(domain, local)` index: each page is an
/// index range scan, however far into the domain it is.
pub const LIST_PAGE: &str =
    "SELECT local FROM pam_mfa_mailboxes WHERE domain = $1 AND local > $2 ORDER BY local LIMIT $3";
/// The distinct domains, by skipping through the index one domain at a
/// time (a plain DISTINCT would read every mailbox).
pub const MAILBOX_DOMAINS: &str = "WITH RECURSIVE d (domain) AS ( \
       (SELECT domain FROM pam_mfa_mailboxes ORDER BY domain LIMIT 1) \
       UNION ALL \
       SELECT (SELECT m.domain FROM pam_mfa_mailboxes m WHERE m.domain > d.domain ORDER BY m.domain LIMIT 1) \
       FROM d WHERE d.domain IS NOT NULL) \
     SELECT domain FROM d WHERE domain IS NOT NULL";
