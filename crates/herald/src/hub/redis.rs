//! The Redis engine: Redis pub/sub, one Redis channel per Herald channel.
//!
//! `/ns/a/b` on API `chat` is the Redis channel `herald:chat:/ns/a/b`; a wildcard
//! subscription `/ns/a/*` is the pattern `herald:chat:/ns/a/*` (`PSUBSCRIBE`),
//! which matches exactly the channels below `/ns/a/` (channel names hold no glob
//! characters). One task owns the subscriber connection: it applies interest
//! changes, reads messages, and on a lost connection reconnects with exponential
//! backoff (100 ms doubling to 5 s) and subscribes again to every interest.
//! Publishing uses a separate, self-reconnecting connection; so does channel
//! history ([`super::history::redis`]).

use super::engine::{Batch, BoxFuture, Engine, EngineError, EngineMetrics};
use super::history::redis::RedisHistory;
use super::local::LocalFanout;
use super::wire::{self, Receiver};
use crate::config::RedisConfig;
use futures_util::StreamExt;
use herald_core::ChannelPattern;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

enum Command {
    Add(String, bool, oneshot::Sender<()>),
    Remove(String, bool),
}

pub struct RedisEngine {
    prefix: String,
    node: String,
    metrics: EngineMetrics,
    /// The publishing connection, once one was made (it reconnects by itself).
    publisher: Arc<Mutex<Option<redis::aio::ConnectionManager>>>,
    /// Whether the subscriber connection is up.
    connected: Arc<AtomicBool>,
    /// Interest changes for the subscriber task. Unbounded: one message per
    /// first/last local subscriber of a pattern, never per event.
    commands: mpsc::UnboundedSender<Command>,
    /// Channel history on the same server and connection.
    history: RedisHistory,
}

impl RedisEngine {
    pub fn start(
        config: &RedisConfig,
        api_name: &str,
        node: &str,
        local: Arc<LocalFanout>,
        metrics: EngineMetrics,
    ) -> Result<RedisEngine, String> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("bad Redis URL {}: {e}", config.url))?;
        let (commands, rx) = mpsc::unbounded_channel();
        let prefix = format!("herald:{}:", wire::name_token(api_name));
        let publisher = Arc::new(Mutex::new(None));
        let connected = Arc::new(AtomicBool::new(false));
        let engine = RedisEngine {
            prefix: prefix.clone(),
            node: node.to_string(),
            metrics: metrics.clone(),
            publisher: publisher.clone(),
            connected: connected.clone(),
            commands,
            history: RedisHistory {
                prefix,
                node: node.to_string(),
                metrics: metrics.clone(),
                publisher,
                connected,
            },
        };
        let receiver = Arc::new(Receiver::new(node, local, metrics.clone()));
        tokio::spawn(subscriber_task(
            client,
            config.url.clone(),
            rx,
            receiver,
            metrics,
            engine.connected.clone(),
            engine.publisher.clone(),
        ));
        Ok(engine)
    }

    fn name_of(&self, pattern: &ChannelPattern) -> (String, bool) {
        match pattern {
            ChannelPattern::Exact(c) => (format!("{}{}", self.prefix, c.path()), false),
            ChannelPattern::Prefix(c) => (format!("{}{}/*", self.prefix, c.path()), true),
        }
    }
}

