//! The bus's durable event log: `PutEvents` answers only after its events
//! are durable here, and delivery reads them back from here, so an
//! acknowledged event survives a crash (`kill -9`) and reaches its targets.
//!
//! Three kinds, one contract:
//! * [`local`]: SQLite (`events.db` beside the store) on a single node;
//! * [`jetstream`]: a NATS JetStream stream shared by the nodes of a
//!   cluster (PostgreSQL store and NATS engine), so any node delivers what
//!   any node accepted, and a node that dies leaves nothing behind;
//! * [`redis_streams`]: the same on Redis (PostgreSQL store and Redis
//!   engine): a stream with a consumer group, a sorted set of retries.
//!
//! **Delivery contract.** [`Log::append`] returns once the events are
//! durable. A [`Reader`] hands each event to one dispatcher (one node in a
//! cluster) with an [`Ack`]; the dispatcher *settles* the event once every
//! delivery of it is accounted for: delivered, dead-lettered, or parked as a
//! durable [`Retry`]. An event not settled (its node crashed) is handed out
//! again: delivery is at least once, and what a crash repeats is bounded by
//! the dispatcher's in-flight window. There is no order across events (as
//! EventBridge promises none).
//!
//! **Retries** are durable too, and taken by one node at a time
//! ([`Log::due`]): a retry comes back when it is due, and until it is
//! deleted or updated no other node attempts it.

pub mod jetstream;
pub mod local;
pub mod redis_streams;

use serde::{Deserialize, Serialize};

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub bus: String,
    /// A scheduled rule's own event: delivered to that rule's targets only,
    /// not matched against the bus's patterns.
    pub rule: Option<String>,
    /// The event as EventBridge's JSON.
    pub event: String,
    /// When the bus accepted it (epoch seconds).
    pub received: f64,
}

/// An event read back: what was appended.
pub type Logged = NewEvent;

/// What settles an event handed out by a [`Reader`].
#[derive(Debug)]
pub enum Ack {
    /// The local log's sequence number.
    Seq(u64),
    /// The JetStream message.
    Message(Box<async_nats::jetstream::Message>),
    /// The Redis stream entry's id.
    Entry(String),
}

/// A delivery waiting for its next attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retry {
    pub bus: String,
    pub rule: String,
    pub target: String,
    pub event: String,
    pub received: f64,
    /// Attempts made so far.
    pub attempts: u32,
    pub due: f64,
    pub error: String,
}

/// Which stored retry a [`Taken`] is.
#[derive(Debug, Clone)]
pub enum RetryId {
    Row(i64),
    Message(Box<async_nats::jetstream::Message>),
    /// The Redis sorted set's member.
    Member(String),
}

/// A retry taken from the log by [`Log::due`]: this node attempts it, then
/// updates or deletes it.
#[derive(Debug, Clone)]
pub struct Taken {
    pub id: RetryId,
    pub retry: Retry,
}

/// A page of an archive: the events, and the cursor the next page starts
/// after (`None`: the archive's range is exhausted).
pub struct ArchivePage {
    pub events: Vec<String>,
    pub next: Option<String>,
}

/// A handle on the log (cheap to clone).
#[derive(Clone)]
pub enum Log {
    Local(local::LocalLog),
    JetStream(Box<jetstream::JsLog>),
    Redis(Box<redis_streams::RedisLog>),
}

impl Log {
    /// The single node's log in `dir` (in memory without one).
    pub fn local(dir: Option<&std::path::Path>) -> Result<Log, String> {
        local::LocalLog::open(dir).map(Log::Local)
    }

    /// Whether an acknowledged event survives this process.
    pub fn durable(&self) -> bool {
        match self {
            Log::Local(l) => l.durable,
            Log::JetStream(_) | Log::Redis(_) => true,
        }
    }

