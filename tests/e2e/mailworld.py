"""A throw-away mail system for the end-to-end tests and the demo: a real
Dovecot (IMAP, POP3, LMTP) and a real Postfix (submission with SMTP AUTH
through Dovecot), on 127.0.0.1 and free high ports, everything in one temp
folder, logging in through the freshly built pam_mfa.so.

The Dovecot snippet, the PAM service files and the Postfix snippets are the
ones shipped in packaging/examples/, with only paths, ports and the PAM
service names substituted:
- paths: /var/spool/postfix -> TMP/spool, /etc/dovecot/passwd.mfa -> TMP/passwd,
  pam_mfa.so -> the built module with config=TMP/pam_mfa.toml;
- Dovecot has no folder option for PAM, so the service files must go to
  /etc/pam.d. To leave the host's /etc/pam.d/imap alone they are written as
  /etc/pam.d/<prefix>imap etc. (passdb `args = <prefix>%s`) and removed by
  stop(). The PAM service a login arrives with is therefore "<prefix>imap".

Options for several "mail servers" on one PostgreSQL database (issue 13):
`postgres=` a dict of pam_mfa's [postgres] keys (url, password_file,
admin_url, ...) makes the world use that database (backend = "postgres")
instead of a store folder of its own, the key file being this world's
(TMP/pam_mfa.key unless the dict names one); `key_from=` copies an existing
key file there before `mfa-ctl store init`, as an admin copies it to every
server; `postfix=False` runs Dovecot alone; `lockout=` replaces the body of
the [lockout] table. PgCluster runs a private cluster for them, through the
tests crate's `pg-cluster` program.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2]
EXAMPLES = WORKSPACE / "packaging" / "examples"
PAM_DIR = Path("/etc/pam.d")
DOMAIN = "example.test"

REQUIRED_TOOLS = {
    "dovecot": "dovecot-core",
    "doveconf": "dovecot-core",
    "postfix": "postfix",
    "oathtool": "oathtool",
    "openssl": "openssl",
}
REQUIRED_FILES = {
    "/usr/lib/dovecot/imap": "dovecot-imapd",
    "/usr/lib/dovecot/pop3": "dovecot-pop3d",
    "/usr/lib/dovecot/lmtp": "dovecot-lmtpd",
    "/lib/x86_64-linux-gnu/security/pam_pwdfile.so": "libpam-pwdfile",
}


# Worlds (and PgClusters) started and not yet stopped, for a last-moment
# stop on SIGTERM: each has cleanup().
LIVE = set()


class MissingDependency(Exception):
    pass


def check_dependencies():
    """A missing package is an error naming the package, never a skip."""
    missing = []
    for tool, pkg in REQUIRED_TOOLS.items():
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            missing.append(f"{tool} (Debian package {pkg})")
    for path, pkg in REQUIRED_FILES.items():
        if not Path(path).exists() and not Path(path.replace("/lib/", "/usr/lib/", 1)).exists():
            missing.append(f"{path} (Debian package {pkg})")
    if os.geteuid() != 0:
        missing.append("root: Dovecot's PAM services go to /etc/pam.d and its auth workers run as root")
    if missing:
        raise MissingDependency(
            "the end-to-end tests need: " + "; ".join(missing) + ". Install them with: bash tests/deps.sh"
        )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now():
    return int(time.time())


def fresh_step(margin=5):
    """Waits until at least `margin` s are left in the current 30 s step so a
    code computed now is still current when the server checks it."""
    for _ in range(100):
        t = now()
        if 30 - t % 30 >= margin:
            return t
        time.sleep(0.2)
    return now()


def oathtool(secret, t):
    out = subprocess.run(
        ["oathtool", "--totp", "-b", secret, "-N", f"@{t}"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def crypt_password(password):
    out = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


def toml_value(v):
    """A TOML string (or integer) for the config file."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return json.dumps(str(v))  # a JSON string of this text is a TOML basic string


def run_daemon(cmd, out, **kw):
    """Runs a command that forks a daemon: the daemon inherits stdout and
    stderr, so they go to a file (a pipe would never reach EOF)."""
    with open(out, "a") as f:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, timeout=60, **kw)
    return r.returncode, Path(out).read_text(errors="replace")


