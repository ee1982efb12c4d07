#!/usr/bin/env bash
# End-to-end: real Dovecot (IMAP, POP3, LMTP) and Postfix (submission) on
# 127.0.0.1 logging in through the built pam_mfa.so, driven by real clients.
# Needs root (PAM service files in /etc/pam.d, removed afterwards) and the
# packages of tests/deps.sh. Ends with "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! cargo build --quiet -p pam_mfa -p mfa-ctl; then
  echo "e2e: building pam_mfa.so and mfa-ctl failed"
  echo "0 passed, 1 failed"
  exit 1
fi
export E2E_TARGET="${CARGO_TARGET_DIR:-$PWD/target}/debug"
export PYTHONDONTWRITEBYTECODE=1
exec timeout --kill-after=30 900 python3 -u tests/e2e/run.py "$@"
