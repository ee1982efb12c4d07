#!/usr/bin/env bash
# pam_mfa demonstration, one command, as root on Debian 12:
#
#   bash packaging/demo.sh                 # unattended
#   bash packaging/demo.sh --interactive   # you type the code your phone shows
#   bash packaging/demo.sh --stop          # stop the demo servers
#
# Installs what is missing (tests/deps.sh; Rust with rustup if cargo is
# missing or too old), builds pam_mfa.so and mfa-ctl, starts a real Dovecot
# (IMAP, POP3) and Postfix (submission) on 127.0.0.1 with the demo mailbox
# demo@demo.test, enrols it with a terminal QR code (scan it with a phone),
# then logs in over IMAP with password+code, shows that the same string is
# refused the second time, and logs in with an app password.
# The servers keep running for you to try by hand until --stop.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=/var/tmp/pam_mfa-demo
INTERACTIVE=0
case "${1:-}" in
  --stop)
    if [ -x "$DEMO_DIR/stop.sh" ]; then "$DEMO_DIR/stop.sh"; else echo "no demo is running ($DEMO_DIR/stop.sh is missing)"; fi
    exit 0 ;;
  --interactive) INTERACTIVE=1 ;;
  "") ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "unknown option: $1 (use --interactive, --stop or --help)" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "run it as root: the demo installs packages and puts PAM service files in /etc/pam.d" >&2
  exit 2
fi

say() { printf '\n== %s\n' "$*"; }

say "1. Installing the Debian packages that are missing (Dovecot, Postfix, pam_pwdfile, oathtool, ...)"
bash tests/deps.sh
echo "done"

need_rust() {
  command -v cargo >/dev/null 2>&1 || return 0
  local v; v=$(cargo --version | awk '{print $2}')
  [ "$(printf '%s\n1.89.0\n' "$v" | sort -V | head -1)" != "1.89.0" ]
}
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if need_rust; then
  say "Installing Rust (rustup, minimal profile): Debian's cargo is older than the 1.89 this project needs"
  command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates >/dev/null
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
  . "$HOME/.cargo/env"
fi

say "2. Building pam_mfa.so and mfa-ctl"
cargo build --quiet -p pam_mfa -p mfa-ctl
echo "built target/debug/libpam_mfa.so and target/debug/mfa-ctl"

[ -x "$DEMO_DIR/stop.sh" ] && "$DEMO_DIR/stop.sh" >/dev/null 2>&1 || true

# The steps, in Python (stdin stays the terminal for --interactive).
read -r -d '' DEMO_PY <<'PY' || true
import imaplib, re, subprocess, sys
from pathlib import Path
sys.path.insert(0, "tests/e2e")
import mailworld
from mailworld import fresh_step, oathtool

demo_dir, interactive = sys.argv[1], sys.argv[2] == "1"
mailbox, password, domain = "demo@demo.test", "Demo-Pass1", "demo.test"


def say(text):
    print(f"\n== {text}", flush=True)


def imap_login(typed):
    c = imaplib.IMAP4("127.0.0.1", w.ports["imap"], timeout=60)
    try:
        c.login(mailbox, typed)
        return "ACCEPTED"
    except imaplib.IMAP4.error as e:
        return f"REFUSED ({e.args[0].decode() if isinstance(e.args[0], bytes) else e.args[0]})"
    finally:
        try:
            c.logout()
        except Exception:
            pass


w = mailworld.MailWorld("target/debug/libpam_mfa.so", "target/debug/mfa-ctl", root=demo_dir, prefix="mfademo-",
                        issuer="pam_mfa demo", keep=True)
say("3. Starting Dovecot and Postfix on 127.0.0.1 (files in %s)" % demo_dir)
try:
    w.start()
    w.write_stop_script()
except Exception as e:
    print(f"FAILED to start the mail servers: {e}")
    sys.exit(1)
print(f"Dovecot IMAP on 127.0.0.1:{w.ports['imap']}, POP3 on 127.0.0.1:{w.ports['pop3']}; "
      f"Postfix submission on 127.0.0.1:{w.ports['submission']}")
