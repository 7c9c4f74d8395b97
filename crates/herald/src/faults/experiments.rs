//! Experiments, in FIS's shapes (templates are [`super::template`]'s).
//!
//! Starting a template makes an experiment
//! whose actions run on a schedule fixed at the start: an action begins when
//! every action it `startAfter`s has ended, and lasts its `duration` (an
//! instant action, such as closing connections, ends as it begins). While an
//! action runs its effect is an [`Injection`](super::Injection); the
//! experiment completes when the last action ends, or is stopped
//! (`StopExperiment`: running actions `stopped`, pending ones `cancelled`).
//! An experiment whose targets are not found fails before it acts.
//!
//! Kept in memory on the node that served the request: templates until
//! deleted (at most [`MAX_TEMPLATES`]), experiments until
//! [`MAX_EXPERIMENTS`] more have been started after them.

use super::actions::{self, ActionSpec};
use super::template::{invalid, new_id, not_found, now, schedule, select};
pub use super::template::{template_from_request, FisError};
use super::{Effect, Faults, Injection};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const MAX_TEMPLATES: usize = 1_000;
pub const MAX_EXPERIMENTS: usize = 1_000;

/// What experiments act on, as the server has them.
pub trait Host: Send + Sync {
    fn function_exists(&self, arn: &str) -> bool;
    fn api_exists(&self, arn: &str) -> bool;
    fn namespace_exists(&self, arn: &str) -> bool;
    /// Close `percentage` of the API's WebSocket connections; how many.
    fn close_connections(&self, api_arn: &str, percentage: f64) -> usize;
}

struct Running {
    json: Value,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

#[derive(Default)]
pub struct Experiments {
    templates: Mutex<BTreeMap<String, Value>>,
    experiments: Mutex<BTreeMap<String, Running>>,
    /// Experiment ids in start order, for eviction.
    order: Mutex<std::collections::VecDeque<String>>,
}

impl Experiments {
    pub fn create_template(&self, template: Value) -> Result<Value, FisError> {
        let mut t = self.templates.lock().unwrap();
        if t.len() >= MAX_TEMPLATES {
            return Err(FisError {
                kind: "ServiceQuotaExceededException",
                message: format!("At most {MAX_TEMPLATES} experiment templates"),
            });
        }
        let id = template["id"].as_str().unwrap_or_default().to_string();
        t.insert(id, template.clone());
        Ok(template)
    }

    pub fn template(&self, id: &str) -> Result<Value, FisError> {
        self.templates
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(format!("Experiment template {id} not found")))
    }

    pub fn templates(&self) -> Vec<Value> {
        self.templates.lock().unwrap().values().cloned().collect()
    }

    pub fn delete_template(&self, id: &str) -> Result<Value, FisError> {
        self.templates
            .lock()
            .unwrap()
            .remove(id)
            .ok_or_else(|| not_found(format!("Experiment template {id} not found")))
    }

    pub fn experiment(&self, id: &str) -> Result<Value, FisError> {
        self.experiments
            .lock()
            .unwrap()
            .get(id)
            .map(|r| r.json.clone())
            .ok_or_else(|| not_found(format!("Experiment {id} not found")))
    }

    pub fn experiments(&self) -> Vec<Value> {
        let order = self.order.lock().unwrap().clone();
        let map = self.experiments.lock().unwrap();
        order
            .iter()
            .rev()
            .filter_map(|id| map.get(id).map(|r| r.json.clone()))
            .collect()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Value)) {
        if let Some(r) = self.experiments.lock().unwrap().get_mut(id) {
            f(&mut r.json);
        }
    }

    /// `StopExperiment`: the runner stops its actions and says `stopped`.
    pub fn stop(&self, id: &str) -> Result<Value, FisError> {
        let mut map = self.experiments.lock().unwrap();
        let r = map
            .get_mut(id)
            .ok_or_else(|| not_found(format!("Experiment {id} not found")))?;
        if let Some(tx) = r.stop.take() {
            let _ = tx.send(true);
            r.json["state"] = json!({"status": "stopping", "reason": "Experiment is stopping."});
        }
        Ok(r.json.clone())
    }
}

