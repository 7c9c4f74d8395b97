//! `herald bench`: a load generator for any AppSync Events endpoint (Herald or
//! AWS) over the real protocol, with API key auth.
//!
//! Scenarios: `fanout` (S subscribers on one channel), `channels` (C channels x k
//! subscribers at a fixed rate), `connect` (N connections with one subscription
//! each, as fast as possible), `http-publish` (publish rate over HTTP). With
//! several `--endpoint`s, subscribers and publishers spread over them (the
//! cross-node variant). Every event carries its publish time, so subscribers
//! measure publish-to-deliver latency (HdrHistogram). Given `--server-pid`, the
//! report adds the server's RSS and CPU time. Runs are bounded in time and refuse
//! non-loopback endpoints unless `--allow-remote`.

mod rawws;

use crate::http_client::Url;
use bytes::Bytes;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use rawws::{Frame, RawWs};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// HTTP endpoint(s) of the API (repeat for several nodes).
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:8080/event")]
    pub endpoints: Vec<String>,
    #[arg(long, env = "HERALD_API_KEY")]
    pub api_key: String,
    /// Server process id(s), for RSS and CPU figures (Linux /proc).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// How long the measured phase runs, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Spread client connections over this many source addresses 127.0.0.1..N.
    #[arg(long, default_value_t = 8)]
    pub source_ips: u8,
    /// Allow endpoints that are not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// The namespace to use.
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// S subscribers on one channel, P HTTP publishers at a fixed or max rate.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        /// Events per second in total; 0 = as fast as possible.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Event size in bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Events per publish request (1-5).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Publish over WebSocket instead of HTTP.
        #[arg(long)]
        ws_publishers: bool,
        /// With --ws-publishers: publish requests in flight per connection
        /// (pipelined; an HTTP/1.1 publisher always has one, so add publishers).
        #[arg(long, default_value_t = 1)]
        window: usize,
    },
    /// C channels x k subscribers, a fixed total publish rate.
    Channels {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        channels: usize,
        #[arg(long, default_value_t = 5)]
        per_channel: usize,
        #[arg(long, default_value_t = 20000)]
        rate: u64,
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Events per publish request (1-5), all to the same channel.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Publish over WebSocket instead of HTTP.
        #[arg(long)]
        ws_publishers: bool,
        /// With --ws-publishers: publish requests in flight per connection
        /// (pipelined; an HTTP/1.1 publisher always has one, so add publishers).
        #[arg(long, default_value_t = 1)]
        window: usize,
    },
    /// N connections with one subscription each, as fast as possible.
    Connect {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 5000)]
        connections: usize,
        /// Handshakes in flight.
        #[arg(long, default_value_t = 100)]
        in_flight: usize,
        /// Seconds to hold the connections idle before measuring RSS.
        #[arg(long, default_value_t = 2)]
        hold: u64,
    },
    /// Handler engine timings: cold start (load + first call) and warm calls of
    /// an `onPublish` handler, without the network.
    Handler {
        /// Handler source file (default: the AWS docs' transform example).
        #[arg(long)]
        code: Option<std::path::PathBuf>,
        /// Events per invocation.
        #[arg(long, default_value_t = 5)]
        events: usize,
        #[arg(long, default_value_t = 20)]
        loads: usize,
        #[arg(long, default_value_t = 20000)]
        calls: usize,
    },
    /// Publish over HTTP (keep-alive) as fast as possible.
    HttpPublish {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 8)]
        publishers: usize,
        #[arg(long, default_value_t = 5)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        payload: usize,
    },
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

struct Endpoint {
    url: Url,
    addr: SocketAddr,
}

fn endpoints(common: &Common) -> Result<Vec<Endpoint>, String> {
    common
        .endpoints
        .iter()
        .map(|e| {
            let url = Url::parse(e)?;
            if url.tls {
                return Err(
                    "herald bench speaks plain HTTP/WebSocket; put TLS aside for benchmarks".into(),
                );
            }
            let addr = (url.host.as_str(), url.port)
                .to_socket_addrs()
                .map_err(|e| format!("{}: {e}", url.authority))?
                .next()
                .ok_or(format!("{}: no address", url.authority))?;
            if !addr.ip().is_loopback() && !common.allow_remote {
                return Err(format!(
                    "{} is not on loopback; pass --allow-remote to load it",
                    url.authority
                ));
            }
            Ok(Endpoint { url, addr })
        })
        .collect()
}

