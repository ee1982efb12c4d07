#!/usr/bin/env bash
# A million mailboxes: `mfa-ctl list --json` of 20,000, 200,000 and
# 1,000,000 mailboxes, built in release, must print every mailbox in order
# as one valid JSON document with the same peak memory for all three (see
# tests/tests/bulk.rs). `cargo test` runs the same with 2,000 and 20,000
# in the debug build; this is the size the issue asks for. Not a timing
# test: it takes a few minutes, most of it making the stores.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --quiet -p pam_mfa_tests --test bulk -- --ignored --nocapture a_million_mailboxes 2>&1
echo "bulk: ok"
