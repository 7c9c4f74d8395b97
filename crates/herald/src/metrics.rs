//! Prometheus metrics, served at `/metrics` in the Prometheus text format.
//!
//! Each Event API instance owns its registry (so tests and embedders can run
//! several). Labels have bounded cardinality: namespaces are the configured ones
//! (anything else is `_invalid`), never channels or connections; reasons, results,
//! modes and transports come from fixed sets.

use herald_core::OpError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;

/// The label value for a namespace that is not configured (or a bad channel).
pub const INVALID_NAMESPACE: &str = "_invalid";

/// How a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    WebSocket,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::WebSocket => "websocket",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceResultLabels {
    namespace: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PublishLabels {
    transport: &'static str,
    namespace: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportNamespaceLabels {
    transport: &'static str,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    namespace: String,
    handler: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerDurationLabels {
    namespace: String,
    handler: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    mode: &'static str,
    operation: &'static str,
    result: &'static str,
}

/// Every metric Herald exports.
pub struct Metrics {
    registry: Registry,
    /// The namespaces that get their own label value (bounded: the
    /// configured ones and those created through the admin API).
    namespaces: std::sync::RwLock<HashSet<String>>,
    /// Open WebSocket connections.
    pub connections: Gauge,
    connections_opened: Counter,
    connections_closed: Family<ReasonLabels, Counter>,
    /// Live subscriptions on this node.
    pub subscriptions: Gauge,
    subscribe_requests: Family<NamespaceResultLabels, Counter>,
    publish_requests: Family<PublishLabels, Counter>,
    events_in: Family<TransportNamespaceLabels, Counter>,
    events_delivered: Family<NamespaceLabels, Counter>,
    events_filtered: Family<NamespaceLabels, Counter>,
    events_dropped: Family<ReasonLabels, Counter>,
    auth: Family<AuthLabels, Counter>,
    publish_to_send: Histogram,
    handler_invocations: Family<HandlerLabels, Counter>,
    handler_duration: Family<HandlerDurationLabels, Histogram, fn() -> Histogram>,
    history_replayed: Counter,
    totals: TotalCounters,
}

fn handler_histogram() -> Histogram {
    // 100 us .. ~6.5 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 17,
    ))
}

/// Unlabelled sums for the console's live view (not exported).
#[derive(Default)]
struct TotalCounters {
    events_in: Counter,
    events_delivered: Counter,
    publish_requests: Counter,
}

/// `result` label of an operation.
fn result_label(r: Result<(), &OpError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(e) => e.kind.as_str(),
    }
}

