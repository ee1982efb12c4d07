"""End-to-end cases for issue 13: two "mail servers" on one PostgreSQL
database. Two Dovecot instances (different ports, base folders and PAM
service names), each logging in through pam_mfa.so with backend =
"postgres", both on one database of a private cluster (tests/src/pg.rs,
driven through tests/src/bin/pg-cluster.rs; never the machine's own
cluster). Server A reaches the database over its Unix socket, server B over
TCP with TLS (verify-full against the test CA), as a second machine would.
Set up as the docs say: A's `mfa-ctl store init` makes the tables and the
key file, packaging/examples/postgres/roles.sql (run as pam_mfa_admin) gives the
login role its rights, and the key file is copied to B as an admin would.
Logins connect as pam_mfa_login, mfa-ctl as pam_mfa_admin (admin_url).

Real IMAP clients (imaplib) over sockets, codes from oathtool. Each case
asserts something that per-server state would get wrong: a mailbox is set
up through ONE server's mfa-ctl and used on the other; a code accepted on
one server is refused on both; failures add up across servers; a database
that is down refuses logins on both.
"""

import imaplib
import os
import threading
import time
import unittest

import mailworld
from mailworld import DOMAIN, fresh_step, now, oathtool
from test_e2e import Imap, make_world, wrong_code

CLUSTER = None
A = None
B = None

# Small lock-out limits: 4 failures block the mailbox (2 on each server).
LOCKOUT = 'after = 4\nbackoff = "1h"\nmax_backoff = "1h"\nblock_after = 4\n'
# A database that does not answer costs a login at most about 2 s.
TIMEOUTS = {"connect_timeout": "1s", "statement_timeout": "1s"}

_ip = [0]


def source_ip():
    """A client address of its own for every login (Dovecot's auth penalty
    per address stays out), apart from test_e2e's 127.10+.x.y."""
    _ip[0] += 1
    n = _ip[0]
    return f"127.40.{n // 250}.{1 + n % 250}"


def login(world, user, password, src=None):
    """(accepted, seconds, server's answer) of one IMAP LOGIN on `world`."""
    c = Imap(world.ports["imap"], src or source_ip())
    t0 = time.monotonic()
    try:
        typ, data = c.login(user, password)
        return True, time.monotonic() - t0, f"{typ} {data}"
    except imaplib.IMAP4.error as e:
        return False, time.monotonic() - t0, str(e)
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def accepted(world, user, password):
    return login(world, user, password)[0]


def new_mailbox(local):
    """A mailbox with the same password on both servers (each has its own
    password file, as servers sharing a directory would)."""
    mailbox = f"{local}@{DOMAIN}"
    password = f"Pw-{local}-{os.urandom(3).hex()}!"
    for w in (A, B):
        w.add_user(mailbox, password)
    return mailbox, password


def setUpModule():
    try:
        start_servers()
    except BaseException:
        # unittest runs no tearDownModule after a failed setUpModule.
        tearDownModule()
        raise


def start_servers():
    global CLUSTER, A, B
    mailworld.check_dependencies()
    mailworld.check_postgres()
    target = os.environ.get("E2E_TARGET", str(mailworld.WORKSPACE / "target" / "debug"))
    CLUSTER = mailworld.PgCluster(mailworld.build_pg_cluster(target))
    CLUSTER.start()
    common = dict(postfix=False, lockout=LOCKOUT)
    A = make_world(tag="mxa", postgres={**CLUSTER.postgres_config(via="socket"), **TIMEOUTS}, **common)
    A.start()  # its `mfa-ctl store init` made the tables and the key file
    # As the docs say, after the first init: the login role's rights.
    CLUSTER.psql(mailworld.WORKSPACE / "packaging" / "examples" / "postgres" / "roles.sql", role="admin")
    # One admin command for both servers: the policy lives in the database.
    A.mfa_ctl("domain", "set", DOMAIN, "required")
    B = make_world(
        tag="mxb",
        postgres={**CLUSTER.postgres_config(via="tls"), **TIMEOUTS},
        key_from=A.key_file,
        **common,
    )
    B.start()


