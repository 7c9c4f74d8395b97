//! The hub: subscriptions and fan-out.
//!
//! [`LocalFanout`] owns this node's subscription index and queues frames into
//! each connection's bounded [`Outbox`]; an [`Engine`] carries each publish to
//! the subscribers of every node (the in-memory engine: just this one).

pub mod engine;
pub mod local;
pub mod outbox;

pub use engine::{Batch, Engine, EngineError, MemoryEngine};
pub use local::{Delivery, LocalFanout, Subscriber};
pub use outbox::{Outbound, Outbox, Pushed};

use std::sync::Arc;

/// Subscriptions of this node plus the engine that reaches the others.
pub struct Hub {
    pub local: Arc<LocalFanout>,
    pub engine: Box<dyn Engine>,
}

impl Hub {
    /// A single-node hub on the in-memory engine.
    pub fn memory() -> Hub {
        let local = Arc::new(LocalFanout::new());
        Hub {
            engine: Box::new(MemoryEngine::new(local.clone())),
            local,
        }
    }
}
