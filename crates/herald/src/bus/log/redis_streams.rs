//! The cluster's log on Redis (the nodes share a PostgreSQL store and the
//! Redis engine), with the same contract as [`super::jetstream`]:
//!
//! * **Events**: the stream `<stream>:events`, one consumer group
//!   `herald-bus`, one consumer per node (its node id). `XREADGROUP` hands
//!   each entry to one node; settling is `XACK` and `XDEL`. Entries a node
//!   left pending longer than `ack_wait_secs` (it died) are claimed by
//!   another (`XAUTOCLAIM`); a node alive but slow renews its claim
//!   (`XCLAIM` with no idle time) every third of that.
//! * **Retries**: the sorted set `<stream>:retries`, scored by when each is
//!   due. Taking due retries is one script that also pushes their score
//!   `ack_wait_secs` ahead: a lease, so no other node takes them, and a node
//!   that dies mid-attempt leaves them to come back.
//! * **Archives**: a stream per archive, `<stream>:archive:<name>`; entry
//!   ids are times, so a replay reads by range (`XRANGE`) and retention
//!   trims by time (`XTRIM MINID`).
//!
//! **Durability**: `PutEvents` answers once Redis has the entries. Redis
//! writes them to disk as its persistence is configured: with
//! `appendonly yes` and `appendfsync always` nothing acknowledged is lost;
//! with the common `appendfsync everysec`, a crash of the Redis server can
//! lose the last second; without the append-only file, everything since the
//! last snapshot. Herald warns at start when `appendonly` is off.

use super::{Ack, ArchivePage, Logged, NewEvent, Retry, RetryId, Taken};
use crate::bus::config::EventBusFile;
use crate::resp::{entries, items, read_reply, text};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Value as RValue};
use std::time::Duration;
use tokio::sync::mpsc;

const GROUP: &str = "herald-bus";
/// Entries read ahead of the dispatcher, at most. When full, the reading
/// task waits (entries stay in Redis, pending to this node).
const READ_AHEAD: usize = 512;
/// How long one `XREADGROUP` blocks.
const BLOCK: Duration = Duration::from_secs(2);

/// Take up to ARGV[2] members due at ARGV[1], leasing them until ARGV[3].
const TAKE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], m) end
return due
";

#[derive(Clone)]
pub struct RedisLog {
    client: redis::Client,
    /// Shared by every command but the blocking reads; reconnects itself.
    conn: ConnectionManager,
    settings: EventBusFile,
    node: String,
}

fn redis_err(what: &str) -> impl Fn(redis::RedisError) -> String + '_ {
    move |e| format!("Redis {what}: {e}")
}

