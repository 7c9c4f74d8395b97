//! Herald's one outbound HTTP/1.1 client: OIDC discovery, JWKS, the
//! Lambda-style authorizer, DIRECT handlers, HTTP functions, and the CLI.
//!
//! Connections are kept alive and reused: after a response has been read
//! whole, its connection goes back to an idle list per scheme and authority
//! (at most [`MAX_IDLE_PER_HOST`]; past that it is closed). A request takes an
//! idle connection that is still open, or opens a new one; clones of a
//! client share the idle lists.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};

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

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// An HTTP client with fixed TLS trust.
/// Idle connections kept per scheme and authority.
pub const MAX_IDLE_PER_HOST: usize = 16;

type Idle = Arc<Mutex<HashMap<(bool, String), Vec<SendRequest<Full<Bytes>>>>>>;

#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<ClientConfig>,
    idle: Idle,
}

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl HttpClient {
    pub fn new(extra_ca: Option<&Path>) -> Result<HttpClient, String> {
        Ok(HttpClient {
            tls: tls_config(extra_ca)?,
            idle: Idle::default(),
        })
    }

    /// An idle connection to `url`'s host that is still open.
    fn take_idle(&self, url: &Url) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap();
        let list = idle.get_mut(&(url.tls, url.authority.clone()))?;
        while let Some(sender) = list.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, url: &Url, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap();
        let list = idle.entry((url.tls, url.authority.clone())).or_default();
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(sender);
        }
    }

    async fn connect(&self, url: &Url) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", url.authority))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if url.tls {
            let name = ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {} failed: {e}", url.authority))?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Send one request; the whole exchange is bounded by `timeout`.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, String> {
        let url = Url::parse(url)?;
        tokio::time::timeout(timeout, self.exchange(method, &url, headers, body))
            .await
            .map_err(|_| {
                format!(
                    "{}: no answer within {} ms",
                    url.authority,
                    timeout.as_millis()
                )
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, String> {
        // A pooled connection may have been closed by the server while
        // idle; a request it could not send is sent once more on a new
        // connection (never one that may have reached the server).
        let (mut sender, pooled) = match self.take_idle(url) {
            Some(s) => (s, true),
            None => (self.connect(url).await?, false),
        };
        if sender.ready().await.is_err() {
            sender = self.connect(url).await?;
        }
        let build = || {
            let mut req = hyper::Request::builder()
                .method(method.clone())
                .uri(&url.path)
                .header("host", &url.authority);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.body(Full::new(body.clone())).map_err(|e| e.to_string())
        };
        let resp = match sender.send_request(build()?).await {
            Ok(r) => r,
            // Not sent: the idle connection had been closed meanwhile.
            Err(e) if pooled && e.is_canceled() => {
                sender = self.connect(url).await?;
                sender
                    .send_request(build()?)
                    .await
                    .map_err(|e| format!("{}: {e}", url.authority))?
            }
            Err(e) => return Err(format!("{}: {e}", url.authority)),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        self.put_idle(url, sender);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
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
