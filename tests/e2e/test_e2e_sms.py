"""End-to-end cases for codes by text message (issue 15): a real Dovecot and
Postfix logging in through pam_mfa.so, whose [sms] delivery command is run
inside Dovecot's auth worker.

- A recording command (the real interface: it writes down the environment
  the kernel handed it) stands in for the gateway: a number added and
  confirmed with mfa-ctl, IMAP and SMTP logins with the password alone
  texting a code, password + that code logging in once, a wrong password
  texting nothing, parallel logins texting once.
- The two shipped examples, run for real: packaging/examples/sms/
  pam_mfa-send-sms-http against a local HTTP server standing in for the
  gateway (curl, the API key from a root-only file), and
  pam_mfa-send-sms-mail through this world's Postfix into another mailbox.
"""

import http.server
import json
import os
import re
import smtplib
import ssl
import threading
import time
import unittest
import urllib.parse
from pathlib import Path

import mailworld
import test_e2e
from mailworld import DOMAIN
from test_e2e import make_world, source_ip

WORLD = None
NUMBER = "+49 151 1234 4567"
E164 = "+4915112344567"
MASKED = "+49 *** *** 4567"
EXAMPLES = mailworld.EXAMPLES / "sms"

RECORDER = """#!/bin/sh
# Stands in for an SMS gateway: records what pam_mfa handed it.
m=$(mktemp -d OUT/msg.$(date +%s%N).XXXXXX)
tr '\\0' '\\n' < /proc/$$/environ > "$m/env"
tr '\\0' ' ' < /proc/$$/cmdline > "$m/cmdline"
touch "$m/complete"
"""


class Recorder:
    def __init__(self, world):
        self.out = world.dir / "sms-out"
        self.out.mkdir()
        self.command = world.dir / "sms-recorder"
        self.command.write_text(RECORDER.replace("OUT", str(self.out)))
        os.chmod(self.command, 0o755)

    def messages(self):
        """Every message so far, oldest first: (environment, command line)."""
        out = []
        for d in sorted(self.out.iterdir()):
            for _ in range(50):
                if (d / "complete").exists():
                    break
                time.sleep(0.1)
            env = dict(
                line.split("=", 1) for line in (d / "env").read_text().splitlines() if "=" in line
            )
            out.append((env, (d / "cmdline").read_text().strip()))
        return out

    def for_mailbox(self, mailbox):
        return [m for m in self.messages() if m[0].get("PAM_MFA_MAILBOX") == mailbox]


RECORDER_CONFIG = None


def sms_config(command, extra=""):
    return f'\n[sms]\ncommand = "{command}"\n{extra}'


def setUpModule():
    global WORLD, RECORDER_CONFIG
    WORLD = make_world(tag="sms")
    WORLD.recorder = Recorder(WORLD)
    RECORDER_CONFIG = sms_config(WORLD.recorder.command, 'resend_after = "60s"\nmax_per_hour = 20\n')
    WORLD.config_extra = RECORDER_CONFIG
    WORLD.start()
    WORLD.mfa_ctl("domain", "set", DOMAIN, "required")


def tearDownModule():
    if WORLD is not None:
        if os.environ.get("E2E_KEEP"):
            print(f"\nkept {WORLD.dir}")
        WORLD.cleanup()


def imap_login(mb, pw, src=None):
    return test_e2e.imap_login(mb, pw, src, world=WORLD)


def new_mailbox(local):
    return test_e2e.new_mailbox(local, world=WORLD)


def smtp_login(user, password, src=None):
    """True if Postfix (through Dovecot SASL) accepts SMTP AUTH on submission."""
    s = smtplib.SMTP("127.0.0.1", WORLD.ports["submission"], source_address=(src or source_ip(), 0), timeout=60)
    try:
        s.ehlo("client.test")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # a throw-away self-signed certificate
        s.starttls(context=ctx)
        s.ehlo("client.test")
        s.login(user, password)
        return True
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def code_in(text):
    """The six-digit code in a message text."""
    m = re.search(r"(?<!\d)\d{6}(?!\d)", text)
    return m.group(0) if m else None


def dovecot_log():
    p = WORLD.dir / "dovecot.log"
    return p.read_text(errors="replace") if p.exists() else ""


def has_code(text, code):
    return re.search(rf"(?<!\d){re.escape(code)}(?!\d)", text) is not None


