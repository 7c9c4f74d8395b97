//! Kinesis (the Kinesis API, JSON 1.1; the tests use `moto_server`): every
//! shard read with `GetRecords` from a shard iterator, checkpointed in
//! Herald's store, as Lambda keeps its checkpoints itself.
//!
//! * Start: each shard resumes after its checkpoint (`AFTER_SEQUENCE_NUMBER`),
//!   or at `StartingPosition` (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`) when it
//!   has none. Resharding is not followed: the shards are listed at start.
//! * One node reads a mapping at a time: it holds a lease in the store
//!   (renewed every third of `ack_wait_secs`); a node that dies loses it after
//!   `ack_wait_secs` and another node takes over from the checkpoints.
//! * Checkpoint: a shard's checkpoint advances only over the contiguous
//!   prefix of records whose outcome is final, so a record filtered out or
//!   acknowledged early never moves it past an earlier one still in work.

use super::super::config::EventSourceFile;
use super::super::source::{decoded, raw as raw_event, Record, Source, SourceKind};
use super::super::spec::{now_secs, MappingSpec};
use super::aws::AwsJson;
use crate::http_client::HttpClient;
use crate::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Between rounds over the shards when none had records (Lambda reads each
/// shard about once per second; this is lower for latency).
const IDLE_ROUND: Duration = Duration::from_millis(100);

/// Kinesis sequence numbers are decimal integers of up to 128 bits:
/// compared by length, then text.
fn seq_key(s: &str) -> (usize, String) {
    (s.len(), s.to_string())
}

struct Shard {
    id: String,
    iterator: Option<String>,
    /// Records handed out and not yet final: sequence → done.
    outstanding: BTreeMap<(usize, String), bool>,
}

pub struct Kinesis {
    client: AwsJson,
    store: Store,
    uuid: String,
    node: String,
    stream: String,
    arn: String,
    region: String,
    starting: (Option<String>, Option<f64>),
    shards: Vec<Shard>,
    next: usize,
    ttl: Duration,
    /// Until when this node holds the lease (it renews before).
    leased_until: Option<Instant>,
    view: bool,
    account: String,
}

impl Kinesis {
    pub async fn connect(
        http: HttpClient,
        store: Store,
        source: &EventSourceFile,
        spec: &MappingSpec,
        node: &str,
    ) -> Result<Kinesis, String> {
        let region = SourceKind::region(&spec.source_arn).to_string();
        let account = spec
            .source_arn
            .split(':')
            .nth(4)
            .unwrap_or_default()
            .to_string();
        Ok(Kinesis {
            client: AwsJson::new(
                http,
                source,
                &region,
                "kinesis",
                "Kinesis_20131202",
                "application/x-amz-json-1.1",
            ),
            store,
            uuid: spec.uuid.clone(),
            node: node.to_string(),
            stream: SourceKind::resource(&spec.source_arn).to_string(),
            arn: spec.source_arn.clone(),
            region,
            starting: (
                spec.starting_position.clone(),
                spec.starting_position_timestamp,
            ),
            shards: Vec::new(),
            next: 0,
            ttl: source.ack_wait(),
            leased_until: None,
            view: spec.needs_view(),
            account,
        })
    }

    /// Hold the lease; (re)open the shards from their checkpoints when it
    /// was just taken. `false`: another node reads this mapping.
    async fn leased(&mut self) -> Result<bool, String> {
        if let Some(until) = self.leased_until {
            if until.saturating_duration_since(Instant::now()) > self.ttl * 2 / 3 {
                return Ok(true);
            }
        }
        let ours = self
            .store
            .lease(&self.uuid, &self.node, now_secs(), self.ttl.as_secs_f64())
            .await?;
        if !ours {
            self.leased_until = None;
            self.shards.clear();
            return Ok(false);
        }
        if self.leased_until.is_none() {
            self.open().await?;
        }
        self.leased_until = Some(Instant::now() + self.ttl);
        Ok(true)
    }

    async fn open(&mut self) -> Result<(), String> {
        let listed = self
            .client
            .call(
                "ListShards",
                json!({"StreamName": self.stream}),
                Duration::from_secs(10),
            )
            .await?;
        let mut shards = Vec::new();
        for s in listed["Shards"].as_array().into_iter().flatten() {
            let id = s["ShardId"].as_str().unwrap_or_default().to_string();
            let mut req = json!({"StreamName": self.stream, "ShardId": id});
            match self.store.checkpoint(&self.uuid, &id).await? {
                Some(seq) => {
                    req["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                    req["StartingSequenceNumber"] = json!(seq);
                }
                None => {
                    let kind = self.starting.0.clone().unwrap_or_else(|| "LATEST".into());
                    if kind == "AT_TIMESTAMP" {
                        req["Timestamp"] = json!(self.starting.1.unwrap_or_default());
                    }
                    req["ShardIteratorType"] = json!(kind);
                }
            }
            let it = self
                .client
                .call("GetShardIterator", req, Duration::from_secs(10))
                .await?;
            shards.push(Shard {
                id,
                iterator: it["ShardIterator"].as_str().map(str::to_string),
                outstanding: BTreeMap::new(),
            });
        }
        tracing::info!(stream = %self.stream, shards = shards.len(), "reading the Kinesis stream");
        self.shards = shards;
        Ok(())
    }

    fn record(&self, shard: &str, r: &Value) -> Record {
        let seq = r["SequenceNumber"].as_str().unwrap_or_default().to_string();
        let b64 = r["Data"].as_str().unwrap_or_default().to_string();
        let arrival = r["ApproximateArrivalTimestamp"]
            .as_f64()
            .unwrap_or_default();
        let kinesis = json!({
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r["PartitionKey"],
            "sequenceNumber": seq,
            "data": b64,
            "approximateArrivalTimestamp": arrival,
        });
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .unwrap_or_default();
        let (data, filter_view) = if self.view {
            let data = decoded(&raw).0;
            let mut view = kinesis.clone();
            view["data"] = data.clone();
            (data, view)
        } else {
            (Value::Null, Value::Null)
        };
        Record {
            event: raw_event(&json!({
                "kinesis": kinesis,
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard}:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": format!("arn:aws:iam::{}:role/herald", self.account),
                "awsRegion": self.region,
                "eventSourceARN": self.arn,
            })),
            token: format!("{shard}\n{seq}"),
            id: seq,
            group: r["PartitionKey"].as_str().map(str::to_string),
            arrived_ms: (arrival * 1000.0) as u64,
            size: raw.len(),
            filter_view,
            data,
        }
    }
}

impl Source for Kinesis {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, String> {
        let until = Instant::now() + wait;
        loop {
            if self.leased().await? {
                for _ in 0..self.shards.len() {
                    let i = self.next % self.shards.len();
                    self.next = self.next.wrapping_add(1);
                    let Some(iterator) = self.shards[i].iterator.clone() else {
                        continue; // a closed shard
                    };
                    let got = self
                        .client
                        .call(
                            "GetRecords",
                            json!({"ShardIterator": iterator, "Limit": max.clamp(1, 10_000)}),
                            Duration::from_secs(10),
                        )
                        .await?;
                    self.shards[i].iterator = got["NextShardIterator"].as_str().map(str::to_string);
                    let records = got["Records"].as_array().cloned().unwrap_or_default();
                    if records.is_empty() {
                        continue;
                    }
                    let id = self.shards[i].id.clone();
                    let out: Vec<Record> = records.iter().map(|r| self.record(&id, r)).collect();
                    for r in &out {
                        self.shards[i].outstanding.insert(seq_key(&r.id), false);
                    }
                    return Ok(out);
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            tokio::time::sleep(left.min(IDLE_ROUND)).await;
        }
    }

    async fn ack(&mut self, tokens: Vec<String>) -> Result<(), String> {
        let mut moved: Vec<(String, String)> = Vec::new();
        for t in tokens {
            let Some((shard, seq)) = t.split_once('\n') else {
                continue;
            };
            let Some(s) = self.shards.iter_mut().find(|s| s.id == shard) else {
                continue; // the lease moved on; the new owner re-reads
            };
            if let Some(done) = s.outstanding.get_mut(&seq_key(seq)) {
                *done = true;
            }
            // Advance over the contiguous done prefix.
            let mut last = None;
            while let Some(entry) = s.outstanding.first_entry() {
                if !*entry.get() {
                    break;
                }
                last = Some(entry.key().1.clone());
                entry.remove();
            }
            if let Some(l) = last {
                moved.retain(|(sh, _)| sh != shard);
                moved.push((shard.to_string(), l));
            }
        }
        for (shard, seq) in moved {
            self.store.put_checkpoint(&self.uuid, &shard, &seq).await?;
        }
        Ok(())
    }

    async fn renew(&mut self, _tokens: Vec<String>) -> Result<(), String> {
        self.leased().await.map(|_| ())
    }

    async fn lag(&mut self) -> Option<u64> {
        None
    }
}
