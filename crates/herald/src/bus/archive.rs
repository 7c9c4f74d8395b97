//! Archives and replays. An archive keeps the events of one bus (those its
//! `EventPattern` matches, or all) for `RetentionDays` (0: for ever), in
//! the event log's database, written before the events count as done. A
//! replay sends an archive's events received between two times back to a
//! bus, each with `"replay-name"` added as EventBridge marks them, to every
//! rule there or only to the rules in `Destination.FilterArns`. Replayed
//! events are not archived again.
//!
//! A replay runs on the node that started it; one interrupted by a restart
//! is marked `FAILED` ("interrupted by a restart") when the node starts.

use super::log::{Logged, NewEvent};
use super::EventBuses;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The store's kinds.
pub const ARCHIVE: &str = "archive";
pub const REPLAY: &str = "replay";
/// Events read from an archive at a time during a replay.
const REPLAY_BATCH: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveSpec {
    pub archive_name: String,
    pub archive_arn: String,
    /// The bus's ARN.
    pub event_source_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_pattern: Option<String>,
    /// 0: kept for ever.
    pub retention_days: u32,
    pub creation_time: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplaySpec {
    pub replay_name: String,
    pub replay_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The archive's ARN.
    pub event_source_arn: String,
    /// `{Arn, FilterArns}`.
    pub destination: Value,
    pub event_start_time: f64,
    pub event_end_time: f64,
    /// STARTING, RUNNING, CANCELLING, COMPLETED, CANCELLED, FAILED.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub replay_start_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_end_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_last_replayed_time: Option<f64>,
}

impl ReplaySpec {
    /// The rule ARNs the replay is limited to (empty: every rule).
    pub fn filter_arns(&self) -> Vec<&str> {
        self.destination
            .get("FilterArns")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "STARTING" | "RUNNING" | "CANCELLING")
    }
}

/// The replays running on this node, by name: set to cancel one.
#[derive(Default)]
pub struct Running(Mutex<HashMap<String, Arc<AtomicBool>>>);

impl Running {
    /// Ask a running replay to stop; `false` when it does not run here.
    pub fn cancel(&self, name: &str) -> bool {
        match self.0.lock().unwrap().get(name) {
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

/// The archive rows for a batch read from the log: each event of a bus
/// with archives, for each archive whose pattern it matches (replayed and
/// scheduled events excluded).
pub fn rows_for<'a>(
    buses: &EventBuses,
    batch: impl IntoIterator<Item = &'a Logged>,
) -> Vec<(String, f64, String)> {
    let view = buses.view();
    if view.archives.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for ev in batch {
        if ev.rule.is_some() {
            continue;
        }
        let arn = buses.bus_arn(&ev.bus);
        let archives: Vec<_> = view
            .archives
            .values()
            .filter(|(a, _)| a.event_source_arn == arn)
            .collect();
        if archives.is_empty() {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(&ev.event) else {
            continue;
        };
        if event.get("replay-name").is_some() {
            continue;
        }
        for (a, pattern) in archives {
            if pattern.as_ref().is_none_or(|p| p.matches(&event)) {
                rows.push((a.archive_name.clone(), ev.received, ev.event.clone()));
            }
        }
    }
    rows
}

/// Drop what archives hold past their retention.
pub async fn purge(buses: &EventBuses) {
    let now = crate::esm::spec::now_secs();
    for (a, _) in buses.view().archives.values() {
        if a.retention_days > 0 {
            let before = now - f64::from(a.retention_days) * 86_400.0;
            buses.log.purge_archive(&a.archive_name, before).await;
        }
    }
}

/// `"replay-name"` added to an event's JSON text (first, as a field).
fn marked(event: &str, name: &str) -> String {
    let name = Value::String(name.to_string()).to_string();
    match event.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"replay-name\":{name}}}"),
        Some(rest) => format!("{{\"replay-name\":{name},{rest}"),
        None => event.to_string(),
    }
}

impl EventBuses {
    /// Run a stored replay (its state `STARTING`) to its end.
    pub fn run_replay(self: &Arc<Self>, spec: ReplaySpec) {
        let cancel = Arc::new(AtomicBool::new(false));
        self.replays
            .0
            .lock()
            .unwrap()
            .insert(spec.replay_name.clone(), cancel.clone());
        let buses = self.clone();
        tokio::spawn(async move {
            let name = spec.replay_name.clone();
            let outcome = buses.replay(spec.clone(), &cancel).await;
            buses.replays.0.lock().unwrap().remove(&name);
            let mut done = spec;
            done.replay_end_time = Some(crate::esm::spec::now_secs());
            match outcome {
                Ok((last, cancelled)) => {
                    done.event_last_replayed_time = last;
                    done.state = if cancelled { "CANCELLED" } else { "COMPLETED" }.into();
                }
                Err(e) => {
                    tracing::error!(replay = %name, error = %e, "replay failed");
                    done.state = "FAILED".into();
                    done.state_reason = Some(e);
                }
            }
            tracing::info!(replay = %name, state = %done.state, "replay ended");
            buses.save_replay(&done).await;
        });
    }

    /// Store a replay's state and re-read.
    pub async fn save_replay(&self, spec: &ReplaySpec) {
        let _changing = self.lock().await;
        let text = serde_json::to_string(spec).expect("a replay serializes");
        if let Err(e) = self
            .store()
            .put_bus_resource(REPLAY, &spec.replay_name, text)
            .await
        {
            tracing::error!(replay = %spec.replay_name, error = %e, "storing the replay's state failed");
        }
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "re-reading the buses failed");
        }
    }

    /// Mark replays that were running when this node stopped as failed.
    pub async fn fail_interrupted_replays(&self) {
        let stale: Vec<ReplaySpec> = self
            .view()
            .replays
            .values()
            .filter(|r| r.is_running())
            .map(|r| (**r).clone())
            .collect();
        for mut r in stale {
            r.state = "FAILED".into();
            r.state_reason = Some("interrupted by a restart".into());
            self.save_replay(&r).await;
        }
    }

    /// Send the archive's events in the time range to the destination bus.
    /// Returns the last replayed event's time and whether it was cancelled.
    async fn replay(
        &self,
        mut spec: ReplaySpec,
        cancel: &AtomicBool,
    ) -> Result<(Option<f64>, bool), String> {
        let archive = spec
            .event_source_arn
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let bus = super::spec::bus_name(spec.destination.get("Arn").and_then(Value::as_str));
        spec.state = "RUNNING".into();
        self.save_replay(&spec).await;
        let mut after: Option<String> = None;
        let mut last = None;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Ok((last, true));
            }
            let page = self
                .log
                .archived(
                    &archive,
                    spec.event_start_time,
                    spec.event_end_time,
                    after.as_deref(),
                    REPLAY_BATCH,
                )
                .await?;
            if !page.events.is_empty() {
                let now = crate::esm::spec::now_secs();
                let events = page
                    .events
                    .iter()
                    .map(|e| NewEvent {
                        bus: bus.clone(),
                        rule: None,
                        event: marked(e, &spec.replay_name),
                        received: now,
                    })
                    .collect();
                self.log.append(events).await?;
                last = Some(now);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok((last, false)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replayed_events_are_marked() {
        assert_eq!(
            super::marked(r#"{"id":"1"}"#, "r1"),
            r#"{"replay-name":"r1","id":"1"}"#
        );
        assert_eq!(super::marked("{}", "r1"), r#"{"replay-name":"r1"}"#);
    }
}