class Case(unittest.TestCase):
    def fail_with_logs(self, msg):
        self.fail(msg + "\n" + WORLD.log("dovecot") + WORLD.log("postfix"))

    def check(self, cond, msg):
        if not cond:
            self.fail_with_logs(msg)

    def wait_for(self, probe, what, secs=20):
        for _ in range(secs * 10):
            got = probe()
            if got:
                return got
            time.sleep(0.1)
        self.fail_with_logs(f"{what} within {secs} s")

    def add_number(self, mb):
        """mfa-ctl sms add, then confirm with the code the recorder got."""
        before = len(WORLD.recorder.for_mailbox(mb))
        WORLD.mfa_ctl("sms", "add", mb, NUMBER)
        msgs = WORLD.recorder.for_mailbox(mb)
        self.assertEqual(len(msgs), before + 1)
        env, _ = msgs[-1]
        self.assertEqual(env["PAM_MFA_PURPOSE"], "confirm")
        WORLD.mfa_ctl("sms", "confirm", mb, env["PAM_MFA_CODE"])
        _, status = WORLD.mfa_ctl("status", mb)
        self.assertEqual((status["state"], status["sms"], status["login_needs"]), ("enabled", MASKED, "code"))

    def texted(self, mb, count):
        """The login codes texted to `mb`, once there are `count` of them."""
        def probe():
            msgs = [e for e, _ in WORLD.recorder.for_mailbox(mb) if e["PAM_MFA_PURPOSE"] == "login"]
            return msgs if len(msgs) >= count else None

        msgs = self.wait_for(probe, f"{count} texts to {mb}")
        self.assertEqual(len(msgs), count, f"more texts to {mb} than expected")
        return [m["PAM_MFA_CODE"] for m in msgs]


class Recorded(Case):
    def setUp(self):
        WORLD.set_config_extra(RECORDER_CONFIG)

    def test_imap_password_alone_texts_a_code_then_password_and_code_log_in_once(self):
        mb, pw = new_mailbox("texted")
        self.add_number(mb)
        self.check(not imap_login(mb, pw, None), "the password alone logged in to an SMS mailbox")
        (code,) = self.texted(mb, 1)
        self.check(imap_login(mb, pw + code, None), "password + the texted code refused")
        self.check(not imap_login(mb, pw + code, None), "the texted code logged in twice")
        # A wrong password texts nothing (the password module runs first).
        self.check(not imap_login(mb, "Not-" + pw, None), "a wrong password accepted")
        time.sleep(1)
        self.texted(mb, 1)
        # What the command got, inside Dovecot's auth worker: exactly the
        # documented environment, and its path alone as its command line.
        env, cmdline = WORLD.recorder.for_mailbox(mb)[-1]
        self.assertEqual(
            sorted(env),
            ["PAM_MFA_CODE", "PAM_MFA_MAILBOX", "PAM_MFA_MESSAGE", "PAM_MFA_PURPOSE", "PAM_MFA_TO", "PATH"],
        )
        self.assertEqual((env["PAM_MFA_TO"], env["PAM_MFA_MAILBOX"]), (E164, mb))
        self.assertIn(code, env["PAM_MFA_MESSAGE"])
        self.assertEqual(cmdline, f"/bin/sh {WORLD.recorder.command}")
        _, logins = WORLD.mfa_ctl("logins", mb)
        results = [(x["method"], x["result"]) for x in logins["logins"]]
        self.assertIn(("sms", "code sent by sms"), results)
        self.assertIn(("sms", "ok"), results)
        log = dovecot_log()
        self.assertFalse(has_code(log, code), "the texted code is in Dovecot's log")
        if not Path("/dev/log").exists():
            # Without a syslog daemon the module logs to stderr, which Dovecot keeps.
            self.assertIn(f'reason="code sent by sms" to="{MASKED}"', log)

    def test_smtp_submission_with_a_texted_code(self):
        mb, pw = new_mailbox("smtpsms")
        self.add_number(mb)
        self.check(not smtp_login(mb, pw, None), "SMTP AUTH with the password alone accepted")
        (code,) = self.texted(mb, 1)
        self.check(smtp_login(mb, pw + code, None), "SMTP AUTH with password + texted code refused")

    def test_parallel_logins_text_once(self):
        mb, pw = new_mailbox("parallelsms")
        self.add_number(mb)
        n = 10
        results = [None] * n
        barrier = threading.Barrier(n)

        def go(i):
            src = source_ip()
            barrier.wait(timeout=60)
            results[i] = imap_login(mb, pw, src)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.check(results == [False] * n, f"password-only logins: {results}")
        time.sleep(1)
        (code,) = self.texted(mb, 1)
        self.check(imap_login(mb, pw + code, None), "the one texted code refused")


class GatewayHandler(http.server.BaseHTTPRequestHandler):
    requests = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        GatewayHandler.requests.append((self.path, dict(self.headers), body))
        self.send_response(GatewayHandler.status)
        self.end_headers()
        self.wfile.write(b'{"id":"1"}')

    def log_message(self, *args):
        pass


