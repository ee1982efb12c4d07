#!/usr/bin/env bash
# The package test, run by tests/run.sh as root on Debian 12. It
# does exactly what the README's install section says:
#   1. `make deb`; lintian on the .deb (no errors, no warnings);
#      `dpkg -i` (+ `apt-get install -f` for dependencies);
#   2. checks every installed file, its mode and owner, the conffile, the
#      store (0700 root), the man pages, the Roundcube plugin where its README
#      says (PHP that parses), and that nothing is switched on;
#   3. runs the INSTALLED `mfa-ctl --help`, enrols a mailbox with it and logs
#      in through libpam (pamtester) with a service file in /etc/pam.d that
#      names the module by its bare name `pam_mfa.so`: password+code from
#      oathtool accepted, the same code again refused (replay), password
#      alone refused;
#   4. `dpkg --remove`: programs gone, configuration and store kept, and a
#      warning naming the service file that still uses the module;
#      `dpkg --purge`: configuration and store gone, after saying so;
#   5. `make install` into a DESTDIR installs the same files as the package,
#      then a real `make install`, the same bare-name login, `make uninstall`.
# It refuses to run over an existing installation, and leaves the machine as
# it found it (the trap undoes whatever step it got to).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKSPACE=$PWD
# Where `make` puts its output (the Makefile honours CARGO_TARGET_DIR too).
TARGET=${CARGO_TARGET_DIR:-$WORKSPACE/target}

fail() {
  echo "package test: FAIL: $*" >&2
  exit 1
}
step() { echo "-- package: $*"; }

# ---- preconditions: every tool present, nothing of ours already installed --
[ "$(id -u)" = 0 ] || fail "run as root: this test installs and purges the pam-mfa package"
for tool in make cargo dpkg-buildpackage dh lintian pamtester oathtool openssl man python3 php apt-get; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing: run 'bash tests/deps.sh' (cargo: rustup)"
done
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
SECUREDIR=/usr/lib/$MULTIARCH/security
[ -e "$SECUREDIR/pam_pwdfile.so" ] || fail "pam_pwdfile.so is missing: run 'bash tests/deps.sh' (libpam-pwdfile)"
if dpkg-query -W -f='${Status}' pam-mfa 2>/dev/null | grep -qv "not-installed"; then
  fail "the pam-mfa package is installed or has left configuration here; this test would purge it: 'dpkg --purge pam-mfa' first if it is not in use"
fi
for p in /etc/pam_mfa.toml /var/lib/pam_mfa "$SECUREDIR/pam_mfa.so" /usr/sbin/mfa-ctl; do
  [ ! -e "$p" ] || fail "$p exists: this test installs and removes pam_mfa there; move it away first"
done

TMP=$(mktemp -d /tmp/pam-mfa-package.XXXXXX)
SERVICE="pam-mfa-test-$$"
MADE_INSTALL=no
cleanup() {
  local rc=$?
  rm -f "/etc/pam.d/$SERVICE"
  if dpkg-query -W -f='${Status}' pam-mfa 2>/dev/null | grep -qv "not-installed"; then
    dpkg --purge pam-mfa >/dev/null 2>&1 || true
  fi
  if [ "$MADE_INSTALL" = yes ]; then
    make -s uninstall >/dev/null 2>&1 || true
    rm -rf /etc/pam_mfa.toml /var/lib/pam_mfa
  fi
  rm -rf "$TMP"
  [ "$rc" = 0 ] || echo "package test: cleaned up after the failure above" >&2
}
trap cleanup EXIT

# expect_mode PATH MODE OWNER:GROUP
expect_mode() {
  [ -e "$1" ] || fail "$1 is missing"
  local got
  got=$(stat -c '%a %U:%G' "$1")
  [ "$got" = "$2 $3" ] || fail "$1 is '$got', expected '$2 $3'"
}

[ -n "$(find packaging/examples -type f)" ] || fail "packaging/examples/ has no files to install"

