//! The cluster's log: one NATS JetStream stream shared by every node (the
//! nodes of a cluster share a PostgreSQL store and the NATS engine).
//!
//! * **Events**: subject `<stream>.events`, work-queue retention. One
//!   durable pull consumer, `herald-bus-events`, shared by every node:
//!   JetStream hands each event to one node, which settles it (acks) once
//!   every delivery is accounted for. So each event reaches each matching
//!   target once across the cluster, not once per node. An event a node
//!   holds unsettled past `ack_wait_secs` (the node died) goes to another
//!   node; a node alive but slow reports progress every third of that.
//! * **Retries**: subject `<stream>.retries`, consumer `herald-bus-retries`.
//!   A retry not yet due is sent back with a delay (a NAK with the time
//!   left), so it returns, to any node, when it is due; one that is due is
//!   held by the node attempting it until it is replaced (attempted again
//!   later) or acknowledged (finished).
//! * **Archives**: one stream per archive, `<stream>_ARCHIVE_<name>`, whose
//!   `max_age` is the archive's retention: JetStream drops old events
//!   itself, and a replay reads by start time.
//!
//! **Durability**: `PutEvents` answers after JetStream acknowledged every
//! event: stored by the stream's replicas (`[event_bus] replicas`). A NATS
//! server writes to its file store at once but syncs it to the disk every
//! two minutes by default (`jetstream { sync_interval }`): a crash of the
//! Herald node loses nothing, a power loss of a single-server NATS can lose
//! that interval unless `sync_interval: always` (or three replicas).

use super::{ArchivePage, Logged, NewEvent, Retry, RetryId, Taken};
use crate::bus::config::EventBusFile;
use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::{RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind, Context, Message};
use futures_util::{FutureExt, StreamExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BUS: &str = "Herald-Bus";
const RULE: &str = "Herald-Rule";
const RECEIVED: &str = "Herald-Received";

/// Unsettled events (and taken retries) a node may hold at once, per
/// consumer. When reached, JetStream hands that node no more until it
/// settles some; the other nodes go on.
const MAX_ACK_PENDING: i64 = 4096;
/// Retries not yet due wait as NAKs with a delay: they count as pending,
/// so this consumer allows many more.
const MAX_RETRIES_PENDING: i64 = 100_000;

#[derive(Clone)]
pub struct JsLog {
    js: Context,
    settings: EventBusFile,
    events: Consumer<pull::Config>,
    retries: Consumer<pull::Config>,
    /// Archive streams known to exist.
    archives: Arc<Mutex<HashSet<String>>>,
}

fn subject(settings: &EventBusFile, what: &str) -> String {
    format!("{}.{what}", settings.stream)
}

/// An archive's name in stream names and subjects: letters, digits and `-`
/// as they are, anything else (`.`, `_`) as `_XX` in hex, so two archive
/// names never share a stream.
fn archive_token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else {
            out.push_str(&format!("_{:02X}", c as u32));
        }
    }
    out
}

