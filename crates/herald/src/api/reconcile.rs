//! Bringing the running APIs (and, in [`follow`], the functions) in line
//! with the store: at start (everything),
//! and on a cluster whenever another node changed something (the API it
//! names) or the periodic full re-read comes round.
//!
//! One path for both, so a node that starts and a node that follows apply
//! the same rules: created keys work for the next request and deleted ones
//! are refused, with their WebSocket connections closed (1008 "API key
//! deleted"); changed namespaces apply to the next operation and deleted ones
//! end their subscriptions; created APIs serve and deleted ones close their
//! connections (1008 "API deleted"); an updated API serves its new auth
//! settings from the next operation. The configuration file's API, keys and
//! namespaces are never touched.
//!
//! A re-read that raced this node's own write (the store's count of local
//! writes moved while it read) is not applied: it may predate what the writer
//! already applied. It is read again; the write's own notification brings
//! another re-read in any case.

use super::{EventApi, Registry};
use crate::auth::KeyEntry;
use crate::config::{ApiConfig, AuthType, NamespaceConfig};
use crate::store::{ChangeSet, Changes, Store, StoredApi, StoredKey, StoredNamespace};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Re-reads that race local writes before a round gives up (the next
/// notification or tick tries again).
const ATTEMPTS: usize = 5;

/// One API's stored resources.
struct Stored {
    keys: Vec<StoredKey>,
    data_sources: Vec<(String, String)>,
    namespaces: Vec<StoredNamespace>,
    /// Each namespace's history, from its tags (or why they are wrong).
    histories: HashMap<String, Result<Option<crate::hub::HistorySettings>, String>>,
}

impl Registry {
    /// Re-read what `changes` names and apply it. Returns what could not be
    /// applied (a stored namespace whose code does not load here), or the
    /// store's error.
    pub async fn reconcile(
        &self,
        store: &Store,
        changes: &ChangeSet,
    ) -> Result<Vec<String>, String> {
        for _ in 0..ATTEMPTS {
            let before = store.local_writes();
            let stored_apis = store.apis().await?;
            let stored_ids: HashSet<&str> = stored_apis.iter().map(|a| a.api_id.as_str()).collect();
            // APIs to build: stored here, not running.
            let mut problems = Vec::new();
            let mut built = Vec::new();
            for a in stored_apis.iter().filter(|a| self.get(&a.api_id).is_none()) {
                let base = &self.default_api().config;
                let functions = self.default_api().functions.clone();
                let workflows = self.default_api().workflows.clone();
                match EventApi::create(base, a, store.clone(), functions, workflows).await {
                    Ok(api) => built.push(api),
                    Err(e) => problems.push(format!("stored API {}: {e}", a.api_id)),
                }
            }
            // APIs whose keys and namespaces to re-read.
            let default_id = self.default_api().config.api_id.clone();
            let ids: Vec<String> = std::iter::once(default_id.clone())
                .chain(stored_apis.iter().map(|a| a.api_id.clone()))
                .filter(|id| {
                    changes.all
                        || changes.apis.contains(id)
                        || built.iter().any(|b| &b.config.api_id == id)
                })
                .collect();
            let mut resources = HashMap::new();
            for id in ids {
                let keys = store.api_keys(&id).await?;
                let data_sources = store.data_sources(&id).await?;
                let namespaces = store.namespaces(&id).await?;
                let mut histories = HashMap::new();
                if let Some(api) = self
                    .get(&id)
                    .or_else(|| built.iter().find(|b| b.config.api_id == id).cloned())
                {
                    for ns in &namespaces {
                        let tags = store.tags(&api.namespace_arn(&ns.name)).await?;
                        let what = format!("stored namespace '{}'", ns.name);
                        let tags = tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                        histories.insert(
                            ns.name.clone(),
                            crate::hub::history::settings::from_tags(tags, &what),
                        );
                    }
                }
                resources.insert(
                    id,
                    Stored {
                        keys,
                        data_sources,
                        namespaces,
                        histories,
                    },
                );
            }
            if store.local_writes() != before {
                continue;
            }
            // From here on nothing awaits: the re-read is applied as one step.
            for api in built {
                tracing::info!(api = %api.config.api_id, name = %api.config.name, "API serving (from the store)");
                self.insert(api);
            }
            let by_id: HashMap<&str, &StoredApi> =
                stored_apis.iter().map(|a| (a.api_id.as_str(), a)).collect();
            for api in self.all() {
                let id = &api.config.api_id;
                if *id != default_id && !stored_ids.contains(id.as_str()) {
                    self.remove(id);
                    let closed = api.revoke_all_connections();
                    tracing::info!(api = %id, closed, "API deleted (from the store)");
                    continue;
                }
                if let Some(stored) = by_id.get(id.as_str()) {
                    if api.live().stored.as_ref() != Some(*stored) {
                        let base = &self.default_api().config;
                        match ApiConfig::derived(
                            base,
                            id,
                            &stored.name,
                            stored.owner_contact.clone(),
                            &stored.event_config,
                        ) {
                            Ok(config) => {
                                api.set_live(config, (*stored).clone());
                                tracing::info!(api = %id, "API updated (from the store)");
                            }
                            Err(e) => problems.push(format!("stored API {id}: {e}")),
                        }
                    }
                }
                if let Some(stored) = resources.remove(id) {
                    api.apply_keys(stored.keys);
                    problems.extend(api.apply_data_sources(stored.data_sources));
                    problems.extend(api.apply_namespaces(stored.namespaces, &stored.histories));
                }
            }
            return Ok(problems);
        }
        Ok(Vec::new())
    }
}

/// Follow the store's changes until `shutdown` (nothing to do for a store
/// only this node writes): each change set is re-read and applied, and
/// everything is re-read every `period`.
pub async fn follow(
    apis: Arc<Registry>,
    others: Vec<Arc<dyn crate::store::Reconciler>>,
    store: Store,
    period: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let changes = Arc::new(Changes::default());
    let Some(listener) = store.follow(changes.clone()) else {
        return;
    };
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _listener = AbortOnDrop(listener);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut retry = Duration::from_secs(1);
    loop {
        let set = tokio::select! {
            set = changes.next() => set,
            _ = tick.tick() => ChangeSet { all: true, ..Default::default() },
            _ = shutdown.changed() => return,
        };
        let functions_changed = set.all
            || set
                .apis
                .iter()
                .any(|id| id.starts_with(crate::store::FUNCTION_CHANGE));
        let mut result = apis.reconcile(&store, &set).await;
        if functions_changed {
            let functions = apis.default_api().functions.clone();
            result = match (result, functions.reconcile(&store).await) {
                (Ok(mut a), Ok(b)) => {
                    a.extend(b);
                    Ok(a)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        for other in &others {
            if set.all || set.apis.iter().any(|id| id.starts_with(other.prefix())) {
                result = match (result, other.reconcile(&store).await) {
                    (Ok(mut a), Ok(b)) => {
                        a.extend(b);
                        Ok(a)
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
            }
        }
        match result {
            Ok(problems) => {
                retry = Duration::from_secs(1);
                for p in problems {
                    tracing::error!(problem = %p, "a stored change cannot be applied on this node");
                }
            }
            Err(e) => {
                // Try everything again, at a pace a down database can bear:
                // 1 s, doubling to 30 s, back to 1 s after a success.
                tracing::warn!(error = %e, retry_ms = retry.as_millis() as u64, "re-reading the store failed; the node serves what it has meanwhile");
                changes.all();
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = shutdown.changed() => return,
                }
                retry = (retry * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// A stored namespace as the server runs it (its `handlerConfigs` resolved
/// against `api`'s data sources).
fn namespace_config(api: &EventApi, stored: &StoredNamespace) -> Result<NamespaceConfig, String> {
    let modes = |names: &[String]| -> Result<Vec<AuthType>, String> {
        names
            .iter()
            .map(|n| {
                serde_json::from_value(Value::String(n.clone())).map_err(|_| {
                    format!("stored namespace '{}': unknown auth mode {n}", stored.name)
                })
            })
            .collect()
    };
    let handler_configs: Option<Value> = match &stored.handler_configs {
        None => None,
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| format!("stored namespace '{}': handlerConfigs: {e}", stored.name))?,
        ),
    };
    let (direct_on_publish, direct_on_subscribe) = match &handler_configs {
        None => (None, None),
        Some(h) => api
            .resolve_handler_configs(h)
            .map_err(|e| format!("stored namespace '{}': {e}", stored.name))?,
    };
    Ok(NamespaceConfig {
        name: stored.name.clone(),
        publish_auth_modes: modes(&stored.publish_auth_modes)?,
        subscribe_auth_modes: modes(&stored.subscribe_auth_modes)?,
        code_handlers: stored.code_handlers.clone(),
        direct_on_publish,
        direct_on_subscribe,
        handler_configs,
        history: None,
    })
}

impl EventApi {
    /// Make the keys the admin API manages exactly `stored`.
    fn apply_keys(&self, stored: Vec<StoredKey>) {
        let keys = self.api_keys();
        let mut seen = HashSet::new();
        for k in stored {
            let entry = KeyEntry {
                description: k.description,
                expires: Some(k.expires),
                deletes: Some(k.deletes),
                from_file: false,
            };
            match keys.get(&k.id) {
                // A key the file defines too keeps the file's settings.
                Some(current) if current.from_file || current == entry => {}
                _ => keys.insert(&k.id, entry),
            }
            seen.insert(k.id);
        }
        for (id, entry) in keys.list() {
            if !entry.from_file && !seen.contains(&id) {
                keys.remove(&id);
                self.revoke_key_connections(&id);
            }
        }
    }

    /// Make the data sources exactly `stored` (name, AppSync's JSON).
    fn apply_data_sources(&self, stored: Vec<(String, String)>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (name, spec) in stored {
            match serde_json::from_str::<Value>(&spec) {
                Ok(shape) => {
                    if self.data_source(&name).as_ref() != Some(&shape) {
                        self.put_data_source(&name, shape);
                    }
                }
                Err(e) => problems.push(format!("stored data source '{name}': {e}")),
            }
            seen.insert(name);
        }
        for name in self.data_sources().into_keys() {
            if !seen.contains(&name) {
                self.remove_data_source(&name);
            }
        }
        problems
    }

    /// Make the namespaces the admin API manages exactly `stored`; what
    /// cannot be applied is returned (and leaves that namespace as it was).
    fn apply_namespaces(
        &self,
        stored: Vec<StoredNamespace>,
        histories: &HashMap<String, Result<Option<crate::hub::HistorySettings>, String>>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for s in &stored {
            seen.insert(s.name.as_str());
            if self.namespace_from_file(&s.name) {
                continue;
            }
            let history = histories.get(&s.name).cloned().unwrap_or(Ok(None));
            let ns = match namespace_config(self, s).and_then(|mut ns| {
                ns.history = history?;
                Ok(ns)
            }) {
                Ok(ns) => ns,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if self.find_namespace(&s.name).as_deref() == Some(&ns) {
                continue;
            }
            if let Err(e) = self.put_namespace(ns) {
                problems.push(format!("stored namespace '{}': {e}", s.name));
            }
        }
        for ns in self.namespace_list() {
            if !self.namespace_from_file(&ns.name) && !seen.contains(ns.name.as_str()) {
                self.remove_namespace(&ns.name);
            }
        }
        problems
    }
}
