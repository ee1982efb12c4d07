//! Connections to PostgreSQL inside a PAM host: the rules of issue 13 about
//! threads, forks, time limits and reuse live here, so that the store code
//! above only says which statements to send.
//!
//! - **No thread outlives a call.** Each connection owns a tokio
//!   current-thread runtime (no worker threads; the runtime is driven only
//!   inside [`Conn::run`], by the calling thread). tokio-postgres would
//!   resolve host names on tokio's blocking pool, a thread that lingers
//!   after the call: names are resolved here, in the calling thread (std's
//!   `ToSocketAddrs`), and every TCP attempt is given its address as
//!   `hostaddr` (the name stays `host`, for the certificate check). The
//!   resolver's own limits (resolv.conf) bound that lookup, not
//!   `connect_timeout`: where every second counts, name the servers by
//!   address (`hostaddr`) or in /etc/hosts.
//! - **Time limits.** Every connect and every statement runs under a
//!   client-side `tokio::time::timeout` (`connect_timeout`,
//!   `statement_timeout`), whatever the network does; the server is told the
//!   same `statement_timeout`, so it stops work nobody waits for. A
//!   connection whose statement timed out is dropped (its state unknown).
//! - **Reuse.** A process-wide pool of idle connections: a call takes one
//!   (checking it is still open) or opens one, and gives it back when done.
//!   Dovecot's auth workers run many logins each; connecting (and TLS) once
//!   per process rather than per login is most of the backend's speed.
//! - **fork.** Every connection remembers the pid that opened it. A child
//!   never uses or drops its parent's connections: they are leaked
//!   (`mem::forget`). Dropping one would deregister its socket from an
//!   epoll instance the child shares with the parent (breaking the parent's
//!   connection) and could send bytes on the parent's socket.

use super::sql;
use crate::pgurl::{ConnInfo, Host, RootCert, SessionAttrs, SslMode};
use futures_util::FutureExt;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::{MakeTlsConnector, TlsStream};
use std::future::{Future, poll_fn};
use std::net::{IpAddr, ToSocketAddrs};
use std::pin::pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::Poll;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Connection, Socket, Statement};
use zeroize::Zeroizing;

type PgConnection = Connection<Socket, TlsStream<Socket>>;
pub type PgError = tokio_postgres::Error;

/// Idle connections kept per process. A Dovecot auth worker runs one login
/// at a time and so never holds more than one. A threaded host holds as
/// many as its logins overlapped, up to this: below its concurrency, every
/// login past the limit would open and close a connection of its own (SCRAM,
/// TLS, the schema check: about 2 ms of CPU, most of it the server's), which
/// made eight threads cost 3.5 times as much CPU per login as eight
/// processes. Connections are only ever opened by logins that needed them,
/// so a host that never overlaps more than one keeps one.
const MAX_IDLE: usize = 8;

/// A server-side safety net: a transaction left idle this long (a process
/// stopped while holding a mailbox's row lock) is ended by the server, so
/// that mailbox's logins are not blocked for ever.
const IDLE_IN_TRANSACTION_MS: u64 = 60_000;

/// Where, as whom and how long to wait: the same for every connection of
/// one store.
pub struct Target {
    pub info: ConnInfo,
    pub password: Option<Zeroizing<String>>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// Connections are pooled per target: a process may use two stores
    /// (mfa-ctl store copy, the tests).
    pub pool_key: String,
}

/// The statements every connection prepares once (see [`sql`]).
pub struct Stmts {
    pub begin: Statement,
    pub commit: Statement,
    pub open_login: Statement,
    pub read_domain: Statement,
    pub write_domain: Statement,
    pub list_domains: Statement,
    pub read_mailbox: Statement,
    pub lock_mailbox: Statement,
    pub create_empty: Statement,
    pub insert_mailbox: Statement,
    pub update_state: Statement,
    pub update_all: Statement,
    pub delete_mailbox: Statement,
    pub list_page: Statement,
    pub mailbox_domains: Statement,
}

const STATEMENTS: [&str; 15] = [
    sql::BEGIN,
    sql::COMMIT,
    sql::OPEN_LOGIN,
    sql::READ_DOMAIN,
    sql::WRITE_DOMAIN,
    sql::LIST_DOMAINS,
    sql::READ_MAILBOX,
    sql::LOCK_MAILBOX,
    sql::CREATE_EMPTY,
    sql::INSERT_MAILBOX,
    sql::UPDATE_STATE,
    sql::UPDATE_ALL,
    sql::DELETE_MAILBOX,
    sql::LIST_PAGE,
    sql::MAILBOX_DOMAINS,
];

