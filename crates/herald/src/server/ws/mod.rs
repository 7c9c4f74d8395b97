//! The WebSocket endpoint `/event/realtime`: upgrade, then one task per
//! connection that reads client frames in order and writes the connection's
//! outbound queue.
//!
//! One task, one `select!` loop: a client frame is handled to the end (including
//! an awaited publish) before the next one is read, which keeps each connection's
//! operations in order as AppSync clients expect. Writes are coalesced: every
//! wake-up drains the whole outbound queue into one write. The socket and its
//! RFC 6455 framing are in [`super::ws_socket`] and `herald_core::websocket`.

use super::http::{error as http_error, Body};
use super::ws_socket::{ReadError, WsSocket};
use super::ConnContext;
use crate::api::{Caller, EventApi};
use crate::auth::{AuthHeaders, Identity};
use crate::hub::{Outbound, Outbox};
use crate::metrics::Transport;
use herald_core::frame::{parse_client_frame, ClientFrame, ErrorFrame};
use herald_core::index::SubKey;
use herald_core::reply;
use herald_core::websocket::{self, close_code, DecodeError, Incoming};
use herald_core::{ChannelPattern, ErrorType, OpError};
use http_body_util::Full;

use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::Instrument;

/// The subprotocol AppSync Events clients ask for.
mod subscriptions;

pub const PROTOCOL: &str = "aws-appsync-event-ws";

/// How long a connection whose connect authorization failed may stay open
/// without sending a frame before it gets its `connection_error` anyway.
const UNAUTHORIZED_GRACE: Duration = Duration::from_secs(10);
/// A socket that accepts no byte for this long is dropped (a deadline on
/// progress: a client reading slowly but steadily stays connected however long
/// a write takes). No close frame can pass a socket that takes nothing, so the
/// connection just ends, counted as `write_stalled`.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// Answer an upgrade request: 101 with the subprotocol echoed, then hand the
/// socket to a connection task. Authorization problems are *not* refused here:
/// AppSync opens the socket and answers `connection_error`, and Amplify retries
/// forever on an HTTP-level refusal.
pub fn upgrade(mut req: Request<hyper::body::Incoming>, ctx: ConnContext) -> Response<Body> {
    let headers = req.headers();
    let is_upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get("sec-websocket-key").cloned();
    let version_ok = headers
        .get("sec-websocket-version")
        .is_some_and(|v| v.as_bytes() == b"13");
    let (Some(key), true, true) = (key, is_upgrade, version_ok) else {
        let mut r = http_error(
            StatusCode::UPGRADE_REQUIRED,
            &OpError::bad_request(
                "/event/realtime is a WebSocket endpoint (subprotocol aws-appsync-event-ws, version 13)",
            ),
        );
        r.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return r;
    };

    // Auth evidence: the `header-<base64url JSON>` subprotocol, else a `?header=`
    // query parameter (GraphQL-style clients), plus plain upgrade headers (Swift).
    let offered: Vec<String> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    let mut auth = AuthHeaders::default();
    let mut auth_problem = None;
    let encoded = offered
        .iter()
        .find_map(|p| p.strip_prefix("header-").map(str::to_string))
        .or_else(|| query_param(req.uri().query(), "header"));
    if let Some(encoded) = encoded {
        match AuthHeaders::from_base64_json(&encoded) {
            Ok(h) => auth = h,
            Err(e) => auth_problem = Some(e),
        }
    }
    auth.merge_http(req.headers());
    auth.shrink_to_fit();
    let wants_protocol = offered.iter().any(|p| p == PROTOCOL);

    let on_upgrade = hyper::upgrade::on(&mut req);
    // Every log line of the connection carries its id.
    let span = tracing::info_span!("ws", conn = %next_connection_id(), peer = %ctx.peer);
    // Computed here, not in the task: whatever the task's future holds across
    // an await, every idle connection pays for.
    let max_message = ctx.api.limits().max_transport_bytes();
    let task = async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(peer = %ctx.peer, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let ws = WsSocket::new(TokioIo::new(upgraded), max_message);
        Connection::new(ctx, ws, auth, auth_problem).run().await;
    }
    .instrument(span);
    tokio::spawn(task);

    let mut r = Response::new(Full::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes())).unwrap(),
    );
    // Only ever echo the protocol name, never the `header-...` entry.
    if wants_protocol {
        h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
    }
    r
}

