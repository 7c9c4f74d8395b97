//! The store: what the control plane creates (APIs, their keys and
//! namespaces, tags, functions), kept so a restart loses nothing that was acknowledged.
//!
//! Two backends behind one [`Store`]: SQLite for one node ([`sqlite`], the
//! default) and PostgreSQL for a cluster ([`postgres`]), where every node
//! reads and writes one database. A write returns once it is durable (SQLite:
//! `synchronous = FULL`; PostgreSQL: committed); only then does the admin API
//! answer.
//!
//! **Following other nodes' changes.** The running APIs keep what the store
//! holds in memory (a request never waits for the database). A node applies
//! its own writes at once; with PostgreSQL each write also sends a
//! notification (`NOTIFY herald_changes, '<apiId>'`) and every node re-reads
//! that API ([`Store::follow`] feeds [`Changes`]); after a lost listener
//! connection, and every `reconcile_secs`, a node re-reads everything, so a
//! missed notification leaves it stale for at most that long.

mod changes;
mod postgres;
mod sqlite;

pub use changes::{ChangeSet, Changes};

use crate::config::{StoreBackend, StoreConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An API as stored: AppSync's `CreateApi` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredApi {
    pub api_id: String,
    pub name: String,
    pub owner_contact: Option<String>,
    /// `eventConfig` as AWS's JSON.
    pub event_config: serde_json::Value,
    /// Epoch seconds.
    pub created: f64,
}

impl StoredApi {
    fn from_columns(
        api_id: String,
        name: String,
        owner_contact: Option<String>,
        event_config: &str,
        created: f64,
    ) -> Result<StoredApi, String> {
        Ok(StoredApi {
            event_config: serde_json::from_str(event_config)
                .map_err(|e| format!("stored API {api_id}: eventConfig: {e}"))?,
            api_id,
            name,
            owner_contact,
            created,
        })
    }
}

/// A channel namespace as stored: auth modes as AppSync's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNamespace {
    pub name: String,
    pub publish_auth_modes: Vec<String>,
    pub subscribe_auth_modes: Vec<String>,
    pub code_handlers: Option<String>,
    /// AppSync's `handlerConfigs` as JSON text.
    pub handler_configs: Option<String>,
}

impl StoredNamespace {
    /// The auth modes as stored: JSON lists of names.
    fn mode_columns(&self) -> (String, String) {
        let text = |l: &Vec<String>| serde_json::to_string(l).expect("strings serialize");
        (
            text(&self.publish_auth_modes),
            text(&self.subscribe_auth_modes),
        )
    }

    fn from_columns(
        name: String,
        publish: &str,
        subscribe: &str,
        code_handlers: Option<String>,
        handler_configs: Option<String>,
    ) -> Result<StoredNamespace, String> {
        let modes = |t: &str| {
            serde_json::from_str::<Vec<String>>(t)
                .map_err(|e| format!("stored namespace {name}: auth modes: {e}"))
        };
        Ok(StoredNamespace {
            publish_auth_modes: modes(publish)?,
            subscribe_auth_modes: modes(subscribe)?,
            name,
            code_handlers,
            handler_configs,
        })
    }
}

/// An API key as stored (AppSync's `ApiKey`; times in epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    pub description: Option<String>,
    pub expires: i64,
    pub deletes: i64,
}

/// A function as stored: its spec (JSON, the functions module's
/// `FunctionSpec`) and its deployment package as uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFunction {
    pub name: String,
    pub spec: String,
    pub code: Vec<u8>,
}

/// The prefix of a function's name in change notifications (API ids have
/// no `/`).
pub const FUNCTION_CHANGE: &str = "fn/";

/// An event source mapping as stored: its spec as JSON (the esm module's
/// `MappingSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMapping {
    pub uuid: String,
    pub spec: String,
}

/// The prefix of a mapping's UUID in change notifications.
pub const MAPPING_CHANGE: &str = "esm/";

/// An event bus as stored: its spec as JSON (the bus module's `BusSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBus {
    pub name: String,
    pub spec: String,
}