impl Stmts {
    fn from_vec(v: Vec<Statement>) -> Option<Stmts> {
        let [
            begin,
            commit,
            open_login,
            read_domain,
            write_domain,
            list_domains,
            read_mailbox,
            lock_mailbox,
            create_empty,
            insert_mailbox,
            update_state,
            update_all,
            delete_mailbox,
            list_page,
            mailbox_domains,
        ]: [Statement; 15] = v.try_into().ok()?;
        Some(Stmts {
            begin,
            commit,
            open_login,
            read_domain,
            write_domain,
            list_domains,
            read_mailbox,
            lock_mailbox,
            create_empty,
            insert_mailbox,
            update_state,
            update_all,
            delete_mailbox,
            list_page,
            mailbox_domains,
        })
    }
}

/// What the schema check at connect found.
pub struct SchemaInfo {
    /// `None`: no pam_mfa tables.
    pub version: Option<i64>,
    pub key_check: Option<Vec<u8>>,
}

/// Why a call on a connection failed.
pub enum Failure {
    /// The connection is gone or in a state nobody knows (closed by the
    /// server, network error, no answer in time): it has been dropped. A
    /// statement sent on it may or may not have been carried out.
    Broken { why: String, timed_out: bool },
    /// The server answered with an error; the connection is still good.
    Db(PgError),
}

impl Failure {
    fn timed_out(limit: Duration) -> Failure {
        Failure::Broken {
            why: format!("no answer within {}s", limit.as_secs_f32()),
            timed_out: true,
        }
    }
}

/// One connection, its runtime and its prepared statements.
pub struct Conn {
    /// `None` once dropped for being broken. Boxed: a lock holds a `Conn`,
    /// and the runtime is large.
    inner: Option<Box<Inner>>,
}

/// Fields drop in order: statements and client before the connection, the
/// runtime that drives the socket last.
struct Inner {
    stmts: Option<Stmts>,
    client: Client,
    connection: PgConnection,
    pid: u32,
    pool_key: String,
    server: String,
    rt: tokio::runtime::Runtime,
}

impl Drop for Conn {
    /// In a forked child the connection is the parent's: leaked, never
    /// closed or deregistered (see the module's text).
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && inner.pid != std::process::id()
        {
            std::mem::forget(inner);
        }
    }
}

impl Conn {
    /// Opens a connection: the servers in order (starting with the one that
    /// answered last, so a dead first host costs one wait per process, not
    /// per login), each name's addresses in turn, each attempt within
    /// `connect_timeout`. Nothing is sent beyond the start-up.
    pub fn open(target: &Target) -> Result<Conn, OpenError> {
        static LAST_GOOD: AtomicUsize = AtomicUsize::new(0);
        if tokio::runtime::Handle::try_current().is_ok() {
            // Starting (or later dropping) a runtime inside another one
            // would panic the host process.
            return Err(OpenError {
                read_only: false,
                why: "pam_mfa was called from inside an async runtime; call it from a blocking thread".into(),
            });
        }
        let servers = &target.info.servers;
        let start = LAST_GOOD.load(Ordering::Relaxed);
        let mut tried = Vec::new();
        let mut all_read_only = true;
        for i in 0..servers.len() {
            let index = (start + i) % servers.len();
            let Some(server) = servers.get(index) else {
                continue;
            };
            let addrs: Vec<Option<IpAddr>> = match (&server.host, server.hostaddr) {
                (Host::Unix(_), _) => vec![None],
                (Host::Tcp(_), Some(a)) => vec![Some(a)],
                (Host::Tcp(name), None) => match (name.as_str(), server.port).to_socket_addrs() {
                    Ok(found) => {
                        let mut ips: Vec<Option<IpAddr>> = Vec::new();
                        for a in found {
                            if !ips.contains(&Some(a.ip())) {
                                ips.push(Some(a.ip()));
                            }
                        }
                        ips
                    }
                    Err(e) => {
                        all_read_only = false;
                        tried.push(format!("{}: cannot resolve the name ({e})", server.describe()));
                        continue;
                    }
                },
            };
            for addr in addrs {
                let shown = match addr {
                    Some(a) if server.hostaddr.is_none() => format!("{} ({a})", server.describe()),
                    _ => server.describe(),
                };
                match attempt(target, &server.host, addr, server.port, &shown) {
                    Ok(inner) => {
                        LAST_GOOD.store(index, Ordering::Relaxed);
                        return Ok(Conn {
                            inner: Some(Box::new(inner)),
                        });
                    }
                    Err((read_only, why)) => {
                        all_read_only &= read_only;
                        tried.push(format!("{shown}: {why}"));
                    }
                }
            }
        }
        Err(OpenError {
            read_only: all_read_only && !tried.is_empty(),
            why: tried.join(", then "),
        })
    }