impl RedisLog {
    pub async fn open(url: &str, settings: &EventBusFile, node: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(redis_err("URL"))?;
        let mut conn = ConnectionManager::new(client.clone())
            .await
            .map_err(redis_err("connection"))?;
        let created: Result<RValue, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key(settings, "events"))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created {
            if !e.to_string().contains("BUSYGROUP") {
                return Err(format!("Redis XGROUP CREATE: {e}"));
            }
        }
        let aof: Result<RValue, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut conn)
            .await;
        if let Ok(reply) = aof {
            if items(&reply).get(1).and_then(|v| text(v)).as_deref() == Some("no") {
                tracing::warn!("Redis runs without its append-only file (appendonly no): events the bus acknowledged are lost if Redis restarts before its next snapshot; set appendonly yes");
            }
        }
        Ok(RedisLog {
            client,
            conn,
            settings: settings.clone(),
            node: node.to_string(),
        })
    }

    fn key(&self, what: &str) -> String {
        key(&self.settings, what)
    }

    fn ack_wait_ms(&self) -> u64 {
        self.settings.ack_wait().as_millis() as u64
    }

    pub fn progress_every(&self) -> Duration {
        self.settings.ack_wait() / 3
    }

    /// Every entry in one pipeline: one round trip per `PutEvents`.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), String> {
        let mut pipe = redis::pipe();
        let stream = self.key("events");
        for e in &events {
            let cmd = pipe
                .cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("bus")
                .arg(&e.bus)
                .arg("received")
                .arg(e.received.to_string())
                .arg("event")
                .arg(&e.event);
            if let Some(rule) = &e.rule {
                cmd.arg("rule").arg(rule);
            }
        }
        let mut conn = self.conn.clone();
        let _: RValue = pipe
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XADD"))?;
        Ok(())
    }

    /// The reader: a task reading ahead into a bounded queue (so the
    /// dispatcher may stop waiting at any moment without losing a read).
    pub fn reader(&self) -> Reader {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let log = self.clone();
        tokio::spawn(async move { log.read_ahead(tx).await });
        Reader {
            log: self.clone(),
            rx,
            settled: Vec::new(),
        }
    }

    async fn read_ahead(self, tx: mpsc::Sender<(Logged, Ack)>) {
        let stream = self.key("events");
        let mut conn = None;
        let mut last_claim = tokio::time::Instant::now();
        loop {
            if tx.is_closed() {
                return;
            }
            let c = match &mut conn {
                Some(c) => c,
                None => match connect(&self.client).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::error!(error = %e, "the event log's reader cannot reach Redis; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let read = if last_claim.elapsed() >= self.settings.ack_wait() / 2 {
                last_claim = tokio::time::Instant::now();
                redis::cmd("XAUTOCLAIM")
                    .arg(&stream)
                    .arg(GROUP)
                    .arg(&self.node)
                    .arg(self.ack_wait_ms())
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(READ_AHEAD)
                    .query_async::<RValue>(c)
                    .await
                    .map(|reply| items(&reply).get(1).map(|l| entries(l)).unwrap_or_default())
            } else {
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&self.node)
                    .arg("COUNT")
                    .arg(256)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(">")
                    .query_async::<RValue>(c)
                    .await
                    .map(|reply| read_reply(&reply))
            };
            let found = match read {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the event log from Redis failed; reconnecting");
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            for (id, fields) in found {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                let event = (|| {
                    Some(NewEvent {
                        bus: field("bus")?,
                        rule: field("rule"),
                        received: field("received")?.parse().ok()?,
                        event: field("event")?,
                    })
                })();
                match event {
                    Some(e) => {
                        if tx.send((e, Ack::Entry(id))).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        tracing::error!(%id, "an entry of the event log lacks its fields: dropped");
                        self.settle(&[id]).await;
                    }
                }
            }
        }
    }

    /// `XACK` and `XDEL`: the entries are finished. A failure is logged:
    /// the entries are claimed again later (duplicates, never a loss).
    pub async fn settle(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let stream = self.key("events");
        let mut conn = self.conn.clone();
        let done: Result<RValue, _> = redis::pipe()
            .cmd("XACK")
            .arg(&stream)
            .arg(GROUP)
            .arg(ids)
            .cmd("XDEL")
            .arg(&stream)
            .arg(ids)
            .query_async(&mut conn)
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "settling events in Redis failed; they will come again");
        }
    }

    /// Renew this node's claim on a pending entry.
    pub async fn progress(&self, id: &str) {
        let mut conn = self.conn.clone();
        let _: Result<RValue, _> = redis::cmd("XCLAIM")
            .arg(self.key("events"))
            .arg(GROUP)
            .arg(&self.node)
            .arg(0)
            .arg(id)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await;
    }

    /// A retry as a sorted-set member: a unique id, then its JSON.
    fn member(r: &Retry) -> Result<String, String> {
        let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
        Ok(format!("{} {json}", crate::new_uuid().simple()))
    }

    pub async fn add_retry(&self, r: &Retry) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let _: RValue = redis::cmd("ZADD")
            .arg(self.key("retries"))
            .arg(r.due)
            .arg(Self::member(r)?)
            .query_async(&mut conn)
            .await
            .map_err(redis_err("ZADD"))?;
        Ok(())
    }

    pub async fn due(&self, now: f64, limit: usize) -> Result<Vec<Taken>, String> {
        let mut conn = self.conn.clone();
        let lease = now + self.settings.ack_wait().as_secs_f64();
        let reply: RValue = redis::cmd("EVAL")
            .arg(TAKE)
            .arg(1)
            .arg(self.key("retries"))
            .arg(now)
            .arg(limit)
            .arg(lease)
            .query_async(&mut conn)
            .await
            .map_err(redis_err("retries"))?;
        let mut taken = Vec::new();
        for m in items(&reply).into_iter().filter_map(text) {
            let retry = m
                .split_once(' ')
                .and_then(|(_, json)| serde_json::from_str::<Retry>(json).ok());
            match retry {
                Some(retry) => taken.push(Taken {
                    id: RetryId::Member(m),
                    retry,
                }),
                None => {
                    tracing::error!("a stored retry is not readable: dropped");
                    self.delete_retry(&m).await;
                }
            }
        }
        Ok(taken)
    }

    /// The old member goes and the new one comes in one transaction.
    pub async fn replace_retry(&self, old: &str, r: &Retry) {
        let Ok(member) = Self::member(r) else { return };
        let key = self.key("retries");
        let mut conn = self.conn.clone();
        let done: Result<RValue, _> = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(&key)
            .arg(old)
            .cmd("ZADD")
            .arg(&key)
            .arg(r.due)
            .arg(member)
            .query_async(&mut conn)
            .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "storing a retry failed; it comes back when its lease ends");
        }
    }

    pub async fn delete_retry(&self, member: &str) {
        let mut conn = self.conn.clone();
        let _: Result<RValue, _> = redis::cmd("ZREM")
            .arg(self.key("retries"))
            .arg(member)
            .query_async(&mut conn)
            .await;
    }

    /// Extend the lease of a retry still being attempted.
    pub async fn touch_retry(&self, member: &str) {
        let lease = crate::esm::spec::now_secs() + self.settings.ack_wait().as_secs_f64();
        let mut conn = self.conn.clone();
        let _: Result<RValue, _> = redis::cmd("ZADD")
            .arg(self.key("retries"))
            .arg("XX")
            .arg(lease)
            .arg(member)
            .query_async(&mut conn)
            .await;
    }

    fn archive_key(&self, archive: &str) -> String {
        self.key(&format!("archive:{archive}"))
    }

    pub async fn archive(&self, rows: Vec<(String, f64, String)>) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for (archive, received, event) in &rows {
            pipe.cmd("XADD")
                .arg(self.archive_key(archive))
                .arg("*")
                .arg("received")
                .arg(received.to_string())
                .arg("event")
                .arg(event);
        }
        let mut conn = self.conn.clone();
        let _: RValue = pipe
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XADD"))?;
        Ok(())
    }

    /// Entries are archived after they were received, so their ids (the
    /// time they were added) start at or after `from`; reading stops at
    /// entries added well after `to`.
    pub async fn archived(
        &self,
        archive: &str,
        from: f64,
        to: f64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ArchivePage, String> {
        const SLACK_MS: u64 = 300_000;
        let start = match after {
            Some(a) => format!("({a}"),
            None => format!("{}-0", (from.max(0.0) * 1000.0) as u64),
        };
        let end = ((to.max(0.0) * 1000.0) as u64).saturating_add(SLACK_MS);
        let mut conn = self.conn.clone();
        let reply: RValue = redis::cmd("XRANGE")
            .arg(self.archive_key(archive))
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XRANGE"))?;
        let found = entries(&reply);
        let mut page = ArchivePage {
            events: Vec::new(),
            next: found.last().map(|(id, _)| id.clone()),
        };
        for (_, fields) in found {
            let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            let received = field("received")
                .and_then(|r| r.parse::<f64>().ok())
                .unwrap_or(0.0);
            if let Some(event) = field("event").filter(|_| (from..=to).contains(&received)) {
                page.events.push(event.clone());
            }
        }
        Ok(page)
    }

    pub async fn archive_stats(&self, archive: &str) -> Result<(u64, u64), String> {
        let key = self.archive_key(archive);
        let mut conn = self.conn.clone();
        let (count, bytes): (u64, Option<u64>) = redis::pipe()
            .cmd("XLEN")
            .arg(&key)
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XLEN"))?;
        Ok((count, bytes.unwrap_or(0)))
    }

    pub async fn purge_archive(&self, archive: &str, before: f64) {
        let key = self.archive_key(archive);
        let mut conn = self.conn.clone();
        let done: Result<RValue, _> = if before == f64::MAX {
            redis::cmd("DEL").arg(&key).query_async(&mut conn).await
        } else {
            redis::cmd("XTRIM")
                .arg(&key)
                .arg("MINID")
                .arg(format!("{}-0", (before.max(0.0) * 1000.0) as u64))
                .query_async(&mut conn)
                .await
        };
        if let Err(e) = done {
            tracing::warn!(archive, error = %e, "purging the archive failed");
        }
    }

    /// Entries not yet settled (pending to a node, or not yet read), and
    /// retries waiting.
    pub async fn counts(&self) -> Result<(u64, u64), String> {
        let mut conn = self.conn.clone();
        let groups: RValue = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.key("events"))
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XINFO"))?;
        let mut events = 0;
        for g in items(&groups) {
            let fields = items(g);
            let get = |name: &str| {
                fields
                    .chunks(2)
                    .find(|c| c.first().and_then(|k| text(k)).as_deref() == Some(name))
                    .and_then(|c| c.get(1).and_then(|v| text(v)))
            };
            if get("name").as_deref() == Some(GROUP) {
                let n = |name| get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                events = n("pending") + n("lag");
            }
        }
        let retries: u64 = redis::cmd("ZCARD")
            .arg(self.key("retries"))
            .query_async(&mut conn)
            .await
            .map_err(redis_err("ZCARD"))?;
        Ok((events, retries))
    }
}