class ShippedExamples(Case):
    """packaging/examples/sms/, installed as an admin would, with only their
    settings lines changed to this world's gateway and files."""

    def install(self, example, settings):
        text = (EXAMPLES / example).read_text()
        for key, value in settings.items():
            pattern = rf'^{key}=".*"$'
            self.assertRegex(text, re.compile(pattern, re.M), f"{example} has no {key} line")
            text = re.sub(pattern, f'{key}="{value}"', text, flags=re.M)
        path = WORLD.dir / example
        path.write_text(text)
        os.chmod(path, 0o755)
        WORLD.set_config_extra(sms_config(path, "resend_after = 0\n"))
        return path

    def test_http_gateway_example(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GatewayHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            key = WORLD.dir / "sms-gateway.key"
            key.write_text('k3y-"with\\quotes"\n')
            os.chmod(key, 0o600)
            self.install(
                "pam_mfa-send-sms-http",
                {"GATEWAY_URL": f"http://127.0.0.1:{server.server_port}/v1/messages", "KEY_FILE": str(key)},
            )
            mb, pw = new_mailbox("httpsms")
            GatewayHandler.requests.clear()
            rc, out = WORLD.mfa_ctl("sms", "add", mb, NUMBER)
            self.assertEqual(rc, 0, out)
            path, headers, body = GatewayHandler.requests[-1]
            self.assertEqual(path, "/v1/messages")
            self.assertEqual(headers.get("Authorization"), 'Bearer k3y-"with\\quotes"')
            form = urllib.parse.parse_qs(body)
            self.assertEqual((form["to"], form["from"]), ([E164], ["Mail"]))
            code = code_in(form["text"][0])
            self.assertIn(f"{code} is your pam_mfa test login code", form["text"][0])
            WORLD.mfa_ctl("sms", "confirm", mb, code)
            self.check(not imap_login(mb, pw, None), "the password alone logged in")
            self.wait_for(lambda: len(GatewayHandler.requests) >= 2, "the login's request to the gateway")
            code = code_in(urllib.parse.parse_qs(GatewayHandler.requests[-1][2])["text"][0])
            self.check(imap_login(mb, pw + code, None), "password + the code the gateway got refused")
            # The gateway failing: curl's error, and the history says not sent.
            GatewayHandler.status = 500
            self.check(not imap_login(mb, pw, None), "logged in while the gateway failed")
            _, logins = WORLD.mfa_ctl("logins", mb)
            self.assertEqual(logins["logins"][0]["result"], "code could not be sent", logins)
            if not Path("/dev/log").exists():
                self.wait_for(lambda: "(22) The requested URL returned error: 500" in dovecot_log(), "curl's error in the log")
            # The key file readable by others: refused before any request.
            os.chmod(key, 0o644)
            n = len(GatewayHandler.requests)
            rc, out = WORLD.mfa_ctl("send-code", mb, check=False)
            self.assertEqual(rc, 2, out)
            self.assertIn(f"chmod 0600 {key}", json.dumps(out))
            self.assertEqual(len(GatewayHandler.requests), n)
        finally:
            GatewayHandler.status = 200
            server.shutdown()

    def test_mail_example_through_postfix(self):
        phone, _ = new_mailbox("phone")
        mapfile = WORLD.dir / "sms-mail.map"
        mapfile.write_text(f"# number address\n{E164}  {phone}\n")
        self.install(
            "pam_mfa-send-sms-mail",
            {"MAP_FILE": str(mapfile), "SENDMAIL": f"/usr/sbin/sendmail -C {WORLD.pfconf}"},
        )
        mb, pw = new_mailbox("mailsms")

        def codes():
            found = []
            for f in WORLD.maildir_messages(phone):
                found += re.findall(r"(?<!\d)(\d{6}) is your", f.read_text(errors="replace"))
            return found

        rc, out = WORLD.mfa_ctl("sms", "add", mb, NUMBER)
        self.assertEqual(rc, 0, out)
        (confirm,) = self.wait_for(codes, "the confirmation mail", 60)
        WORLD.mfa_ctl("sms", "confirm", mb, confirm)
        self.check(not imap_login(mb, pw, None), "the password alone logged in")
        got = self.wait_for(lambda: codes() if len(codes()) >= 2 else None, "the login code's mail", 60)
        self.check(imap_login(mb, pw + got[-1], None), "password + the mailed code refused")
        # A number the map does not know: not sent, saying so.
        other, _ = new_mailbox("unmapped")
        rc, out = WORLD.mfa_ctl("sms", "add", other, "+15551234567", check=False)
        self.assertEqual(rc, 2, out)
        # The number is masked in what is passed on from the command.
        self.assertIn("no address for +1 *** *** 4567", json.dumps(out))


if __name__ == "__main__":
    unittest.main()
