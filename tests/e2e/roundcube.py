"""A throw-away Roundcube for the webmail end-to-end case: Debian's
roundcube-core 1.6 served by PHP's built-in web server on 127.0.0.1 and a
free port, in front of a MailWorld's Dovecot (IMAP) and Postfix
(submission), with the plugin of packaging/examples/roundcube/pam_mfa. And
a headless Chromium driven by Selenium to use it as a person would.

Nothing of the machine's Roundcube configuration is used (/etc/roundcube
stays as debconf left it, with or without a database): everything lives in
TMP = <world folder>/roundcube:
- TMP/app is Roundcube's INSTALL_PATH: program, skins and SQL are links to
  Debian's /usr/share/roundcube; plugins/ holds links to Debian's
  jqueryui and filesystem_attachments and to our pam_mfa; config/ our
  config.inc.php and links to the package's defaults.inc.php and
  mimetypes.php (plain files of roundcube-core, not written by debconf); logs/ (errors.log, userlogins.log) and temp/;
- TMP/router.php is PHP's router: it defines INSTALL_PATH (and so the
  config folder, RCMAIL_CONFIG_DIR = INSTALL_PATH/config, see
  program/include/iniset.php), serves the static files of skins/,
  program/js, program/resources and plugins/, and runs index.php for the rest;
- TMP/roundcube.db the SQLite database (Roundcube creates its tables on
  first use from SQL/sqlite.initial.sql).

Roundcube reaches IMAP and submission FROM 127.0.0.80 (imap_conn_options /
smtp_conn_options: PHP stream context `socket.bindto`), so the webmail's
logins arrive with PAM_RHOST 127.0.0.80 while the test's own clients come
from other 127.x addresses.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import mailworld
from mailworld import MissingDependency

RC_SHARE = Path("/usr/share/roundcube")
RC_ETC = Path("/etc/roundcube")
WEBMAIL_IP = "127.0.0.80"
PLUGIN = mailworld.EXAMPLES / "roundcube" / "pam_mfa"

REQUIRED = {
    "/usr/share/roundcube/index.php": "roundcube-core",
    "/usr/share/roundcube/SQL/sqlite.initial.sql": "roundcube-core",
    "/etc/roundcube/defaults.inc.php": "roundcube-core",
    "/usr/bin/php": "php-cli",
    "/usr/bin/chromium": "chromium",
    "/usr/bin/chromedriver": "chromium-driver",
}


def check_dependencies():
    """A missing package is an error naming it, never a skip."""
    missing = [f"{path} (Debian package {pkg})" for path, pkg in REQUIRED.items() if not Path(path).exists()]
    if Path("/usr/bin/php").exists():
        mods = subprocess.run(["php", "-m"], capture_output=True, text=True).stdout.split()
        if "pdo_sqlite" not in mods:
            missing.append("PHP's pdo_sqlite (Debian package php-sqlite3, through roundcube-sqlite3)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append(
            "Python's selenium module (Debian package python3-selenium; run the suite with /usr/bin/python3)"
        )
    if missing:
        raise MissingDependency(
            "the webmail end-to-end case needs: " + "; ".join(missing) + ". Install them with: bash tests/deps.sh"
        )


def php_string(s):
    """A single-quoted PHP string literal."""
    return "'" + str(s).replace("\\", "\\\\").replace("'", "\\'") + "'"


ROUTER = r"""<?php
// PHP built-in server router for the test Roundcube (tests/e2e/roundcube.py).
define('INSTALL_PATH', __DIR__ . '/app/');
define('RCMAIL_CONFIG_DIR', INSTALL_PATH . 'config');

$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
$static = '#^/(skins|program/js|program/resources|plugins)/'
    . '[^?]*\.(js|css|map|png|gif|jpg|svg|ico|woff2?|ttf|eot|html)$#';
if (preg_match($static, $path) && strpos($path, '..') === false) {
    return false; // served as a file from the document root, app/
}
if ($path !== '/' && $path !== '/index.php') {
    http_response_code(404);
    echo "not found\n";
    return true;
}
// Which Roundcube request ran when (PHP's server logs only the static files):
// to compare with Dovecot's log of IMAP logins.
file_put_contents('php://stderr', sprintf("[%s] %s %s task=%s action=%s\n", date('H:i:s'), getmypid(),
    $_SERVER['REQUEST_METHOD'], $_GET['_task'] ?? $_POST['_task'] ?? '', $_GET['_action'] ?? $_POST['_action'] ?? ''));