fn key(settings: &EventBusFile, what: &str) -> String {
    format!("{}:{what}", settings.stream)
}

async fn connect(client: &redis::Client) -> Result<MultiplexedConnection, String> {
    // Reads block for up to BLOCK: the response timeout is longer.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(redis_err("connection"))
}

/// Settled entries acknowledged together, at most (else at the next
/// dispatcher tick).
const SETTLE_BATCH: usize = 256;

/// The dispatcher's side: what the read-ahead task queued, and the settled
/// entries not yet acknowledged (one `XACK` for many: a round trip per
/// event would cap delivery at the round-trip rate). A crash before the
/// acknowledgement repeats those deliveries, as any crash may.
pub struct Reader {
    log: RedisLog,
    rx: mpsc::Receiver<(Logged, Ack)>,
    settled: Vec<String>,
}

impl Reader {
    pub fn log(&self) -> &RedisLog {
        &self.log
    }

    pub fn progress_every(&self) -> Duration {
        self.log.progress_every()
    }

    pub async fn settle(&mut self, id: String) {
        self.settled.push(id);
        if self.settled.len() >= SETTLE_BATCH {
            self.checkpoint().await;
        }
    }

    /// Acknowledge what was settled since the last time.
    pub async fn checkpoint(&mut self) {
        let ids = std::mem::take(&mut self.settled);
        self.log.settle(&ids).await;
    }

    /// Up to `limit` events, waiting for one. Cancel-safe (a queue).
    pub async fn next(&mut self, limit: usize) -> Vec<(Logged, Ack)> {
        let Some(first) = self.rx.recv().await else {
            std::future::pending::<()>().await;
            unreachable!()
        };
        let mut out = vec![first];
        while out.len() < limit {
            match self.rx.try_recv() {
                Ok(e) => out.push(e),
                Err(_) => break,
            }
        }
        out
    }
}
