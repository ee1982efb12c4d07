#!/usr/bin/env bash
# Installs every Debian package the build and the tests need (Debian 12, as root).
# One list, used by tests/run.sh, .ci/run and the demo. Idempotent.
set -euo pipefail
PACKAGES=(
  # build (libssl-dev: TLS to PostgreSQL in the postgres backend)
  build-essential pkg-config libpam0g-dev libssl-dev
  # libpam tests: real password module, independent TOTP implementation
  libpam-modules libpam-pwdfile oathtool openssl
  # benchmark (tests/src/bin/bench/): the modules pam_mfa is measured against
  libpam-google-authenticator libpam-oath util-linux
  # mfa-ctl tests: QR decoding, driving the interactive enrolment in a terminal
  zbar-tools tmux python3
  # bulk tests (tests/tests/bulk.rs): GNU time measures mfa-ctl's peak memory
  time
  # package test (tests/suites/package.sh): build, lint, install, drive by bare name
  debhelper dpkg-dev fakeroot lintian pamtester man-db
  # postgres backend tests (tests/src/pg.rs): private clusters made with the
  # server's initdb/pg_ctl; the machine's own cluster is never used
  postgresql
  # end-to-end suite and demo (tests/e2e, packaging/demo.sh): real Dovecot and Postfix
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix
  # webmail case (tests/e2e/test_e2e_webmail.py): Debian's Roundcube on PHP's
  # built-in server, driven by headless Chromium through Selenium
  php-cli php-cgi roundcube-core roundcube-sqlite3 chromium chromium-driver python3-selenium
  # the shipped HTTP delivery command for codes by text message, run by the
  # end-to-end suite (packaging/examples/sms/pam_mfa-send-sms-http)
  curl
)
# Installed first, in an apt-get call of their own: with PHP's CGI binary in
# place, roundcube's dependency on `php` is met without Apache's PHP module.
FIRST=(php-cli php-cgi)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # postfix asks what kind of mail server this is; the tests bring their own config.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # roundcube-core: no database made by dbconfig-common, no web server
  # configured or reloaded; the webmail test brings its own config and SQLite file.
  debconf-set-selections <<'EOF'
roundcube-core roundcube/dbconfig-install boolean false
roundcube-core roundcube/reconfigure-webserver multiselect
roundcube-core roundcube/restart-webserver boolean false
EOF
  apt-get update -qq
  first=()
  for p in "${FIRST[@]}"; do
    [[ " ${missing[*]} " == *" $p "* ]] && first+=("$p")
  done
  if [ ${#first[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${first[@]}" >/dev/null
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