class MailWorld:
    def __init__(
        self,
        module,
        mfa_ctl,
        config_extra="",
        tag="e2e",
        keep=False,
        passdb_args=None,
        dovecot_extra="",
        root=None,
        prefix=None,
        issuer="pam_mfa test",
        postgres=None,
        key_from=None,
        postfix=True,
        lockout=None,
    ):
        check_dependencies()
        # PAM loads a module given by a relative path from its own folder.
        self.module = Path(module).resolve()
        self.mfa_ctl_path = Path(mfa_ctl).resolve()
        for p in (self.module, self.mfa_ctl_path):
            if not p.exists():
                raise MissingDependency(f"{p} is not built (cargo build -p pam_mfa -p mfa-ctl)")
        if root is None:
            self.dir = Path(tempfile.mkdtemp(prefix=f"pam_mfa-{tag}-"))
        else:
            self.dir = Path(root)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
        # Postfix and Dovecot's unprivileged processes must traverse it; the
        # secrets inside are 0600 root.
        os.chmod(self.dir, 0o755)
        self.keep = keep
        self.id = f"{os.getpid()}"
        self.prefix = prefix or f"mfa{tag}{self.id}-"
        self.postfix = postfix
        names = ("imap", "pop3", "submission") if postfix else ("imap", "pop3")
        ports = set()
        while len(ports) < len(names):
            ports.add(free_port())
        self.ports = dict(zip(names, sorted(ports)))
        self.passdb_args = passdb_args
        self.dovecot_extra = dovecot_extra
        self.issuer = issuer
        self.config_extra = config_extra
        self.lockout = lockout
        self.postgres = None
        if postgres is not None:
            self.postgres = {"key_file": str(self.dir / "pam_mfa.key"), **postgres}
        self.key_from = Path(key_from) if key_from else None
        self.config = self.dir / "pam_mfa.toml"
        self.store = self.dir / "store"
        self.passwd = self.dir / "passwd"
        self.spool = self.dir / "spool"
        self.pfconf = self.dir / "postfix"
        self.dovecot_conf = self.dir / "dovecot.conf"
        self.pam_files = []
        self.started = []

    # ---- names ---------------------------------------------------------
    def service(self, protocol):
        """The PAM service a login over `protocol` arrives with."""
        return self.prefix + protocol

    # ---- files ---------------------------------------------------------
    def _write(self, path, text, mode=0o644):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)

    @property
    def key_file(self):
        """The key file of a world on PostgreSQL (made by `store init`, or
        copied from `key_from`)."""
        return Path(self.postgres["key_file"]) if self.postgres else None

    def config_text(self):
        if self.postgres is None:
            head = f'store = "{self.store}"\nissuer = "{self.issuer}"\n'
        else:
            # Top-level keys before the first table.
            head = f'issuer = "{self.issuer}"\nbackend = "postgres"\n[postgres]\n' + "".join(
                f"{k} = {toml_value(v)}\n" for k, v in self.postgres.items()
            )
        lockout = self.lockout or 'after = 3\nbackoff = "1h"\nmax_backoff = "1h"\nblock_after = 3\n'
        return head + "[lockout]\n" + lockout + self.config_extra

    def write_config(self):
        self._write(self.config, self.config_text(), 0o600)
        self._write(self.passwd, "", 0o600)
        if self.key_from is not None:
            shutil.copyfile(self.key_from, self.key_file)
            os.chmod(self.key_file, 0o600)

    def set_config_extra(self, extra):
        """Replaces what follows the [lockout] table in the running world's
        configuration (the module notices the changed file at its next login)."""
        self.config_extra = extra
        self._write(self.config, self.config_text(), 0o600)

    def add_user(self, mailbox, password):
        with open(self.passwd, "a") as f:
            f.write(f"{mailbox}:{crypt_password(password)}\n")

    def pam_service_text(self, protocol):
        text = (EXAMPLES / "pam.d" / protocol).read_text()
        text = text.replace("pam_mfa.so", f"{self.module} config={self.config}")
        text = text.replace("/etc/dovecot/passwd.mfa", str(self.passwd))
        return text

    def write_pam(self):
        for protocol in ("imap", "pop3", "smtp") if self.postfix else ("imap", "pop3"):
            path = PAM_DIR / self.service(protocol)
            path.write_text(self.pam_service_text(protocol))
            self.pam_files.append(path)

    def dovecot_snippet(self):
        text = (EXAMPLES / "dovecot" / "conf.d" / "90-pam-mfa.conf").read_text()
        text = text.replace("/var/spool/postfix", str(self.spool))
        old = "  args = %s\n"
        assert old in text, "the shipped Dovecot snippet no longer has 'args = %s'"
        args = self.passdb_args or "%s"
        text = text.replace(old, f"  args = {args.replace('%s', self.prefix + '%s')}\n")
        return text

    def write_dovecot(self):
        d = self.dir
        self._write(d / "90-pam-mfa.conf", self.dovecot_snippet())
        if not self.postfix:
            # The snippet's listeners for Postfix (SASL, LMTP) still go there.
            (self.spool / "private").mkdir(parents=True, exist_ok=True)
        (d / "mail").mkdir()
        shutil.chown(d / "mail", "nobody", "nogroup")
        self._write(
            self.dovecot_conf,
            f"""# Test instance; the pam_mfa part is packaging/examples/dovecot/conf.d/90-pam-mfa.conf
base_dir = {d}/run
state_dir = {d}/state
instance_name = mfa{self.id}
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
log_path = {d}/dovecot.log
auth_verbose = yes
mail_location = maildir:~/Maildir
default_internal_user = dovecot
default_login_user = dovenull
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.ports['imap']}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.ports['pop3']}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%d/%n allow_all_users=yes
}}
!include {d}/90-pam-mfa.conf
"""
            + self.dovecot_extra,
        )

    def write_postfix(self):
        c, d = self.pfconf, self.dir
        c.mkdir(exist_ok=True)
        self.spool.mkdir(mode=0o755)
        (d / "postfix-data").mkdir(mode=0o700)
        shutil.chown(d / "postfix-data", "postfix", "postfix")
        key, cert = c / "key.pem", c / "cert.pem"
        r = run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(cert)]
        )
        if r.returncode != 0:
            raise RuntimeError("openssl req failed: " + r.stderr)
        os.chmod(key, 0o600)
        snippet = (EXAMPLES / "postfix" / "main.cf").read_text()
        self._write(
            c / "main.cf",
            f"""# Test instance; the pam_mfa part is packaging/examples/postfix/main.cf
compatibility_level = 3.6
queue_directory = {self.spool}
data_directory = {d}/postfix-data
mail_owner = postfix
setgid_group = postdrop
myhostname = mfatest.localhost
mydomain = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
smtp_dns_support_level = disabled
maillog_file_prefixes = {d}
maillog_file = {d}/postfix.log
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
virtual_mailbox_domains = {DOMAIN}
# Postfix reads lookup tables once per process, and the tests add mailboxes as
# they go: every address of the test domain exists.
virtual_mailbox_maps = static:ok
"""
            + snippet,
        )
        master = (EXAMPLES / "postfix" / "master.cf").read_text()
        master = master.replace("submission inet", f"127.0.0.1:{self.ports['submission']} inet", 1)
        self._write(
            c / "master.cf",
            """# Test instance: Postfix's internal services (no chroot, no port 25)
# plus packaging/examples/postfix/master.cf
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
            + master,
        )

    # ---- processes -----------------------------------------------------
    def start(self):
        try:
            self.write_config()
            # As the package's postinst does: the store exists before any login.
            self.mfa_ctl("store", "init")
            if self.postfix:
                self.write_postfix()
            self.write_pam()
            self.write_dovecot()
            if self.postfix:
                env = dict(os.environ, MAIL_CONFIG=str(self.pfconf))
                rc, out = run_daemon(["postfix", "-c", str(self.pfconf), "start"], self.dir / "postfix.out", env=env)
                if rc != 0:
                    raise RuntimeError(f"postfix start failed: {out}\n{self.log('postfix')}")
                self.started.append("postfix")
            LIVE.add(self)
            rc, out = run_daemon(["dovecot", "-c", str(self.dovecot_conf)], self.dir / "dovecot.out")
            if rc != 0:
                raise RuntimeError(f"dovecot failed to start: {out}\n{self.log('dovecot')}")
            self.started.append("dovecot")
            for name, port in self.ports.items():
                self.wait_port(name, port)
        except BaseException:
            self.stop()
            raise

    def write_stop_script(self):
        """A script that stops this world from another process (the demo)."""
        pam = " ".join(str(p) for p in self.pam_files)
        self._write(
            self.dir / "stop.sh",
            f"""#!/bin/sh
# Stops the pam_mfa demo mail servers and removes their PAM service files.
MAIL_CONFIG={self.pfconf} postfix -c {self.pfconf} stop >/dev/null 2>&1
doveadm -c {self.dovecot_conf} stop >/dev/null 2>&1
rm -f {pam}
echo "stopped Dovecot and Postfix of {self.dir}"
""",
            0o755,
        )

    def dovecot_pid(self):
        """The Dovecot master's pid (None if it does not run)."""
        try:
            return int((self.dir / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def wait_port(self, name, port):
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} is not listening on 127.0.0.1:{port}\n{self.log('dovecot')}{self.log('postfix')}")

    def stop(self):
        """Stops what start() started and removes the PAM service files; safe
        to call twice and after a failed start."""
        if "postfix" in self.started:
            env = dict(os.environ, MAIL_CONFIG=str(self.pfconf))
            run_daemon(["postfix", "-c", str(self.pfconf), "stop"], self.dir / "postfix.out", env=env)
            self.started.remove("postfix")
        if "dovecot" in self.started:
            run_daemon(["doveadm", "-c", str(self.dovecot_conf), "stop"], self.dir / "dovecot.out")
            pidfile = self.dir / "run" / "master.pid"
            for _ in range(100):
                if not pidfile.exists():
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(int(pidfile.read_text().strip()), 9)
                except (OSError, ValueError):
                    pass
            self.started.remove("dovecot")
        LIVE.discard(self)
        for p in self.pam_files:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        self.pam_files = []

    def cleanup(self):
        self.stop()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self, which):
        p = self.dir / f"{which}.log"
        try:
            return f"--- {p} (last lines)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:]) + "\n"
        except FileNotFoundError:
            return f"--- {p}: none\n"

    # ---- mfa-ctl -------------------------------------------------------
    def mfa_ctl(self, *args, check=True):
        """Runs mfa-ctl --json on this world's config; returns (exit code, parsed JSON or text)."""
        cmd = [str(self.mfa_ctl_path), "--config", str(self.config), "--json", *args]
        r = run(cmd)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[1:])} exited {r.returncode}: {r.stdout}{r.stderr}")
        try:
            out = json.loads(r.stdout) if r.stdout.strip() else None
        except json.JSONDecodeError:
            out = r.stdout
        return r.returncode, out

    def enroll(self, mailbox):
        """Enrols `mailbox`; returns its base32 secret. Confirms with the
        previous step's code so the current and next ones stay usable."""
        _, begun = self.mfa_ctl("enroll", mailbox, "--begin")
        secret = begun["secret"]
        t = fresh_step(3)
        self.mfa_ctl("enroll", mailbox, "--confirm", oathtool(secret, t - 30))
        return secret

    def maildir_messages(self, mailbox):
        local, domain = mailbox.split("@")
        new = self.dir / "mail" / domain / local / "Maildir" / "new"
        return sorted(new.iterdir()) if new.exists() else []


