//! The interpreter: runs a checked [`Definition`] on an input, state by
//! state, with `Retry` and `Catch`, `Parallel` branches and `Map`
//! iterations as concurrent futures, and records the history events AWS
//! records (`TaskStateEntered`, `TaskScheduled`, ...).
//!
//! Tasks go through [`Tasks`] (functions, HTTP, the event bus, channels);
//! a `.waitForTaskToken` task waits for `SendTaskSuccess`/`SendTaskFailure`
//! on its token (see [`super::tokens`]).

use super::data::{filter, result_path, runtime, Scope, Vars};
use super::definition::{Catcher, Definition, Kind, Lang, Retrier, State};
use super::history::History;
use super::tokens::Tokens;
use super::Failure;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
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
                        (None, Some(Value::String(p))) => match scope.path(p, raw)? {
                            Some(Value::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => String::new(),
                        },
                        _ => String::new(),
                    })
                };
                let f = Failure::new(text("Error", "ErrorPath")?, text("Cause", "CausePath")?);
                self.history.push(
                    "FailStateEntered",
                    "stateEnteredEventDetails",
                    json!({"name": state.name, "input": raw.to_string()}),
                );
                Err(f)
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
                let next = match state.kind {
                    Kind::Choice => Some(self.choose(state, &scope, &effective)?),
                    _ => state.next.clone(),
                };
                self.finish(state, &scope, raw, result, next, false)
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

    fn choose(&self, state: &State, scope: &Scope, data: &Value) -> Result<String, Failure> {
        let choices = state
            .body
            .get("Choices")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in &choices {
            let holds = match state.lang {
                Lang::Jsonata => {
                    let v =
                        scope.jsonata(c.get("Condition").unwrap_or(&Value::Null), "Condition")?;
                    v.as_bool().ok_or_else(|| {
                        Failure::new(
                            "States.QueryEvaluationError",
                            format!("The Condition must evaluate to a boolean, not {v}"),
                        )
                    })?
                }
                Lang::JsonPath => {
                    let rule = super::choice::Rule::parse(c).map_err(runtime)?;
                    rule.holds(&|p| scope.path(p, data).ok().flatten())
                }
            };
            if holds {
                return Ok(c
                    .get("Next")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string());
            }
        }
        state
            .body
            .get("Default")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                Failure::new(
                    "States.NoChoiceMatched",
                    format!(
                        "No Choice matched and no Default is specified in state {}",
                        state.name
                    ),
                )
            })
    }

    /// Wait until `entered` plus the state's seconds (or its timestamp):
    /// a state resumed after a restart waits only what is left.
    async fn wait(
        &self,
        state: &State,
        scope: &Scope<'_>,
        data: &Value,
        entered: f64,
    ) -> Result<(), Failure> {
        let b = &state.body;
        let value = |field: &str| -> Result<Option<Value>, Failure> {
            Ok(match b.get(field) {
                None => None,
                Some(v) if state.lang == Lang::Jsonata => Some(scope.jsonata(v, field)?),
                Some(v) if field.ends_with("Path") => {
                    Some(scope.require(v.as_str().unwrap_or("$"), data, field)?)
                }
                Some(v) => Some(v.clone()),
            })
        };
        let secs = if let Some(s) = value("Seconds")?.or(value("SecondsPath")?) {
            let s = s
                .as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| runtime(format!("Wait: {s} is not a number of seconds")))?;
            (entered + s - crate::esm::spec::now_secs()).max(0.0)
        } else if let Some(t) = value("Timestamp")?.or(value("TimestampPath")?) {
            let at = t
                .as_str()
                .and_then(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .ok_or_else(|| runtime(format!("Wait: {t} is not an RFC 3339 timestamp")))?;
            (at.unix_timestamp_nanos() as f64 / 1e9 - crate::esm::spec::now_secs()).max(0.0)
        } else {
            0.0
        };
        if !self.no_wait {
            tokio::time::sleep(Duration::from_secs_f64(secs.min(MAX_WAIT_SECS))).await;
        }
        Ok(())
    }

    async fn task(
        &self,
        state: &State,
        scope: &Scope<'_>,
        args: Value,
        context: &Value,
    ) -> Result<Value, Failure> {
        let b = &state.body;
        let resource = match b.get("Resource") {
            Some(Value::String(r)) if state.lang == Lang::Jsonata => {
                match scope.jsonata(&Value::String(r.clone()), "Resource")? {
                    Value::String(s) => s,
                    other => return Err(runtime(format!("Resource: {other} is not an ARN"))),
                }
            }
            Some(Value::String(r)) => r.clone(),
            _ => return Err(runtime("Resource must be a string")),
        };
        let number = |field: &str| -> Result<Option<f64>, Failure> {
            Ok(match (b.get(field), b.get(&format!("{field}Path"))) {
                (Some(v), _) if state.lang == Lang::Jsonata => scope.jsonata(v, field)?.as_f64(),
                (Some(v), _) => v.as_f64(),
                (None, Some(Value::String(p))) => scope.require(p, scope.input, field)?.as_f64(),
                _ => None,
            })
        };
        let timeout = number("TimeoutSeconds")?.unwrap_or(99_999_999.0);
        let heartbeat = number("HeartbeatSeconds")?;
        let (base, wait_token) = match resource.strip_suffix(".waitForTaskToken") {
            Some(base) => (base.to_string(), true),
            None => (resource.trim_end_matches(".sync").to_string(), false),
        };
        let (resource_type, short) = resource_names(&base);
        self.history.push(
            "TaskScheduled",
            "taskScheduledEventDetails",
            json!({"resourceType": resource_type, "resource": short, "region": region_of(context),
                   "parameters": args.to_string(), "timeoutInSeconds": timeout as u64}),
        );
        self.history.push(
            "TaskStarted",
            "taskStartedEventDetails",
            json!({"resourceType": resource_type, "resource": short}),
        );
        let call = async {
            if wait_token {
                let token = context
                    .pointer("/Task/Token")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| runtime("no task token"))?;
                let waiting = self.tokens.register(&token);
                self.tasks.call(&base, args).await?;
                self.tokens.wait(waiting, heartbeat).await
            } else {
                self.tasks.call(&base, args).await
            }
        };
        let outcome =
            match tokio::time::timeout(Duration::from_secs_f64(timeout.min(MAX_WAIT_SECS)), call)
                .await
            {
                Ok(r) => r,
                Err(_) => Err(Failure::new("States.Timeout", "Task timed out.")),
            };
        match &outcome {
            Ok(v) => self.history.push(
                "TaskSucceeded",
                "taskSucceededEventDetails",
                json!({"resourceType": resource_type, "resource": short, "output": v.to_string()}),
            ),
            Err(f) if f.error == "States.Timeout" => self.history.push(
                "TaskTimedOut",
                "taskTimedOutEventDetails",
                json!({"resourceType": resource_type, "resource": short, "error": f.error, "cause": f.cause}),
            ),
            Err(f) => self.history.push(
                "TaskFailed",
                "taskFailedEventDetails",
                json!({"resourceType": resource_type, "resource": short, "error": f.error, "cause": f.cause}),
            ),
        };
        outcome
    }

    async fn parallel(&self, state: &State, input: Value, vars: &Vars) -> Result<Value, Failure> {
        self.history.push("ParallelStateStarted", "", Value::Null);
        let runs = state
            .branches
            .iter()
            .map(|d| self.machine(d, input.clone(), vars.inner(), Map::new()));
        let results = futures_util::future::join_all(runs).await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(v) => out.push(v),
                Err(f) => {
                    self.history.push(
                        "ParallelStateFailed",
                        "executionFailedEventDetails",
                        json!({"error": f.error, "cause": f.cause}),
                    );
                    return Err(f);
                }
            }
        }
        self.history.push("ParallelStateSucceeded", "", Value::Null);
        Ok(Value::Array(out))
    }

    async fn map(
        &self,
        state: &State,
        scope: &Scope<'_>,
        args: Value,
        raw: &Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
        let b = &state.body;
        let items = match state.lang {
            Lang::JsonPath => match b.get("ItemsPath").and_then(Value::as_str) {
                Some(p) => scope.require(p, &args, "ItemsPath")?,
                None => args.clone(),
            },
            Lang::Jsonata => match b.get("Items") {
                Some(i) => scope.jsonata(i, "Items")?,
                None => raw.clone(),
            },
        };
        let Value::Array(items) = items else {
            return Err(runtime(format!(
                "The Map state's items must be an array, not {items}"
            )));
        };
        let concurrency = match b.get("MaxConcurrency").and_then(Value::as_u64) {
            None | Some(0) => MAP_DEFAULT_CONCURRENCY,
            Some(n) => n as usize,
        };
        let tolerated_count = b.get("ToleratedFailureCount").and_then(Value::as_u64);
        let tolerated_pct = b.get("ToleratedFailurePercentage").and_then(Value::as_f64);
        self.history.push(
            "MapStateStarted",
            "mapStateStartedEventDetails",
            json!({"length": items.len()}),
        );
        let processor = state
            .branches
            .first()
            .ok_or_else(|| runtime("the Map state has no ItemProcessor"))?;
        let total = items.len();
        let runs = items.into_iter().enumerate().map(|(index, item)| {
            let mut extra = Map::new();
            extra.insert(
                "Map".into(),
                json!({"Item": {"Index": index, "Value": item}}),
            );
            let context = {
                let mut c = scope.context.clone();
                if let Some(o) = c.as_object_mut() {
                    o.insert("Map".into(), extra["Map"].clone());
                }
                c
            };
            let item_scope = Scope {
                input: scope.input,
                result: None,
                error_output: None,
                context: &context,
                vars: scope.vars,
            };
            let input = match (state.lang, b.get("ItemSelector").or(b.get("Parameters"))) {
                (Lang::JsonPath, Some(sel)) => item_scope.template(sel, &args, "ItemSelector"),
                (Lang::Jsonata, Some(sel)) => item_scope.jsonata(sel, "ItemSelector"),
                (_, None) => Ok(item),
            };
            let inner = vars.inner();
            async move {
                let input = input?;
                self.machine(processor, input, inner, extra).await
            }
        });
        let results: Vec<Result<Value, Failure>> = futures_util::stream::iter(runs)
            .buffered(concurrency)
            .collect()
            .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        let tolerated = failed == 0
            || tolerated_count.is_some_and(|n| failed as u64 <= n)
            || tolerated_pct.is_some_and(|p| failed as f64 * 100.0 / total.max(1) as f64 <= p);
        if !tolerated {
            let f = results
                .into_iter()
                .find_map(Result::err)
                .expect("failed > 0");
            self.history.push(
                "MapStateFailed",
                "executionFailedEventDetails",
                json!({"error": f.error, "cause": f.cause}),
            );
            if tolerated_count.is_some() || tolerated_pct.is_some() {
                return Err(Failure::new(
                    "States.ExceedToleratedFailureThreshold",
                    format!("{failed} of {total} iterations failed"),
                ));
            }
            return Err(f);
        }
        self.history.push("MapStateSucceeded", "", Value::Null);
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|f| json!({"Error": f.error, "Cause": f.cause})))
                .collect(),
        ))
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