print(f"PAM service files: /etc/pam.d/mfademo-imap, -pop3, -smtp (packaging/examples/pam.d with demo paths)")
w.add_user(mailbox, password)
w.mfa_ctl("domain", "set", domain, "required")
print(f"mailbox {mailbox}, password {password!r}; domain {domain}: MFA required")

ctl = [str(w.mfa_ctl_path), "--config", str(w.config)]
say(f"4. Enrolling {mailbox}: scan the QR code with an authenticator app")
out = subprocess.run(ctl + ["enroll", mailbox, "--begin"], capture_output=True, text=True)
print(out.stdout)
m = re.search(r"secret=([A-Z2-7]+)", out.stdout)
if out.returncode != 0 or not m:
    print(f"FAILED: mfa-ctl enroll --begin: {out.stderr}")
    sys.exit(1)
secret = m.group(1)
if interactive:
    for _ in range(5):
        try:
            code = input("Type the 6-digit code your app shows: ").strip()
        except EOFError:
            print("\nFAILED: no code typed (no terminal?); run without --interactive for the unattended demo.")
            sys.exit(1)
        r = subprocess.run(ctl + ["enroll", mailbox, "--confirm", code], capture_output=True, text=True)
        if r.returncode == 0:
            break
        print("That code was not accepted; wait for the next one and try again.")
    else:
        print("FAILED: no valid code; run the demo again.")
        sys.exit(1)
else:
    t = fresh_step(3)
    code = oathtool(secret, t - 30)
    r = subprocess.run(ctl + ["enroll", mailbox, "--confirm", code], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAILED: mfa-ctl enroll --confirm: {r.stdout}{r.stderr}")
        sys.exit(1)
    print(f"Confirmed with the code {code} (computed by oathtool, as your phone would show it).")
print("MFA is now on for", mailbox)

say("5. IMAP login with password+code")
t = fresh_step(6)
# The code used to confirm is spent: the unattended run confirmed with the
# previous step's code, so the current one is fresh; after a typed code, take
# the next step's (accepted, the window is one step either side).
code = oathtool(secret, t + 30 if interactive else t)
result = imap_login(password + code)
print(f"LOGIN {mailbox} {password}{code}  ->  {result}")
ok = result == "ACCEPTED"

say("6. The same password+code again (a replay)")
result = imap_login(password + code)
print(f"LOGIN {mailbox} {password}{code}  ->  {result}")
ok = ok and result.startswith("REFUSED")

say("7. An app password for mail clients that cannot type codes (IMAP only)")
_, added = w.mfa_ctl("app-password", "add", mailbox, "--label", "demo phone", "--service", w.service("imap"))
app = added["password"]
print(f"mfa-ctl app-password add {mailbox} --label 'demo phone' --service {w.service('imap')}  ->  {app}")
result = imap_login(app)
print(f"LOGIN {mailbox} {app}  ->  {result}")
ok = ok and result == "ACCEPTED"

say("8. What pam_mfa recorded (mfa-ctl logins)")
print(subprocess.run(ctl + ["logins", mailbox], capture_output=True, text=True).stdout)

say("RESULT: " + ("all steps behaved as expected" if ok else "SOMETHING WENT WRONG, see above and " +
                   str(w.dir / "dovecot.log")))
port = w.ports["imap"]
print(f"""
The servers keep running. Try it by hand with the code from your phone:
  python3 -c 'import imaplib,getpass; c=imaplib.IMAP4("127.0.0.1",{port}); print(c.login("{mailbox}", getpass.getpass("password+code: ")))'
  (type {password} followed by the 6 digits, no space)
Manage it:   {' '.join(ctl)} status {mailbox}
Logs:        {w.dir}/dovecot.log  {w.dir}/postfix.log
Stop it:     bash packaging/demo.sh --stop
""")
sys.exit(0 if ok else 1)
PY
exec python3 -c "$DEMO_PY" "$DEMO_DIR" "$INTERACTIVE"
