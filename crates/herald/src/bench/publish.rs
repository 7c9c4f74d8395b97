//! The publishing side of a run: HTTP and (pipelined) WebSocket publishers on a
//! schedule, and the counters they move.

use super::rawws::{self, Frame, RawWs};
use super::subscribe::open_ws;
use super::target::{now_us, Endpoint};
use super::Common;
use bytes::Bytes;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn event(payload: usize) -> String {
    // {"t":<µs>,"p":"xxx..."} padded to about `payload` bytes.
    let pad = payload.saturating_sub(30).max(1);
    format!(r#"{{"t":{},"p":"{}"}}"#, now_us(), "x".repeat(pad))
}

/// A keep-alive HTTP/1.1 connection for publishing.
pub struct HttpPublisher {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    authority: String,
    key: String,
}

impl HttpPublisher {
    pub async fn connect(ep: &Endpoint, key: &str) -> Result<HttpPublisher, String> {
        let tcp = tokio::time::timeout(PUBLISH_TIMEOUT, tokio::net::TcpStream::connect(ep.addr))
            .await
            .map_err(|_| format!("cannot connect within {} s", PUBLISH_TIMEOUT.as_secs()))?
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
    pub async fn publish(&mut self, channel: &str, events: Vec<String>) -> Result<usize, String> {
        let body = json!({"channel": channel, "events": events}).to_string();
        let req = hyper::Request::post("/event")
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .header("x-api-key", &self.key)
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        // Bounded: a publisher never waits forever on a server that stopped
        // answering (once seen in CI under heavy load, with the server killed).
        let exchange = async {
            self.sender.ready().await.map_err(|e| e.to_string())?;
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            use http_body_util::BodyExt;
            let _ = resp.into_body().collect().await;
            Ok::<_, String>(status)
        };
        let status = tokio::time::timeout(PUBLISH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {} s", PUBLISH_TIMEOUT.as_secs()))??;
        if status.is_success() {
            Ok(events.len())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

impl HttpPublisher {
    fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// A WebSocket publisher's connection, acknowledged and ready; [`pipelined`]
/// drives it.
pub struct WsPublisher {
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
pub struct Plan {
    pub publishers: usize,
    /// Publish over WebSocket instead of HTTP.
    pub ws: bool,
    /// WebSocket publish requests in flight per publisher.
    pub window: usize,
    pub channels: Arc<Vec<String>>,
    pub rate: u64,
    pub batch: usize,
    pub payload: usize,
}

/// Counters the publishers move.
#[derive(Clone, Default)]
pub struct Published {
    /// Events the server accepted.
    pub events: Arc<AtomicU64>,
    /// Publish requests that failed (refused, unanswered, connection lost).
    pub errors: Arc<AtomicU64>,
    /// Events in those requests: never counted as delivered or as "not lost".
    pub failed_events: Arc<AtomicU64>,
}

impl Published {
    fn failed(&self, events: usize) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.failed_events
            .fetch_add(events as u64, Ordering::Relaxed);
    }
}

/// The longest one HTTP publish may take before it counts as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits between failed attempts, so a dead server is not hammered in a hot
/// loop: 50 ms doubling to 1 s, back to nothing after a success.
#[derive(Default)]
struct Backoff(Option<Duration>);

impl Backoff {
    async fn failed(&mut self) {
        let wait = self.0.map_or(Duration::from_millis(50), |d| {
            (d * 2).min(Duration::from_secs(1))
        });
        self.0 = Some(wait);
        tokio::time::sleep(wait).await;
    }

    fn succeeded(&mut self) {
        self.0 = None;
    }
}

/// Publish according to `plan` for the run's duration.
pub async fn publish_load(
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
        let mut publisher = Some(HttpPublisher::connect(ep, &common.api_key).await?);
        let (addr, key) = (
            Endpoint {
                url: ep.url.clone(),
                addr: ep.addr,
            },
            common.api_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut schedule = schedule;
            let mut backoff = Backoff::default();
            while let Some(ch) = schedule.next().await {
                schedule.sent(batch);
                // A lost connection is opened again (after the backoff).
                if publisher.as_ref().is_none_or(HttpPublisher::is_closed) {
                    publisher = HttpPublisher::connect(&addr, &key).await.ok();
                }
                let events: Vec<String> = (0..batch).map(|_| event(payload)).collect();
                let result = match publisher.as_mut() {
                    Some(p) => p.publish(&ch, events).await,
                    None => Err("cannot connect".into()),
                };
                match result {
                    Ok(n) => {
                        counters.events.fetch_add(n as u64, Ordering::Relaxed);
                        backoff.succeeded();
                    }
                    Err(_) => {
                        counters.failed(batch);
                        backoff.failed().await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// When one publisher sends what, and to which channel.
pub struct Schedule {
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
/// task sends on schedule, another counts the answers. A lost connection ends
/// the publisher; every request it had not had an answer for counts as failed.
pub async fn pipelined(
    ws: WsPublisher,
    mut schedule: Schedule,
    window: usize,
    batch: usize,
    payload: usize,
    counters: Published,
) {
    let WsPublisher { ws, key } = ws;
    let mut sent = 0u64;
    let answered = Arc::new(AtomicU64::new(0));
    let (mut reader, mut writer) = ws.into_split();
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let answers = {
        let (permits, counters, answered) = (permits.clone(), counters.clone(), answered.clone());
        tokio::spawn(async move {
            let _ = reader
                .read_frames(|f| match f {
                    Frame::Text(t) if rawws::find(t, b"publish_success").is_some() => {
                        counters.events.fetch_add(batch as u64, Ordering::Relaxed);
                        answered.fetch_add(1, Ordering::Relaxed);
                        permits.add_permits(1);
                        true
                    }
                    Frame::Text(t) if rawws::find(t, b"publish_error").is_some() => {
                        counters.failed(batch);
                        answered.fetch_add(1, Ordering::Relaxed);
                        permits.add_permits(1);
                        true
                    }
                    Frame::Text(_) => true,
                    Frame::Close => false,
                })
                .await;
            // The connection is gone: wake a sender waiting for a permit.
            permits.close();
        })
    };
    while let Some(ch) = schedule.next().await {
        let Ok(permit) = permits.acquire().await else {
            break;
        };
        permit.forget();
        sent += 1;
        schedule.sent(batch);
        let events: Vec<String> = (0..batch).map(|_| event(payload)).collect();
        let frame = json!({"type": "publish", "id": format!("p{sent}"), "channel": ch,
                           "events": events, "authorization": {"x-api-key": key}});
        use tokio::io::AsyncWriteExt;
        if writer
            .write_all(&rawws::text_frame(&frame.to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    // Wait for the answers still outstanding (bounded: a lost answer must not
    // hang the run).
    let _ =
        tokio::time::timeout(Duration::from_secs(10), permits.acquire_many(window as u32)).await;
    answers.abort();
    let unanswered = sent.saturating_sub(answered.load(Ordering::Relaxed));
    for _ in 0..unanswered {
        counters.failed(batch);
    }
}
