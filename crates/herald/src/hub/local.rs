//! Fan-out to the subscriptions held on this node.

use super::filter::{self, EventFilter};
use super::gate::Gate;
use super::history::StreamTag;
use super::outbox::{Outbound, Outbox, Pushed, SharedEvents};
use herald_core::event::EncodedEvent;
use herald_core::index::{SubKey, SubscriptionIndex};
use herald_core::{Channel, ChannelPattern};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// A subscription as the index holds it: where to queue, under which id, and
/// what its events must match.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub outbox: Arc<Outbox>,
    pub sub_id: Arc<str>,
    pub filter: Option<Arc<EventFilter>>,
    /// In a namespace with history: holds live events while the
    /// subscription recovers (see [`super::gate`]).
    pub gate: Option<Arc<Gate>>,
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Frames queued to subscribers.
    pub queued: u64,
    /// Frames refused by full (slow-consumer) or closing connections.
    pub dropped: u64,
    /// Events a subscription's filter held back.
    pub filtered: u64,
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

    /// Remove every subscription in namespace `ns`: (pattern, subscriber).
    pub fn drain_namespace(&self, ns: &str) -> Vec<(ChannelPattern, Subscriber)> {
        self.index
            .write()
            .unwrap()
            .drain_namespace(ns)
            .into_iter()
            .filter_map(|(path, wildcard, _, sub)| {
                let text = if wildcard { format!("{path}/*") } else { path };
                ChannelPattern::parse(&text).ok().map(|p| (p, sub))
            })
            .collect()
    }

    /// Remove a subscription; whether it was there.
    pub fn unsubscribe(&self, pattern: &ChannelPattern, key: SubKey) -> bool {
        self.index.write().unwrap().remove(pattern, key).is_some()
    }

    /// Queue `events`, in order, to every subscription matching `channel`: one
    /// queue entry per subscription, sharing the encoded events. A filtered
    /// subscription gets the events its filter accepts (decoded once per
    /// publish, on the first filtered subscription met). `stream`: their
    /// positions, in a namespace with history.
    pub fn deliver(
        &self,
        channel: &Channel,
        events: &[EncodedEvent],
        published_at: Instant,
        stream: Option<StreamTag>,
    ) -> Delivery {
        let shared = Arc::new(SharedEvents::tagged(
            events.iter().map(|e| e.literal.clone()),
            stream.clone(),
        ));
        let n = events.len() as u64;
        let mut d = Delivery::default();
        let mut decoded: Option<Vec<Option<serde_json::Value>>> = None;
        // Subsets by mask of accepted events (a publish has at most a few).
        let mut subsets: Vec<(u64, Arc<SharedEvents>)> = Vec::new();
        let index = self.index.read().unwrap();
        index.for_each_match(channel, |_, sub| {
            let (events_for_sub, count) = match &sub.filter {
                None => (shared.clone(), n),
                Some(f) => {
                    let payloads = decoded.get_or_insert_with(|| filter::decode(events));
                    let mask = payloads
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| f.accepts(p.as_ref()))
                        .fold(0u64, |m, (i, _)| m | (1 << i.min(63)));
                    let count = u64::from(mask.count_ones());
                    d.filtered += n - count;
                    if count == 0 {
                        return;
                    }
                    if count == n {
                        (shared.clone(), n)
                    } else {
                        let subset = match subsets.iter().find(|(m, _)| *m == mask) {
                            Some((_, s)) => s.clone(),
                            None => {
                                let keep = |i: &usize| mask & (1 << (*i).min(63)) != 0;
                                let s = Arc::new(SharedEvents::tagged(
                                    events
                                        .iter()
                                        .enumerate()
                                        .filter(|(i, _)| keep(i))
                                        .map(|(_, e)| e.literal.clone()),
                                    stream.as_ref().map(|t| StreamTag {
                                        channel: t.channel.clone(),
                                        epoch: t.epoch.clone(),
                                        offsets: (0..t.offsets.len())
                                            .filter(keep)
                                            .map(|i| t.offsets[i])
                                            .collect(),
                                    }),
                                ));
                                subsets.push((mask, s.clone()));
                                s
                            }
                        };
                        (subset, count)
                    }
                }
            };
            let item = Outbound::Data {
                sub_id: sub.sub_id.clone(),
                events: events_for_sub,
                published_at,
            };
            let pushed = match &sub.gate {
                Some(gate) => gate.push(&sub.outbox, item),
                None => sub.outbox.push(item),
            };
            match pushed {
                Pushed::Queued => d.queued += count,
                Pushed::Dropped => d.dropped += count,
            }
        });
        d
    }
}