def tearDownModule():
    try:
        for w in (B, A):
            if w is not None:
                if os.environ.get("E2E_KEEP"):
                    print(f"\nkept {w.dir}")
                w.cleanup()
    finally:
        if CLUSTER is not None:
            CLUSTER.cleanup()


class Shared(unittest.TestCase):
    """Helpers; no cases of its own (each subclass would run them again)."""

    def logs(self):
        return A.log("dovecot") + B.log("dovecot") + CLUSTER.log()  # A's folder says mxa, B's mxb

    def check(self, cond, msg):
        if not cond:
            self.fail(msg + "\n" + self.logs())

    def status(self, world, mailbox):
        rc, out = world.mfa_ctl("status", mailbox)
        self.assertEqual(rc, 0)
        return out


class Setup(Shared):
    def test_two_servers_one_database(self):
        self.assertNotEqual(A.ports["imap"], B.ports["imap"])
        self.assertNotEqual(A.dir, B.dir)
        self.assertNotEqual(A.service("imap"), B.service("imap"))
        self.assertNotEqual(A.key_file, B.key_file)
        self.assertEqual(A.key_file.read_bytes(), B.key_file.read_bytes(), "one key for both servers")
        for w in (A, B):
            self.assertFalse(w.store.exists(), f"{w.dir}: a store folder on a postgres backend")
        # Enrolled through A's mfa-ctl, known to B's.
        mb, _ = new_mailbox("setup")
        A.enroll(mb)
        self.assertEqual(self.status(B, mb)["state"], "enabled")


class RaceOverBothServers(Shared):
    def test_one_code_16_parallel_logins_over_both_servers_exactly_one_succeeds(self):
        mb, pw = new_mailbox("race")
        secret = A.enroll(mb)  # only through server A's mfa-ctl
        t = fresh_step(15)
        # B reads A's enrolment: with a store per server B would refuse here.
        ok, _, answer = login(B, mb, pw + oathtool(secret, t))
        self.check(ok, f"server B refused a code of a mailbox enrolled through A: {answer}")
        n = 16
        worlds = [A if i % 2 == 0 else B for i in range(n)]
        clients = [Imap(w.ports["imap"], source_ip()) for w in worlds]  # connect all, then LOGIN at once
        typed = pw + oathtool(secret, t + 30)  # the next step: still in the window
        results, errors = [None] * n, []
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
        on_a = sum(1 for i in range(n) if results[i] and worlds[i] is A)
        on_b = sum(1 for i in range(n) if results[i] and worlds[i] is B)
        self.check(
            on_a + on_b == 1,
            f"{on_a} logins on A and {on_b} on B succeeded with one code (8 tries each), want exactly 1 in all",
        )
        # The database recorded two accepted logins: B's first one, and the
        # race's winner (on whichever server that was).
        _, out = A.mfa_ctl("logins", mb, "--limit", "50")
        oks = sorted(entry["service"] for entry in out["logins"] if entry["result"] == "ok")
        winner = A if on_a else B
        self.assertEqual(oks, sorted([B.service("imap"), winner.service("imap")]), f"mfa-ctl logins: {out}")


class LockoutOverBothServers(Shared):
    def test_failures_on_both_servers_add_up_to_one_lockout(self):
        mb, pw = new_mailbox("locked")
        secret = A.enroll(mb)
        wrong = []
        while len(wrong) < 4:  # block_after = 4; each wrong code differs (a repeat counts once)
            w = wrong_code(secret, now())
            if w not in wrong:
                wrong.append(w)
        for i, w in enumerate(wrong):
            server = (A, B)[i % 2]  # A, B, A, B
            ok, _, _ = login(server, mb, pw + w)
            self.check(not ok, f"a wrong code accepted on server {'AB'[i % 2]}")
            if i == 2:
                # Two failures on A, one on B: counted together, seen from B.
                st = self.status(B, mb)
                self.check(
                    st["failures"] == 3 and st["lock"] == "none",
                    f"after failures on A, B, A the shared count is {st['failures']} ({st['lock']}), want 3 (none)",
                )
        for world in (A, B):
            st = self.status(world, mb)
            self.check(
                st["lock"] == "blocked" and st["failures"] == 4,
                f"after 2 failures on each server, status through {world.service('imap')}: {st}",
            )
        t = fresh_step(8)
        self.check(not accepted(A, mb, pw + oathtool(secret, t)), "the right code accepted on A while blocked")
        self.check(not accepted(B, mb, pw + oathtool(secret, t)), "the right code accepted on B while blocked")
        # One unlock, on B, frees the mailbox on A too.
        B.mfa_ctl("unlock", mb)
        t = fresh_step(8)
        ok, _, answer = login(A, mb, pw + oathtool(secret, t))
        self.check(ok, f"the right code refused on A after unlocking through B: {answer}")


