//! `herald publish` and `herald subscribe`: minimal AppSync Events clients, the
//! quickest way for a person to try a server (Herald or AWS).

use super::{ClientArgs, PublishArgs, SubscribeArgs};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The parts of an endpoint URL we need.
struct Endpoint {
    tls: bool,
    /// `host[:port]` as written (the `host` of auth objects).
    authority: String,
    host: String,
    port: u16,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "endpoint '{url}' must start with http:// or https://"
            ));
        };
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        if authority.is_empty() {
            return Err(format!("endpoint '{url}' has no host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(port) => (h.trim_matches(['[', ']']).to_string(), port),
                Err(_) => (authority.clone(), if tls { 443 } else { 80 }),
            },
            _ => (authority.clone(), if tls { 443 } else { 80 }),
        };
        Ok(Endpoint {
            tls,
            authority,
            host,
            port,
        })
    }

    fn realtime_url(&self) -> String {
        format!(
            "{}://{}/event/realtime",
            if self.tls { "wss" } else { "ws" },
            self.authority
        )
    }
}

fn tls_config(args: &ClientArgs) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &args.ca_cert {
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

/// An argument as a JSON event: itself if it is JSON, else a JSON string.
fn event_text(arg: &str) -> String {
    match serde_json::from_str::<Value>(arg) {
        Ok(_) => arg.to_string(),
        Err(_) => Value::String(arg.to_string()).to_string(),
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub async fn publish(args: PublishArgs) -> Result<(), String> {
    let ep = Endpoint::parse(&args.client.endpoint)?;
    let events: Vec<String> = args.events.iter().map(|e| event_text(e)).collect();
    let body = json!({"channel": args.channel, "events": events}).to_string();
    let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", ep.authority))?;
    let io: Box<dyn Io> = if ep.tls {
        let name = ServerName::try_from(ep.host.clone()).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls_config(&args.client)?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {} failed: {e}", ep.authority))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post("/event")
        .header("host", &ep.authority)
        .header("content-type", "application/json")
        .header("x-api-key", &args.client.api_key)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    if status.is_success() {
        println!("{text}");
        Ok(())
    } else {
        Err(format!("publish failed with HTTP {status}: {text}"))
    }
}

pub async fn subscribe(args: SubscribeArgs) -> Result<(), String> {
    let ep = Endpoint::parse(&args.client.endpoint)?;
    let auth = json!({"host": ep.authority, "x-api-key": args.client.api_key});
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(auth.to_string());
    let mut req = ep
        .realtime_url()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("aws-appsync-event-ws, header-{header}")
            .parse()
            .map_err(|_| "bad header".to_string())?,
    );
    let connector = if ep.tls {
        Some(tokio_tungstenite::Connector::Rustls(tls_config(
            &args.client,
        )?))
    } else {
        None
    };
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, true, connector)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", ep.realtime_url()))?;
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({"type": "connection_init"})))
        .await
        .map_err(|e| e.to_string())?;
    ws.send(send(json!({"type": "subscribe", "id": "herald-cli", "channel": args.channel, "authorization": auth})))
        .await
        .map_err(|e| e.to_string())?;
    if args.count == Some(0) {
        return Ok(());
    }
    // Progress: a summary on stderr when the command ends, plus a live count
    // once a second when stderr is a terminal.
    let started = std::time::Instant::now();
    let interactive = std::io::stderr().is_terminal();
    let mut progress = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut received = 0u64;
    let summary = |n: u64| {
        let secs = started.elapsed().as_secs_f64();
        if interactive {
            eprintln!();
        }
        eprintln!("received {n} event(s) in {secs:.1} s");
    };
    loop {
        let msg = tokio::select! {
            msg = ws.next() => msg,
            _ = tokio::signal::ctrl_c() => {
                summary(received);
                return Ok(());
            }
            _ = progress.tick(), if interactive => {
                eprint!("\r{received} event(s) received");
                continue;
            }
        };
        let Some(msg) = msg else { break };
        let msg = msg.map_err(|e| format!("connection failed: {e}"))?;
        let Message::Text(text) = msg else {
            if let Message::Close(frame) = msg {
                summary(received);
                return Err(format!("server closed the connection: {frame:?}"));
            }
            continue;
        };
        let frame: Value =
            serde_json::from_str(&text).map_err(|e| format!("bad frame from server: {e}"))?;
        match frame["type"].as_str().unwrap_or_default() {
            "subscribe_success" => eprintln!("subscribed to {}", args.channel),
            "data" => {
                let event = frame["event"].as_str().unwrap_or_default();
                // Re-serialize compactly so each event is exactly one line.
                match serde_json::from_str::<Value>(event) {
                    Ok(v) => println!("{v}"),
                    Err(_) => println!("{}", Value::String(event.to_string())),
                }
                received += 1;
                if args.count.is_some_and(|n| received >= n) {
                    let _ = ws.close(None).await;
                    summary(received);
                    return Ok(());
                }
            }
            "connection_error" | "subscribe_error" | "error" | "broadcast_error" => {
                return Err(format!("server refused: {}", frame["errors"]));
            }
            _ => {}
        }
    }
    summary(received);
    Err("server closed the connection".into())
}
