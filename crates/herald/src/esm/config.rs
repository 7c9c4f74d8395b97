//! `[[event_sources]]`: where the brokers behind event source ARNs are.
//! Lambda names a source by ARN; Herald has no AWS account to look it up in,
//! so the configuration file maps each ARN (or every ARN with a prefix, when
//! `arn` ends in `*`) to a broker address and credentials.
//!
//! ```toml
//! [[event_sources]]
//! arn = "arn:aws:redis:us-east-1:000000000000:stream/*"
//! url = "redis://127.0.0.1:6379"
//! ```
//!
//! `[[event_source_mappings]]` are Lambda's `CreateEventSourceMapping`
//! fields in snake_case ([`lambda_names`]).

use serde::Deserialize;
use serde_json::{json, Value};

/// One broker.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventSourceFile {
    /// An ARN, or a prefix of ARNs ending in `*`.
    pub arn: String,
    /// `redis://host:port`, `nats://host:port`, `amqp://...`, or the HTTP
    /// endpoint of an SQS- or Kinesis-compatible server.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// SigV4 credentials for SQS and Kinesis (none: requests go unsigned,
    /// as local stand-ins accept).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// How long a record handed to a node may stay unacknowledged before the
    /// broker (JetStream) or another node (Redis Streams) hands it out again.
    /// Herald renews its claim while it works on a record, so this bounds
    /// only how late a dead node's records are taken over. Default 60 s.
    pub ack_wait_secs: Option<u64>,
    /// RabbitMQ: deliveries of a failing message before it is rejected to
    /// the queue's dead-letter exchange (default 10).
    pub max_deliveries: Option<u64>,
}

pub const DEFAULT_ACK_WAIT_SECS: u64 = 60;

impl EventSourceFile {
    pub fn ack_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ack_wait_secs.unwrap_or(DEFAULT_ACK_WAIT_SECS).max(1))
    }

    pub fn check(&self) -> Result<(), String> {
        if !self.arn.starts_with("arn:") {
            return Err(format!(
                "[[event_sources]] {}: arn must be an ARN or an ARN prefix ending in *",
                self.arn
            ));
        }
        // S3 buckets (destinations) are not event sources.
        if !self.arn.ends_with('*') && !self.arn.starts_with("arn:aws:s3:::") {
            super::source::SourceKind::of_arn(&self.arn)
                .map_err(|e| format!("[[event_sources]] {}: {e}", self.arn))?;
        }
        if self.url.is_empty() {
            return Err(format!("[[event_sources]] {}: url is empty", self.arn));
        }
        Ok(())
    }
}

/// The entry for `arn`: an exact match, else the longest matching prefix.
pub fn find<'a>(sources: &'a [EventSourceFile], arn: &str) -> Option<&'a EventSourceFile> {
    sources.iter().find(|s| s.arn == arn).or_else(|| {
        sources
            .iter()
            .filter_map(|s| s.arn.strip_suffix('*').map(|p| (p, s)))
            .filter(|(p, _)| arn.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, s)| s)
    })
}

/// A configuration-file table with snake_case keys as Lambda's request:
/// `batch_size` → `BatchSize`, `uuid` → `UUID`. Strings (patterns among
/// them) are left alone.
pub fn lambda_names(v: &toml::Value) -> Value {
    match v {
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| {
                    let name = match k.as_str() {
                        "uuid" => "UUID".to_string(),
                        "uri" => "URI".to_string(),
                        _ => k
                            .split('_')
                            .map(|w| {
                                let mut c = w.chars();
                                c.next()
                                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                                    .unwrap_or_default()
                            })
                            .collect(),
                    };
                    (name, lambda_names(v))
                })
                .collect(),
        ),
        toml::Value::Array(a) => Value::Array(a.iter().map(lambda_names).collect()),
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_become_lambdas() {
        let t: toml::Value = toml::from_str("uuid = 'a'\nevent_source_arn = 'x'\nmaximum_batching_window_in_seconds = 1\n[destination_config.on_failure]\ndestination = 'file:///tmp/x'").unwrap();
        let v = lambda_names(&t);
        assert_eq!(v["UUID"], "a");
        assert_eq!(v["MaximumBatchingWindowInSeconds"], 1);
        assert_eq!(
            v["DestinationConfig"]["OnFailure"]["Destination"],
            "file:///tmp/x"
        );
    }

    #[test]
    fn exact_wins_then_the_longest_prefix() {
        let s = |arn: &str, url: &str| EventSourceFile {
            arn: arn.into(),
            url: url.into(),
            username: None,
            password: None,
            access_key_id: None,
            secret_access_key: None,
            max_deliveries: None,
            ack_wait_secs: None,
        };
        let all = [
            s("arn:aws:redis:*", "a"),
            s("arn:aws:redis:us-east-1:000000000000:stream/*", "b"),
            s("arn:aws:redis:us-east-1:000000000000:stream/x", "c"),
        ];
        let url = |arn| find(&all, arn).map(|s| s.url.as_str());
        assert_eq!(
            url("arn:aws:redis:us-east-1:000000000000:stream/x"),
            Some("c")
        );
        assert_eq!(
            url("arn:aws:redis:us-east-1:000000000000:stream/y"),
            Some("b")
        );
        assert_eq!(
            url("arn:aws:redis:eu-west-1:000000000000:stream/y"),
            Some("a")
        );
        assert_eq!(url("arn:aws:nats:eu-west-1:000000000000:stream/y"), None);
    }
}
