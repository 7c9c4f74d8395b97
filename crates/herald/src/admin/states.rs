//! Step Functions' API (JSON 1.0, `X-Amz-Target: AWSStepFunctions.<Op>`),
//! as botocore sends it: state machines (kept in the store), executions
//! (run on this node, see [`crate::workflow`]), task tokens and
//! `TestState`, with AWS's shapes and exception names.

use super::aws::{AwsError, Body};
use super::events::{opt, request, string, validation, Req};
use super::AdminState;
use crate::workflow::definition::{self, Diagnostic};
use crate::workflow::tokens::{SendError, Signal};
use crate::workflow::{Failure, MachineSpec, StartError, Workflows, MACHINE};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The `X-Amz-Target` prefix of Step Functions' operations.
pub const PREFIX: &str = "AWSStepFunctions.";

fn error(kind: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, kind, message)
}

fn ok(body: &Value) -> Result<Response<Body>, AwsError> {
    let mut r = super::aws::json_response(StatusCode::OK, body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    Ok(r)
}

fn store_failed(e: String) -> AwsError {
    tracing::error!(error = %e, "the store failed");
    AwsError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "The change could not be stored; nothing changed",
    )
}

/// The operation `op`, or `None` when Herald does not serve it.
pub async fn route(
    state: &AdminState,
    op: &str,
    body: &[u8],
) -> Option<Result<Response<Body>, AwsError>> {
    let w = &state.workflows;
    let req = match request(body) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    Some(match op {
        "CreateStateMachine" => create(w, &req).await,
        "DescribeStateMachine" => describe(w, &req),
        "ListStateMachines" => list(w, &req),
        "UpdateStateMachine" => update(w, &req).await,
        "DeleteStateMachine" => delete(w, &req).await,
        "ValidateStateMachineDefinition" => validate(&req),
        "StartExecution" => start(w, &req),
        "StartSyncExecution" => start_sync(w, &req).await,
        "DescribeExecution" => describe_execution(w, &req).await,
        "ListExecutions" => list_executions(w, &req).await,
        "StopExecution" => stop(w, &req).await,
        "GetExecutionHistory" => history(w, &req).await,
        "SendTaskSuccess" => send(w, &req, "success"),
        "SendTaskFailure" => send(w, &req, "failure"),
        "SendTaskHeartbeat" => send(w, &req, "heartbeat"),
        "TestState" => test_state(w, &req).await,
        _ => return None,
    })
}

fn invalid_definition(d: &[Diagnostic]) -> AwsError {
    let message = d
        .iter()
        .map(Diagnostic::to_message)
        .collect::<Vec<_>>()
        .join("; ");
    error("InvalidDefinition", message)
}

fn check_name(name: &str) -> Result<(), AwsError> {
    let bad = name.is_empty()
        || name.chars().count() > 80
        || name
            .chars()
            .any(|c| c.is_whitespace() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c) || c.is_control());
    if bad {
        return Err(error("InvalidName", format!("Invalid Name: '{name}'")));
    }
    Ok(())
}

fn describe_machine(s: &MachineSpec) -> Value {
    let mut v = json!({
        "stateMachineArn": s.state_machine_arn,
        "name": s.name,
        "status": "ACTIVE",
        "definition": s.definition,
        "roleArn": s.role_arn,
        "type": s.kind,
        "creationDate": s.creation_date,
        "loggingConfiguration": {"level": "OFF", "includeExecutionData": false},
        "tracingConfiguration": {"enabled": false},
    });
    if let Some(u) = s.update_date {
        v["updateDate"] = json!(u);
    }
    v
}

fn no_machine(arn: &str) -> AwsError {
    error(
        "StateMachineDoesNotExist",
        format!("State Machine Does Not Exist: '{arn}'"),
    )
}

async fn save(w: &Workflows, spec: &MachineSpec) -> Result<(), AwsError> {
    w.store()
        .put_bus_resource(
            MACHINE,
            &spec.name,
            serde_json::to_string(spec).expect("serializes"),
        )
        .await
        .map_err(store_failed)?;
    if let Err(e) = w.reload().await {
        tracing::error!(error = %e, "re-reading the state machines failed");
    }
    Ok(())
}

async fn create(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "name")?;
    check_name(name)?;
    let text = string(req, "definition")?;
    definition::parse(text).map_err(|d| invalid_definition(&d))?;
    let kind = opt(req, "type")?.unwrap_or("STANDARD");
    if !["STANDARD", "EXPRESS"].contains(&kind) {
        return Err(validation(format!(
            "1 validation error detected: Value '{kind}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
        )));
    }
    let role = opt(req, "roleArn")?.unwrap_or_default();
    let arn = w.machine_arn(name);
    if let Some(m) = w.machines().get(name) {
        // AWS: creating the same machine again is answered, not refused.
        if m.spec.definition == text && m.spec.role_arn == role && m.spec.kind == kind {
            return ok(&json!({"stateMachineArn": arn, "creationDate": m.spec.creation_date}));
        }
        return Err(error(
            "StateMachineAlreadyExists",
            format!("State Machine Already Exists: '{arn}'"),
        ));
    }
    let spec = MachineSpec {
        name: name.to_string(),
        state_machine_arn: arn.clone(),
        definition: text.to_string(),
        role_arn: role.to_string(),
        kind: kind.to_string(),
        creation_date: crate::esm::spec::now_secs(),
        update_date: None,
    };
    save(w, &spec).await?;
    ok(&json!({"stateMachineArn": arn, "creationDate": spec.creation_date}))
}

