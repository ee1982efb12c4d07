"""End-to-end cases: real clients (imaplib, poplib, smtplib) over
real sockets to a real Dovecot and Postfix that log in through pam_mfa.so,
with codes computed by oathtool.

Every case uses mailboxes of its own, and logins come from source addresses
of their own in 127.0.0.0/8, so Dovecot's auth penalty for failed logins from
one address (anvil, growing up to 15 s) neither slows the cases down nor
spills from one login into the next.
"""

import imaplib
import itertools
import os
import poplib
import random
import smtplib
import socket
import ssl
import threading
import time
import unittest
from email.message import EmailMessage

import mailworld
from mailworld import DOMAIN, fresh_step, now, oathtool

WORLD = None
_ips = itertools.count(1)


def source_ip():
    n = next(_ips)
    return f"127.0.{10 + n // 250}.{1 + n % 250}"


class Imap(imaplib.IMAP4):
    def __init__(self, port, src):
        self._src = src
        super().__init__("127.0.0.1", port, timeout=60)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self._src, 0))


class Pop3(poplib.POP3):
    def __init__(self, port, src):
        self._src = src
        super().__init__("127.0.0.1", port, timeout=60)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self._src, 0))


def imap_login(user, password, src, plain=False, world=None):
    """True if Dovecot accepts the login (LOGIN, or AUTHENTICATE PLAIN)."""
    c = Imap((world or WORLD).ports["imap"], src or source_ip())
    try:
        if plain:
            c.authenticate("PLAIN", lambda _: b"\0" + user.encode() + b"\0" + password.encode())
        else:
            c.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def pop3_login(user, password, src):
    c = Pop3(WORLD.ports["pop3"], src or source_ip())
    try:
        c.user(user)
        c.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        try:
            c.quit()
        except (poplib.error_proto, OSError):
            pass


def smtp(src):
    s = smtplib.SMTP("127.0.0.1", WORLD.ports["submission"], source_address=(src, 0), timeout=60)
    s.ehlo("client.test")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a throw-away self-signed certificate
    s.starttls(context=ctx)
    s.ehlo("client.test")
    return s


def smtp_login(user, password, src):
    s = smtp(src or source_ip())
    try:
        s.login(user, password)
        return True
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def wrong_code(secret, t):
    """Six digits that are none of the codes the window accepts around t."""
    valid = {oathtool(secret, t + d) for d in (-60, -30, 0, 30, 60)}
    while True:
        c = f"{random.randrange(10**6):06d}"
        if c not in valid:
            return c


def new_mailbox(local, domain=DOMAIN, password=None, world=None):
    mailbox = f"{local}@{domain}"
    password = password or f"Pw-{local}-{random.randrange(10**6)}!"
    (world or WORLD).add_user(mailbox, password)
    return mailbox, password


def make_world(**kw):
    target = os.environ.get("E2E_TARGET", str(mailworld.WORKSPACE / "target" / "debug"))
    return mailworld.MailWorld(
        f"{target}/libpam_mfa.so", f"{target}/mfa-ctl", keep=bool(os.environ.get("E2E_KEEP")), **kw
    )


def setUpModule():
    global WORLD
    # Exactly the shipped configuration: no auth cache for the PAM passdb.
    WORLD = make_world()
    WORLD.start()
    WORLD.mfa_ctl("domain", "set", DOMAIN, "required")


def tearDownModule():
    if WORLD is not None:
        if os.environ.get("E2E_KEEP"):
            print(f"\nkept {WORLD.dir}")
        WORLD.cleanup()


class Case(unittest.TestCase):
    def fail_with_logs(self, msg):
        self.fail(msg + "\n" + WORLD.log("dovecot") + WORLD.log("postfix"))

    def check(self, cond, msg):
        if not cond:
            self.fail_with_logs(msg)


