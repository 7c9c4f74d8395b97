//! The NATS engine: core NATS subjects, one per channel.
//!
//! `/ns/a/b` on API `chat` is the subject `herald.chat.ns.a.b`; a wildcard
//! subscription `/ns/a/*` is `herald.chat.ns.a.>` (NATS's `>` matches one or more
//! tokens, exactly AppSync's trailing `*`, so `/ns/a/*` never sees `/ns/ab/c`).
//! async-nats reconnects with backoff on its own and restores subscriptions; the
//! engine logs and counts what happened.
//!
//! **Live on ack.** async-nats' `flush()` resolves once the `SUB` is written to
//! the socket, not once the server has processed it, so it cannot prove a
//! subscription is live. The engine proves it with a loopback probe instead: the
//! node holds one subscription on a private inbox subject, and after each `SUB`
//! it publishes a probe there and waits for it to come back. The server handles
//! one client's protocol messages in order, so the probe's return means the
//! `SUB` before it is registered and publishes from other nodes reach it. (With
//! a NATS *cluster* of several servers, interest still propagates between
//! servers asynchronously; Herald's contract holds against one server or a
//! client-facing server the publishers share.)

use super::engine::{Batch, BoxFuture, Engine, EngineError, EngineMetrics};
use super::history::jetstream::JetStreamHistory;
use super::local::LocalFanout;
use super::wire::{self, Receiver};
use crate::config::NatsConfig;
use futures_util::StreamExt;
use herald_core::{Channel, ChannelPattern};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long `add_interest` waits for the server to confirm a subscription.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes waiting for their round trip, by probe id.
type Probes = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

pub struct NatsEngine {
    client: async_nats::Client,
    prefix: String,
    node: String,
    receiver: Arc<Receiver>,
    metrics: EngineMetrics,
    /// Subject -> stop signal of the task reading that subscription.
    subs: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// This node's private probe subject, and the probes in flight on it.
    probe_subject: String,
    probes: Probes,
    /// Channel history in JetStream on the same connection.
    history: JetStreamHistory,
}

/// The connection options `[nats]` gives: credentials, TLS, reconnecting
/// for ever (the engine and the bus's log share them).
pub fn options(config: &NatsConfig) -> async_nats::ConnectOptions {
    let mut opts = async_nats::ConnectOptions::new().max_reconnects(None);
    if let (Some(u), Some(p)) = (&config.user, &config.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &config.token {
        opts = opts.token(t.clone());
    }
    if let Some(ca) = &config.tls_ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if config.tls_required.unwrap_or(false) {
        opts = opts.require_tls(true);
    }
    opts
}

impl NatsEngine {
    pub async fn connect(
        config: &NatsConfig,
        api_name: &str,
        node: &str,
        local: Arc<LocalFanout>,
        metrics: EngineMetrics,
    ) -> Result<NatsEngine, String> {
        let mut opts = options(config)
            .name(format!("herald {node}"))
            .retry_on_initial_connect();
        let m = metrics.clone();
        let url = config.url.clone();
        opts = opts.event_callback(move |event| {
            let m = m.clone();
            let url = url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        m.connected.set(1);
                        tracing::info!(engine = "nats", %url, "engine connected");
                    }
                    async_nats::Event::Disconnected => {
                        m.connected.set(0);
                        m.reconnects.inc();
                        tracing::warn!(engine = "nats", %url, "engine disconnected; reconnecting");
                    }
                    other => tracing::info!(engine = "nats", event = %other, "engine event"),
                }
            }
        });
        let client = opts
            .connect(config.url.as_str())
            .await
            .map_err(|e| format!("cannot connect to NATS at {}: {e}", config.url))?;
        if client.connection_state() == async_nats::connection::State::Connected {
            metrics.connected.set(1);
        }
        let probe_subject = client.new_inbox();
        let probes: Probes = Arc::default();
        let mut probe_sub = client
            .subscribe(probe_subject.clone())
            .await
            .map_err(|e| format!("cannot subscribe to the NATS probe subject: {e}"))?;
        let waiting = probes.clone();
        tokio::spawn(async move {
            while let Some(msg) = probe_sub.next().await {
                let id = std::str::from_utf8(&msg.payload)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(done) = id.and_then(|id| waiting.lock().unwrap().remove(&id)) {
                    let _ = done.send(());
                }
            }
        });
        let prefix = format!("herald.{}", wire::name_token(api_name));
        let history = JetStreamHistory::new(
            async_nats::jetstream::new(client.clone()),
            prefix.clone(),
            wire::name_token(api_name),
            node.to_string(),
            metrics.clone(),
        );
        Ok(NatsEngine {
            probe_subject,
            probes,
            client,
            history,
            prefix,
            node: node.to_string(),
            receiver: Arc::new(Receiver::new(node, local, metrics.clone())),
            metrics,
            subs: Mutex::new(HashMap::new()),
        })
    }

    fn channel_subject(&self, channel: &Channel) -> String {
        let mut s = self.prefix.clone();
        for seg in channel.segments() {
            s.push('.');
            s.push_str(seg);
        }
        s
    }

    fn pattern_subject(&self, pattern: &ChannelPattern) -> String {
        match pattern {
            ChannelPattern::Exact(c) => self.channel_subject(c),
            ChannelPattern::Prefix(c) => format!("{}.>", self.channel_subject(c)),
        }
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// A round trip through the server: resolves once everything this client
    /// sent before it (a `SUB` in particular) has been processed. See the
    /// module documentation.
    async fn round_trip(&self) -> Result<(), String> {
        let id: u64 = rand::random();
        let (done, returned) = oneshot::channel();
        self.probes.lock().unwrap().insert(id, done);
        let sent = self
            .client
            .publish(self.probe_subject.clone(), id.to_string().into())
            .await;
        let result = match sent {
            Err(e) => Err(format!("probe not sent: {e}")),
            Ok(()) => match tokio::time::timeout(CONFIRM_TIMEOUT, returned).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err("probe dropped".into()),
                Err(_) => Err(format!("no answer within {CONFIRM_TIMEOUT:?}")),
            },
        };
        self.probes.lock().unwrap().remove(&id);
        result
    }
}