fn machine_of(w: &Workflows, req: &Req) -> Result<Arc<crate::workflow::Machine>, AwsError> {
    let arn = string(req, "stateMachineArn")?;
    w.machine(arn).ok_or_else(|| no_machine(arn))
}

fn describe(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    ok(&describe_machine(&machine_of(w, req)?.spec))
}

/// `maxResults` (0 or absent: 100, at most 1000) and `nextToken`.
fn page<T: Clone>(items: &[T], req: &Req) -> Result<(Vec<T>, Option<String>), AwsError> {
    let limit = match req.get("maxResults").and_then(Value::as_u64) {
        None | Some(0) => 100,
        Some(n) => n.min(1000) as usize,
    };
    let start = match opt(req, "nextToken")? {
        None => 0,
        Some(t) => t
            .strip_prefix("herald-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| error("InvalidToken", "Invalid token"))?,
    };
    let end = (start + limit).min(items.len());
    Ok((
        items[start..end].to_vec(),
        (end < items.len()).then(|| format!("herald-{end}")),
    ))
}

fn list(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let all: Vec<Value> = w
        .machines()
        .values()
        .map(|m| {
            json!({"stateMachineArn": m.spec.state_machine_arn, "name": m.spec.name,
                   "type": m.spec.kind, "creationDate": m.spec.creation_date})
        })
        .collect();
    let (items, next) = page(&all, req)?;
    let mut v = json!({"stateMachines": items});
    if let Some(n) = next {
        v["nextToken"] = n.into();
    }
    ok(&v)
}

async fn update(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let m = machine_of(w, req)?;
    let mut spec = m.spec.clone();
    if let Some(text) = opt(req, "definition")? {
        definition::parse(text).map_err(|d| invalid_definition(&d))?;
        spec.definition = text.to_string();
    }
    if let Some(role) = opt(req, "roleArn")? {
        spec.role_arn = role.to_string();
    }
    let now = crate::esm::spec::now_secs();
    spec.update_date = Some(now);
    save(w, &spec).await?;
    ok(&json!({"updateDate": now}))
}

async fn delete(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let arn = string(req, "stateMachineArn")?;
    if let Some(m) = w.machine(arn) {
        w.store()
            .delete_bus_resource(MACHINE, &m.spec.name)
            .await
            .map_err(store_failed)?;
        // Its finished executions go with it (running ones finish first).
        if let Err(e) = w.store().delete_executions_of(arn).await {
            tracing::warn!(machine = %arn, error = %e, "deleting the machine's executions failed");
        }
        if let Err(e) = w.reload().await {
            tracing::error!(error = %e, "re-reading the state machines failed");
        }
    }
    ok(&json!({}))
}

fn validate(req: &Req) -> Result<Response<Body>, AwsError> {
    let text = string(req, "definition")?;
    let diagnostics: Vec<Value> = match definition::parse(text) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .iter()
            .map(|d| {
                json!({"severity": "ERROR", "code": d.code, "message": d.message,
                       "location": d.location})
            })
            .collect(),
    };
    ok(&json!({
        "result": if diagnostics.is_empty() { "OK" } else { "FAIL" },
        "diagnostics": diagnostics,
        "truncated": false,
    }))
}

/// The execution's input: a JSON text (`{}` when absent).
fn input_of(req: &Req) -> Result<Value, AwsError> {
    match opt(req, "input")? {
        None => Ok(json!({})),
        Some(t) => serde_json::from_str(t).map_err(|e| {
            error(
                "InvalidExecutionInput",
                format!("Invalid State Machine Execution Input: '{e}'"),
            )
        }),
    }
}

fn start_error(e: StartError) -> AwsError {
    match e {
        StartError::NoMachine(arn) => no_machine(&arn),
        StartError::Exists(arn) => error(
            "ExecutionAlreadyExists",
            format!("Execution Already Exists: '{arn}'"),
        ),
        StartError::NotSupported(m) => error("StateMachineTypeNotSupported", m),
        StartError::Limit => error(
            "ExecutionLimitExceeded",
            format!(
                "Execution limit exceeded: {} executions are running on this node",
                crate::workflow::MAX_RUNNING
            ),
        ),
    }
}

fn start(w: &Arc<Workflows>, req: &Req) -> Result<Response<Body>, AwsError> {
    let arn = string(req, "stateMachineArn")?;
    let name = opt(req, "name")?;
    if let Some(n) = name {
        check_name(n)?;
    }
    let input = input_of(req)?;
    let e = w.start(arn, name, input).map_err(start_error)?;
    ok(&json!({"executionArn": e.arn, "startDate": e.start_date}))
}

