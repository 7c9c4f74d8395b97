//! Channel history on the NATS engine's server, in JetStream (see
//! [`super::cluster`]).
//!
//! An API's channels with history share a stream `HERALD_H_<api>` on the
//! subjects `herald-h.<api>.>` (the channel `/ns/a` is `herald-h.<api>.ns.a`),
//! which the server republishes, once stored and in stream order, to the
//! channels' live subjects (`herald.<api>.ns.a`): every node's core
//! subscription gets them in offset order, and a publish the stream refuses
//! reaches nobody. One message is one publish (its wire batch, with its first
//! offset and the epoch), with headers `Herald-Top` (its last offset),
//! `Herald-Epoch` and `Herald-Time`.
//!
//! Offsets are given out by the publishing node: it publishes with
//! `Nats-Expected-Last-Subject-Sequence` set to the channel's last message it
//! knows; when another node published meanwhile the server refuses, and the
//! node reads the channel's last message and tries again. So offsets stay
//! contiguous and every node agrees. A channel with no message gets a new
//! epoch (a subscription to it stores an empty marker message to hold it).
//!
//! Retention: each channel's last `size` events are replayed (older ones
//! count as trimmed) and none older than `ttl_secs`; the stream itself keeps
//! each channel's last [`super::settings::MAX_SIZE`] publishes, none older
//! than [`MAX_AGE`] (a channel whose last message goes begins a new epoch).
//! No byte limit is set: JetStream would reserve it up front.

use super::cluster::ClusterHistory;
use super::{now_ms, Entry, HistorySettings, Position, Read};
use crate::hub::engine::{Batch, BoxFuture, EngineError, EngineMetrics};
use crate::hub::wire;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{
    Config, DiscardPolicy, LastRawMessageErrorKind, Republish, Stream,
};
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use herald_core::{Channel, ChannelPattern};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOP: &str = "Herald-Top";
const EPOCH: &str = "Herald-Epoch";
const TIME: &str = "Herald-Time";
/// Attempts at a publish that other nodes' publishes keep overtaking (with
/// a growing pause between them).
const ATTEMPTS: u32 = 20;
/// Channels whose last message a node remembers (cleared when full).
const MAX_KNOWN: usize = 100_000;
/// The longest a message is kept (the longest `ttl_secs`).
pub const MAX_AGE: Duration = Duration::from_secs(super::settings::MAX_TTL_SECS);

/// A channel's last message: (stream sequence, last offset, epoch).
type Last = (u64, u64, Arc<str>);

pub struct JetStreamHistory {
    pub js: Context,
    /// `herald.<api>`
    pub prefix: String,
    /// `<api>` as in stream names.
    pub api: String,
    pub node: String,
    pub metrics: EngineMetrics,
    stream: tokio::sync::OnceCell<Stream>,
    known: Mutex<HashMap<String, Last>>,
    /// One async lock per channel being published to from this node: this
    /// node's publishes to a channel go one at a time (each waits for the
    /// previous one's acknowledgement), so they never race each other for
    /// the next offset; only other nodes' publishes can make one retry. An
    /// entry goes when its last user is done.
    publishing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn failed(what: &str) -> impl Fn(String) -> EngineError + '_ {
    move |e| EngineError(format!("JetStream {what}: {e}"))
}

#[derive(serde::Deserialize)]
struct Stored<'a> {
    o: Option<u64>,
    #[serde(borrow)]
    e: Vec<&'a RawValue>,
}

impl JetStreamHistory {
    pub fn new(
        js: Context,
        prefix: String,
        api: String,
        node: String,
        metrics: EngineMetrics,
    ) -> Self {
        JetStreamHistory {
            js,
            prefix,
            api,
            node,
            metrics,
            stream: tokio::sync::OnceCell::new(),
            known: Mutex::new(HashMap::new()),
            publishing: Mutex::new(HashMap::new()),
        }
    }

    /// The channel's subject in the stream (`herald-h.<api>...`).
    fn subject(&self, channel: &Channel) -> String {
        let mut s = format!("herald-h.{}", self.api);
        for seg in channel.segments() {
            s.push('.');
            s.push_str(seg);
        }
        s
    }