class ImapCodes(Case):
    def run_replay(self, plain):
        mb, pw = new_mailbox("plain" if plain else "login")
        secret = WORLD.enroll(mb)
        ip = None  # each login from a new address: Dovecot's auth penalty stays out
        t = fresh_step(8)
        code = oathtool(secret, t)
        self.check(imap_login(mb, pw + code, ip, plain), "password+code refused")
        self.check(not imap_login(mb, pw + code, ip, plain), "the same password+code accepted twice (replay)")
        self.check(imap_login(mb, pw + oathtool(secret, t + 30), ip, plain), "the next code refused")

    def test_login_then_replay_refused_then_next_code(self):
        self.run_replay(plain=False)

    def test_authenticate_plain_then_replay_refused_then_next_code(self):
        self.run_replay(plain=True)

    def test_wrong_code_missing_code_wrong_password_refused_right_code_still_works(self):
        mb, pw = new_mailbox("wrong")
        secret = WORLD.enroll(mb)
        ip = None  # each login from a new address: Dovecot's auth penalty stays out
        self.check(not imap_login(mb, pw + wrong_code(secret, now()), ip), "a wrong code accepted")
        self.check(not imap_login(mb, pw, ip), "the password without a code accepted")
        code = oathtool(secret, fresh_step(5))
        self.check(not imap_login(mb, "Not-" + pw + code, ip), "a wrong password with the right code accepted")
        t = fresh_step(5)
        self.check(imap_login(mb, pw + oathtool(secret, t), ip), "the right password+code refused afterwards")


class Submission(Case):
    def test_smtp_auth_with_code_sends_and_message_arrives_over_imap(self):
        mb, pw = new_mailbox("sender")
        secret = WORLD.enroll(mb)
        ip = source_ip()
        subject = f"pam_mfa e2e {random.randrange(10**9)}"
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = mb, mb, subject
        msg.set_content("sent through Postfix submission, delivered by Dovecot LMTP\n")
        t = fresh_step(8)
        s = smtp(ip)
        try:
            try:
                s.login(mb, pw + oathtool(secret, t))
            except smtplib.SMTPAuthenticationError as e:
                self.fail_with_logs(f"SMTP AUTH with password+code refused: {e}")
            refused = s.send_message(msg)
            self.assertEqual(refused, {})
        finally:
            s.quit()
        for _ in range(300):
            if WORLD.maildir_messages(mb):
                break
            time.sleep(0.1)
        else:
            self.fail_with_logs("the message did not arrive in the mailbox within 30 s")
        c = Imap(WORLD.ports["imap"], ip)
        try:
            c.login(mb, pw + oathtool(secret, t + 30))
            c.select("INBOX")
            typ, data = c.search(None, "SUBJECT", f'"{subject}"')
            self.assertEqual(typ, "OK")
            ids = data[0].split()
            self.assertEqual(len(ids), 1, "the sent message is not in INBOX over IMAP")
            typ, data = c.fetch(ids[0], "(BODY[TEXT])")
            self.assertIn(b"delivered by Dovecot LMTP", data[0][1])
        finally:
            c.logout()


class AppPasswords(Case):
    def test_imap_only_app_password_refused_for_smtp_pop3_and_after_revoke(self):
        mb, _ = new_mailbox("app")
        WORLD.enroll(mb)
        ip = None  # each login from a new address: Dovecot's auth penalty stays out
        _, added = WORLD.mfa_ctl("app-password", "add", mb, "--label", "phone", "--service", WORLD.service("imap"))
        app = added["password"]
        self.check(imap_login(mb, app, ip), "the imap app password refused for IMAP")
        self.check(imap_login(mb, app.replace("-", ""), ip), "the app password without dashes refused")
        self.check(not smtp_login(mb, app, ip), "the imap-only app password accepted for SMTP")
        self.check(not pop3_login(mb, app, ip), "the imap-only app password accepted for POP3")
        WORLD.mfa_ctl("app-password", "revoke", mb, "phone")
        self.check(not imap_login(mb, app, ip), "a revoked app password accepted")


