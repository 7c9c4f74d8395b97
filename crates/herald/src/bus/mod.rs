//! The event bus (EventBridge): buses hold rules, a rule's event pattern
//! picks events, its targets receive them.
//!
//! Layout: [`spec`] (buses, rules, targets and their validation), [`log`]
//! (the durable event log `PutEvents` writes before it answers),
//! [`dispatch`] (log → rules → targets, retries, dead letters), [`target`]
//! (the kinds of target), [`input`] (what a target receives: `Input`,
//! `InputPath`, `InputTransformer`), [`schedule`] (scheduled rules).
//! [`EventBuses`] holds them: the buses and rules as the store has them,
//! with one compiled [`herald_pattern::Matcher`] per bus, so matching an
//! event costs the same with 5 rules or 300.
//!
//! **In a cluster** (PostgreSQL store) the buses and rules are shared
//! through the store like every other resource. With the NATS or Redis
//! engine the log is one stream shared by the nodes ([`log::jetstream`],
//! [`log::redis_streams`]):
//! every event reaches each matching target once across the cluster (not
//! once per node), whichever node accepted it, and a node that dies leaves
//! its events to the others. With the memory engine each node keeps the
//! events put on it in memory and delivers them itself (a warning at start
//! says so).

pub mod api_destination;
pub mod archive;
pub mod config;
pub mod dispatch;
pub mod input;
pub mod log;
pub mod put;
pub mod schedule;
pub mod spec;
pub mod target;

use crate::store::{Store, StoredBus, StoredRule};
use herald_pattern::{Matcher, Pattern};
use spec::{BusSpec, RuleSpec, DEFAULT_BUS};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// One bus as the dispatcher reads it.
pub struct BusView {
    pub spec: BusSpec,
    pub rules: BTreeMap<String, Arc<RuleSpec>>,
    /// The enabled rules with an event pattern, by name.
    pub matcher: Matcher<String>,
}

/// Every bus, swapped whole on each change (readers take an `Arc` and never
/// wait for a writer).
#[derive(Default)]
pub struct View {
    pub buses: BTreeMap<String, BusView>,
    pub connections: BTreeMap<String, Arc<api_destination::ConnectionSpec>>,
    pub api_destinations: BTreeMap<String, Arc<api_destination::ApiDestinationSpec>>,
    /// Archives by name, with their compiled pattern.
    pub archives: BTreeMap<String, (Arc<archive::ArchiveSpec>, Option<Pattern>)>,
    pub replays: BTreeMap<String, Arc<archive::ReplaySpec>>,
}

/// The store's kinds of [`crate::store::Store::bus_resources`].
pub const CONNECTION: &str = "connection";
pub const API_DESTINATION: &str = "api-destination";

/// The server's buses.
pub struct EventBuses {
    pub region: String,
    pub account: String,
    store: Store,
    view: RwLock<Arc<View>>,
    /// Serializes this node's changes (read, modify, write, reload): an
    /// async mutex, held across the store's awaits on purpose.
    changes: tokio::sync::Mutex<()>,
    pub log: log::Log,
    /// When the process started: the default bus's creation time.
    started: f64,
    /// What deliveries need from the server (set by [`EventBuses::start`]).
    parts: std::sync::OnceLock<Arc<target::Parts>>,
    /// The replays this node runs.
    pub replays: archive::Running,
    /// Buses and rules the configuration file declares (set once, before
    /// the first reload): added to what the store holds, in place of
    /// anything stored under the same name.
    declared: std::sync::OnceLock<config::Declared>,
}

impl EventBuses {
    pub fn new(region: &str, account: &str, store: Store, log: log::Log) -> EventBuses {
        let started = crate::esm::spec::now_secs().floor();
        EventBuses {
            region: region.to_string(),
            account: account.to_string(),
            store,
            view: RwLock::new(Arc::new(View::default())),
            changes: tokio::sync::Mutex::new(()),
            log,
            started,
            parts: std::sync::OnceLock::new(),
            replays: archive::Running::default(),
            declared: std::sync::OnceLock::new(),
        }
    }

    /// The configuration file's buses and rules (before the first reload).
    pub fn declare(&self, declared: config::Declared) {
        let _ = self.declared.set(declared);
    }

