//! `herald publish` and `herald subscribe`: minimal AppSync Events clients, the
//! quickest way for a person to try a server (Herald or AWS).

use super::{PublishArgs, SubscribeArgs};
use crate::http_client::{tls_config, HttpClient, Url};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::IsTerminal;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn realtime_url(ep: &Url) -> String {
    format!(
        "{}://{}/event/realtime",
        if ep.tls { "wss" } else { "ws" },
        ep.authority
    )
}

/// An argument as a JSON event: itself if it is JSON, else a JSON string.
fn event_text(arg: &str) -> String {
    match serde_json::from_str::<Value>(arg) {
        Ok(_) => arg.to_string(),
        Err(_) => Value::String(arg.to_string()).to_string(),
    }
}

/// Events from the arguments, `-` (standard input) and `--file`, one per line
/// in the input streams, in that order.
fn collect_events(args: &PublishArgs) -> Result<Vec<String>, String> {
    let lines = |text: String| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(event_text)
            .collect()
    };
    let mut events = Vec::new();
    for arg in &args.events {
        if arg == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("cannot read events from standard input: {e}"))?;
            events.extend(lines(text));
        } else {
            events.push(event_text(arg));
        }
    }
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read events from {}: {e}", path.display()))?;
        events.extend(lines(text));
    }
    if events.is_empty() {
        return Err("no events to publish (the input had no non-blank line)".into());
    }
    Ok(events)
}

/// The most events one publish request carries (AppSync's limit).
const EVENTS_PER_REQUEST: usize = 5;

pub async fn publish(args: PublishArgs) -> Result<(), String> {
    let ep = Url::parse(&args.client.endpoint)?;
    let events = collect_events(&args)?;
    let client = HttpClient::new(args.client.ca_cert.as_deref())?;
    let url = format!(
        "{}://{}/event",
        if ep.tls { "https" } else { "http" },
        ep.authority
    );
    // In order, one request at a time: each result line follows its request.
    for chunk in events.chunks(EVENTS_PER_REQUEST) {
        let body = json!({"channel": args.channel, "events": chunk}).to_string();
        let resp = client
            .request(
                hyper::Method::POST,
                &url,
                &[
                    ("content-type", "application/json"),
                    ("x-api-key", &args.client.api_key),
                ],
                Bytes::from(body),
                std::time::Duration::from_secs(30),
            )
            .await?;
        let text = String::from_utf8_lossy(&resp.body);
        if !resp.status.is_success() {
            return Err(format!("publish failed with HTTP {}: {text}", resp.status));
        }
        println!("{text}");
    }
    Ok(())
}

pub async fn subscribe(args: SubscribeArgs) -> Result<(), String> {
    let ep = Url::parse(&args.client.endpoint)?;
    let auth = json!({"host": ep.authority, "x-api-key": args.client.api_key});
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(auth.to_string());
    let mut req = realtime_url(&ep)
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
            args.client.ca_cert.as_deref(),
        )?))
    } else {
        None
    };
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, true, connector)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", realtime_url(&ep)))?;
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
    // once a second when stderr is a terminal and the events go elsewhere (a
    // file or a pipe). When the events are on the terminal themselves, the
    // count would share their lines, so there is none.
    let started = std::time::Instant::now();
    let interactive = std::io::stderr().is_terminal() && !std::io::stdout().is_terminal();
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
                return Err(match frame {
                    Some(f) if f.reason.is_empty() => {
                        format!("server closed the connection (code {})", u16::from(f.code))
                    }
                    Some(f) => format!(
                        "server closed the connection (code {}): {}",
                        u16::from(f.code),
                        f.reason
                    ),
                    None => "server closed the connection".into(),
                });
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
