"""Webmail end-to-end (issue 14): Debian's Roundcube 1.6 with the plugin of
packaging/examples/roundcube/pam_mfa, in front of a real Dovecot and
Postfix logging in through pam_mfa.so, used by headless Chromium through
Selenium as a person would: type the login form, click folders, open
messages, write and send one. Codes come from oathtool.

Roundcube keeps the password it logged in with and logs in to IMAP again on
nearly every request (and to SMTP to send). With the code appended to the
password, the first of those re-logins is a replay:
- WindowOff: no [webmail] table (today's behaviour). The login itself is
  accepted, and the session breaks at the first re-login: the browser lands
  on the login page, pam_mfa records the replay from the webmail's address.
  This also shows that the clicking below can fail.
- WindowOn: [webmail] covers the webmail server's address (127.0.0.80,
  Roundcube binds its IMAP and SMTP connections to it) for the world's imap
  and smtp PAM services. Two users, one typing the code in the plugin's
  field, one typing it after the password, read, send and click for at
  least 90 s (three code steps) without a single refused login; the reuses
  are in `mfa-ctl logins` as method webmail_session; `mfa-ctl logout` ends
  the one session, and its next click lands on the login page; the same
  typed string is refused from outside the webmail network.

A screenshot of the logged-in inbox is saved in the world's folder
(roundcube/inbox-*.png; kept with E2E_KEEP=1), and one of the page at any
failure.
"""

import imaplib
import json
import os
import random
import smtplib
import socket
import ssl
import time
import unittest
from email.message import EmailMessage

import mailworld
import roundcube
from mailworld import DOMAIN, fresh_step, now, oathtool
from test_e2e import make_world

WEBMAIL_IP = roundcube.WEBMAIL_IP
# At least three 30-second code steps of clicking after the login.
CLICK_SECONDS = 90
# How long one page action may take before it counts as hanging.
ACTION_TIMEOUT = 30


# Every login of the case stays in `mfa-ctl logins` (Roundcube logs in to
# IMAP about once per request: hundreds in 90 s).
STATE_TABLE = "\n[state]\nkeep_logins = 1000\n"


def webmail_table(world):
    """The [webmail] table of the interface in issue 14, for `world`'s PAM
    services (mailworld prefixes them: "<prefix>imap", "<prefix>smtp")."""
    services = json.dumps([world.service("imap"), world.service("smtp")])
    return f'\n[webmail]\nreuse_window = "8h"\nnetworks = ["{WEBMAIL_IP}/32"]\nservices = {services}\n'


class Imap(imaplib.IMAP4):
    def __init__(self, port, src):
        self._src = src
        super().__init__("127.0.0.1", port, timeout=60)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self._src, 0))


def imap_login(world, user, password, src):
    """True if Dovecot accepts the IMAP LOGIN from address `src`."""
    c = Imap(world.ports["imap"], src)
    try:
        c.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def new_mailbox(world, local):
    mailbox = f"{local}@{DOMAIN}"
    password = f"Wm-{local}-{random.randrange(10**6)}!"
    world.add_user(mailbox, password)
    return mailbox, password


