//! The cases measured at each size, as one list, so what the table compares
//! (and in which order the runs share a store's fresh mailboxes) is read in
//! one place.

use crate::cache::Cache;
use crate::opts::Opts;
use crate::run::RunSpec;
use crate::stores::Kind;

/// A run as (kind, case, service, durable, logins, processes, threads).
type SpecRow<'a> = (Kind, &'a str, Option<&'a str>, bool, u64, u64, u64);

/// The runs at size `n`; the rows with a password file only at the smallest
/// size, the only one that writes that file in full.
pub fn at_size(opts: &Opts, n: u64, smallest: u64) -> Vec<RunSpec<'static>> {
    let l = opts.logins;
    let p = opts.workers;
    // pam_oath rewrites its whole users file on every login: sample fewer at large N.
    let oath_l = (20_000_000 / n).clamp(20, l.max(20)).min(l);
    // (kind, case, service, durable, logins, processes, threads); all
    // from a warm cache (see `Cache`) unless set otherwise below.
    let table: Vec<SpecRow<'static>> = vec![
        (Kind::Floor, "floor: HMAC + durable write", None, true, l, 1, 1),
        (Kind::Floor, "floor: HMAC + durable write", None, true, l, p, 1),
        (Kind::Floor, "floor: HMAC + relaxed write", None, false, l, 1, 1),
        (Kind::Permit, "libpam + pam_permit only", Some("permit"), false, l, 1, 1),
        (
            Kind::Permit,
            "libpam + pam_permit, pam_mfa.so loaded not called",
            Some("mfa-loaded"),
            false,
            l,
            1,
            1,
        ),
        (Kind::Mfa, "pam_mfa durable", Some("mfa-durable"), true, l, 1, 1),
        (Kind::Ga, "google-authenticator", Some("ga"), true, l, 1, 1),
        (Kind::Oath, "pam_oath", Some("oath"), true, oath_l, 1, 1),
        (Kind::Mfa, "pam_mfa relaxed", Some("mfa-relaxed"), false, l, 1, 1),
        (Kind::Mfa, "pam_mfa durable", Some("mfa-durable"), true, l, p, 1),
        (Kind::Mfa, "pam_mfa durable", Some("mfa-durable"), true, l, 1, p),
        (Kind::Ga, "google-authenticator", Some("ga"), true, l, p, 1),
        (Kind::Oath, "pam_oath", Some("oath"), true, oath_l, p, 1),
        (Kind::Mfa, "pam_mfa relaxed", Some("mfa-relaxed"), false, l, p, 1),
    ];
    let mut specs: Vec<RunSpec<'static>> = table
        .into_iter()
        .map(|(kind, case, service, durable, count, procs, threads)| RunSpec {
            cache: Cache::Warm,
            kind,
            case,
            service,
            durable,
            count,
            procs,
            threads,
            process_per_login: false,
        })
        .collect();
    if opts.postgres {
        // pam_mfa on PostgreSQL, right after the file store's rows: over the
        // Unix socket, and over TCP to 127.0.0.1 (with TLS, verify-full: the
        // only TCP pam_mfa takes); one process, then `p` processes (each
        // keeps its connection for all its logins, as an auth worker does).
        for procs in [1, p] {
            for (case, service) in [
                ("pam_mfa postgres socket", "mfa-pg-socket"),
                ("pam_mfa postgres TCP+TLS", "mfa-pg-tls"),
            ] {
                specs.push(warm(Kind::Pg, case, service, l, procs, 1));
            }
        }
        // Threads of one process share its pool of idle connections.
        specs.push(warm(Kind::Pg, "pam_mfa postgres socket", "mfa-pg-socket", l, 1, p));
    }
    // Short-lived processes: every login in a new process, which loads the
    // module and, on PostgreSQL, connects (SCRAM, TLS) before its login.
    let once = l.min(200);
    let mut fresh = vec![(Kind::Mfa, "pam_mfa durable, new process per login", "mfa-durable")];
    if opts.postgres {
        fresh.push((
            Kind::Pg,
            "pam_mfa postgres socket, new process per login",
            "mfa-pg-socket",
        ));
        fresh.push((
            Kind::Pg,
            "pam_mfa postgres TCP+TLS, new process per login",
            "mfa-pg-tls",
        ));
    }
    for (kind, case, service) in fresh {
        specs.push(RunSpec {
            process_per_login: true,
            ..warm(kind, case, service, once, 1, 1)
        });
    }
    // The same single-thread logins from a cold cache, for the three
    // that matter most (see `Cache`).
    for (kind, case, service) in [
        (Kind::Floor, "floor: HMAC + durable write, cold cache", None),
        (Kind::Mfa, "pam_mfa durable, cold cache", Some("mfa-durable")),
        (Kind::Ga, "google-authenticator, cold cache", Some("ga")),
    ] {
        specs.push(RunSpec {
            cache: Cache::Cold,
            kind,
            case,
            service,
            durable: true,
            count: l.min(1000),
            procs: 1,
            threads: 1,
            process_per_login: false,
        });
    }
    if n == smallest {
        for (kind, case, service) in [
            (Kind::Mfa, "pam_mfa durable + pam_pwdfile", "mfa-pwdfile"),
            (Kind::Ga, "google-authenticator + pam_pwdfile", "ga-pwdfile"),
        ] {
            specs.push(RunSpec {
                cache: Cache::Warm,
                kind,
                case,
                service: Some(service),
                durable: true,
                count: l,
                procs: 1,
                threads: 1,
                process_per_login: false,
            });
        }
    }
    specs
}

/// A run from a warm cache through a PAM service.
fn warm(
    kind: Kind,
    case: &'static str,
    service: &'static str,
    count: u64,
    procs: u64,
    threads: u64,
) -> RunSpec<'static> {
    RunSpec {
        kind,
        cache: Cache::Warm,
        case,
        service: Some(service),
        durable: true,
        count,
        procs,
        threads,
        process_per_login: false,
    }
}
