//! The PostgreSQL connection string of `[postgres] url`, read and checked
//! here, once, for the configuration (`check`) and for the connection code
//! (`parse`). It takes libpq's two forms, the URL
//! (`postgresql://user@db1,db2:5432/pam_mfa?sslmode=verify-full`) and
//! `key=value` pairs (`host=db1,db2 user=pam_mfa sslmode=verify-full`), with
//! several hosts and a Unix socket folder as a host.
//!
//! Every key pam_mfa does not implement is refused by name rather than
//! ignored: an ignored `sslmode`-like key would silently weaken what the
//! admin asked for. A password is refused too: the configuration is
//! world-readable, so the password belongs in `postgres.password_file`.
//! Independent of the store, so that `config.rs` can call it.

use std::net::IpAddr;
use std::path::PathBuf;

/// The port when none is given (libpq's default).
pub const DEFAULT_PORT: u16 = 5432;
/// The socket folder when no host is given: Debian's libpq default.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

const PASSWORD_REFUSED: &str = "the password does not belong in the configuration, which others can read: put it alone \
     in a file named by postgres.password_file (0600, owned by root)";

/// The keys pam_mfa understands, for messages.
const SUPPORTED: &str =
    "host, hostaddr, port, dbname, user, sslmode, sslrootcert, target_session_attrs, application_name";

/// Where one server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A name or an address, reached over TCP.
    Tcp(String),
    /// The folder of the server's Unix socket (`.s.PGSQL.PORT` inside it).
    Unix(PathBuf),
}

/// One server to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: Host,
    /// The address to connect to instead of resolving `host` (which is then
    /// only the name the certificate must carry).
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
}

impl Server {
    /// The server in words, for messages: `db1.example.net:5432`,
    /// `[2001:db8::1]:5432`, `/run/postgresql (port 5432)`.
    pub fn describe(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Host::Tcp(h) => format!("{h}:{}", self.port),
            Host::Unix(dir) => format!("{} (port {})", dir.display(), self.port),
        }
    }
}

/// libpq's `sslmode`, all of it (tokio-postgres itself knows only the first
/// three; the connection code adds the certificate checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    /// The certificate chain is checked against `sslrootcert`, not its name.
    VerifyCa,
    /// The chain and the host name are checked.
    VerifyFull,
}

/// The certificates a server's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted CAs.
    System,
}

/// `target_session_attrs`: the values that make sense for a store that
/// logins write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    /// Only a server that accepts writes (the primary): a standby is skipped.
    ReadWrite,
}

/// A parsed, checked connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Tried in this order; never empty.
    pub servers: Vec<Server>,
    pub user: String,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<RootCert>,
    pub target_session_attrs: SessionAttrs,
    pub application_name: Option<String>,
}

impl ConnInfo {
    /// Who and where, for messages (never holds a secret: none is accepted).
    pub fn describe(&self) -> String {
        let servers: Vec<String> = self.servers.iter().map(Server::describe).collect();
        format!("{} as {} on {}", self.dbname, self.user, servers.join(", "))
    }
}

/// Whether `url` is a connection string pam_mfa can use; the error says
/// what is wrong and what to do.
pub fn check(url: &str) -> Result<(), String> {
    parse(url).map(|_| ())
}

/// The connection string, parsed and checked.
pub fn parse(url: &str) -> Result<ConnInfo, String> {
    let url = url.trim();
    let pairs = if let Some(rest) = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
    {
        parse_uri(rest)?
    } else if let Some((scheme, _)) = url.split_once("://")
        && !scheme.contains(['=', ' '])
    {
        return Err(format!(
            "a URL must start with postgresql:// or postgres://, not {}://; or write key=value pairs (host=... dbname=...)",
            scheme.escape_default()
        ));
    } else {
        parse_keyword_value(url)?
    };
    build(pairs)
}

/// `key=value` pairs as given, in order; later ones win, as in libpq.
type Pairs = Vec<(String, String)>;

