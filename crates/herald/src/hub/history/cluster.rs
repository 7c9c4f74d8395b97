//! History kept by the engine's broker, shared by every node of a cluster.
//!
//! The same contract as the memory store ([`super`]), with offsets given out
//! by the broker so that they are the same on every node, and any node can
//! serve a recovery. What changes:
//!
//! * **Publishing** a batch to a channel with history is one atomic step on
//!   the broker: the events are appended to the channel's stream and sent to
//!   every node (the publishing node included) with their offsets, in offset
//!   order. A node delivers such events when they come back from the broker,
//!   never on its own first, so every node sees a channel's events in offset
//!   order. An event is acknowledged to its publisher only once it is in the
//!   stream; when the broker is unreachable the publish fails and nothing is
//!   delivered anywhere.
//! * **Live delivery** stays the engine's at-most-once transport: an event
//!   lost on the way to a node (a broker reconnect) shows as a gap in the
//!   offsets its subscribers see, which the client helper fills by
//!   resubscribing with `since`.

use super::{HistorySettings, Position, Read};
use crate::hub::engine::{Batch, BoxFuture, EngineError};
use herald_core::ChannelPattern;
use std::sync::Arc;

/// A broker's channel streams (see the module documentation).
pub trait ClusterHistory: Send + Sync {
    /// Append `batch` to its channel's stream and send it to every node.
    fn append<'a>(
        &'a self,
        batch: &'a Batch,
        settings: HistorySettings,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// As [`super::MemoryHistory::recover`].
    fn recover<'a>(
        &'a self,
        channel: &'a str,
        settings: HistorySettings,
        since: Option<&'a Position>,
        create: bool,
    ) -> BoxFuture<'a, Result<Option<Read>, EngineError>>;

    /// As [`super::MemoryHistory::page`].
    fn page<'a>(
        &'a self,
        channel: &'a str,
        settings: HistorySettings,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<(Read, bool)>, EngineError>>;

    /// As [`super::MemoryHistory::matching`] (for a wildcard).
    fn matching<'a>(
        &'a self,
        pattern: &'a ChannelPattern,
    ) -> BoxFuture<'a, Result<Vec<Arc<str>>, EngineError>>;
}
