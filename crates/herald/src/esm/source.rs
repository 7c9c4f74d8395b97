//! What a source is: a broker client that hands out records and takes back
//! the verdict on each. A source knows its broker and nothing else: batching,
//! filtering, invoking, retries and destinations are the pipeline's
//! ([`super::pipeline`]), written once for every source.
//!
//! The per-source failure rules are data, [`Semantics`]:
//! * **Queue** (SQS, RabbitMQ): records are independent. A failed record
//!   goes back to the broker ([`Source::release`]), which redelivers it and
//!   applies its own redrive or dead-letter policy; nothing is retried in
//!   Herald's memory.
//! * **Stream** (Redis Streams, NATS JetStream, Kinesis): records are ordered.
//!   The pipeline keeps a failed batch and retries it (bisecting, up to
//!   `MaximumRetryAttempts` and `MaximumRecordAgeInSeconds`), and only then
//!   sends it to the on-failure destination and moves on.
//!
//! **Delivery contract**: at least once. A record is acknowledged to the
//! broker ([`Source::ack`]) only after it was processed, filtered out, or
//! delivered to the on-failure destination (or dropped and counted when
//! there is none). A node that dies holding records leaves them
//! unacknowledged; the broker (or, for Redis, a surviving node's claim after
//! `ack_wait_secs`) hands them out again, so a record may be processed twice.

use serde_json::value::RawValue;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// The broker a mapping reads, from its event source ARN's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `arn:aws:sqs:<region>:<account>:<queue>`.
    Sqs,
    /// `arn:aws:mq:<region>:<account>:broker:<name>:<id>`, with `Queues`.
    RabbitMq,
    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    Kinesis,
    /// `arn:aws:nats:<region>:<account>:stream/<stream>` (Herald's form).
    JetStream,
    /// `arn:aws:redis:<region>:<account>:stream/<key>` (Herald's form).
    RedisStreams,
}

/// Failure rules, per [`SourceKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    Queue,
    Stream,
}

impl SourceKind {
    pub fn of_arn(arn: &str) -> Result<SourceKind, String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" || !parts[1].starts_with("aws") {
            return Err(format!(
                "1 validation error detected: Value '{arn}' at 'eventSourceArn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}})?:(\\d{{12}})?:(.*)"
            ));
        }
        let resource = parts[5];
        let kind = match parts[2] {
            "sqs" => SourceKind::Sqs,
            "mq" => SourceKind::RabbitMq,
            "kinesis" => SourceKind::Kinesis,
            "nats" => SourceKind::JetStream,
            "redis" => SourceKind::RedisStreams,
            other => {
                return Err(format!(
                    "Unsupported event source type: {other}. Herald reads sqs, mq (RabbitMQ), kinesis, nats (JetStream) and redis (Redis Streams) ARNs"
                ))
            }
        };
        let named = match kind {
            SourceKind::Sqs => !resource.is_empty() && !resource.contains('/'),
            SourceKind::RabbitMq => resource.starts_with("broker:"),
            _ => resource
                .strip_prefix("stream/")
                .is_some_and(|s| !s.is_empty()),
        };
        if !named {
            return Err(format!(
                "Invalid event source ARN {arn}: expected {}",
                match kind {
                    SourceKind::Sqs => "arn:aws:sqs:<region>:<account>:<queue>",
                    SourceKind::RabbitMq => "arn:aws:mq:<region>:<account>:broker:<name>:<id>",
                    SourceKind::Kinesis => "arn:aws:kinesis:<region>:<account>:stream/<name>",
                    SourceKind::JetStream => "arn:aws:nats:<region>:<account>:stream/<stream>",
                    SourceKind::RedisStreams => "arn:aws:redis:<region>:<account>:stream/<key>",
                }
            ));
        }
        Ok(kind)
    }

    pub fn semantics(self) -> Semantics {
        match self {
            SourceKind::Sqs | SourceKind::RabbitMq => Semantics::Queue,
            _ => Semantics::Stream,
        }
    }

    pub fn is_stream(self) -> bool {
        self.semantics() == Semantics::Stream
    }

    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Sqs => "SQS",
            SourceKind::RabbitMq => "Amazon MQ (RabbitMQ)",
            SourceKind::Kinesis => "Kinesis",
            SourceKind::JetStream => "NATS JetStream",
            SourceKind::RedisStreams => "Redis Streams",
        }
    }

    /// The key of the batch description in on-failure records
    /// (`KinesisBatchInfo` in AWS's).
    pub fn batch_info_key(self) -> &'static str {
        match self {
            SourceKind::Kinesis => "KinesisBatchInfo",
            SourceKind::JetStream => "JetStreamBatchInfo",
            SourceKind::RedisStreams => "RedisStreamsBatchInfo",
            SourceKind::Sqs => "SQSBatchInfo",
            SourceKind::RabbitMq => "MQBatchInfo",
        }
    }

    /// The region in an ARN (`us-east-1` when it has none).
    pub fn region(arn: &str) -> &str {
        arn.split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .unwrap_or("us-east-1")
    }

    /// The resource name at the end of the ARN (queue, stream, key).
    pub fn resource(arn: &str) -> &str {
        let r = arn.splitn(6, ':').nth(5).unwrap_or_default();
        r.strip_prefix("stream/").unwrap_or(r)
    }
}