chdir(INSTALL_PATH);
require INSTALL_PATH . 'index.php';
"""


class Roundcube:
    """Roundcube for `world` (a started MailWorld with Postfix)."""

    def __init__(self, world, plugins=("pam_mfa",)):
        check_dependencies()
        self.world = world
        self.dir = world.dir / "roundcube"
        self.app = self.dir / "app"
        self.plugins = list(plugins)
        self.port = None
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    @property
    def errors_log(self):
        return self.app / "logs" / "errors.log"

    def _layout(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.app.mkdir(parents=True)
        for name in ("program", "skins", "SQL", "index.php"):
            (self.app / name).symlink_to(RC_SHARE / name)
        plugins = self.app / "plugins"
        plugins.mkdir()
        for name in ("jqueryui", "filesystem_attachments"):
            (plugins / name).symlink_to(RC_SHARE / "plugins" / name)
        (plugins / "pam_mfa").symlink_to(PLUGIN)
        for d in ("config", "logs", "temp"):
            (self.app / d).mkdir()
        # The package's defaults (not written by debconf), under our config.
        for name in ("defaults.inc.php", "mimetypes.php"):
            (self.app / "config" / name).symlink_to(RC_ETC / name)
        (self.dir / "router.php").write_text(ROUTER)
        w = self.world
        ssl_off = "['verify_peer' => false, 'verify_peer_name' => false, 'allow_self_signed' => true]"
        bind = f"['bindto' => {php_string(WEBMAIL_IP + ':0')}]"
        config = f"""<?php
// Test instance of tests/e2e/roundcube.py; everything in {self.dir}.
$config = [];
$config['db_dsnw'] = {php_string('sqlite:///' + str(self.dir / 'roundcube.db') + '?mode=0600')};
$config['imap_host'] = {php_string(f"127.0.0.1:{w.ports['imap']}")};
$config['smtp_host'] = {php_string(f"tls://127.0.0.1:{w.ports['submission']}")};
$config['smtp_user'] = '%u';
$config['smtp_pass'] = '%p';
$config['smtp_helo_host'] = 'webmail.test';
// The webmail server's own address: Dovecot sees PAM_RHOST {WEBMAIL_IP}.
$config['imap_conn_options'] = ['socket' => {bind}];
// The test Postfix has a throw-away self-signed certificate.
$config['smtp_conn_options'] = ['socket' => {bind}, 'ssl' => {ssl_off}];
$config['des_key'] = {php_string(secrets.token_urlsafe(18)[:24])};
$config['plugins'] = [{", ".join(php_string(p) for p in self.plugins)}];
$config['skin'] = 'elastic';
$config['language'] = 'en_US';
$config['product_name'] = 'pam_mfa test webmail';
$config['support_url'] = '';
$config['log_driver'] = 'file';
$config['log_dir'] = {php_string(str(self.app / 'logs') + '/')};
$config['temp_dir'] = {php_string(str(self.app / 'temp') + '/')};
$config['log_logins'] = true;
$config['enable_installer'] = false;
$config['enable_spellcheck'] = false;
$config['create_default_folders'] = true;
$config['login_autocomplete'] = 0;
$config['session_lifetime'] = 60;
// Never in a real deployment, and not here: they would log the password+code.
$config['imap_debug'] = false;
$config['smtp_debug'] = false;
"""
        (self.app / "config" / "config.inc.php").write_text(config)
        os.chmod(self.app / "config" / "config.inc.php", 0o600)

    def start(self):
        self._layout()
        self.port = mailworld.free_port()
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS="4")
        self.server_log = open(self.dir / "php-server.log", "w")
        self.proc = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{self.port}", "-t", str(self.app), str(self.dir / "router.php")],
            cwd=self.app,
            stdin=subprocess.DEVNULL,
            stdout=self.server_log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        mailworld.LIVE.add(self)
        for _ in range(100):
            if self.proc.poll() is not None:
                raise RuntimeError(f"php -S exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"php -S is not listening on 127.0.0.1:{self.port}\n{self.logs()}")
        return self

    def error_lines(self):
        try:
            return self.errors_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def logs(self, since=0):
        """Roundcube's own errors.log (from line `since`) and the end of the
        PHP server's log, for failure messages."""
        out = f"--- {self.errors_log} (from line {since + 1})\n" + "\n".join(self.error_lines()[since:]) + "\n"
        p = self.dir / "php-server.log"
        try:
            lines = p.read_text(errors="replace").splitlines()
            out += f"--- {p} (last lines)\n" + "\n".join(lines[-15:]) + "\n"
        except FileNotFoundError:
            pass
        return out

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
        self.proc = None
        if getattr(self, "server_log", None):
            self.server_log.close()
            self.server_log = None
        mailworld.LIVE.discard(self)


class Browser:
    """A headless Chromium with a profile of its own, through chromedriver."""

    def __init__(self, folder, name):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.name = name
        self.profile = Path(folder) / f"chromium-{name}"
        self.profile.mkdir(parents=True, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in (
            "--headless=new",
            "--no-sandbox",  # root, in a container
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1400,900",
            f"--user-data-dir={self.profile}",
            "--no-first-run",
            "--password-store=basic",
        ):
            opts.add_argument(arg)
        service = Service("/usr/bin/chromedriver", log_path=str(Path(folder) / f"chromedriver-{name}.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(60)
        mailworld.LIVE.add(self)

    def cleanup(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001 - best effort at the end
                pass
            self.driver = None
        mailworld.LIVE.discard(self)
