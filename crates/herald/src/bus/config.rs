//! `[event_bus]`: where a cluster keeps the bus's event log.
//!
//! One node keeps its log in `events.db` beside the store and needs no
//! settings. Nodes sharing a PostgreSQL store and the NATS engine share one
//! JetStream stream instead (see [`super::log::jetstream`]); these are its
//! settings.

use serde::Deserialize;
use std::time::Duration;

/// `[event_bus]` as written in the file, and as used (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBusFile {
    /// The JetStream stream holding the cluster's events and retries
    /// (default `HERALD_BUS`); archives get streams named after it. Two
    /// clusters on one NATS server need two names.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// How long a node may hold an event without settling it before
    /// JetStream hands it to another node (default 30 s). A node that dies
    /// delays its events by this much; a node alive but slow keeps them
    /// (it reports progress every third of it).
    #[serde(default = "default_ack_wait")]
    pub ack_wait_secs: u64,
    /// Replicas of the stream on a NATS cluster (1 to 5, default 1).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

fn default_stream() -> String {
    "HERALD_BUS".into()
}

fn default_ack_wait() -> u64 {
    30
}

fn default_replicas() -> usize {
    1
}

impl Default for EventBusFile {
    fn default() -> Self {
        EventBusFile {
            stream: default_stream(),
            ack_wait_secs: default_ack_wait(),
            replicas: default_replicas(),
        }
    }
}

impl EventBusFile {
    pub fn check(&self) -> Result<(), String> {
        let s = &self.stream;
        if s.is_empty()
            || s.len() > 32
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "[event_bus] stream {s:?}: 1 to 32 letters, digits, '_' or '-'"
            ));
        }
        if !(1..=3600).contains(&self.ack_wait_secs) {
            return Err("[event_bus] ack_wait_secs: 1 to 3600".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err("[event_bus] replicas: 1 to 5".into());
        }
        Ok(())
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::EventBusFile;

    #[test]
    fn settings_are_checked() {
        assert!(EventBusFile::default().check().is_ok());
        let bad = |f: fn(&mut EventBusFile)| {
            let mut s = EventBusFile::default();
            f(&mut s);
            s.check().unwrap_err()
        };
        assert!(bad(|s| s.stream = "a.b".into()).contains("stream"));
        assert!(bad(|s| s.ack_wait_secs = 0).contains("ack_wait_secs"));
        assert!(bad(|s| s.replicas = 7).contains("replicas"));
    }
}
