-- pam_mfa on PostgreSQL: the two database roles and what each may do.
--
-- Logins (the PAM module, in every mail server's auth processes) connect as
-- pam_mfa_login: they read policies and mailboxes and write only a
-- mailbox's login state (last accepted step, failures, recent logins). They
-- cannot change a secret, add a mailbox or remove one. That limits mistakes
-- and bugs, not an intruder: a mail server holds the key file, so root on
-- one can open every mailbox's seed and compute its codes, and with this
-- role reset any mailbox's failures or last accepted step. A mail server is
-- trusted with the logins of every server that shares the database.
--
-- mfa-ctl connects as pam_mfa_admin (postgres.admin_url): it sets mailboxes
-- up and removes them, changes policies, and owns the tables, since
-- `mfa-ctl store init` creates them and upgrades them later.
--
-- Secrets are sealed with the key file's key before they reach the
-- database, so a dump or backup alone (without the key file) reveals no
-- TOTP seed.
--
-- 1. Once, as a superuser (psql -U postgres), with passwords of your own:
--
--      CREATE ROLE pam_mfa_admin LOGIN PASSWORD '...';
--      CREATE ROLE pam_mfa_login LOGIN PASSWORD '...';
--      CREATE DATABASE pam_mfa OWNER pam_mfa_admin;
--
--    Each mail server gets the passwords in root-only files
--    (postgres.password_file, postgres.admin_password_file: 0600 root), never
--    in /etc/pam_mfa.toml, which everyone can read.
--
-- 2. On one server: mfa-ctl store init   (creates the tables as pam_mfa_admin,
--    and the key file: copy it to every other mail server).
--
-- 3. Then, in the pam_mfa database, as pam_mfa_admin or a superuser:
--
--      psql -d pam_mfa -f roles.sql        (this file)
--
--    Running it again is harmless. Run it again after an upgrade that
--    `mfa-ctl store init` says changed the schema.

-- Nobody but these roles sees anything (PUBLIC has no rights on new tables,
-- but a site's default privileges may say otherwise).
REVOKE ALL ON pam_mfa_schema, pam_mfa_domains, pam_mfa_mailboxes FROM PUBLIC;

-- Logins: one statement reads the domain's policy and the mailbox, the
-- schema version is read once per connection. SELECT ... FOR UPDATE (a
-- login's second try after a conflict, app passwords) needs the UPDATE
-- right on a column, which the state columns give.
GRANT SELECT ON pam_mfa_schema, pam_mfa_domains, pam_mfa_mailboxes TO pam_mfa_login;
GRANT UPDATE (state, version) ON pam_mfa_mailboxes TO pam_mfa_login;

-- mfa-ctl: everything on the data; the schema itself through ownership
-- (these grants matter only if a superuser, not pam_mfa_admin, ran
-- `mfa-ctl store init`: then also run ALTER TABLE ... OWNER TO pam_mfa_admin
-- on the three tables, so that later upgrades work).
GRANT SELECT ON pam_mfa_schema TO pam_mfa_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON pam_mfa_domains, pam_mfa_mailboxes TO pam_mfa_admin;
