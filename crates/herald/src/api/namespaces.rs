//! The API's channel namespaces, changed live by the admin API: created ones
//! serve at once, changed auth modes and handler code apply to the next
//! operation, and a deleted namespace refuses new operations and ends its
//! subscriptions (each gets a `subscribe_error`, see [`EventApi::remove_namespace`]).
//! Namespaces defined in the configuration file are changed in the file.

use super::EventApi;
use crate::config::NamespaceConfig;
use herald_core::reply;
use herald_core::{ErrorType, OpError};
use std::collections::HashMap;
use std::sync::Arc;

/// The namespaces by name, and their order (the file's first, then by creation).
#[derive(Debug, Default)]
pub struct Namespaces {
    by_name: HashMap<String, Arc<NamespaceConfig>>,
    order: Vec<String>,
}

impl Namespaces {
    pub fn new(list: &[NamespaceConfig]) -> Namespaces {
        let mut n = Namespaces::default();
        for ns in list {
            n.put(ns.clone());
        }
        n
    }

    pub fn get(&self, name: &str) -> Option<Arc<NamespaceConfig>> {
        self.by_name.get(name).cloned()
    }

    fn put(&mut self, ns: NamespaceConfig) {
        if !self.by_name.contains_key(&ns.name) {
            self.order.push(ns.name.clone());
        }
        self.by_name.insert(ns.name.clone(), Arc::new(ns));
    }

    fn remove(&mut self, name: &str) -> Option<Arc<NamespaceConfig>> {
        let ns = self.by_name.remove(name)?;
        self.order.retain(|n| n != name);
        Some(ns)
    }
}

impl EventApi {
    /// Every namespace, in order.
    pub fn namespace_list(&self) -> Vec<Arc<NamespaceConfig>> {
        let n = self.namespaces.read().unwrap();
        n.order.iter().map(|name| n.by_name[name].clone()).collect()
    }

    /// The namespace `name`, if it exists.
    pub fn find_namespace(&self, name: &str) -> Option<Arc<NamespaceConfig>> {
        self.namespaces.read().unwrap().get(name)
    }

    /// Whether the configuration file defines `name` (the admin API leaves it alone).
    /// A namespace's ARN (AppSync's `channelNamespaceArn`, its tags' key).
    pub fn namespace_arn(&self, name: &str) -> String {
        let c = &self.config;
        format!(
            "arn:aws:appsync:{}:{}:apis/{}/channelNamespace/{name}",
            c.aws_region, c.account_id, c.api_id
        )
    }

    pub fn namespace_from_file(&self, name: &str) -> bool {
        self.config.namespaces.iter().any(|n| n.name == name)
    }

    /// Add or replace a namespace: its handler code is checked and installed
    /// first (refused code changes nothing), then it serves.
    pub fn put_namespace(&self, ns: NamespaceConfig) -> Result<(), String> {
        if let Some(pool) = &self.handlers {
            pool.set(&ns.name, ns.code_handlers.as_deref())?;
        }
        self.metrics.add_namespace(&ns.name);
        self.namespaces.write().unwrap().put(ns);
        Ok(())
    }

    /// Delete a namespace: new operations on it are refused from now on, and
    /// each of its subscriptions on this node gets a `subscribe_error`
    /// (`NotFoundException`, "Channel namespace '...' was deleted") and
    /// receives nothing more. Returns how many subscriptions ended.
    pub fn remove_namespace(&self, name: &str) -> usize {
        if self.namespaces.write().unwrap().remove(name).is_none() {
            return 0;
        }
        if let Some(pool) = &self.handlers {
            let _ = pool.set(name, None);
        }
        let ended = self.hub.remove_namespace(name);
        let error = OpError::new(
            ErrorType::BadRequest,
            format!("Channel namespace '{name}' was deleted"),
        );
        for sub in &ended {
            sub.outbox
                .push(crate::hub::Outbound::Frame(reply::error_frame(
                    herald_core::frame::ErrorFrame::Subscribe,
                    Some(&sub.sub_id),
                    &error,
                )));
        }
        ended.len()
    }
}
