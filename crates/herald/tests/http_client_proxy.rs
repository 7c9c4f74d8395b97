//! The outbound HTTP client's proxy, from the environment as curl reads it.
//! A test binary of its own: the variables are the whole process's.

use bytes::Bytes;
use herald::http_client::HttpClient;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A server answering `name`, recording each request's target as sent.
async fn recorder(bind: &str, name: &'static str) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    s.lock().unwrap().push(req.uri().to_string());
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(name),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn http_proxy_carries_calls_and_no_proxy_exempts_hosts() {
    let (proxy, through_proxy) = recorder("127.0.0.1:0", "proxy").await;
    let (direct, at_direct) = recorder("127.0.0.2:0", "direct").await;
    std::env::set_var("HTTP_PROXY", format!("http://{proxy}"));
    std::env::set_var("NO_PROXY", "127.0.0.2");
    let client = HttpClient::new(None).unwrap();
    let get = |url: String| {
        let client = client.clone();
        async move {
            client
                .request(
                    hyper::Method::GET,
                    &url,
                    &[],
                    Bytes::new(),
                    Duration::from_secs(10),
                )
                .await
                .unwrap()
        }
    };
    // A host nobody could resolve is reached through the proxy, which is
    // asked for the whole URL.
    let r = get("http://upstream.invalid/a?b=1".into()).await;
    assert_eq!(&r.body[..], b"proxy");
    assert_eq!(
        through_proxy.lock().unwrap().clone(),
        vec!["http://upstream.invalid/a?b=1".to_string()]
    );
    // NO_PROXY's host goes direct.
    let r = get(format!("http://{direct}/d")).await;
    assert_eq!(&r.body[..], b"direct");
    assert_eq!(at_direct.lock().unwrap().clone(), vec!["/d".to_string()]);
    assert_eq!(through_proxy.lock().unwrap().len(), 1);
}