impl Engine for NatsEngine {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            if !self.connected() {
                self.metrics.publish_errors.inc();
                return Err(EngineError("not connected to NATS".into()));
            }
            let payload = wire::encode(&self.node, rand::random(), batch);
            let subject = self.channel_subject(&batch.channel);
            match self.client.publish(subject, payload.into()).await {
                Ok(()) => {
                    self.metrics.published.inc();
                    Ok(())
                }
                Err(e) => {
                    self.metrics.publish_errors.inc();
                    Err(EngineError(format!("NATS publish failed: {e}")))
                }
            }
        })
    }

    fn add_interest<'a>(&'a self, pattern: &'a ChannelPattern) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let subject = self.pattern_subject(pattern);
            let mut sub = match self.client.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(engine = "nats", %subject, error = %e, "subscribe failed");
                    return;
                }
            };
            // A round trip makes sure the server has the subscription before the
            // client is told it is live. While disconnected, async-nats sends it
            // on reconnect (the subscription is local until then).
            if self.connected() {
                if let Err(e) = self.round_trip().await {
                    tracing::warn!(engine = "nats", %subject, error = %e, "subscription not confirmed");
                }
            }
            let (stop, mut stopped) = oneshot::channel();
            let receiver = self.receiver.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        msg = sub.next() => match msg {
                            Some(msg) => receiver.receive(&msg.payload),
                            None => break,
                        },
                        _ = &mut stopped => {
                            let _ = sub.unsubscribe().await;
                            break;
                        }
                    }
                }
            });
            if let Some(old) = self.subs.lock().unwrap().insert(subject, stop) {
                let _ = old.send(());
            }
        })
    }

    fn remove_interest(&self, pattern: &ChannelPattern) {
        let subject = self.pattern_subject(pattern);
        if let Some(stop) = self.subs.lock().unwrap().remove(&subject) {
            let _ = stop.send(());
        }
    }

    fn is_ready(&self) -> bool {
        self.connected()
    }

    fn history(&self) -> Option<&dyn super::history::ClusterHistory> {
        Some(&self.history)
    }
}
