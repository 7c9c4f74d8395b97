//! RabbitMQ (Amazon MQ's semantics for Lambda): one consumer per poller on
//! the mapping's queue (`Queues`), with a prefetch of the batch size; the
//! virtual host and credentials come from the event source's URL
//! (`amqp://user:pass@host:5672/vhost`, `amqps://` for TLS) or its
//! `username`/`password`.
//!
//! A processed message is acknowledged (`basic.ack`). A failed one is
//! requeued (`basic.nack`, requeue) until it has been delivered
//! `max_deliveries` times (the event source's setting, default 10; the
//! count is RabbitMQ's `x-delivery-count` on quorum queues, else Herald's
//! own per node), then rejected without requeue, so the queue's dead-letter
//! exchange takes it. A queue without one discards it: RabbitMQ's rule,
//! logged at error level.
//!
//! The event is Lambda's for Amazon MQ (`rmqMessagesByQueue`, keyed
//! `<queue>::<virtual host>`, base64 `data`); filters see `data` decoded.

use super::super::config::EventSourceFile;
use super::super::source::{decoded, event_len, push_array, raw, Record, Source};
use super::super::spec::MappingSpec;
use base64::Engine as _;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Delivery counts kept per node for classic queues, at most.
const MAX_COUNTED: usize = 100_000;
pub const DEFAULT_MAX_DELIVERIES: u64 = 10;

pub struct RabbitMq {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    key: String,
    arn: String,
    max_deliveries: u64,
    /// Per delivery tag held now: the message's identity and deliveries.
    held: HashMap<u64, (String, u64)>,
    /// Deliveries seen per message identity (classic queues).
    counts: HashMap<String, u64>,
    /// Decode each body for filters and channel targets.
    view: bool,
}

fn vhost_of(url: &str) -> String {
    let after = url.split("://").nth(1).unwrap_or_default();
    match after.split_once('/') {
        Some((_, v)) if !v.is_empty() => crate::auth::sigv4::percent_decode(v),
        _ => "/".to_string(),
    }
}

fn amqp_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(i) => json!(i),
        AMQPValue::ShortShortUInt(i) => json!(i),
        AMQPValue::ShortInt(i) => json!(i),
        AMQPValue::ShortUInt(i) => json!(i),
        AMQPValue::LongInt(i) => json!(i),
        AMQPValue::LongUInt(i) => json!(i),
        AMQPValue::LongLongInt(i) => json!(i),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => table_json(t),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_json).collect()),
        _ => Value::Null,
    }
}

fn table_json(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), amqp_json(v)))
            .collect::<Map<_, _>>(),
    )
}

