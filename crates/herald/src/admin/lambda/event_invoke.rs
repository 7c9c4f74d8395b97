//! `PutFunctionEventInvokeConfig`, `UpdateFunctionEventInvokeConfig`,
//! `GetFunctionEventInvokeConfig`, `ListFunctionEventInvokeConfigs`,
//! `DeleteFunctionEventInvokeConfig`: how a function's asynchronous
//! invocations are retried and where their outcomes go (a destination is a
//! Herald function; see `functions::asynchronous`).

use super::super::aws::{json_response, AwsError, Body};
use super::super::AdminState;
use super::functions::{changeable, empty, existing, object, redeploy};
use super::invalid;
use crate::functions::{EventInvokeConfig, Function, Functions};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

fn shape(functions: &Functions, f: &Function, c: &EventInvokeConfig) -> Value {
    let dest = |d: &Option<String>| match d {
        Some(d) => json!({"Destination": d}),
        None => json!({}),
    };
    json!({
        "LastModified": c.last_modified,
        "FunctionArn": format!("{}:$LATEST", functions.arn(&f.spec.name)),
        "MaximumRetryAttempts": c.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": c.maximum_event_age_secs,
        "DestinationConfig": {"OnSuccess": dest(&c.on_success), "OnFailure": dest(&c.on_failure)},
    })
}

fn missing(functions: &Functions, name: &str) -> AwsError {
    AwsError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!(
            "The function {}:$LATEST doesn't have an EventInvokeConfig",
            functions.arn(name)
        ),
    )
}

/// Put (`merge`: false, unset members take their defaults) or update
/// (`merge`: true, unset members keep their values).
pub async fn put(
    state: &AdminState,
    name: &str,
    body: &[u8],
    merge: bool,
) -> Result<Response<Body>, AwsError> {
    let f = changeable(state, name)?;
    let functions = state.functions();
    let mut obj = object(body)?;
    let mut c = match (&f.spec.event_invoke, merge) {
        (Some(c), true) => c.clone(),
        _ => EventInvokeConfig::default(),
    };
    if let Some(v) = obj.remove("MaximumRetryAttempts") {
        c.maximum_retry_attempts = v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid("MaximumRetryAttempts must be from 0 to 2"))?;
    }
    if let Some(v) = obj.remove("MaximumEventAgeInSeconds") {
        c.maximum_event_age_secs = v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid("MaximumEventAgeInSeconds must be from 60 to 21600"))?;
    }
    if let Some(d) = obj.remove("DestinationConfig") {
        for (key, slot) in [
            ("OnSuccess", &mut c.on_success),
            ("OnFailure", &mut c.on_failure),
        ] {
            match d.get(key).map(|v| v.get("Destination")) {
                None => {}
                Some(None | Some(Value::Null)) => *slot = None,
                Some(Some(Value::String(dest))) => {
                    if functions.get(dest).is_none() && !dest.starts_with("arn:") {
                        return Err(invalid(format!(
                            "The destination function {dest} does not exist"
                        )));
                    }
                    *slot = Some(dest.clone());
                }
                Some(Some(_)) => return Err(invalid(format!("{key}.Destination must be an ARN"))),
            }
        }
    }
    if let Some(other) = obj.keys().next() {
        return Err(invalid(format!("Herald does not support {other}")));
    }
    c.check().map_err(invalid)?;
    for d in [&c.on_success, &c.on_failure].into_iter().flatten() {
        if functions.get(d).is_none() {
            return Err(invalid(format!(
                "The destination function {d} does not exist"
            )));
        }
    }
    c.last_modified = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let f = redeploy(state, &f, |s| s.event_invoke = Some(c.clone())).await?;
    Ok(json_response(StatusCode::OK, &shape(&functions, &f, &c)))
}

pub fn get(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = existing(state, name)?;
    let functions = state.functions();
    let c = f
        .spec
        .event_invoke
        .as_ref()
        .ok_or_else(|| missing(&functions, &f.spec.name))?;
    Ok(json_response(StatusCode::OK, &shape(&functions, &f, c)))
}

pub fn list(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = existing(state, name)?;
    let functions = state.functions();
    let items: Vec<Value> = f
        .spec
        .event_invoke
        .iter()
        .map(|c| shape(&functions, &f, c))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"FunctionEventInvokeConfigs": items}),
    ))
}

pub async fn delete(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = changeable(state, name)?;
    if f.spec.event_invoke.is_none() {
        return Err(missing(&state.functions(), &f.spec.name));
    }
    redeploy(state, &f, |s| s.event_invoke = None).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