fn parse_uri(rest: &str) -> Result<Pairs, String> {
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let mut pairs = Pairs::new();
    let hosts = match authority.split_once('@') {
        Some((userinfo, hosts)) => {
            if userinfo.contains(':') {
                return Err(PASSWORD_REFUSED.into());
            }
            if !userinfo.is_empty() {
                pairs.push(("user".into(), decode(userinfo, "the user name")?));
            }
            hosts
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let mut names = Vec::new();
        let mut ports = Vec::new();
        for spec in hosts.split(',') {
            let (host, port) = split_host_port(spec)?;
            names.push(decode(host, "a host")?);
            ports.push(port.to_string());
        }
        pairs.push(("host".into(), names.join(",")));
        if ports.iter().any(|p| !p.is_empty()) {
            pairs.push(("port".into(), ports.join(",")));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        pairs.push(("dbname".into(), decode(db, "the database name")?));
    }
    for param in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = param.split_once('=') else {
            return Err(format!(
                "the URL parameter {:?} has no value: write key=value",
                param.escape_default().to_string()
            ));
        };
        pairs.push((decode(k, "a parameter name")?, decode(v, "a parameter value")?));
    }
    Ok(pairs)
}

/// `host[:port]` or `[v6]:port`; the port may be empty.
fn split_host_port(spec: &str) -> Result<(&str, &str), String> {
    if let Some(inner) = spec.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(format!("the host {spec:?} opens a [ but does not close it"));
        };
        return match after {
            "" => Ok((addr, "")),
            _ => after
                .strip_prefix(':')
                .map(|p| (addr, p))
                .ok_or_else(|| format!("unexpected text after ] in the host {spec:?}: write [address]:port")),
        };
    }
    Ok(spec.split_once(':').unwrap_or((spec, "")))
}

/// Percent-decoding, as libpq does for every part of a URL (so that a
/// socket folder can be a host: `%2Frun%2Fpostgresql`).
fn decode(text: &str, what: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("{what} in the URL has a % not followed by two hex digits: write %25 for a %")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what} in the URL is not UTF-8 once %-decoded"))
}

/// libpq's `key = value` form: values may be single-quoted, and a backslash
/// takes the next character as it is.
fn parse_keyword_value(text: &str) -> Result<Pairs, String> {
    let mut pairs = Pairs::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "{:?} is not followed by =: write key=value pairs separated by spaces, or a postgresql:// URL",
                key.escape_default().to_string()
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("the value of {key} opens a ' quote that is never closed")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// A comma-separated list, each element trimmed.
fn list(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).collect()
}

