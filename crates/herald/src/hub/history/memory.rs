//! The in-memory history of one node.
//!
//! Each stream is trimmed to its namespace's `size` and `ttl` whenever it is
//! written or read. All streams together are bounded by `[history]`
//! `max_bytes` (events plus a little bookkeeping per stream) and
//! `max_channels`: past either bound, the stream used least recently
//! (published to, read, or subscribed to) is dropped whole, as Redis's
//! `allkeys-lru` does, and counted in `herald_history_evicted_total`; its
//! channel's next use starts a new epoch, so clients holding a position in it
//! are told `recovered: false` rather than given a silent gap. Expired events
//! of a stream nobody uses stay until the stream is used or evicted (they
//! count toward `max_bytes`).
//!
//! Locks: a stream's own mutex is held while its events are appended and
//! delivered to this node's subscribers (the order guarantee), and never
//! while another stream's is taken. The map and the LRU are std locks taken
//! for a lookup or one insert; eviction takes them one at a time. No lock is
//! held across an `.await` (nothing here is async).

use super::{now_ms, Entry, HistoryLimits, HistorySettings, Position, Read, StreamTag};
use herald_core::ChannelPattern;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Bytes counted per kept event besides its text.
const ENTRY_OVERHEAD: usize = 48;
/// Bytes counted per stream besides its channel's name.
const STREAM_OVERHEAD: usize = 192;

struct Stream {
    channel: Arc<str>,
    epoch: Arc<str>,
    state: Mutex<State>,
}

struct State {
    /// The last offset given out (0: none yet).
    top: u64,
    entries: VecDeque<Entry>,
    /// Bytes of `entries` as counted.
    bytes: usize,
    /// This stream's key in the LRU (0: not in it yet).
    lru_key: u64,
    /// Evicted: no longer in the map; a writer that finds it so looks again.
    removed: bool,
}

/// One node's channel streams.
pub struct MemoryHistory {
    streams: RwLock<HashMap<Arc<str>, Arc<Stream>>>,
    /// Streams by last use, least recent first.
    lru: Mutex<BTreeMap<u64, Arc<Stream>>>,
    tick: AtomicU64,
    count: AtomicUsize,
    bytes: AtomicUsize,
    limits: HistoryLimits,
    evicted: AtomicU64,
}

/// A fresh epoch: 16 random hex digits.
pub fn new_epoch() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

impl MemoryHistory {
    pub fn new(limits: HistoryLimits) -> MemoryHistory {
        MemoryHistory {
            streams: RwLock::new(HashMap::new()),
            lru: Mutex::new(BTreeMap::new()),
            tick: AtomicU64::new(1),
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            limits,
            evicted: AtomicU64::new(0),
        }
    }

