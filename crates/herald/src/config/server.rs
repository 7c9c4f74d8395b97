//! `[server]`: the public listener (address, TLS, drain and grace periods,
//! the console and metrics, host names under a base domain).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `HOST:PORT` as a socket address: an IP address as it is, a host name
/// (`localhost:9002`) resolved, its first IPv4 address preferred.
pub fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot use '{text}' as a listen address (HOST:PORT): {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

/// `[server] base_domain`: a DNS name, optionally with a port.
pub(super) fn check_base_domain(text: &str) -> Result<String, String> {
    let d = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d.as_str(), None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty()
        || !host.split('.').all(label_ok)
        || port.is_some_and(|p| p.parse::<u16>().is_err())
    {
        return Err(format!(
            "[server] base_domain '{text}' is invalid: a DNS name such as events.example.com, optionally with :PORT"
        ));
    }
    Ok(d)
}

/// Herald's listener settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// `HOST:PORT`, an IP address or a host name.
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: Option<PathBuf>,
    /// How long shutdown waits for in-flight work, in milliseconds.
    pub shutdown_grace_ms: Option<u64>,
    /// How long `/ready` answers 503 before the listener closes on shutdown,
    /// so load balancers stop sending new clients first (default 2000).
    pub drain_ms: Option<u64>,
    /// How long a connection may take to send a request's head (the first
    /// request's included: a client that connects and sends nothing is closed
    /// after this long), in milliseconds (default 30000).
    pub header_read_timeout_ms: Option<u64>,
    /// Serve the web console at `/console` (default: off with a config file).
    pub console: Option<bool>,
    /// Serve Prometheus metrics at `/metrics` (default: on).
    pub metrics: Option<bool>,
    /// Reach each API by host name, `<apiId>.<base_domain>` (as AWS does),
    /// besides the path form; `GetApi` then returns those hosts. May carry
    /// the port clients use (`events.example.com:8443`).
    pub base_domain: Option<String>,
}

/// How the listener does TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    None,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Generate (or reuse) a self-signed certificate in this directory.
    SelfSigned(PathBuf),
}