fn build(pairs: Pairs) -> Result<ConnInfo, String> {
    let mut host = None;
    let mut hostaddr = None;
    let mut port = None;
    let mut user = None;
    let mut dbname = None;
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut attrs = None;
    let mut application_name = None;
    for (key, value) in pairs {
        let slot = match key.as_str() {
            "host" => &mut host,
            "hostaddr" => &mut hostaddr,
            "port" => &mut port,
            "user" => &mut user,
            "dbname" => &mut dbname,
            "sslmode" => &mut sslmode,
            "sslrootcert" => &mut sslrootcert,
            "target_session_attrs" => &mut attrs,
            "application_name" => &mut application_name,
            "password" => return Err(PASSWORD_REFUSED.into()),
            "passfile" => {
                return Err(
                    "passfile is not read by pam_mfa: put the password alone in a file named by postgres.password_file \
                     (0600, owned by root)"
                        .into(),
                );
            }
            "connect_timeout" => {
                return Err("connect_timeout does not go in the URL: set postgres.connect_timeout instead".into());
            }
            "options" => {
                return Err(
                    "options is not supported: pam_mfa sets the session's statement_timeout itself (postgres.statement_timeout)"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "the connection key {:?} is not supported by pam_mfa (it would be ignored, which could weaken the \
                     connection): remove it; supported keys: {SUPPORTED}",
                    other.escape_default().to_string()
                ));
            }
        };
        // libpq lets a later key win; here a second one is refused, so a
        // `sslmode=disable` appended to a URL cannot quietly undo the one
        // before it.
        if slot.is_some() {
            return Err(format!(
                "the connection key {:?} is given twice: give each key once",
                key.escape_default().to_string()
            ));
        }
        *slot = Some(value);
    }

    let user = user.filter(|u| !u.is_empty()).ok_or(
        "the URL names no database user: write postgresql://USER@host/dbname (or user=USER); logins use the role \
         pam_mfa_login, mfa-ctl pam_mfa_admin (see /usr/share/doc/pam-mfa/examples/postgres/roles.sql)",
    )?;
    let dbname = dbname.filter(|d| !d.is_empty()).unwrap_or_else(|| user.clone());

    let hosts: Vec<Host> = match host.as_deref() {
        None | Some("") => Vec::new(),
        Some(h) => list(h).into_iter().map(parse_host).collect::<Result<_, _>>()?,
    };
    let addrs: Vec<IpAddr> = match hostaddr.as_deref() {
        None | Some("") => Vec::new(),
        Some(a) => list(a)
            .into_iter()
            .map(|a| {
                a.parse().map_err(|_| {
                    format!(
                        "hostaddr {:?} is not an IP address: name hosts with host=, addresses with hostaddr=",
                        a.escape_default().to_string()
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(format!(
            "{} hosts but {} hostaddrs: give one address per host, in the same order",
            hosts.len(),
            addrs.len()
        ));
    }
    let count = hosts.len().max(addrs.len()).max(1);
    let ports: Vec<u16> = match port.as_deref() {
        None | Some("") => vec![DEFAULT_PORT],
        Some(p) => list(p)
            .into_iter()
            .map(|p| match p {
                "" => Ok(DEFAULT_PORT),
                _ => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    format!(
                        "port {:?} is not a port number (1 to 65535)",
                        p.escape_default().to_string()
                    )
                }),
            })
            .collect::<Result<_, _>>()?,
    };
    if ports.len() != 1 && ports.len() != count {
        return Err(format!(
            "{} ports for {count} hosts: give one port for all, or one per host in the same order",
            ports.len()
        ));
    }
    let mut servers = Vec::with_capacity(count);
    for i in 0..count {
        let addr = addrs.get(i).copied();
        let host = match (hosts.get(i), addr) {
            (Some(Host::Unix(_)), Some(_)) => {
                return Err(
                    "a Unix socket folder cannot have a hostaddr: remove the hostaddr, or name a TCP host".into(),
                );
            }
            (Some(h), _) => h.clone(),
            (None, Some(a)) => Host::Tcp(a.to_string()),
            (None, None) => Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR)),
        };
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(DEFAULT_PORT);
        servers.push(Server {
            host,
            hostaddr: addr,
            port,
        });
    }

    let sslmode = match sslmode.as_deref() {
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some("allow") => {
            return Err("sslmode=allow is not supported: use prefer (or verify-full, to be sure of the server)".into());
        }
        Some(other) => {
            return Err(format!(
                "sslmode={:?} is not a TLS mode: use disable, prefer, require, verify-ca or verify-full",
                other.escape_default().to_string()
            ));
        }
    };
    let sslrootcert = match sslrootcert.as_deref() {
        None | Some("") => None,
        Some("system") => Some(RootCert::System),
        Some(p) if p.starts_with('/') => Some(RootCert::File(PathBuf::from(p))),
        Some(p) => {
            return Err(format!(
                "sslrootcert={:?} must be an absolute path (or system, for the system's trusted CAs)",
                p.escape_default().to_string()
            ));
        }
    };
    if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && sslrootcert.is_none() {
        return Err(
            "sslmode=verify-ca and verify-full need the CA that signed the server's certificate: add \
                    sslrootcert=/path/to/root.crt (or sslrootcert=system for the system's trusted CAs)"
                .into(),
        );
    }
    // Logins trust what the database says (a missing row or a `disabled`
    // policy means "password alone"), so over TCP the server must prove who
    // it is: without a verified certificate anyone who can answer on its
    // address (a network attacker, a local user on a free port while the
    // real server is down) lets every mailbox in with the password alone.
    // A Unix socket is as trustworthy as its folder.
    let over_tcp = servers
        .iter()
        .any(|s| matches!(s.host, Host::Tcp(_)) || s.hostaddr.is_some());
    if over_tcp && !matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
        return Err(
            "a database reached over TCP must prove who it is, or whoever answers on its address could let every \
             mailbox in with the password alone: add sslmode=verify-full and sslrootcert=/path/to/root.crt (the CA \
             that signed the server's certificate), or reach it through its Unix socket folder (host=/run/postgresql)"
                .into(),
        );
    }
    let target_session_attrs = match attrs.as_deref() {
        None | Some("any") => SessionAttrs::Any,
        Some("read-write") => SessionAttrs::ReadWrite,
        Some(other) => {
            return Err(format!(
                "target_session_attrs={:?} is not supported: logins write to the database, so use read-write (or any)",
                other.escape_default().to_string()
            ));
        }
    };
    Ok(ConnInfo {
        servers,
        user,
        dbname,
        sslmode,
        sslrootcert,
        target_session_attrs,
        application_name,
    })
}

