#!/usr/bin/env bash
# The store contract, the libpam suite and the races again on PostgreSQL:
# every Env gets a database of its own in a private cluster the tests start
# (tests/src/pg.rs: initdb in a temp folder, a free port on 127.0.0.1, its
# own socket folder; stopped and removed at the end, pass or fail). The
# tests of what only the file store has (modes, torn copies, a full disk,
# the store folder) ran on files in `cargo test` and are not repeated.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PAM_MFA_TEST_BACKEND=postgres
export CARGO_TERM_COLOR=never
cargo test -p pam_mfa_tests --test libpam -- --skip files_only
# Webmail sessions: kept in the mailbox's state, so in its row.
cargo test -p pam_mfa_tests --test webmail
# Codes by text message: enrolment, texted codes, limits, parallel logins texting once.
cargo test -p pam_mfa_tests --test sms
# mfa-ctl import (google-authenticator, pam_oath) into the database, then logins.
cargo test -p pam_mfa_tests --test import
# list --weak, and domain set rewriting no mailbox row (the streaming tests are the file store's).
cargo test -p pam_mfa_tests --test bulk -- weak_lists_only domain_set_touches_no_mailbox
cargo test -p pam_mfa_tests --test hardening -- \
  a_fixed_wrong_code_counts_again_after_a_step_boundary \
  account_refuses_when_no_verify_line_accepted_after_split \
  one_identity_for_both_factors \
  recovery_code_guesses_are_counted \
  a_client_address_cannot_add_log_fields
cargo test -p pam_mfa_tests --test concurrency -- \
  one_code_32_threads_100_rounds \
  one_code_32_processes_100_rounds \
  concurrent_wrong_codes_are_all_counted_threads \
  concurrent_wrong_codes_block_at_exactly_block_after_processes \
  mfa_ctl_writes_while_logins_run_lose_nothing
