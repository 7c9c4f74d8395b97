//! Workflows: Step Functions state machines in the Amazon States Language,
//! with both query languages (JSONPath and JSONata) and workflow variables.
//!
//! Layout: [`definition`] (the language, checked at create time with AWS's
//! diagnostics; [`schema`]: the fields each state type takes), [`choice`]
//! (JSONPath `Choice` rules), [`intrinsics`]
//! (`States.Format`, ...), [`data`] (what a state reads and writes, and
//! variables), [`run`] (the interpreter), [`tasks`] (what a `Task` calls),
//! [`tokens`] (`.waitForTaskToken`), [`history`] (`GetExecutionHistory`),
//! `journal` (durable standard executions).
//! [`Workflows`] holds the state machines (in the store, so cluster nodes
//! share them) and this node's executions.
//!
//! **Executions** run on the node that started them. A `STANDARD`
//! execution is durable: before each state of its top machine runs, its
//! journal record (the state, its input, the variables; the new history
//! events appended beside it) is written to the store, and a node that restarts resumes its running
//! executions where they were (a `Wait` waits only what is left; a task
//! that had answered is not run again; one that had not runs again; a
//! `Parallel` or `Map` state runs again whole). `EXPRESS` executions run in
//! memory only, as AWS runs them. Finished executions are kept for
//! `DescribeExecution` ([`MAX_FINISHED`] in memory; standard ones in the
//! store too).

pub mod choice;
pub mod data;
pub mod definition;
pub mod history;
pub mod intrinsics;
mod journal;
pub mod run;
pub mod schema;
pub mod tasks;
pub mod tokens;

use crate::store::Store;
use definition::Definition;
use history::History;
use journal::{execution_of, Record, StoreJournal};
use run::{Resume, Runner, Tasks};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokens::Tokens;

/// The store's kind for state machines (notified as `bus/states/machine`).
pub const MACHINE: &str = "states/machine";
/// Finished executions kept for `DescribeExecution`, at most (the oldest
/// go first).
pub const MAX_FINISHED: usize = 10_000;
/// Executions running on this node at once, at most: past it
/// `StartExecution` answers `ExecutionLimitExceeded` (AWS's answer at its
/// own limit) rather than let memory grow without bound.
pub const MAX_RUNNING: usize = 100_000;

/// The state machines, once the server has them (an event source mapping
/// or an API made from the configuration file exists before them): weak,
/// set once, so a holder never keeps them alive.
pub type WorkflowsSlot = Arc<OnceLock<std::sync::Weak<Workflows>>>;

/// The workflows behind `slot`, if the server has set it and still runs.
pub fn running(slot: &WorkflowsSlot) -> Option<Arc<Workflows>> {
    slot.get().and_then(std::sync::Weak::upgrade)
}

/// Is `reference` a state machine's ARN? (A Herald extension wherever a
/// function is named, a mapping's `FunctionName` or a data source's
/// `lambdaFunctionArn`: the call starts an execution instead.)
pub fn is_state_machine(reference: &str) -> bool {
    reference.starts_with("arn:aws:states:") && reference.contains(":stateMachine:")
}

/// A failure: Step Functions' error name and cause.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// A state machine as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    pub name: String,
    pub state_machine_arn: String,
    pub definition: String,
    pub role_arn: String,
    /// `STANDARD` or `EXPRESS`.
    #[serde(rename = "type")]
    pub kind: String,
    pub creation_date: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_date: Option<f64>,
}

/// A state machine ready to run.
pub struct Machine {
    pub spec: MachineSpec,
    pub definition: Definition,
}

/// An execution's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: &'static str,
    pub output: Option<Value>,
    pub failure: Option<Failure>,
    pub stop_date: Option<f64>,
}

