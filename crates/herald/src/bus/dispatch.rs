//! Delivery: read the log, match each event against its bus's rules, send
//! it to every target of every matching rule, and account for each
//! delivery exactly once: delivered, parked as a durable retry, or
//! dead-lettered. Only then is the event settled (see [`super::log`] for
//! the contract and what a crash repeats).
//!
//! **Retries** follow the target's `RetryPolicy`: up to
//! `MaximumRetryAttempts` more attempts (185 by default) while the event is
//! younger than `MaximumEventAgeInSeconds` (24 hours by default), waiting 1
//! s, 2 s, 4 s, ... up to 60 s between attempts, each ±20% at random so a
//! recovering target is not hit by every retry at once. Then the event goes
//! to the target's `DeadLetterConfig` (or, without one, is dropped with a
//! log line and a metric, as EventBridge drops it). A dead-letter target
//! that fails keeps the event in the retry table and is tried again a
//! minute later: nothing acknowledged is dropped for a queue that is down.
//!
//! A dead target never blocks the others: each delivery is its own task.

use super::log::{Ack, Logged, NewEvent, Reader, Retry, Taken};
use super::spec::{RuleSpec, TargetSpec};
use super::target::{Failed, Parts, Target};
use super::EventBuses;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// Deliveries in flight at once. When all are busy the dispatcher stops
/// reading the log: events wait there, durable, and `PutEvents` goes on
/// accepting them.
const IN_FLIGHT: usize = 1024;
/// Events read from the log at a time.
const READ: usize = 256;
/// Retries taken from the table at a time.
const RETRY_BATCH: usize = 64;
/// How often the log's checkpoint is written and the retries polled.
const TICK: Duration = Duration::from_millis(100);
/// Longest wait between attempts.
const MAX_BACKOFF_SECS: f64 = 60.0;

/// Start the dispatcher and the retry loop; they stop when `stop` turns true.
pub fn start(buses: Arc<EventBuses>, parts: Arc<Parts>, stop: watch::Receiver<bool>) {
    tokio::spawn(run(buses.clone(), parts.clone(), stop.clone()));
    tokio::spawn(retries(buses, parts, stop));
}

/// The wait before attempt `attempts + 1`.
fn backoff(attempts: u32) -> f64 {
    let base = 2f64
        .powi(attempts.saturating_sub(1).min(16) as i32)
        .min(MAX_BACKOFF_SECS);
    base * (0.8 + 0.4 * rand::random::<f64>())
}

/// An event handed out by the log, with deliveries outstanding.
struct Pending {
    left: usize,
    ack: Ack,
    /// When the log last heard about it (for long deliveries).
    touched: tokio::time::Instant,
}

/// What the dispatch loop tracks: events by a local number.
struct Tracker {
    pending: HashMap<u64, Pending>,
    next: u64,
}