/// One record as read from the broker.
#[derive(Debug, Clone)]
pub struct Record {
    /// Lambda's `itemIdentifier`: the message id (queues) or sequence number
    /// (streams).
    pub id: String,
    /// What the source needs to acknowledge or release it.
    pub token: String,
    /// The record's ordering key: order is kept among records sharing it
    /// (an SQS FIFO message group; Kinesis's partition key and a JetStream
    /// subject, which pick a stream record's `ParallelizationFactor` lane).
    pub group: Option<String>,
    /// When the broker took it (epoch milliseconds): record age.
    pub arrived_ms: u64,
    /// The record as the function's event holds it (Lambda's shape),
    /// written once as JSON text: a batch's event is these joined, with no
    /// tree of values built or walked per record.
    pub event: Box<RawValue>,
    /// What `FilterCriteria` see: the record with its data (`body` or
    /// `data`) decoded when it is JSON (`null` when the mapping has no
    /// filters and no channel target: nothing reads it).
    pub filter_view: Value,
    /// What a channel target publishes: the data, decoded when JSON, else as
    /// a string.
    pub data: Value,
    /// The data's size in bytes (the 6 MB invoke limit).
    pub size: usize,
}

/// A broker client for one mapping. `poll` waits at most `wait` for the
/// first record and returns up to `max`.
pub trait Source: Send + 'static {
    fn poll(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Record>, String>> + Send;

    /// These records are done: never hand them out again.
    fn ack(&mut self, tokens: Vec<String>) -> impl Future<Output = Result<(), String>> + Send;

    /// Queues: these failed; hand them out again (or to the dead-letter
    /// queue, by the broker's or the source's retry limit).
    fn release(&mut self, tokens: Vec<String>) -> impl Future<Output = Result<(), String>> + Send {
        let _ = tokens;
        async { Ok(()) }
    }

    /// The pipeline still holds these (an invocation running, a stream batch
    /// waiting for its retry): renew the claim so no other consumer takes
    /// them meanwhile.
    fn renew(&mut self, tokens: Vec<String>) -> impl Future<Output = Result<(), String>> + Send {
        let _ = tokens;
        async { Ok(()) }
    }

    /// The function's event for a batch (Lambda's shape for this source),
    /// as JSON text.
    fn event(&self, records: &[Record]) -> Vec<u8> {
        records_event(records)
    }

    /// Records behind the head (`OffsetLag`), when the broker says.
    fn lag(&mut self) -> impl Future<Output = Option<u64>> + Send;
}

/// `{"Records": [...]}`: the event of most sources (Lambda's shape).
pub fn records_event(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event_len(records) + 16);
    out.extend_from_slice(b"{\"Records\":");
    push_array(&mut out, records);
    out.push(b'}');
    out
}

/// The bytes of the records' events joined in an array.
pub fn event_len(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| r.event.get().len() + 1)
        .sum::<usize>()
        + 2
}

/// Append the records' events as a JSON array.
pub fn push_array(out: &mut Vec<u8>, records: &[Record]) {
    out.push(b'[');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r.event.get().as_bytes());
    }
    out.push(b']');
}

/// The fields every Herald stream record shares (Lambda's names), with the
/// broker's own part flattened in (`{"redis": ...}`, `{"jetstream": ...}`):
/// serialized straight to JSON text on the hot path.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a, B> {
    pub event_source: &'static str,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: &'a str,
    pub aws_region: &'a str,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_name: &'static str,
    #[serde(flatten)]
    pub body: B,
}

impl<B: serde::Serialize> Envelope<'_, B> {
    pub fn raw(&self) -> Box<RawValue> {
        serde_json::value::to_raw_value(self).expect("JSON serializes")
    }
}

/// A record's event from a value (the sources where building a tree first
/// costs nothing that matters; the fast ones serialize a struct).
pub fn raw(v: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).expect("a JSON value serializes")
}

/// Decode data as JSON when it is JSON; otherwise a string.
pub fn decoded(bytes: &[u8]) -> (Value, bool) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => (v, true),
        Err(_) => (
            Value::String(String::from_utf8_lossy(bytes).into_owned()),
            false,
        ),
    }
}
