//! Event source mappings (Lambda's ESM): pull records from a queue or
//! stream, drop what the filters reject, batch the rest, invoke a function
//! (or publish to a channel), and handle failure with Lambda's rules.
//!
//! Layout: [`spec`] (the resource, its fields and validation), [`config`]
//! (`[[event_sources]]`: ARN → broker), [`source`] (the `Source` trait and
//! the failure semantics per source type), [`sources`] (one file per
//! broker), [`pipeline`] (poll → filter → batch → invoke → acknowledge /
//! retry / destination, written once), [`target`], [`destination`],
//! [`metrics`]. [`Mappings`] runs them: one task per enabled mapping on every
//! node; nodes sharing a mapping share its records through the broker
//! (consumer groups, durable consumers).
//!
//! Mappings come from the configuration file (`[[event_source_mappings]]`,
//! never changed by the API) and from the Lambda API (kept in the store,
//! followed by every node like the other resources).

pub mod config;
pub mod destination;
pub mod metrics;
pub mod pipeline;
pub mod response;
pub mod scale;
pub mod source;
pub mod sources;
pub mod spec;
pub mod target;

use crate::api::Registry;
use crate::functions::Functions;
use crate::store::{Store, StoredMapping};
use config::EventSourceFile;
use metrics::EsmMetrics;
use pipeline::{Pipeline, Status};
use serde_json::Value;
use source::SourceKind;
use spec::MappingSpec;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Mappings a server holds at most (each is a task and broker connection).
pub const MAX_MAPPINGS: usize = 1000;
/// Pollers of a queue mapping without `ScalingConfig.MaximumConcurrency`
/// (Lambda starts SQS mappings at five concurrent batches).
pub const DEFAULT_QUEUE_CONCURRENCY: u64 = 5;
/// Pollers of one queue mapping on one node, at most.
pub const MAX_QUEUE_WORKERS: u64 = 64;

struct Running {
    spec: Arc<MappingSpec>,
    status: Arc<Status>,
    /// Dropping it (or sending `true`) stops the task after its current step.
    _stop: Option<watch::Sender<bool>>,
}

/// Every mapping this node runs.
pub struct Mappings {
    functions: Arc<Functions>,
    apis: Arc<Registry>,
    sources: Vec<EventSourceFile>,
    node_id: String,
    region: String,
    account: String,
    metrics: EsmMetrics,
    /// Stream checkpoints and leases (Kinesis).
    store: Store,
    running: Mutex<HashMap<String, Running>>,
    observer: Mutex<Option<pipeline::Observer>>,
    /// For mappings whose target is a state machine.
    workflows: target::WorkflowsSlot,
}

/// A mapping as the API shows it.
pub struct Described {
    pub spec: Arc<MappingSpec>,
    pub status: Arc<Status>,
}

impl Mappings {
    pub fn new(
        functions: Arc<Functions>,
        apis: Arc<Registry>,
        sources: Vec<EventSourceFile>,
        metrics: EsmMetrics,
        store: Store,
    ) -> Mappings {
        let config = &apis.default_api().config;
        Mappings {
            node_id: config.node_id.clone(),
            region: config.aws_region.clone(),
            account: config.account_id.clone(),
            functions,
            apis: apis.clone(),
            sources,
            metrics,
            store,
            running: Mutex::new(HashMap::new()),
            observer: Mutex::new(None),
            workflows: Arc::default(),
        }
    }

    pub fn get(&self, uuid: &str) -> Option<Described> {
        self.running.lock().unwrap().get(uuid).map(|r| Described {
            spec: r.spec.clone(),
            status: r.status.clone(),
        })
    }

    /// Every mapping, by UUID.
    pub fn list(&self) -> Vec<Described> {
        let mut all: Vec<Described> = self
            .running
            .lock()
            .unwrap()
            .values()
            .map(|r| Described {
                spec: r.spec.clone(),
                status: r.status.clone(),
            })
            .collect();
        all.sort_by(|a, b| a.spec.uuid.cmp(&b.spec.uuid));
        all
    }

