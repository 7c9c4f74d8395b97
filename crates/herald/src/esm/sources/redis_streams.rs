//! Redis Streams: a consumer group per mapping (`herald-<uuid>`), one
//! consumer per node (its node id), so nodes sharing a mapping share the
//! stream's entries and each entry goes to one of them.
//!
//! * Start: the group is created at `StartingPosition` (`TRIM_HORIZON`: the
//!   first entry, `LATEST`: new entries, `AT_TIMESTAMP`: entries from that
//!   millisecond on); an existing group keeps its position.
//! * Recovery: a restarted node first reads its own pending entries (those it
//!   read and never acknowledged); entries another consumer left pending for
//!   longer than `ack_wait_secs` (a dead node) are claimed (`XAUTOCLAIM`).
//! * Checkpoint: `XACK` once an entry's outcome is final. While an entry is
//!   retried its claim is renewed (`XCLAIM` with no minimum idle time), so a
//!   live node's entries are never taken over.
//!
//! The record: `redis.fields` holds the entry's fields as strings; filters
//! (and channel targets) see `data`, the fields with each value decoded when
//! it is JSON (`amount 12` is the number 12).

use super::super::config::EventSourceFile;
use super::super::source::{Envelope, Record, Source};
use super::super::spec::MappingSpec;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value as RValue};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

pub struct RedisStreams {
    conn: MultiplexedConnection,
    key: String,
    group: String,
    consumer: String,
    arn: String,
    region: String,
    /// Reading this consumer's own pending entries (after a restart): from
    /// after this id.
    recovering: Option<String>,
    ack_wait: Duration,
    last_claim: Instant,
    /// Decode each entry for filters and channel targets.
    view: bool,
}

pub(crate) use crate::resp::read_reply;
use crate::resp::{entries, items, text};

impl RedisStreams {
    pub async fn connect(
        source: &EventSourceFile,
        spec: &MappingSpec,
        node_id: &str,
        region: &str,
    ) -> Result<RedisStreams, String> {
        let key = super::super::source::SourceKind::resource(&spec.source_arn).to_string();
        let client = redis::Client::open(source.url.as_str())
            .map_err(|e| format!("Redis {}: {e}", super::redact(&source.url)))?;
        // Reads block for up to the poll wait: the response timeout is longer.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("Redis {}: {e}", super::redact(&source.url)))?;
        let group = format!("herald-{}", spec.uuid);
        let start = match spec.starting_position.as_deref() {
            Some("LATEST") => "$".to_string(),
            Some("AT_TIMESTAMP") => format!(
                "{}-0",
                (spec.starting_position_timestamp.unwrap_or_default() * 1000.0) as u64
            ),
            _ => "0".to_string(),
        };
        let created: Result<RValue, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(&group)
            .arg(&start)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created {
            if !e.to_string().contains("BUSYGROUP") {
                return Err(format!("creating the consumer group {group} on {key}: {e}"));
            }
        }
        Ok(RedisStreams {
            conn,
            key,
            group,
            consumer: node_id.to_string(),
            arn: spec.source_arn.clone(),
            region: region.to_string(),
            recovering: Some("0".into()),
            ack_wait: source.ack_wait(),
            last_claim: Instant::now(),
            view: spec.needs_view(),
        })
    }

    fn record(&self, id: String, fields: Vec<(String, String)>) -> Record {
        let arrived_ms = id
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_default();
        let size = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        let (filter_view, data) = if self.view {
            let data: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), super::super::source::decoded(v.as_bytes()).0))
                .collect();
            let data = Value::Object(data);
            (json!({"stream": self.key, "id": id, "data": data}), data)
        } else {
            (Value::Null, Value::Null)
        };
        let event = Envelope {
            event_source: "herald:redis",
            event_source_arn: &self.arn,
            aws_region: &self.region,
            event_id: format!("{}:{id}", self.key),
            event_name: "redis:stream:entry",
            body: Body {
                redis: Entry {
                    stream: &self.key,
                    id: &id,
                    approximate_arrival_timestamp: arrived_ms as f64 / 1000.0,
                    fields: Fields(&fields),
                },
            },
        };
        Record {
            event: event.raw(),
            filter_view,
            data,
            token: id.clone(),
            group: None,
            id,
            arrived_ms,
            size,
        }
    }
}

