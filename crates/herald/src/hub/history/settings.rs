//! History's settings: per namespace (`history = { size, ttl_secs }` in a
//! `[[channel_namespaces]]` entry) and for the whole server (`[history]`).

use serde::Deserialize;
use std::time::Duration;

/// Most events a channel may keep (each recovery replays at most this many).
pub const MAX_SIZE: usize = 100_000;
/// Longest a channel may keep an event: a week.
pub const MAX_TTL_SECS: u64 = 7 * 24 * 3600;

/// A namespace's `history` table as written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HistoryFile {
    /// Events kept per channel.
    pub size: usize,
    /// Seconds an event is kept.
    pub ttl_secs: u64,
}

/// The tags that give a namespace made through the admin API its history
/// (AppSync's `ChannelNamespace` has no such field; tags reach it from every
/// client, the AWS CLI and Terraform included). Both or neither.
pub const TAG_SIZE: &str = "herald:history-size";
pub const TAG_TTL_SECS: &str = "herald:history-ttl-secs";

/// Whether `key` is one of the history tags.
pub fn is_history_tag(key: &str) -> bool {
    key == TAG_SIZE || key == TAG_TTL_SECS
}

/// A namespace's history from its tags (`what` names it in errors).
pub fn from_tags<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    what: &str,
) -> Result<Option<HistorySettings>, String> {
    let (mut size, mut ttl) = (None, None);
    for (k, v) in tags {
        match k {
            TAG_SIZE => size = Some(v),
            TAG_TTL_SECS => ttl = Some(v),
            _ => {}
        }
    }
    let number = |tag: &str, v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("{what}: tag {tag} must be a whole number (got '{v}')"))
    };
    match (size, ttl) {
        (None, None) => Ok(None),
        (Some(s), Some(t)) => HistorySettings::check(
            &HistoryFile {
                size: number(TAG_SIZE, s)? as usize,
                ttl_secs: number(TAG_TTL_SECS, t)?,
            },
            what,
        )
        .map(Some),
        _ => Err(format!(
            "{what}: give both {TAG_SIZE} and {TAG_TTL_SECS} tags for history, or neither"
        )),
    }
}

/// A namespace's history, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySettings {
    pub size: usize,
    pub ttl: Duration,
}

impl HistorySettings {
    /// Check a namespace's `history` (`what` names it in the error).
    pub fn check(file: &HistoryFile, what: &str) -> Result<HistorySettings, String> {
        if file.size == 0 || file.size > MAX_SIZE {
            return Err(format!(
                "{what}: history size must be 1 to {MAX_SIZE} events (got {})",
                file.size
            ));
        }
        if file.ttl_secs == 0 || file.ttl_secs > MAX_TTL_SECS {
            return Err(format!(
                "{what}: history ttl_secs must be 1 to {MAX_TTL_SECS} (got {})",
                file.ttl_secs
            ));
        }
        Ok(HistorySettings {
            size: file.size,
            ttl: Duration::from_secs(file.ttl_secs),
        })
    }
}

/// `[history]`: bounds on what all channels keep together, on one node.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryLimitsFile {
    /// Bytes of events (and per-channel bookkeeping) kept in memory.
    pub max_bytes: Option<usize>,
    /// Channels with a stream (a subscription or a publish made one).
    pub max_channels: Option<usize>,
}

/// `[history]`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    pub max_bytes: usize,
    pub max_channels: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_bytes: 256 << 20,
            max_channels: 100_000,
        }
    }
}

impl HistoryLimits {
    pub fn resolve(file: &HistoryLimitsFile) -> Result<HistoryLimits, String> {
        let d = HistoryLimits::default();
        let limits = HistoryLimits {
            max_bytes: file.max_bytes.unwrap_or(d.max_bytes),
            max_channels: file.max_channels.unwrap_or(d.max_channels),
        };
        if limits.max_bytes < 1 << 20 {
            return Err("[history] max_bytes must be at least 1048576 (1 MiB)".into());
        }
        if limits.max_channels == 0 {
            return Err("[history] max_channels must be at least 1".into());
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_namespace_and_the_bound() {
        let ok = HistorySettings::check(
            &HistoryFile {
                size: 100,
                ttl_secs: 60,
            },
            "namespace 'chat'",
        )
        .unwrap();
        assert_eq!(ok.ttl, Duration::from_secs(60));
        for (size, ttl_secs, word) in [
            (0, 60, "size"),
            (MAX_SIZE + 1, 60, "size"),
            (10, 0, "ttl_secs"),
        ] {
            let e = HistorySettings::check(&HistoryFile { size, ttl_secs }, "namespace 'chat'")
                .unwrap_err();
            assert!(e.contains("namespace 'chat'") && e.contains(word), "{e}");
        }
        assert_eq!(
            from_tags(
                [(TAG_SIZE, "50"), (TAG_TTL_SECS, "60"), ("team", "x")],
                "ns"
            )
            .unwrap(),
            Some(HistorySettings {
                size: 50,
                ttl: Duration::from_secs(60)
            })
        );
        assert_eq!(from_tags([("team", "x")], "ns").unwrap(), None);
        for bad in [
            vec![(TAG_SIZE, "50")],
            vec![(TAG_SIZE, "x"), (TAG_TTL_SECS, "60")],
            vec![(TAG_SIZE, "0"), (TAG_TTL_SECS, "60")],
        ] {
            assert!(
                from_tags(bad.clone(), "ns")
                    .unwrap_err()
                    .starts_with("ns: "),
                "{bad:?}"
            );
        }
        assert!(HistoryLimits::resolve(&HistoryLimitsFile {
            max_bytes: Some(10),
            max_channels: None
        })
        .is_err());
    }
}