def wait_for_delivery(world, mailbox, count, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(world.maildir_messages(mailbox)) >= count:
            return True
        time.sleep(0.2)
    return False


class Sender:
    """Delivers test messages through Postfix submission: a mailbox of its
    own logging in with an app password, from an address of its own."""

    SRC = "127.0.60.1"

    def __init__(self, world):
        self.world = world
        self.mailbox, _ = new_mailbox(world, "postman")
        _, added = world.mfa_ctl("app-password", "add", self.mailbox, "--label", "postman")
        self.password = added["password"]

    def send(self, to, subject, body):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.mailbox, to, subject
        msg.set_content(body + "\n")
        before = len(self.world.maildir_messages(to))
        s = smtplib.SMTP("127.0.0.1", self.world.ports["submission"], source_address=(self.SRC, 0), timeout=60)
        try:
            s.ehlo("postman.test")
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the test Postfix's self-signed certificate
            s.starttls(context=ctx)
            s.ehlo("postman.test")
            s.login(self.mailbox, self.password)
            s.send_message(msg)
        finally:
            s.quit()
        if not wait_for_delivery(self.world, to, before + 1):
            raise AssertionError(
                f"a message to {to} did not arrive through Postfix within 30 s\n{self.world.log('postfix')}"
            )


# The page's state, as Roundcube's client sees it. `msgs` are the messages
# Roundcube displayed since the page loaded (captured by wrapping
# rcmail.display_message, see INSTRUMENT), `stack` the ones on screen.
STATE_JS = """
var rc = window.rcmail;
var stack = Array.prototype.map.call(document.querySelectorAll('#messagestack > div'),
    function (e) { return [e.className, e.innerText]; });
return {
  ready: document.readyState === 'complete',
  login_form: !!document.getElementById('rcmloginuser'),
  task: rc && rc.env ? rc.env.task : null,
  action: rc && rc.env ? rc.env.action : null,
  mailbox: rc && rc.env ? rc.env.mailbox : null,
  busy: rc ? !!rc.busy : true,
  ajax: window.jQuery ? jQuery.active : 0,
  server_error: rc && rc.env ? (rc.env.server_error || null) : null,
  msgs: window.__pam_mfa_msgs || [],
  stack: stack,
  url: location.href
};
"""

# Records every message Roundcube displays (errors among them), from now
# until the page is left.
INSTRUMENT = """
if (window.rcmail && !window.__pam_mfa_msgs) {
  window.__pam_mfa_msgs = [];
  var orig = rcmail.display_message;
  rcmail.display_message = function (msg, type) {
    window.__pam_mfa_msgs.push([String(type), String(msg)]);
    return orig.apply(this, arguments);
  };
}
"""


class WebmailUser:
    """One person in one headless Chromium, logged in to Roundcube."""

    def __init__(self, case, rc, name, mailbox, password, secret=None):
        self.case, self.rc, self.world = case, rc, rc.world
        self.name, self.mailbox, self.password, self.secret = name, mailbox, password, secret
        self.browser = roundcube.Browser(rc.dir, name)
        self.d = self.browser.driver
        self.errors_from = len(rc.error_lines())
        self.actions = 0
        self.typed = None

    def close(self):
        self.browser.cleanup()

    # ---- failure reports ---------------------------------------------------
    def page_text(self):
        try:
            return self.d.find_element("tag name", "body").text[:1500]
        except Exception as e:  # noqa: BLE001 - a report, best effort
            return f"(no page text: {e!r})"

    def fail(self, msg):
        shot = self.rc.dir / f"failure-{self.name}.png"
        try:
            self.d.save_screenshot(str(shot))
        except Exception:  # noqa: BLE001
            pass
        try:
            _, logins = self.world.mfa_ctl("logins", self.mailbox, check=False)
        except Exception as e:  # noqa: BLE001
            logins = repr(e)
        raise AssertionError(
            f"[{self.name} {self.mailbox}, after {self.actions} actions] {msg}\n"
            f"--- page {self.safe_url()}:\n{self.page_text()}\n"
            f"--- screenshot {shot}\n--- mfa-ctl logins: {json.dumps(logins)}\n"
            + self.rc.logs(self.errors_from)
            + self.world.log("dovecot")
            + self.world.log("postfix")
        )

    def safe_url(self):
        try:
            return self.d.current_url
        except Exception:  # noqa: BLE001
            return "?"

    # ---- waiting -----------------------------------------------------------
    def state(self):
        return self.d.execute_script(STATE_JS)

    def broken(self, st):
        """Why the page shows a broken session, or None."""
        if st["login_form"] or st["task"] == "login":
            return "the login page is shown"
        if st["server_error"]:
            return f"Roundcube reports server error {st['server_error']}"
        errors = [m for t, m in st["msgs"] if t == "error"] + [m for c, m in st["stack"] if "error" in c]
        if errors:
            return f"Roundcube shows errors: {errors}"
        new = self.rc.error_lines()[self.errors_from:]
        if new:
            return f"Roundcube logged errors: {new[-5:]}"
        return None

    def until(self, success_js, what, timeout=ACTION_TIMEOUT, expect_broken=False):
        """Polls until `success_js` (a JS expression) holds on an idle page;
        fails as soon as the session is broken (or, with expect_broken,
        returns the reason it broke and fails if it does not)."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                st = self.state()
                last = st
                reason = self.broken(st) if st["ready"] else None
                if reason:
                    if expect_broken:
                        return reason
                    self.fail(f"{what}: {reason}")
                if (
                    not expect_broken
                    and st["ready"]
                    and not st["busy"]
                    and st["ajax"] == 0
                    and self.d.execute_script(f"try {{ return !!({success_js}); }} catch (e) {{ return false; }}")
                ):
                    self.d.execute_script(INSTRUMENT)
                    return None
            except AssertionError:
                raise
            except Exception as e:  # noqa: BLE001 - a page being replaced
                last = repr(e)
            time.sleep(0.25)
        if expect_broken:
            self.fail(f"{what}: the session still works after {timeout} s, expected it to end; last state {last}")
        self.fail(f"{what}: not done within {timeout} s; last state {last}")

    # ---- actions -----------------------------------------------------------
    def login(self, code_in_field):
        """Logs in with a fresh code, typed in the plugin's field or after
        the password; returns the typed password string Roundcube keeps."""
        d = self.d
        d.get(self.rc.url)
        self._wait_login_form()
        t = fresh_step(10)
        code = oathtool(self.secret, t)
        d.find_element("id", "rcmloginuser").send_keys(self.mailbox)
        if code_in_field:
            d.find_element("id", "rcmloginpwd").send_keys(self.password)
            d.find_element("id", "rcmloginmfacode").send_keys(code)
        else:
            d.find_element("id", "rcmloginpwd").send_keys(self.password + code)
        self.typed = self.password + code
        self.login_step = t // 30
        self.submit_login()
        self.until("rcmail.env.task == 'mail' && rcmail.env.mailbox == 'INBOX' && rcmail.message_list", "login")
        return self.typed

    def login_plain(self, password_field, code_field=""):
        """Submits the login form with exactly these field values."""
        d = self.d
        d.get(self.rc.url)
        self._wait_login_form()
        d.find_element("id", "rcmloginuser").send_keys(self.mailbox)
        d.find_element("id", "rcmloginpwd").send_keys(password_field)
        if code_field:
            d.find_element("id", "rcmloginmfacode").send_keys(code_field)
        self.submit_login()

    def submit_login(self):
        """Clicks the login button and waits for the page that answers it."""
        self.d.execute_script("window.__pam_mfa_old_page = true;")
        self.d.find_element("id", "rcmloginsubmit").click()
        self.actions += 1
        end = time.monotonic() + ACTION_TIMEOUT
        while time.monotonic() < end:
            try:
                if self.d.execute_script("return !window.__pam_mfa_old_page && document.readyState === 'complete';"):
                    return
            except Exception:  # noqa: BLE001 - the page is being replaced
                pass
            time.sleep(0.2)
        self.fail("no answer to the login form")

    def _wait_login_form(self):
        end = time.monotonic() + ACTION_TIMEOUT
        while time.monotonic() < end:
            try:
                st = self.state()
                if st["ready"] and st["login_form"]:
                    return
            except Exception:  # noqa: BLE001 - the page is being replaced
                pass
            time.sleep(0.2)
        self.fail("the login page did not appear")

    def screenshot(self, name):
        path = self.rc.dir / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def row_xpath(self, subject):
        return f"//table[@id='messagelist']//tr[contains(@class, 'message')][.//*[contains(text(), '{subject}')]]"

    def has_row_js(self, subject):
        return (
            "Array.prototype.some.call(document.querySelectorAll('#messagelist tr.message'), "
            f"function (r) {{ return r.innerText.indexOf({json.dumps(subject)}) >= 0; }})"
        )

    def open_folder(self, folder, css, expect_subject=None):
        self.d.find_element("css selector", f"#mailboxlist li.mailbox.{css} > a").click()
        self.actions += 1
        cond = f"rcmail.env.mailbox == {json.dumps(folder)}"
        if expect_subject:
            cond += " && " + self.has_row_js(expect_subject)
        self.until(cond, f"open folder {folder}")

    def click_refresh(self):
        """The list toolbar's Refresh button (Roundcube's checkmail, an AJAX request)."""
        self.d.find_element("css selector", "a.refresh").click()
        self.actions += 1

    def click_message(self, subject):
        """A message in the list: Roundcube shows it in the preview frame."""
        row = self.d.find_element("xpath", self.row_xpath(subject))
        row.find_element("css selector", "td.subject").click()
        self.actions += 1

    def expect_login_page(self, what):
        """After a click: the session ends and the login page appears."""
        reason = self.until("false", what, expect_broken=True)
        self._wait_login_form()
        return reason

    def check_mail(self, expect_subject=None):
        self.click_refresh()
        cond = "rcmail.env.task == 'mail'"
        if expect_subject:
            cond += " && " + self.has_row_js(expect_subject)
        self.until(cond, "refresh (check mail)")

    def reload(self, expect_subject=None):
        """The browser's reload: the whole page again."""
        self.d.refresh()
        self.actions += 1
        cond = "rcmail.env.task == 'mail' && rcmail.message_list"
        if expect_subject:
            cond += " && " + self.has_row_js(expect_subject)
        self.until(cond, "reload the page")

    def open_message(self, subject, body_text):
        """Clicks the message in the list and reads it in the preview pane."""
        self.click_message(subject)
        self.until("rcmail.env.contentframe && document.getElementById('messagecontframe')", f"open '{subject}'")
        end = time.monotonic() + ACTION_TIMEOUT
        text = ""
        while time.monotonic() < end:
            reason = self.broken(self.state())
            if reason:
                self.fail(f"open '{subject}': {reason}")
            try:
                self.d.switch_to.frame("messagecontframe")
                try:
                    bodies = self.d.find_elements("id", "messagebody")
                    text = bodies[0].text if bodies else ""
                finally:
                    self.d.switch_to.default_content()
            except Exception as e:  # noqa: BLE001 - the frame is being replaced
                text = repr(e)
            if body_text in text:
                return
            time.sleep(0.25)
        self.fail(
            f"open '{subject}': the preview does not show {body_text!r} within {ACTION_TIMEOUT} s"
            f" (it shows {text[:300]!r})"
        )

    def send(self, to, subject, body):
        """Writes a message in Roundcube's compose screen and sends it
        (Roundcube logs in to SMTP with the kept password)."""
        d = self.d
        d.find_element("css selector", "#taskmenu a.compose").click()
        self.actions += 1
        self.until("rcmail.env.action == 'compose' && document.getElementById('compose-subject')", "open compose")
        d.find_element("css selector", "#compose_to .recipient-input input").send_keys(to + ", ")
        d.find_element("id", "compose-subject").send_keys(subject)
        d.find_element("id", "composebody").send_keys(body)
        d.find_element("css selector", "button.send").click()
        self.actions += 1
        # Sent: Roundcube goes back to the message list.
        self.until("rcmail.env.task == 'mail' && rcmail.env.action != 'compose' && rcmail.message_list", "send")


