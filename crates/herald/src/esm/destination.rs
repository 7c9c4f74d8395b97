//! On-failure destinations for stream mappings: where a batch goes when its
//! retries or its records' age run out. Lambda's invocation record
//! (`requestContext`, `responseContext`, the batch info) is written; like
//! AWS's S3 destinations, Herald's own destinations also carry the records
//! (`payload`, the invocation event as escaped JSON), so nothing is lost.
//!
//! * `channel:/ns/path` (or `channel:<apiId>/ns/path`): one event per failed batch.
//! * `file:///absolute/path`: one JSON line per failed batch, appended and
//!   flushed to disk before the records are acknowledged.

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
    if let Some(path) = d.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!("on-failure destination {d}: a file destination needs an absolute path (file:///...)"));
        }
        return Ok(());
    }
    Err(format!(
        "Unsupported on-failure destination {d}: Herald delivers to channel:/namespace/path and file:///path"
    ))
}

pub enum Destination {
    Channel {
        apis: Arc<Registry>,
        channel: ChannelTarget,
    },
    File(PathBuf),
}

impl Destination {
    pub fn new(d: &str, apis: Arc<Registry>) -> Option<Destination> {
        if let Some(channel) = ChannelTarget::parse(d) {
            return Some(Destination::Channel { apis, channel });
        }
        d.strip_prefix("file://")
            .map(|p| Destination::File(PathBuf::from(p)))
    }

    /// Deliver one invocation record; `Ok` only once it is durable (the
    /// file synced, the channel's publish accepted).
    pub async fn deliver(&self, record: &Value) -> Result<(), String> {
        match self {
            Destination::Channel { apis, channel } => {
                channel.publish(apis, vec![record.to_string()]).await
            }
            Destination::File(path) => {
                let mut line = record.to_string();
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