impl JsLog {
    /// Create (or find) the stream and its consumers.
    pub async fn open(client: async_nats::Client, settings: &EventBusFile) -> Result<Self, String> {
        let js = jetstream::new(client);
        let name = settings.stream.clone();
        let fail = |e: &dyn std::fmt::Display| format!("JetStream stream {name}: {e}");
        let config = jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject(settings, "events"), subject(settings, "retries")],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: settings.replicas,
            ..Default::default()
        };
        let stream = js
            .get_or_create_stream(config)
            .await
            .map_err(|e| fail(&e))?;
        let consumer = |durable: &str, what: &str, max_ack_pending: i64| pull::Config {
            durable_name: Some(durable.to_string()),
            filter_subject: subject(settings, what),
            ack_policy: AckPolicy::Explicit,
            ack_wait: settings.ack_wait(),
            max_ack_pending,
            ..Default::default()
        };
        let events = stream
            .get_or_create_consumer(
                "herald-bus-events",
                consumer("herald-bus-events", "events", MAX_ACK_PENDING),
            )
            .await
            .map_err(|e| fail(&e))?;
        let retries = stream
            .get_or_create_consumer(
                "herald-bus-retries",
                consumer("herald-bus-retries", "retries", MAX_RETRIES_PENDING),
            )
            .await
            .map_err(|e| fail(&e))?;
        Ok(JsLog {
            js,
            settings: settings.clone(),
            events,
            retries,
            archives: Arc::default(),
        })
    }

    /// Publish every event, then wait for every acknowledgement (so one
    /// `PutEvents` costs one round trip, not one per event).
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), String> {
        let to = subject(&self.settings, "events");
        let mut acks = Vec::with_capacity(events.len());
        for e in events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(BUS, e.bus.as_str());
            if let Some(rule) = &e.rule {
                headers.insert(RULE, rule.as_str());
            }
            headers.insert(RECEIVED, e.received.to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(to.clone(), headers, e.event.into())
                .await
                .map_err(|e| format!("JetStream publish: {e}"))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| format!("JetStream publish: {e}"))?;
        }
        Ok(())
    }

    pub fn progress_every(&self) -> Duration {
        self.settings.ack_wait() / 3
    }

    pub fn reader(&self) -> Reader {
        Reader {
            consumer: self.events.clone(),
            messages: None,
            progress_every: self.settings.ack_wait() / 3,
        }
    }

    async fn publish_retry(&self, r: &Retry) -> Result<(), String> {
        let body = serde_json::to_vec(r).map_err(|e| e.to_string())?;
        self.js
            .publish(subject(&self.settings, "retries"), body.into())
            .await
            .map_err(|e| format!("JetStream publish: {e}"))?
            .await
            .map_err(|e| format!("JetStream publish: {e}"))?;
        Ok(())
    }

    pub async fn add_retry(&self, r: &Retry) -> Result<(), String> {
        self.publish_retry(r).await
    }

    /// The new state is stored before the old one is acknowledged: a crash
    /// in between attempts the retry twice, never loses it.
    pub async fn replace_retry(&self, old: &Message, r: &Retry) {
        match self.publish_retry(r).await {
            Ok(()) => settle(old).await,
            Err(e) => {
                tracing::error!(error = %e, "storing a retry failed; it comes back after ack_wait_secs")
            }
        }
    }

    /// The retries that are due, up to `limit`; those that are not go back
    /// with the time they have left.
    pub async fn due(&self, now: f64, limit: usize) -> Result<Vec<Taken>, String> {
        let mut batch = self
            .retries
            .fetch()
            .max_messages(limit)
            .messages()
            .await
            .map_err(|e| format!("JetStream fetch: {e}"))?;
        let mut taken = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| format!("JetStream fetch: {e}"))?;
            let retry: Retry = match serde_json::from_slice(&m.payload) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "a stored retry is not readable: dropped");
                    let _ = m.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            if retry.due > now {
                let wait = Duration::from_secs_f64((retry.due - now).min(3600.0));
                let _ = m.ack_with(AckKind::Nak(Some(wait))).await;
                continue;
            }
            taken.push(Taken {
                id: RetryId::Message(Box::new(m)),
                retry,
            });
        }
        Ok(taken)
    }

    fn archive_stream(&self, archive: &str) -> String {
        format!(
            "{}_ARCHIVE_{}",
            self.settings.stream,
            archive_token(archive)
        )
    }

    fn archive_subject(&self, archive: &str) -> String {
        subject(
            &self.settings,
            &format!("archive.{}", archive_token(archive)),
        )
    }

    pub async fn archive(&self, rows: Vec<(String, f64, String)>) -> Result<(), String> {
        let mut acks = Vec::with_capacity(rows.len());
        for (archive, received, event) in rows {
            let name = self.archive_stream(&archive);
            let known = self.archives.lock().unwrap().contains(&name);
            if !known {
                self.js
                    .get_or_create_stream(jetstream::stream::Config {
                        name: name.clone(),
                        subjects: vec![self.archive_subject(&archive)],
                        storage: StorageType::File,
                        num_replicas: self.settings.replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("JetStream stream {name}: {e}"))?;
                self.archives.lock().unwrap().insert(name);
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(RECEIVED, received.to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(self.archive_subject(&archive), headers, event.into())
                .await
                .map_err(|e| format!("JetStream publish: {e}"))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| format!("JetStream publish: {e}"))?;
        }
        Ok(())
    }

    /// A page of an archive's events received from `from` to `to`. Events
    /// are archived after they were received, so reading from the stream's
    /// time `from` misses none; reading stops at events received well after
    /// `to` (the dispatcher's lag is far less than [`ARCHIVE_SLACK`]).
    pub async fn archived(
        &self,
        archive: &str,
        from: f64,
        to: f64,
        after: u64,
        limit: usize,
    ) -> Result<ArchivePage, String> {
        const ARCHIVE_SLACK: f64 = 300.0;
        let name = self.archive_stream(archive);
        let stream = match self.js.get_stream(&name).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(_)
                ) =>
            {
                return Ok(ArchivePage {
                    events: Vec::new(),
                    next: None,
                })
            }
            Err(e) => return Err(format!("JetStream stream {name}: {e}")),
        };
        let deliver_policy = if after == 0 {
            DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                    (from.max(0.0) * 1e9) as i128,
                )
                .map_err(|e| e.to_string())?,
            }
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            }
        };
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("JetStream consumer on {name}: {e}"))?;
        let mut batch = consumer
            .fetch()
            .max_messages(limit)
            .messages()
            .await
            .map_err(|e| format!("JetStream fetch: {e}"))?;
        let mut page = ArchivePage {
            events: Vec::new(),
            next: None,
        };
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| format!("JetStream fetch: {e}"))?;
            let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
            let received = header(&m, RECEIVED)
                .and_then(|r| r.parse::<f64>().ok())
                .unwrap_or(0.0);
            if received > to + ARCHIVE_SLACK {
                page.next = None;
                break;
            }
            page.next = Some(seq.to_string());
            if (from..=to).contains(&received) {
                page.events
                    .push(String::from_utf8_lossy(&m.payload).into_owned());
            }
        }
        let _ = stream
            .delete_consumer(consumer.cached_info().name.as_str())
            .await;
        Ok(page)
    }

    pub async fn archive_stats(&self, archive: &str) -> Result<(u64, u64), String> {
        match self.js.get_stream(self.archive_stream(archive)).await {
            Ok(s) => {
                let state = &s.cached_info().state;
                Ok((state.messages, state.bytes))
            }
            Err(_) => Ok((0, 0)),
        }
    }

    /// `before` is "now minus the retention": the stream's `max_age` is set
    /// to that age, and JetStream does the rest. `f64::MAX`: deleted.
    pub async fn purge_archive(&self, archive: &str, before: f64) {
        let name = self.archive_stream(archive);
        if before == f64::MAX {
            self.archives.lock().unwrap().remove(&name);
            let _ = self.js.delete_stream(&name).await;
            return;
        }
        let age = Duration::from_secs_f64((crate::esm::spec::now_secs() - before).max(1.0));
        let Ok(mut stream) = self.js.get_stream(&name).await else {
            return;
        };
        let Ok(info) = stream.info().await else {
            return;
        };
        let current = info.config.max_age;
        if current.abs_diff(age) > Duration::from_secs(60) {
            let mut config = info.config.clone();
            config.max_age = age;
            if let Err(e) = self.js.update_stream(config).await {
                tracing::warn!(stream = %name, error = %e, "setting the archive's retention failed");
            }
        }
    }

    pub async fn counts(&self) -> Result<(u64, u64), String> {
        let mut events = self.events.clone();
        let mut retries = self.retries.clone();
        let e = events.info().await.map_err(|e| e.to_string())?;
        let e = e.num_pending + e.num_ack_pending as u64;
        let r = retries.info().await.map_err(|e| e.to_string())?;
        let r = r.num_pending + r.num_ack_pending as u64;
        Ok((e, r))
    }
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
}