/// A short id for logs, unique within the process.
fn next_connection_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("c{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// A token bucket: `rate` per second with a burst of `rate`.
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(rate: u32) -> RateLimit {
        RateLimit {
            rate: rate as f64,
            tokens: rate as f64,
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct ActiveSub {
    key: SubKey,
    pattern: ChannelPattern,
    /// Kept for handlers (`ctx.identity`) in later versions.
    #[allow(dead_code)]
    identity: Identity,
}

/// Why the loop ended, and what close frame (if any) to send.
enum Exit {
    /// The client closed or the socket failed: nothing more to send. The
    /// `reason` label of the closed-connections metric.
    Gone(&'static str),
    /// Send this close frame (code, reason); the last field is the metric's
    /// reason label.
    Close(u16, &'static str, &'static str),
}

type Ws = WsSocket<TokioIo<hyper::upgrade::Upgraded>>;

struct Connection {
    ctx: ConnContext,
    api: Arc<EventApi>,
    ws: Ws,
    outbox: Arc<Outbox>,
    /// Connect-time auth evidence; the fallback for messages that carry no
    /// `authorization` object of their own.
    headers: AuthHeaders,
    /// `Err` when connect authorization failed: the first frame gets a
    /// `connection_error`.
    connect: Result<Identity, OpError>,
    /// A Vec, not a map: at most a few hundred entries, touched only by
    /// subscribe and unsubscribe, and an idle connection with one subscription
    /// keeps one small allocation instead of a hash table's four slots.
    subs: Vec<(Arc<str>, ActiveSub)>,
    rate: RateLimit,
    scratch: Vec<Outbound>,
}

impl Connection {
    fn new(
        ctx: ConnContext,
        ws: Ws,
        headers: AuthHeaders,
        auth_problem: Option<String>,
    ) -> Connection {
        let api = ctx.api.clone();
        let config = &api.config;
        let outbox = Arc::new(Outbox::new(
            config.outbound_queue_frames,
            config.outbound_queue_bytes,
        ));
        let rate = RateLimit::new(config.limits.max_publish_per_second_per_connection);
        if let Some(problem) = &auth_problem {
            tracing::info!(peer = %ctx.peer, problem, "unreadable auth subprotocol");
        }
        Connection {
            ctx,
            api,
            ws,
            outbox,
            headers,
            connect: Err(OpError::unauthorized()),
            subs: Vec::new(),
            rate,
            scratch: Vec::new(),
        }
    }

    async fn run(mut self) {
        self.api.metrics.connection_opened();
        // Boxed, like every rarely taken await below: an async fn's future is as
        // big as its largest await point, and this one lives for the whole
        // connection. Inline, auth and publish futures made every idle connection
        // carry about 6 KiB; boxed, they cost one allocation per client message.
        self.connect = Box::pin(self.api.authorize_connect(Caller {
            headers: &self.headers,
            source_ip: Some(self.ctx.peer.ip()),
            http: None,
        }))
        .await;
        self.api.track_connection(&self.outbox);
        // A connection made with an API key ends when the key is deleted.
        if let (Ok(Identity::ApiKey), Some(key)) = (&self.connect, self.headers.get("x-api-key")) {
            self.api.track_key_connection(key, &self.outbox);
        }
        let limits = self.api.limits();
        let (max_duration, ka_interval) =
            (limits.max_connection_duration, limits.keepalive_interval);
        let started = tokio::time::Instant::now();
        let lifetime = tokio::time::sleep_until(started + max_duration);
        let unauthorized_grace = tokio::time::sleep_until(started + UNAUTHORIZED_GRACE);
        let mut ka = tokio::time::interval_at(started + ka_interval, ka_interval);
        ka.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.ctx.shutdown.clone();
        // Made once, not per loop turn: every connection waits on the same
        // shutdown channel, and a fresh wait registers with (and an old one
        // leaves) its waiter list under one lock shared by all connections.
        let shutdown = super::shutdown_requested(&mut shutdown);
        tokio::pin!(lifetime, unauthorized_grace, shutdown);
        tracing::debug!(authorized = self.connect.is_ok(), "WebSocket connected");

        let exit = loop {
            let outbox = self.outbox.clone();
            // Not `biased`: under a steady stream of events the outbox branch is
            // always ready, and a fixed order would starve reads (the client's
            // unsubscribe, pings, close).
            tokio::select! {
                _ = &mut shutdown => {
                    break Exit::Close(close_code::GOING_AWAY, "Server shutting down", "shutdown");
                }
                _ = outbox.notified() => {
                    if let Some(exit) = self.flush().await {
                        break exit;
                    }
                }
                msg = self.ws.next() => {
                    if let Some(exit) = Box::pin(self.on_message(msg)).await {
                        break exit;
                    }
                }
                _ = ka.tick() => {
                    self.send(reply::KA.to_string());
                }
                _ = &mut unauthorized_grace, if self.connect.is_err() => {
                    break self.refuse_connection();
                }
                _ = &mut lifetime => {
                    break Exit::Close(close_code::NORMAL, "Connection lifetime limit reached; reconnect", "lifetime");
                }
            }
        };
        Box::pin(self.finish(exit)).await;
    }

    /// Queue a frame for this connection.
    fn send(&self, frame: String) {
        self.outbox.push(Outbound::Frame(frame));
    }

    fn send_error(&self, frame: ErrorFrame, id: Option<&str>, e: &OpError) {
        self.send(reply::error_frame(frame, id, e));
    }

    /// Write everything queued, then flush once. `Err` (the metric's reason)
    /// when the socket is gone; `Ok(true)` when the queue had overflowed (a
    /// slow consumer).
    async fn write_queued(&mut self) -> Result<bool, &'static str> {
        let overflowed = self.outbox.drain_into(&mut self.scratch);
        if self.scratch.is_empty() {
            return Ok(overflowed);
        }
        let oldest = self.scratch.iter().find_map(|item| match item {
            Outbound::Data { published_at, .. } => Some(*published_at),
            Outbound::Frame(_) => None,
        });
        // Every frame of this wake-up, header and payload, goes into one buffer
        // and out in one write; a data frame is copied from its shared pieces.
        let items = &self.scratch;
        let result = self.ws.send(WRITE_STALL, |buf| {
            for item in items {
                match item {
                    Outbound::Frame(s) => websocket::text_frame(buf, &[s]),
                    Outbound::Data { sub_id, events, .. } => match &events.stream {
                        None => {
                            for literal in events.literals.iter() {
                                websocket::text_frame(
                                    buf,
                                    &reply::data_frame_pieces(sub_id, literal),
                                );
                            }
                        }
                        Some(tag) => {
                            for (literal, offset) in events.literals.iter().zip(tag.offsets.iter())
                            {
                                let mut digits = [0; 20];
                                let offset = reply::decimal(*offset, &mut digits);
                                websocket::text_frame(
                                    buf,
                                    &reply::data_frame_positioned_pieces(
                                        sub_id,
                                        literal,
                                        &tag.channel,
                                        offset,
                                        &tag.epoch,
                                    ),
                                );
                            }
                        }
                    },
                }
            }
        });
        let result = result.await;
        self.scratch.clear();
        match result {
            Ok(()) => {
                if let Some(t) = oldest {
                    self.api
                        .metrics
                        .observe_publish_to_send(t.elapsed().as_secs_f64());
                }
                Ok(overflowed)
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::info!(
                    stall_secs = WRITE_STALL.as_secs(),
                    "client accepted no bytes; dropping it"
                );
                Err("write_stalled")
            }
            Err(e) => {
                tracing::debug!(error = %e, "write failed");
                Err("write_failed")
            }
        }
    }

    async fn flush(&mut self) -> Option<Exit> {
        match self.outbox.revoked() {
            Some(crate::hub::Revoked::KeyDeleted) => {
                tracing::info!("the connection's API key was deleted; closing");
                return Some(Exit::Close(
                    close_code::POLICY,
                    "API key deleted",
                    "key_revoked",
                ));
            }
            Some(crate::hub::Revoked::ApiDeleted) => {
                tracing::info!("the connection's API was deleted; closing");
                return Some(Exit::Close(
                    close_code::POLICY,
                    "API deleted",
                    "api_deleted",
                ));
            }
            Some(crate::hub::Revoked::FaultInjected) => {
                tracing::info!("a fault injection experiment closes the connection");
                return Some(Exit::Close(
                    close_code::GOING_AWAY,
                    "Closed by a fault injection experiment",
                    "fault_injected",
                ));
            }
            None => {}
        }
        match self.write_queued().await {
            Err(reason) => Some(Exit::Gone(reason)),
            Ok(true) => {
                tracing::warn!("slow consumer: outbound queue full, closing");
                Some(Exit::Close(
                    close_code::POLICY,
                    "Slow consumer: outbound queue full",
                    "slow_consumer",
                ))
            }
            Ok(false) => None,
        }
    }

    fn refuse_connection(&mut self) -> Exit {
        let err = self
            .connect
            .clone()
            .err()
            .unwrap_or_else(OpError::unauthorized);
        self.send(reply::connection_error(&err));
        Exit::Close(close_code::POLICY, "Unauthorized", "unauthorized")
    }

    async fn on_message(&mut self, msg: Result<Incoming, ReadError>) -> Option<Exit> {
        let msg = match msg {
            Ok(m) => m,
            Err(ReadError::Closed) => return Some(Exit::Gone("client_closed")),
            Err(ReadError::Io(e)) => {
                tracing::debug!(error = %e, "WebSocket read failed");
                return Some(Exit::Gone("read_failed"));
            }
            Err(ReadError::Decode(e)) => {
                tracing::info!(error = %e, "closing a connection that broke the WebSocket protocol");
                return Some(match e {
                    DecodeError::TooBig { .. } => {
                        Exit::Close(close_code::TOO_BIG, "Message too big", "message_too_big")
                    }
                    DecodeError::InvalidUtf8 => Exit::Close(
                        close_code::INVALID_PAYLOAD,
                        "Text frame is not UTF-8",
                        "protocol_error",
                    ),
                    DecodeError::Protocol(_) => Exit::Close(
                        close_code::PROTOCOL_ERROR,
                        "WebSocket protocol error",
                        "protocol_error",
                    ),
                });
            }
        };
        let text = match msg {
            Incoming::Text(t) => t,
            Incoming::Binary => {
                if self.connect.is_err() {
                    return Some(self.refuse_connection());
                }
                self.send_error(
                    ErrorFrame::Error,
                    None,
                    &OpError::new(
                        ErrorType::UnsupportedOperation,
                        "Binary frames are not supported; send JSON text frames",
                    ),
                );
                return None;
            }
            Incoming::Ping(payload) => {
                let pong = self
                    .ws
                    .send(WRITE_STALL, |buf| websocket::pong_frame(buf, &payload));
                return match pong.await {
                    Ok(()) => None,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        Some(Exit::Gone("write_stalled"))
                    }
                    Err(_) => Some(Exit::Gone("write_failed")),
                };
            }
            Incoming::Pong => return None,
            Incoming::Close(code) => {
                // Answer with the client's code (RFC 6455 5.5.1), then go.
                let code = code.unwrap_or(close_code::NORMAL);
                let reply = self
                    .ws
                    .send(WRITE_STALL, |buf| websocket::close_frame(buf, code, ""));
                let _ = tokio::time::timeout(Duration::from_secs(2), reply).await;
                return Some(Exit::Gone("client_closed"));
            }
        };
        if self.connect.is_err() {
            return Some(self.refuse_connection());
        }
        match parse_client_frame(&text) {
            Err(e) => self.send_error(e.frame, e.id.as_deref(), &e.error),
            Ok(ClientFrame::ConnectionInit) => {
                self.send(reply::connection_ack(self.api.limits().connection_timeout));
                self.send(reply::KA.to_string());
            }
            Ok(ClientFrame::Subscribe {
                id,
                channel,
                authorization,
                filter,
                since,
            }) => {
                self.subscribe(id, &channel, authorization, filter, since)
                    .await
            }
            Ok(ClientFrame::Unsubscribe { id }) => self.unsubscribe(&id),
            Ok(ClientFrame::History {
                id,
                channel,
                authorization,
                limit,
                next_token,
            }) => {
                let frame = self
                    .history_page(&id, &channel, authorization, limit, next_token)
                    .await;
                self.send(frame);
            }
            Ok(ClientFrame::Publish {
                id,
                channel,
                events,
                authorization,
            }) => {
                let frame = if !self.rate.allow() {
                    let limit = self.api.limits().max_publish_per_second_per_connection;
                    reply::error_frame(
                        ErrorFrame::Publish,
                        Some(&id),
                        &OpError::new(
                            ErrorType::TooManyRequests,
                            format!("Publish rate limit exceeded: {limit} requests per second per connection"),
                        ),
                    )
                } else {
                    let headers = self.evidence(authorization);
                    match self
                        .api
                        .publish(
                            Transport::WebSocket,
                            &channel,
                            events,
                            Caller {
                                headers: &headers,
                                source_ip: Some(self.ctx.peer.ip()),
                                http: None,
                            },
                        )
                        .await
                    {
                        Ok(result) => result.ws_frame(&id),
                        Err(e) => reply::error_frame(ErrorFrame::Publish, Some(&id), &e),
                    }
                };
                self.send(frame);
            }
        }
        None
    }

    /// The message's own `authorization`, or the connection's.
    pub(super) fn evidence(
        &self,
        authorization: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Cow<'_, AuthHeaders> {
        match authorization {
            Some(obj) => Cow::Owned(AuthHeaders::from_json(&obj)),
            None => Cow::Borrowed(&self.headers),
        }
    }

    /// Remove every subscription, write what is still queued (best effort), send
    /// the close frame, and wait briefly for the client's close reply.
    async fn finish(mut self, exit: Exit) {
        for (_, sub) in self.subs.drain(..) {
            self.api.hub.unsubscribe(&sub.pattern, sub.key);
            self.api.metrics.subscriptions.dec();
        }
        let label = match &exit {
            Exit::Gone(label) | Exit::Close(_, _, label) => *label,
        };
        if let Exit::Close(code, reason, _) = exit {
            if self.write_queued().await.is_ok() {
                let close = async {
                    self.ws
                        .send(WRITE_STALL, |buf| websocket::close_frame(buf, code, reason))
                        .await?;
                    // Wait for the client's close (or for it to go away); after a
                    // protocol error, read and drop what it still sends.
                    loop {
                        match self.ws.next().await {
                            Ok(Incoming::Close(_)) => break,
                            Ok(_) => {}
                            Err(ReadError::Decode(_)) => {
                                self.ws.discard_input().await;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    Ok::<(), std::io::Error>(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
            }
        }
        self.outbox.close();
        self.api.metrics.connection_closed(label);
        tracing::debug!(reason = label, "WebSocket closed");
    }
}
