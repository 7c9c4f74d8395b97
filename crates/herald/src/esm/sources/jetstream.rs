//! NATS JetStream: a durable pull consumer per mapping (`herald-<uuid>`,
//! explicit acknowledgements) on the stream the ARN names. Nodes sharing a
//! mapping pull from the same consumer, so each message goes to one of them.
//!
//! * Start: the consumer is created at `StartingPosition` (`TRIM_HORIZON`:
//!   all, `LATEST`: new, `AT_TIMESTAMP`: by start time); an existing one keeps
//!   its position.
//! * Checkpoint: a message is acknowledged once its outcome is final. While it
//!   is retried Herald sends "in progress", so the server does not hand it
//!   out again; a node that dies leaves its messages unacknowledged, and the
//!   server redelivers them after `ack_wait_secs`.
//!
//! The record: `data` is the payload in base64 (as Kinesis's); filters and
//! channel targets see it decoded (JSON when it is JSON).

use super::super::config::EventSourceFile;
use super::super::source::{decoded, Envelope, Record, Source, SourceKind};
use super::super::spec::MappingSpec;
use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use base64::Engine as _;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub struct JetStream {
    client: async_nats::Client,
    consumer: Consumer<pull::Config>,
    stream: String,
    arn: String,
    region: String,
    /// Decode each payload for filters and channel targets.
    view: bool,
}

impl JetStream {
    pub async fn connect(
        source: &EventSourceFile,
        spec: &MappingSpec,
        region: &str,
    ) -> Result<JetStream, String> {
        let mut options = async_nats::ConnectOptions::new();
        if let (Some(u), Some(p)) = (&source.username, &source.password) {
            options = options.user_and_password(u.clone(), p.clone());
        }
        let shown = super::redact(&source.url);
        let client = options
            .connect(source.url.as_str())
            .await
            .map_err(|e| format!("NATS {shown}: {e}"))?;
        let js = async_nats::jetstream::new(client.clone());
        let name = SourceKind::resource(&spec.source_arn).to_string();
        let stream = js
            .get_stream(&name)
            .await
            .map_err(|e| format!("JetStream stream {name}: {e}"))?;
        let deliver_policy = match spec.starting_position.as_deref() {
            Some("LATEST") => DeliverPolicy::New,
            Some("AT_TIMESTAMP") => DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                    (spec.starting_position_timestamp.unwrap_or_default() * 1e9) as i128,
                )
                .map_err(|e| format!("StartingPositionTimestamp: {e}"))?,
            },
            _ => DeliverPolicy::All,
        };
        let durable = format!("herald-{}", spec.uuid);
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    deliver_policy,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: source.ack_wait(),
                    // Bounded: a mapping holds at most a few batches unacknowledged.
                    max_ack_pending: (spec.batch_size as i64 * 4).max(1000),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("JetStream consumer {durable} on {name}: {e}"))?;
        Ok(JetStream {
            client,
            consumer,
            stream: name,
            arn: spec.source_arn.clone(),
            region: region.to_string(),
            view: spec.needs_view(),
        })
    }

    fn record(&self, m: async_nats::jetstream::Message) -> Result<Record, String> {
        let info = m
            .info()
            .map_err(|e| format!("a JetStream message without metadata: {e}"))?;
        let seq = info.stream_sequence.to_string();
        let arrived_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as u64;
        let delivered = info.delivered;
        let reply = m
            .message
            .reply
            .as_ref()
            .map(|r| r.to_string())
            .ok_or("a JetStream message without a reply subject")?;
        let data = if self.view {
            decoded(&m.message.payload).0
        } else {
            Value::Null
        };
        let mut headers = Map::new();
        if let Some(h) = &m.message.headers {
            for (k, v) in h.iter() {
                headers.insert(
                    k.to_string(),
                    Value::Array(v.iter().map(|x| Value::String(x.to_string())).collect()),
                );
            }
        }
        let subject = m.message.subject.to_string();
        let event = Envelope {
            event_source: "herald:nats",
            event_source_arn: &self.arn,
            aws_region: &self.region,
            event_id: format!("{}:{seq}", self.stream),
            event_name: "nats:jetstream:message",
            body: Body {
                jetstream: Message {
                    stream: &self.stream,
                    subject: &subject,
                    sequence_number: &seq,
                    approximate_arrival_timestamp: arrived_ms as f64 / 1000.0,
                    delivery_count: delivered,
                    headers: &headers,
                    data: base64::engine::general_purpose::STANDARD.encode(&m.message.payload),
                },
            },
        };
        Ok(Record {
            event: event.raw(),
            filter_view: if self.view {
                json!({"subject": subject, "headers": headers, "data": data})
            } else {
                Value::Null
            },
            data,
            size: m.message.payload.len(),
            token: reply,
            group: Some(subject),
            id: seq,
            arrived_ms,
        })
    }

    async fn reply_all(&self, tokens: Vec<String>, what: &'static str) -> Result<(), String> {
        for t in tokens {
            self.client
                .publish(t, what.into())
                .await
                .map_err(|e| format!("JetStream ack: {e}"))?;
        }
        self.client
            .flush()
            .await
            .map_err(|e| format!("JetStream ack: {e}"))
    }
}

impl Source for JetStream {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, String> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(wait.max(Duration::from_millis(100)))
            .messages()
            .await
            .map_err(|e| format!("JetStream fetch {}: {e}", self.stream))?;
        let mut out = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| format!("JetStream fetch {}: {e}", self.stream))?;
            out.push(self.record(m)?);
        }
        Ok(out)
    }

    async fn ack(&mut self, tokens: Vec<String>) -> Result<(), String> {
        self.reply_all(tokens, "+ACK").await
    }

    async fn renew(&mut self, tokens: Vec<String>) -> Result<(), String> {
        self.reply_all(tokens, "+WPI").await
    }

    async fn lag(&mut self) -> Option<u64> {
        let info = self.consumer.info().await.ok()?;
        Some(info.num_pending + info.num_ack_pending as u64)
    }
}

/// The broker's part of a record's event.
#[derive(Serialize)]
struct Body<'a> {
    jetstream: Message<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    stream: &'a str,
    subject: &'a str,
    sequence_number: &'a str,
    approximate_arrival_timestamp: f64,
    delivery_count: i64,
    headers: &'a Map<String, Value>,
    data: String,
}