class AppPasswordOverBothServers(Shared):
    def test_app_password_added_once_works_on_both_revoked_once_refused_on_both(self):
        mb, _ = new_mailbox("app")
        A.enroll(mb)
        _, added = A.mfa_ctl("app-password", "add", mb, "--label", "phone")  # once, through A
        app = added["password"]
        for name, world in (("A", A), ("B", B)):
            ok, _, answer = login(world, mb, app)
            self.check(ok, f"the app password added through A refused on server {name}: {answer}")
        B.mfa_ctl("app-password", "revoke", mb, "phone")  # once, through B
        for name, world in (("A", A), ("B", B)):
            self.check(not accepted(world, mb, app), f"the revoked app password accepted on server {name}")


class DatabaseDown(Shared):
    def test_database_down_refuses_on_both_then_up_works_again_without_restart(self):
        # A mailbox per server, so each server has an unused code of the
        # window to try during the outage and again after it.
        servers = (("A", A), ("B", B))
        boxes = []
        for name, world in servers:
            mb, pw = new_mailbox(f"outage{name.lower()}")
            boxes.append((mb, pw, A.enroll(mb)))
        t = fresh_step(20)
        for (name, world), (mb, pw, secret) in zip(servers, boxes):
            ok, _, answer = login(world, mb, pw + oathtool(secret, t))
            self.check(ok, f"server {name} refused a login before the outage: {answer}")
        masters = (A.dovecot_pid(), B.dovecot_pid())
        # The next step's code: unused and in the window until t + 90.
        typed = [pw + oathtool(secret, t + 30) for mb, pw, secret in boxes]
        CLUSTER.down()
        try:
            rc, _ = A.mfa_ctl("status", boxes[0][0], check=False)
            self.assertNotEqual(rc, 0, "mfa-ctl status answered without its database")
            for (name, world), (mb, _, _), string in zip(servers, boxes, typed):
                src = source_ip()
                ok, secs, answer = login(world, mb, string, src)
                self.check(not ok, f"server {name} accepted a login with its database down")
                # Any refusal takes about 4 s (pam_pwdfile's and Dovecot's
                # failure delays, 2 s each); connect_timeout and
                # statement_timeout (1 s each) may add 2 s.
                self.check(secs < 8, f"server {name} took {secs:.1f} s to refuse with the database down")
                # Refused as "unavailable" (fail closed), not as a wrong code.
                unavail = f"pam({mb},{src},"
                for _ in range(50):
                    log = (world.dir / "dovecot.log").read_text(errors="replace")
                    lines = [x for x in log.splitlines() if unavail in x]
                    if lines:
                        break
                    time.sleep(0.1)
                self.check(
                    any("Authentication service cannot retrieve authentication info" in x for x in lines),
                    f"server {name}: no PAM_AUTHINFO_UNAVAIL for the login from {src}: {lines}",
                )
        finally:
            CLUSTER.up()
        self.assertEqual((A.dovecot_pid(), B.dovecot_pid()), masters, "a Dovecot was restarted")
        self.assertLess(now(), t - t % 30 + 85, "too slow: the next step's codes are about to leave the window")
        # The very strings refused during the outage: only the database refused them.
        for (name, world), (mb, _, _), string in zip(servers, boxes, typed):
            ok, _, answer = login(world, mb, string)
            self.check(ok, f"server {name} refused a login after the database came back: {answer}")


if __name__ == "__main__":
    unittest.main()