    /// Append events; `Ok` once they are durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), String> {
        match self {
            Log::Local(l) => l.append(events).await.map(|_| ()),
            Log::JetStream(j) => j.append(events).await,
            Log::Redis(r) => r.append(events).await,
        }
    }

    /// The dispatcher's reader (one per process).
    pub fn reader(&self) -> Reader {
        match self {
            Log::Local(l) => Reader::Local(local::Reader::new(l)),
            Log::JetStream(j) => Reader::JetStream(Box::new(j.reader())),
            Log::Redis(r) => Reader::Redis(Box::new(r.reader())),
        }
    }

    /// Park a failed delivery for a later attempt; `Ok` once durable.
    pub async fn add_retry(&self, r: Retry) -> Result<(), String> {
        match self {
            Log::Local(l) => l.add_retry(r).await,
            Log::JetStream(j) => j.add_retry(&r).await,
            Log::Redis(x) => x.add_retry(&r).await,
        }
    }

    /// Up to `limit` retries due at `now`, taken by this node.
    pub async fn due(&self, now: f64, limit: usize) -> Result<Vec<Taken>, String> {
        match self {
            Log::Local(l) => Ok(l
                .due(now, limit)
                .await?
                .into_iter()
                .map(|r| Taken {
                    id: RetryId::Row(r.id),
                    retry: r.retry,
                })
                .collect()),
            Log::JetStream(j) => j.due(now, limit).await,
            Log::Redis(r) => r.due(now, limit).await,
        }
    }

    /// A taken retry failed again: store its new state.
    pub async fn update_retry(&self, taken: Taken, attempts: u32, due: f64, error: String) {
        match (self, taken.id) {
            (Log::Local(l), RetryId::Row(id)) => l.update_retry(id, attempts, due, error).await,
            (Log::JetStream(j), RetryId::Message(m)) => {
                let retry = Retry {
                    attempts,
                    due,
                    error,
                    ..taken.retry
                };
                j.replace_retry(&m, &retry).await
            }
            (Log::Redis(r), RetryId::Member(m)) => {
                let retry = Retry {
                    attempts,
                    due,
                    error,
                    ..taken.retry
                };
                r.replace_retry(&m, &retry).await
            }
            _ => tracing::error!("a retry from another log"),
        }
    }

    /// A taken retry is finished (delivered, dead-lettered or abandoned).
    pub async fn delete_retry(&self, taken: &Taken) {
        match (self, &taken.id) {
            (Log::Local(l), RetryId::Row(id)) => l.delete_retry(*id).await,
            (Log::JetStream(_), RetryId::Message(m)) => jetstream::settle(m).await,
            (Log::Redis(r), RetryId::Member(m)) => r.delete_retry(m).await,
            _ => tracing::error!("a retry from another log"),
        }
    }

    /// How often a taken retry still being attempted is touched.
    pub fn progress_every(&self) -> std::time::Duration {
        match self {
            Log::Local(_) => std::time::Duration::from_secs(3600),
            Log::JetStream(j) => j.progress_every(),
            Log::Redis(r) => r.progress_every(),
        }
    }

    /// Still taken, still being attempted: keep it from other nodes.
    pub async fn touch_retry(&self, taken: &Taken) {
        match (self, &taken.id) {
            (_, RetryId::Message(m)) => jetstream::progress(m).await,
            (Log::Redis(r), RetryId::Member(m)) => r.touch_retry(m).await,
            _ => {}
        }
    }

    /// Keep (archive, received, event) rows in archives; `Ok` once durable.
    pub async fn archive(&self, rows: Vec<(String, f64, String)>) -> Result<(), String> {
        match self {
            Log::Local(l) => l.archive(rows).await,
            Log::JetStream(j) => j.archive(rows).await,
            Log::Redis(r) => r.archive(rows).await,
        }
    }

    /// Up to `limit` of an archive's events received from `from` to `to`
    /// (inclusive), after the cursor `after` (`None`: from the start),
    /// oldest first.
    pub async fn archived(
        &self,
        archive: &str,
        from: f64,
        to: f64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ArchivePage, String> {
        let number = |a: Option<&str>| a.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
        match self {
            Log::Local(l) => {
                let rows = l
                    .archived(archive, from, to, number(after) as i64, limit)
                    .await?;
                Ok(ArchivePage {
                    next: rows.last().map(|(id, _)| id.to_string()),
                    events: rows.into_iter().map(|(_, e)| e).collect(),
                })
            }
            Log::JetStream(j) => j.archived(archive, from, to, number(after), limit).await,
            Log::Redis(r) => r.archived(archive, from, to, after, limit).await,
        }
    }

    /// An archive's event count and size in bytes.
    pub async fn archive_stats(&self, archive: &str) -> Result<(u64, u64), String> {
        match self {
            Log::Local(l) => l.archive_stats(archive).await,
            Log::JetStream(j) => j.archive_stats(archive).await,
            Log::Redis(r) => r.archive_stats(archive).await,
        }
    }

    /// Drop an archive's events received before `before` (all:
    /// `f64::MAX`, when the archive is deleted).
    pub async fn purge_archive(&self, archive: &str, before: f64) {
        match self {
            Log::Local(l) => l.purge_archive(archive, before).await,
            Log::JetStream(j) => j.purge_archive(archive, before).await,
            Log::Redis(r) => r.purge_archive(archive, before).await,
        }
    }

    /// Events not yet settled, and retries waiting (for metrics and tests).
    pub async fn counts(&self) -> Result<(u64, u64), String> {
        match self {
            Log::Local(l) => l.counts().await,
            Log::JetStream(j) => j.counts().await,
            Log::Redis(r) => r.counts().await,
        }
    }
}

