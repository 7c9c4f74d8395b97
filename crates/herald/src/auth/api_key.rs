//! API keys (`x-api-key`), with optional expiry in epoch seconds, changed
//! live by the admin API.

use crate::config::ApiKey;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// One key: AppSync's `ApiKey` fields (epoch seconds) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub description: Option<String>,
    pub expires: Option<i64>,
    pub deletes: Option<i64>,
    /// Defined in the configuration file (the admin API does not change it).
    pub from_file: bool,
}

/// The API's keys: the configuration file's, plus those the admin API
/// creates, changed while requests are served. Checks take a read lock for a
/// hash lookup; changes are rare.
#[derive(Debug, Default)]
pub struct ApiKeyStore {
    keys: RwLock<Keys>,
}

#[derive(Debug, Default)]
struct Keys {
    by_id: HashMap<String, KeyEntry>,
    /// Ids in the order they were added (the file's first), for listing.
    order: Vec<String>,
}

fn now_epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ApiKeyStore {
    pub fn new(keys: &[ApiKey]) -> ApiKeyStore {
        let store = ApiKeyStore::default();
        for k in keys {
            store.insert(
                &k.id,
                KeyEntry {
                    description: k.description.clone(),
                    expires: k.expires,
                    deletes: k.expires,
                    from_file: true,
                },
            );
        }
        store
    }

    /// Whether `key` is a known, unexpired key. The error says why, for the
    /// log; it never contains the key.
    pub fn check(&self, key: &str) -> Result<(), &'static str> {
        match self.keys.read().unwrap().by_id.get(key) {
            None => Err("unknown API key"),
            Some(KeyEntry {
                expires: Some(expires),
                ..
            }) if *expires <= now_epoch_secs() => Err("expired API key"),
            Some(_) => Ok(()),
        }
    }

    /// Add or replace a key.
    pub fn insert(&self, id: &str, entry: KeyEntry) {
        let mut keys = self.keys.write().unwrap();
        if keys.by_id.insert(id.to_string(), entry).is_none() {
            keys.order.push(id.to_string());
        }
    }

    /// Remove a key; what it was.
    pub fn remove(&self, id: &str) -> Option<KeyEntry> {
        let mut keys = self.keys.write().unwrap();
        let entry = keys.by_id.remove(id)?;
        keys.order.retain(|k| k != id);
        Some(entry)
    }

    pub fn get(&self, id: &str) -> Option<KeyEntry> {
        self.keys.read().unwrap().by_id.get(id).cloned()
    }

    /// Every key, in the order they were added.
    pub fn list(&self) -> Vec<(String, KeyEntry)> {
        let keys = self.keys.read().unwrap();
        keys.order
            .iter()
            .map(|id| (id.clone(), keys.by_id[id].clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.keys.read().unwrap().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        store.insert(
            "new",
            KeyEntry {
                description: None,
                expires: None,
                deletes: None,
                from_file: false,
            },
        );
        assert!(store.check("new").is_ok());
        assert_eq!(store.list().last().unwrap().0, "new");
        assert!(store.remove("new").is_some());
        assert_eq!(store.check("new"), Err("unknown API key"));
        assert_eq!(store.len(), 3);
    }
}