/// Acknowledge: the event (or retry) is finished. A failed acknowledgement
/// is logged: JetStream hands the message out again (a duplicate, never a
/// loss).
pub async fn settle(m: &Message) {
    if let Err(e) = m.ack().await {
        tracing::warn!(error = %e, "acknowledging to JetStream failed; the message will come again");
    }
}

/// Still working on it: restart JetStream's `ack_wait` clock.
pub async fn progress(m: &Message) {
    let _ = m.ack_with(AckKind::Progress).await;
}

/// The dispatcher's side: a continuous pull on the shared consumer.
pub struct Reader {
    consumer: Consumer<pull::Config>,
    messages: Option<pull::Stream>,
    progress_every: Duration,
}

impl Reader {
    pub fn progress_every(&self) -> Duration {
        self.progress_every
    }

    /// Up to `limit` events, waiting for one. Cancel-safe: a message stays
    /// in the pull's buffer until taken.
    pub async fn next(&mut self, limit: usize) -> Vec<(Logged, super::Ack)> {
        loop {
            if self.messages.is_none() {
                match self
                    .consumer
                    .stream()
                    .max_messages_per_batch(limit.max(1))
                    .messages()
                    .await
                {
                    Ok(m) => self.messages = Some(m),
                    Err(e) => {
                        tracing::error!(error = %e, "pulling from the event stream failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let messages = self.messages.as_mut().expect("set above");
            let first = match messages.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the event stream's pull failed; pulling again");
                    self.messages = None;
                    continue;
                }
                None => {
                    self.messages = None;
                    continue;
                }
            };
            let mut out = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next.take() {
                if let Some(e) = event_of(&m) {
                    out.push((e, super::Ack::Message(Box::new(m))));
                } else {
                    tracing::error!("an event in the stream lacks its headers: dropped");
                    let _ = m.ack_with(AckKind::Term).await;
                }
                if out.len() < limit {
                    if let Some(Some(Ok(m))) = messages.next().now_or_never() {
                        next = Some(m);
                    }
                }
            }
            if !out.is_empty() {
                return out;
            }
        }
    }
}

fn event_of(m: &Message) -> Option<Logged> {
    Some(NewEvent {
        bus: header(m, BUS)?.to_string(),
        rule: header(m, RULE).map(str::to_string),
        received: header(m, RECEIVED)?.parse().ok()?,
        event: String::from_utf8(m.payload.to_vec()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn archive_names_never_share_a_stream() {
        assert_eq!(super::archive_token("orders-2026"), "orders-2026");
        assert_eq!(super::archive_token("a.b"), "a_2Eb");
        assert_eq!(super::archive_token("a_b"), "a_5Fb");
        assert_ne!(super::archive_token("a._2E"), super::archive_token("a_2E."));
    }
}
