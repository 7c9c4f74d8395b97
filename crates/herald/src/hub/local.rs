//! Fan-out to the subscriptions held on this node.

use super::outbox::{Outbound, Outbox, Pushed, SharedEvents};
use herald_core::event::EncodedEvent;
use herald_core::index::{SubKey, SubscriptionIndex};
use herald_core::{Channel, ChannelPattern};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// A subscription as the index holds it: where to queue, and under which id.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub outbox: Arc<Outbox>,
    pub sub_id: Arc<str>,
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Frames queued to subscribers.
    pub queued: u64,
    /// Frames refused by full (slow-consumer) or closing connections.
    pub dropped: u64,
}

/// The subscriptions of this node.
///
/// A `std::sync::RwLock` around the index: publishes take the read lock only long
/// enough to queue frames (non-blocking pushes), subscribes and unsubscribes take
/// the write lock for one insert or remove. No `.await` happens under the lock.
#[derive(Debug, Default)]
pub struct LocalFanout {
    index: RwLock<SubscriptionIndex<Subscriber>>,
    next_key: AtomicU64,
}

impl LocalFanout {
    pub fn new() -> LocalFanout {
        LocalFanout::default()
    }

    /// Add a subscription. `on_live` runs while the index lock is still held, right
    /// after the insert: the connection queues its `subscribe_success` there, so
    /// the ack precedes every `data` frame of the subscription and every publish
    /// that starts after the ack reaches it.
    pub fn subscribe(
        &self,
        pattern: &ChannelPattern,
        sub: Subscriber,
        on_live: impl FnOnce(),
    ) -> SubKey {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let mut index = self.index.write().unwrap();
        index.insert(pattern, key, sub);
        on_live();
        key
    }

    /// Remove a subscription; whether it was there.
    pub fn unsubscribe(&self, pattern: &ChannelPattern, key: SubKey) -> bool {
        self.index.write().unwrap().remove(pattern, key).is_some()
    }

    /// Queue `events`, in order, to every subscription matching `channel`: one
    /// queue entry per subscription, sharing the encoded events.
    pub fn deliver(
        &self,
        channel: &Channel,
        events: &[EncodedEvent],
        published_at: Instant,
    ) -> Delivery {
        let shared = Arc::new(SharedEvents::new(events.iter().map(|e| e.literal.clone())));
        let n = events.len() as u64;
        let mut d = Delivery::default();
        let index = self.index.read().unwrap();
        index.for_each_match(channel, |_, sub| {
            let item = Outbound::Data {
                sub_id: sub.sub_id.clone(),
                events: shared.clone(),
                published_at,
            };
            match sub.outbox.push(item) {
                Pushed::Queued => d.queued += n,
                Pushed::Dropped => d.dropped += n,
            }
        });
        d
    }
}
