//! Herald's one outbound HTTP client: OIDC discovery, JWKS, the Lambda-style
//! authorizer, DIRECT handlers, HTTP functions, `fetch`, API destinations,
//! HTTP tasks, the AWS sources' calls, and the CLI.
//!
//! A thin layer over `reqwest` (hyper's pooled client), so that every caller
//! gets what a maintained client does right and Herald need not:
//! - **connection reuse**: idle connections are kept per host (at most
//!   [`MAX_IDLE_PER_HOST`], closed after [`IDLE_TIMEOUT`] unused), so a
//!   DIRECT handler or an authorizer pays its TCP and TLS handshake once, not
//!   per call; clones of a client share the pool;
//! - **HTTP/2** where a TLS server offers it (ALPN): concurrent calls to one
//!   host share one connection; HTTP/1.1 otherwise;
//! - **proxies** from the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
//!   `ALL_PROXY`, with `NO_PROXY` exceptions), as curl reads them;
//! - **timeouts**: the connect is bounded by [`CONNECT_TIMEOUT`], and each
//!   request, answer and body included, by the caller's `timeout`.
//!
//! Redirects are not followed: an authorizer or a function that answers 3xx
//! is answered as it is, never sent on to a host nobody configured. TLS trusts
//! the web PKI's roots plus the optional PEM file the server is given (`[function_pool]
//! http_ca_file`), with rustls on *ring*, as Herald's listener does.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// The parts of an `http(s)://host[:port]/path?query` URL the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    /// `host[:port]` as written: the `Host` header and AppSync's auth `host`.
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("URL '{url}' must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("URL '{url}' has no host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or(format!("URL '{url}': bad IPv6 host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("URL '{url}': bad port"))?,
                None => default_port,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("URL '{url}': bad port"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        Ok(Url {
            tls,
            authority: authority.to_string(),
            host,
            port,
            path: path.to_string(),
        })
    }
}

/// TLS trust: the web PKI roots plus, optionally, extra PEM certificates.
pub fn tls_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable certificate: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Idle connections kept per host; past that, a connection whose request is
/// done is closed.
pub const MAX_IDLE_PER_HOST: usize = 32;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long opening a connection (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client with fixed TLS trust. Cheap to clone: clones share the
/// connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl HttpClient {
    /// A client trusting the web PKI and, if given, the PEM certificates in
    /// `extra_ca`.
    pub fn new(extra_ca: Option<&Path>) -> Result<HttpClient, String> {
        let mut tls = (*tls_config(extra_ca)?).clone();
        // Offer HTTP/2 first; a server without it answers in HTTP/1.1.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let inner = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpClient { inner })
    }

    /// Send one request; the whole exchange (connecting, sending, the answer
    /// and its body) is bounded by `timeout`. A request on a pooled
    /// connection the server had closed meanwhile is sent again on a new one
    /// only when it cannot have reached the server.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, String> {
        let parsed = Url::parse(url)?;
        let mut req = self.inner.request(method, url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        // Boxed: reqwest's futures are deep and large types, which every
        // async caller up to the request handlers would otherwise carry in
        // its own future; one allocation per call.
        let url_parts = parsed.clone();
        let exchange: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Response, String>> + Send>,
        > = Box::pin(async move {
            let parsed = url_parts;
            let resp = req.send().await.map_err(|e| describe(&parsed, &e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| describe(&parsed, &e))?;
            Ok(Response {
                status,
                headers,
                body,
            })
        });
        tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            format!(
                "{}: no answer within {} ms",
                parsed.authority,
                timeout.as_millis()
            )
        })?
    }
}

/// Whether the TLS handshake is what failed (an untrusted certificate, a
/// name mismatch, a protocol alert), somewhere in `e`'s causes.
fn tls_failure(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let io_inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if cause.is::<rustls::Error>() || io_inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return true;
        }
        // hyper-rustls hands rustls's error on inside wrappers that do not
        // always downcast: its variants' names tell it.
        let debug = format!("{cause:?}");
        if [
            "InvalidCertificate",
            "AlertReceived",
            "PeerIncompatible",
            "PeerMisbehaved",
            "NoCertificatesPresented",
        ]
        .iter()
        .any(|v| debug.contains(v))
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A one-line reason naming the host, with the causes reqwest wraps (the
/// connect error, the TLS alert) spelled out.
fn describe(url: &Url, e: &reqwest::Error) -> String {
    let mut text = if tls_failure(e) {
        format!("TLS with {} failed", url.authority)
    } else if e.is_connect() {
        format!("cannot connect to {}", url.authority)
    } else if e.is_timeout() {
        format!("{}: timed out", url.authority)
    } else {
        format!("{}: request failed", url.authority)
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://127.0.0.1:8443/event").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "127.0.0.1", 8443, "/event")
        );
        assert_eq!(u.authority, "127.0.0.1:8443");
        let u = Url::parse("http://example.com").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:9000/a?b=c").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 9000, "/a?b=c")
        );
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("http://h:notaport/").is_err());
    }
}