/// A rule as stored: its spec, targets included, as JSON (the bus
/// module's `RuleSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub bus: String,
    pub name: String,
    pub spec: String,
}

/// The prefix of a bus's name in change notifications (its rules' changes
/// are notified under their bus).
pub const BUS_CHANGE: &str = "bus/";

/// A subsystem that keeps resources of its own in the store and re-reads
/// them when another node changed one (a notification id starting with
/// [`Reconciler::prefix`]) or at the periodic full re-read. The node's one
/// follow loop calls it, so a subsystem does not open a listener of its own.
pub trait Reconciler: Send + Sync {
    fn prefix(&self) -> &'static str;

    /// Re-read and apply; what could not be applied, or the store's error.
    fn reconcile<'a>(
        &'a self,
        store: &'a Store,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, String>> + Send + 'a>>;
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

/// The store, shared by everything that changes resources.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    /// Writes this process made; see [`Store::local_writes`].
    writes: Arc<AtomicU64>,
}

/// Call the same method on whichever backend this is.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &*$self.backend {
            Backend::Sqlite(b) => b.$method($($arg),*).await,
            Backend::Postgres(b) => b.$method($($arg),*).await,
        }
    };
}

/// A write: dispatched, then counted (whatever its outcome: a failed write
/// may still have reached the database).
macro_rules! write {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {{
        let result = dispatch!($self.$method($($arg),*));
        $self.writes.fetch_add(1, Ordering::SeqCst);
        result
    }};
}