class WebmailCase(unittest.TestCase):
    world = None
    rc = None
    window = False

    @classmethod
    def setUpClass(cls):
        roundcube.check_dependencies()
        tag = "wmon" if cls.window else "wmoff"
        cls.world = make_world(tag=tag, config_extra=STATE_TABLE)
        if cls.window:
            cls.world.config_extra += webmail_table(cls.world)
        try:
            cls.world.start()
            cls.world.mfa_ctl("domain", "set", DOMAIN, "required")
            cls.rc = roundcube.Roundcube(cls.world).start()
            cls.sender = Sender(cls.world)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.rc is not None:
            cls.rc.cleanup()
            cls.rc = None
        if cls.world is not None:
            if os.environ.get("E2E_KEEP"):
                print(f"\nkept {cls.world.dir} (Roundcube, its logs and screenshots in roundcube/)")
            cls.world.cleanup()
            cls.world = None

    def setUp(self):
        self.users = []

    def tearDown(self):
        for u in self.users:
            u.close()

    def user(self, name, local, enrol=True):
        mailbox, password = new_mailbox(self.world, local)
        secret = self.world.enroll(mailbox) if enrol else None
        u = WebmailUser(self, self.rc, name, mailbox, password, secret)
        self.users.append(u)
        return u

    def logins(self, mailbox):
        _, out = self.world.mfa_ctl("logins", mailbox)
        return out["logins"] if isinstance(out, dict) else []

    def sessions(self, mailbox):
        """The open webmail sessions of `mailbox` (mfa-ctl sessions --json)."""
        _, out = self.world.mfa_ctl("sessions", mailbox)
        self.assertIsInstance(out, dict, f"mfa-ctl sessions --json printed {out!r}")
        return out["sessions"]


