//! The `direct` scenario: publishes through a DIRECT `onPublish` handler, so
//! that every publish request is one call of a Lambda-style function over
//! HTTP. Herald, the function and the publishers all run in this process: the
//! function is an echo server (it answers the events it was given), over plain
//! HTTP or, with `--tls`, HTTPS with a self-signed certificate Herald is told
//! to trust (`[function_pool] http_ca_file`), offering HTTP/2 and HTTP/1.1.
//!
//! What it shows is the outbound HTTP client's cost per call: publish
//! requests/s through the handler, and how many connections the function
//! server accepted for them (a client that pools keeps that near the number
//! of concurrent calls; one that does not opens one per call) and in which
//! HTTP version they were served.

use super::connect::http_publish_scenario;
use super::Common;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_rustls::rustls;

const API_KEY: &str = "da2-benchdirect";

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    requests: AtomicU64,
    http2_requests: AtomicU64,
}

/// The echo function: `{"events": ctx.events}` for each call.
async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    counts: Arc<Counts>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    if req.version() == hyper::Version::HTTP_2 {
        counts.http2_requests.fetch_add(1, Ordering::Relaxed);
    }
    let body = req.into_body().collect().await?.to_bytes();
    let ctx: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let out = json!({"events": ctx.get("events").cloned().unwrap_or(json!([]))});
    Ok(hyper::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(out.to_string())))
        .expect("a response"))
}

/// Start the function server; its URL.
async fn function_server(
    tls: Option<Arc<rustls::ServerConfig>>,
    counts: Arc<Counts>,
) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counts.connections.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
            let (counts, tls) = (counts.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(req, counts.clone()));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = match tls {
                    Some(config) => match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                    {
                        Ok(stream) => builder.serve_connection(TokioIo::new(stream), svc).await,
                        Err(_) => return,
                    },
                    None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                };
            });
        }
    });
    Ok(format!("{scheme}://127.0.0.1:{}/", addr.port()))
}

/// A self-signed certificate for 127.0.0.1: the server's TLS config, and the
/// certificate's PEM file for Herald to trust.
fn self_signed(dir: &std::path::Path) -> Result<(Arc<rustls::ServerConfig>, String), String> {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    let pem = dir.join("function-ca.pem");
    std::fs::write(&pem, generated.cert.pem()).map_err(|e| e.to_string())?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), pem.display().to_string()))
}

pub async fn direct_scenario(
    publishers: usize,
    batch: usize,
    payload: usize,
    duration: u64,
    tls: bool,
) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("herald-bench-direct-{}", crate::new_uuid()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let counts = Arc::new(Counts::default());
    let (server_tls, ca) = match tls {
        true => {
            let (config, pem) = self_signed(&dir)?;
            (
                Some(config),
                format!("\n[function_pool]\nhttp_ca_file = \"{pem}\"\n"),
            )
        }
        false => (None, String::new()),
    };
    let url = function_server(server_tls, counts.clone()).await?;
    let config_text = format!(
        r#"[[api_keys]]
id = "{API_KEY}"
[[data_sources]]
name = "echo"
type = "AWS_LAMBDA"
endpoint = "{url}"
timeout_ms = 10000
[[channel_namespaces]]
name = "direct"
handler_configs = {{ on_publish = {{ behavior = "DIRECT", integration = {{ data_source_name = "echo", lambda_config = {{ invoke_type = "REQUEST_RESPONSE" }} }} }} }}
{ca}"#
    );
    let server = super::in_process(&config_text).await?;
    let running = server.spawn();
    let common = Common {
        endpoints: vec![format!("http://{}/event", running.addr)],
        api_key: API_KEY.into(),
        server_pids: vec![std::process::id()],
        duration,
        source_ips: 1,
        allow_remote: false,
        namespace: "direct".into(),
    };
    let result = http_publish_scenario(&common, publishers, batch, payload).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut report = result?;
    let calls = counts.requests.load(Ordering::Relaxed);
    report["scenario"] = json!("direct");
    report["tls"] = json!(tls);
    report["function_calls"] = json!(calls);
    report["function_connections"] = json!(counts.connections.load(Ordering::Relaxed));
    report["function_http2_calls"] = json!(counts.http2_requests.load(Ordering::Relaxed));
    // Herald, the function and the publishers share this process.
    if let Some(cpu) = report.get("server_cpu_seconds").and_then(Value::as_f64) {
        report["process_cpu_us_per_call"] = json!(cpu * 1e6 / calls.max(1) as f64);
    }
    Ok(report)
}
