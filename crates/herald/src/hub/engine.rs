//! The distribution engine: how a publish reaches subscribers.
//!
//! # Delivery contract
//!
//! * **At most once.** An event is delivered to each matching subscription at most
//!   once; nothing is stored or replayed. A subscriber that is disconnected (or
//!   closed as a slow consumer, see [`super::outbox`]) misses what is published
//!   meanwhile.
//! * **Ordered per publisher and channel.** Events that one publisher publishes to
//!   one channel, each publish awaited before the next, arrive at every subscriber
//!   in that order, and the events of one batch arrive in batch order.
//! * **Live on ack.** A subscription is in the index before its
//!   `subscribe_success` is queued, so every publish that starts after the client
//!   saw the ack reaches it.
//! * **Errors are reported.** `publish` fails only when the engine cannot carry
//!   the batch; the publisher then gets an error, never a silent success.
//!
//! The in-memory engine ([`MemoryEngine`]) serves one node and needs nothing else
//! running. Engines that span nodes (NATS, Redis) implement the same trait.

use super::local::{Delivery, LocalFanout};
use herald_core::event::EncodedEvent;
use herald_core::Channel;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// One publish request's events, encoded once, on one channel.
#[derive(Debug)]
pub struct Batch {
    pub channel: Channel,
    pub events: Vec<EncodedEvent>,
    /// When the publish was accepted.
    pub published_at: Instant,
}

/// Why an engine could not carry a batch.
#[derive(Debug, Clone)]
pub struct EngineError(pub String);

pub type EngineFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Delivery, EngineError>> + Send + 'a>>;

/// Carries batches to the subscribers of every node.
pub trait Engine: Send + Sync + 'static {
    /// A short name for logs (`memory`, `nats`, `redis`).
    fn name(&self) -> &'static str;

    /// Deliver `batch` to every matching subscription (see the module contract).
    /// Returns what was delivered on this node.
    fn publish<'a>(&'a self, batch: &'a Batch) -> EngineFuture<'a>;

    /// Whether the engine can carry publishes right now (for `/ready`).
    fn is_ready(&self) -> bool;
}

/// Single-node engine: a publish is a local fan-out.
#[derive(Debug)]
pub struct MemoryEngine {
    local: Arc<LocalFanout>,
}

impl MemoryEngine {
    pub fn new(local: Arc<LocalFanout>) -> MemoryEngine {
        MemoryEngine { local }
    }
}

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn publish<'a>(&'a self, batch: &'a Batch) -> EngineFuture<'a> {
        let delivery = self
            .local
            .deliver(&batch.channel, &batch.events, batch.published_at);
        Box::pin(std::future::ready(Ok(delivery)))
    }

    fn is_ready(&self) -> bool {
        true
    }
}