    /// Whether the configuration file declares the bus.
    pub fn is_declared_bus(&self, name: &str) -> bool {
        self.declared
            .get()
            .is_some_and(|d| d.buses.iter().any(|b| b.name == name))
    }

    /// Start delivering (the dispatcher, the retry loop, the scheduler)
    /// until `stop` turns true.
    pub fn start(
        self: &Arc<Self>,
        parts: target::Parts,
        node: String,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let parts = self.parts.get_or_init(|| Arc::new(parts)).clone();
        dispatch::start(self.clone(), parts, stop.clone());
        let me = self.clone();
        tokio::spawn(async move { me.fail_interrupted_replays().await });
        tokio::spawn(schedule::run(self.clone(), node, stop));
    }

    /// What deliveries need, once started.
    pub fn parts(&self) -> Option<&Arc<target::Parts>> {
        self.parts.get()
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap().clone()
    }

    pub fn bus_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:events:{}:{}:event-bus/{name}",
            self.region, self.account
        )
    }

    /// EventBridge's rule ARN: `rule/<name>` on the default bus,
    /// `rule/<bus>/<name>` on the others.
    pub fn rule_arn(&self, bus: &str, name: &str) -> String {
        if bus == DEFAULT_BUS {
            format!(
                "arn:aws:events:{}:{}:rule/{name}",
                self.region, self.account
            )
        } else {
            format!(
                "arn:aws:events:{}:{}:rule/{bus}/{name}",
                self.region, self.account
            )
        }
    }

    /// Take the change lock (see [`EventBuses::changes`]).
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Re-read the buses and rules from the store and swap the view in.
    /// Returns what could not be applied (a stored spec that no longer
    /// parses is skipped and reported, never half-applied).
    pub async fn reload(&self) -> Result<Vec<String>, String> {
        let buses = self.store.buses().await?;
        let rules = self.store.rules().await?;
        let connections = self.store.bus_resources(CONNECTION).await?;
        let destinations = self.store.bus_resources(API_DESTINATION).await?;
        let archives = self.store.bus_resources(archive::ARCHIVE).await?;
        let replays = self.store.bus_resources(archive::REPLAY).await?;
        let mut problems = Vec::new();
        let mut view = View::default();
        for (name, spec) in connections {
            match serde_json::from_str(&spec) {
                Ok(c) => {
                    view.connections.insert(name, Arc::new(c));
                }
                Err(e) => problems.push(format!("stored connection {name}: {e}")),
            }
        }
        for (name, spec) in archives {
            match serde_json::from_str::<archive::ArchiveSpec>(&spec) {
                Ok(a) => {
                    let pattern = a
                        .event_pattern
                        .as_deref()
                        .and_then(|p| Pattern::parse(p).ok());
                    view.archives.insert(name, (Arc::new(a), pattern));
                }
                Err(e) => problems.push(format!("stored archive {name}: {e}")),
            }
        }
        for (name, spec) in replays {
            match serde_json::from_str(&spec) {
                Ok(r) => {
                    view.replays.insert(name, Arc::new(r));
                }
                Err(e) => problems.push(format!("stored replay {name}: {e}")),
            }
        }
        for (name, spec) in destinations {
            match serde_json::from_str(&spec) {
                Ok(d) => {
                    view.api_destinations.insert(name, Arc::new(d));
                }
                Err(e) => problems.push(format!("stored API destination {name}: {e}")),
            }
        }
        view.buses.insert(
            DEFAULT_BUS.to_string(),
            BusView {
                spec: BusSpec {
                    name: DEFAULT_BUS.into(),
                    description: None,
                    creation_time: self.started,
                    last_modified_time: self.started,
                },
                rules: BTreeMap::new(),
                matcher: Matcher::new(),
            },
        );
        for StoredBus { name, spec } in buses {
            match serde_json::from_str::<BusSpec>(&spec) {
                Ok(spec) => {
                    view.buses.insert(
                        name,
                        BusView {
                            spec,
                            rules: BTreeMap::new(),
                            matcher: Matcher::new(),
                        },
                    );
                }
                Err(e) => problems.push(format!("stored event bus {name}: {e}")),
            }
        }
        let declared = self.declared.get().cloned().unwrap_or_default();
        for spec in declared.buses {
            view.buses.insert(
                spec.name.clone(),
                BusView {
                    spec,
                    rules: BTreeMap::new(),
                    matcher: Matcher::new(),
                },
            );
        }
        let stored = rules.into_iter().map(|StoredRule { bus, name, spec }| {
            let rule = serde_json::from_str::<RuleSpec>(&spec)
                .map_err(|e| format!("stored rule {bus}/{name}: {e}"));
            (bus, name, rule)
        });
        let file = declared
            .rules
            .into_iter()
            .map(|r| (r.event_bus_name.clone(), r.name.clone(), Ok(r)));
        // The file's rules last: they take the place of stored namesakes.
        for (bus, name, rule) in stored.chain(file) {
            let Some(b) = view.buses.get_mut(&bus) else {
                continue;
            };
            let rule = match rule {
                Ok(r) => r,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if b.rules.contains_key(&name) {
                b.matcher.remove(&name);
            }
            if rule.enabled() {
                if let Some(p) = &rule.event_pattern {
                    match Pattern::parse(p) {
                        Ok(p) => b.matcher.add(name.clone(), &p),
                        Err(e) => problems.push(format!("stored rule {bus}/{name}: {e}")),
                    }
                }
            }
            b.rules.insert(name, Arc::new(rule));
        }
        *self.view.write().unwrap() = Arc::new(view);
        Ok(problems)
    }

    /// The stored form of a rule.
    pub fn to_stored(rule: &RuleSpec) -> StoredRule {
        StoredRule {
            bus: rule.event_bus_name.clone(),
            name: rule.name.clone(),
            spec: serde_json::to_string(rule).expect("a rule serializes"),
        }
    }
}

