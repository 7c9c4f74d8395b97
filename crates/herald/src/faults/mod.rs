//! Fault injection for users, as AWS Fault Injection Service (FIS) offers it
//! for Lambda: experiments that, for a while, delay or fail a percentage of
//! the invocations of chosen functions or replace their answers, and
//! Herald's own actions on its engine and its WebSocket connections. Users
//! test their systems against Herald's failures with it; the API is FIS's
//! (`admin::fis`), so the AWS CLI, SDKs and Terraform drive it.
//!
//! - [`actions`]: the catalogue (`ListActions`): each action's id, parameters
//!   and target resource type, and their validation.
//! - [`template`]: `CreateExperimentTemplate` checked, and the schedule.
//! - [`experiments`]: templates kept and experiments
//!   (`StartExperiment` ... `StopExperiment`): when an experiment runs, its
//!   actions become [`Injection`]s here until their `duration` ends or the
//!   experiment is stopped.
//!
//! # Contract with the code it touches
//! The hot paths ask [`Faults::on_invoke`] and [`Faults::on_engine_publish`]:
//! while nothing runs, that is one atomic load (no lock, no allocation).
//! While an injection runs, each call is rolled against its percentage
//! independently. Injections are per node: an experiment acts on the node
//! whose admin listener started it (as FIS acts in one region).
//!
//! Off unless enabled: a server with a configuration file refuses the FIS API
//! unless `[fault_injection] enabled = true`; the development mode (no file)
//! allows it.

pub mod actions;
pub mod experiments;
pub mod settings;
pub mod template;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use settings::FaultInjectionFile;

/// What one running action does, to the resources it resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `aws:lambda:invocation-add-delay`: wait before running.
    InvocationDelay(Duration),
    /// `aws:lambda:invocation-error`: the invocation fails (a function error).
    InvocationError { prevent_execution: bool },
    /// `aws:lambda:invocation-http-integration-response`: the answer becomes
    /// an HTTP integration response with this status.
    InvocationHttpResponse {
        prevent_execution: bool,
        status: u16,
        content_type: String,
    },
    /// `herald:engine:drop-messages`: publishes are not handed to the engine
    /// (other nodes miss them; this node's subscribers still get them).
    EngineDrop,
    /// `herald:engine:delay-messages`: publishes wait this long before the
    /// engine gets them.
    EngineDelay(Duration),
}

/// One running action.
#[derive(Debug)]
pub struct Injection {
    pub experiment: String,
    /// The action's name in the template.
    pub action: String,
    /// The action's id (`aws:lambda:invocation-error`), the metric's label.
    pub action_id: &'static str,
    pub effect: Effect,
    /// Resource ARNs it applies to (functions, APIs).
    pub targets: HashSet<String>,
    /// 1-100: the share of calls it applies to.
    pub percentage: f64,
}

impl Injection {
    fn roll(&self) -> bool {
        self.percentage >= 100.0 || rand::random::<f64>() * 100.0 < self.percentage
    }
}

/// What an invocation must do, by the injections that apply to it.
#[derive(Debug, Default, PartialEq)]
pub struct InvokePlan {
    pub delay: Option<Duration>,
    /// The answer to give instead of (or after) running.
    pub replace: Option<Replacement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    /// Skip running the function at all.
    pub prevent_execution: bool,
    /// The payload to answer with, and whether it is a function error.
    pub payload: bytes::Bytes,
    pub function_error: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

/// The server's running injections and its FIS resources.
pub struct Faults {
    enabled: AtomicBool,
    /// How many injections run: the hot paths' first (and usually only) check.
    running: AtomicUsize,
    injections: RwLock<Vec<Arc<Injection>>>,
    pub experiments: experiments::Experiments,
    injected: Family<ActionLabels, Counter>,
    active: Gauge,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            enabled: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            injections: RwLock::default(),
            experiments: experiments::Experiments::default(),
            injected: Family::default(),
            active: Gauge::default(),
        }
    }
}

impl Faults {
    pub fn new(enabled: bool) -> Faults {
        let f = Faults::default();
        f.enabled.store(enabled, Ordering::Relaxed);
        f
    }