def check_postgres():
    """Debian's PostgreSQL server programs, or a MissingDependency."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found and not os.environ.get("PAM_MFA_PG_BIN"):
        raise MissingDependency(
            "the shared-database end-to-end tests need the PostgreSQL server (Debian package postgresql). "
            "Install it with: bash tests/deps.sh"
        )


def build_pg_cluster(target_debug):
    """Builds the tests crate's pg-cluster next to the module (`target_debug`
    is E2E_TARGET, a cargo profile folder); returns its path. E2E_PG_CLUSTER
    names a built one instead."""
    if os.environ.get("E2E_PG_CLUSTER"):
        return Path(os.environ["E2E_PG_CLUSTER"])
    target_dir = Path(target_debug).resolve().parent
    r = run(
        ["cargo", "build", "--quiet", "-p", "pam_mfa_tests", "--bin", "pg-cluster", "--target-dir", str(target_dir)],
        cwd=WORKSPACE,
    )
    if r.returncode != 0:
        raise RuntimeError(f"building pg-cluster failed:\n{r.stdout}{r.stderr}")
    return target_dir / "debug" / "pg-cluster"


class PgCluster:
    """A private PostgreSQL cluster (initdb in a temp folder, its own port on
    127.0.0.1 and socket folder, the roles pam_mfa_login and pam_mfa_admin,
    one database), run by tests/src/bin/pg-cluster.rs; never the machine's
    own cluster. `info` is pg-cluster's JSON (port, socket_dir, database,
    ca_cert, and for "login" and "admin": url, tcp_url, tls_url,
    password_file). The cluster ends with cleanup(), with run.py's SIGTERM
    stop (LIVE), or, if this process dies outright, by itself: pg-cluster
    watches this process."""

    def __init__(self, binary):
        check_postgres()
        self.binary = Path(binary)
        self.dir = Path(tempfile.mkdtemp(prefix="pam_mfa-pgctl-"))
        self.info = None

    def _run(self, *args, timeout=240):
        return run([str(self.binary), *args, str(self.dir)], timeout=timeout)

    def start(self):
        LIVE.add(self)
        try:
            r = run([str(self.binary), "start", str(self.dir), "--owner", str(os.getpid())], timeout=240)
            if r.returncode != 0:
                raise RuntimeError(f"pg-cluster start failed ({r.returncode}):\n{r.stdout}{r.stderr}")
            self.info = json.loads(r.stdout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def down(self):
        """Stops the server (fast shutdown); data, port and socket kept."""
        r = self._run("down")
        if r.returncode != 0:
            raise RuntimeError(f"pg-cluster down failed: {r.stderr}\n{self.log()}")

    def up(self):
        """Starts the stopped server again."""
        r = self._run("up")
        if r.returncode != 0:
            raise RuntimeError(f"pg-cluster up failed: {r.stderr}\n{self.log()}")

    def psql(self, sql_file, role="admin"):
        """Runs `sql_file` with psql in the database as `role` ("admin":
        pam_mfa_admin, "login"), over the socket with the role's password,
        as an admin does; psql's output, or a RuntimeError."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = Path(self.info[role]["password_file"]).read_text().splitlines()[0]
        env["PGCONNECT_TIMEOUT"] = "10"
        psql = Path(self.info["bin_dir"], "psql") if self.info.get("bin_dir") else "psql"
        r = run(
            [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.info[role]["url"], "-f", str(sql_file)],
            env=env,
            timeout=60,
        )
        if r.returncode != 0:
            raise RuntimeError(f"psql -f {sql_file} as {self.info[role]['role']} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def postgres_config(self, role_for_logins="login", via="socket"):
        """The [postgres] keys for pam_mfa: logins as pam_mfa_login, mfa-ctl
        as pam_mfa_admin, over the socket or "tls" (verify-full, test CA)."""
        key = {"socket": "url", "tls": "tls_url", "tcp": "tcp_url"}[via]
        return {
            "url": self.info[role_for_logins][key],
            "password_file": self.info[role_for_logins]["password_file"],
            "admin_url": self.info["admin"][key],
            "admin_password_file": self.info["admin"]["password_file"],
        }

    def cleanup(self):
        """Stops the cluster and removes it; safe to call twice."""
        if self.dir.exists():
            r = self._run("stop", timeout=120)
            if r.returncode != 0:
                print(f"pg-cluster stop: {r.stderr}")
            shutil.rmtree(self.dir, ignore_errors=True)
        LIVE.discard(self)

    def log(self):
        p = Path(self.info["log_file"]) if self.info else None
        try:
            return f"--- {p} (last lines)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:]) + "\n"
        except (OSError, TypeError, AttributeError):
            return f"--- PostgreSQL log {p}: none\n"