# check_installed MAN_SUFFIX: files, modes, owners after either install method.
check_installed() {
  local gz=$1 f
  expect_mode "$SECUREDIR/pam_mfa.so" 644 root:root
  expect_mode /usr/sbin/mfa-ctl 755 root:root
  expect_mode /etc/pam_mfa.toml 644 root:root
  cmp -s /etc/pam_mfa.toml packaging/pam_mfa.toml || fail "/etc/pam_mfa.toml differs from packaging/pam_mfa.toml"
  [ -d /var/lib/pam_mfa ] || fail "the store /var/lib/pam_mfa is not a folder"
  expect_mode /var/lib/pam_mfa 700 root:root
  expect_mode /var/lib/pam_mfa/pam_mfa-store 600 root:root
  for f in man8/pam_mfa.8 man5/pam_mfa.toml.5 $(cd "$TARGET/generated" && ls man8/mfa-ctl*.8); do
    expect_mode "/usr/share/man/$f$gz" 644 root:root
    # groff warnings (what lintian reports as groff-message) fail the test.
    local warn
    warn=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "/usr/share/man/$f$gz" 2>&1 >/dev/null)
    [ -z "$warn" ] || fail "man page $f: $warn"
  done
  man -w 8 pam_mfa >/dev/null || fail "man cannot find pam_mfa(8)"
  man -w 8 mfa-ctl >/dev/null || fail "man cannot find mfa-ctl(8)"
  man -w 5 pam_mfa.toml >/dev/null || fail "man cannot find pam_mfa.toml(5)"
  man -w 8 mfa-ctl-enroll >/dev/null || fail "man cannot find mfa-ctl-enroll(8)"
  man -l "/usr/share/man/man8/mfa-ctl.8$gz" 2>/dev/null | grep -q "mfa-ctl-enroll(8)" || fail "mfa-ctl(8) does not refer to mfa-ctl-enroll(8)"
  man -l "/usr/share/man/man8/mfa-ctl-enroll.8$gz" 2>/dev/null | grep -q -- "--confirm" || fail "mfa-ctl-enroll(8) does not document --confirm"
  man -w 8 mfa-ctl-import-google-authenticator >/dev/null || fail "man cannot find mfa-ctl-import-google-authenticator(8)"
  man -l "/usr/share/man/man8/mfa-ctl-import-oath.8$gz" 2>/dev/null | grep -q -- "--allow-short-secrets" || fail "mfa-ctl-import-oath(8) does not document --allow-short-secrets"
  expect_mode /usr/share/bash-completion/completions/mfa-ctl 644 root:root
  expect_mode /usr/share/zsh/vendor-completions/_mfa-ctl 644 root:root
  expect_mode /usr/share/fish/vendor_completions.d/mfa-ctl.fish 644 root:root
  bash -c 'source /usr/share/bash-completion/completions/mfa-ctl && complete -p mfa-ctl' >/dev/null \
    || fail "the bash completion does not register for mfa-ctl"
  head -n1 /usr/share/zsh/vendor-completions/_mfa-ctl | grep -q '^#compdef mfa-ctl' || fail "the zsh completion has no '#compdef mfa-ctl'"
  grep -q '^complete -c mfa-ctl' /usr/share/fish/vendor_completions.d/mfa-ctl.fish || fail "the fish completion does not complete mfa-ctl"
  grep -q 'google-authenticator' /usr/share/fish/vendor_completions.d/mfa-ctl.fish || fail "the fish completion does not know mfa-ctl import google-authenticator"
  (cd packaging/examples && find . -type f) | while read -r f; do
    expect_mode "/usr/share/doc/pam-mfa/examples/$f" 644 root:root
    cmp -s "packaging/examples/$f" "/usr/share/doc/pam-mfa/examples/$f" || fail "example $f differs from packaging/examples/$f"
  done
  # The Roundcube plugin, a folder to copy as it is into Roundcube's plugins
  # (its README names this path), uncompressed, and PHP that parses.
  local plugin=/usr/share/doc/pam-mfa/examples/roundcube/pam_mfa
  for f in pam_mfa.php localization/en_US.inc localization/de_DE.inc README.md composer.json; do
    expect_mode "$plugin/$f" 644 root:root
  done
  grep -q "$plugin" "$plugin/README.md" || fail "the Roundcube plugin's README does not name where it is installed"
  for f in "$plugin/pam_mfa.php" "$plugin"/localization/*.inc; do
    php -l "$f" >/dev/null 2>&1 || fail "$f: $(php -l "$f" 2>&1)"
  done
  # The installed program runs and is the one we built.
  /usr/sbin/mfa-ctl --help >"$TMP/help" || fail "mfa-ctl --help failed"
  grep -q "enroll" "$TMP/help" || fail "mfa-ctl --help does not list 'enroll'"
}

# login_through_bare_name LABEL: enrol a mailbox with the installed mfa-ctl,
# then log in through /etc/pam.d/$SERVICE, which names `pam_mfa.so` bare.
login_through_bare_name() {
  local label=$1 mailbox="alice@$1.pkgtest.example" pw='Pk9!test-pw' secret t code out
  openssl passwd -6 "$pw" | sed "s/^/$mailbox:/" >"$TMP/passwd"
  chmod 0600 "$TMP/passwd"
  cat >"/etc/pam.d/$SERVICE" <<EOF
# Temporary service of tests/suites/package.sh; removed when the test ends.
auth     sufficient  pam_mfa.so app_password
auth     requisite   pam_mfa.so split
auth     requisite   pam_pwdfile.so pwdfile=$TMP/passwd use_first_pass
auth     required    pam_mfa.so verify nodelay
account  required    pam_mfa.so
EOF
  # The installed doctor finds nothing wrong with the recommended stack and
  # the store the installation set up (warnings, e.g. an unsynchronised
  # clock, are allowed: exit 0).
  /usr/sbin/mfa-ctl doctor --pam-file "/etc/pam.d/$SERVICE" >"$TMP/doctor" 2>&1 \
    || fail "[$label] mfa-ctl doctor found errors in the recommended stack: $(cat "$TMP/doctor")"
  # Not enrolled yet, optional policy (the default): the password alone works.
  printf '%s\n' "$pw" | pamtester -I rhost=192.0.2.7 "$SERVICE" "$mailbox" authenticate acct_mgmt >"$TMP/out" 2>&1 \
    || fail "[$label] password-only login of an unenrolled mailbox refused: $(cat "$TMP/out")"
  # Enrol with the installed mfa-ctl: --begin, then --confirm with the code
  # of the previous step (so the current code is still unused for the login).
  /usr/sbin/mfa-ctl --json enroll --begin "$mailbox" >"$TMP/enrol.json" || fail "[$label] mfa-ctl enroll --begin failed"
  secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret"])' "$TMP/enrol.json")
  while [ $((30 - $(date +%s) % 30)) -lt 8 ]; do sleep 1; done
  t=$(date +%s)
  /usr/sbin/mfa-ctl enroll "$mailbox" --confirm "$(oathtool --totp -b "$secret" -N "@$((t - 30))")" >/dev/null \
    || fail "[$label] mfa-ctl enroll --confirm failed"
  [ -f "/var/lib/pam_mfa/mailboxes/$1.pkgtest.example/alice.mfa" ] || fail "[$label] enrolment wrote no mailbox file in /var/lib/pam_mfa"
  expect_mode "/var/lib/pam_mfa/mailboxes/$1.pkgtest.example/alice.mfa" 600 root:root
  code=$(oathtool --totp -b "$secret" -N "@$t")
  # Password + current code: accepted by the installed module, found by its bare name.
  if ! printf '%s\n' "$pw$code" | pamtester -v -I rhost=192.0.2.7 "$SERVICE" "$mailbox" authenticate acct_mgmt >"$TMP/out" 2>&1; then
    fail "[$label] login with password+code refused: $(cat "$TMP/out")"
  fi
  grep -q "successfully authenticated" "$TMP/out" || fail "[$label] pamtester did not authenticate: $(cat "$TMP/out")"
  # The same code again: a replay, refused.
  if printf '%s\n' "$pw$code" | pamtester "$SERVICE" "$mailbox" authenticate >"$TMP/out" 2>&1; then
    fail "[$label] the same code was accepted twice"
  fi
  # The password alone, now that the mailbox is enrolled: refused.
  if printf '%s\n' "$pw" | pamtester "$SERVICE" "$mailbox" authenticate >"$TMP/out" 2>&1; then
    fail "[$label] the password alone was accepted for an enrolled mailbox"
  fi
  # The installed module wrote the login to the installed store.
  out=$(/usr/sbin/mfa-ctl logins "$mailbox")
  grep -q "$SERVICE" <<<"$out" || fail "[$label] mfa-ctl logins does not show the login through $SERVICE: $out"
  echo "   [$label] bare-name pam_mfa.so: password+code accepted, replay refused, password alone refused"
}

# PAM service files that use the module: installing must not change them.
pam_users() { grep -lE '^[^#]*(^|[[:space:]/])pam_mfa\.so([[:space:]]|$)' /etc/pam.d/* 2>/dev/null || true; }
PAM_USERS_BEFORE=$(pam_users)

# ---- 1. build, lint, install ------------------------------------------------
step "make deb"
make deb >"$TMP/build.log" 2>&1 || { tail -n 40 "$TMP/build.log" >&2; fail "make deb failed (log above)"; }
VERSION=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
DEB="$TARGET/debian-build/pam-mfa_${VERSION}_$(dpkg --print-architecture).deb"
[ -f "$DEB" ] || fail "make deb made no $DEB"
CARGO_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ "$VERSION" = "$CARGO_VERSION" ] || fail "packaging/debian/changelog says $VERSION, Cargo.toml says $CARGO_VERSION"
echo "   built $DEB"

# The files both install methods put in place, relative to /, without the
# man pages' .gz (the package compresses them) and the package's own
# changelog and copyright.
EXPECTED_FILES=$(
  {
    echo "etc/pam_mfa.toml"
    echo "usr/lib/$MULTIARCH/security/pam_mfa.so"
    echo "usr/sbin/mfa-ctl"
    echo "usr/share/man/man8/pam_mfa.8"
    # mfa-ctl's pages, one per command, generated by `make` from its clap definitions.
    (cd "$TARGET/generated"/man8 && ls mfa-ctl*.8) | sed 's#^#usr/share/man/man8/#'
    echo "usr/share/man/man5/pam_mfa.toml.5"
    echo "usr/share/bash-completion/completions/mfa-ctl"
    echo "usr/share/zsh/vendor-completions/_mfa-ctl"
    echo "usr/share/fish/vendor_completions.d/mfa-ctl.fish"
    (cd packaging/examples && find . -type f | sed 's#^\./#usr/share/doc/pam-mfa/examples/#')
  } | LC_ALL=C sort
)
[ -f "$TARGET/generated/man8/mfa-ctl-enroll.8" ] || fail "make generated no mfa-ctl-enroll(8)"

step "lintian $DEB"
lintian --fail-on error,warning "$DEB" || fail "lintian reports errors or warnings (above)"

step "dpkg -i $DEB"
if ! dpkg -i "$DEB"; then
  apt-get install -f -y -qq || fail "apt-get install -f could not install the package's dependencies"
fi
[ "$(dpkg-query -W -f='${Status}' pam-mfa)" = "install ok installed" ] || fail "pam-mfa is not installed after dpkg -i"

# ---- 2. what the package installed ------------------------------------------
step "files, modes, owners"
check_installed .gz
PACKAGED=$(dpkg -L pam-mfa | sed 's#^/##' | while read -r f; do [ -d "/$f" ] || echo "$f"; done \
  | sed 's/\.gz$//' | grep -v -e '^usr/share/doc/pam-mfa/changelog$' -e '^usr/share/doc/pam-mfa/copyright$' \
  -e '^usr/share/lintian/overrides/pam-mfa$' | LC_ALL=C sort)
[ "$PACKAGED" = "$EXPECTED_FILES" ] || fail "the package's files are not the expected ones:
$(diff <(echo "$EXPECTED_FILES") <(echo "$PACKAGED"))"
dpkg-query -W -f='${Conffiles}\n' pam-mfa | grep -q '^ /etc/pam_mfa.toml ' || fail "/etc/pam_mfa.toml is not a conffile"
# Nothing is switched on: no PAM service file, no pam-auth-update profile.
if dpkg -L pam-mfa | grep -e '^/etc/pam\.d' -e '^/usr/share/pam-configs'; then
  fail "the package installs PAM configuration that switches pam_mfa on"
fi
[ "$(pam_users)" = "$PAM_USERS_BEFORE" ] || fail "installing the package changed which /etc/pam.d files use pam_mfa.so: $(pam_users)"
echo "   $(echo "$EXPECTED_FILES" | wc -l) files as expected; store 0700 root; conffile; nothing switched on"

# ---- 3. the installed programs ----------------------------------------------
step "mfa-ctl --help and a libpam login through the installed module"
login_through_bare_name deb

# ---- 4. remove, purge --------------------------------------------------------
step "dpkg --remove pam-mfa"
dpkg --remove pam-mfa >"$TMP/remove.log" 2>&1 || { cat "$TMP/remove.log" >&2; fail "dpkg --remove failed"; }
cat "$TMP/remove.log"
[ "$(dpkg-query -W -f='${Status}' pam-mfa)" = "deinstall ok config-files" ] || fail "after remove the status is not 'deinstall ok config-files'"
for f in "$SECUREDIR/pam_mfa.so" /usr/sbin/mfa-ctl /usr/share/man/man8/pam_mfa.8.gz /usr/share/doc/pam-mfa; do
  [ ! -e "$f" ] || fail "$f is still there after dpkg --remove"
done
[ -f /etc/pam_mfa.toml ] || fail "dpkg --remove removed the conffile /etc/pam_mfa.toml"
[ -f /var/lib/pam_mfa/mailboxes/deb.pkgtest.example/alice.mfa ] || fail "dpkg --remove did not keep the store"
expect_mode /var/lib/pam_mfa 700 root:root
grep -q "kept the store /var/lib/pam_mfa" "$TMP/remove.log" || fail "dpkg --remove did not say the store is kept"
grep -q "/etc/pam.d/$SERVICE" "$TMP/remove.log" || fail "dpkg --remove did not warn about /etc/pam.d/$SERVICE, which still uses pam_mfa.so"
# The service still names the module, which is gone: its logins fail (closed).
if printf 'x\n' | pamtester "$SERVICE" alice@deb.pkgtest.example authenticate >/dev/null 2>&1; then
  fail "a login through a service naming the removed module succeeded"
fi
rm -f "/etc/pam.d/$SERVICE"

step "dpkg --purge pam-mfa"
dpkg --purge pam-mfa >"$TMP/purge.log" 2>&1 || { cat "$TMP/purge.log" >&2; fail "dpkg --purge failed"; }
cat "$TMP/purge.log"
grep -q "removing the store /var/lib/pam_mfa with 1 mailbox record" "$TMP/purge.log" || fail "dpkg --purge did not say it removes the store"
[ ! -e /var/lib/pam_mfa ] || fail "the store is still there after purge"
[ ! -e /etc/pam_mfa.toml ] || fail "/etc/pam_mfa.toml is still there after purge"
dpkg-query -W -f='${Status}' pam-mfa 2>/dev/null | grep -qv "not-installed" && fail "pam-mfa is still known to dpkg after purge"

# ---- 5. make install ---------------------------------------------------------
step "make install DESTDIR=... installs what the package does"
make install DESTDIR="$TMP/root" >"$TMP/make.log" 2>&1 || { tail -n 40 "$TMP/make.log" >&2; fail "make install DESTDIR failed"; }
STAGED=$(cd "$TMP/root" && find . -type f | sed 's#^\./##' | LC_ALL=C sort)
[ "$STAGED" = "$EXPECTED_FILES" ] || fail "make install's files are not the package's:
$(diff <(echo "$EXPECTED_FILES") <(echo "$STAGED"))"
[ -d "$TMP/root/var/lib/pam_mfa" ] && [ "$(stat -c %a "$TMP/root/var/lib/pam_mfa")" = 700 ] || fail "make install made no store 0700"

step "make install (real), login, make uninstall"
MADE_INSTALL=yes
make install >"$TMP/make.log" 2>&1 || { tail -n 40 "$TMP/make.log" >&2; fail "make install failed"; }
check_installed ""
login_through_bare_name make
# A second `make install` keeps the admin's configuration.
echo '# edited by the admin' >>/etc/pam_mfa.toml
make install >"$TMP/make.log" 2>&1 || { tail -n 40 "$TMP/make.log" >&2; fail "second make install failed"; }
grep -q '^# edited by the admin' /etc/pam_mfa.toml || fail "a second make install overwrote /etc/pam_mfa.toml"
rm -f "/etc/pam.d/$SERVICE"
make uninstall >"$TMP/make.log" 2>&1 || { cat "$TMP/make.log" >&2; fail "make uninstall failed"; }
for f in $EXPECTED_FILES; do
  [ "$f" = etc/pam_mfa.toml ] && continue
  [ ! -e "/$f" ] || fail "/$f is still there after make uninstall"
done
[ -f /etc/pam_mfa.toml ] && [ -d /var/lib/pam_mfa ] || fail "make uninstall removed the configuration or the store"
rm -rf /etc/pam_mfa.toml /var/lib/pam_mfa
MADE_INSTALL=no

echo "package test: passed"