/// The dispatcher's side of the log.
pub enum Reader {
    Local(local::Reader),
    JetStream(Box<jetstream::Reader>),
    Redis(Box<redis_streams::Reader>),
}

impl Reader {
    /// Up to `limit` events, waiting for at least one. Cancel-safe.
    pub async fn next(&mut self, limit: usize) -> Vec<(Logged, Ack)> {
        match self {
            Reader::Local(r) => r
                .next(limit)
                .await
                .into_iter()
                .map(|row| (row.event, Ack::Seq(row.seq)))
                .collect(),
            Reader::JetStream(r) => r.next(limit).await,
            Reader::Redis(r) => r.next(limit).await,
        }
    }

    /// Every delivery of the event is accounted for.
    pub async fn settle(&mut self, ack: Ack) {
        match (self, ack) {
            (Reader::Local(r), Ack::Seq(seq)) => r.settle(seq),
            (Reader::JetStream(_), Ack::Message(m)) => jetstream::settle(&m).await,
            (Reader::Redis(r), Ack::Entry(id)) => r.settle(id).await,
            _ => tracing::error!("an acknowledgement from another log"),
        }
    }

    /// The event is still being delivered (long deliveries): keep it.
    pub async fn progress(&mut self, ack: &Ack) {
        match (self, ack) {
            (_, Ack::Message(m)) => jetstream::progress(m).await,
            (Reader::Redis(r), Ack::Entry(id)) => r.log().progress(id).await,
            _ => {}
        }
    }

    /// How long an event may stay unsettled before [`Reader::progress`]
    /// is due (`None`: never).
    pub fn progress_every(&self) -> Option<std::time::Duration> {
        match self {
            Reader::Local(_) => None,
            Reader::JetStream(r) => Some(r.progress_every()),
            Reader::Redis(r) => Some(r.progress_every()),
        }
    }

    /// Called every dispatcher tick: the local log writes its done mark,
    /// Redis acknowledges what was settled since.
    pub async fn checkpoint(&mut self) {
        match self {
            Reader::Local(r) => r.checkpoint().await,
            Reader::Redis(r) => r.checkpoint().await,
            Reader::JetStream(_) => {}
        }
    }
}