    pub fn len(&self) -> usize {
        self.running.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lambda's `EventSourceMappingConfiguration`; `state` overrides the
    /// steady state (the transitional state a change answers with).
    pub fn describe(&self, d: &Described, state: Option<&str>) -> Value {
        let steady = if d.spec.enabled {
            "Enabled"
        } else {
            "Disabled"
        };
        d.spec.to_aws(
            &target::Target::arn(&d.spec.function, &self.functions),
            state.unwrap_or(steady),
            d.status.last_result(),
            &d.spec.arn(&self.region, &self.account),
        )
    }

    pub fn arn(&self, spec: &MappingSpec) -> String {
        spec.arn(&self.region, &self.account)
    }

    /// What a new or changed mapping needs besides valid fields: a broker
    /// for its ARN that Herald reads, and a target that exists.
    pub fn check_runnable(&self, spec: &MappingSpec) -> Result<(), CheckError> {
        if config::find(&self.sources, &spec.source_arn).is_none() {
            return Err(CheckError::Invalid(format!(
                "No [[event_sources]] entry in the configuration maps {} to a broker",
                spec.source_arn
            )));
        }
        if let Some(d) = spec.on_failure.as_deref().filter(|d| d.starts_with("arn:")) {
            if config::find(&self.sources, d).is_none() {
                return Err(CheckError::Invalid(format!(
                    "No [[event_sources]] entry in the configuration maps the destination {d} to an endpoint"
                )));
            }
        }
        if target::is_state_machine(&spec.function) {
            // Checked once the workflows are there (a file's mapping is
            // checked before them).
            let missing = self
                .workflows
                .get()
                .and_then(std::sync::Weak::upgrade)
                .is_some_and(|w| w.machine(&spec.function).is_none());
            if missing {
                return Err(CheckError::NotFound(format!(
                    "State Machine Does Not Exist: '{}'",
                    spec.function
                )));
            }
            return Ok(());
        }
        match target::ChannelTarget::parse(&spec.function) {
            Some(c) => {
                if let Some(id) = &c.api_id {
                    if self.apis.get(id).is_none() {
                        return Err(CheckError::NotFound(format!(
                            "No API {id} for {}",
                            spec.function
                        )));
                    }
                }
            }
            None => {
                if self.functions.get(&spec.function).is_none() {
                    return Err(CheckError::NotFound(format!(
                        "Function not found: {}",
                        self.functions.arn(Functions::name_of(&spec.function))
                    )));
                }
            }
        }
        Ok(())
    }

    /// The state machines, for mappings that start executions.
    pub fn set_workflows(&self, workflows: &Arc<crate::workflow::Workflows>) {
        let _ = self.workflows.set(Arc::downgrade(workflows));
    }

    /// A mapping with the same source and function, other than `uuid`.
    pub fn duplicate(&self, spec: &MappingSpec) -> Option<String> {
        let name = |f: &str| Functions::name_of(f).to_string();
        self.running
            .lock()
            .unwrap()
            .values()
            .find(|r| {
                r.spec.uuid != spec.uuid
                    && r.spec.source_arn == spec.source_arn
                    && name(&r.spec.function) == name(&spec.function)
            })
            .map(|r| r.spec.uuid.clone())
    }

    /// Run `spec` (replacing a mapping with its UUID, which stops after its
    /// current step; records it held and did not acknowledge are delivered
    /// again).
    pub fn apply(&self, spec: MappingSpec) {
        let spec = Arc::new(spec);
        let status = Arc::new(Status::default());
        let stop = spec
            .enabled
            .then(|| self.start(spec.clone(), status.clone()));
        if !spec.enabled {
            self.metrics.remove(&spec.uuid);
        }
        let uuid = spec.uuid.clone();
        tracing::info!(mapping = %uuid, source = %spec.source_arn, target = %spec.function, enabled = spec.enabled, "event source mapping applied");
        self.running.lock().unwrap().insert(
            uuid,
            Running {
                spec,
                status,
                _stop: stop,
            },
        );
    }

    /// Stop and forget a mapping; `false` when there was none.
    pub fn remove(&self, uuid: &str) -> bool {
        let removed = self.running.lock().unwrap().remove(uuid);
        self.metrics.remove(uuid);
        if removed.is_some() {
            tracing::info!(mapping = %uuid, "event source mapping deleted");
        }
        removed.is_some()
    }

    /// Watch every batch of mappings applied from now on, just before it is
    /// invoked (benchmarks).
    pub fn observe(&self, f: pipeline::Observer) {
        *self.observer.lock().unwrap() = Some(f);
    }

    /// Stop every mapping (shutdown): each finishes its current step; records
    /// not acknowledged are delivered again.
    pub fn stop_all(&self) {
        self.running.lock().unwrap().clear();
    }

    fn start(&self, spec: Arc<MappingSpec>, status: Arc<Status>) -> watch::Sender<bool> {
        let (stop_tx, stop) = watch::channel(false);
        let Some(source) = config::find(&self.sources, &spec.source_arn).cloned() else {
            tracing::error!(mapping = %spec.uuid, "no [[event_sources]] entry for {}", spec.source_arn);
            return stop_tx;
        };
        let parts = Parts {
            functions: self.functions.clone(),
            apis: self.apis.clone(),
            sources: self.sources.clone(),
            metrics: self.metrics.clone(),
            observer: self.observer.lock().unwrap().clone(),
            node: self.node_id.clone(),
            region: self.region.clone(),
            store: self.store.clone(),
            workflows: self.workflows.clone(),
        };
        match spec.kind().semantics() {
            // A stream: one poller (lanes give it parallelism).
            source::Semantics::Stream => {
                let p = parts.pipeline(&spec, &status, &source, None);
                tokio::spawn(parts.poller(source, p, stop));
            }
            // A queue: pollers that follow the backlog (`scale`).
            source::Semantics::Queue => {
                let maximum = spec
                    .max_concurrency
                    .unwrap_or(DEFAULT_QUEUE_CONCURRENCY)
                    .min(MAX_QUEUE_WORKERS) as usize;
                let scale = Arc::new(scale::Scale::new(maximum));
                tokio::spawn(supervise(parts, spec, status, source, scale, stop));
            }
        }
        stop_tx
    }

    /// Make the API's mappings exactly the stored ones (the configuration
    /// file's are left alone). Returns what could not be applied.
    pub async fn reconcile(&self, store: &Store) -> Result<Vec<String>, String> {
        for _ in 0..5 {
            let before = store.local_writes();
            let stored = store.mappings().await?;
            if store.local_writes() != before {
                continue;
            }
            let mut problems = Vec::new();
            let mut uuids = HashSet::new();
            for m in stored {
                uuids.insert(m.uuid.clone());
                let spec: MappingSpec = match serde_json::from_str(&m.spec) {
                    Ok(s) => s,
                    Err(e) => {
                        problems.push(format!("stored event source mapping {}: {e}", m.uuid));
                        continue;
                    }
                };
                let current = self.get(&m.uuid);
                if current
                    .as_ref()
                    .is_some_and(|c| c.spec.from_file || *c.spec == spec)
                {
                    continue;
                }
                self.apply(spec);
            }
            for d in self.list() {
                if !d.spec.from_file && !uuids.contains(&d.spec.uuid) {
                    self.remove(&d.spec.uuid);
                }
            }
            return Ok(problems);
        }
        Ok(Vec::new())
    }

    /// The stored form.
    pub fn to_stored(spec: &MappingSpec) -> StoredMapping {
        StoredMapping {
            uuid: spec.uuid.clone(),
            spec: serde_json::to_string(spec).expect("a spec serializes"),
        }
    }
}

impl crate::store::Reconciler for Mappings {
    fn prefix(&self) -> &'static str {
        crate::store::MAPPING_CHANGE
    }