/// History's `resourceType` and `resource`: `lambda` and `invoke` for
/// `arn:aws:states:::lambda:invoke`, `lambda` and the ARN for a function.
fn resource_names(arn: &str) -> (String, String) {
    if let Some(rest) = arn.strip_prefix("arn:aws:states:::") {
        let (t, r) = rest.split_once(':').unwrap_or((rest, ""));
        return (t.to_string(), r.to_string());
    }
    let service = arn.split(':').nth(2).unwrap_or_default();
    (service.to_string(), arn.to_string())
}

fn region_of(context: &Value) -> String {
    context
        .pointer("/StateMachine/Id")
        .and_then(Value::as_str)
        .and_then(|a| a.split(':').nth(3))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::definition::parse_state;

    /// Tasks for the table: `arn:aws:lambda:...:function:double` doubles
    /// `n`; `...:function:fail` fails with `Custom.Error`.
    struct Fake;

    impl Tasks for Fake {
        fn call<'a>(
            &'a self,
            resource: &'a str,
            args: Value,
        ) -> BoxFuture<'a, Result<Value, Failure>> {
            Box::pin(async move {
                match resource.rsplit(':').next() {
                    Some("double") => Ok(json!({"n": args["n"].as_i64().unwrap_or(0) * 2})),
                    _ => Err(Failure::new("Custom.Error", "it failed")),
                }
            })
        }
    }

    fn runner() -> Runner {
        Runner {
            tasks: Arc::new(Fake),
            tokens: Arc::default(),
            history: Arc::default(),
            context: json!({"Execution": {"Id": "exec-1", "Name": "e"}, "StateMachine": {"Id": "sm"}}),
            no_wait: true,
        }
    }

    /// State, input, variables; status, output (or error name), next state.
    type Case = (
        Value,
        Value,
        Value,
        &'static str,
        Value,
        Option<&'static str>,
    );

    /// (state, input, variables) → (status, output or error, next).
    #[tokio::test]
    async fn a_table_of_test_state_cases() {
        let double = "arn:aws:lambda:us-east-1:000000000000:function:double";
        let fail = "arn:aws:lambda:us-east-1:000000000000:function:fail";
        let table: Vec<Case> = vec![
            // Pass, JSONPath: Parameters with paths, intrinsics, context, ResultPath.
            (
                json!({"Type": "Pass", "Parameters": {"who.$": "$.name", "hi.$": "States.Format('hi {}', $.name)", "exec.$": "$$.Execution.Id"}, "ResultPath": "$.out", "Next": "N"}),
                json!({"name": "ada"}),
                json!({}),
                "SUCCEEDED",
                json!({"name": "ada", "out": {"who": "ada", "hi": "hi ada", "exec": "exec-1"}}),
                Some("N"),
            ),
            // InputPath and OutputPath; ResultPath null keeps the input.
            (
                json!({"Type": "Pass", "InputPath": "$.a", "Result": {"x": 1}, "ResultPath": null, "OutputPath": "$.a.b", "End": true}),
                json!({"a": {"b": 7}}),
                json!({}),
                "SUCCEEDED",
                json!(7),
                None,
            ),
            // Pass, JSONata: Output with $states.input and a variable.
            (
                json!({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.n + $bonus %}", "End": true}),
                json!({"n": 2}),
                json!({"bonus": 40}),
                "SUCCEEDED",
                json!(42),
                None,
            ),
            // Task, JSONPath: Parameters, ResultSelector, ResultPath.
            (
                json!({"Type": "Task", "Resource": double, "Parameters": {"n.$": "$.n"}, "ResultSelector": {"doubled.$": "$.n"}, "ResultPath": "$.r", "End": true}),
                json!({"n": 4}),
                json!({}),
                "SUCCEEDED",
                json!({"n": 4, "r": {"doubled": 8}}),
                None,
            ),
            // Task, JSONata: Arguments and Output with $states.result.
            (
                json!({"Type": "Task", "QueryLanguage": "JSONata", "Resource": double, "Arguments": {"n": "{% $states.input.v %}"}, "Output": "{% $states.result.n %}", "End": true}),
                json!({"v": 5}),
                json!({}),
                "SUCCEEDED",
                json!(10),
                None,
            ),
            // A failing task: caught (JSONPath ResultPath of the error output).
            (
                json!({"Type": "Task", "Resource": fail, "Catch": [{"ErrorEquals": ["Custom.Error"], "ResultPath": "$.err", "Next": "Handle"}], "End": true}),
                json!({"k": 1}),
                json!({}),
                "CAUGHT_ERROR",
                json!({"k": 1, "err": {"Error": "Custom.Error", "Cause": "it failed"}}),
                Some("Handle"),
            ),
            // States.ALL catches, JSONata Output with $states.errorOutput.
            (
                json!({"Type": "Task", "QueryLanguage": "JSONata", "Resource": fail, "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput.Error %}", "Next": "H"}], "End": true}),
                json!({}),
                json!({}),
                "CAUGHT_ERROR",
                json!("Custom.Error"),
                Some("H"),
            ),
            // States.TaskFailed retried: RETRIABLE.
            (
                json!({"Type": "Task", "Resource": fail, "Retry": [{"ErrorEquals": ["States.TaskFailed"]}], "End": true}),
                json!({}),
                json!({}),
                "RETRIABLE",
                json!("Custom.Error"),
                None,
            ),
            // Uncaught: FAILED with the error.
            (
                json!({"Type": "Task", "Resource": fail, "End": true}),
                json!({}),
                json!({}),
                "FAILED",
                json!("Custom.Error"),
                None,
            ),
            // Choice, JSONPath: rules in order, then Default.
            (
                json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}, {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Mid"}], "Default": "Small"}),
                json!({"n": 5}),
                json!({}),
                "SUCCEEDED",
                json!({"n": 5}),
                Some("Mid"),
            ),
            (
                json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}], "Default": "Small"}),
                json!({"n": 0}),
                json!({}),
                "SUCCEEDED",
                json!({"n": 0}),
                Some("Small"),
            ),
            // Choice, JSONata: Condition with a variable; no match and no Default fails.
            (
                json!({"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [{"Condition": "{% $states.input.n > $limit %}", "Next": "Over"}], "Default": "Under"}),
                json!({"n": 5}),
                json!({"limit": 3}),
                "SUCCEEDED",
                json!({"n": 5}),
                Some("Over"),
            ),
            (
                json!({"Type": "Choice", "Choices": [{"Variable": "$.n", "IsPresent": true, "Next": "Has"}]}),
                json!({}),
                json!({}),
                "FAILED",
                json!("States.NoChoiceMatched"),
                None,
            ),
            // Wait (TestState does not wait), Succeed, Fail with paths.
            (
                json!({"Type": "Wait", "SecondsPath": "$.s", "Next": "After"}),
                json!({"s": 100}),
                json!({}),
                "SUCCEEDED",
                json!({"s": 100}),
                Some("After"),
            ),
            (
                json!({"Type": "Succeed", "OutputPath": "$.keep"}),
                json!({"keep": [1]}),
                json!({}),
                "SUCCEEDED",
                json!([1]),
                None,
            ),
            (
                json!({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}),
                json!({"e": "E1", "c": "C1"}),
                json!({}),
                "FAILED",
                json!("E1"),
                None,
            ),
            // Parallel: each branch's output, in order.
            (
                json!({"Type": "Parallel", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": double, "End": true}}}], "End": true}),
                json!({"n": 3}),
                json!({}),
                "SUCCEEDED",
                json!(["a", {"n": 6}]),
                None,
            ),
            // Map, JSONPath: ItemsPath, ItemSelector with the item's index and value.
            (
                json!({"Type": "Map", "ItemsPath": "$.xs", "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
                    "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}),
                json!({"xs": ["a", "b"]}),
                json!({}),
                "SUCCEEDED",
                json!([{"i": 0, "v": "a"}, {"i": 1, "v": "b"}]),
                None,
            ),
            // Map, JSONata: Items; an iteration reads an outer variable.
            (
                json!({"Type": "Map", "QueryLanguage": "JSONata", "Items": "{% $states.input.xs %}",
                    "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input * $k %}", "End": true}}}, "End": true}),
                json!({"xs": [1, 2]}),
                json!({"k": 10}),
                "SUCCEEDED",
                json!([10, 20]),
                None,
            ),
            // A Map iteration failing beyond the tolerance fails the state.
            (
                json!({"Type": "Map", "ItemsPath": "$.xs", "ToleratedFailureCount": 0,
                    "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": fail, "End": true}}}, "End": true}),
                json!({"xs": [1]}),
                json!({}),
                "FAILED",
                json!("States.ExceedToleratedFailureThreshold"),
                None,
            ),
        ];
        for (state, input, vars, status, want, next) in table {
            let s = parse_state(&state.to_string()).unwrap_or_else(|d| panic!("{state}: {d:?}"));
            let (got_status, result, got_next, _) = runner()
                .test_one(&s, input, vars.as_object().unwrap().clone())
                .await;
            assert_eq!(got_status, status, "{state}");
            match result {
                Ok(out) => assert_eq!(out, want, "{state}"),
                Err(f) => assert_eq!(json!(f.error), want, "{state}: {}", f.cause),
            }
            assert_eq!(got_next.as_deref(), next, "{state}");
        }
    }

    /// `Assign` sees the input, the result and the variables as they were:
    /// not the values it is assigning; a later state sees them.
    #[tokio::test]
    async fn assign_is_evaluated_whole_then_stored() {
        let s = parse_state(
            &json!({"Type": "Pass", "QueryLanguage": "JSONata",
                "Assign": {"a": "{% $states.input.x %}", "b": "{% $a %}", "c": "{% $states.result.y %}"},
                "Output": {"y": 2}, "End": true})
            .to_string(),
        )
        .unwrap();
        let vars = json!({"a": "old"}).as_object().unwrap().clone();
        let (_, _, _, after) = runner().test_one(&s, json!({"x": "new"}), vars).await;
        assert_eq!(
            Value::Object(after),
            json!({"a": "new", "b": "old", "c": null})
        );
        // JSONPath Assign: `$` is the state's result.
        let s = parse_state(
            &json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double",
                "Assign": {"d.$": "$.n", "first.$": "$$.State.Name"}, "End": true})
            .to_string(),
        )
        .unwrap();
        let (_, _, _, after) = runner().test_one(&s, json!({"n": 21}), Map::new()).await;
        assert_eq!(Value::Object(after), json!({"d": 42, "first": "TestState"}));
    }

    /// A branch reads the variables outside it; what it assigns stays in it.
    #[tokio::test]
    async fn branches_read_outer_variables_and_keep_their_own() {
        let def = crate::workflow::definition::parse(
            &json!({"QueryLanguage": "JSONata", "StartAt": "Set", "States": {
                "Set": {"Type": "Pass", "Assign": {"x": 1}, "Next": "Par"},
                "Par": {"Type": "Parallel", "Next": "Read", "Branches": [
                    {"StartAt": "In", "States": {"In": {"Type": "Pass", "Assign": {"y": "{% $x + 1 %}"}, "Output": "{% $x %}", "Next": "In2"},
                                                 "In2": {"Type": "Pass", "Output": "{% $y %}", "End": true}}}]},
                "Read": {"Type": "Pass", "Output": "{% [$states.input, $x, $y] %}", "End": true}}})
            .to_string(),
        )
        .unwrap();
        let out = runner()
            .machine(&def, json!({}), Vars::default(), Map::new())
            .await
            .unwrap();
        // The branch read $x and set $y = 2 (its output); outside it $y is
        // unknown, and JSONata drops the undefined (and flattens the
        // branch's one-item array).
        assert_eq!(out, json!([2, 1]));
    }
}
