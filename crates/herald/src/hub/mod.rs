//! The hub: subscriptions and fan-out.
//!
//! [`LocalFanout`] owns this node's subscription index and queues frames into
//! each connection's bounded [`Outbox`]; an [`Engine`] carries each publish to
//! the other nodes (the in-memory engine: there are none). The hub counts local
//! subscribers per pattern so the engine holds a broker subscription only while
//! some client here needs it.

pub mod engine;
pub mod filter;
pub mod gate;
pub mod history;
pub mod local;
pub mod nats;
pub mod outbox;
mod redis;
pub mod wire;

pub use engine::{Batch, Engine, EngineError, EngineMetrics, MemoryEngine};
pub use filter::EventFilter;
pub use gate::Gate;
pub use history::{HistorySettings, MemoryHistory};
pub use local::{Delivery, LocalFanout, Subscriber};
pub use outbox::{Outbound, Outbox, Pushed, Revoked};

use crate::config::{ApiConfig, EngineSetting};
use herald_core::index::SubKey;
use herald_core::ChannelPattern;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Subscriptions of this node plus the engine that reaches the others.
pub struct Hub {
    pub local: Arc<LocalFanout>,
    pub engine: Box<dyn Engine>,
    pub engine_metrics: EngineMetrics,
    pub node_id: String,
    /// The streams of namespaces with history (on this node).
    pub history: MemoryHistory,
    /// Local subscribers per pattern, and whether the engine has confirmed the
    /// interest (later subscribers of a pattern wait for the first one's
    /// confirmation before their ack).
    interest: Mutex<HashMap<ChannelPattern, (usize, watch::Receiver<bool>)>>,
    /// Fault injection on the engine path (`herald:engine:*` actions), and
    /// the API's ARN they name it by; none until the API sets them.
    faults: Option<(Arc<crate::faults::Faults>, String)>,
}

impl Hub {
    fn with_engine(
        local: Arc<LocalFanout>,
        engine: Box<dyn Engine>,
        metrics: EngineMetrics,
        node_id: String,
        history: history::HistoryLimits,
    ) -> Hub {
        Hub {
            local,
            engine,
            engine_metrics: metrics,
            node_id,
            faults: None,
            history: MemoryHistory::new(history),
            interest: Mutex::new(HashMap::new()),
        }
    }

    /// A single-node hub on the in-memory engine.
    pub fn memory() -> Hub {
        let metrics = EngineMetrics::default();
        metrics.connected.set(1);
        Hub::with_engine(
            Arc::new(LocalFanout::new()),
            Box::new(MemoryEngine),
            metrics,
            "local".into(),
            history::HistoryLimits::default(),
        )
    }

    /// The hub the configuration asks for. A broker that is down at startup is
    /// not an error: the node serves locally and connects when it can.
    pub async fn from_config(config: &ApiConfig) -> Result<Hub, String> {
        let local = Arc::new(LocalFanout::new());
        let metrics = EngineMetrics::default();
        let node = config.node_id.clone();
        let engine: Box<dyn Engine> = match &config.engine {
            EngineSetting::Memory => {
                let mut hub = Hub::memory();
                hub.history = MemoryHistory::new(config.history);
                return Ok(hub);
            }
            EngineSetting::Nats(c) => Box::new(
                nats::NatsEngine::connect(
                    c,
                    &config.wire_name,
                    &node,
                    local.clone(),
                    metrics.clone(),
                )
                .await?,
            ),
            EngineSetting::Redis(c) => Box::new(redis::RedisEngine::start(
                c,
                &config.wire_name,
                &node,
                local.clone(),
                metrics.clone(),
            )?),
        };
        Ok(Hub::with_engine(
            local,
            engine,
            metrics,
            node,
            config.history,
        ))
    }

    /// Add a subscription: make sure the engine routes the pattern here, then
    /// insert it locally; `on_live` runs under the index lock right after the
    /// insert (the connection queues its `subscribe_success` there).
    pub async fn subscribe(
        &self,
        pattern: &ChannelPattern,
        sub: Subscriber,
        on_live: impl FnOnce(),
    ) -> SubKey {
        let (first, mut ready) = {
            let mut map = self.interest.lock().unwrap();
            match map.get_mut(pattern) {
                Some((n, rx)) => {
                    *n += 1;
                    (None, rx.clone())
                }
                None => {
                    let (tx, rx) = watch::channel(false);
                    map.insert(pattern.clone(), (1, rx.clone()));
                    (Some(tx), rx)
                }
            }
        };
        match first {
            Some(tx) => {
                self.engine.add_interest(pattern).await;
                let _ = tx.send(true);
            }
            None => {
                // Err: the first subscriber went away mid-way; go on regardless.
                let _ = ready.wait_for(|confirmed| *confirmed).await;
            }
        }
        self.local.subscribe(pattern, sub, on_live)
    }

    /// Let fault injection experiments act on this hub's engine traffic,
    /// naming it by its API's ARN.
    pub fn set_faults(&mut self, faults: Arc<crate::faults::Faults>, api_arn: String) {
        self.faults = Some((faults, api_arn));
    }

    /// Remove a subscription; the engine drops the pattern with its last subscriber.
    pub fn unsubscribe(&self, pattern: &ChannelPattern, key: SubKey) {
        if !self.local.unsubscribe(pattern, key) {
            return;
        }
        let mut map = self.interest.lock().unwrap();
        if let Some((n, _)) = map.get_mut(pattern) {
            *n -= 1;
            if *n == 0 {
                map.remove(pattern);
                self.engine.remove_interest(pattern);
            }
        }
    }

    /// Remove every subscription of namespace `ns` on this node (it was
    /// deleted), releasing the engine's interest in their patterns; the
    /// subscribers, for the caller to tell.
    pub fn remove_namespace(&self, ns: &str) -> Vec<Subscriber> {
        let removed = self.local.drain_namespace(ns);
        let mut map = self.interest.lock().unwrap();
        for (pattern, _) in &removed {
            if let Some((n, _)) = map.get_mut(pattern) {
                *n -= 1;
                if *n == 0 {
                    map.remove(pattern);
                    self.engine.remove_interest(pattern);
                }
            }
        }
        removed.into_iter().map(|(_, sub)| sub).collect()
    }

    /// Deliver to this node's subscribers, then hand the batch to the engine.
    /// The delivery happens whatever the engine says. With `history`, the
    /// events are appended to the channel's stream first (see [`history`]);
    /// when the engine's broker keeps the history, the broker gives out the
    /// offsets and sends the batch to every node, this one included, and
    /// nothing is delivered here first (see [`history::cluster`]).
    pub async fn publish(
        &self,
        batch: &Batch,
        history: Option<HistorySettings>,
    ) -> (Delivery, Result<(), EngineError>) {
        if let (Some(settings), Some(cluster)) = (history, self.engine.history()) {
            return (Delivery::default(), cluster.append(batch, settings).await);
        }
        let deliver = |tag| {
            self.local
                .deliver(&batch.channel, &batch.events, batch.published_at, tag)
        };
        let delivery = match history {
            None => deliver(None),
            Some(settings) => {
                let literals = batch.events.iter().map(|e| &e.literal);
                self.history
                    .append(batch.channel.path(), settings, literals, |tag| {
                        deliver(Some(tag))
                    })
            }
        };
        if let Some((faults, arn)) = &self.faults {
            match faults.on_engine_publish(arn) {
                // Dropped by an experiment: as lost on the network, the
                // other nodes never see it.
                None => return (delivery, Ok(())),
                Some(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
                Some(_) => {}
            }
        }
        let remote = self.engine.publish(batch).await;
        (delivery, remote)
    }
}