    /// Whether the schema was checked and the statements prepared.
    pub fn is_ready(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.stmts.is_some())
    }

    /// Forgets the prepared statements (after init changed the schema): the
    /// next use checks the schema again.
    pub fn unready(&mut self) {
        if let Some(i) = self.inner.as_deref_mut() {
            i.stmts = None;
        }
    }

    fn ours(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.pid == std::process::id())
    }

    /// Checks the schema and, if its version is this build's, prepares every
    /// statement: one round trip, the version query and all the Parse
    /// messages pipelined.
    pub fn prepare(&mut self, limit: Duration) -> Result<SchemaInfo, Failure> {
        let (schema, prepared) = self.run_raw(limit, async |c: &Client| {
            let prepares = futures_util::future::try_join_all(STATEMENTS.map(|s| c.prepare(s)));
            let version = c.query_typed(sql::READ_SCHEMA, &[]);
            Ok(futures_util::future::join(version, prepares).await)
        })?;
        let info = match schema {
            Ok(rows) => match rows.first() {
                Some(row) => SchemaInfo {
                    version: Some(row.try_get(0).map_err(Failure::Db)?),
                    key_check: row.try_get(1).map_err(Failure::Db)?,
                },
                None => SchemaInfo {
                    version: None,
                    key_check: None,
                },
            },
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => SchemaInfo {
                version: None,
                key_check: None,
            },
            Err(e) => return Err(Failure::Db(e)),
        };
        if info.version == Some(sql::SCHEMA_VERSION) {
            let stmts = prepared
                .map_err(Failure::Db)
                .map(Stmts::from_vec)?
                .ok_or_else(|| Failure::Broken {
                    why: "the statements did not all prepare".into(),
                    timed_out: false,
                })?;
            if let Some(i) = self.inner.as_deref_mut() {
                i.stmts = Some(stmts);
            }
        }
        Ok(info)
    }

    /// Runs `f` with the prepared statements, within `limit`.
    pub fn run<T>(
        &mut self,
        limit: Duration,
        f: impl AsyncFnOnce(&Client, &Stmts) -> Result<T, PgError>,
    ) -> Result<T, Failure> {
        let out = match self.inner.as_deref_mut() {
            Some(Inner {
                stmts: Some(stmts),
                client,
                connection,
                rt,
                ..
            }) => block(rt, connection, limit, f(client, stmts)),
            _ => Err(Failure::Broken {
                why: "the connection is not ready".into(),
                timed_out: false,
            }),
        };
        self.forget_if_broken(out)
    }

    /// [`Conn::run`] before the statements are prepared (schema check, init).
    pub fn run_raw<T>(
        &mut self,
        limit: Duration,
        f: impl AsyncFnOnce(&Client) -> Result<T, PgError>,
    ) -> Result<T, Failure> {
        let out = match self.inner.as_deref_mut() {
            Some(Inner {
                client, connection, rt, ..
            }) => block(rt, connection, limit, f(client)),
            None => Err(Failure::Broken {
                why: "the connection was closed".into(),
                timed_out: false,
            }),
        };
        self.forget_if_broken(out)
    }

    /// A connection that broke or did not answer in time is closed now: its
    /// state is unknown, it must never go back to the pool.
    /// Its message names the server it was connected to.
    fn forget_if_broken<T>(&mut self, out: Result<T, Failure>) -> Result<T, Failure> {
        match out {
            Err(Failure::Broken { why, timed_out }) => {
                let server = self.inner.take().map(|i| i.server.clone()).unwrap_or_default();
                Err(Failure::Broken {
                    why: format!("{server}: {why}"),
                    timed_out,
                })
            }
            other => other,
        }
    }
}

/// Runs `fut` (requests on the client) within `limit`, driving the
/// connection (the half that does the socket I/O) in the same task: no
/// spawned task, so nothing runs between calls.
fn block<T>(
    rt: &tokio::runtime::Runtime,
    connection: &mut PgConnection,
    limit: Duration,
    fut: impl Future<Output = Result<T, PgError>>,
) -> Result<T, Failure> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // block_on inside a runtime would panic the host process.
        return Err(Failure::Broken {
            why: "pam_mfa was called from inside an async runtime; call it from a blocking thread".into(),
            timed_out: false,
        });
    }
    rt.block_on(async {
        match tokio::time::timeout(limit, drive(connection, fut)).await {
            Err(_) => Err(Failure::timed_out(limit)),
            Ok(Err(broken)) => Err(broken),
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(classify(e)),
        }
    })
}