pub struct Execution {
    pub arn: String,
    pub name: String,
    pub machine_arn: String,
    pub input: Value,
    pub start_date: f64,
    pub outcome: Mutex<Outcome>,
    pub history: Arc<History>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Execution {
    pub fn outcome(&self) -> Outcome {
        self.outcome.lock().unwrap().clone()
    }
}

/// The state machines and this node's executions.
pub struct Workflows {
    pub region: String,
    pub account: String,
    /// This node's id: its standard executions' records carry it.
    node: String,
    store: Store,
    machines: RwLock<Arc<BTreeMap<String, Arc<Machine>>>>,
    executions: Mutex<Executions>,
    pub tokens: Arc<Tokens>,
    tasks: OnceLock<Arc<dyn Tasks>>,
    /// [`MAX_RUNNING`] (lower in tests).
    max_running: usize,
}

#[derive(Default)]
struct Executions {
    by_arn: BTreeMap<String, Arc<Execution>>,
    /// Finished ones, oldest first (evicted past [`MAX_FINISHED`]).
    finished: VecDeque<String>,
}

/// Why an execution could not start.
#[derive(Debug, PartialEq)]
pub enum StartError {
    NoMachine(String),
    Exists(String),
    NotSupported(String),
    /// [`MAX_RUNNING`] executions are running here.
    Limit,
}

impl Workflows {
    pub fn new(region: &str, account: &str, node: &str, store: Store) -> Workflows {
        Workflows {
            region: region.to_string(),
            account: account.to_string(),
            node: node.to_string(),
            store,
            machines: RwLock::default(),
            executions: Mutex::default(),
            tokens: Arc::default(),
            tasks: OnceLock::new(),
            max_running: MAX_RUNNING,
        }
    }

    /// What tasks call (set when the server starts).
    pub fn set_tasks(&self, tasks: Arc<dyn Tasks>) {
        let _ = self.tasks.set(tasks);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn machine_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            self.region, self.account
        )
    }

    pub fn machines(&self) -> Arc<BTreeMap<String, Arc<Machine>>> {
        self.machines.read().unwrap().clone()
    }

    /// A machine by ARN.
    pub fn machine(&self, arn: &str) -> Option<Arc<Machine>> {
        let name = arn.strip_prefix(&format!(
            "arn:aws:states:{}:{}:stateMachine:",
            self.region, self.account
        ))?;
        self.machines().get(name).cloned()
    }

