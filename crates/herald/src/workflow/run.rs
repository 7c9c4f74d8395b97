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
                let step = self.state(state, input, &mut vars, &extra).await?;
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
        match self.body(state, &input, &vars, &context).await {
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
            match self.body(state, &input, vars, &context).await {
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
                    self.wait(state, &scope, &effective).await?;
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

    async fn wait(&self, state: &State, scope: &Scope<'_>, data: &Value) -> Result<(), Failure> {
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
            s.as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| runtime(format!("Wait: {s} is not a number of seconds")))?
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