    /// The API's history stream, made (or found) on first use.
    async fn stream(&self) -> Result<Stream, EngineError> {
        self.stream
            .get_or_try_init(|| async {
                self.js
                    .get_or_create_stream(Config {
                        name: format!("HERALD_H_{}", self.api),
                        subjects: vec![format!("herald-h.{}.>", self.api)],
                        republish: Some(Republish {
                            source: format!("herald-h.{}.>", self.api),
                            destination: format!("{}.>", self.prefix),
                            headers_only: false,
                        }),
                        max_age: MAX_AGE,
                        max_messages_per_subject: super::settings::MAX_SIZE as i64,
                        discard: DiscardPolicy::Old,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| failed("stream")(e.to_string()))
            })
            .await
            .cloned()
    }

    /// The channel's last message, from the server.
    async fn last(&self, stream: &Stream, subject: &str) -> Result<Option<Last>, EngineError> {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => {
                let header = |k: &str| m.headers.get(k).map(|v| v.as_str().to_string());
                let top = header(TOP).and_then(|t| t.parse().ok()).unwrap_or(0);
                let epoch = header(EPOCH).unwrap_or_default();
                Ok(Some((m.sequence, top, epoch.into())))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(failed("read")(e.to_string())),
        }
    }

    fn remember(&self, channel: &str, last: Last) {
        let mut known = self.known.lock().unwrap();
        if known.len() >= MAX_KNOWN {
            known.clear();
        }
        known.insert(channel.to_string(), last);
    }

    /// [`Self::put_once`], one at a time per channel on this node.
    async fn put(
        &self,
        channel: &Channel,
        events: &[&str],
        id: u64,
        batch: Option<&Batch>,
    ) -> Result<(), EngineError> {
        let key = channel.path().to_string();
        let lock = self
            .publishing
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _turn = lock.lock().await;
            self.put_once(channel, events, id, batch).await
        };
        let mut publishing = self.publishing.lock().unwrap();
        // Ours and the map's: nobody else waits for this channel.
        if Arc::strong_count(&lock) == 2 {
            publishing.remove(&key);
        }
        result
    }

    /// Publish `events` after the channel's last message.
    async fn put_once(
        &self,
        channel: &Channel,
        events: &[&str],
        id: u64,
        batch: Option<&Batch>,
    ) -> Result<(), EngineError> {
        let stream = self.stream().await?;
        let subject = self.subject(channel);
        let key = channel.path().to_string();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Other nodes are publishing to this channel too: let them.
                let jitter = rand::random::<u64>() % (1 + u64::from(attempt) * 2);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            let cached = self.known.lock().unwrap().get(&key).cloned();
            let (seq, top, epoch) = match cached {
                Some(l) => l,
                None => self
                    .last(&stream, &subject)
                    .await?
                    .unwrap_or_else(|| (0, 0, super::memory::new_epoch())),
            };
            let new_top = top + events.len() as u64;
            let payload = match batch {
                Some(b) => {
                    let (head, middle, tail) = wire::encode_positioned(&self.node, id, b);
                    format!("{head}{}{middle}{epoch}{tail}", top + 1)
                }
                None => format!(
                    r#"{{"n":{},"i":{id},"c":"{}","o":{},"p":"{epoch}","e":[]}}"#,
                    serde_json::to_string(&self.node).unwrap(),
                    channel.path(),
                    top + 1
                ),
            };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                seq.to_string().as_str(),
            );
            headers.insert(TOP, new_top.to_string().as_str());
            headers.insert(EPOCH, &*epoch);
            headers.insert(TIME, now_ms().to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|e| failed("publish")(e.to_string()))?;
            match tokio::time::timeout(Duration::from_secs(5), ack).await {
                Ok(Ok(ack)) => {
                    self.remember(&key, (ack.sequence, new_top, epoch));
                    return Ok(());
                }
                Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    // Another node published first: read where it left off.
                    self.known.lock().unwrap().remove(&key);
                    if batch.is_none() {
                        return Ok(()); // the marker's purpose (an epoch) is served
                    }
                }
                Ok(Err(e)) => return Err(failed("publish")(e.to_string())),
                Err(_) => return Err(EngineError("JetStream publish timed out".into())),
            }
        }
        Err(EngineError(format!(
            "JetStream publish to {} kept losing to other publishers",
            channel.path()
        )))
    }

    /// Every kept event of the channel from offset `from` on, and its last
    /// message (`None`: no message).
    async fn read(
        &self,
        channel: &Channel,
        settings: HistorySettings,
        from: u64,
        want_entries: bool,
    ) -> Result<Option<(Last, Vec<Entry>, u64)>, EngineError> {
        let stream = self.stream().await?;
        let subject = self.subject(channel);
        let Some(last) = self.last(&stream, &subject).await? else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        // The first offset kept (top + 1: none).
        let mut first_kept = last.1 + 1;
        if want_entries && last.1 >= from {
            let consumer = stream
                .create_consumer(pull::Config {
                    filter_subject: subject.clone(),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::None,
                    inactive_threshold: Duration::from_secs(30),
                    ..Default::default()
                })
                .await
                .map_err(|e| failed("consumer")(e.to_string()))?;
            let expired_before = now_ms().saturating_sub(settings.ttl.as_millis() as u64);
            let mut done = false;
            while !done {
                let mut batch = consumer
                    .fetch()
                    .max_messages(1000)
                    .expires(Duration::from_secs(2))
                    .messages()
                    .await
                    .map_err(|e| failed("fetch")(e.to_string()))?;
                let mut got = 0;
                while let Some(m) = batch.next().await {
                    let m = m.map_err(|e| failed("fetch")(e.to_string()))?;
                    got += 1;
                    let header = |k: &str| {
                        m.headers
                            .as_ref()
                            .and_then(|h| h.get(k))
                            .map(|v| v.as_str().to_string())
                    };
                    let at_ms: u64 = header(TIME).and_then(|t| t.parse().ok()).unwrap_or(0);
                    let top: u64 = header(TOP).and_then(|t| t.parse().ok()).unwrap_or(0);
                    if let Ok(stored) = serde_json::from_slice::<Stored>(&m.payload) {
                        let first = stored.o.unwrap_or(top + 1);
                        if at_ms > expired_before || stored.e.is_empty() {
                            first_kept = first_kept.min(first);
                        }
                        for (i, e) in stored.e.iter().enumerate() {
                            let offset = first + i as u64;
                            if offset >= from && at_ms > expired_before {
                                entries.push(Entry {
                                    offset,
                                    literal: e.get().into(),
                                    at_ms,
                                });
                            }
                        }
                    }
                    if top >= last.1 {
                        done = true;
                        break;
                    }
                }
                if got == 0 {
                    break;
                }
            }
            let _ = stream.delete_consumer(&consumer.cached_info().name).await;
        }
        // Only the last `size` events count as kept.
        let first_kept = first_kept.max((last.1 + 1).saturating_sub(settings.size as u64));
        entries.retain(|e| e.offset >= first_kept);
        Ok(Some((last, entries, first_kept)))
    }
}