class DomainPolicy(Case):
    def test_required_grace_then_refused(self):
        domain = "grace.test"
        mb, pw = new_mailbox("late", domain)
        ip = None  # each login from a new address: Dovecot's auth penalty stays out
        WORLD.mfa_ctl("domain", "set", domain, "required", "--grace", "15s")
        start = now()
        self.check(imap_login(mb, pw, ip), "an unenrolled mailbox refused during its grace period")
        while now() <= start + 16:
            time.sleep(0.5)
        self.check(not imap_login(mb, pw, ip), "an unenrolled mailbox accepted after its grace period")
        self.check(not pop3_login(mb, pw, ip), "an unenrolled mailbox accepted over POP3 after its grace period")

    def test_optional_password_alone_for_unenrolled(self):
        domain = "optional.test"
        mb, pw = new_mailbox("plain", domain)
        ip = None  # each login from a new address: Dovecot's auth penalty stays out
        WORLD.mfa_ctl("domain", "set", domain, "optional")
        self.check(imap_login(mb, pw, ip), "optional domain: password alone refused for an unenrolled mailbox")
        self.check(pop3_login(mb, pw, ip), "optional domain: password alone refused over POP3")
        self.check(not imap_login(mb, pw + "x", ip), "optional domain: a wrong password accepted")

    def test_disabled_password_alone_even_when_enrolled(self):
        domain = "disabled.test"
        mb, pw = new_mailbox("enrolled", domain)
        ip = None  # each login from a new address: Dovecot's auth penalty stays out
        WORLD.mfa_ctl("domain", "set", domain, "optional")
        WORLD.enroll(mb)
        WORLD.mfa_ctl("domain", "set", domain, "disabled")
        self.check(imap_login(mb, pw, ip), "disabled domain: password alone refused for an enrolled mailbox")


class Lockout(Case):
    def test_blocked_after_failures_until_unlock(self):
        mb, pw = new_mailbox("locked")
        secret = WORLD.enroll(mb)
        ip = None  # each login from a new address: Dovecot's auth penalty stays out
        wrong = set()
        while len(wrong) < 3:  # lockout.after = block_after = 3 in the test config
            wrong.add(wrong_code(secret, now()))
        for w in wrong:
            self.check(not imap_login(mb, pw + w, ip), "a wrong code accepted")
        t = fresh_step(5)
        self.check(not imap_login(mb, pw + oathtool(secret, t), ip), "the right code accepted while blocked")
        rc, status = WORLD.mfa_ctl("status", mb)
        WORLD.mfa_ctl("unlock", mb)
        t = fresh_step(5)
        self.check(
            imap_login(mb, pw + oathtool(secret, t + 30), ip), f"the right code refused after unlock; status was {status}"
        )


class Parallel(Case):
    def test_50_parallel_logins_one_code_exactly_one_succeeds(self):
        mb, pw = new_mailbox("parallel")
        secret = WORLD.enroll(mb)
        n = 50
        ips = [source_ip() for _ in range(n)]
        clients, results, errors = [], [None] * n, []
        for ip in ips:  # connect all first, then LOGIN at once
            clients.append(Imap(WORLD.ports["imap"], ip))
        t = fresh_step(10)
        typed = pw + oathtool(secret, t)
        barrier = threading.Barrier(n)

        def go(i):
            try:
                barrier.wait(timeout=60)
                clients[i].login(mb, typed)
                results[i] = True
            except imaplib.IMAP4.error:
                results[i] = False
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
            finally:
                try:
                    clients[i].logout()
                except Exception:  # noqa: BLE001
                    pass

        threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=180)
        self.check(not errors, f"client errors: {errors[:5]}")
        self.check(results.count(True) == 1, f"{results.count(True)} of {n} parallel logins succeeded, want exactly 1")
        # Dovecot still serves, and the store still reads and accepts the next code.
        self.check(imap_login(mb, pw + oathtool(secret, t + 30), source_ip()), "the next code refused afterwards")
        rc, status = WORLD.mfa_ctl("status", mb)
        self.assertEqual(rc, 0)
        rc, _ = WORLD.mfa_ctl("list")
        self.assertEqual(rc, 0)
        # The marker, one file per mailbox (NAME.mfa) and per domain policy
        # (NAME.toml): anything else (a temp file) is a leftover.
        leftovers = [
            p
            for p in WORLD.store.rglob("*")
            if p.is_file()
            and p != WORLD.store / "pam_mfa-store"
            and not (p.parent.parent == WORLD.store / "mailboxes" and p.suffix == ".mfa")
            and not (p.parent == WORLD.store / "domains" and p.suffix == ".toml")
        ]
        self.assertEqual(leftovers, [], "temporary files left in the store")


