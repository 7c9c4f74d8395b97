//! The interpreter: runs a checked [`Definition`] on an input, state by
//! state, with `Retry` and `Catch`, `Parallel` branches and `Map`
//! iterations as concurrent futures, and records the history events AWS
//! records (`TaskStateEntered`, `TaskScheduled`, ...).
//!
//! Tasks go through [`Tasks`] (functions, HTTP, the event bus, channels);
//! a `.waitForTaskToken` task waits for `SendTaskSuccess`/`SendTaskFailure`
//! on its token (see [`super::tokens`]).

mod branches;
mod flow;
mod task;

use super::data::{filter, result_path, runtime, Scope, Vars};
use super::definition::{Catcher, Definition, Kind, Lang, Retrier, State};
use super::history::History;
use super::intrinsics;
use super::tokens::Tokens;
use super::Failure;
use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait a `Wait` state or a retry may ask for (a year).
const MAX_WAIT_SECS: f64 = 31_536_000.0;
/// `Map` iterations at once when `MaxConcurrency` is 0 (unlimited).
const MAP_DEFAULT_CONCURRENCY: usize = 40;

/// What a `Task` state can call.
pub trait Tasks: Send + Sync {
    /// Run `resource` (without `.sync`/`.waitForTaskToken`) with `args`.
    fn call<'a>(&'a self, resource: &'a str, args: Value) -> BoxFuture<'a, Result<Value, Failure>>;
}

/// Where a durable execution is: the state about to run, its input, the
/// variables, when the state was entered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    pub state: String,
    pub input: Value,
    pub vars: Map<String, Value>,
    pub entered: f64,
}

/// Where a durable execution writes each transition.
pub trait Journal: Send + Sync {
    /// `at` is about to run; return once it is stored (or the store failed
    /// and said so: the execution goes on).
    fn save<'a>(&'a self, at: &'a Resume) -> BoxFuture<'a, ()>;
}

/// One execution's (or `TestState`'s) surroundings.
pub struct Runner {
    pub tasks: Arc<dyn Tasks>,
    pub tokens: Arc<Tokens>,
    pub history: Arc<History>,
    /// `$$` without the per-state parts: `Execution`, `StateMachine`.
    pub context: Value,
    /// `TestState`: a `Wait` does not wait.
    pub no_wait: bool,
}

/// `TestState`'s answer: status, output or failure, next state, variables.
pub type Tested = (
    &'static str,
    Result<Value, Failure>,
    Option<String>,
    Map<String, Value>,
);

/// A state's body done: output, next state, variables to assign.
type Done = (Value, Option<String>, Map<String, Value>);

/// A state's outcome: its output and where to go next (`None`: the
/// machine ends).
struct Step {
    output: Value,
    next: Option<String>,
}

fn now_text() -> String {
    crate::bus::event_time(crate::esm::spec::now_secs())
}

/// Does an error name match a retrier's or catcher's `ErrorEquals`?
pub fn matches(list: &[String], error: &str) -> bool {
    list.iter().any(|e| {
        e == error
            || (e == "States.ALL" && error != "States.Runtime")
            || (e == "States.TaskFailed"
                && error != "States.Timeout"
                && !error.starts_with("States.Runtime"))
    })
}