impl Store {
    /// Open the configured store: create and migrate it if needed.
    pub async fn open(config: &StoreConfig) -> Result<Store, String> {
        let backend = match &config.backend {
            StoreBackend::Memory => Backend::Sqlite(sqlite::Sqlite::open(None)?),
            StoreBackend::Sqlite(dir) => {
                // Opening may wait for another process's migrations.
                let dir = dir.clone();
                Backend::Sqlite(
                    tokio::task::spawn_blocking(move || sqlite::Sqlite::open(Some(&dir)))
                        .await
                        .map_err(|e| format!("opening the store failed: {e}"))??,
                )
            }
            StoreBackend::Postgres { url } => {
                Backend::Postgres(Box::new(postgres::Postgres::connect(url).await?))
            }
        };
        Ok(Store {
            backend: Arc::new(backend),
            writes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// An in-memory store (tests).
    pub fn memory() -> Store {
        Store {
            backend: Arc::new(Backend::Sqlite(
                sqlite::Sqlite::open(None).expect("an in-memory database opens"),
            )),
            writes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many writes this process has made through the store. A re-read
    /// that saw this count change while it read may have read an older state
    /// than the one this node already applied, and must not apply it.
    pub fn local_writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Whether other processes change this store (so the node must follow).
    pub fn is_shared(&self) -> bool {
        matches!(&*self.backend, Backend::Postgres(_))
    }

    /// Follow other nodes' changes into `changes` until the returned task is
    /// aborted (`None` for SQLite: one node, nothing to follow). Each
    /// (re)connection of the listener marks everything changed, since
    /// notifications sent while it was away are lost.
    pub fn follow(&self, changes: Arc<Changes>) -> Option<tokio::task::JoinHandle<()>> {
        match &*self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.follow(changes)),
        }
    }

    pub async fn apis(&self) -> Result<Vec<StoredApi>, String> {
        dispatch!(self.apis())
    }

    pub async fn insert_api(&self, api: StoredApi) -> Result<(), String> {
        write!(self.insert_api(api))
    }

    /// Change an API's name, contact and event configuration; `false` when
    /// there is no such API.
    pub async fn update_api(&self, api: StoredApi) -> Result<bool, String> {
        write!(self.update_api(api))
    }

    /// Delete an API and everything it owns (keys, namespaces, tags: `arn`
    /// and the ARNs below it) at once; `false` when there was no such API.
    pub async fn delete_api(&self, api_id: &str, arn: &str) -> Result<bool, String> {
        write!(self.delete_api(api_id, arn))
    }

    /// An API's keys, oldest first.
    pub async fn api_keys(&self, api_id: &str) -> Result<Vec<StoredKey>, String> {
        dispatch!(self.api_keys(api_id))
    }

    pub async fn insert_key(&self, api_id: &str, key: StoredKey) -> Result<(), String> {
        write!(self.insert_key(api_id, key))
    }

    /// Change a key; `false` when there is no such key.
    pub async fn update_key(&self, api_id: &str, key: StoredKey) -> Result<bool, String> {
        write!(self.update_key(api_id, key))
    }

    /// Delete a key; `false` when there was no such key.
    pub async fn delete_key(&self, api_id: &str, id: &str) -> Result<bool, String> {
        write!(self.delete_key(api_id, id))
    }

    /// An API's namespaces, oldest first.
    pub async fn namespaces(&self, api_id: &str) -> Result<Vec<StoredNamespace>, String> {
        dispatch!(self.namespaces(api_id))
    }

    /// Insert or replace a namespace (its creation time is kept on replace).
    pub async fn put_namespace(&self, api_id: &str, ns: StoredNamespace) -> Result<(), String> {
        write!(self.put_namespace(api_id, ns))
    }

    /// Delete a namespace; `false` when there was none.
    pub async fn delete_namespace(&self, api_id: &str, name: &str) -> Result<bool, String> {
        write!(self.delete_namespace(api_id, name))
    }

    /// An API's data sources: name and AppSync's JSON shape, by name.
    pub async fn data_sources(&self, api_id: &str) -> Result<Vec<(String, String)>, String> {
        dispatch!(self.data_sources(api_id))
    }

    /// Insert or replace a data source.
    pub async fn put_data_source(
        &self,
        api_id: &str,
        name: &str,
        spec: String,
    ) -> Result<(), String> {
        write!(self.put_data_source(api_id, name, spec))
    }

    /// Delete a data source; `false` when there was none.
    pub async fn delete_data_source(&self, api_id: &str, name: &str) -> Result<bool, String> {
        write!(self.delete_data_source(api_id, name))
    }

    /// The functions created through the Lambda API, by name.
    pub async fn functions(&self) -> Result<Vec<StoredFunction>, String> {
        dispatch!(self.functions())
    }

    /// Insert or replace a function.
    pub async fn put_function(&self, f: StoredFunction) -> Result<(), String> {
        write!(self.put_function(f))
    }

    /// Delete a function; `false` when there was none.
    pub async fn delete_function(&self, name: &str) -> Result<bool, String> {
        write!(self.delete_function(name))
    }

    /// The event source mappings created through the Lambda API.
    pub async fn mappings(&self) -> Result<Vec<StoredMapping>, String> {
        dispatch!(self.mappings())
    }

    /// Insert or replace a mapping.
    pub async fn put_mapping(&self, m: StoredMapping) -> Result<(), String> {
        write!(self.put_mapping(m))
    }

    /// Delete a mapping; `false` when there was none.
    pub async fn delete_mapping(&self, uuid: &str) -> Result<bool, String> {
        write!(self.delete_mapping(uuid))
    }

    /// The event buses created through EventBridge's API.
    pub async fn buses(&self) -> Result<Vec<StoredBus>, String> {
        dispatch!(self.buses())
    }

    /// Insert or replace a bus.
    pub async fn put_bus(&self, b: StoredBus) -> Result<(), String> {
        write!(self.put_bus(b))
    }

    /// Delete a bus and its rules; `false` when there was no such bus.
    pub async fn delete_bus(&self, name: &str) -> Result<bool, String> {
        write!(self.delete_bus(name))
    }

    /// Every bus's rules.
    pub async fn rules(&self) -> Result<Vec<StoredRule>, String> {
        dispatch!(self.rules())
    }

    /// Insert or replace a rule.
    pub async fn put_rule(&self, r: StoredRule) -> Result<(), String> {
        write!(self.put_rule(r))
    }

    /// Delete a rule; `false` when there was none.
    pub async fn delete_rule(&self, bus: &str, name: &str) -> Result<bool, String> {
        write!(self.delete_rule(bus, name))
    }

    /// The event bus's other resources of `kind` (`connection`,
    /// `api-destination`, `archive`, `replay`): name and spec (JSON).
    pub async fn bus_resources(&self, kind: &str) -> Result<Vec<(String, String)>, String> {
        dispatch!(self.bus_resources(kind))
    }

    /// Insert or replace one.
    pub async fn put_bus_resource(
        &self,
        kind: &str,
        name: &str,
        spec: String,
    ) -> Result<(), String> {
        write!(self.put_bus_resource(kind, name, spec))
    }

    /// Delete one; `false` when there was none.
    pub async fn delete_bus_resource(&self, kind: &str, name: &str) -> Result<bool, String> {
        write!(self.delete_bus_resource(kind, name))
    }

    /// A standard workflow execution's journal record (written at each
    /// transition). Not counted as a local write: not a resource.
    /// With the history events new since the last write (id, JSON), in
    /// one transaction.
    pub async fn put_execution(
        &self,
        arn: &str,
        machine: &str,
        status: &str,
        record: String,
        events: Vec<(i64, String)>,
    ) -> Result<(), String> {
        dispatch!(self.put_execution(arn, machine, status, record, events))
    }

    /// An execution's history events (JSON), in order.
    pub async fn workflow_history(&self, arn: &str) -> Result<Vec<String>, String> {
        dispatch!(self.workflow_history(arn))
    }

    /// Every stored execution: (arn, record).
    pub async fn workflow_executions(&self) -> Result<Vec<(String, String)>, String> {
        dispatch!(self.workflow_executions())
    }

    /// A state machine's stored executions: (arn, record).
    pub async fn workflow_executions_of(
        &self,
        machine: &str,
    ) -> Result<Vec<(String, String)>, String> {
        dispatch!(self.workflow_executions_of(machine))
    }

    /// One stored execution's record.
    pub async fn workflow_execution(&self, arn: &str) -> Result<Option<String>, String> {
        dispatch!(self.workflow_execution(arn))
    }

    /// A deleted state machine's finished executions and their history.
    pub async fn delete_executions_of(&self, machine: &str) -> Result<(), String> {
        dispatch!(self.delete_executions_of(machine))
    }

    /// A stream shard's checkpoint (the last sequence number done). Not
    /// counted as a local write: checkpoints are not resources a re-read
    /// applies.
    pub async fn checkpoint(&self, uuid: &str, shard: &str) -> Result<Option<String>, String> {
        dispatch!(self.checkpoint(uuid, shard))
    }

    pub async fn put_checkpoint(&self, uuid: &str, shard: &str, seq: &str) -> Result<(), String> {
        dispatch!(self.put_checkpoint(uuid, shard, seq))
    }

    /// Take or renew the lease on running mapping `uuid` for `ttl` seconds;
    /// `false` while another owner holds an unexpired one. Times are epoch
    /// seconds of the nodes' clocks.
    pub async fn lease(&self, uuid: &str, owner: &str, now: f64, ttl: f64) -> Result<bool, String> {
        dispatch!(self.lease(uuid, owner, now, ttl))
    }

    /// A resource's tags.
    pub async fn tags(
        &self,
        arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        dispatch!(self.tags(arn))
    }

    /// Add or replace tags; the resource may then have at most `limit`
    /// (`Ok(false)`: it would have more, and nothing changed).
    pub async fn put_tags(
        &self,
        arn: &str,
        tags: Vec<(String, String)>,
        limit: usize,
    ) -> Result<bool, String> {
        write!(self.put_tags(arn, tags, limit))
    }

    /// Remove tags by key (absent keys are no error); with `None`, all of them.
    pub async fn remove_tags(&self, arn: &str, keys: Option<Vec<String>>) -> Result<(), String> {
        write!(self.remove_tags(arn, keys))
    }
}