fn parse_host(h: &str) -> Result<Host, String> {
    if h.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(h)));
    }
    if h.is_empty() {
        return Ok(Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR)));
    }
    if h.starts_with('@') {
        return Err(
            "abstract Unix sockets (@name) are not supported: name the socket folder (host=/run/postgresql)".into(),
        );
    }
    if h.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/@?#&=".contains(c))
    {
        return Err(format!(
            "{:?} is not a host name, an address or a socket folder (an absolute path)",
            h.escape_default().to_string()
        ));
    }
    Ok(Host::Tcp(h.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(h: &str, port: u16) -> Server {
        Server {
            host: Host::Tcp(h.into()),
            hostaddr: None,
            port,
        }
    }

    #[test]
    fn url_with_two_hosts_and_tls() {
        let c = parse(
            "postgresql://pam_mfa@db1.example.net,db2.example.net:5433/mfa?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(c.servers, [tcp("db1.example.net", 5432), tcp("db2.example.net", 5433)]);
        assert_eq!((c.user.as_str(), c.dbname.as_str()), ("pam_mfa", "mfa"));
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert, Some(RootCert::File("/etc/ssl/ca.pem".into())));
        assert_eq!(c.target_session_attrs, SessionAttrs::ReadWrite);
        assert_eq!(
            c.describe(),
            "mfa as pam_mfa on db1.example.net:5432, db2.example.net:5433"
        );
    }

    #[test]
    fn one_port_for_all_hosts_and_ipv6() {
        let c = parse("postgres://u@a,[2001:db8::1]:6000/d?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[1].host, Host::Tcp("2001:db8::1".into()));
        assert_eq!(c.servers[1].describe(), "[2001:db8::1]:6000");
        // "a" had an empty port: the default, as libpq.
        assert_eq!(c.servers[0].port, 5432);
        let c = parse("host=a,b port=6000 user=u sslmode=verify-full sslrootcert=/ca.pem").unwrap();
        assert_eq!(c.servers, [tcp("a", 6000), tcp("b", 6000)]);
        assert_eq!(c.dbname, "u", "dbname defaults to the user, as in libpq");
    }

    #[test]
    fn unix_socket_folders() {
        let want = Host::Unix("/run/postgresql".into());
        for url in [
            "postgresql://pam_mfa@%2Frun%2Fpostgresql/pam_mfa",
            "postgresql://pam_mfa@/pam_mfa?host=/run/postgresql",
            "host=/run/postgresql user=pam_mfa dbname=pam_mfa",
        ] {
            let c = parse(url).unwrap();
            assert_eq!(c.servers[0].host, want, "{url}");
            assert_eq!(c.dbname, "pam_mfa", "{url}");
        }
        let c = parse("postgresql://pam_mfa@/pam_mfa").unwrap();
        assert_eq!(c.servers[0].host, Host::Unix(DEFAULT_SOCKET_DIR.into()));
    }

    #[test]
    fn keyword_values_quoted_and_escaped() {
        let c = parse(r"host = db1  user='pam mfa' dbname=my\ db application_name='it\'s' sslmode=verify-full sslrootcert=/ca.pem").unwrap();
        assert_eq!(c.user, "pam mfa");
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.application_name.as_deref(), Some("it's"));
        assert!(parse("user='open").unwrap_err().contains("never closed"));
        assert!(parse("user").unwrap_err().contains("not followed by ="));
    }

    #[test]
    fn hostaddr_pairs_with_host() {
        let c =
            parse("host=db1,db2 hostaddr=192.0.2.1,192.0.2.2 user=u sslmode=verify-full sslrootcert=/ca.pem").unwrap();
        assert_eq!(c.servers[1].hostaddr, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(c.servers[1].host, Host::Tcp("db2".into()));
        assert!(parse("host=db1,db2 hostaddr=192.0.2.1 user=u").is_err());
        assert!(parse("hostaddr=db1 user=u").unwrap_err().contains("not an IP address"));
        assert!(parse("host=a,b,c port=1,2 user=u").unwrap_err().contains("ports"));
    }

    /// The password never goes in the world-readable configuration, in any
    /// form; the message says where it belongs.
    #[test]
    fn password_in_url_is_refused() {
        for url in [
            "postgresql://pam_mfa:secret@db/pam_mfa",
            "postgresql://pam_mfa:@db/pam_mfa",
            "postgresql://pam_mfa@db/pam_mfa?password=secret",
            "host=db user=pam_mfa password=secret",
            "host=db user=pam_mfa password='a b'",
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains("postgres.password_file") && e.contains("0600"), "{url}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
        assert!(check("postgresql://pam_mfa@db/pam_mfa?sslmode=verify-full&sslrootcert=/ca.pem").is_ok());
    }

    #[test]
    fn unsupported_keys_are_refused_not_ignored() {
        for (url, says) in [
            ("host=db user=u sslcert=/x", "not supported"),
            ("host=db user=u sslmdoe=require", "not supported"),
            ("host=db user=u options=-cfoo=1", "statement_timeout"),
            ("host=db user=u connect_timeout=3", "postgres.connect_timeout"),
            ("host=db user=u passfile=/x", "postgres.password_file"),
            ("host=db user=u sslmode=allow", "prefer"),
            ("host=db user=u sslmode=verify-full", "sslrootcert"),
            ("host=db user=u sslmode=verify-ca sslrootcert=ca.pem", "absolute"),
            ("host=/run/postgresql user=u target_session_attrs=standby", "read-write"),
            ("host=db", "no database user"),
            ("mysql://u@db/x", "postgresql://"),
            ("postgresql://u@db/x?sslmode", "no value"),
            ("postgresql://u@db/%zz", "hex"),
            ("host=@abstract user=u", "abstract"),
            // Over TCP the server must show a verified certificate.
            ("host=db user=u", "sslmode=verify-full"),
            ("host=db user=u sslmode=require", "sslmode=verify-full"),
            ("postgresql://u@127.0.0.1:5432/x?sslmode=disable", "sslmode=verify-full"),
            ("host=/run/postgresql hostaddr=192.0.2.1 user=u", "hostaddr"),
            // A key given twice is refused: libpq would let the last win.
            (
                "postgresql://u@db/x?sslmode=verify-full&sslrootcert=/ca.pem&sslmode=disable",
                "given twice",
            ),
            ("host=db user=u user=v", "given twice"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
        let c = parse("host=db user=u sslmode=verify-ca sslrootcert=system").unwrap();
        assert_eq!((c.sslmode, c.sslrootcert), (SslMode::VerifyCa, Some(RootCert::System)));
    }

    proptest::proptest! {
        /// Any text: a connection string or an error, never a panic.
        #[test]
        fn parse_never_panics(text in "\\PC{0,120}") {
            let _ = parse(&text);
            let _ = parse(&format!("postgresql://{text}"));
        }
    }
}