    /// Bytes kept now (as counted against `max_bytes`).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Streams kept now.
    pub fn channels(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Streams dropped by the `[history]` bounds so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn find(&self, channel: &str) -> Option<Arc<Stream>> {
        self.streams.read().unwrap().get(channel).cloned()
    }

    /// The channel's stream, made (with a new epoch) when there is none.
    fn stream(&self, channel: &str) -> Arc<Stream> {
        if let Some(s) = self.find(channel) {
            return s;
        }
        let mut map = self.streams.write().unwrap();
        if let Some(s) = map.get(channel) {
            return s.clone();
        }
        let s = Arc::new(Stream {
            channel: channel.into(),
            epoch: new_epoch(),
            state: Mutex::new(State {
                top: 0,
                entries: VecDeque::new(),
                bytes: 0,
                lru_key: 0,
                removed: false,
            }),
        });
        map.insert(s.channel.clone(), s.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(STREAM_OVERHEAD + channel.len(), Ordering::Relaxed);
        s
    }

    /// Mark `s` used now (its state locked by the caller).
    fn touch(&self, s: &Arc<Stream>, st: &mut State) {
        let key = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut lru = self.lru.lock().unwrap();
        if st.lru_key != 0 {
            lru.remove(&st.lru_key);
        }
        lru.insert(key, s.clone());
        st.lru_key = key;
    }

    /// Drop what `settings` no longer keeps.
    fn trim(&self, st: &mut State, settings: HistorySettings, now: u64) {
        let ttl = settings.ttl.as_millis() as u64;
        let mut freed = 0;
        while let Some(front) = st.entries.front() {
            if st.entries.len() <= settings.size && front.at_ms + ttl > now {
                break;
            }
            freed += front.literal.len() + ENTRY_OVERHEAD;
            st.entries.pop_front();
        }
        if freed > 0 {
            st.bytes -= freed;
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
        }
        if st.entries.capacity() > 2 * settings.size.max(16) {
            st.entries.shrink_to(settings.size);
        }
    }

    /// Drop least recently used streams while over a bound.
    fn evict(&self) {
        while self.bytes.load(Ordering::Relaxed) > self.limits.max_bytes
            || self.count.load(Ordering::Relaxed) > self.limits.max_channels
        {
            let Some((key, s)) = self.lru.lock().unwrap().pop_first() else {
                return;
            };
            {
                let mut st = s.state.lock().unwrap();
                if st.removed || st.lru_key != key {
                    // Used again meanwhile (it has a newer key): not the
                    // least recent after all.
                    continue;
                }
                st.removed = true;
                let freed = st.bytes + STREAM_OVERHEAD + s.channel.len();
                st.entries = VecDeque::new();
                st.bytes = 0;
                self.bytes.fetch_sub(freed, Ordering::Relaxed);
            }
            let mut map = self.streams.write().unwrap();
            if map.get(&s.channel).is_some_and(|c| Arc::ptr_eq(c, &s)) {
                map.remove(&s.channel);
            }
            drop(map);
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.evicted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(channel = %s.channel, "history evicted a channel's stream");
        }
    }

    /// Append one publish's events to `channel`'s stream and, still under the
    /// stream's lock, hand their positions to `deliver` (which queues them to
    /// this node's subscribers): subscribers see offsets in order.
    pub fn append<'a, R>(
        &self,
        channel: &str,
        settings: HistorySettings,
        literals: impl IntoIterator<Item = &'a Arc<str>> + Clone,
        deliver: impl FnOnce(StreamTag) -> R,
    ) -> R {
        let now = now_ms();
        let result = loop {
            let s = self.stream(channel);
            let mut st = s.state.lock().unwrap();
            if st.removed {
                continue; // evicted between lookup and lock: a new stream
            }
            let first = st.top + 1;
            let mut added = 0;
            for literal in literals.clone() {
                st.top += 1;
                let offset = st.top;
                added += literal.len() + ENTRY_OVERHEAD;
                st.entries.push_back(Entry {
                    offset,
                    literal: literal.clone(),
                    at_ms: now,
                });
            }
            st.bytes += added;
            self.bytes.fetch_add(added, Ordering::Relaxed);
            self.trim(&mut st, settings, now);
            self.touch(&s, &mut st);
            let tag = StreamTag {
                channel: s.channel.clone(),
                epoch: s.epoch.clone(),
                offsets: (first..=st.top).collect(),
            };
            break deliver(tag);
        };
        self.evict();
        result
    }

    /// Read `channel`'s stream for a subscription: its position, and with
    /// `since` the events after it (all of them, or none and
    /// `recovered: false`). `create` makes the stream when there is none (a
    /// subscription to one channel, which needs an epoch to hold); without
    /// it an unknown channel reads as `None`.
    pub fn recover(
        &self,
        channel: &str,
        settings: HistorySettings,
        since: Option<&Position>,
        create: bool,
    ) -> Option<Read> {
        let now = now_ms();
        let read = loop {
            let s = match create {
                true => self.stream(channel),
                false => self.find(channel)?,
            };
            let mut st = s.state.lock().unwrap();
            if st.removed {
                if create {
                    continue;
                }
                return None;
            }
            self.trim(&mut st, settings, now);
            self.touch(&s, &mut st);
            let top = Position {
                offset: st.top,
                epoch: s.epoch.clone(),
            };
            let first_kept = st.entries.front().map_or(st.top + 1, |e| e.offset);
            let (entries, recovered) = match since {
                None => (Vec::new(), true),
                Some(p) if p.epoch != s.epoch || p.offset > st.top => (Vec::new(), false),
                Some(p) if p.offset + 1 < first_kept => (Vec::new(), false),
                Some(p) => {
                    let skip = (p.offset + 1 - first_kept) as usize;
                    (st.entries.iter().skip(skip).cloned().collect(), true)
                }
            };
            break Read {
                channel: s.channel.clone(),
                top,
                entries,
                recovered,
            };
        };
        self.evict();
        Some(read)
    }

    /// A page of `channel`'s kept events, oldest first, after offset `after`
    /// (from the oldest kept when `None`), at most `limit`; and whether more
    /// follow. `None` when the channel has no stream.
    pub fn page(
        &self,
        channel: &str,
        settings: HistorySettings,
        after: Option<u64>,
        limit: usize,
    ) -> Option<(Read, bool)> {
        let s = self.find(channel)?;
        let mut st = s.state.lock().unwrap();
        if st.removed {
            return None;
        }
        self.trim(&mut st, settings, now_ms());
        let first_kept = st.entries.front().map_or(st.top + 1, |e| e.offset);
        let skip = after.map_or(0, |a| (a + 1).saturating_sub(first_kept) as usize);
        let entries: Vec<Entry> = st.entries.iter().skip(skip).take(limit).cloned().collect();
        let more = st.entries.len() > skip + entries.len();
        Some((
            Read {
                channel: s.channel.clone(),
                top: Position {
                    offset: st.top,
                    epoch: s.epoch.clone(),
                },
                entries,
                // Whether the page starts where asked (nothing trimmed between).
                recovered: after.is_none_or(|a| a + 1 >= first_kept),
            },
            more,
        ))
    }

    /// The channels with a stream that `pattern` matches (for a wildcard
    /// subscription's positions), sorted.
    pub fn matching(&self, pattern: &ChannelPattern) -> Vec<Arc<str>> {
        let map = self.streams.read().unwrap();
        let mut found: Vec<Arc<str>> = match pattern {
            ChannelPattern::Exact(c) => map
                .get_key_value(c.path())
                .map(|(k, _)| k.clone())
                .into_iter()
                .collect(),
            ChannelPattern::Prefix(p) => {
                let prefix = p.path();
                map.keys()
                    .filter(|k| {
                        k.len() > prefix.len() + 1
                            && k.starts_with(prefix)
                            && k.as_bytes()[prefix.len()] == b'/'
                    })
                    .cloned()
                    .collect()
            }
        };
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(size: usize) -> HistorySettings {
        HistorySettings {
            size,
            ttl: Duration::from_secs(60),
        }
    }

    fn lit(s: &str) -> Arc<str> {
        format!("\"{s}\"").into()
    }

    fn append(h: &MemoryHistory, ch: &str, n: usize, set: HistorySettings) -> StreamTag {
        let events: Vec<Arc<str>> = (0..n).map(|i| lit(&i.to_string())).collect();
        h.append(ch, set, &events, |tag| tag)
    }

    #[test]
    fn offsets_are_consecutive_and_recovery_replays_what_follows() {
        let h = MemoryHistory::new(HistoryLimits::default());
        let set = settings(100);
        let first = h.recover("/ns/a", set, None, true).unwrap();
        assert_eq!(first.top.offset, 0);
        let t1 = append(&h, "/ns/a", 3, set);
        let t2 = append(&h, "/ns/a", 2, set);
        assert_eq!(&*t1.offsets, &[1, 2, 3]);
        assert_eq!(&*t2.offsets, &[4, 5]);
        assert_eq!(t1.epoch, first.top.epoch);
        let since = Position {
            offset: 2,
            epoch: first.top.epoch.clone(),
        };
        let r = h.recover("/ns/a", set, Some(&since), false).unwrap();
        assert!(r.recovered);
        assert_eq!(
            r.entries.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(r.top.offset, 5);
        // Up to date: nothing to replay, recovered.
        let at_top = Position {
            offset: 5,
            ..since.clone()
        };
        let r = h.recover("/ns/a", set, Some(&at_top), false).unwrap();
        assert!(r.recovered && r.entries.is_empty());
        // Another epoch, or a position from the future: not recovered.
        for bad in [
            Position {
                offset: 2,
                epoch: "other".into(),
            },
            Position {
                offset: 9,
                ..since.clone()
            },
        ] {
            let r = h.recover("/ns/a", set, Some(&bad), false).unwrap();
            assert!(!r.recovered && r.entries.is_empty());
        }
    }

    #[test]
    fn trimmed_positions_do_not_recover() {
        let h = MemoryHistory::new(HistoryLimits::default());
        let set = settings(3);
        let epoch = append(&h, "/ns/a", 5, set).epoch;
        // Kept: 3, 4, 5. From 2 nothing is missing; from 1, event 2 is gone.
        let from = |offset| Position {
            offset,
            epoch: epoch.clone(),
        };
        let r = h.recover("/ns/a", set, Some(&from(2)), false).unwrap();
        assert!(r.recovered);
        assert_eq!(r.entries.len(), 3);
        let r = h.recover("/ns/a", set, Some(&from(1)), false).unwrap();
        assert!(!r.recovered && r.entries.is_empty());
        // Pages: forward, with the rest announced.
        let (p, more) = h.page("/ns/a", set, None, 2).unwrap();
        assert_eq!(
            p.entries.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [3, 4]
        );
        assert!(more);
        let (p, more) = h.page("/ns/a", set, Some(4), 2).unwrap();
        assert_eq!(p.entries.iter().map(|e| e.offset).collect::<Vec<_>>(), [5]);
        assert!(!more && p.recovered);
        assert!(!h.page("/ns/a", set, Some(0), 2).unwrap().0.recovered);
        assert!(h.page("/ns/none", set, None, 2).is_none());
    }

    #[test]
    fn expired_events_are_not_replayed() {
        let h = MemoryHistory::new(HistoryLimits::default());
        let set = HistorySettings {
            size: 10,
            ttl: Duration::from_millis(1),
        };
        let epoch = append(&h, "/ns/a", 2, set).epoch;
        std::thread::sleep(Duration::from_millis(5)); // the clock must pass the ttl
        let r = h
            .recover("/ns/a", set, Some(&Position { offset: 0, epoch }), false)
            .unwrap();
        assert!(!r.recovered);
        assert_eq!(r.top.offset, 2, "offsets go on after events expire");
    }

    #[test]
    fn bounds_evict_the_least_recently_used_stream_and_its_epoch() {
        let limits = HistoryLimits {
            max_bytes: 1 << 20,
            max_channels: 3,
        };
        let h = MemoryHistory::new(limits);
        let set = settings(10);
        let old = append(&h, "/ns/a", 1, set).epoch;
        append(&h, "/ns/b", 1, set);
        append(&h, "/ns/c", 1, set);
        // /ns/a is used again: /ns/b is now the least recent.
        h.recover("/ns/a", set, None, false).unwrap();
        append(&h, "/ns/d", 1, set);
        assert_eq!(h.channels(), 3);
        assert_eq!(h.evicted(), 1);
        assert!(h.recover("/ns/b", set, None, false).is_none());
        assert_eq!(h.recover("/ns/a", set, None, false).unwrap().top.epoch, old);
        // A stream made again has a new epoch.
        let again = h.recover("/ns/b", set, None, true).unwrap();
        assert_eq!(again.top.offset, 0);

        // Bytes: big events push out the least recent streams.
        let h = MemoryHistory::new(HistoryLimits {
            max_bytes: 1 << 20,
            max_channels: 100,
        });
        let big: Arc<str> = format!("\"{}\"", "x".repeat(300_000)).into();
        for ch in ["/ns/1", "/ns/2", "/ns/3", "/ns/4"] {
            h.append(ch, set, std::slice::from_ref(&big), |_| ());
        }
        assert!(h.bytes() <= 1 << 20, "{}", h.bytes());
        assert_eq!(h.evicted(), 1);
        assert!(h.recover("/ns/1", set, None, false).is_none());
    }

    #[test]
    fn wildcards_list_the_channels_below_the_prefix() {
        let h = MemoryHistory::new(HistoryLimits::default());
        let set = settings(10);
        for ch in ["/ns/a/x", "/ns/a/y/z", "/ns/ab", "/ns/a", "/other/a/x"] {
            append(&h, ch, 1, set);
        }
        let p = ChannelPattern::parse("/ns/a/*").unwrap();
        let names: Vec<String> = h.matching(&p).iter().map(|c| c.to_string()).collect();
        assert_eq!(names, ["/ns/a/x", "/ns/a/y/z"]);
    }
}
