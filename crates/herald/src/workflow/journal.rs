//! Durable standard executions: the journal record each transition writes
//! to the store, and the resumption of running executions after a restart
//! (see the module documentation of [`super`] for the contract).

use super::history::History;
use super::run::{Journal, Resume};
use super::{Execution, Failure, Outcome, Workflows};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};

impl Workflows {
    /// A stored record with its history read back.
    pub(super) async fn record_with_history(
        &self,
        arn: &str,
        text: &str,
    ) -> Result<Record, String> {
        let mut r: Record = serde_json::from_str(text).map_err(|e| e.to_string())?;
        r.history = self
            .store
            .workflow_history(arn)
            .await?
            .iter()
            .filter_map(|e| serde_json::from_str(e).ok())
            .collect();
        Ok(r)
    }

    /// Write a standard execution's journal record (`at`: where it is,
    /// while it runs).
    pub(super) async fn save_record(&self, exec: &Execution, at: Option<&Resume>) {
        let o = exec.outcome();
        let record = Record {
            arn: exec.arn.clone(),
            name: exec.name.clone(),
            machine: exec.machine_arn.clone(),
            input: exec.input.clone(),
            start: exec.start_date,
            status: o.status.to_string(),
            at: at.cloned(),
            output: o.output,
            error: o.failure.as_ref().map(|f| f.error.clone()),
            cause: o.failure.map(|f| f.cause),
            stop: o.stop_date,
            node: self.node.clone(),
            history: Vec::new(),
        };
        let text = serde_json::to_string(&record).expect("a record serializes");
        // Only the history events new since the last write are written.
        let (events, upto) = exec.history.unsaved();
        let mut delay = std::time::Duration::from_millis(50);
        for _ in 0..5 {
            match self
                .store
                .put_execution(
                    &exec.arn,
                    &exec.machine_arn,
                    o.status,
                    text.clone(),
                    events.clone(),
                )
                .await
            {
                Ok(()) => {
                    exec.history.saved_up_to(upto);
                    return;
                }
                Err(e) => {
                    tracing::warn!(execution = %exec.arn, error = %e, "writing the execution's journal failed; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        tracing::error!(execution = %exec.arn, "the execution's journal could not be written: a restart now would resume it from an earlier state");
    }

    /// After a restart: the stored executions back in memory, and the
    /// running ones this node owns (all of them with `all`, a single
    /// node's store) resumed where they were.
    pub async fn resume(self: &Arc<Self>, all: bool) -> Result<usize, String> {
        let mut resumed = 0;
        for (arn, text) in self.store.workflow_executions().await? {
            let r: Record = match self.record_with_history(&arn, &text).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(execution = %arn, error = %e, "a stored execution is not readable");
                    continue;
                }
            };
            let (exec, status) = execution_of(&r);
            // Another node's running execution stays with it (read from
            // the store when asked for); this node keeps what it finished
            // and what it resumes.
            let mine = all || r.node == self.node;
            if status == "RUNNING" && !mine {
                continue;
            }
            {
                let mut all_execs = self.executions.lock().unwrap();
                all_execs.by_arn.insert(exec.arn.clone(), exec.clone());
                if status != "RUNNING" {
                    all_execs.finished.push_back(exec.arn.clone());
                }
            }
            if status != "RUNNING" {
                continue;
            }
            let Some(machine) = self.machine(&r.machine) else {
                self.finish(
                    &exec,
                    Outcome {
                        status: "FAILED",
                        output: None,
                        failure: Some(Failure::new(
                            "States.Runtime",
                            "The state machine was deleted while the execution ran.",
                        )),
                        stop_date: Some(crate::esm::spec::now_secs()),
                    },
                );
                self.save_record(&exec, None).await;
                continue;
            };
            tracing::info!(execution = %exec.arn, state = ?r.at.as_ref().map(|a| &a.state), "resuming a standard execution");
            let me = self.clone();
            let e = exec.clone();
            let at = r.at.clone();
            let task = tokio::spawn(async move { me.complete(machine, e, at).await });
            *exec.abort.lock().unwrap() = Some(task.abort_handle());
            resumed += 1;
        }
        Ok(resumed)
    }
}

/// An execution as its journal record has it.
pub(super) fn execution_of(r: &Record) -> (Arc<Execution>, &'static str) {
    let status: &'static str = match r.status.as_str() {
        "RUNNING" => "RUNNING",
        "SUCCEEDED" => "SUCCEEDED",
        "TIMED_OUT" => "TIMED_OUT",
        "ABORTED" => "ABORTED",
        _ => "FAILED",
    };
    let exec = Arc::new(Execution {
        arn: r.arn.clone(),
        name: r.name.clone(),
        machine_arn: r.machine.clone(),
        input: r.input.clone(),
        start_date: r.start,
        outcome: Mutex::new(Outcome {
            status,
            output: r.output.clone(),
            failure: r
                .error
                .clone()
                .map(|e| Failure::new(e, r.cause.clone().unwrap_or_default())),
            stop_date: r.stop,
        }),
        history: Arc::new(History::restore(r.history.clone())),
        abort: Mutex::new(None),
    });
    (exec, status)
}

/// A standard execution's journal record, as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) arn: String,
    pub(super) name: String,
    pub(super) machine: String,
    pub(super) input: Value,
    pub(super) start: f64,
    pub(super) status: String,
    /// Where it is (while it runs).
    pub(super) at: Option<Resume>,
    pub(super) output: Option<Value>,
    pub(super) error: Option<String>,
    pub(super) cause: Option<String>,
    pub(super) stop: Option<f64>,
    /// The node running it.
    pub(super) node: String,
    /// Kept apart (`workflow_history`), appended as it grows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) history: Vec<Value>,
}

/// Journals to the store.
pub(super) struct StoreJournal<'a> {
    pub(super) workflows: &'a Workflows,
    pub(super) exec: &'a Execution,
}

impl Journal for StoreJournal<'_> {
    fn save<'a>(&'a self, at: &'a Resume) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(self.workflows.save_record(self.exec, Some(at)))
    }
}