class WindowOff(WebmailCase):
    """No [webmail] table: today's behaviour."""

    window = False

    def test_without_window_the_session_breaks_at_the_first_relogin(self):
        a = self.user("off-field", "offfield")
        b = self.user("off-joined", "offjoined")
        subject = f"Delivered through Postfix {random.randrange(10**6)}"
        for u in (a, b):
            self.sender.send(u.mailbox, subject, "before the login")
        for u, in_field in ((a, True), (b, False)):
            u.d.get(self.rc.url)
            u._wait_login_form()
            t = fresh_step(10)
            code = oathtool(u.secret, t)
            u.d.find_element("id", "rcmloginuser").send_keys(u.mailbox)
            if in_field:
                u.d.find_element("id", "rcmloginpwd").send_keys(u.password)
                u.d.find_element("id", "rcmloginmfacode").send_keys(code)
            else:
                u.d.find_element("id", "rcmloginpwd").send_keys(u.password + code)
            u.typed = u.password + code
            start = time.monotonic()
            u.submit_login()
            # The same clicking as with the window on, until it fails: the
            # first request after the login already logs in again.
            reason = None
            while reason is None and time.monotonic() - start < 30 + 15:
                try:
                    st = u.state()
                except Exception:  # noqa: BLE001 - the page is being replaced
                    time.sleep(0.25)
                    continue
                reason = u.broken(st) if st["ready"] else None
                if reason is None and st["ready"] and st["task"] == "mail" and not st["busy"] and st["ajax"] == 0:
                    u.click_refresh()
                time.sleep(0.5)
            self.assertIsNotNone(reason, f"{u.name}: the webmail session kept working for 45 s without the window")
            broke_after = time.monotonic() - start
            # It broke because the first login was accepted and the next one
            # from the webmail's address was refused as a replay.
            entries = self.logins(u.mailbox)
            ok = [e for e in entries if e["result"] == "ok" and e["ip"] == WEBMAIL_IP]
            replays = [e for e in entries if "replay" in e["result"] and e["ip"] == WEBMAIL_IP]
            self.assertEqual(len(ok), 1, f"{u.name}: want one accepted login from {WEBMAIL_IP}: {entries}")
            self.assertEqual(ok[0]["service"], self.world.service("imap"), f"{u.name}: {entries}")
            self.assertTrue(replays, f"{u.name}: no replay refused from {WEBMAIL_IP}: {entries}")
            # The next click shows the login page (the plugin ends a session
            # whose stored password the server refuses).
            u.d.refresh()
            u._wait_login_form()
            # The same typed string, straight over IMAP from the webmail's
            # address: a replay, refused as today.
            self.assertFalse(
                imap_login(self.world, u.mailbox, u.typed, WEBMAIL_IP),
                f"{u.name}: without the window the identical string logged in again",
            )
            print(f"\n    {u.name}: broke {broke_after:.1f} s after the login: {reason}", end="")

    def test_plugin_field_empty_keeps_password_logins_and_rejects_a_malformed_code(self):
        # An app password with the field left empty: unchanged by the plugin,
        # and reusable, so the session works across clicks even without the window.
        u = self.user("off-app", "offapp")
        _, added = self.world.mfa_ctl("app-password", "add", u.mailbox, "--label", "webmail")
        subject = f"App password mail {random.randrange(10**6)}"
        self.sender.send(u.mailbox, subject, "read with an app password")
        u.login_plain(added["password"])
        u.until("rcmail.env.task == 'mail' && rcmail.message_list", "login with an app password, field empty")
        u.open_message(subject, "read with an app password")
        u.open_folder("Sent", "sent")
        u.open_folder("INBOX", "inbox", expect_subject=subject)
        u.check_mail()
        entries = self.logins(u.mailbox)
        self.assertTrue(entries and all(e["result"] == "ok" for e in entries), f"app password logins: {entries}")
        self.assertTrue(
            all(e["ip"] == WEBMAIL_IP for e in entries), f"the webmail's logins come from {WEBMAIL_IP}: {entries}"
        )
        # The app password revoked while the session is open: the server
        # refuses the next re-login, and the plugin ends the session (here a
        # message opened in the preview frame).
        self.world.mfa_ctl("app-password", "revoke", u.mailbox, "webmail")
        u.click_message(subject)
        u.expect_login_page("open a message after the app password was revoked")
        # Something that is no code in the field: refused by the plugin with
        # its message, before any IMAP login.
        v = self.user("off-bad", "offbad")
        v.login_plain(v.password, "12ab")
        reason = v.until("false", "a malformed code", timeout=ACTION_TIMEOUT, expect_broken=True)
        self.assertIn("login page", reason)
        self.assertIn("verification code is not valid", v.page_text())
        self.assertEqual(self.logins(v.mailbox), [], "a malformed code reached the server")


