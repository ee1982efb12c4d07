#!/usr/bin/env bash
# Smoke run of the benchmark, so it cannot rot: 100 mailboxes, 100
# logins per case, 20 raced codes per case, under a minute. Fails if the
# program breaks, if any login with a correct fresh code is refused (pam_mfa
# in any mode, on files and on PostgreSQL, every module single-threaded), or
# if pam_mfa accepts a raced code twice or not at all. Not a timing test: the
# numbers of a debug build on a busy CI machine mean nothing. The PostgreSQL
# rows start a private cluster (tests/src/pg.rs; the postgresql package of
# tests/deps.sh). The full run is documented in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet -p pam_mfa
cargo build --quiet -p pam_mfa_tests --bin bench
target_dir=${CARGO_TARGET_DIR:-target}
out=$("$target_dir/debug/bench" --quick 2>&1) || {
  echo "$out"
  echo "bench-smoke: the benchmark failed" >&2
  exit 1
}
for row in '| pam_mfa durable | 1 |' '| pam_mfa durable | 4 proc |' '| pam_mfa durable | 4 thr |' \
  '| google-authenticator | 1 |' '| pam_oath | 1 |' '| floor: HMAC + durable write | 1 |' \
  '| pam_mfa postgres socket | 1 |' '| pam_mfa postgres socket | 4 proc |' \
  '| pam_mfa postgres TCP+TLS | 1 |' '| pam_mfa postgres TCP+TLS | 4 proc |' \
  '| pam_mfa postgres socket, new process per login | 1 |' \
  '| 100 | pam_mfa durable | 4 | 20 | 20 | 0 | 0 |' '| 100 | pam_mfa postgres socket | 4 | 20 | 20 | 0 | 0 |' \
  '| 100 | pam_mfa postgres TCP+TLS | 4 | 20 | 20 | 0 | 0 |'; do
  if ! grep -qF -- "$row" <<<"$out"; then
    echo "$out"
    echo "bench-smoke: row missing from the table: $row" >&2
    exit 1
  fi
done
echo "bench-smoke: ok ($(grep -c '^| 100 |' <<<"$out") rows, no refused login, every raced code accepted once)"
