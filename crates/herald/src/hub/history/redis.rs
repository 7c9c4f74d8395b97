//! Channel history on the Redis engine's server (see [`super::cluster`]).
//!
//! A channel `/ns/a` of API `chat` has a stream `herald:chat:h:/ns/a` (entry
//! ids `<offset>-0`, fields `t` (publish time, ms) and `e` (the event as a
//! JSON string literal), trimmed to the namespace's `size` with `MAXLEN`)
//! and a hash `herald:chat:hm:/ns/a` (`epoch`, `top`). Appending is one
//! script: it gives out the offsets (`HINCRBY top`), adds the entries and
//! `PUBLISH`es the batch with its first offset and epoch on the channel's
//! pub/sub channel, so offsets and delivery order agree on every node. A
//! missing hash means a new stream: a new epoch, and the old entries go.
//!
//! Expiry: the stream expires `ttl_secs` after its last publish, the hash a
//! day after (or `ttl_secs`, if longer), so a client that saw the last event
//! recovers (with nothing to replay) after a quiet hour; entries older than
//! `ttl_secs` in a stream still written to are not replayed.

use super::cluster::ClusterHistory;
use super::{now_ms, Entry, HistorySettings, Position, Read};
use crate::hub::engine::{Batch, BoxFuture, EngineError, EngineMetrics};
use crate::hub::wire;
use crate::resp::{entries, items, text};
use herald_core::ChannelPattern;
use redis::aio::ConnectionManager;
use redis::Value as RValue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);
/// The least time a stream's epoch and top are kept after its last publish.
const META_TTL_MS: u64 = 24 * 3600 * 1000;

/// KEYS: stream, meta. ARGV: size, ttl ms, meta ttl ms, new epoch, pub/sub
/// channel, message head, middle, tail, now ms, events...
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'top', 0)
end
local n = #ARGV - 9
local top = redis.call('HINCRBY', KEYS[2], 'top', n)
local first = top - n + 1
for i = 1, n do
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], string.format('%d-0', first + i - 1), 't', ARGV[9], 'e', ARGV[9 + i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. string.format('%d', first) .. ARGV[7] .. epoch .. ARGV[8])
return first
";

/// KEYS: stream, meta. ARGV: create (1 or 0), new epoch, meta ttl ms, first
/// id to read, count. Returns nil (no stream, not created) or {epoch, top,
/// entries}.
const READ: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  if ARGV[1] == '0' then return false end
  epoch = ARGV[2]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local top = redis.call('HGET', KEYS[2], 'top')
local found = {}
if tonumber(ARGV[5]) > 0 then
  found = redis.call('XRANGE', KEYS[1], ARGV[4], '+', 'COUNT', ARGV[5])
end
return {epoch, top, found}
";

/// The Redis engine's history (it shares the engine's publishing connection).
pub struct RedisHistory {
    /// `herald:<api>:`
    pub prefix: String,
    pub node: String,
    pub metrics: EngineMetrics,
    pub publisher: Arc<Mutex<Option<ConnectionManager>>>,
    pub connected: Arc<AtomicBool>,
}

fn failed(what: &str) -> impl Fn(redis::RedisError) -> EngineError + '_ {
    move |e| EngineError(format!("Redis {what}: {e}"))
}

fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn meta_ttl(settings: HistorySettings) -> u64 {
    (settings.ttl.as_millis() as u64).max(META_TTL_MS)
}

impl RedisHistory {
    fn conn(&self) -> Result<ConnectionManager, EngineError> {
        let conn = self.publisher.lock().unwrap().clone();
        match (conn, self.connected.load(Ordering::SeqCst)) {
            (Some(c), true) => Ok(c),
            _ => Err(EngineError("not connected to Redis".into())),
        }
    }

    fn keys(&self, channel: &str) -> (String, String) {
        (
            format!("{}h:{channel}", self.prefix),
            format!("{}hm:{channel}", self.prefix),
        )
    }

