#!/usr/bin/env bash
# Smoke run of the benchmark, so it cannot rot: 100 mailboxes, 100
# logins per case, a few seconds. Fails if the program breaks or if any login
# with a correct fresh code is refused (pam_mfa in any mode, every module
# single-threaded). Not a timing test: the numbers of a debug build on a busy
# CI machine mean nothing. The full run is documented in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet -p pam_mfa
cargo build --quiet -p pam_mfa_tests --bin bench
out=$(target/debug/bench --quick 2>&1) || {
  echo "$out"
  echo "bench-smoke: the benchmark failed" >&2
  exit 1
}
for row in '| pam_mfa durable | 1 |' '| pam_mfa durable | 4 proc |' '| pam_mfa durable | 4 thr |' \
  '| google-authenticator | 1 |' '| pam_oath | 1 |' '| floor: HMAC + durable write | 1 |'; do
  if ! grep -qF -- "$row" <<<"$out"; then
    echo "$out"
    echo "bench-smoke: row missing from the table: $row" >&2
    exit 1
  fi
done
echo "bench-smoke: ok ($(grep -c '^| 100 |' <<<"$out") rows, no refused login)"