async fn run(buses: Arc<EventBuses>, parts: Arc<Parts>, mut stop: watch::Receiver<bool>) {
    let log = buses.log.clone();
    let mut reader = log.reader();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    // One message per delivery; at most IN_FLIGHT deliveries exist, so the
    // channel holds at most that many.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
    let mut tracker = Tracker {
        pending: HashMap::new(),
        next: 0,
    };
    // The matcher's working memory, reused for every event (any bus's
    // matcher takes it).
    let mut scratch = herald_pattern::Scratch::default();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    loop {
        while let Ok(key) = done_rx.try_recv() {
            complete(&mut reader, &mut tracker, key).await;
        }
        tokio::select! {
            batch = reader.next(READ) => {
                // Archived before any of the batch can be settled.
                let rows = super::archive::rows_for(&buses, batch.iter().map(|(ev, _)| ev));
                if !rows.is_empty() {
                    let mut delay = Duration::from_millis(100);
                    while let Err(e) = log.archive(rows.clone()).await {
                        tracing::error!(error = %e, "archiving failed; trying again");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
                for (ev, ack) in batch {
                    route(&buses, &parts, &permits, &done_tx, &mut tracker, &mut reader, &mut scratch, ev, ack).await;
                }
            }
            Some(key) = done_rx.recv() => complete(&mut reader, &mut tracker, key).await,
            _ = tick.tick() => {
                reader.checkpoint().await;
                keep_alive(&mut reader, &mut tracker).await;
            }
            _ = stop.changed() => {
                if *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// Tell a shared log the events still being delivered are still held
/// (else another node takes them after `ack_wait_secs`).
async fn keep_alive(reader: &mut Reader, tracker: &mut Tracker) {
    if let Some(every) = reader.progress_every() {
        let now = tokio::time::Instant::now();
        for p in tracker.pending.values_mut() {
            if now - p.touched >= every {
                reader.progress(&p.ack).await;
                p.touched = now;
            }
        }
    }
}

async fn complete(reader: &mut Reader, tracker: &mut Tracker, key: u64) {
    if let Some(p) = tracker.pending.get_mut(&key) {
        p.left -= 1;
        if p.left == 0 {
            let p = tracker.pending.remove(&key).expect("present");
            reader.settle(p.ack).await;
        }
    }
}

/// The rules `ev` goes to: a scheduled rule's own event to that rule, any
/// other to the enabled rules whose pattern matches it.
fn rules_for(
    buses: &EventBuses,
    ev: &Logged,
    event: &Value,
    scratch: &mut herald_pattern::Scratch,
) -> Vec<Arc<RuleSpec>> {
    let view = buses.view();
    let Some(bus) = view.buses.get(&ev.bus) else {
        tracing::warn!(bus = %ev.bus, "an event for a bus that no longer exists: dropped");
        return Vec::new();
    };
    match &ev.rule {
        Some(name) => bus
            .rules
            .get(name)
            .filter(|r| r.enabled())
            .cloned()
            .into_iter()
            .collect(),
        None => {
            let mut names = Vec::new();
            bus.matcher.matches_into(event, scratch, &mut names);
            let mut rules: Vec<Arc<RuleSpec>> = names
                .iter()
                .filter_map(|name| bus.rules.get(name).cloned())
                .collect();
            // A replay limited to some rules reaches only those.
            let replay = event
                .get("replay-name")
                .and_then(Value::as_str)
                .and_then(|n| view.replays.get(n));
            if let Some(r) = replay {
                let only = r.filter_arns();
                if !only.is_empty() {
                    rules.retain(|rule| {
                        only.contains(&buses.rule_arn(&rule.event_bus_name, &rule.name).as_str())
                    });
                }
            }
            rules
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn route(
    buses: &Arc<EventBuses>,
    parts: &Arc<Parts>,
    permits: &Arc<Semaphore>,
    done: &mpsc::UnboundedSender<u64>,
    tracker: &mut Tracker,
    reader: &mut Reader,
    scratch: &mut herald_pattern::Scratch,
    ev: Logged,
    ack: Ack,
) {
    let event: Value = match serde_json::from_str(&ev.event) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "an event in the log is not JSON: skipped");
            reader.settle(ack).await;
            return;
        }
    };
    let rules = rules_for(buses, &ev, &event, scratch);
    let count: usize = rules.iter().map(|r| r.targets.len()).sum();
    if count == 0 {
        reader.settle(ack).await;
        return;
    }
    let key = tracker.next;
    tracker.next += 1;
    tracker.pending.insert(
        key,
        Pending {
            left: count,
            ack,
            touched: tokio::time::Instant::now(),
        },
    );
    let event = Arc::new(event);
    let text: Arc<str> = ev.event.into();
    for rule in rules {
        for target in rule.targets.iter().cloned() {
            // While every delivery slot is busy the loop's tick does not
            // run: keep the held events alive from here.
            let permit = loop {
                match tokio::time::timeout(TICK, permits.clone().acquire_owned()).await {
                    Ok(p) => break p.expect("the semaphore is never closed"),
                    Err(_) => keep_alive(reader, tracker).await,
                }
            };
            let job = Job {
                buses: buses.clone(),
                parts: parts.clone(),
                rule: rule.clone(),
                target,
                event: event.clone(),
                text: text.clone(),
                received: ev.received,
            };
            let done = done.clone();
            tokio::spawn(async move {
                job.first().await;
                drop(permit);
                let _ = done.send(key);
            });
        }
    }
}

/// One delivery of one event to one target.
struct Job {
    buses: Arc<EventBuses>,
    parts: Arc<Parts>,
    rule: Arc<RuleSpec>,
    target: TargetSpec,
    event: Arc<Value>,
    text: Arc<str>,
    received: f64,
}

impl Job {
    /// The target's input for this event (a JSONata template can fail:
    /// that is not retried, the event is dead-lettered).
    fn payload(&self) -> Result<String, Failed> {
        let t = &self.target;
        if let Some(input) = &t.input {
            return Ok(input.clone());
        }
        if let Some(path) = &t.input_path {
            return Ok(super::input::JsonPath::parse(path)
                .ok()
                .and_then(|p| p.select(&self.event).map(Value::to_string))
                .unwrap_or_else(|| "null".into()));
        }
        if let Some(tr) = &t.input_transformer {
            let rule_arn = self
                .buses
                .rule_arn(&self.rule.event_bus_name, &self.rule.name);
            let ingestion = super::event_time(self.received);
            let cx = super::input::Context {
                rule_arn: &rule_arn,
                rule_name: &self.rule.name,
                ingestion_time: &ingestion,
            };
            if let Some(expr) = super::input::jsonata_of(tr) {
                return super::input::transform_jsonata(expr, tr, &self.event, &cx).map_err(|e| {
                    Failed {
                        message: format!("the JSONata transformation failed: {e}"),
                        code: "SDK_CLIENT_ERROR",
                        retryable: false,
                    }
                });
            }
            return Ok(super::input::transform(tr, &self.event, &self.text, &cx));
        }
        Ok(self.text.to_string())
    }

    async fn attempt(&self) -> Result<(), Failed> {
        let target = Target::new(&self.target.arn, &self.parts).map_err(|message| Failed {
            message,
            code: "RESOURCE_NOT_FOUND",
            retryable: true,
        })?;
        if let Target::Api(name) = &target {
            let view = self.buses.view();
            let missing = |message: String| Failed {
                message,
                code: "RESOURCE_NOT_FOUND",
                retryable: true,
            };
            let dest = view
                .api_destinations
                .get(name)
                .ok_or_else(|| missing(format!("API destination {name} does not exist.")))?;
            let conn = view
                .connections
                .values()
                .find(|c| c.arn == dest.connection_arn)
                .ok_or_else(|| {
                    missing(format!(
                        "Connection {} does not exist.",
                        dest.connection_arn
                    ))
                })?;
            return self
                .parts
                .calls
                .call(
                    self.parts.functions.http(),
                    dest,
                    conn,
                    self.target.http_parameters.as_ref(),
                    &self.event,
                    self.payload()?,
                )
                .await;
        }
        if let Target::Bus(name) = &target {
            if !self.buses.view().buses.contains_key(name) {
                return Err(Failed {
                    message: format!("Event bus {name} does not exist."),
                    code: "RESOURCE_NOT_FOUND",
                    retryable: true,
                });
            }
            let put = NewEvent {
                bus: name.clone(),
                rule: None,
                event: self.text.to_string(),
                received: crate::esm::spec::now_secs(),
            };
            return self
                .buses
                .log
                .append(vec![put])
                .await
                .map_err(|message| Failed {
                    message,
                    code: "SDK_CLIENT_ERROR",
                    retryable: true,
                });
        }
        let group = self
            .target
            .sqs_parameters
            .as_ref()
            .and_then(|p| p.message_group_id.as_deref());
        target
            .deliver(&self.parts, self.payload()?, &self.event, group)
            .await
    }

    fn expired(&self, attempts: u32) -> bool {
        attempts > self.target.max_retries()
            || crate::esm::spec::now_secs() - self.received > f64::from(self.target.max_age_secs())
    }

    /// The first attempt; a failure is parked for a retry or dead-lettered.
    async fn first(self) {
        let Err(f) = self.attempt().await else {
            return;
        };
        let retry = Retry {
            bus: self.rule.event_bus_name.clone(),
            rule: self.rule.name.clone(),
            target: self.target.id.clone(),
            event: self.text.to_string(),
            received: self.received,
            attempts: 1,
            due: crate::esm::spec::now_secs() + backoff(1),
            error: f.message.clone(),
        };
        if self.expired(1) || !f.retryable {
            if self.dead_letter(&f, 1).await {
                return;
            }
        } else {
            tracing::debug!(rule = %self.rule.name, target = %self.target.id, error = %f.message, "delivery failed; will retry");
        }
        // Parked (for a retry, or for a dead-letter target that failed):
        // durable before the event counts as done.
        let mut delay = Duration::from_millis(100);
        while let Err(e) = self.buses.log.add_retry(retry.clone()).await {
            tracing::error!(error = %e, "parking a failed delivery failed; trying again");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Send the event to the target's dead-letter queue; `false` when that
    /// failed (the caller keeps the event). Without a dead-letter target
    /// the event is dropped, as EventBridge drops it.
    async fn dead_letter(&self, f: &Failed, attempts: u32) -> bool {
        let rule_arn = self
            .buses
            .rule_arn(&self.rule.event_bus_name, &self.rule.name);
        let Some(arn) = self.target.dead_letter() else {
            tracing::warn!(rule = %rule_arn, target = %self.target.id, error = %f.message, attempts,
                "delivery failed for good and the target has no dead-letter queue: event dropped");
            return true;
        };
        let sent = match super::target::dead_letter(arn, &self.parts) {
            Err(e) => Err(e),
            Ok(d) if arn.starts_with("arn:aws:sqs:") => {
                d.deliver_text(self.text.to_string(), None).await
            }
            Ok(d) => {
                let record = json!({
                    "event": &*self.event,
                    "errorCode": f.code,
                    "errorMessage": f.message,
                    "ruleArn": rule_arn,
                    "targetArn": self.target.arn,
                    "attempts": attempts,
                });
                d.deliver_text(record.to_string(), None).await
            }
        };
        match sent {
            Ok(()) => {
                tracing::info!(rule = %rule_arn, target = %self.target.id, dead_letter = %arn, error = %f.message, attempts, "event dead-lettered");
                true
            }
            Err(e) => {
                tracing::warn!(rule = %rule_arn, target = %self.target.id, dead_letter = %arn, error = %e, "the dead-letter target failed; the event is kept and tried again");
                false
            }
        }
    }
}

/// The retry loop: every [`TICK`], the retries that are due, attempted
/// together; the next batch waits for this one (so a retry is never
/// attempted twice at once).
async fn retries(buses: Arc<EventBuses>, parts: Arc<Parts>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    let mut purged = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => if *stop.borrow() { return },
        }
        // Archives past their retention, once a minute.
        if purged.elapsed() >= Duration::from_secs(60) {
            super::archive::purge(&buses).await;
            purged = tokio::time::Instant::now();
        }
        let due = match buses
            .log
            .due(crate::esm::spec::now_secs(), RETRY_BATCH)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading the retry table failed");
                continue;
            }
        };
        // Each retry is held by this node while it is attempted; a long
        // attempt tells the log so, lest another node take it too.
        let held: Vec<Taken> = due.clone();
        let runs =
            futures_util::future::join_all(due.into_iter().map(|r| retry_one(&buses, &parts, r)));
        tokio::pin!(runs);
        let every = buses.log.progress_every();
        loop {
            tokio::select! {
                _ = &mut runs => break,
                _ = tokio::time::sleep(every) => {
                    for t in &held {
                        buses.log.touch_retry(t).await;
                    }
                }
            }
        }
    }
}

async fn retry_one(buses: &Arc<EventBuses>, parts: &Arc<Parts>, taken: Taken) {
    let r = &taken.retry;
    let view = buses.view();
    let found = view
        .buses
        .get(&r.bus)
        .and_then(|b| b.rules.get(&r.rule))
        .and_then(|rule| {
            rule.targets
                .iter()
                .find(|t| t.id == r.target)
                .map(|t| (rule.clone(), t.clone()))
        });
    let Some((rule, target)) = found else {
        tracing::warn!(bus = %r.bus, rule = %r.rule, target = %r.target, "a retry for a target that no longer exists: dropped");
        buses.log.delete_retry(&taken).await;
        return;
    };
    let event = match serde_json::from_str(&r.event) {
        Ok(v) => v,
        Err(_) => {
            buses.log.delete_retry(&taken).await;
            return;
        }
    };
    let job = Job {
        buses: buses.clone(),
        parts: parts.clone(),
        rule,
        target,
        event: Arc::new(event),
        text: r.event.clone().into(),
        received: r.received,
    };
    let failure = if job.expired(r.attempts) {
        // Out of attempts (a dead-letter target failed before): straight
        // to the dead-letter target.
        Failed {
            message: r.error.clone(),
            code: "RETRIES_EXHAUSTED",
            retryable: false,
        }
    } else {
        match job.attempt().await {
            Ok(()) => {
                buses.log.delete_retry(&taken).await;
                return;
            }
            Err(f) => f,
        }
    };
    let attempts = r.attempts + 1;
    if job.expired(attempts) || !failure.retryable {
        if job.dead_letter(&failure, attempts).await {
            buses.log.delete_retry(&taken).await;
        } else {
            let due = crate::esm::spec::now_secs() + MAX_BACKOFF_SECS;
            buses
                .log
                .update_retry(taken, attempts, due, failure.message)
                .await;
        }
        return;
    }
    let due = crate::esm::spec::now_secs() + backoff(attempts);
    buses
        .log
        .update_retry(taken, attempts, due, failure.message)
        .await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_to_a_minute() {
        for (attempts, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (100, 60.0)] {
            let b = super::backoff(attempts);
            assert!((base * 0.8..=base * 1.2).contains(&b), "{attempts}: {b}");
        }
    }
}