impl Runner {
    /// Run a machine (the top one, a branch, an iteration) from its start.
    pub fn machine<'a>(
        &'a self,
        def: &'a Definition,
        input: Value,
        vars: Vars,
        extra: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let mut vars = vars;
            let mut current = def.start_at.clone();
            let mut input = input;
            loop {
                let state = def
                    .states
                    .get(&current)
                    .ok_or_else(|| runtime(format!("no state {current}")))?;
                let step = self
                    .state(
                        state,
                        input,
                        &mut vars,
                        &extra,
                        crate::esm::spec::now_secs(),
                    )
                    .await?;
                match step.next {
                    Some(n) => {
                        current = n;
                        input = step.output;
                    }
                    None => return Ok(step.output),
                }
            }
        })
    }

    /// `TestState`: the state once, no retry (a matching retrier is
    /// reported as `RETRIABLE`), a matching catcher applied
    /// (`CAUGHT_ERROR`). The status, the output or failure, the next state
    /// and the variables after it.
    pub async fn test_one(
        &self,
        state: &State,
        input: Value,
        variables: Map<String, Value>,
    ) -> (
        &'static str,
        Result<Value, Failure>,
        Option<String>,
        Map<String, Value>,
    ) {
        let mut vars = Vars {
            own: variables,
            outer: Arc::default(),
        };
        let context = self.context(state, 0, &Map::new());
        let now = crate::esm::spec::now_secs();
        match self.body(state, &input, &vars, &context, now).await {
            Ok((output, next, assigned)) => {
                vars.own.extend(assigned);
                ("SUCCEEDED", Ok(output), next, vars.own)
            }
            Err(f) => {
                if state
                    .retry
                    .iter()
                    .any(|r| matches(&r.error_equals, &f.error))
                {
                    return ("RETRIABLE", Err(f), None, vars.own);
                }
                let Some(c) = state
                    .catch
                    .iter()
                    .find(|c| matches(&c.error_equals, &f.error))
                else {
                    return ("FAILED", Err(f), None, vars.own);
                };
                match self.caught(state, c, &input, &vars, &context, &f) {
                    Ok((output, assigned)) => {
                        vars.own.extend(assigned);
                        ("CAUGHT_ERROR", Ok(output), Some(c.next.clone()), vars.own)
                    }
                    Err(f2) => ("FAILED", Err(f2), None, vars.own),
                }
            }
        }
    }

    /// Run the top machine of a durable execution from `at`, journaling
    /// each state before it runs: after a crash the execution resumes at
    /// the state that was running, with its input and variables (a task
    /// that had not answered runs again; one that had is not repeated).
    pub async fn top(
        &self,
        def: &Definition,
        mut at: Resume,
        journal: &dyn Journal,
    ) -> Result<Value, Failure> {
        let mut vars = Vars {
            own: at.vars.clone(),
            outer: Arc::default(),
        };
        loop {
            journal.save(&at).await;
            let state = def
                .states
                .get(&at.state)
                .ok_or_else(|| runtime(format!("no state {}", at.state)))?;
            let step = self
                .state(state, at.input.clone(), &mut vars, &Map::new(), at.entered)
                .await?;
            match step.next {
                Some(next) => {
                    at = Resume {
                        state: next,
                        input: step.output,
                        vars: vars.own.clone(),
                        entered: crate::esm::spec::now_secs(),
                    }
                }
                None => return Ok(step.output),
            }
        }
    }

    fn context(&self, state: &State, retry: u32, extra: &Map<String, Value>) -> Value {
        let mut c = self.context.clone();
        if let Some(o) = c.as_object_mut() {
            o.insert(
                "State".into(),
                json!({"Name": state.name, "EnteredTime": now_text(), "RetryCount": retry}),
            );
            for (k, v) in extra {
                o.insert(k.clone(), v.clone());
            }
            let waits = state
                .body
                .get("Resource")
                .and_then(Value::as_str)
                .is_some_and(|r| r.ends_with(".waitForTaskToken"));
            if waits {
                o.insert(
                    "Task".into(),
                    json!({"Token": crate::new_uuid().simple().to_string()}),
                );
            }
        }
        c
    }

    /// One state, with its retries and catchers.
    async fn state(
        &self,
        state: &State,
        input: Value,
        vars: &mut Vars,
        extra: &Map<String, Value>,
        entered: f64,
    ) -> Result<Step, Failure> {
        let kind = kind_name(state.kind);
        self.history.push(
            &format!("{kind}StateEntered"),
            "stateEnteredEventDetails",
            json!({"name": state.name, "input": input.to_string()}),
        );
        let mut attempts: Vec<u32> = vec![0; state.retry.len()];
        let mut retry_count = 0;
        loop {
            let context = self.context(state, retry_count, extra);
            match self.body(state, &input, vars, &context, entered).await {
                Ok((output, next, assigned)) => {
                    for (k, v) in assigned {
                        vars.own.insert(k, v);
                    }
                    if state.kind != Kind::Fail {
                        self.history.push(
                            &format!("{kind}StateExited"),
                            "stateExitedEventDetails",
                            json!({"name": state.name, "output": output.to_string()}),
                        );
                    }
                    return Ok(Step { output, next });
                }
                Err(f) => {
                    if let Some(delay) = retry_delay(&state.retry, &mut attempts, &f.error) {
                        retry_count += 1;
                        if !self.no_wait {
                            tokio::time::sleep(delay).await;
                        }
                        continue;
                    }
                    let Some(c) = state
                        .catch
                        .iter()
                        .find(|c| matches(&c.error_equals, &f.error))
                    else {
                        return Err(f);
                    };
                    let (output, assigned) = self.caught(state, c, &input, vars, &context, &f)?;
                    for (k, v) in assigned {
                        vars.own.insert(k, v);
                    }
                    self.history.push(
                        &format!("{kind}StateExited"),
                        "stateExitedEventDetails",
                        json!({"name": state.name, "output": output.to_string()}),
                    );
                    return Ok(Step {
                        output,
                        next: Some(c.next.clone()),
                    });
                }
            }
        }
    }

    /// A catcher's output: JSONPath puts `{"Error", "Cause"}` at its
    /// `ResultPath` in the raw input; JSONata evaluates its `Output` with
    /// `$states.errorOutput`.
    fn caught(
        &self,
        state: &State,
        c: &Catcher,
        input: &Value,
        vars: &Vars,
        context: &Value,
        f: &Failure,
    ) -> Result<(Value, Map<String, Value>), Failure> {
        let error_output = json!({"Error": f.error, "Cause": f.cause});
        let scope = Scope {
            input,
            result: None,
            error_output: Some(&error_output),
            context,
            vars,
        };
        match state.lang {
            Lang::JsonPath => {
                let out = result_path(&c.body, input, error_output.clone())?;
                let assigned = scope.assign(state.lang, c.body.get("Assign"), &error_output)?;
                Ok((out, assigned))
            }
            Lang::Jsonata => {
                let out = match c.body.get("Output") {
                    Some(o) => scope.jsonata(o, "Output")?,
                    None => error_output.clone(),
                };
                let assigned = scope.assign(state.lang, c.body.get("Assign"), &error_output)?;
                Ok((out, assigned))
            }
        }
    }

    /// The state itself: output, next state, variables to assign.
    async fn body(
        &self,
        state: &State,
        raw: &Value,
        vars: &Vars,
        context: &Value,
        entered: f64,
    ) -> Result<Done, Failure> {
        let b = &state.body;
        let scope = Scope {
            input: raw,
            result: None,
            error_output: None,
            context,
            vars,
        };
        let jp = state.lang == Lang::JsonPath;
        let effective = if jp {
            filter(&scope, b, "InputPath", raw)?
        } else {
            raw.clone()
        };
        match state.kind {
            Kind::Fail => {
                let text = |field: &str, path: &str| -> Result<String, Failure> {
                    Ok(match (b.get(field), b.get(path)) {
                        (Some(v), _) if jp => v.as_str().unwrap_or_default().to_string(),
                        (Some(v), _) => match scope.jsonata(v, field)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                        (None, Some(Value::String(p))) if intrinsics::is_call(p) => {
                            let e = intrinsics::parse(p)
                                .map_err(|e| Failure::new("States.IntrinsicFailure", e))?;
                            let v = intrinsics::eval(&e, &|q| {
                                scope.require(q, raw, path).map_err(|f| f.cause)
                            })
                            .map_err(|e| Failure::new("States.IntrinsicFailure", e))?;
                            match v {
                                Value::String(s) => s,
                                other => other.to_string(),
                            }
                        }
                        (None, Some(Value::String(p))) => match scope.path(p, raw)? {
                            Some(Value::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => String::new(),
                        },
                        _ => String::new(),
                    })
                };
                // (`FailStateEntered` was recorded on entering.)
                Err(Failure::new(
                    text("Error", "ErrorPath")?,
                    text("Cause", "CausePath")?,
                ))
            }
            Kind::Succeed | Kind::Wait | Kind::Pass | Kind::Choice => {
                if state.kind == Kind::Wait {
                    self.wait(state, &scope, &effective, entered).await?;
                }
                let result = match state.kind {
                    Kind::Pass if jp => match (b.get("Result"), b.get("Parameters")) {
                        (Some(r), _) => r.clone(),
                        (None, Some(p)) => scope.template(p, &effective, "Parameters")?,
                        (None, None) => effective.clone(),
                    },
                    _ => effective.clone(),
                };
                let (next, rule_assign) = match state.kind {
                    Kind::Choice => {
                        let (n, a) = self.choose(state, &scope, &effective)?;
                        (Some(n), a)
                    }
                    _ => (state.next.clone(), None),
                };
                let (output, next, mut assigned) =
                    self.finish(state, &scope, raw, result, next, false)?;
                if let Some(a) = rule_assign {
                    assigned.extend(scope.assign(state.lang, Some(&a), &effective)?);
                }
                Ok((output, next, assigned))
            }
            Kind::Task | Kind::Parallel | Kind::Map => {
                let args = if jp {
                    match b.get("Parameters") {
                        Some(p) if state.kind != Kind::Map => {
                            scope.template(p, &effective, "Parameters")?
                        }
                        _ => effective.clone(),
                    }
                } else {
                    match b.get("Arguments") {
                        Some(a) => scope.jsonata(a, "Arguments")?,
                        None => raw.clone(),
                    }
                };
                let result = match state.kind {
                    Kind::Task => self.task(state, &scope, args, context).await?,
                    Kind::Parallel => self.parallel(state, args, vars).await?,
                    _ => self.map(state, &scope, args, raw, vars).await?,
                };
                let result = match b.get("ResultSelector") {
                    Some(sel) if jp => scope.template(sel, &result, "ResultSelector")?,
                    _ => result,
                };
                self.finish(state, &scope, raw, result, state.next.clone(), true)
            }
        }
    }

    /// Output and `Assign` once the state has its result.
    fn finish(
        &self,
        state: &State,
        scope: &Scope,
        raw: &Value,
        result: Value,
        next: Option<String>,
        has_result: bool,
    ) -> Result<Done, Failure> {
        let b = &state.body;
        match state.lang {
            Lang::JsonPath => {
                // A Choice, Wait or Succeed passes its effective input on.
                let with_result = if matches!(
                    state.kind,
                    Kind::Pass | Kind::Task | Kind::Parallel | Kind::Map
                ) {
                    result_path(b, raw, result.clone())?
                } else {
                    result.clone()
                };
                let output = filter(scope, b, "OutputPath", &with_result)?;
                let assigned = scope.assign(state.lang, b.get("Assign"), &result)?;
                Ok((output, next, assigned))
            }
            Lang::Jsonata => {
                let s = Scope {
                    input: raw,
                    result: has_result.then_some(&result),
                    error_output: None,
                    context: scope.context,
                    vars: scope.vars,
                };
                let output = match b.get("Output") {
                    Some(o) => s.jsonata(o, "Output")?,
                    None => result.clone(),
                };
                let assigned = s.assign(state.lang, b.get("Assign"), &result)?;
                Ok((output, next, assigned))
            }
        }
    }
}

/// The wait before the next attempt, if a retrier allows one.
fn retry_delay(retriers: &[Retrier], attempts: &mut [u32], error: &str) -> Option<Duration> {
    let (i, r) = retriers
        .iter()
        .enumerate()
        .find(|(_, r)| matches(&r.error_equals, error))?;
    if attempts[i] >= r.max_attempts {
        return None;
    }
    let mut secs = r.interval_seconds * r.backoff_rate.powi(attempts[i] as i32);
    if let Some(max) = r.max_delay_seconds {
        secs = secs.min(max);
    }
    if r.full_jitter {
        secs *= rand::random::<f64>();
    }
    attempts[i] += 1;
    Some(Duration::from_secs_f64(secs.clamp(0.0, MAX_WAIT_SECS)))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Pass => "Pass",
        Kind::Task => "Task",
        Kind::Choice => "Choice",
        Kind::Wait => "Wait",
        Kind::Succeed => "Succeed",
        Kind::Fail => "Fail",
        Kind::Parallel => "Parallel",
        Kind::Map => "Map",
    }
}

#[cfg(test)]
mod tests;