/// The broker's part of a record's event.
#[derive(Serialize)]
struct Body<'a> {
    redis: Entry<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    stream: &'a str,
    id: &'a str,
    approximate_arrival_timestamp: f64,
    fields: Fields<'a>,
}

/// The entry's field-value pairs as an object (a later duplicate field
/// wins, as it would in a map).
struct Fields<'a>(&'a [(String, String)]);

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.0.len() > 8 {
            // Many fields: a map finds the duplicates.
            let m: std::collections::BTreeMap<&str, &str> = self
                .0
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            return m.serialize(s);
        }
        let mut m = s.serialize_map(None)?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if self.0[i + 1..].iter().any(|(later, _)| later == k) {
                continue;
            }
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl RedisStreams {
    async fn read(
        &mut self,
        max: usize,
        from: &str,
        block: Option<Duration>,
    ) -> Result<Vec<Record>, String> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.key).arg(from);
        let reply: RValue = cmd
            .query_async(&mut self.conn)
            .await
            .map_err(|e| format!("XREADGROUP {}: {e}", self.key))?;
        Ok(read_reply(&reply)
            .into_iter()
            .map(|(id, fields)| self.record(id, fields))
            .collect())
    }

    /// Entries other consumers left pending past `ack_wait`.
    async fn claim(&mut self, max: usize) -> Result<Vec<Record>, String> {
        let reply: RValue = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.ack_wait.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| format!("XAUTOCLAIM {}: {e}", self.key))?;
        let parts = items(&reply);
        Ok(match parts.get(1) {
            Some(list) => entries(list)
                .into_iter()
                .map(|(id, f)| self.record(id, f))
                .collect(),
            None => Vec::new(),
        })
    }
}

impl Source for RedisStreams {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, String> {
        if let Some(from) = self.recovering.take() {
            let mine = self.read(max, &from, None).await?;
            if let Some(last) = mine.last() {
                tracing::info!(stream = %self.key, entries = mine.len(), "re-reading entries this node read and did not acknowledge");
                self.recovering = Some(last.id.clone());
                return Ok(mine);
            }
        }
        if self.last_claim.elapsed() >= self.ack_wait / 2 {
            self.last_claim = Instant::now();
            let claimed = self.claim(max).await?;
            if !claimed.is_empty() {
                tracing::info!(stream = %self.key, entries = claimed.len(), "claimed entries another consumer left unacknowledged");
                return Ok(claimed);
            }
        }
        self.read(max, ">", Some(wait)).await
    }

    async fn ack(&mut self, tokens: Vec<String>) -> Result<(), String> {
        let _: RValue = redis::cmd("XACK")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&tokens)
            .query_async(&mut self.conn)
            .await
            .map_err(|e| format!("XACK {}: {e}", self.key))?;
        Ok(())
    }

    async fn renew(&mut self, tokens: Vec<String>) -> Result<(), String> {
        let _: RValue = redis::cmd("XCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(&tokens)
            .arg("JUSTID")
            .query_async(&mut self.conn)
            .await
            .map_err(|e| format!("XCLAIM {}: {e}", self.key))?;
        Ok(())
    }

    async fn lag(&mut self) -> Option<u64> {
        let reply: RValue = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.key)
            .query_async(&mut self.conn)
            .await
            .ok()?;
        for g in items(&reply) {
            let fields = items(g);
            let get = |name: &str| {
                fields
                    .chunks(2)
                    .find(|c| c.first().and_then(|k| text(k)).as_deref() == Some(name))
                    .and_then(|c| c.get(1).copied())
            };
            if get("name").and_then(text).as_deref() == Some(self.group.as_str()) {
                let lag = get("lag")
                    .and_then(text)
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0);
                let pending = get("pending")
                    .and_then(text)
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0);
                return Some(lag + pending);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("f{}", i % 3), i.to_string()))
            .collect()
    }

    #[test]
    fn an_entrys_fields_are_an_object_where_a_later_duplicate_wins() {
        // Few fields (checked pairwise) and many (through a map): the same
        // answer as building the object would give.
        for n in [1, 4, 12] {
            let fields = pairs(n);
            let text = serde_json::to_string(&Fields(&fields)).unwrap();
            let want: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let got: Map<String, Value> = serde_json::from_str(&text).unwrap();
            assert_eq!(got, want, "{n} fields: {text}");
            assert_eq!(text.matches("\"f0\"").count(), 1, "{text}");
        }
    }
}