impl ClusterHistory for JetStreamHistory {
    fn append<'a>(
        &'a self,
        batch: &'a Batch,
        _settings: HistorySettings, // applied when read: the stream is the API's
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let events: Vec<&str> = batch.events.iter().map(|e| &*e.literal).collect();
            let r = self
                .put(&batch.channel, &events, rand::random(), Some(batch))
                .await;
            match &r {
                Ok(()) => self.metrics.published.inc(),
                Err(_) => self.metrics.publish_errors.inc(),
            };
            r
        })
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        settings: HistorySettings,
        since: Option<&'a Position>,
        create: bool,
    ) -> BoxFuture<'a, Result<Option<Read>, EngineError>> {
        Box::pin(async move {
            let parsed = Channel::parse(channel).map_err(|e| EngineError(e.message))?;
            let from = since.map_or(u64::MAX, |p| p.offset + 1);
            let mut found = self.read(&parsed, settings, from, since.is_some()).await?;
            if found.is_none() && create {
                self.put(&parsed, &[], rand::random(), None).await?;
                found = self.read(&parsed, settings, from, since.is_some()).await?;
            }
            let Some(((_, top, epoch), entries, _)) = found else {
                return Ok(None);
            };
            let (entries, recovered) = super::recovery(since, &epoch, top, entries);
            Ok(Some(Read {
                channel: channel.into(),
                top: Position { offset: top, epoch },
                entries,
                recovered,
            }))
        })
    }

    fn page<'a>(
        &'a self,
        channel: &'a str,
        settings: HistorySettings,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<(Read, bool)>, EngineError>> {
        Box::pin(async move {
            let parsed = Channel::parse(channel).map_err(|e| EngineError(e.message))?;
            let from = after.map_or(1, |a| a + 1);
            let Some(((_, top, epoch), mut entries, first_kept)) =
                self.read(&parsed, settings, from, true).await?
            else {
                return Ok(None);
            };
            let more = entries.len() > limit;
            entries.truncate(limit);
            let recovered = after.is_none_or(|a| a + 1 >= first_kept);
            Ok(Some((
                Read {
                    channel: channel.into(),
                    top: Position { offset: top, epoch },
                    entries,
                    recovered,
                },
                more,
            )))
        })
    }

    fn matching<'a>(
        &'a self,
        pattern: &'a ChannelPattern,
    ) -> BoxFuture<'a, Result<Vec<Arc<str>>, EngineError>> {
        Box::pin(async move {
            let Ok(stream) = self.stream().await else {
                return Ok(Vec::new());
            };
            let filter = match pattern {
                ChannelPattern::Exact(c) => self.subject(c),
                ChannelPattern::Prefix(c) => format!("{}.>", self.subject(c)),
            };
            let mut subjects = stream
                .info_with_subjects(filter)
                .await
                .map_err(|e| failed("info")(e.to_string()))?;
            let mut found: Vec<Arc<str>> = Vec::new();
            while let Some(s) = subjects.next().await {
                let (subject, _) = s.map_err(|e| failed("info")(e.to_string()))?;
                if let Some(rest) = subject.strip_prefix(&format!("herald-h.{}.", self.api)) {
                    found.push(format!("/{}", rest.replace('.', "/")).into());
                }
            }
            found.sort();
            Ok(found)
        })
    }
}
