//! The Event APIs one server runs: the configuration file's (the default,
//! also at `/event`) and those created through the admin API, each with its
//! own namespaces, keys, auth, handlers and hub, so nothing crosses between
//! them. Looked up per request by id (`/apis/<apiId>/...`).

use super::EventApi;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub struct Registry {
    default: Arc<EventApi>,
    /// Created APIs by id. Read per request, written on create and delete;
    /// never held across an `.await`.
    created: RwLock<HashMap<String, Arc<EventApi>>>,
}

impl Registry {
    pub fn new(default: Arc<EventApi>) -> Registry {
        Registry {
            default,
            created: RwLock::new(HashMap::new()),
        }
    }

    /// The configuration file's API.
    pub fn default_api(&self) -> &Arc<EventApi> {
        &self.default
    }

    /// The API with this id.
    pub fn get(&self, id: &str) -> Option<Arc<EventApi>> {
        if id == self.default.config.api_id {
            return Some(self.default.clone());
        }
        self.created.read().unwrap().get(id).cloned()
    }

    /// Every API: the default first, then the created ones by creation time.
    pub fn all(&self) -> Vec<Arc<EventApi>> {
        let mut created: Vec<Arc<EventApi>> =
            self.created.read().unwrap().values().cloned().collect();
        created.sort_by(|a, b| {
            a.created
                .partial_cmp(&b.created)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.config.api_id.cmp(&b.config.api_id))
        });
        std::iter::once(self.default.clone())
            .chain(created)
            .collect()
    }

    pub fn insert(&self, api: Arc<EventApi>) {
        self.created
            .write()
            .unwrap()
            .insert(api.config.api_id.clone(), api);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<EventApi>> {
        self.created.write().unwrap().remove(id)
    }
}