    /// Re-read the state machines from the store; what could not be used.
    pub async fn reload(&self) -> Result<Vec<String>, String> {
        let mut problems = Vec::new();
        let mut map = BTreeMap::new();
        for (name, text) in self.store.bus_resources(MACHINE).await? {
            let spec: MachineSpec = match serde_json::from_str(&text) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("stored state machine {name}: {e}"));
                    continue;
                }
            };
            match definition::parse(&spec.definition) {
                Ok(definition) => {
                    map.insert(name, Arc::new(Machine { spec, definition }));
                }
                Err(d) => problems.push(format!(
                    "stored state machine {name}: {}",
                    d.first().map(|d| d.to_message()).unwrap_or_default()
                )),
            }
        }
        *self.machines.write().unwrap() = Arc::new(map);
        Ok(problems)
    }

    pub fn execution(&self, arn: &str) -> Option<Arc<Execution>> {
        self.executions.lock().unwrap().by_arn.get(arn).cloned()
    }

    /// An execution this node holds, or a standard one another node runs
    /// or ran (its journal in the shared store: as of its last transition).
    pub async fn find_execution(&self, arn: &str) -> Option<Arc<Execution>> {
        if let Some(e) = self.execution(arn) {
            return Some(e);
        }
        let text = self.store.workflow_execution(arn).await.ok()??;
        let record = self.record_with_history(arn, &text).await.ok()?;
        Some(execution_of(&record).0)
    }

    /// A machine's executions, newest first: this node's, and the standard
    /// ones in the store (on a shared store: every node's, as of their last
    /// transition).
    pub async fn executions_of(&self, machine_arn: &str) -> Vec<Arc<Execution>> {
        let mut v: Vec<Arc<Execution>> = self
            .executions
            .lock()
            .unwrap()
            .by_arn
            .values()
            .filter(|e| e.machine_arn == machine_arn)
            .cloned()
            .collect();
        match self.store.workflow_executions_of(machine_arn).await {
            Ok(rows) => {
                for (arn, text) in rows {
                    if v.iter().any(|e| e.arn == arn) {
                        continue;
                    }
                    if let Ok(r) = serde_json::from_str::<Record>(&text) {
                        v.push(execution_of(&r).0);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the stored executions failed"),
        }
        v.sort_by(|a, b| b.start_date.total_cmp(&a.start_date));
        v
    }

    fn runner(&self, machine: &Machine, exec: &Execution) -> Runner {
        Runner {
            tasks: self
                .tasks
                .get()
                .cloned()
                .unwrap_or_else(|| Arc::new(NoTasks)),
            tokens: self.tokens.clone(),
            history: exec.history.clone(),
            context: json!({
                "Execution": {"Id": exec.arn, "Input": exec.input, "Name": exec.name,
                              "RoleArn": machine.spec.role_arn,
                              "StartTime": crate::bus::event_time(exec.start_date),
                              "RedriveCount": 0},
                "StateMachine": {"Id": machine.spec.state_machine_arn, "Name": machine.spec.name},
            }),
            no_wait: false,
        }
    }

    fn new_execution(
        &self,
        machine: &Machine,
        name: Option<&str>,
        input: Value,
    ) -> Result<Arc<Execution>, StartError> {
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| crate::new_uuid().to_string());
        let kind = if machine.spec.kind == "EXPRESS" {
            "express"
        } else {
            "execution"
        };
        let arn = format!(
            "arn:aws:states:{}:{}:{kind}:{}:{name}",
            self.region, self.account, machine.spec.name
        );
        let exec = Arc::new(Execution {
            arn: arn.clone(),
            name,
            machine_arn: machine.spec.state_machine_arn.clone(),
            input,
            start_date: crate::esm::spec::now_secs(),
            outcome: Mutex::new(Outcome {
                status: "RUNNING",
                output: None,
                failure: None,
                stop_date: None,
            }),
            history: Arc::default(),
            abort: Mutex::new(None),
        });
        exec.history.push(
            "ExecutionStarted",
            "executionStartedEventDetails",
            json!({"input": exec.input.to_string(), "roleArn": machine.spec.role_arn}),
        );
        Ok(exec)
    }

    /// Run to the end (a standard execution from `resume` or its start,
    /// journaled) and record the outcome.
    async fn complete(&self, machine: Arc<Machine>, exec: Arc<Execution>, resume: Option<Resume>) {
        let runner = self.runner(&machine, &exec);
        let standard = machine.spec.kind != "EXPRESS";
        let journal = StoreJournal {
            workflows: self,
            exec: &exec,
        };
        let run = async {
            if standard {
                let at = resume.unwrap_or_else(|| Resume {
                    state: machine.definition.start_at.clone(),
                    input: exec.input.clone(),
                    vars: Map::new(),
                    entered: crate::esm::spec::now_secs(),
                });
                runner.top(&machine.definition, at, &journal).await
            } else {
                runner
                    .machine(
                        &machine.definition,
                        exec.input.clone(),
                        data::Vars::default(),
                        Map::new(),
                    )
                    .await
            }
        };
        let result = match machine.definition.timeout_seconds {
            Some(t) => {
                let left = (exec.start_date + t as f64 - crate::esm::spec::now_secs()).max(0.0);
                match tokio::time::timeout(std::time::Duration::from_secs_f64(left), run).await {
                    Ok(r) => r,
                    Err(_) => Err(Failure::new("States.Timeout", "The execution timed out.")),
                }
            }
            None => run.await,
        };
        let now = crate::esm::spec::now_secs();
        let outcome = match result {
            Ok(output) => {
                exec.history.push(
                    "ExecutionSucceeded",
                    "executionSucceededEventDetails",
                    json!({"output": output.to_string()}),
                );
                Outcome {
                    status: "SUCCEEDED",
                    output: Some(output),
                    failure: None,
                    stop_date: Some(now),
                }
            }
            Err(f) => {
                let timed_out =
                    f.error == "States.Timeout" && f.cause == "The execution timed out.";
                let (kind, key) = if timed_out {
                    ("ExecutionTimedOut", "executionTimedOutEventDetails")
                } else {
                    ("ExecutionFailed", "executionFailedEventDetails")
                };
                exec.history
                    .push(kind, key, json!({"error": f.error, "cause": f.cause}));
                Outcome {
                    status: if timed_out { "TIMED_OUT" } else { "FAILED" },
                    output: None,
                    failure: Some(f),
                    stop_date: Some(now),
                }
            }
        };
        self.finish(&exec, outcome);
        if standard {
            self.save_record(&exec, None).await;
        }
    }

    fn finish(&self, exec: &Arc<Execution>, outcome: Outcome) {
        {
            let mut o = exec.outcome.lock().unwrap();
            if o.status != "RUNNING" {
                return;
            }
            *o = outcome;
        }
        let mut all = self.executions.lock().unwrap();
        // Only what this node keeps (a synchronous express run is not kept).
        if !all.by_arn.contains_key(&exec.arn) {
            return;
        }
        all.finished.push_back(exec.arn.clone());
        while all.finished.len() > MAX_FINISHED {
            if let Some(old) = all.finished.pop_front() {
                all.by_arn.remove(&old);
            }
        }
    }

    /// `StartExecution`: runs in the background; the execution at once.
    pub fn start(
        self: &Arc<Self>,
        machine_arn: &str,
        name: Option<&str>,
        input: Value,
    ) -> Result<Arc<Execution>, StartError> {
        let machine = self
            .machine(machine_arn)
            .ok_or_else(|| StartError::NoMachine(machine_arn.to_string()))?;
        let exec = self.new_execution(&machine, name, input)?;
        {
            let mut all = self.executions.lock().unwrap();
            if let Some(old) = all.by_arn.get(&exec.arn) {
                // AWS: the same name and input, while it runs, is the same
                // execution.
                if old.input == exec.input
                    && machine.spec.kind != "EXPRESS"
                    && old.outcome().status == "RUNNING"
                {
                    return Ok(old.clone());
                }
                return Err(StartError::Exists(exec.arn.clone()));
            }
            if all.by_arn.len().saturating_sub(all.finished.len()) >= self.max_running {
                return Err(StartError::Limit);
            }
            all.by_arn.insert(exec.arn.clone(), exec.clone());
        }
        let me = self.clone();
        let e = exec.clone();
        let task = tokio::spawn(async move { me.complete(machine, e, None).await });
        *exec.abort.lock().unwrap() = Some(task.abort_handle());
        Ok(exec)
    }

    /// `StartSyncExecution`: an express machine, run to the end.
    pub async fn start_sync(
        &self,
        machine_arn: &str,
        name: Option<&str>,
        input: Value,
    ) -> Result<Arc<Execution>, StartError> {
        let machine = self
            .machine(machine_arn)
            .ok_or_else(|| StartError::NoMachine(machine_arn.to_string()))?;
        if machine.spec.kind != "EXPRESS" {
            return Err(StartError::NotSupported(format!(
                "This operation is not supported by this type of state machine: {machine_arn}"
            )));
        }
        let exec = self.new_execution(&machine, name, input)?;
        self.complete(machine, exec.clone(), None).await;
        Ok(exec)
    }

    /// Run an execution of any machine to its end, here (the benchmark's
    /// way to time standard executions without polling).
    pub async fn run(&self, machine_arn: &str, input: Value) -> Result<Arc<Execution>, StartError> {
        let machine = self
            .machine(machine_arn)
            .ok_or_else(|| StartError::NoMachine(machine_arn.to_string()))?;
        let exec = self.new_execution(&machine, None, input)?;
        self.complete(machine, exec.clone(), None).await;
        Ok(exec)
    }

    /// `StopExecution`: the run is dropped where it is (`ABORTED`).
    pub async fn stop(
        &self,
        exec: &Arc<Execution>,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> f64 {
        if let Some(stopped) = exec
            .outcome()
            .stop_date
            .filter(|_| exec.outcome().status != "RUNNING")
        {
            // Already closed: nothing to stop, nothing recorded.
            return stopped;
        }
        if let Some(h) = exec.abort.lock().unwrap().take() {
            h.abort();
        }
        let now = crate::esm::spec::now_secs();
        exec.history.push(
            "ExecutionAborted",
            "executionAbortedEventDetails",
            json!({"error": error.unwrap_or_default(), "cause": cause.unwrap_or_default()}),
        );
        self.finish(
            exec,
            Outcome {
                status: "ABORTED",
                output: None,
                failure: error.map(|e| Failure::new(e, cause.unwrap_or_default())),
                stop_date: Some(now),
            },
        );
        if !exec.arn.contains(":express:") {
            self.save_record(exec, None).await;
        }
        now
    }

    /// `TestState`: one state on an input, no waiting; the result, the
    /// next state, and what the state saw (for `inspectionLevel`).
    pub async fn test_state(
        &self,
        state: &definition::State,
        input: Value,
        variables: Map<String, Value>,
    ) -> (
        &'static str,
        Result<Value, Failure>,
        Option<String>,
        Map<String, Value>,
    ) {
        let history = Arc::new(History::default());
        let runner = Runner {
            tasks: self
                .tasks
                .get()
                .cloned()
                .unwrap_or_else(|| Arc::new(NoTasks)),
            tokens: self.tokens.clone(),
            history,
            context: json!({
                "Execution": {"Id": "arn:aws:states:test-state", "Input": input, "Name": "TestState"},
                "StateMachine": {"Id": "arn:aws:states:test-state", "Name": "TestState"},
            }),
            no_wait: true,
        };
        runner.test_one(state, input, variables).await
    }
}

/// Before the server hands over its task runner.
struct NoTasks;

impl Tasks for NoTasks {
    fn call<'a>(
        &'a self,
        resource: &'a str,
        _args: Value,
    ) -> futures_util::future::BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            Err(Failure::new(
                "States.Runtime",
                format!("{resource}: tasks are not available yet"),
            ))
        })
    }
}