    fn reconcile<'a>(
        &'a self,
        store: &'a Store,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, String>> + Send + 'a>>
    {
        Box::pin(Mappings::reconcile(self, store))
    }
}

/// Why a mapping cannot run here.
#[derive(Debug)]
pub enum CheckError {
    Invalid(String),
    NotFound(String),
}

/// What a mapping's pollers are built from (cloned into the queue
/// supervisor, which starts pollers later).
#[derive(Clone)]
struct Parts {
    functions: Arc<Functions>,
    apis: Arc<Registry>,
    sources: Vec<EventSourceFile>,
    metrics: EsmMetrics,
    observer: Option<pipeline::Observer>,
    node: String,
    region: String,
    store: Store,
    workflows: target::WorkflowsSlot,
}

impl Parts {
    fn pipeline(
        &self,
        spec: &Arc<MappingSpec>,
        status: &Arc<Status>,
        source: &EventSourceFile,
        scale: Option<Arc<scale::Scale>>,
    ) -> Pipeline {
        let spec = spec.clone();
        Pipeline {
            kind: spec.kind(),
            target: target::Target::new(
                &spec.function,
                self.functions.clone(),
                self.apis.clone(),
                self.workflows.clone(),
            ),
            filters: spec
                .filters
                .iter()
                .filter_map(|p| herald_pattern::Pattern::parse(p).ok())
                .collect(),
            destination: spec.on_failure.as_deref().and_then(|d| {
                destination::Destination::new(
                    d,
                    self.apis.clone(),
                    self.functions.http(),
                    &self.sources,
                    &spec.uuid,
                )
            }),
            counts: self.metrics.counts(&spec.uuid, spec.metrics),
            status: status.clone(),
            observer: self.observer.clone(),
            ahead: pipeline::Ahead::default(),
            renew_every: source.ack_wait() / 3,
            scale,
            spec,
        }
    }

