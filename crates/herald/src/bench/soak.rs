//! The `soak` scenario: Herald in this process under mixed traffic for a long
//! time, sampled every few seconds, to show that nothing grows without bound.
//!
//! The traffic: steady WebSocket subscribers (API key) on a wildcard; churn
//! (connections that connect, subscribe to one to three channels, stay for
//! a random 0.2-2 s and close, some without a goodbye); HTTP publishes signed
//! with SigV4 (AWS_IAM) and with an API key; publishes through a JavaScript
//! `onPublish` handler and subscriptions through an `onSubscribe` one.
//!
//! Each sample: the process's RSS and open file descriptors (Linux /proc),
//! the runtime's live tasks (Herald's and this generator's; the generator's
//! are bounded), open WebSockets, and the counts so far. The report compares
//! the last third of the run with the middle third: after warm-up the three
//! must be flat.

use super::rawws::{Frame, RawWs};
use super::target::now_us;
use bytes::Bytes;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const API_KEY: &str = "da2-soaksoaksoaksoaksoaksoak00";
const KEY_ID: &str = "AKIASOAKSOAKSOAKSOAK";
const SECRET: &str = "soak-secret-soak-secret-soak-secret-0000";
const HANDLER: &str = r#"import { util } from '@aws-appsync/utils'
export function onPublish(ctx) {
  return ctx.events.map((e) => ({ id: e.id, payload: { ...e.payload, seen: util.time.nowEpochMilliSeconds() } }))
}
export function onSubscribe(ctx) {
  if (ctx.info.channel.segments.includes('forbidden')) util.unauthorized()
}"#;