impl crate::store::Reconciler for Workflows {
    fn prefix(&self) -> &'static str {
        "bus/states/"
    }

    fn reconcile<'a>(
        &'a self,
        _store: &'a Store,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, String>> + Send + 'a>>
    {
        Box::pin(self.reload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn running_executions_are_bounded() {
        let mut w = Workflows::new("us-east-1", "000000000000", "n1", Store::memory());
        w.max_running = 2;
        let w = Arc::new(w);
        let spec = MachineSpec {
            name: "slow".into(),
            state_machine_arn: w.machine_arn("slow"),
            definition: r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}"#.into(),
            role_arn: String::new(),
            kind: "STANDARD".into(),
            creation_date: 0.0,
            update_date: None,
        };
        w.store()
            .put_bus_resource(MACHINE, "slow", serde_json::to_string(&spec).unwrap())
            .await
            .unwrap();
        assert!(w.reload().await.unwrap().is_empty());
        let arn = spec.state_machine_arn.clone();
        let a = w.start(&arn, Some("a"), json!({})).unwrap();
        w.start(&arn, Some("b"), json!({})).unwrap();
        assert_eq!(
            w.start(&arn, Some("c"), json!({})).err(),
            Some(StartError::Limit)
        );
        // A stopped one makes room.
        w.stop(&a, None, None).await;
        assert!(w.start(&arn, Some("c"), json!({})).is_ok());
        // Stopping a closed execution records nothing more; its name is
        // not reused.
        let events = a.history.len();
        w.stop(&a, Some("again"), None).await;
        assert_eq!(a.history.len(), events);
        assert_eq!(a.outcome().status, "ABORTED");
        assert!(matches!(
            w.start(&arn, Some("a"), json!({})),
            Err(StartError::Exists(_))
        ));
    }
}