    /// One poller: connect, then run the pipeline until stopped (or, for
    /// an extra queue poller, idle).
    fn poller(
        &self,
        source: EventSourceFile,
        p: Pipeline,
        stop: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (node, region) = (self.node.clone(), self.region.clone());
        let (http, store) = (self.functions.http().clone(), self.store.clone());
        drive(source, p, node, region, http, store, stop)
    }
}

/// A queue mapping's pollers: the initial ones, then more while polls come
/// back full (see [`scale`]); idle extra pollers stop themselves.
async fn supervise(
    parts: Parts,
    spec: Arc<MappingSpec>,
    status: Arc<Status>,
    source: EventSourceFile,
    scale: Arc<scale::Scale>,
    stop: watch::Receiver<bool>,
) {
    let pollers_stop = stop.clone();
    let mut stop = stop;
    let start = |n: usize| {
        for _ in 0..n {
            let p = parts.pipeline(&spec, &status, &source, Some(scale.clone()));
            tokio::spawn(parts.poller(source.clone(), p, pollers_stop.clone()));
        }
    };
    let counts = parts.metrics.counts(&spec.uuid, spec.metrics);
    scale.started(scale.initial());
    start(scale.initial());
    counts.pollers(scale.running());
    let mut tick = tokio::time::interval(scale::TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let add = scale.grow();
        if add > 0 {
            start(add);
            tracing::debug!(mapping = %spec.uuid, pollers = scale.running(), "a backlog: more pollers");
        }
        counts.pollers(scale.running());
    }
}

/// Connect (retrying while the broker is down) and run the pipeline.
async fn drive(
    source: EventSourceFile,
    p: Pipeline,
    node: String,
    region: String,
    http: crate::http_client::HttpClient,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = match p.kind {
            SourceKind::RedisStreams => {
                match sources::redis_streams::RedisStreams::connect(
                    &source, &p.spec, &node, &region,
                )
                .await
                {
                    Ok(s) => return pipeline::run(s, p, stop).await,
                    Err(e) => e,
                }
            }
            SourceKind::JetStream => {
                match sources::jetstream::JetStream::connect(&source, &p.spec, &region).await {
                    Ok(s) => return pipeline::run(s, p, stop).await,
                    Err(e) => e,
                }
            }
            SourceKind::Sqs => {
                match sources::sqs::Sqs::connect(http.clone(), &source, &p.spec).await {
                    Ok(s) => return pipeline::run(s, p, stop).await,
                    Err(e) => e,
                }
            }
            SourceKind::RabbitMq => {
                match sources::rabbitmq::RabbitMq::connect(&source, &p.spec).await {
                    Ok(s) => return pipeline::run(s, p, stop).await,
                    Err(e) => e,
                }
            }
            SourceKind::Kinesis => match sources::kinesis::Kinesis::connect(
                http.clone(),
                store.clone(),
                &source,
                &p.spec,
                &node,
            )
            .await
            {
                Ok(s) => return pipeline::run(s, p, stop).await,
                Err(e) => e,
            },
        };
        tracing::warn!(mapping = %p.spec.uuid, error = %connected, retry_ms = backoff.as_millis() as u64, "connecting to the event source failed");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// A stable UUID for a configuration-file mapping without one, so every
/// node and every restart use the same consumer group.
pub fn derived_uuid(source_arn: &str, function: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{source_arn}\n{function}").as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// The configuration file's mappings, validated (at start: a bad one stops
/// the server with its message).
pub fn from_file(tables: &[toml::Value]) -> Result<Vec<MappingSpec>, String> {
    let mut out: Vec<MappingSpec> = Vec::new();
    for t in tables {
        let v = config::lambda_names(t);
        let body = v
            .as_object()
            .ok_or("[[event_source_mappings]] entries are tables")?;
        let arn = body
            .get("EventSourceArn")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let function = body
            .get("FunctionName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let uuid = body
            .get("UUID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| derived_uuid(arn, function));
        let mut fields = body.clone();
        fields.remove("UUID");
        let mut s = MappingSpec::from_request(&fields, None, uuid)
            .map_err(|e| format!("[[event_source_mappings]] {arn} → {function}: {e}"))?;
        s.from_file = true;
        if out.iter().any(|o| o.uuid == s.uuid) {
            return Err(format!(
                "[[event_source_mappings]]: two mappings with UUID {}",
                s.uuid
            ));
        }
        out.push(s);
    }
    Ok(out)
}
