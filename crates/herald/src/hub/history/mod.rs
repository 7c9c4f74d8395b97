//! Channel history: the last events of each channel of a namespace that asks
//! for it, so a client that reconnects gets what it missed.
//!
//! # Contract
//!
//! * **Streams.** Each channel of a namespace with `history` has a stream: an
//!   **epoch** (a random string chosen when the stream is created) and the
//!   **offsets** of its events, 1, 2, 3, ... in publish order, without gaps.
//!   A `(offset, epoch)` pair is a position; offsets are only comparable
//!   within one epoch.
//! * **Retention.** A stream keeps its last `size` events and none older than
//!   `ttl`. Dropping old events keeps the epoch (offsets go on); losing the
//!   stream itself (a restart of the in-memory store, or eviction under the
//!   server's `[history]` bounds) starts a new epoch at the next use, so a
//!   client holding an old position learns that it cannot recover.
//! * **Order.** Appending to a stream and delivering to this node's
//!   subscribers happen under the stream's lock, so every subscriber sees a
//!   channel's events in offset order.
//! * **Recovery.** A subscription from position `p` gets every event after
//!   `p` then the live ones, none twice and none missing (see
//!   [`super::gate`]), and `recovered: true`; or, when events after `p` are no
//!   longer kept or the epoch differs, nothing from history and
//!   `recovered: false` (the client must refetch its state).
//! * **Where.** With the `memory` engine the streams are memory on this node
//!   (bounds and eviction in [`memory`]); with the Redis or NATS engine they
//!   are the broker's, shared by every node ([`cluster`], [`redis`],
//!   [`jetstream`]).

pub mod cluster;
pub mod jetstream;
pub mod memory;
pub mod redis;
pub mod settings;

pub use cluster::ClusterHistory;
pub use memory::MemoryHistory;
pub use settings::{HistoryFile, HistoryLimits, HistoryLimitsFile, HistorySettings};

use std::sync::Arc;

/// A position in a channel's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: Arc<str>,
}

/// Where a publish's events sit in their stream: travels with them to each
/// subscriber, whose `data` frames carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTag {
    pub channel: Arc<str>,
    pub epoch: Arc<str>,
    /// One per event, in order.
    pub offsets: Box<[u64]>,
}

/// One kept event.
#[derive(Debug, Clone)]
pub struct Entry {
    pub offset: u64,
    /// The event as a JSON string literal (shared with the frames that
    /// delivered it).
    pub literal: Arc<str>,
    /// When it was published (ms since the Unix epoch).
    pub at_ms: u64,
}

/// What a read of one stream found.
#[derive(Debug, Clone)]
pub struct Read {
    pub channel: Arc<str>,
    /// The stream's current position (its last offset; 0 before any event).
    pub top: Position,
    /// The events asked for, in order.
    pub entries: Vec<Entry>,
    /// Whether everything after the asked position is in `entries` (always
    /// true when no position was asked).
    pub recovered: bool,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
