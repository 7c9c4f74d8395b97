//! SQS (any server speaking SQS's JSON protocol; the tests use
//! `moto_server`): long polling (`ReceiveMessage` waiting up to 20 s), the
//! queue's visibility timeout, `DeleteMessageBatch` for what is done.
//!
//! Failure follows Lambda: a message that failed is left alone and comes
//! back when its visibility timeout expires; the queue's redrive policy
//! (`maxReceiveCount` → dead-letter queue) handles poison messages, not the
//! mapping. Requests are signed with SigV4 when the event source has
//! credentials.

use super::super::config::EventSourceFile;
use super::super::source::{decoded, raw, Record, Source, SourceKind};
use super::super::spec::MappingSpec;
use super::aws::AwsJson;
use crate::http_client::HttpClient;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub struct Sqs {
    client: AwsJson,
    region: String,
    arn: String,
    queue_url: String,
    /// Decode each body for filters and channel targets.
    view: bool,
}

impl Sqs {
    pub async fn connect(
        http: HttpClient,
        source: &EventSourceFile,
        spec: &MappingSpec,
    ) -> Result<Sqs, String> {
        let region = SourceKind::region(&spec.source_arn).to_string();
        let client = AwsJson::new(
            http,
            source,
            &region,
            "sqs",
            "AmazonSQS",
            "application/x-amz-json-1.0",
        );
        let name = SourceKind::resource(&spec.source_arn);
        let r = client
            .call(
                "GetQueueUrl",
                json!({"QueueName": name}),
                Duration::from_secs(10),
            )
            .await?;
        Ok(Sqs {
            queue_url: r["QueueUrl"]
                .as_str()
                .ok_or("GetQueueUrl returned no QueueUrl")?
                .to_string(),
            client,
            region,
            arn: spec.source_arn.clone(),
            view: spec.needs_view(),
        })
    }

    async fn call(&self, op: &str, body: Value, timeout: Duration) -> Result<Value, String> {
        self.client.call(op, body, timeout).await
    }

    fn record(&self, m: &Value) -> Record {
        let body = m["Body"].as_str().unwrap_or_default().to_string();
        let attributes = m["Attributes"].clone();
        let arrived_ms = attributes["SentTimestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_default();
        // Lambda's messageAttributes shape: lower-camel keys, list fields.
        let mut message_attributes = Map::new();
        if let Some(attrs) = m["MessageAttributes"].as_object() {
            for (k, a) in attrs {
                message_attributes.insert(
                    k.clone(),
                    json!({
                        "stringValue": a["StringValue"],
                        "binaryValue": a["BinaryValue"],
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": a["DataType"],
                    }),
                );
            }
        }
        let data = if self.view {
            decoded(body.as_bytes()).0
        } else {
            Value::Null
        };
        let event = json!({
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": body,
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.region,
        });
        let filter_view = if self.view {
            let mut v = event.clone();
            v["body"] = data.clone();
            v
        } else {
            Value::Null
        };
        Record {
            id: m["MessageId"].as_str().unwrap_or_default().to_string(),
            token: m["ReceiptHandle"].as_str().unwrap_or_default().to_string(),
            group: attributes["MessageGroupId"].as_str().map(str::to_string),
            arrived_ms,
            size: body.len(),
            event: raw(&event),
            filter_view,
            data,
        }
    }
}

impl Source for Sqs {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, String> {
        // Long polling: whole seconds, at most 20.
        let wait_secs = wait.as_secs_f64().ceil().clamp(0.0, 20.0) as u64;
        let r = self
            .call(
                "ReceiveMessage",
                json!({
                    "QueueUrl": self.queue_url,
                    "MaxNumberOfMessages": max.clamp(1, 10),
                    "WaitTimeSeconds": wait_secs,
                    "AttributeNames": ["All"],
                    "MessageSystemAttributeNames": ["All"],
                    "MessageAttributeNames": ["All"],
                }),
                Duration::from_secs(wait_secs + 10),
            )
            .await?;
        Ok(r["Messages"]
            .as_array()
            .map(|ms| ms.iter().map(|m| self.record(m)).collect())
            .unwrap_or_default())
    }

    async fn ack(&mut self, tokens: Vec<String>) -> Result<(), String> {
        for chunk in tokens.chunks(10) {
            let entries: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"Id": i.to_string(), "ReceiptHandle": t}))
                .collect();
            let r = self
                .call(
                    "DeleteMessageBatch",
                    json!({"QueueUrl": self.queue_url, "Entries": entries}),
                    Duration::from_secs(10),
                )
                .await?;
            if let Some(failed) = r["Failed"].as_array().filter(|f| !f.is_empty()) {
                return Err(format!(
                    "DeleteMessageBatch: {} entries failed: {}",
                    failed.len(),
                    failed[0]
                ));
            }
        }
        Ok(())
    }

    // `release` is the default no-op: Lambda leaves a failed message alone;
    // it comes back when its visibility timeout expires (and the queue's
    // redrive policy counts it).

    async fn lag(&mut self) -> Option<u64> {
        None
    }
}
