//! The switch from history to live events for one subscription.
//!
//! A subscription to a namespace with history is inserted into the index with
//! its gate closed: what is published from then on is held in the gate, not
//! queued. The connection then reads the streams (their positions, and with
//! `since` the missed events), queues `subscribe_success` and the missed
//! events, and opens the gate: the held events follow, except those the read
//! already returned (same epoch, offset at or below the read's top). Every
//! event after the asked position arrives once, in offset order:
//!
//! * an event appended before the read is in the read (appending and
//!   delivering hold the stream's lock, reading takes it too);
//! * an event appended after the read is delivered after the insert, so it is
//!   held, and only skipped when the read returned it.
//!
//! The gate holds at most `max_frames` frames (the connection's outbound
//! queue bound): past it the subscription's connection is closed as a slow
//! consumer (as a full outbound queue would be), never silently short.

use super::history::StreamTag;
use super::outbox::{Outbound, Outbox, Pushed, SharedEvents};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Held {
    open: bool,
    items: Vec<Outbound>,
    frames: usize,
    overflowed: bool,
}

/// A subscription's gate: closed while it recovers, then open for good.
#[derive(Debug)]
pub struct Gate {
    /// Set once opened: the fast path skips the mutex.
    open: AtomicBool,
    held: Mutex<Held>,
    max_frames: usize,
}

impl Gate {
    pub fn new(max_frames: usize) -> Gate {
        Gate {
            open: AtomicBool::new(false),
            held: Mutex::new(Held::default()),
            max_frames,
        }
    }

    /// Queue `item` to `outbox`, or hold it while the gate is closed.
    pub fn push(&self, outbox: &Outbox, item: Outbound) -> Pushed {
        if self.open.load(Ordering::Acquire) {
            return outbox.push(item);
        }
        let mut held = self.held.lock().unwrap();
        if held.open {
            drop(held);
            return outbox.push(item);
        }
        let frames = match &item {
            Outbound::Data { events, .. } => events.literals.len(),
            Outbound::Frame(_) => 1,
        };
        if held.overflowed || held.frames + frames > self.max_frames {
            held.overflowed = true;
            return Pushed::Dropped;
        }
        held.frames += frames;
        held.items.push(item);
        Pushed::Queued
    }

    /// Queue what was held, minus the events at or below `tops` (channel ->
    /// (epoch, offset) as the read saw them), and open. Returns false when
    /// the gate overflowed: the caller closes the connection as a slow
    /// consumer.
    pub fn open(&self, outbox: &Outbox, tops: &HashMap<Arc<str>, (Arc<str>, u64)>) -> bool {
        let mut held = self.held.lock().unwrap();
        for item in std::mem::take(&mut held.items) {
            let item = match item {
                Outbound::Data {
                    sub_id,
                    events,
                    published_at,
                } => match after(&events, tops) {
                    Some(events) => Outbound::Data {
                        sub_id,
                        events,
                        published_at,
                    },
                    None => continue,
                },
                other => other,
            };
            outbox.push(item);
        }
        held.open = true;
        self.open.store(true, Ordering::Release);
        !held.overflowed
    }
}

/// `events` without those the read returned; `None` when none is left.
fn after(
    events: &Arc<SharedEvents>,
    tops: &HashMap<Arc<str>, (Arc<str>, u64)>,
) -> Option<Arc<SharedEvents>> {
    let Some(tag) = &events.stream else {
        return Some(events.clone());
    };
    let Some((epoch, top)) = tops.get(&tag.channel) else {
        return Some(events.clone());
    };
    if *epoch != tag.epoch {
        return Some(events.clone());
    }
    let keep: Vec<usize> = (0..tag.offsets.len())
        .filter(|&i| tag.offsets[i] > *top)
        .collect();
    match keep.len() {
        0 => None,
        n if n == tag.offsets.len() => Some(events.clone()),
        _ => Some(Arc::new(SharedEvents::tagged(
            keep.iter().map(|&i| events.literals[i].clone()),
            Some(StreamTag {
                channel: tag.channel.clone(),
                epoch: tag.epoch.clone(),
                offsets: keep.iter().map(|&i| tag.offsets[i]).collect(),
            }),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn data(offsets: &[u64]) -> Outbound {
        Outbound::Data {
            sub_id: "s".into(),
            events: Arc::new(SharedEvents::tagged(
                offsets.iter().map(|o| Arc::from(o.to_string())),
                Some(StreamTag {
                    channel: "/ns/a".into(),
                    epoch: "e".into(),
                    offsets: offsets.into(),
                }),
            )),
            published_at: Instant::now(),
        }
    }

    fn offsets(out: &[Outbound]) -> Vec<u64> {
        out.iter()
            .flat_map(|o| match o {
                Outbound::Data { events, .. } => events.stream.as_ref().unwrap().offsets.to_vec(),
                Outbound::Frame(_) => vec![],
            })
            .collect()
    }

    #[test]
    fn held_events_follow_without_what_the_read_returned() {
        let outbox = Outbox::new(100, 1 << 20);
        let gate = Gate::new(10);
        gate.push(&outbox, data(&[3, 4]));
        gate.push(&outbox, data(&[5]));
        let mut out = Vec::new();
        outbox.drain_into(&mut out);
        assert!(out.is_empty(), "held while closed");
        let tops = HashMap::from([(Arc::from("/ns/a"), (Arc::from("e"), 3))]);
        assert!(gate.open(&outbox, &tops));
        gate.push(&outbox, data(&[6]));
        outbox.drain_into(&mut out);
        assert_eq!(offsets(&out), [4, 5, 6]);
        // Another epoch is not the read's: kept whole.
        let gate = Gate::new(10);
        gate.push(&outbox, data(&[1]));
        let tops = HashMap::from([(Arc::from("/ns/a"), (Arc::from("old"), 3))]);
        gate.open(&outbox, &tops);
        out.clear();
        outbox.drain_into(&mut out);
        assert_eq!(offsets(&out), [1]);
    }

    #[test]
    fn overflow_is_reported() {
        let outbox = Outbox::new(100, 1 << 20);
        let gate = Gate::new(2);
        assert_eq!(gate.push(&outbox, data(&[1, 2])), Pushed::Queued);
        assert_eq!(gate.push(&outbox, data(&[3])), Pushed::Dropped);
        assert!(!gate.open(&outbox, &HashMap::new()));
    }
}