/// Polls `fut` and the connection together until `fut` is done. The
/// connection ending first means the server closed it or the network
/// broke; a result `fut` got in the same turn still counts (a COMMIT whose
/// answer arrived just before the close did commit).
async fn drive<F: Future>(connection: &mut PgConnection, fut: F) -> Result<F::Output, Failure> {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match connection.poll_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(end) => {
                if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Ok(out));
                }
                Poll::Ready(Err(Failure::Broken {
                    why: match end {
                        Ok(()) => "the server closed the connection".into(),
                        Err(e) => describe(&e),
                    },
                    timed_out: false,
                }))
            }
        }
    })
    .await
}

/// A failed statement: the connection is broken (closed, I/O error, the
/// server shutting down) or it merely answered with an error.
fn classify(e: PgError) -> Failure {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let fatal = e.code().is_some_and(|c| {
        c.code().starts_with("08")
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
    });
    if e.is_closed() || io || fatal {
        Failure::Broken {
            why: describe(&e),
            timed_out: false,
        }
    } else {
        Failure::Db(e)
    }
}

/// An error in words: the server's message and SQLSTATE, or the client's
/// error with its causes. Neither holds a secret: none is sent as text.
pub fn describe(e: &PgError) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Why no server could be used; `read_only`: every one that answered only
/// accepts reads.
pub struct OpenError {
    pub read_only: bool,
    pub why: String,
}

/// One connection attempt to one address, within `connect_timeout`. The
/// error says whether the server refused for being read-only.
fn attempt(
    target: &Target,
    host: &Host,
    addr: Option<IpAddr>,
    port: u16,
    shown: &str,
) -> Result<Inner, (bool, String)> {
    let info = &target.info;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| (false, format!("cannot start the I/O runtime: {e}")))?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(&info.user)
        .dbname(&info.dbname)
        .port(port)
        .connect_timeout(target.connect_timeout)
        .application_name(info.application_name.as_deref().unwrap_or("pam_mfa"))
        .options(format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
            target.statement_timeout.as_millis()
        ))
        .target_session_attrs(match info.target_session_attrs {
            SessionAttrs::Any => tokio_postgres::config::TargetSessionAttrs::Any,
            SessionAttrs::ReadWrite => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
        });
    match host {
        // libpq does not use TLS on a Unix socket either, whatever sslmode
        // says: the peer is on this machine.
        Host::Unix(dir) => {
            cfg.host_path(dir).ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        Host::Tcp(name) => {
            cfg.host(name).ssl_mode(match info.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
            if let Some(a) = addr {
                cfg.hostaddr(a);
            }
        }
    }
    if let Some(pw) = &target.password {
        // tokio-postgres keeps its own copy (not zeroized) until `cfg` is
        // dropped at the end of this attempt.
        cfg.password(pw.as_bytes());
    }
    let tls = tls_connector(info).map_err(|why| (false, why))?;
    // The timer is made inside the runtime (tokio needs its context).
    let connected = rt.block_on(async { tokio::time::timeout(target.connect_timeout, cfg.connect(tls)).await });
    drop(cfg);
    match connected {
        Err(_) => Err((
            false,
            format!(
                "no answer within {}s (postgres.connect_timeout)",
                target.connect_timeout.as_secs_f32()
            ),
        )),
        Ok(Err(e)) => {
            // tokio-postgres's refusal of a read-only server under
            // target_session_attrs=read-write.
            let read_only = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
            let why = if read_only {
                "it only accepts reads (a standby?)".to_string()
            } else {
                describe(&e)
            };
            Err((read_only, why))
        }
        Ok(Ok((client, connection))) => Ok(Inner {
            stmts: None,
            client,
            connection,
            pid: std::process::id(),
            pool_key: target.pool_key.clone(),
            server: shown.to_string(),
            rt,
        }),
    }
}

/// The TLS side of `sslmode` and `sslrootcert`, as libpq does it:
/// `verify-full` checks the chain and the host name, `verify-ca` only the
/// chain, `require` only encrypts (but checks the chain when `sslrootcert`
/// is given, as libpq does), `prefer` encrypts when the server can.
fn tls_connector(info: &ConnInfo) -> Result<MakeTlsConnector, String> {
    let err = |what: &str, e: openssl::error::ErrorStack| format!("{what}: {e}");
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| err("cannot set up TLS", e))?;
    let check_chain = match info.sslmode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        SslMode::Require => info.sslrootcert.is_some(),
        SslMode::Prefer | SslMode::Disable => false,
    };
    if check_chain {
        match &info.sslrootcert {
            Some(RootCert::File(path)) => b.set_ca_file(path).map_err(|e| {
                err(
                    &format!(
                        "cannot read sslrootcert {} (it must be a PEM file of CA certificates)",
                        path.display()
                    ),
                    e,
                )
            })?,
            Some(RootCert::System) | None => b
                .set_default_verify_paths()
                .map_err(|e| err("cannot load the system's trusted CAs", e))?,
        }
        b.set_verify(SslVerifyMode::PEER);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    let mut connector = MakeTlsConnector::new(b.build());
    let check_name = info.sslmode == SslMode::VerifyFull;
    connector.set_callback(move |c, _| {
        c.set_verify_hostname(check_name);
        Ok(())
    });
    Ok(connector)
}

