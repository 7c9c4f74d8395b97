//! How a batch travels between nodes, and the receive side every broker engine
//! shares: decode, drop duplicates and this node's own publishes, deliver locally.
//!
//! The message is JSON: `{"n":"<node id>","i":<batch id>,"c":"/ns/a","e":[...]}`
//! where each element of `e` is the event's pre-encoded string literal, embedded
//! as is, so nothing is re-escaped on either side.

use super::engine::{Batch, EngineMetrics};
use super::history::StreamTag;
use super::local::LocalFanout;
use herald_core::event::EncodedEvent;
use herald_core::Channel;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many recent batch ids a node remembers to drop duplicate copies. Copies
/// of one batch arrive back to back (one per matching broker subscription), so
/// a short window suffices.
const DEDUP_WINDOW: usize = 8192;

/// The API name as it appears in broker subject and channel names: letters,
/// digits, `-` and `_` kept, anything else (NATS's `.`, `*`, `>`; Redis glob
/// characters) replaced with `_`.
pub fn name_token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Encode a batch for the broker.
pub fn encode(node: &str, id: u64, batch: &Batch) -> Vec<u8> {
    let mut out = String::with_capacity(
        64 + node.len()
            + batch.channel.path().len()
            + batch
                .events
                .iter()
                .map(|e| e.literal.len() + 1)
                .sum::<usize>(),
    );
    out.push_str(r#"{"n":"#);
    out.push_str(&serde_json::to_string(node).unwrap());
    out.push_str(r#","i":"#);
    out.push_str(&id.to_string());
    out.push_str(r#","c":""#);
    out.push_str(batch.channel.path()); // validated: no characters to escape
    out.push_str(r#"","e":["#);
    for (i, e) in batch.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.literal);
    }
    out.push_str("]}");
    out.into_bytes()
}

/// A batch for a channel with history, in three pieces: the broker puts
/// the first offset between the first two and the epoch between the last
/// two (`..."o":<first>,"p":"<epoch>","e":[...]}`), once it has given them
/// out.
pub fn encode_positioned(node: &str, id: u64, batch: &Batch) -> (String, &'static str, String) {
    let plain = String::from_utf8(encode(node, id, batch)).expect("encode writes UTF-8");
    // `{"n":..,"i":..,"c":"..","e":[...]}`: split before `"e":`.
    let at = plain
        .find(r#","e":["#)
        .expect("encode writes the events last");
    let head = format!(r#"{},"o":"#, &plain[..at]);
    let tail = format!("\"{}", &plain[at..]);
    (head, r#","p":""#, tail)
}

#[derive(Deserialize)]
struct WireBatch<'a> {
    n: String,
    i: u64,
    c: String,
    /// With history: the first event's offset and the stream's epoch.
    #[serde(default)]
    o: Option<u64>,
    #[serde(default)]
    p: Option<String>,
    #[serde(borrow)]
    e: Vec<&'a RawValue>,
}

struct Dedup {
    seen: HashSet<(u64, u64)>,
    order: VecDeque<(u64, u64)>,
}

/// The receiving half shared by broker engines.
pub struct Receiver {
    node: String,
    node_hash: u64,
    local: Arc<LocalFanout>,
    metrics: EngineMetrics,
    /// Held while delivering, so copies arriving on different broker
    /// subscriptions are deduplicated and delivered in arrival order.
    dedup: Mutex<Dedup>,
}

fn hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Receiver {
    pub fn new(node: &str, local: Arc<LocalFanout>, metrics: EngineMetrics) -> Receiver {
        Receiver {
            node: node.to_string(),
            node_hash: hash(node),
            local,
            metrics,
            dedup: Mutex::new(Dedup {
                seen: HashSet::with_capacity(DEDUP_WINDOW),
                order: VecDeque::with_capacity(DEDUP_WINDOW),
            }),
        }
    }

    /// Handle one message from the broker.
    pub fn receive(&self, payload: &[u8]) {
        let Ok(wire) = serde_json::from_slice::<WireBatch>(payload) else {
            tracing::warn!(
                bytes = payload.len(),
                "ignoring a malformed message from the engine"
            );
            return;
        };
        if wire.e.is_empty() {
            // A history stream's marker (it holds an epoch): nothing to deliver.
            return;
        }
        let stream = match (wire.o, &wire.p) {
            (Some(first), Some(epoch)) => Some(StreamTag {
                channel: wire.c.as_str().into(),
                epoch: epoch.as_str().into(),
                offsets: (first..first + wire.e.len() as u64).collect(),
            }),
            _ => None,
        };
        if wire.n == self.node && stream.is_none() {
            // Our own publish, already delivered here. (A publish with
            // history is delivered from here on every node, its own too: in
            // offset order.)
            self.metrics.duplicates.inc();
            return;
        }
        let Ok(channel) = Channel::parse(&wire.c) else {
            tracing::warn!(channel = %wire.c, "ignoring a message for an invalid channel");
            return;
        };
        let events: Vec<EncodedEvent> = wire
            .e
            .iter()
            .map(|raw| EncodedEvent {
                literal: raw.get().into(),
            })
            .collect();
        let key = (hash(&wire.n) ^ self.node_hash.rotate_left(1), wire.i);
        let mut dedup = self.dedup.lock().unwrap();
        if !dedup.seen.insert(key) {
            self.metrics.duplicates.inc();
            return;
        }
        dedup.order.push_back(key);
        if dedup.order.len() > DEDUP_WINDOW {
            if let Some(old) = dedup.order.pop_front() {
                dedup.seen.remove(&old);
            }
        }
        self.local
            .deliver(&channel, &events, Instant::now(), stream);
        self.metrics.received.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_dedup() {
        let batch = Batch {
            channel: Channel::parse("/ns/a").unwrap(),
            events: vec![
                EncodedEvent::encode(r#"{"x":"<\"q\">"}"#),
                EncodedEvent::encode("2"),
            ],
            published_at: Instant::now(),
        };
        let bytes = encode("node-a", 7, &batch);
        let wire: WireBatch = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (wire.n.as_str(), wire.i, wire.c.as_str()),
            ("node-a", 7, "/ns/a")
        );
        assert_eq!(wire.e[0].get(), &*batch.events[0].literal);

        let metrics = EngineMetrics::default();
        let rx = Receiver::new("node-b", Arc::new(LocalFanout::new()), metrics.clone());
        rx.receive(&bytes);
        rx.receive(&bytes);
        rx.receive(&encode("node-b", 8, &batch));
        rx.receive(b"garbage");
        assert_eq!(metrics.received.get(), 1);
        assert_eq!(metrics.duplicates.get(), 2);
    }

    #[test]
    fn positioned_batches_carry_offsets_and_come_back_to_their_node() {
        let batch = Batch {
            channel: Channel::parse("/ns/a").unwrap(),
            events: vec![EncodedEvent::encode("1"), EncodedEvent::encode("2")],
            published_at: Instant::now(),
        };
        let (head, middle, tail) = encode_positioned("node-a", 9, &batch);
        let bytes = format!("{head}41{middle}ep{tail}");
        let wire: WireBatch = serde_json::from_str(&bytes).unwrap();
        assert_eq!(
            (wire.o, wire.p.as_deref(), wire.e.len()),
            (Some(41), Some("ep"), 2)
        );
        // Its own node delivers it (with history, nothing was delivered locally first).
        let metrics = EngineMetrics::default();
        let rx = Receiver::new("node-a", Arc::new(LocalFanout::new()), metrics.clone());
        rx.receive(bytes.as_bytes());
        assert_eq!((metrics.received.get(), metrics.duplicates.get()), (1, 0));
    }
}