fn execution_value(e: &crate::workflow::Execution, full: bool) -> Value {
    let o = e.outcome();
    let mut v = json!({
        "executionArn": e.arn,
        "stateMachineArn": e.machine_arn,
        "name": e.name,
        "status": o.status,
        "startDate": e.start_date,
    });
    if let Some(s) = o.stop_date {
        v["stopDate"] = json!(s);
    }
    if full {
        v["input"] = e.input.to_string().into();
        v["inputDetails"] = json!({"included": true});
        if let Some(out) = &o.output {
            v["output"] = out.to_string().into();
            v["outputDetails"] = json!({"included": true});
        }
        if let Some(Failure { error, cause }) = &o.failure {
            v["error"] = error.clone().into();
            v["cause"] = cause.clone().into();
        }
    }
    v
}

async fn start_sync(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let arn = string(req, "stateMachineArn")?;
    let input = input_of(req)?;
    let e = w
        .start_sync(arn, opt(req, "name")?, input)
        .await
        .map_err(start_error)?;
    let mut v = execution_value(&e, true);
    if let Some(o) = v.as_object_mut() {
        o.remove("inputDetails");
        o.remove("outputDetails");
    }
    ok(&v)
}

async fn execution_of(
    w: &Workflows,
    req: &Req,
) -> Result<Arc<crate::workflow::Execution>, AwsError> {
    let arn = string(req, "executionArn")?;
    w.find_execution(arn).await.ok_or_else(|| {
        error(
            "ExecutionDoesNotExist",
            format!("Execution Does Not Exist: '{arn}'"),
        )
    })
}

async fn describe_execution(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let e = execution_of(w, req).await?;
    ok(&execution_value(&e, true))
}

async fn list_executions(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let m = machine_of(w, req)?;
    let filter = opt(req, "statusFilter")?;
    let all: Vec<Value> = w
        .executions_of(&m.spec.state_machine_arn)
        .await
        .iter()
        .map(|e| execution_value(e, false))
        .filter(|v| filter.is_none_or(|f| v["status"] == f))
        .collect();
    let (items, next) = page(&all, req)?;
    let mut v = json!({"executions": items});
    if let Some(n) = next {
        v["nextToken"] = n.into();
    }
    ok(&v)
}

async fn stop(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let arn = string(req, "executionArn")?;
    let e = match w.execution(arn) {
        Some(e) => e,
        None if w.find_execution(arn).await.is_some() => {
            return Err(validation(format!(
                "Execution {arn} runs on another node of the cluster: stop it through that node"
            )))
        }
        None => execution_of(w, req).await?,
    };
    let at = w.stop(&e, opt(req, "error")?, opt(req, "cause")?).await;
    ok(&json!({"stopDate": at}))
}

async fn history(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let e = execution_of(w, req).await?;
    let mut events = e.history.events();
    if req.get("reverseOrder").and_then(Value::as_bool) == Some(true) {
        events.reverse();
    }
    let (items, next) = page(&events, req)?;
    let mut v = json!({"events": items});
    if let Some(n) = next {
        v["nextToken"] = n.into();
    }
    ok(&v)
}

fn send(w: &Workflows, req: &Req, what: &str) -> Result<Response<Body>, AwsError> {
    let token = string(req, "taskToken")?;
    let signal = match what {
        "success" => {
            let output = string(req, "output")?;
            let v = serde_json::from_str(output)
                .map_err(|e| error("InvalidOutput", format!("Invalid output: {e}")))?;
            Signal::Success(v)
        }
        "failure" => Signal::Failure(Failure::new(
            opt(req, "error")?.unwrap_or_default(),
            opt(req, "cause")?.unwrap_or_default(),
        )),
        _ => Signal::Heartbeat,
    };
    w.tokens.send(token, signal).map_err(|e| match e {
        SendError::Unknown => error("TaskDoesNotExist", "Task Does Not Exist"),
        SendError::Busy => error("TaskTimedOut", "Task Timed Out"),
    })?;
    ok(&json!({}))
}

/// `TestState`: one state on `input`, with `variables`; with
/// `inspectionLevel` `DEBUG` or `TRACE`, what it saw.
async fn test_state(w: &Workflows, req: &Req) -> Result<Response<Body>, AwsError> {
    let text = string(req, "definition")?;
    let state = definition::parse_state(text).map_err(|d| invalid_definition(&d))?;
    let input = input_of(req)?;
    let variables: Map<String, Value> = match opt(req, "variables")? {
        None => Map::new(),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| error("InvalidExecutionInput", format!("variables: {e}")))?,
    };
    let (status, result, next, vars) = w.test_state(&state, input.clone(), variables).await;
    let mut v = json!({"status": status});
    match result {
        Ok(out) => v["output"] = out.to_string().into(),
        Err(f) => {
            v["error"] = f.error.into();
            v["cause"] = f.cause.into();
        }
    }
    if let Some(n) = next {
        v["nextState"] = n.into();
    }
    let level = opt(req, "inspectionLevel")?.unwrap_or("INFO");
    if level != "INFO" {
        v["inspectionData"] = json!({
            "input": input.to_string(),
            "variables": Value::Object(vars).to_string(),
        });
    }
    ok(&v)
}