async fn subscriber_task(
    client: redis::Client,
    url: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    receiver: Arc<Receiver>,
    metrics: EngineMetrics,
    connected: Arc<AtomicBool>,
    publisher: Arc<Mutex<Option<redis::aio::ConnectionManager>>>,
) {
    // The interests to restore after a reconnect: (name, is_pattern).
    let mut interests: HashSet<(String, bool)> = HashSet::new();
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let attempt = async {
            let pubsub = client.get_async_pubsub().await?;
            let (mut sink, stream) = pubsub.split();
            for (name, pattern) in &interests {
                if *pattern {
                    sink.psubscribe(name).await?;
                } else {
                    sink.subscribe(name).await?;
                }
            }
            // A fresh publishing connection with every (re)connect: the old one
            // may still hold a socket to the server that went away.
            let manager = redis::aio::ConnectionManager::new(client.clone()).await?;
            *publisher.lock().unwrap() = Some(manager);
            Ok::<_, redis::RedisError>((sink, stream))
        };
        let (mut sink, mut stream) = match attempt.await {
            Ok(pair) => pair,
            Err(e) => {
                if first {
                    tracing::warn!(engine = "redis", %url, error = %e, "cannot reach Redis; retrying");
                    first = false;
                }
                // Keep answering interest changes while waiting to retry.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        cmd = commands.recv() => match cmd {
                            Some(Command::Add(name, p, done)) => { interests.insert((name, p)); let _ = done.send(()); }
                            Some(Command::Remove(name, p)) => { interests.remove(&(name, p)); }
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        first = true;
        connected.store(true, Ordering::SeqCst);
        metrics.connected.set(1);
        tracing::info!(engine = "redis", %url, interests = interests.len(), "engine connected");
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => receiver.receive(msg.get_payload_bytes()),
                    None => break,
                },
                cmd = commands.recv() => match cmd {
                    Some(Command::Add(name, pattern, done)) => {
                        let r = if pattern { sink.psubscribe(&name).await } else { sink.subscribe(&name).await };
                        if let Err(e) = r {
                            tracing::warn!(engine = "redis", channel = %name, error = %e, "subscribe failed; will retry on reconnect");
                        }
                        interests.insert((name, pattern));
                        let _ = done.send(());
                    }
                    Some(Command::Remove(name, pattern)) => {
                        interests.remove(&(name.clone(), pattern));
                        let _ = if pattern { sink.punsubscribe(&name).await } else { sink.unsubscribe(&name).await };
                    }
                    None => return,
                },
            }
        }
        connected.store(false, Ordering::SeqCst);
        metrics.connected.set(0);
        metrics.reconnects.inc();
        tracing::warn!(engine = "redis", %url, "engine disconnected; reconnecting");
    }
}

impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let conn = self.publisher.lock().unwrap().clone();
            let (Some(mut conn), true) = (conn, self.connected.load(Ordering::SeqCst)) else {
                self.metrics.publish_errors.inc();
                return Err(EngineError("not connected to Redis".into()));
            };
            let channel = format!("{}{}", self.prefix, batch.channel.path());
            let payload = wire::encode(&self.node, rand::random(), batch);
            // One retry: a connection the server dropped fails once, then the
            // manager reconnects.
            let mut last_error = String::from("Redis publish timed out");
            for _ in 0..2 {
                let sent = tokio::time::timeout(
                    PUBLISH_TIMEOUT,
                    redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(&payload)
                        .query_async::<i64>(&mut conn),
                )
                .await;
                match sent {
                    Ok(Ok(_)) => {
                        self.metrics.published.inc();
                        return Ok(());
                    }
                    Ok(Err(e)) => {
                        let retry = e.is_io_error() || e.is_connection_dropped();
                        last_error = format!("Redis publish failed: {e}");
                        if !retry {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            self.metrics.publish_errors.inc();
            Err(EngineError(last_error))
        })
    }

    fn add_interest<'a>(&'a self, pattern: &'a ChannelPattern) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (name, is_pattern) = self.name_of(pattern);
            let (done, confirmed) = oneshot::channel();
            if self
                .commands
                .send(Command::Add(name, is_pattern, done))
                .is_ok()
            {
                let _ = confirmed.await;
            }
        })
    }

    fn remove_interest(&self, pattern: &ChannelPattern) {
        let (name, is_pattern) = self.name_of(pattern);
        let _ = self.commands.send(Command::Remove(name, is_pattern));
    }

    fn is_ready(&self) -> bool {
        self.connected.load(Ordering::SeqCst) && self.publisher.lock().unwrap().is_some()
    }

    fn history(&self) -> Option<&dyn super::history::ClusterHistory> {
        Some(&self.history)
    }
}