    /// Whether no injection runs (one atomic load): callers skip building
    /// what they would ask [`Faults::on_invoke`] with.
    pub fn idle(&self) -> bool {
        self.running.load(Ordering::Acquire) == 0
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "fault_injections",
            "Calls a fault injection experiment acted on, by action id",
            self.injected.clone(),
        );
        r.register(
            "fault_injection_actions_running",
            "Fault injection actions running on this node",
            self.active.clone(),
        );
    }

    /// Start applying `injection` (until [`Faults::remove`]).
    pub fn add(&self, injection: Injection) {
        tracing::warn!(
            experiment = %injection.experiment,
            action = %injection.action,
            action_id = injection.action_id,
            targets = injection.targets.len(),
            percentage = injection.percentage,
            "fault injection started"
        );
        self.injections.write().unwrap().push(Arc::new(injection));
        self.running.fetch_add(1, Ordering::Release);
        self.active.inc();
    }

    /// Stop the injections of `experiment` (all its actions, or one).
    pub fn remove(&self, experiment: &str, action: Option<&str>) {
        let mut list = self.injections.write().unwrap();
        let before = list.len();
        list.retain(|i| {
            let hit = i.experiment == experiment && action.is_none_or(|a| a == i.action);
            if hit {
                tracing::warn!(experiment = %i.experiment, action = %i.action, "fault injection ended");
            }
            !hit
        });
        let removed = before - list.len();
        self.running.fetch_sub(removed, Ordering::Release);
        self.active.dec_by(removed as i64);
    }

    fn matching(&self, arn: &str, engine: bool) -> Vec<Arc<Injection>> {
        self.injections
            .read()
            .unwrap()
            .iter()
            .filter(|i| {
                let for_engine = matches!(i.effect, Effect::EngineDrop | Effect::EngineDelay(_));
                for_engine == engine && i.targets.contains(arn)
            })
            .cloned()
            .collect()
    }

    fn count(&self, i: &Injection) {
        self.injected
            .get_or_create(&ActionLabels {
                action: i.action_id,
            })
            .inc();
    }

    /// What an invocation of the function `arn` must do. Cheap when nothing
    /// runs.
    pub fn on_invoke(&self, arn: &str) -> InvokePlan {
        let mut plan = InvokePlan::default();
        if self.running.load(Ordering::Acquire) == 0 {
            return plan;
        }
        for i in self.matching(arn, false) {
            if !i.roll() {
                continue;
            }
            self.count(&i);
            tracing::info!(function = %arn, experiment = %i.experiment, action = %i.action, "fault injected into an invocation");
            match &i.effect {
                Effect::InvocationDelay(d) => {
                    plan.delay = Some(plan.delay.unwrap_or_default() + *d);
                }
                Effect::InvocationError { prevent_execution } if plan.replace.is_none() => {
                    let payload = serde_json::json!({
                        "errorType": "FaultInjectionError",
                        "errorMessage": format!(
                            "Invocation failed by fault injection experiment {} (action {})",
                            i.experiment, i.action
                        ),
                    });
                    plan.replace = Some(Replacement {
                        prevent_execution: *prevent_execution,
                        payload: payload.to_string().into(),
                        function_error: true,
                    });
                }
                Effect::InvocationHttpResponse {
                    prevent_execution,
                    status,
                    content_type,
                } if plan.replace.is_none() => {
                    let payload = serde_json::json!({
                        "statusCode": status,
                        "headers": {"Content-Type": content_type},
                        "body": "",
                        "isBase64Encoded": false,
                    });
                    plan.replace = Some(Replacement {
                        prevent_execution: *prevent_execution,
                        payload: payload.to_string().into(),
                        function_error: false,
                    });
                }
                _ => {}
            }
        }
        plan
    }

    /// What a publish of the API `arn` to the engine must do: `None` to drop
    /// it, else how long to wait first. Cheap when nothing runs.
    pub fn on_engine_publish(&self, arn: &str) -> Option<Duration> {
        if self.running.load(Ordering::Acquire) == 0 {
            return Some(Duration::ZERO);
        }
        let mut wait = Duration::ZERO;
        for i in self.matching(arn, true) {
            if !i.roll() {
                continue;
            }
            self.count(&i);
            match i.effect {
                Effect::EngineDrop => return None,
                Effect::EngineDelay(d) => wait += d,
                _ => {}
            }
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injection(effect: Effect, percentage: f64) -> Injection {
        Injection {
            experiment: "EXP1".into(),
            action: "a".into(),
            action_id: "test",
            effect,
            targets: ["arn:f".to_string()].into_iter().collect(),
            percentage,
        }
    }

    #[test]
    fn nothing_running_is_nothing_done() {
        let f = Faults::new(true);
        assert_eq!(f.on_invoke("arn:f"), InvokePlan::default());
        assert_eq!(f.on_engine_publish("arn:f"), Some(Duration::ZERO));
    }

    #[test]
    fn invocation_effects_apply_to_their_targets_until_removed() {
        let f = Faults::new(true);
        f.add(injection(
            Effect::InvocationDelay(Duration::from_millis(5)),
            100.0,
        ));
        f.add(injection(
            Effect::InvocationError {
                prevent_execution: true,
            },
            100.0,
        ));
        let plan = f.on_invoke("arn:f");
        assert_eq!(plan.delay, Some(Duration::from_millis(5)));
        let r = plan.replace.unwrap();
        assert!(r.prevent_execution && r.function_error);
        assert_eq!(f.on_invoke("arn:other"), InvokePlan::default());
        f.remove("EXP1", None);
        assert_eq!(f.on_invoke("arn:f"), InvokePlan::default());
    }

    #[test]
    fn a_percentage_is_a_share_of_calls() {
        let f = Faults::new(true);
        f.add(injection(Effect::EngineDrop, 30.0));
        let dropped = (0..10_000)
            .filter(|_| f.on_engine_publish("arn:f").is_none())
            .count();
        assert!((2_500..3_500).contains(&dropped), "{dropped} of 10,000");
    }
}
