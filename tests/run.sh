#!/usr/bin/env bash
# Runs ALL the tests, as the README says: on a fresh Debian 12 machine, as root:
#   bash tests/run.sh
# Installs what is missing, checks formatting and lints, then runs the unit
# tests and the real-libpam tests (cargo test), and the suites below.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"; cargo test --workspace 2>&1
for suite in tests/suites/*.sh; do
  [ -e "$suite" ] || continue
  echo "== $suite"; bash "$suite"
done
echo "all test suites passed"