class WindowOn(WebmailCase):
    """[webmail] for the webmail server's address and the imap and smtp services."""

    window = True

    def test_session_survives_90s_of_clicking_then_logout_ends_it(self):
        world = self.world
        a = self.user("on-field", "onfield")
        b = self.user("on-joined", "onjoined")
        inbox_subject = f"Delivered through Postfix {random.randrange(10**6)}"
        for u in (a, b):
            self.sender.send(u.mailbox, inbox_subject, f"Hello {u.name}, this came through Postfix.")

        # Log in: a with the plugin's field, b with the code after the password.
        a.login(code_in_field=True)
        started = time.monotonic()
        a.until(a.has_row_js(inbox_subject), "the inbox lists the delivered message")
        shot = a.screenshot("inbox-on-field")
        b.login(code_in_field=False)

        # The webmail's logins arrive from its own address, for the imap service.
        entries = self.logins(a.mailbox)
        self.assertTrue(entries, "no login recorded")
        self.assertEqual(
            {(e["ip"], e["service"]) for e in entries},
            {(WEBMAIL_IP, world.service("imap"))},
            f"the webmail's logins: {entries}",
        )

        # Read the delivered message; send one to b (SMTP from Roundcube).
        a.open_message(inbox_subject, f"Hello {a.name}")
        sent_subject = f"Sent from Roundcube {random.randrange(10**6)}"
        before = len(world.maildir_messages(b.mailbox))
        a.send(b.mailbox, sent_subject, "Written in the browser, sent through Postfix.")
        self.assertTrue(
            wait_for_delivery(world, b.mailbox, before + 1),
            f"the message sent from Roundcube did not arrive\n{world.log('postfix')}",
        )
        entries = self.logins(a.mailbox)
        smtp = [e for e in entries if e["service"] == world.service("smtp")]
        self.assertTrue(smtp, f"sending from Roundcube did not log in to SMTP through pam_mfa: {entries}")
        self.assertEqual({(e["ip"], e["result"]) for e in smtp}, {(WEBMAIL_IP, "ok")}, f"SMTP logins: {smtp}")
        b.reload(expect_subject=sent_subject)
        b.open_message(sent_subject, "Written in the browser")
        a.open_folder("Sent", "sent", expect_subject=sent_subject)
        a.open_folder("INBOX", "inbox", expect_subject=inbox_subject)

        # Keep clicking, both users in turn, for three code steps and more.
        plan = [
            lambda u: u.check_mail(),
            lambda u: u.open_folder("Sent", "sent"),
            lambda u: u.open_folder("INBOX", "inbox", expect_subject=inbox_subject),
            lambda u: u.open_message(inbox_subject, f"Hello {u.name}"),
            lambda u: u.reload(expect_subject=inbox_subject),
        ]
        i = 0
        while time.monotonic() - started < CLICK_SECONDS or now() // 30 < a.login_step + 3:
            for u in (a, b):
                plan[i % len(plan)](u)
            i += 1
        clicked = time.monotonic() - started
        a.screenshot("inbox-on-field-after-clicking")
        print(f"\n    clicked for {clicked:.0f} s: {a.actions} + {b.actions} actions", end="")

        # Not one refused login; the reuses are recorded as webmail sessions.
        for u in (a, b):
            entries = self.logins(u.mailbox)
            refused = [e for e in entries if e["result"] != "ok"]
            self.assertEqual(refused, [], f"{u.name}: refused logins during the session: {entries}")
            methods = {e["method"] for e in entries}
            self.assertIn("webmail_session", methods, f"{u.name}: no reuse recorded as webmail_session: {entries}")
            self.assertTrue(all(e["ip"] == WEBMAIL_IP for e in entries), f"{u.name}: {entries}")
        # One open session each, from the webmail's address (all the logins
        # of a Roundcube session reuse the one string).
        for u in (a, b):
            open_ = self.sessions(u.mailbox)
            self.assertEqual([s["client"] for s in open_], [WEBMAIL_IP], f"{u.name}: mfa-ctl sessions: {open_}")

        # From outside the webmail network the same typed string is a replay.
        self.assertFalse(
            imap_login(world, b.mailbox, b.typed, "127.0.0.1"), "the webmail string accepted from 127.0.0.1"
        )
        outside = [e for e in self.logins(b.mailbox) if e["ip"] == "127.0.0.1"]
        self.assertTrue(
            outside and outside[0]["result"] != "ok", f"the refusal from 127.0.0.1 is not recorded: {outside}"
        )
        # ... while an IMAP client on the webmail's address may reuse it.
        self.assertTrue(
            imap_login(world, b.mailbox, b.typed, WEBMAIL_IP), "the string refused from the webmail's address"
        )
        b.check_mail()

        # mfa-ctl logout ends a's sessions: the next click shows the login page.
        world.mfa_ctl("logout", a.mailbox)
        a.click_refresh()
        a.expect_login_page("the first click after mfa-ctl logout")
        self.assertFalse(imap_login(world, a.mailbox, a.typed, WEBMAIL_IP), "a's string accepted after logout")
        self.assertEqual(self.sessions(a.mailbox), [], "mfa-ctl sessions still lists a session after logout")
        # b's session is another mailbox's: still open, still working.
        self.assertEqual(len(self.sessions(b.mailbox)), 1, "logout of a ended b's session")
        b.reload(expect_subject=inbox_subject)
        print(f"; inbox screenshot {shot}", end="")


if __name__ == "__main__":
    unittest.main()
