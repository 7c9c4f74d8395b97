//! The distribution engine's settings: `engine`, `[nats]`, `[redis]`.

use serde::Deserialize;
use std::path::PathBuf;

/// `[nats]`: the NATS engine's connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// One URL or several, comma-separated (`nats://`, `tls://`).
    #[serde(default = "default_nats_url")]
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// Extra CA certificate (PEM) for the server's TLS certificate.
    pub tls_ca: Option<PathBuf>,
    pub tls_required: Option<bool>,
}

pub(super) fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".into()
}

/// `[redis]`: the Redis engine's connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    #[serde(default = "default_redis_url")]
    pub url: String,
}

pub(super) fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}

/// Which distribution engine connects the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineSetting {
    Memory,
    Nats(NatsConfig),
    Redis(RedisConfig),
}
