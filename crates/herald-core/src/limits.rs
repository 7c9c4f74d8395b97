//! The limits AppSync Events enforces, with its defaults.

use std::time::Duration;

/// Protocol limits. Defaults are AppSync's; the ones AppSync lets users raise are
/// configurable in Herald (`[limits]` in the config file), the fixed ones too,
/// because a self-hosted server should not forbid what its operator wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Events in one publish request (AppSync: 5, fixed).
    pub max_events_per_publish: usize,
    /// Bytes of one event, the JSON text as published (AppSync: 240 KB; Herald
    /// reads KB as KiB: 245,760 bytes).
    pub max_event_bytes: usize,
    /// Bytes of all events of one publish request together (AppSync: 1.2 MB;
    /// Herald: 1,258,291 bytes = 1.2 MiB).
    pub max_request_bytes: usize,
    /// Subscriptions one WebSocket connection may hold (AppSync: 200, adjustable).
    pub max_subscriptions_per_connection: usize,
    /// Publish requests per second per WebSocket connection (AppSync: 25). A token
    /// bucket with this rate and burst. 0 disables the limit.
    pub max_publish_per_second_per_connection: u32,
    /// Longest a WebSocket connection may live (AppSync: 24 h).
    pub max_connection_duration: Duration,
    /// Interval between `ka` frames (AppSync: 60 s).
    pub keepalive_interval: Duration,
    /// `connectionTimeoutMs` announced in `connection_ack` (AppSync: 300,000 ms):
    /// clients reconnect after this long without a `ka` or `data` frame.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events_per_publish: 5,
            max_event_bytes: 240 * 1024,
            max_request_bytes: 1_258_291,
            max_subscriptions_per_connection: 200,
            max_publish_per_second_per_connection: 25,
            max_connection_duration: Duration::from_secs(24 * 60 * 60),
            keepalive_interval: Duration::from_secs(60),
            connection_timeout: Duration::from_millis(300_000),
        }
    }
}

impl Limits {
    /// Largest HTTP body or WebSocket message the transport reads at all. A publish
    /// may carry up to `max_request_bytes` of events, which JSON escaping can
    /// inflate; on top come the channel, id and authorization fields. Anything
    /// bigger is refused before it is parsed (HTTP 413, WebSocket close 1009).
    pub fn max_transport_bytes(&self) -> usize {
        self.max_request_bytes
            .saturating_mul(2)
            .saturating_add(64 * 1024)
    }
}
