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

/// What a recovery from `since` gets, given the stream's epoch and last
/// offset and the kept events after `since` (in offset order): all of them
/// and `true` when they are exactly `since + 1 ..= top` in the same epoch;
/// nothing and `false` otherwise (trimmed, expired, another epoch, or a
/// position from the future). Without `since`: nothing, `true`.
pub fn recovery(
    since: Option<&Position>,
    epoch: &str,
    top: u64,
    after: Vec<Entry>,
) -> (Vec<Entry>, bool) {
    match since {
        None => (Vec::new(), true),
        Some(p) if *p.epoch != *epoch || p.offset > top => (Vec::new(), false),
        Some(p) => {
            let whole = after.len() as u64 == top - p.offset
                && after.first().is_none_or(|e| e.offset == p.offset + 1);
            if whole {
                (after, true)
            } else {
                (Vec::new(), false)
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(offsets: &[u64]) -> Vec<Entry> {
        offsets
            .iter()
            .map(|&offset| Entry {
                offset,
                literal: "\"x\"".into(),
                at_ms: 0,
            })
            .collect()
    }

    #[test]
    fn recovery_needs_every_event_after_the_position() {
        let at = |offset| Position {
            offset,
            epoch: "e".into(),
        };
        let got = |since: Option<&Position>, after: &[u64]| {
            let (e, ok) = recovery(since, "e", 5, entries(after));
            (e.iter().map(|e| e.offset).collect::<Vec<_>>(), ok)
        };
        assert_eq!(got(Some(&at(2)), &[3, 4, 5]), (vec![3, 4, 5], true));
        assert_eq!(got(Some(&at(5)), &[]), (vec![], true));
        assert_eq!(got(None, &[]), (vec![], true));
        // Trimmed (3 gone), from the future, another epoch: nothing, false.
        assert_eq!(got(Some(&at(2)), &[4, 5]), (vec![], false));
        assert_eq!(got(Some(&at(6)), &[]), (vec![], false));
        let other = Position {
            offset: 2,
            epoch: "f".into(),
        };
        assert_eq!(got(Some(&other), &[3, 4, 5]), (vec![], false));
    }
}
