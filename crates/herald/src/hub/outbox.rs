//! A connection's outbound queue.
//!
//! Publishers push into it without ever waiting; the connection's task drains it
//! and writes to the socket. It is bounded twice, by frames and by bytes, because
//! a few 240 KB events weigh more than thousands of small ones.
//!
//! **When it is full, the subscriber is a slow consumer**: the push that does not
//! fit is refused, the queue is marked overflowed, and the connection task closes
//! the socket with code 1008 ("slow consumer") as soon as it wakes. Nothing is
//! silently dropped from a connection that stays open: a client either gets every
//! event in order or sees its connection closed, and reconnects (Amplify does so
//! on its own) knowing it may have missed events. The publisher and every other
//! subscriber are unaffected.
//!
//! A `std::sync::Mutex` rather than tokio's: the critical sections are a few
//! pointer moves and never span an `.await`.

use super::history::StreamTag;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// The events of one publish, encoded once and shared by every subscriber's
/// queue entry.
#[derive(Debug)]
pub struct SharedEvents {
    /// Each event as a JSON string literal (what follows `"event":`).
    pub literals: Box<[Arc<str>]>,
    /// Their total length.
    pub bytes: usize,
    /// Their channel, epoch and offsets, in a namespace with history (the
    /// `data` frames carry them).
    pub stream: Option<StreamTag>,
}

impl SharedEvents {
    pub fn new(literals: impl IntoIterator<Item = Arc<str>>) -> SharedEvents {
        SharedEvents::tagged(literals, None)
    }

    pub fn tagged(
        literals: impl IntoIterator<Item = Arc<str>>,
        stream: Option<StreamTag>,
    ) -> SharedEvents {
        let literals: Box<[Arc<str>]> = literals.into_iter().collect();
        let bytes = literals.iter().map(|l| l.len()).sum();
        SharedEvents {
            literals,
            bytes,
            stream,
        }
    }
}

/// Why a connection was ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The API key it connected with was deleted.
    KeyDeleted = 1,
    /// Its API was deleted.
    ApiDeleted = 2,
    /// A fault injection experiment closes it (`herald:appsync:close-connections`).
    FaultInjected = 3,
}

/// One queue entry.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// `data` frames, one per event of a publish, for one subscription: built at
    /// write time from the subscription id and the shared encoded events. One
    /// entry per publish (not per event) keeps the queue and its lock traffic
    /// small.
    Data {
        sub_id: Arc<str>,
        events: Arc<SharedEvents>,
        /// When the publish was accepted (for the publish-to-send metric).
        published_at: Instant,
    },
    /// Any other frame, already serialized.
    Frame(String),
}

impl Outbound {
    /// Frames this entry becomes.
    fn frames(&self) -> usize {
        match self {
            Outbound::Data { events, .. } => events.literals.len(),
            Outbound::Frame(_) => 1,
        }
    }

    /// Bytes this entry becomes (about).
    fn weight(&self) -> usize {
        match self {
            Outbound::Data { sub_id, events, .. } => {
                let per =
                    32 + sub_id.len() + events.stream.as_ref().map_or(0, |t| 48 + t.channel.len());
                events.literals.len() * per + events.bytes
            }
            Outbound::Frame(s) => s.len(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Outbound>,
    frames: usize,
    bytes: usize,
    overflowed: bool,
    closed: bool,
}

/// The bounded queue between publishers and one connection.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    /// Why the connection must end (a [`Revoked`] as a number, 0 for none).
    /// An atomic, not in `state`: the connection reads it after every write.
    revoked: AtomicU8,
    max_frames: usize,
    max_bytes: usize,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Refused: the queue was full (the connection is now a slow consumer) or
    /// the connection is closing.
    Dropped,
}

impl Outbox {
    pub fn new(max_frames: usize, max_bytes: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            revoked: AtomicU8::new(0),
            max_frames,
            max_bytes,
        }
    }

    /// Queue a frame without waiting. Wakes the connection task.
    pub fn push(&self, item: Outbound) -> Pushed {
        let weight = item.weight();
        let frames = item.frames();
        {
            let mut s = self.state.lock().unwrap();
            if s.closed || s.overflowed {
                return Pushed::Dropped;
            }
            if s.frames + frames > self.max_frames || s.bytes + weight > self.max_bytes {
                s.overflowed = true;
                drop(s);
                self.notify.notify_one();
                return Pushed::Dropped;
            }
            s.bytes += weight;
            s.frames += frames;
            s.queue.push_back(item);
        }
        self.notify.notify_one();
        Pushed::Queued
    }

    /// Move everything queued into `out`; returns whether the queue overflowed.
    /// Releases the queue's memory when a burst has passed, so idle connections
    /// stay small.
    pub fn drain_into(&self, out: &mut Vec<Outbound>) -> bool {
        let mut s = self.state.lock().unwrap();
        out.extend(s.queue.drain(..));
        s.bytes = 0;
        s.frames = 0;
        if s.queue.capacity() > 64 {
            s.queue.shrink_to(16);
        }
        s.overflowed
    }

    /// Wait until something was pushed (or the queue overflowed). A push that
    /// happens before this is awaited is not missed: `Notify` keeps a permit.
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// The connection's credentials were revoked: wake its task, which closes
    /// it (see [`Outbox::is_revoked`]).
    pub fn revoke(&self, why: Revoked) {
        self.revoked.store(why as u8, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether (and why) the connection was revoked.
    pub fn revoked(&self) -> Option<Revoked> {
        match self.revoked.load(Ordering::Acquire) {
            1 => Some(Revoked::KeyDeleted),
            2 => Some(Revoked::ApiDeleted),
            3 => Some(Revoked::FaultInjected),
            _ => None,
        }
    }

    /// Count the connection as a slow consumer (something it subscribed to
    /// could not be held for it): it is closed as on a full queue.
    pub fn overflow(&self) {
        self.state.lock().unwrap().overflowed = true;
        self.notify.notify_one();
    }

    /// Refuse all further pushes (the connection is going away).
    pub fn close(&self) {
        let mut s = self.state.lock().unwrap();
        s.closed = true;
        s.queue.clear();
        s.bytes = 0;
        s.frames = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_frames_and_bytes() {
        let o = Outbox::new(2, 1000);
        assert_eq!(o.push(Outbound::Frame("a".into())), Pushed::Queued);
        assert_eq!(o.push(Outbound::Frame("b".into())), Pushed::Queued);
        assert_eq!(o.push(Outbound::Frame("c".into())), Pushed::Dropped);
        let mut out = Vec::new();
        assert!(o.drain_into(&mut out));
        assert_eq!(out.len(), 2);
        // Once overflowed, the connection is on its way out: nothing more queues.
        assert_eq!(o.push(Outbound::Frame("d".into())), Pushed::Dropped);

        let o = Outbox::new(100, 100);
        assert_eq!(o.push(Outbound::Frame("x".repeat(60))), Pushed::Queued);
        assert_eq!(o.push(Outbound::Frame("x".repeat(60))), Pushed::Dropped);
    }

    #[test]
    fn closed_refuses() {
        let o = Outbox::new(10, 1000);
        o.close();
        assert_eq!(o.push(Outbound::Frame("a".into())), Pushed::Dropped);
    }
}
