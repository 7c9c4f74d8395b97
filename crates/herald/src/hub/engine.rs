//! The distribution engine: how a publish reaches the subscribers of other nodes.
//!
//! The hub delivers every publish to this node's subscribers itself; an engine
//! carries it to the other nodes, each of which delivers it to its own. The
//! in-memory engine ([`MemoryEngine`]) is the single-node default and carries
//! nothing; the NATS and Redis engines share a broker between nodes.
//!
//! # Delivery contract (every engine)
//!
//! * **At most once.** Nothing is stored or replayed (channel history, where
//!   a namespace asks for it, is the hub's: [`super::history`]). A subscriber that is
//!   disconnected, or closed as a slow consumer (see [`super::outbox`]), misses
//!   what is published meanwhile. A node delivers each publish once per matching
//!   subscription, even when several of its broker subscriptions match, and never
//!   delivers its own publish a second time when it comes back from the broker
//!   (a publish with the broker's history is delivered only when it comes back).
//! * **Ordered per publisher and channel.** Events one publisher publishes to one
//!   channel (each publish awaited before the next) reach every subscriber, on any
//!   node, in that order; a batch arrives in batch order.
//! * **Live on ack.** [`Engine::add_interest`] resolves only once the broker has
//!   registered the node's interest, and the hub sends `subscribe_success` after
//!   it, so a publish on any node that starts after the ack reaches the
//!   subscription (while the broker is reachable).
//! * **Interest-based routing.** A node holds broker subscriptions only for the
//!   exact channels and wildcard prefixes its clients subscribe to, and drops each
//!   when its last local subscriber leaves. Publishes cross the broker once, not
//!   once per subscriber.
//! * **Outages.** While the broker is unreachable, local delivery keeps working;
//!   [`Engine::publish`] fails, so the publisher gets an error (its events did
//!   reach this node's subscribers), and `/ready` answers 503. Subscriptions made
//!   meanwhile are local until the broker is back. On reconnect (with backoff) the
//!   node's interests are restored. Subscribers miss what other nodes publish
//!   during the outage, and what this node published while it was down.

use super::local::Delivery;
use herald_core::event::EncodedEvent;
use herald_core::{Channel, ChannelPattern};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::pin::Pin;
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

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// The result of a publish: what this node delivered, or why others were not reached.
pub type PublishOutcome = Result<Delivery, EngineError>;

/// Counters every engine keeps (registered with the API's metrics).
#[derive(Clone, Default)]
pub struct EngineMetrics {
    /// 1 while connected to the broker.
    pub connected: Gauge,
    pub reconnects: Counter,
    /// Batches sent to the broker.
    pub published: Counter,
    /// Batches that could not be sent.
    pub publish_errors: Counter,
    /// Batches received from other nodes and delivered here.
    pub received: Counter,
    /// Copies received more than once (overlapping subscriptions) or from this
    /// node itself, and not delivered again.
    pub duplicates: Counter,
}

/// Carries batches between nodes. See the module documentation for the contract.
pub trait Engine: Send + Sync + 'static {
    /// A short name for logs and `/ready` (`memory`, `nats`, `redis`).
    fn name(&self) -> &'static str;

    /// Send `batch` to the other nodes.
    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), EngineError>>;

    /// This node now has a subscriber for `pattern` (called once per pattern, by
    /// the hub's reference count). Resolves when remote publishes will arrive.
    fn add_interest<'a>(&'a self, pattern: &'a ChannelPattern) -> BoxFuture<'a, ()>;

    /// The last local subscriber for `pattern` left.
    fn remove_interest(&self, pattern: &ChannelPattern);

    /// Whether the engine can carry publishes right now (for `/ready`).
    fn is_ready(&self) -> bool;

    /// The broker's channel history, when this engine keeps one (see
    /// [`super::history::cluster`]); `None` means the hub keeps history in
    /// this node's memory.
    fn history(&self) -> Option<&dyn super::history::ClusterHistory> {
        None
    }
}

/// Single node: nothing to carry.
#[derive(Debug, Default)]
pub struct MemoryEngine;

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn publish<'a>(&'a self, _batch: &'a Batch) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn add_interest<'a>(&'a self, _pattern: &'a ChannelPattern) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    fn remove_interest(&self, _pattern: &ChannelPattern) {}

    fn is_ready(&self) -> bool {
        true
    }
}