/// `StartExperiment`: the experiment, running, once the actions that start
/// at once are in force (a call made after the answer meets them).
pub async fn start(
    faults: &Arc<Faults>,
    host: Arc<dyn Host>,
    template_id: &str,
    tags: Option<Value>,
    region: &str,
    account: &str,
) -> Result<Value, FisError> {
    let template = faults.experiments.template(template_id)?;
    let acts = template["actions"].as_object().cloned().unwrap_or_default();
    let plan = schedule(&acts).map_err(invalid)?;
    let id = new_id("EXP");
    let now = now();
    let mut actions_json = Map::new();
    for (name, a) in &acts {
        let mut a = a.clone();
        a["state"] = json!({"status": "pending", "reason": "Initial state"});
        actions_json.insert(name.clone(), a);
    }
    let json = json!({
        "id": id,
        "arn": format!("arn:aws:fis:{region}:{account}:experiment/{id}"),
        "experimentTemplateId": template_id,
        "roleArn": template["roleArn"],
        "state": {"status": "running", "reason": "Experiment is running."},
        "targets": template["targets"],
        "actions": actions_json,
        "stopConditions": template["stopConditions"],
        "creationTime": now,
        "startTime": now,
        "tags": tags.unwrap_or(json!({})),
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    {
        let mut map = faults.experiments.experiments.lock().unwrap();
        let mut order = faults.experiments.order.lock().unwrap();
        while order.len() >= MAX_EXPERIMENTS {
            // The oldest that has ended; a running one is never dropped.
            let Some(pos) = order
                .iter()
                .position(|e| map.get(e).is_none_or(|r| r.stop.is_none()))
            else {
                return Err(FisError {
                    kind: "ServiceQuotaExceededException",
                    message: format!("At most {MAX_EXPERIMENTS} experiments at once"),
                });
            };
            if let Some(old) = order.remove(pos) {
                map.remove(&old);
            }
        }
        map.insert(
            id.clone(),
            Running {
                json: json.clone(),
                stop: Some(tx),
            },
        );
        order.push_back(id.clone());
    }
    tracing::warn!(experiment = %id, template = %template_id, "fault injection experiment started");
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(run(
        faults.clone(),
        host,
        id.clone(),
        template,
        plan,
        rx,
        ready_tx,
    ));
    let _ = ready.await;
    faults.experiments.experiment(&id)
}

/// The targets an action acts on, resolved now; an error fails the
/// experiment.
fn resolve(
    host: &dyn Host,
    template: &Value,
    action: &Value,
    spec: &ActionSpec,
) -> Result<HashSet<String>, String> {
    let Some((key, rtype)) = spec.target else {
        return Ok(HashSet::new());
    };
    let name = action["targets"][key].as_str().unwrap_or_default();
    let t = &template["targets"][name];
    let arns: Vec<String> = t["resourceArns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    for arn in &arns {
        let exists = match rtype {
            actions::FUNCTION => host.function_exists(arn),
            actions::NAMESPACE => host.namespace_exists(arn),
            _ => host.api_exists(arn),
        };
        if !exists {
            return Err(format!("Target resolution failed: {arn} was not found"));
        }
    }
    Ok(select(&arns, t["selectionMode"].as_str().unwrap_or("ALL"))
        .into_iter()
        .collect())
}

fn effect(spec: &ActionSpec, params: &Map<String, Value>) -> Option<Effect> {
    let ms = |name, default| {
        Duration::from_millis(
            actions::number(params, name, 0.0, 900_000.0, Some(default)).unwrap_or(default) as u64,
        )
    };
    let prevent = actions::boolean(params, "preventExecution", true).unwrap_or(true);
    Some(match spec.id {
        "aws:lambda:invocation-add-delay" | "herald:appsync:handler-add-delay" => {
            Effect::InvocationDelay(ms("startupDelayMilliseconds", 1000.0))
        }
        "aws:lambda:invocation-error" | "herald:appsync:handler-error" => Effect::InvocationError {
            prevent_execution: prevent,
        },
        "aws:lambda:invocation-http-integration-response" => Effect::InvocationHttpResponse {
            prevent_execution: prevent,
            status: actions::number(params, "statusCode", 100.0, 599.0, Some(200.0))
                .unwrap_or(200.0) as u16,
            content_type: params
                .get("contentTypeHeader")
                .and_then(Value::as_str)
                .unwrap_or("text/plain")
                .to_string(),
        },
        "herald:engine:drop-messages" => Effect::EngineDrop,
        "herald:engine:delay-messages" => Effect::EngineDelay(ms("delayMilliseconds", 0.0)),
        _ => return None,
    })
}

async fn run(
    faults: Arc<Faults>,
    host: Arc<dyn Host>,
    id: String,
    template: Value,
    plan: BTreeMap<String, (Duration, Duration)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let started = tokio::time::Instant::now();
    let acts = template["actions"].as_object().cloned().unwrap_or_default();
    // Every moment something starts or ends, in order.
    let mut moments: Vec<(Duration, bool, String)> = Vec::new();
    for (name, (s, e)) in &plan {
        moments.push((*s, true, name.clone()));
        moments.push((*e, false, name.clone()));
    }
    // Ends before starts at the same moment (a startAfter chain hands over).
    moments.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let exps = &faults.experiments;
    let set_action = |name: &str, status: &str, reason: &str, time: Option<&str>| {
        exps.update(&id, |j| {
            let a = &mut j["actions"][name];
            a["state"] = json!({"status": status, "reason": reason});
            if let Some(t) = time {
                a[t] = json!(now());
            }
        });
    };
    let mut stopped = false;
    for (at, starting, name) in moments {
        if !at.is_zero() {
            // Everything that starts at once is in force.
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + at) => {}
            _ = stop.wait_for(|s| *s) => { stopped = true; }
        }
        if stopped {
            break;
        }
        let action = &acts[&name];
        let spec = actions::find(action["actionId"].as_str().unwrap_or_default())
            .expect("validated at creation");
        if !starting {
            faults.remove(&id, Some(&name));
            set_action(&name, "completed", "Action was completed.", Some("endTime"));
            continue;
        }
        let targets = match resolve(host.as_ref(), &template, action, spec) {
            Ok(t) => t,
            Err(reason) => {
                tracing::warn!(experiment = %id, action = %name, %reason, "fault injection experiment failed");
                faults.remove(&id, None);
                set_action(&name, "failed", &reason, Some("startTime"));
                exps.update(&id, |j| {
                    j["state"] = json!({"status": "failed", "reason": reason});
                    j["endTime"] = json!(now());
                });
                finish(exps, &id);
                return;
            }
        };
        set_action(&name, "running", "Action is running.", Some("startTime"));
        let params = action["parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let percentage = actions::number(&params, "invocationPercentage", 1.0, 100.0, Some(100.0))
            .and_then(|p| {
                if params.contains_key("percentage") {
                    actions::number(&params, "percentage", 1.0, 100.0, Some(100.0))
                } else {
                    Ok(p)
                }
            })
            .unwrap_or(100.0);
        if spec.id == "herald:appsync:close-connections" {
            let closed: usize = targets
                .iter()
                .map(|api| host.close_connections(api, percentage))
                .sum();
            tracing::warn!(experiment = %id, action = %name, closed, "fault injection closed WebSocket connections");
        } else if let Some(effect) = effect(spec, &params) {
            faults.add(Injection {
                experiment: id.clone(),
                action: name.clone(),
                action_id: spec.id,
                effect,
                targets,
                percentage,
            });
        }
    }
    faults.remove(&id, None);
    if stopped {
        for (name, _) in acts.iter() {
            let status = exps.experiment(&id).ok().and_then(|j| {
                j["actions"][name]["state"]["status"]
                    .as_str()
                    .map(str::to_string)
            });
            match status.as_deref() {
                Some("running") => {
                    set_action(name, "stopped", "Action was stopped.", Some("endTime"))
                }
                Some("pending") => set_action(name, "cancelled", "Experiment was stopped.", None),
                _ => {}
            }
        }
        exps.update(&id, |j| {
            j["state"] = json!({"status": "stopped", "reason": "Experiment was stopped."});
            j["endTime"] = json!(now());
        });
    } else {
        exps.update(&id, |j| {
            j["state"] = json!({"status": "completed", "reason": "Experiment completed."});
            j["endTime"] = json!(now());
        });
    }
    tracing::warn!(experiment = %id, stopped, "fault injection experiment ended");
    finish(exps, &id);
}

/// The experiment can no longer be stopped.
fn finish(exps: &Experiments, id: &str) {
    if let Some(r) = exps.experiments.lock().unwrap().get_mut(id) {
        r.stop = None;
    }
}