impl crate::store::Reconciler for EventBuses {
    fn prefix(&self) -> &'static str {
        crate::store::BUS_CHANGE
    }

    fn reconcile<'a>(
        &'a self,
        _store: &'a Store,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let _changing = self.lock().await;
            self.reload().await
        })
    }
}

/// EventBridge's event time: RFC 3339 to the second.
pub fn event_time(epoch_secs: f64) -> String {
    let t = crate::functions::iso_millis((epoch_secs.max(0.0) * 1000.0) as u64);
    match t.split_once('.') {
        Some((s, _)) => format!("{s}Z"),
        None => t,
    }
}

/// The event log this configuration calls for: JetStream or Redis Streams
/// when the nodes share a PostgreSQL store and the NATS or Redis engine
/// (the engine's broker), `events.db` in the data
/// directory on a single node, memory otherwise (with a warning where
/// events would be lost).
pub async fn open_log(config: &crate::config::ApiConfig) -> Result<log::Log, String> {
    use crate::config::{EngineSetting, StoreBackend};
    let dir = match (&config.store.backend, &config.engine) {
        (StoreBackend::Postgres { .. }, EngineSetting::Nats(nats)) => {
            let client = crate::hub::nats::options(nats)
                .name(format!("herald {} event bus", config.node_id))
                .connect(nats.url.as_str())
                .await
                .map_err(|e| format!("cannot connect to NATS at {}: {e}", nats.url))?;
            let log = log::jetstream::JsLog::open(client, &config.event_bus).await?;
            return Ok(log::Log::JetStream(Box::new(log)));
        }
        (StoreBackend::Postgres { .. }, EngineSetting::Redis(redis)) => {
            let log =
                log::redis_streams::RedisLog::open(&redis.url, &config.event_bus, &config.node_id)
                    .await?;
            return Ok(log::Log::Redis(Box::new(log)));
        }
        (StoreBackend::Postgres { .. }, EngineSetting::Memory) => {
            tracing::warn!("with the PostgreSQL store and the memory engine each node keeps its event bus log in memory: events put on a node that stops before delivering them are lost (engine = \"nats\" or \"redis\" gives the cluster a shared, durable log)");
            None
        }
        (StoreBackend::Sqlite(dir), _) => Some(dir.clone()),
        (StoreBackend::Memory, _) => None,
    };
    tokio::task::spawn_blocking(move || log::Log::local(dir.as_deref()))
        .await
        .map_err(|e| format!("opening the event log failed: {e}"))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_times_are_to_the_second() {
        assert_eq!(super::event_time(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(super::event_time(1_000_000_000.5), "2001-09-09T01:46:40Z");
    }
}