impl RabbitMq {
    pub async fn connect(source: &EventSourceFile, spec: &MappingSpec) -> Result<RabbitMq, String> {
        let mut url = source.url.clone();
        if let (Some(u), Some(p)) = (&source.username, &source.password) {
            if let Some((scheme, rest)) = url.split_once("://") {
                let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                url = format!("{scheme}://{u}:{p}@{rest}");
            }
        }
        let shown = super::redact(&source.url);
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .map_err(|e| format!("RabbitMQ {shown}: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("RabbitMQ {shown}: {e}"))?;
        let queue = spec.queues.first().cloned().unwrap_or_default();
        channel
            .basic_qos(
                spec.batch_size.clamp(1, u16::MAX as u64) as u16,
                BasicQosOptions::default(),
            )
            .await
            .map_err(|e| format!("RabbitMQ basic.qos: {e}"))?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("herald-{}-{}", spec.uuid, crate::new_uuid().simple())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("RabbitMQ queue {queue}: {e}"))?;
        Ok(RabbitMq {
            _connection: connection,
            channel,
            consumer,
            key: format!("{queue}::{}", vhost_of(&source.url)),
            arn: spec.source_arn.clone(),
            max_deliveries: source
                .max_deliveries
                .unwrap_or(DEFAULT_MAX_DELIVERIES)
                .max(1),
            held: HashMap::new(),
            counts: HashMap::new(),
            view: spec.needs_view(),
        })
    }

    fn record(&mut self, d: lapin::message::Delivery) -> Record {
        let p = &d.properties;
        let headers = p.headers().as_ref().map(table_json).unwrap_or(json!({}));
        let identity = p
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| {
                crate::functions::sha256_base64(
                    &[d.routing_key.as_str().as_bytes(), &d.data].concat(),
                )
            });
        // RabbitMQ counts on quorum queues; Herald counts otherwise.
        let deliveries = match headers.get("x-delivery-count").and_then(Value::as_u64) {
            Some(n) => n + 1,
            None => {
                if self.counts.len() >= MAX_COUNTED {
                    self.counts.clear();
                }
                let c = self.counts.entry(identity.clone()).or_insert(0);
                *c += 1;
                *c
            }
        };
        let tag = d.delivery_tag;
        self.held.insert(tag, (identity.clone(), deliveries));
        let arrived_ms = p.timestamp().map(|t| t * 1000).unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64
        });
        let text =
            |o: &Option<lapin::types::ShortString>| o.as_ref().map(|s| s.as_str().to_string());
        let properties = json!({
            "contentType": text(p.content_type()),
            "contentEncoding": text(p.content_encoding()),
            "headers": headers,
            "deliveryMode": p.delivery_mode(),
            "priority": p.priority(),
            "correlationId": text(p.correlation_id()),
            "replyTo": text(p.reply_to()),
            "expiration": text(p.expiration()),
            "messageId": text(p.message_id()),
            "timestamp": p.timestamp(),
            "type": text(p.kind()),
            "userId": text(p.user_id()),
            "appId": text(p.app_id()),
            "clusterId": text(p.cluster_id()),
            "bodySize": d.data.len(),
        });
        let data = if self.view {
            decoded(&d.data).0
        } else {
            Value::Null
        };
        Record {
            id: identity,
            token: tag.to_string(),
            group: None,
            arrived_ms,
            size: d.data.len(),
            event: raw(&json!({
                "basicProperties": properties,
                "redelivered": d.redelivered,
                "data": base64::engine::general_purpose::STANDARD.encode(&d.data),
            })),
            filter_view: if self.view {
                json!({"basicProperties": properties, "data": data})
            } else {
                Value::Null
            },
            data,
        }
    }
}

impl Source for RabbitMq {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, String> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) => return Ok(out),
            Ok(None) => return Err("the RabbitMQ consumer was cancelled".into()),
            Ok(Some(d)) => d.map_err(|e| format!("RabbitMQ: {e}"))?,
        };
        out.push(self.record(first));
        // Whatever else the prefetch already brought.
        while out.len() < max {
            match self.consumer.next().now_or_never() {
                Some(Some(Ok(d))) => out.push(self.record(d)),
                Some(Some(Err(e))) => return Err(format!("RabbitMQ: {e}")),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, tokens: Vec<String>) -> Result<(), String> {
        for t in tokens {
            let tag: u64 = t.parse().map_err(|_| "a bad delivery tag")?;
            if let Some((identity, _)) = self.held.remove(&tag) {
                self.counts.remove(&identity);
            }
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await
                .map_err(|e| format!("RabbitMQ basic.ack: {e}"))?;
        }
        Ok(())
    }

    async fn release(&mut self, tokens: Vec<String>) -> Result<(), String> {
        for t in tokens {
            let tag: u64 = t.parse().map_err(|_| "a bad delivery tag")?;
            let (identity, deliveries) = self.held.remove(&tag).unwrap_or_default();
            let requeue = deliveries < self.max_deliveries;
            if !requeue {
                self.counts.remove(&identity);
                tracing::error!(queue = %self.key, message = %identity, deliveries, "a message failed max_deliveries times: rejected to the queue's dead-letter exchange (discarded when it has none)");
            }
            self.channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue,
                    },
                )
                .await
                .map_err(|e| format!("RabbitMQ basic.nack: {e}"))?;
        }
        Ok(())
    }

    fn event(&self, records: &[Record]) -> Vec<u8> {
        let head = json!({"eventSource": "aws:rmq", "eventSourceArn": self.arn}).to_string();
        let mut out = Vec::with_capacity(head.len() + event_len(records) + self.key.len() + 32);
        // `{...head...,"rmqMessagesByQueue":{"<queue>::/":[records]}}`
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"rmqMessagesByQueue\":{");
        out.extend_from_slice(Value::String(self.key.clone()).to_string().as_bytes());
        out.push(b':');
        push_array(&mut out, records);
        out.extend_from_slice(b"}}");
        out
    }

    async fn lag(&mut self) -> Option<u64> {
        None
    }
}