#[derive(Default)]
struct Counts {
    published: AtomicU64,
    publish_errors: AtomicU64,
    delivered: AtomicU64,
    churned: AtomicU64,
    churn_errors: AtomicU64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// A subscriber that counts what it receives until the end (or its close).
async fn steady(addr: SocketAddr, host: String, counts: Arc<Counts>, done: Arc<AtomicBool>) {
    let Ok(mut ws) = RawWs::connect(addr, &host, API_KEY, None).await else {
        return;
    };
    let sub = json!({"type": "subscribe", "id": "s", "channel": "/default/*",
        "authorization": {"x-api-key": API_KEY, "host": host}})
    .to_string();
    if ws.send_text(&sub).await.is_err() {
        return;
    }
    let _ = ws
        .read_frames(|f| match f {
            Frame::Text(t) => {
                if super::rawws::find(t, b"\"data\"").is_some() {
                    counts.delivered.fetch_add(1, Ordering::Relaxed);
                }
                !done.load(Ordering::Relaxed)
            }
            Frame::Close => false,
        })
        .await;
}

/// Connect, subscribe (the handled namespace's `onSubscribe` runs), stay a
/// moment, leave; half the time by closing the socket without a goodbye.
async fn churn_once(addr: SocketAddr, host: &str, n: u64) -> Result<(), String> {
    let mut ws = RawWs::connect(addr, host, API_KEY, None)
        .await
        .map_err(|e| e.to_string())?;
    ws.send_text(r#"{"type":"connection_init"}"#)
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..(1 + n % 3) {
        let ns = if i == 1 { "handled" } else { "default" };
        let sub = json!({"type": "subscribe", "id": format!("c{i}"), "channel": format!("/{ns}/churn/{}", n % 50),
            "authorization": {"x-api-key": API_KEY, "host": host}});
        ws.send_text(&sub.to_string())
            .await
            .map_err(|e| e.to_string())?;
    }
    let stay = Duration::from_millis(200 + (n * 7919) % 1800);
    let _ = tokio::time::timeout(stay, ws.read_frames(|_| true)).await;
    if n.is_multiple_of(2) {
        let _ = ws.send_text(r#"{"type":"unsubscribe","id":"c0"}"#).await;
    }
    Ok(())
}

/// One HTTP publish, API key or SigV4, to the plain or the handled namespace.
async fn publish_once(
    http: &crate::http_client::HttpClient,
    addr: SocketAddr,
    n: u64,
) -> Result<(), String> {
    let ns = if n.is_multiple_of(4) {
        "handled"
    } else {
        "default"
    };
    let body = json!({"channel": format!("/{ns}/room/{}", n % 20),
        "events": [json!({"t": now_us(), "n": n, "text": "soak"}).to_string()]})
    .to_string();
    let authority = addr.to_string();
    let mut headers: Vec<(String, String)> =
        vec![("content-type".into(), "application/json".into())];
    if n.is_multiple_of(3) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        headers.extend(crate::auth::sigv4::sign(
            KEY_ID,
            SECRET,
            "us-east-1",
            "appsync",
            "POST",
            "/event",
            &[("host", &authority), ("content-type", "application/json")],
            body.as_bytes(),
            now,
        ));
    } else {
        headers.push(("x-api-key".into(), API_KEY.into()));
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = http
        .request(
            hyper::Method::POST,
            &format!("http://{authority}/event"),
            &refs,
            Bytes::from(body),
            Duration::from_secs(10),
        )
        .await?;
    if r.status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", r.status))
    }
}

fn third_mean(samples: &[Value], key: &str, which: usize) -> f64 {
    let n = samples.len() / 3;
    let part = &samples[n * which..(n * (which + 1)).min(samples.len())];
    part.iter().filter_map(|s| s[key].as_f64()).sum::<f64>() / part.len().max(1) as f64
}

pub async fn soak_scenario(
    duration: Duration,
    sample: Duration,
    steady_subscribers: usize,
    publishes_per_sec: u64,
    churn_per_sec: u64,
) -> Result<Value, String> {
    let config_text = format!(
        r#"[event_config]
auth_providers = [{{ auth_type = "API_KEY" }}, {{ auth_type = "AWS_IAM" }}]
[[iam_credentials]]
access_key_id = "{KEY_ID}"
secret_access_key = "{SECRET}"
principal = "arn:aws:iam::123456789012:user/soak"
allow = [{{ actions = ["*"] }}]
[[api_keys]]
id = "{API_KEY}"
[[channel_namespaces]]
name = "default"
[[channel_namespaces]]
name = "handled"
code_handlers = '''{HANDLER}'''
"#
    );
    let server = super::in_process(&config_text).await?;
    let running = server.spawn();
    let api = running.api.clone();
    let addr = running.addr;
    let host = addr.to_string();
    let counts = Arc::new(Counts::default());
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..steady_subscribers {
        tasks.push(tokio::spawn(steady(
            addr,
            host.clone(),
            counts.clone(),
            done.clone(),
        )));
    }
    // Publishers: a fixed rate, a bounded number in flight (a slow server
    // slows the rate rather than piling up tasks).
    let http = crate::http_client::HttpClient::new(None)?;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    {
        let (counts, done, in_flight) = (counts.clone(), done.clone(), in_flight.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / publishes_per_sec.max(1)));
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (http, counts) = (http.clone(), counts.clone());
                n += 1;
                tokio::spawn(async move {
                    match publish_once(&http, addr, n).await {
                        Ok(()) => counts.published.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counts.publish_errors.fetch_add(1, Ordering::Relaxed),
                    };
                    drop(permit);
                });
            }
        }));
    }
    // Churn: a fixed rate of short connections, at most 256 at once.
    {
        let (counts, done, host) = (counts.clone(), done.clone(), host.clone());
        let open = Arc::new(tokio::sync::Semaphore::new(256));
        tasks.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / churn_per_sec.max(1)));
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let Ok(permit) = open.clone().acquire_owned().await else {
                    break;
                };
                let (counts, host) = (counts.clone(), host.clone());
                n += 1;
                tokio::spawn(async move {
                    match churn_once(addr, &host, n).await {
                        Ok(()) => counts.churned.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counts.churn_errors.fetch_add(1, Ordering::Relaxed),
                    };
                    drop(permit);
                });
            }
        }));
    }
    let started = Instant::now();
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut samples = Vec::new();
    let mut next = started;
    while started.elapsed() < duration {
        next += sample;
        tokio::time::sleep_until(next.into()).await;
        let s = json!({
            "t_s": started.elapsed().as_secs_f64().round(),
            "rss_mib": rss_kib() as f64 / 1024.0,
            "fds": open_fds(),
            "tasks": metrics.num_alive_tasks(),
            "websockets": api.metrics.connections.get(),
            "published": counts.published.load(Ordering::Relaxed),
            "publish_errors": counts.publish_errors.load(Ordering::Relaxed),
            "delivered": counts.delivered.load(Ordering::Relaxed),
            "churned": counts.churned.load(Ordering::Relaxed),
            "churn_errors": counts.churn_errors.load(Ordering::Relaxed),
        });
        eprintln!("{s}");
        samples.push(s);
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let growth = |key: &str| {
        let (mid, last) = (third_mean(&samples, key, 1), third_mean(&samples, key, 2));
        json!({"middle_third": mid, "last_third": last, "ratio": last / mid.max(1e-9)})
    };
    let report = json!({
        "scenario": "soak",
        "seconds": duration.as_secs(),
        "sample_seconds": sample.as_secs(),
        "steady_subscribers": steady_subscribers,
        "publishes_per_sec": publishes_per_sec,
        "churn_per_sec": churn_per_sec,
        "rss": growth("rss_mib"),
        "fds": growth("fds"),
        "tasks": growth("tasks"),
        "published": counts.published.load(Ordering::Relaxed),
        "publish_errors": counts.publish_errors.load(Ordering::Relaxed),
        "delivered": counts.delivered.load(Ordering::Relaxed),
        "churned": counts.churned.load(Ordering::Relaxed),
        "churn_errors": counts.churn_errors.load(Ordering::Relaxed),
        "samples": samples,
    });
    Ok(report)
}
