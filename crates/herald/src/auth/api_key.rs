//! API keys (`x-api-key`), with optional expiry in epoch seconds.

use crate::config::ApiKey;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The configured keys.
#[derive(Debug, Default)]
pub struct ApiKeyStore {
    /// key -> expiry (epoch seconds)
    keys: HashMap<String, Option<i64>>,
}

fn now_epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ApiKeyStore {
    pub fn new(keys: &[ApiKey]) -> ApiKeyStore {
        ApiKeyStore {
            keys: keys.iter().map(|k| (k.id.clone(), k.expires)).collect(),
        }
    }

    /// Whether `key` is a configured, unexpired key. The error says why, for the
    /// log; it never contains the key.
    pub fn check(&self, key: &str) -> Result<(), &'static str> {
        match self.keys.get(key) {
            None => Err("unknown API key"),
            Some(Some(expires)) if *expires <= now_epoch_secs() => Err("expired API key"),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        let store = ApiKeyStore::new(&[
            ApiKey {
                id: "live".into(),
                description: None,
                expires: None,
            },
            ApiKey {
                id: "future".into(),
                description: None,
                expires: Some(now_epoch_secs() + 3600),
            },
            ApiKey {
                id: "past".into(),
                description: None,
                expires: Some(now_epoch_secs() - 1),
            },
        ]);
        assert!(store.check("live").is_ok());
        assert!(store.check("future").is_ok());
        assert_eq!(store.check("past"), Err("expired API key"));
        assert_eq!(store.check("nope"), Err("unknown API key"));
    }
}
