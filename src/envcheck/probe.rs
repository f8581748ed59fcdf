//! E14: a TCP connect to each `--probe HOST:PORT` the user names (Azure's WireServer
//! `168.63.129.16:80`, a proxy, a storage endpoint), with a timeout for the whole probe
//! (resolution and every address tried). The only network traffic
//! of the environment checks: none without probes.

use crate::report::model::{Check, CheckStatus};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const E14: &str = "E14";
const E14_TITLE: &str = "endpoint reachable";

/// At most this many resolved addresses are tried per endpoint.
const MAX_ADDRESSES: usize = 4;

/// A `HOST:PORT` split into host and port: `[v6]:port`, `name:port`, `a.b.c.d:port`.
pub fn parse_endpoint(spec: &str) -> Result<(String, u16), String> {
    let spec = spec.trim();
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or("an IPv6 address needs the form [ADDRESS]:PORT")?;
        (h, p)
    } else {
        let (h, p) = spec.rsplit_once(':').ok_or("no :PORT")?;
        if h.contains(':') {
            return Err("an IPv6 address needs the form [ADDRESS]:PORT".into());
        }
        (h, p)
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the host contains blanks or control characters".into());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err("port 0 cannot be connected to".into());
    }
    Ok((host.to_string(), port))
}

/// Resolve `host:port` within `timeout` (the resolver has no timeout of its own, so it runs
/// on a thread that is left behind if it hangs).
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("probe-resolve".into())
        .spawn(move || {
            let r = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
                .map_err(|e| e.to_string());
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start the resolver thread: {e}"));
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if addrs.is_empty() => Err(format!("{host} resolves to no address")),
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!(
            "resolving {host} took longer than {} ms",
            timeout.as_millis()
        )),
    }
}

/// One probe.
pub fn probe(spec: &str, timeout: Duration) -> Check {
    let c = |status, msg: String| Check::new(E14, E14_TITLE, status, msg);
    let (host, port) = match parse_endpoint(spec) {
        Ok(hp) => hp,
        Err(why) => {
            return c(
                CheckStatus::Fail,
                format!("invalid --probe {spec:?}: {why} (expected HOST:PORT)"),
            )
            .with_remedy("--probe HOST:PORT, e.g. --probe 168.63.129.16:80");
        }
    };
    // The whole probe (name resolution and every address) within `timeout`.
    let deadline = Instant::now() + timeout;
    let retry = format!("nc -vz -w {} {host} {port}", timeout.as_secs().max(1));
    let addrs = match resolve(&host, port, timeout) {
        Ok(a) => a,
        Err(why) => {
            return c(CheckStatus::Fail, format!("{host}:{port}: {why}"))
                .with_remedy(format!("getent ahosts {host}"));
        }
    };
    match connect_any(&addrs, deadline) {
        Ok((addr, took)) => c(
            CheckStatus::Pass,
            format!(
                "{host}:{port} accepts TCP connections ({addr}, {} ms)",
                took.as_millis()
            ),
        ),
        Err(errors) => c(
            CheckStatus::Fail,
            format!("{host}:{port} cannot be reached: {}", errors.join("; ")),
        )
        .with_remedy(retry),
    }
}

/// TCP-connect to the first of `addrs` (at most [`MAX_ADDRESSES`]) that answers before
/// `deadline`, each attempt given the time that is left: the address and how long its connect
/// took, or why each failed.
fn connect_any(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<(SocketAddr, Duration), Vec<String>> {
    let mut errors = Vec::new();
    for addr in addrs.iter().take(MAX_ADDRESSES) {
        let started = Instant::now();
        let left = deadline.saturating_duration_since(started);
        if left < Duration::from_millis(1) {
            errors.push(format!("{addr}: not tried, the probe's time is up"));
            continue;
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(_stream) => return Ok((*addr, started.elapsed())),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                errors.push(format!("{addr}: no answer within {} ms", left.as_millis()))
            }
            Err(e) => errors.push(format!("{addr}: {}", crate::sys::describe_io(&e))),
        }
    }
    Err(errors)
}

/// E14 for every probe, or one `skip` when none was asked for.
pub fn probes(opts: &super::EnvOptions) -> Vec<Check> {
    if opts.probes.is_empty() {
        return vec![Check::new(
            E14,
            E14_TITLE,
            CheckStatus::Skip,
            "no --probe HOST:PORT given: no network check is made",
        )];
    }
    opts.probes
        .iter()
        .map(|p| probe(p, opts.probe_timeout))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two addresses that never answer (2001:db8::/32 is documentation space, not routed):
    /// together they get the probe's time once, not once each.
    #[test]
    fn every_address_shares_one_deadline() {
        let addrs: Vec<SocketAddr> = ["[2001:db8::1]:80", "[2001:db8::2]:80", "192.0.2.1:9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let timeout = Duration::from_millis(400);
        let started = Instant::now();
        let result = connect_any(&addrs, started + timeout);
        let took = started.elapsed();
        assert!(result.is_err(), "{result:?}");
        assert!(took < timeout + Duration::from_millis(300), "{took:?}");
        assert_eq!(result.unwrap_err().len(), 3);
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(parse_endpoint("[::1]:22"), Ok(("::1".into(), 22)));
        assert!(parse_endpoint("::1:22").is_err());
        assert!(parse_endpoint("h:0").is_err());
    }
}