fn source_ip(common: &Common, i: usize, target: SocketAddr) -> Option<IpAddr> {
    (target.ip().is_loopback() && target.is_ipv4() && common.source_ips > 1).then(|| {
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % common.source_ips as usize) as u8,
        ))
    })
}

/// Per-process figures from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcStats {
    rss_kib: u64,
    cpu_secs: f64,
}

fn proc_stats(pids: &[u32]) -> Option<ProcStats> {
    if pids.is_empty() {
        return None;
    }
    let mut total = ProcStats::default();
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        total.rss_kib += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        total.cpu_secs += ticks as f64 / 100.0; // USER_HZ is 100 on Linux
    }
    Some(total)
}

/// One subscriber's tally.
struct Tally {
    received: u64,
    hist: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// Open connection `i` to `ep` (from its source address) and send
/// `connection_init`.
async fn open_ws(ep: &Endpoint, common: &Common, i: usize) -> Result<RawWs, String> {
    let mut ws = RawWs::connect(
        ep.addr,
        &ep.url.authority,
        &common.api_key,
        source_ip(common, i, ep.addr),
    )
    .await
    .map_err(|e| format!("connect: {e}"))?;
    ws.send_text(r#"{"type":"connection_init"}"#)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Open connection `i`, subscribe it to `channel`, and return it once the
/// subscription is acknowledged.
async fn subscriber(
    ep: &Endpoint,
    common: &Common,
    i: usize,
    channel: String,
) -> Result<RawWs, String> {
    let mut ws = open_ws(ep, common, i).await?;
    ws.send_text(&json!({"type": "subscribe", "id": "b", "channel": channel, "authorization": {"x-api-key": common.api_key, "host": ep.url.authority}}).to_string())
        .await
        .map_err(|e| e.to_string())?;
    let mut outcome = Err("closed before subscribe_success".to_string());
    ws.read_frames(|f| match f {
        Frame::Text(t) if rawws::find(t, b"subscribe_success").is_some() => {
            outcome = Ok(());
            false
        }
        Frame::Text(t) if rawws::find(t, b"_error").is_some() => {
            outcome = Err(String::from_utf8_lossy(t).into_owned());
            false
        }
        Frame::Text(_) => true,
        Frame::Close => false,
    })
    .await
    .map_err(|e| e.to_string())?;
    outcome.map(|()| ws)
}

async fn count_frames(mut ws: RawWs, done: Arc<AtomicBool>, live: Arc<AtomicU64>) -> Tally {
    let mut tally = Tally {
        received: 0,
        hist: new_hist(),
    };
    let _ = ws
        .read_frames(|f| match f {
            Frame::Text(t) => {
                if let Some(ts) = rawws::timestamp_us(t) {
                    tally.received += 1;
                    live.fetch_add(1, Ordering::Relaxed);
                    let _ = tally.hist.record(now_us().saturating_sub(ts).max(1));
                }
                !done.load(Ordering::Relaxed)
            }
            Frame::Close => false,
        })
        .await;
    tally
}

fn event(payload: usize) -> String {
    // {"t":<µs>,"p":"xxx..."} padded to about `payload` bytes.
    let pad = payload.saturating_sub(30).max(1);
    format!(r#"{{"t":{},"p":"{}"}}"#, now_us(), "x".repeat(pad))
}

/// A keep-alive HTTP/1.1 connection for publishing.
struct HttpPublisher {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    authority: String,
    key: String,
}

impl HttpPublisher {
    async fn connect(ep: &Endpoint, key: &str) -> Result<HttpPublisher, String> {
        let tcp = tokio::net::TcpStream::connect(ep.addr)
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(HttpPublisher {
            sender,
            authority: ep.url.authority.clone(),
            key: key.to_string(),
        })
    }

    /// Publish `events`; returns how many were accepted.
    async fn publish(&mut self, channel: &str, events: Vec<String>) -> Result<usize, String> {
        let body = json!({"channel": channel, "events": events}).to_string();
        let req = hyper::Request::post("/event")
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .header("x-api-key", &self.key)
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        use http_body_util::BodyExt;
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(events.len())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

/// A WebSocket publisher's connection, acknowledged and ready; [`pipelined`]
/// drives it.
struct WsPublisher {
    ws: RawWs,
    key: String,
}

impl WsPublisher {
    async fn connect(ep: &Endpoint, common: &Common, i: usize) -> Result<WsPublisher, String> {
        let mut ws = open_ws(ep, common, i).await?;
        let mut acked = false;
        ws.read_frames(|f| match f {
            Frame::Text(t) => {
                acked = rawws::find(t, b"connection_ack").is_some();
                !acked && rawws::find(t, b"connection_error").is_none()
            }
            Frame::Close => false,
        })
        .await
        .map_err(|e| e.to_string())?;
        if !acked {
            return Err("no connection_ack".into());
        }
        Ok(WsPublisher {
            ws,
            key: common.api_key.clone(),
        })
    }
}

/// What the publishers do: `rate` events/s over all of them (0 = max), `batch`
/// events of about `payload` bytes per request, round robin over `channels`.
struct Plan {
    publishers: usize,
    /// Publish over WebSocket instead of HTTP.
    ws: bool,
    /// WebSocket publish requests in flight per publisher.
    window: usize,
    channels: Arc<Vec<String>>,
    rate: u64,
    batch: usize,
    payload: usize,
}

/// Counters the publishers move.
#[derive(Clone, Default)]
struct Published {
    events: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

/// Publish according to `plan` for the run's duration.
async fn publish_load(
    eps: &[Endpoint],
    common: &Common,
    plan: Plan,
    counters: Published,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(common.duration);
    let per_pub = plan.rate as f64 / plan.publishers as f64;
    let mut tasks = Vec::new();
    for p in 0..plan.publishers {
        let ep = &eps[p % eps.len()];
        let schedule = Schedule {
            next_channel: p,
            step: plan.publishers,
            channels: plan.channels.clone(),
            per_sec: per_pub,
            start: Instant::now(),
            deadline,
            sent: 0,
        };
        let (batch, payload, counters) = (plan.batch, plan.payload, counters.clone());
        if plan.ws {
            // With a window of 1 this is the closed loop: send, await the answer.
            let ws = WsPublisher::connect(ep, common, p).await?;
            let window = plan.window;
            tasks.push(tokio::spawn(async move {
                pipelined(ws, schedule, window, batch, payload, counters).await
            }));
            continue;
        }
        let mut publisher = HttpPublisher::connect(ep, &common.api_key).await?;
        tasks.push(tokio::spawn(async move {
            let mut schedule = schedule;
            while let Some(ch) = schedule.next().await {
                let events: Vec<String> = (0..batch).map(|_| event(payload)).collect();
                match publisher.publish(&ch, events).await {
                    Ok(n) => {
                        counters.events.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                schedule.sent(batch);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// When one publisher sends what, and to which channel.
struct Schedule {
    /// Round robin over `channels` from this index in steps of `step` (the
    /// number of publishers), so publishers together cover every channel evenly.
    next_channel: usize,
    step: usize,
    channels: Arc<Vec<String>>,
    /// Events per second for this publisher; 0 = as fast as possible.
    per_sec: f64,
    start: Instant,
    deadline: Instant,
    /// Events sent (or attempted) so far.
    sent: u64,
}

impl Schedule {
    /// Wait until the next request is due and return its channel, or `None` once
    /// the run's time is up. A publisher that fell behind sends at once until it
    /// has caught up, so a slow answer does not quietly lower the offered rate.
    async fn next(&mut self) -> Option<String> {
        if self.per_sec > 0.0 {
            let due = self.start + Duration::from_secs_f64(self.sent as f64 / self.per_sec);
            if due >= self.deadline {
                return None;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        if Instant::now() >= self.deadline {
            return None;
        }
        let ch = self.channels[self.next_channel % self.channels.len()].clone();
        self.next_channel += self.step;
        Some(ch)
    }

    fn sent(&mut self, events: usize) {
        self.sent += events as u64;
    }
}

/// A WebSocket publisher with up to `window` publish requests in flight: one
/// task sends on schedule, another counts the answers.
async fn pipelined(
    ws: WsPublisher,
    mut schedule: Schedule,
    window: usize,
    batch: usize,
    payload: usize,
    counters: Published,
) {
    let WsPublisher { ws, key } = ws;
    let mut next = 0u64;
    let (mut reader, mut writer) = ws.into_split();
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let answers = {
        let (permits, counters) = (permits.clone(), counters.clone());
        tokio::spawn(async move {
            let _ = reader
                .read_frames(|f| match f {
                    Frame::Text(t) if rawws::find(t, b"publish_success").is_some() => {
                        counters.events.fetch_add(batch as u64, Ordering::Relaxed);
                        permits.add_permits(1);
                        true
                    }
                    Frame::Text(t) if rawws::find(t, b"publish_error").is_some() => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        permits.add_permits(1);
                        true
                    }
                    Frame::Text(_) => true,
                    Frame::Close => false,
                })
                .await;
        })
    };
    while let Some(ch) = schedule.next().await {
        let Ok(permit) = permits.acquire().await else {
            break;
        };
        permit.forget();
        next += 1;
        let events: Vec<String> = (0..batch).map(|_| event(payload)).collect();
        let frame = json!({"type": "publish", "id": format!("p{next}"), "channel": ch,
                           "events": events, "authorization": {"x-api-key": key}});
        use tokio::io::AsyncWriteExt;
        if writer
            .write_all(&rawws::text_frame(&frame.to_string()))
            .await
            .is_err()
        {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            break;
        }
        schedule.sent(batch);
    }
    // Wait for the answers still outstanding (bounded: a lost answer must not
    // hang the run).
    let _ =
        tokio::time::timeout(Duration::from_secs(10), permits.acquire_many(window as u32)).await;
    answers.abort();
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Subscriber scenarios (`fanout`, `channels`): subscribe, publish, drain, report.
/// `per_channel` subscribers on each of `plan.channels`.
async fn delivery_scenario(
    name: &str,
    common: &Common,
    per_channel: usize,
    plan: Plan,
) -> Result<serde_json::Value, String> {
    let (publishers, ws, window, rate, batch, payload) = (
        plan.publishers,
        plan.ws,
        plan.window,
        plan.rate,
        plan.batch,
        plan.payload,
    );
    let eps = endpoints(common)?;
    let channels = plan.channels.clone();
    let total_subs = channels.len() * per_channel;
    eprintln!("[{name}] connecting {total_subs} subscribers…");
    let mut sockets = Vec::with_capacity(total_subs);
    let mut pending = tokio::task::JoinSet::new();
    let common_arc = Arc::new(common.clone());
    let eps_arc = Arc::new(eps);
    for i in 0..total_subs {
        let (common, eps, channels) = (common_arc.clone(), eps_arc.clone(), channels.clone());
        pending.spawn(async move {
            let ep = &eps[i % eps.len()];
            subscriber(ep, &common, i, channels[i % channels.len()].clone()).await
        });
        if pending.len() >= 200 {
            sockets.push(
                pending
                    .join_next()
                    .await
                    .unwrap()
                    .map_err(|e| e.to_string())??,
            );
        }
    }
    while let Some(r) = pending.join_next().await {
        sockets.push(r.map_err(|e| e.to_string())??);
    }
    let done = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(count_frames(ws, done.clone(), live.clone())))
        .collect();

    let before = proc_stats(&common.server_pids);
    let published = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let (live, published) = (live.clone(), published.clone());
        let name = name.to_string();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = live.load(Ordering::Relaxed);
                eprint!(
                    "\r[{name}] {:>4.0}s  {:>9} deliveries/s  {:>9} published",
                    started.elapsed().as_secs_f64(),
                    now - last,
                    published.load(Ordering::Relaxed)
                );
                last = now;
            }
        })
    };
    let counters = Published {
        events: published.clone(),
        errors: errors.clone(),
    };
    publish_load(&eps_arc, common, plan, counters).await?;
    let publish_elapsed = started.elapsed();
    let expected = published.load(Ordering::Relaxed) * per_channel as u64;
    // Drain: wait until everything arrived or nothing moves for 3 s.
    let mut last = u64::MAX;
    let mut still = Instant::now();
    while live.load(Ordering::Relaxed) < expected {
        let now = live.load(Ordering::Relaxed);
        if now != last {
            last = now;
            still = Instant::now();
        } else if still.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let after = proc_stats(&common.server_pids);
    progress.abort();
    eprintln!();
    done.store(true, Ordering::Relaxed);
    let received = live.load(Ordering::Relaxed);
    // Readers stop at their next frame; a final publish wakes them.
    if let Ok(mut p) = HttpPublisher::connect(&eps_arc[0], &common.api_key).await {
        for ch in channels.iter() {
            let _ = p.publish(ch, vec![event(10)]).await;
        }
    }
    let mut hist = new_hist();
    for r in readers {
        if let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(5), r).await {
            hist.add(&t.hist).ok();
        }
    }
    let secs = elapsed.as_secs_f64();
    let deliveries_per_sec = received as f64 / secs;
    let mut report = json!({
        "scenario": name,
        "endpoints": common.endpoints,
        "subscribers": total_subs,
        "channels": channels.len(),
        "publishers": publishers,
        "publish_via": if ws { "websocket" } else { "http" },
        "window": window,
        "rate_target": rate,
        "batch": batch,
        "payload_bytes": payload,
        "publish_seconds": publish_elapsed.as_secs_f64(),
        "seconds": secs,
        "published_events": published.load(Ordering::Relaxed),
        "publish_errors": errors.load(Ordering::Relaxed),
        "publishes_per_sec": published.load(Ordering::Relaxed) as f64 / publish_elapsed.as_secs_f64(),
        "expected_deliveries": expected,
        "received": received,
        "lost": expected.saturating_sub(received),
        "deliveries_per_sec": deliveries_per_sec,
        "latency_ms": {"p50": pct(&hist, 0.5), "p90": pct(&hist, 0.9), "p99": pct(&hist, 0.99),
                        "p99.9": pct(&hist, 0.999), "max": hist.max() as f64 / 1000.0},
    });
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = a.cpu_secs - b.cpu_secs;
        report["server_cpu_seconds"] = json!(cpu);
        report["server_cpu_us_per_delivery"] = json!(if received > 0 {
            cpu * 1e6 / received as f64
        } else {
            0.0
        });
        report["server_cpu_seconds_per_million_deliveries"] = json!(if received > 0 {
            cpu * 1e6 / received as f64
        } else {
            0.0
        });
        report["server_rss_mib"] = json!(a.rss_kib as f64 / 1024.0);
    }
    Ok(report)
}

async fn connect_scenario(
    common: &Common,
    connections: usize,
    in_flight: usize,
    hold: u64,
) -> Result<serde_json::Value, String> {
    let eps = Arc::new(endpoints(common)?);
    let before = proc_stats(&common.server_pids);
    let common_arc = Arc::new(common.clone());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(common.duration.max(60));
    let mut set = tokio::task::JoinSet::new();
    let mut sockets = Vec::with_capacity(connections);
    let mut failed = 0usize;
    for i in 0..connections {
        if Instant::now() > deadline {
            break;
        }
        let (common, eps) = (common_arc.clone(), eps.clone());
        set.spawn(async move {
            let ep = &eps[i % eps.len()];
            subscriber(ep, &common, i, format!("/{}/c{}", common.namespace, i)).await
        });
        while set.len() >= in_flight {
            match set.join_next().await.unwrap() {
                Ok(Ok(ws)) => sockets.push(ws),
                _ => failed += 1,
            }
        }
        if i % 1000 == 999 {
            eprint!("\r[connect] {} connected", sockets.len());
        }
    }
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(ws)) => sockets.push(ws),
            _ => failed += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "\r[connect] {} connected, {failed} failed, holding {hold} s",
        sockets.len()
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let after = proc_stats(&common.server_pids);
    let mut report = json!({
        "scenario": "connect",
        "endpoints": common.endpoints,
        "connections": sockets.len(),
        "failed": failed,
        "in_flight": in_flight,
        "seconds": elapsed,
        "connections_per_sec": sockets.len() as f64 / elapsed,
    });
    if let (Some(b), Some(a)) = (before, after) {
        let grown = a.rss_kib.saturating_sub(b.rss_kib) as f64;
        report["server_rss_mib"] = json!(a.rss_kib as f64 / 1024.0);
        report["server_rss_kib_per_connection"] = json!(grown / sockets.len().max(1) as f64);
        report["server_cpu_seconds"] = json!(a.cpu_secs - b.cpu_secs);
    }
    drop(sockets);
    Ok(report)
}

async fn http_publish_scenario(
    common: &Common,
    publishers: usize,
    batch: usize,
    payload: usize,
) -> Result<serde_json::Value, String> {
    let eps = endpoints(common)?;
    let before = proc_stats(&common.server_pids);
    let published = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let channels = Arc::new(vec![format!("/{}/bench-http", common.namespace)]);
    let plan = Plan {
        publishers,
        ws: false,
        window: 1,
        channels,
        rate: 0,
        batch,
        payload,
    };
    let counters = Published {
        events: published.clone(),
        errors: errors.clone(),
    };
    publish_load(&eps, common, plan, counters).await?;
    let secs = started.elapsed().as_secs_f64();
    let after = proc_stats(&common.server_pids);
    let mut report = json!({
        "scenario": "http-publish",
        "endpoints": common.endpoints,
        "publishers": publishers,
        "batch": batch,
        "payload_bytes": payload,
        "seconds": secs,
        "events_accepted": published.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed),
        "events_per_sec": published.load(Ordering::Relaxed) as f64 / secs,
        "requests_per_sec": published.load(Ordering::Relaxed) as f64 / batch as f64 / secs,
    });
    if let (Some(b), Some(a)) = (before, after) {
        report["server_cpu_seconds"] = json!(a.cpu_secs - b.cpu_secs);
        report["server_rss_mib"] = json!(a.rss_kib as f64 / 1024.0);
    }
    Ok(report)
}

/// The AWS documentation's "transform" handler, enriched with `util.time`.
const DEFAULT_HANDLER: &str = r#"import { util } from '@aws-appsync/utils'
export function onPublish(ctx) {
  return ctx.events.map((e) => ({ id: e.id, payload: { ...e.payload, message: String(e.payload.message).toUpperCase(), at: util.time.nowISO8601() } }))
}"#;

fn handler_scenario(
    code: Option<std::path::PathBuf>,
    events: usize,
    loads: usize,
    calls: usize,
) -> Result<serde_json::Value, String> {
    let source = match &code {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => DEFAULT_HANDLER.to_string(),
    };
    let evs: Vec<serde_json::Value> = (0..events)
        .map(|i| json!({"id": crate::new_uuid().to_string(), "payload": {"message": format!("hello {i}"), "n": i}}))
        .collect();
    let ctx = json!({"identity": null, "request": {"headers": {}, "domainName": null},
        "info": {"channel": {"path": "/default/bench", "segments": ["default", "bench"]}, "channelNamespace": {"name": "default"}, "operation": "PUBLISH"},
        "events": evs, "stash": {}, "prev": null, "outErrors": [], "result": null, "error": null});
    let (mut cold, mut warm) = crate::handlers::measure(&source, &ctx, loads, calls)?;
    cold.sort();
    warm.sort();
    let q =
        |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    Ok(json!({
        "scenario": "handler",
        "events_per_invocation": events,
        "cold_start_us": {"p50": q(&cold, 0.5), "p90": q(&cold, 0.9), "max": q(&cold, 1.0)},
        "warm_invocation_us": {"p50": q(&warm, 0.5), "p90": q(&warm, 0.9), "p99": q(&warm, 0.99), "max": q(&warm, 1.0)},
        "warm_us_per_event_p50": q(&warm, 0.5) / events.max(1) as f64,
        "loads": loads,
        "calls": calls,
    }))
}

fn summary(report: &serde_json::Value) {
    let get = |k: &str| report.get(k).cloned().unwrap_or(serde_json::Value::Null);
    println!("scenario: {}", get("scenario"));
    for (k, v) in report.as_object().unwrap() {
        if k != "scenario" {
            println!("  {k}: {v}");
        }
    }
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let report = match args.scenario {
        Scenario::Handler {
            code,
            events,
            loads,
            calls,
        } => handler_scenario(code, events, loads, calls)?,
        Scenario::Fanout {
            common,
            subscribers,
            publishers,
            rate,
            payload,
            batch,
            ws_publishers,
            window,
        } => {
            let ch = format!("/{}/fanout", common.namespace);
            delivery_scenario(
                "fanout",
                &common,
                subscribers,
                Plan {
                    publishers,
                    ws: ws_publishers,
                    window: window.max(1),
                    channels: Arc::new(vec![ch]),
                    rate,
                    batch: batch.clamp(1, 5),
                    payload,
                },
            )
            .await?
        }
        Scenario::Channels {
            common,
            channels,
            per_channel,
            rate,
            publishers,
            payload,
            batch,
            ws_publishers,
            window,
        } => {
            let chs = (0..channels)
                .map(|i| format!("/{}/ch{i}", common.namespace))
                .collect();
            delivery_scenario(
                "channels",
                &common,
                per_channel,
                Plan {
                    publishers,
                    ws: ws_publishers,
                    window: window.max(1),
                    channels: Arc::new(chs),
                    rate,
                    batch: batch.clamp(1, 5),
                    payload,
                },
            )
            .await?
        }
        Scenario::Connect {
            common,
            connections,
            in_flight,
            hold,
        } => connect_scenario(&common, connections, in_flight, hold).await?,
        Scenario::HttpPublish {
            common,
            publishers,
            batch,
            payload,
        } => http_publish_scenario(&common, publishers, batch.clamp(1, 5), payload).await?,
    };
    summary(&report);
    println!("{report}");
    Ok(())
}