impl Metrics {
    pub fn new<'a>(namespaces: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("herald"),
            namespaces: std::sync::RwLock::new(
                namespaces.into_iter().map(str::to_string).collect(),
            ),
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            connections_closed: Family::default(),
            subscriptions: Gauge::default(),
            subscribe_requests: Family::default(),
            publish_requests: Family::default(),
            events_in: Family::default(),
            events_delivered: Family::default(),
            events_filtered: Family::default(),
            events_dropped: Family::default(),
            auth: Family::default(),
            // 50 us .. ~3.3 s
            publish_to_send: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 17),
            ),
            handler_invocations: Family::default(),
            handler_duration: Family::new_with_constructor(handler_histogram as fn() -> Histogram),
            history_replayed: Counter::default(),
            totals: TotalCounters::default(),
        };
        let r = &mut m.registry;
        r.register(
            "websocket_connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        r.register(
            "websocket_connections_opened",
            "WebSocket connections opened",
            m.connections_opened.clone(),
        );
        r.register(
            "websocket_connections_closed",
            "WebSocket connections closed, by reason",
            m.connections_closed.clone(),
        );
        r.register(
            "subscriptions",
            "Live subscriptions",
            m.subscriptions.clone(),
        );
        r.register(
            "history_events_replayed",
            "Events sent from channel history to subscriptions that recovered",
            m.history_replayed.clone(),
        );
        r.register(
            "subscribe_requests",
            "Subscribe requests, by namespace and result",
            m.subscribe_requests.clone(),
        );
        r.register(
            "publish_requests",
            "Publish requests, by transport, namespace and result",
            m.publish_requests.clone(),
        );
        r.register(
            "events_in",
            "Events accepted for publishing, by transport and namespace",
            m.events_in.clone(),
        );
        r.register(
            "events_delivered",
            "Event frames queued to subscribers, by namespace",
            m.events_delivered.clone(),
        );
        r.register(
            "events_filtered",
            "Events a subscription filter held back from a subscriber, by namespace",
            m.events_filtered.clone(),
        );
        r.register(
            "events_dropped",
            "Events not delivered, by reason (slow_consumer, size, auth, handler)",
            m.events_dropped.clone(),
        );
        r.register(
            "auth_requests",
            "Authorization checks, by mode, operation and result",
            m.auth.clone(),
        );
        r.register_with_unit(
            "publish_to_send",
            "Time from a publish being accepted to its frame being written to a subscriber socket, observed once per socket write for the oldest event in it",
            Unit::Seconds,
            m.publish_to_send.clone(),
        );
        r.register(
            "handler_invocations",
            "JavaScript handler invocations, by namespace, handler and result (ok, error, unauthorized, failure)",
            m.handler_invocations.clone(),
        );
        r.register_with_unit(
            "handler_duration",
            "JavaScript handler invocation time, queueing included",
            Unit::Seconds,
            m.handler_duration.clone(),
        );
        // Every drop reason exists from the start (handlers come later), so
        // dashboards see zeros rather than gaps.
        for reason in ["slow_consumer", "size", "auth", "handler"] {
            let _ = m.events_dropped.get_or_create(&ReasonLabels { reason });
        }
        m
    }

    /// The registry, for subsystems that register their own metrics (one
    /// registry per server: functions register in the file API's).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Register the distribution engine's counters.
    pub fn register_engine(&mut self, m: &crate::hub::EngineMetrics) {
        let r = &mut self.registry;
        r.register(
            "engine_connected",
            "1 while the distribution engine is connected",
            m.connected.clone(),
        );
        r.register(
            "engine_reconnects",
            "Times the engine lost its connection",
            m.reconnects.clone(),
        );
        r.register(
            "engine_published",
            "Batches sent to other nodes",
            m.published.clone(),
        );
        r.register(
            "engine_publish_errors",
            "Batches that could not be sent to other nodes",
            m.publish_errors.clone(),
        );
        r.register(
            "engine_received",
            "Batches received from other nodes",
            m.received.clone(),
        );
        r.register(
            "engine_duplicates",
            "Copies received again (overlapping subscriptions or this node's own) and not delivered twice",
            m.duplicates.clone(),
        );
    }

    fn ns(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(n) if self.namespaces.read().unwrap().contains(n) => n.to_string(),
            _ => INVALID_NAMESPACE.to_string(),
        }
    }

    /// A namespace created while serving gets its own label value.
    pub fn add_namespace(&self, name: &str) {
        self.namespaces.write().unwrap().insert(name.to_string());
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_opened.inc();
    }

    pub fn connection_closed(&self, reason: &'static str) {
        self.connections.dec();
        self.connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn subscribe_request(&self, namespace: Option<&str>, result: Result<(), &OpError>) {
        self.subscribe_requests
            .get_or_create(&NamespaceResultLabels {
                namespace: self.ns(namespace),
                result: result_label(result),
            })
            .inc();
    }

    pub fn publish_request(
        &self,
        transport: Transport,
        namespace: Option<&str>,
        events: usize,
        result: Result<(), &OpError>,
    ) {
        let namespace = self.ns(namespace);
        self.totals.publish_requests.inc();
        if result.is_ok() {
            self.totals.events_in.inc_by(events as u64);
            self.events_in
                .get_or_create(&TransportNamespaceLabels {
                    transport: transport.as_str(),
                    namespace: namespace.clone(),
                })
                .inc_by(events as u64);
        }
        self.publish_requests
            .get_or_create(&PublishLabels {
                transport: transport.as_str(),
                namespace,
                result: result_label(result),
            })
            .inc();
    }

    /// A subscription recovered `events` from history.
    pub fn history_replayed(&self, events: usize) {
        self.history_replayed.inc_by(events as u64);
    }

    pub fn delivered(&self, namespace: &str, delivery: &crate::hub::Delivery) {
        let (queued, dropped) = (delivery.queued, delivery.dropped);
        if delivery.filtered > 0 {
            self.events_filtered
                .get_or_create(&NamespaceLabels {
                    namespace: self.ns(Some(namespace)),
                })
                .inc_by(delivery.filtered);
        }
        if queued > 0 {
            self.totals.events_delivered.inc_by(queued);
            self.events_delivered
                .get_or_create(&NamespaceLabels {
                    namespace: self.ns(Some(namespace)),
                })
                .inc_by(queued);
        }
        if dropped > 0 {
            self.dropped("slow_consumer", dropped);
        }
    }

    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.events_dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(n);
    }

    pub fn auth(&self, mode: &'static str, operation: &'static str, ok: bool) {
        self.auth
            .get_or_create(&AuthLabels {
                mode,
                operation,
                result: if ok { "allowed" } else { "denied" },
            })
            .inc();
    }

    pub fn handler(
        &self,
        namespace: &str,
        handler: &'static str,
        result: &'static str,
        seconds: f64,
    ) {
        let namespace = self.ns(Some(namespace));
        self.handler_invocations
            .get_or_create(&HandlerLabels {
                namespace: namespace.clone(),
                handler,
                result,
            })
            .inc();
        self.handler_duration
            .get_or_create(&HandlerDurationLabels { namespace, handler })
            .observe(seconds);
    }

    pub fn observe_publish_to_send(&self, seconds: f64) {
        self.publish_to_send.observe(seconds);
    }

    /// Totals for the console's live view.
    pub fn totals(&self) -> Totals {
        Totals {
            connections: self.connections.get(),
            subscriptions: self.subscriptions.get(),
            events_in: self.totals.events_in.get(),
            events_delivered: self.totals.events_delivered.get(),
            publish_requests: self.totals.publish_requests.get(),
        }
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Counter totals for the console.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Totals {
    pub connections: i64,
    pub subscriptions: i64,
    pub events_in: u64,
    pub events_delivered: u64,
    pub publish_requests: u64,
}