static POOL: Mutex<Vec<Conn>> = Mutex::new(Vec::new());
/// The process that last used [`POOL`].
static POOL_PID: AtomicU32 = AtomicU32::new(0);

/// The pool, if it can be had. In a new process (a forked child) the mutex
/// may have been held by a parent's thread at the fork, and would stay
/// locked for ever: only tried there, and without it the call just opens
/// and closes its own connection.
fn pool() -> Option<MutexGuard<'static, Vec<Conn>>> {
    let me = std::process::id();
    let mut guard = if POOL_PID.load(Ordering::Acquire) == me {
        POOL.lock().unwrap_or_else(PoisonError::into_inner)
    } else {
        match POOL.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        }
    };
    POOL_PID.store(me, Ordering::Release);
    // A child's inherited connections are leaked here (Conn's Drop).
    guard.retain(|c| c.ours());
    Some(guard)
}

/// An idle connection of `target`'s that is still open, if the pool has one.
pub fn take(target: &Target) -> Option<Conn> {
    loop {
        let mut conn = {
            let mut idle = pool()?;
            let at = idle
                .iter()
                .rposition(|c| c.inner.as_ref().is_some_and(|i| i.pool_key == target.pool_key))?;
            idle.remove(at)
        };
        if conn.alive() {
            return Some(conn);
        }
    }
}

/// Gives a connection back for later calls; a broken one, or one over
/// [`MAX_IDLE`], is closed (outside the pool's lock).
pub fn give_back(conn: Conn) {
    if !conn.ours() || conn.inner.as_ref().is_none_or(|i| i.client.is_closed()) {
        return;
    }
    let evicted = match pool() {
        Some(mut idle) => {
            idle.push(conn);
            (idle.len() > MAX_IDLE).then(|| idle.remove(0))
        }
        None => Some(conn),
    };
    drop(evicted);
}

impl Conn {
    /// Whether an idle connection is still open: the server may have closed
    /// it (restart, failover, idle timeout) since it was last used. The
    /// runtime first looks at the socket without waiting (the yield lets
    /// its I/O driver poll once); the connection then reads whatever came.
    fn alive(&mut self) -> bool {
        if tokio::runtime::Handle::try_current().is_ok() {
            return false;
        }
        let Some(Inner {
            client, connection, rt, ..
        }) = self.inner.as_deref_mut()
        else {
            return false;
        };
        if client.is_closed() {
            return false;
        }
        rt.block_on(async {
            tokio::task::yield_now().await;
            poll_fn(|cx| Poll::Ready(connection.poll_unpin(cx).is_pending())).await
        })
    }

    /// Ends the connection's transaction without waiting for the answer,
    /// then gives it back: the ROLLBACK is on the wire before the next
    /// statement (requests go out in order; its answer is read and dropped
    /// by the next call). A lock that found nothing, or was dropped without
    /// a write, so costs no round trip.
    pub fn roll_back_and_give_back(mut self) {
        if !self.ours() || tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        let Some(Inner {
            client, connection, rt, ..
        }) = self.inner.as_deref_mut()
        else {
            return;
        };
        let sent = rt.block_on(async {
            // A simple query: it needs no prepared statement, so it also ends
            // a transaction on a connection whose statements are not ready.
            let mut rollback = pin!(client.batch_execute("ROLLBACK"));
            // The first poll queues the request; the connection's poll
            // writes and flushes it.
            let _ = poll_fn(|cx| Poll::Ready(rollback.as_mut().poll(cx).is_ready())).await;
            poll_fn(|cx| Poll::Ready(connection.poll_unpin(cx).is_pending())).await
        });
        if sent {
            give_back(self);
        }
    }
}