    /// The READ script: `None` without a stream (and `create` off).
    async fn read(
        &self,
        channel: &str,
        settings: HistorySettings,
        create: bool,
        from: u64,
        count: usize,
    ) -> Result<Option<(Arc<str>, u64, Vec<Entry>)>, EngineError> {
        let mut conn = self.conn()?;
        let (stream, meta) = self.keys(channel);
        let reply: RValue = tokio::time::timeout(
            TIMEOUT,
            redis::cmd("EVAL")
                .arg(READ)
                .arg(2)
                .arg(&stream)
                .arg(&meta)
                .arg(if create { "1" } else { "0" })
                .arg(new_epoch())
                .arg(meta_ttl(settings))
                .arg(format!("{from}-0"))
                .arg(count)
                .query_async(&mut conn),
        )
        .await
        .map_err(|_| EngineError("Redis history read timed out".into()))?
        .map_err(failed("history read"))?;
        let parts = items(&reply);
        let (Some(epoch), Some(top)) = (
            parts.first().and_then(|v| text(v)),
            parts
                .get(1)
                .and_then(|v| text(v))
                .and_then(|t| t.parse().ok()),
        ) else {
            return Ok(None);
        };
        let expired_before = now_ms().saturating_sub(settings.ttl.as_millis() as u64);
        let found = parts
            .get(2)
            .map(|list| entries(list))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, fields)| {
                let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                let offset = id.split('-').next()?.parse().ok()?;
                let at_ms = field("t")?.parse().ok()?;
                Some(Entry {
                    offset,
                    literal: field("e")?.as_str().into(),
                    at_ms,
                })
            })
            // Older than the namespace's ttl: as good as trimmed.
            .filter(|e| e.at_ms > expired_before)
            .collect();
        Ok(Some((epoch.into(), top, found)))
    }
}

impl ClusterHistory for RedisHistory {
    fn append<'a>(
        &'a self,
        batch: &'a Batch,
        settings: HistorySettings,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let mut conn = match self.conn() {
                Ok(c) => c,
                Err(e) => {
                    self.metrics.publish_errors.inc();
                    return Err(e);
                }
            };
            let (stream, meta) = self.keys(batch.channel.path());
            let (head, middle, tail) = wire::encode_positioned(&self.node, rand::random(), batch);
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(APPEND)
                .arg(2)
                .arg(&stream)
                .arg(&meta)
                .arg(settings.size)
                .arg(settings.ttl.as_millis() as u64)
                .arg(meta_ttl(settings))
                .arg(new_epoch())
                .arg(format!("{}{}", self.prefix, batch.channel.path()))
                .arg(head)
                .arg(middle)
                .arg(tail)
                .arg(now_ms());
            for e in &batch.events {
                cmd.arg(&*e.literal);
            }
            let sent = tokio::time::timeout(TIMEOUT, cmd.query_async::<RValue>(&mut conn)).await;
            match sent {
                Ok(Ok(_)) => {
                    self.metrics.published.inc();
                    Ok(())
                }
                Ok(Err(e)) => {
                    self.metrics.publish_errors.inc();
                    Err(failed("history append")(e))
                }
                Err(_) => {
                    self.metrics.publish_errors.inc();
                    Err(EngineError("Redis history append timed out".into()))
                }
            }
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
            let (from, count) = match since {
                Some(p) => (p.offset + 1, settings.size),
                None => (1, 0),
            };
            let Some((epoch, top, found)) =
                self.read(channel, settings, create, from, count).await?
            else {
                return Ok(None);
            };
            let (entries, recovered) = super::recovery(since, &epoch, top, found);
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
            let from = after.map_or(1, |a| a + 1);
            let Some((epoch, top, mut found)) =
                self.read(channel, settings, false, from, limit + 1).await?
            else {
                return Ok(None);
            };
            let more = found.len() > limit;
            found.truncate(limit);
            let recovered = match (after, found.first()) {
                (None, _) => true,
                (Some(a), Some(e)) => e.offset == a + 1,
                (Some(a), None) => a >= top,
            };
            Ok(Some((
                Read {
                    channel: channel.into(),
                    top: Position { offset: top, epoch },
                    entries: found,
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
            let mut conn = self.conn()?;
            let meta_prefix = format!("{}hm:", self.prefix);
            let glob = match pattern {
                ChannelPattern::Exact(c) => format!("{meta_prefix}{}", c.path()),
                ChannelPattern::Prefix(p) => format!("{meta_prefix}{}/*", p.path()),
            };
            let mut cursor = "0".to_string();
            let mut found: Vec<Arc<str>> = Vec::new();
            loop {
                let reply: RValue = tokio::time::timeout(
                    TIMEOUT,
                    redis::cmd("SCAN")
                        .arg(&cursor)
                        .arg("MATCH")
                        .arg(&glob)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn),
                )
                .await
                .map_err(|_| EngineError("Redis SCAN timed out".into()))?
                .map_err(failed("SCAN"))?;
                let parts = items(&reply);
                cursor = parts
                    .first()
                    .and_then(|v| text(v))
                    .unwrap_or_else(|| "0".into());
                if let Some(keys) = parts.get(1) {
                    found.extend(
                        items(keys)
                            .into_iter()
                            .filter_map(text)
                            .filter_map(|k| k.strip_prefix(&meta_prefix).map(Arc::from)),
                    );
                }
                if cursor == "0" {
                    break;
                }
            }
            found.sort();
            found.dedup();
            Ok(found)
        })
    }
}