class Logins(Case):
    def test_logins_lists_service_and_client_ip(self):
        mb, pw = new_mailbox("history")
        secret = WORLD.enroll(mb)
        ip_imap, ip_pop, ip_smtp = source_ip(), source_ip(), source_ip()
        t = fresh_step(8)
        self.check(imap_login(mb, pw + oathtool(secret, t), ip_imap), "IMAP login refused")
        self.check(pop3_login(mb, pw + oathtool(secret, t + 30), ip_pop), "POP3 login refused")
        _, added = WORLD.mfa_ctl("app-password", "add", mb, "--label", "laptop")
        self.check(smtp_login(mb, added["password"], ip_smtp), "SMTP login with an app password refused")
        self.check(not imap_login(mb, pw + oathtool(secret, t), ip_imap), "replay accepted")
        _, out = WORLD.mfa_ctl("logins", mb)
        text = str(out)
        for service, ip in (("imap", ip_imap), ("pop3", ip_pop), ("smtp", ip_smtp)):
            self.assertIn(WORLD.service(service), text, f"mfa-ctl logins does not show {service}: {out}")
            self.assertIn(ip, text, f"mfa-ctl logins does not show the {service} client address {ip}: {out}")


class AuthCache(Case):
    """Dovecot's auth cache against one-time codes. The shipped snippet keeps
    it off, and every replay case above runs with it (replays refused). This
    shows why: with `cache_key` set and the cache on, Dovecot answers an
    identical password+code string from the cache without asking PAM, so the
    code works again until auth_cache_ttl expires."""

    @classmethod
    def setUpClass(cls):
        cls.world = make_world(
            tag="cache",
            passdb_args="cache_key=%u %s",
            dovecot_extra="auth_cache_size = 1M\nauth_cache_ttl = 1 hour\n",
        )
        cls.world.start()
        cls.world.mfa_ctl("domain", "set", DOMAIN, "required")

    @classmethod
    def tearDownClass(cls):
        cls.world.cleanup()

    def test_recommended_config_has_no_cache_and_refuses_the_replay(self):
        conf = str(WORLD.dovecot_conf)
        size = mailworld.run(["doveconf", "-c", conf, "-h", "auth_cache_size"]).stdout.strip()
        self.assertEqual(size, "0", "the shipped snippet should leave the auth cache off")
        passdb = mailworld.run(["doveconf", "-c", conf, "-h", "passdb"]).stdout
        self.assertIn("driver = pam", passdb)
        self.assertNotIn("cache_key", passdb)
        mb, pw = new_mailbox("uncached")
        secret = WORLD.enroll(mb)
        typed = pw + oathtool(secret, fresh_step(8))
        self.check(imap_login(mb, typed, None), "password+code refused")
        self.check(not imap_login(mb, typed, None), "the identical string accepted again without the cache")

    def test_cache_key_makes_a_used_code_reusable(self):
        w = self.world
        mb, pw = new_mailbox("cached", world=w)
        secret = w.enroll(mb)
        ip = source_ip()
        t = fresh_step(8)
        typed = pw + oathtool(secret, t)
        self.assertTrue(imap_login(mb, typed, ip, world=w), "password+code refused\n" + w.log("dovecot"))
        self.assertTrue(
            imap_login(mb, typed, ip, world=w),
            "with cache_key the identical string should come from the cache\n" + w.log("dovecot"),
        )
        _, logins = w.mfa_ctl("logins", mb)
        self.assertEqual(str(logins).count(w.service("imap")), 1, f"PAM saw the second login: {logins}")


if __name__ == "__main__":
    unittest.main()
