//! On-failure destinations for stream mappings: where a batch goes when its
//! retries or its records' age run out. Lambda's invocation record
//! (`requestContext`, `responseContext`, the batch info) is written; like
//! AWS's S3 destinations, Herald's own destinations also carry the records
//! (`payload`, the invocation event as escaped JSON), so nothing is lost.
//!
//! * `channel:/ns/path` (or `channel:<apiId>/ns/path`): one event per failed batch.
//! * `file:///absolute/path`: one JSON line per failed batch, appended and
//!   flushed to disk before the records are acknowledged.
//! * `arn:aws:sqs:<region>:<account>:<queue>`: the invocation record without
//!   the records, as AWS sends it (`SendMessage`).
//! * `arn:aws:s3:::<bucket>`: the record with the records (`payload`), as an
//!   object `aws/lambda/<mapping UUID>/<shard>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>`,
//!   AWS's key layout (`PutObject`, path-style).
//!
//! SQS and S3 destinations are reached through the `[[event_sources]]` entry
//! matching their ARN (the endpoint and credentials).

use super::target::ChannelTarget;
use crate::api::Registry;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Is `d` a destination Herald can deliver to?
pub fn check(d: &str) -> Result<(), String> {
    if d.len() > 350 {
        return Err(
            "DestinationConfig.OnFailure.Destination must be at most 350 characters".into(),
        );
    }
    if let Some(rest) = d.strip_prefix(super::spec::CHANNEL_PREFIX) {
        return super::spec::check_channel(rest);
    }
    if d.starts_with("arn:aws:sqs:") || d.starts_with("arn:aws:s3:::") {
        return Ok(());
    }
    if let Some(path) = d.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!("on-failure destination {d}: a file destination needs an absolute path (file:///...)"));
        }
        return Ok(());
    }
    Err(format!(
        "Unsupported on-failure destination {d}: Herald delivers to channel:/namespace/path, file:///path, SQS queue ARNs and S3 bucket ARNs"
    ))
}

pub enum Destination {
    Channel {
        apis: Arc<Registry>,
        channel: ChannelTarget,
    },
    File(PathBuf),
    Sqs {
        client: super::sources::aws::AwsJson,
        queue: String,
    },
    S3 {
        http: crate::http_client::HttpClient,
        source: super::config::EventSourceFile,
        bucket: String,
        /// `aws/lambda/<uuid>/`.
        prefix: String,
    },
}

impl Destination {
    pub fn new(
        d: &str,
        apis: Arc<Registry>,
        http: &crate::http_client::HttpClient,
        sources: &[super::config::EventSourceFile],
        uuid: &str,
    ) -> Option<Destination> {
        if let Some(channel) = ChannelTarget::parse(d) {
            return Some(Destination::Channel { apis, channel });
        }
        if let Some(bucket) = d.strip_prefix("arn:aws:s3:::") {
            let source = super::config::find(sources, d)?.clone();
            return Some(Destination::S3 {
                http: http.clone(),
                source,
                bucket: bucket.to_string(),
                prefix: format!("aws/lambda/{uuid}/"),
            });
        }
        if d.starts_with("arn:aws:sqs:") {
            let source = super::config::find(sources, d)?;
            let region = super::source::SourceKind::region(d);
            return Some(Destination::Sqs {
                client: super::sources::aws::AwsJson::new(
                    http.clone(),
                    source,
                    region,
                    "sqs",
                    "AmazonSQS",
                    "application/x-amz-json-1.0",
                ),
                queue: super::source::SourceKind::resource(d).to_string(),
            });
        }
        d.strip_prefix("file://")
            .map(|p| Destination::File(PathBuf::from(p)))
    }

    /// Deliver one invocation record; `Ok` only once it is durable (the
    /// file synced, the channel's publish accepted).
    pub async fn deliver(&self, record: &Value) -> Result<(), String> {
        match self {
            Destination::Sqs { .. } => {
                // AWS sends SQS destinations the metadata only.
                let mut body = record.clone();
                if let Some(o) = body.as_object_mut() {
                    o.remove("payload");
                }
                self.deliver_text(body.to_string(), None).await
            }
            Destination::S3 {
                http,
                source,
                bucket,
                prefix,
            } => {
                let shard = record
                    .as_object()
                    .and_then(|o| o.values().find_map(|v| v.get("shardId")))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                let ts = crate::functions::now_rfc3339(); // 2024-01-02T03:04:05.000Z
                let key = format!(
                    "{prefix}{shard}/{}/{}/{}/{}-{}",
                    &ts[0..4],
                    &ts[5..7],
                    &ts[8..10],
                    ts[..19].replace(':', "."),
                    crate::new_uuid()
                );
                put_object(http, source, bucket, &key, record.to_string().into_bytes()).await
            }
            _ => self.deliver_text(record.to_string(), None).await,
        }
    }

    /// Deliver `text` as it is (a channel needs JSON text): the message
    /// body, the object, the file's line. `fifo` is a FIFO queue's message
    /// group and deduplication ids. `Ok` only once it is durable.
    pub async fn deliver_text(
        &self,
        text: String,
        fifo: Option<(&str, &str)>,
    ) -> Result<(), String> {
        match self {
            Destination::Channel { apis, channel } => channel.publish(apis, vec![text]).await,
            Destination::Sqs { client, queue } => {
                let url = client
                    .call(
                        "GetQueueUrl",
                        serde_json::json!({"QueueName": queue}),
                        std::time::Duration::from_secs(10),
                    )
                    .await?;
                let mut message =
                    serde_json::json!({"QueueUrl": url["QueueUrl"], "MessageBody": text});
                if let Some((group, dedup)) = fifo {
                    message["MessageGroupId"] = group.into();
                    message["MessageDeduplicationId"] = dedup.into();
                }
                client
                    .call("SendMessage", message, std::time::Duration::from_secs(10))
                    .await
                    .map(|_| ())
            }
            Destination::S3 {
                http,
                source,
                bucket,
                prefix,
            } => {
                let key = format!("{prefix}{}", crate::new_uuid());
                put_object(http, source, bucket, &key, text.into_bytes()).await
            }
            Destination::File(path) => {
                let mut line = text;
                line.push('\n');
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                f.write_all(line.as_bytes())
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                f.sync_data()
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

/// S3 `PutObject`, path-style, SigV4-signed when the source has credentials.
async fn put_object(
    http: &crate::http_client::HttpClient,
    source: &super::config::EventSourceFile,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let endpoint = source.url.trim_end_matches('/');
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let path = format!("/{bucket}/{key}");
    let hash: String = ring::digest::digest(&ring::digest::SHA256, &body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("x-amz-content-sha256".into(), hash.clone()),
    ];
    if let (Some(id), Some(secret)) = (&source.access_key_id, &source.secret_access_key) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let region = super::source::SourceKind::region(&source.arn);
        headers.extend(crate::auth::sigv4::sign(
            id,
            secret,
            region,
            "s3",
            "PUT",
            &path,
            &[("host", &host), ("x-amz-content-sha256", &hash)],
            &body,
            now,
        ));
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = http
        .request(
            hyper::Method::PUT,
            &format!("{endpoint}{path}"),
            &refs,
            bytes::Bytes::from(body),
            std::time::Duration::from_secs(30),
        )
        .await
        .map_err(|e| format!("S3 PutObject {bucket}/{key}: {e}"))?;
    if !r.status.is_success() {
        return Err(format!(
            "S3 PutObject {bucket}/{key}: {} {}",
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    Ok(())
}
