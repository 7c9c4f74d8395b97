//! The outbound HTTP client against real servers: connections reused,
//! HTTP/2 where a TLS server offers it, a private CA, redirects answered
//! rather than followed, and the caller's timeout.

use bytes::Bytes;
use herald::http_client::HttpClient;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    http2: AtomicUsize,
    requests: AtomicUsize,
}

/// A server answering `/` with 200 "ok", `/moved` with a redirect and
/// `/hang` never; over TLS (offering h2 and http/1.1) when given a config.
async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (s, tls) = (s.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let s = s.clone();
                    async move {
                        s.requests.fetch_add(1, Ordering::SeqCst);
                        if req.version() == hyper::Version::HTTP_2 {
                            s.http2.fetch_add(1, Ordering::SeqCst);
                        }
                        let mut resp = hyper::Response::new(Full::new(Bytes::from("ok")));
                        match req.uri().path() {
                            "/moved" => {
                                *resp.status_mut() = hyper::StatusCode::FOUND;
                                resp.headers_mut()
                                    .insert("location", "http://127.0.0.1:9/".parse().unwrap());
                            }
                            "/hang" => std::future::pending::<()>().await,
                            _ => {}
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = match tls {
                    Some(c) => match tokio_rustls::TlsAcceptor::from(c).accept(tcp).await {
                        Ok(t) => builder.serve_connection(TokioIo::new(t), svc).await,
                        Err(_) => return,
                    },
                    None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                };
            });
        }
    });
    (format!("{scheme}://127.0.0.1:{port}"), seen)
}

/// A self-signed certificate for 127.0.0.1: the server's config and the PEM
/// file a client must be told to trust.
fn tls_pair(name: &str) -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir =
        std::env::temp_dir().join(format!("herald-http-client-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, generated.cert.pem()).unwrap();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![generated.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(config), pem)
}

async fn get(client: &HttpClient, url: &str) -> Result<herald::http_client::Response, String> {
    client
        .request(
            hyper::Method::GET,
            url,
            &[],
            Bytes::new(),
            Duration::from_secs(10),
        )
        .await
}

#[tokio::test]
async fn sequential_calls_share_one_connection() {
    let (base, seen) = server(None).await;
    let client = HttpClient::new(None).unwrap();
    for _ in 0..20 {
        let r = get(&client, &format!("{base}/")).await.unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 20);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "one connection");
    assert_eq!(
        seen.http2.load(Ordering::SeqCst),
        0,
        "plain HTTP is HTTP/1.1"
    );
}

#[tokio::test]
async fn concurrent_calls_to_a_tls_server_with_h2_share_one_connection() {
    let (config, pem) = tls_pair("h2");
    let (base, seen) = server(Some(config)).await;
    // Without the private CA the server is not trusted.
    let untrusting = HttpClient::new(None).unwrap();
    let e = get(&untrusting, &format!("{base}/")).await.unwrap_err();
    assert!(e.contains("127.0.0.1"), "{e}");
    let before = seen.connections.load(Ordering::SeqCst);

    let client = HttpClient::new(Some(&pem)).unwrap();
    get(&client, &format!("{base}/")).await.unwrap();
    let url = format!("{base}/");
    let calls = (0..20).map(|_| get(&client, &url));
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.unwrap().status.as_u16(), 200);
    }
    assert_eq!(
        seen.http2.load(Ordering::SeqCst),
        21,
        "every call over HTTP/2"
    );
    assert_eq!(
        seen.connections.load(Ordering::SeqCst) - before,
        1,
        "21 calls, 20 of them at once, on one connection"
    );
}

#[tokio::test]
async fn redirects_are_answered_not_followed_and_timeouts_hold() {
    let (base, seen) = server(None).await;
    let client = HttpClient::new(None).unwrap();
    let r = get(&client, &format!("{base}/moved")).await.unwrap();
    assert_eq!(r.status.as_u16(), 302);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);

    let started = std::time::Instant::now();
    let e = client
        .request(
            hyper::Method::POST,
            &format!("{base}/hang"),
            &[("content-type", "application/json")],
            Bytes::from_static(b"{}"),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(e.contains("no answer within 300 ms"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing listens on port 9 (discard) here: a refused connection says so.
    let e = get(&client, "http://127.0.0.1:9/").await.unwrap_err();
    assert!(e.contains("cannot connect to 127.0.0.1:9"), "{e}");
}
