//! `CreateDataSource`, `GetDataSource`, `ListDataSources`,
//! `UpdateDataSource`, `DeleteDataSource` (`/v1/apis/{apiId}/datasources`):
//! what a namespace's DIRECT handler (`handlerConfigs`) calls. Herald's data
//! sources are `AWS_LAMBDA` with `lambdaConfig.lambdaFunctionArn` naming a
//! Herald function (created with `aws lambda create-function`), run
//! in-process. Kept in the store; a data source a namespace uses cannot be
//! deleted.

use super::super::aws::{page, AwsError, Body};
use super::super::Scope;
use super::ok;
use hyper::Response;
use serde_json::{json, Map, Value};

/// AppSync's page size for data sources.
const MAX_RESULTS: usize = 25;

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 65_536
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn arn(state: &Scope, name: &str) -> String {
    format!("{}/datasources/{name}", state.api_arn())
}

/// The request's fields as AppSync's `DataSource` shape, checked.
fn shape(state: &Scope, name: &str, mut obj: Map<String, Value>) -> Result<Value, AwsError> {
    let bad = |m: String| AwsError::bad_request(m);
    match obj.remove("type") {
        Some(Value::String(t)) if t == "AWS_LAMBDA" => {}
        Some(Value::String(t)) => {
            return Err(bad(format!(
                "Data source type {t} is not supported: Herald's data sources are AWS_LAMBDA (Herald functions)"
            )))
        }
        _ => return Err(bad("type is required (AWS_LAMBDA)".into())),
    }
    let function = obj
        .remove("lambdaConfig")
        .and_then(|l| {
            l.get("lambdaFunctionArn")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| bad("lambdaConfig.lambdaFunctionArn is required".into()))?;
    if crate::workflow::is_state_machine(&function) {
        // Herald's extension: the handler starts an execution.
        let known = crate::workflow::running(&state.api.workflows)
            .is_some_and(|w| w.machine(&function).is_some());
        if !known {
            return Err(bad(format!(
                "No state machine {function} on this server: create it with aws stepfunctions create-state-machine first"
            )));
        }
    } else if state.api.functions.get(&function).is_none() {
        return Err(bad(format!(
            "No function {function} on this server: create it with aws lambda create-function first"
        )));
    }
    let text = |obj: &mut Map<String, Value>, k: &str| -> Result<Option<String>, AwsError> {
        match obj.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(format!("{k} must be a string"))),
        }
    };
    let description = text(&mut obj, "description")?;
    let role = text(&mut obj, "serviceRoleArn")?;
    let metrics = text(&mut obj, "metricsConfig")?;
    obj.remove("name");
    if let Some(other) = obj.keys().next() {
        return Err(bad(format!(
            "{other} is not supported: Herald's data sources are AWS_LAMBDA (Herald functions)"
        )));
    }
    let mut v = json!({
        "dataSourceArn": arn(state, name),
        "name": name,
        "type": "AWS_LAMBDA",
        "lambdaConfig": {"lambdaFunctionArn": function},
        "metricsConfig": metrics.unwrap_or_else(|| "DISABLED".into()),
    });
    if let Some(d) = description {
        v["description"] = json!(d);
    }
    if let Some(r) = role {
        v["serviceRoleArn"] = json!(r);
    }
    Ok(v)
}

fn object(body: &[u8]) -> Result<Map<String, Value>, AwsError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(AwsError::bad_request(
            "The request body must be a JSON object",
        )),
    }
}

async fn store(state: &Scope, name: &str, v: &Value) -> Result<(), AwsError> {
    state
        .api
        .store
        .put_data_source(&state.api.config.api_id, name, v.to_string())
        .await
        .map_err(AwsError::store_failed)?;
    state.api.put_data_source(name, v.clone());
    Ok(())
}

pub async fn create(state: &Scope, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let obj = object(body)?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AwsError::bad_request("name is required"))?;
    if !valid_name(&name) {
        return Err(AwsError::bad_request(format!(
            "name '{name}' is invalid: letters, digits and '_', not starting with a digit"
        )));
    }
    if state.api.data_source(&name).is_some() {
        return Err(AwsError::bad_request(format!(
            "Data source with name {name} already exists"
        )));
    }
    let v = shape(state, &name, obj)?;
    store(state, &name, &v).await?;
    tracing::info!(data_source = %name, "data source created");
    Ok(ok(json!({"dataSource": v})))
}

pub fn get(state: &Scope, name: &str) -> Result<Response<Body>, AwsError> {
    let v = state
        .api
        .data_source(name)
        .ok_or_else(|| AwsError::not_found(format!("Data source {name} not found.")))?;
    Ok(ok(json!({"dataSource": v})))
}

pub fn list(state: &Scope, query: &str) -> Result<Response<Body>, AwsError> {
    let all: Vec<Value> = state.api.data_sources().into_values().collect();
    let (items, next) = page(&all, query, MAX_RESULTS)?;
    let mut v = json!({"dataSources": items});
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    Ok(ok(v))
}

pub async fn update(state: &Scope, name: &str, body: &[u8]) -> Result<Response<Body>, AwsError> {
    if state.api.data_source(name).is_none() {
        return Err(AwsError::not_found(format!(
            "Data source {name} not found."
        )));
    }
    let v = shape(state, name, object(body)?)?;
    store(state, name, &v).await?;
    // Namespaces using it call the new function from their next operation.
    for ns_name in state.api.data_source_users(name) {
        if let Some(ns) = state.api.find_namespace(&ns_name) {
            let mut ns = (*ns).clone();
            if let Some(h) = &ns.handler_configs {
                if let Ok((p, s)) = state.api.resolve_handler_configs(h) {
                    ns.direct_on_publish = p;
                    ns.direct_on_subscribe = s;
                    let _ = state.api.put_namespace(ns);
                }
            }
        }
    }
    tracing::info!(data_source = %name, "data source updated");
    Ok(ok(json!({"dataSource": v})))
}

pub async fn delete(state: &Scope, name: &str) -> Result<Response<Body>, AwsError> {
    if state.api.data_source(name).is_none() {
        return Err(AwsError::not_found(format!(
            "Data source {name} not found."
        )));
    }
    let users = state.api.data_source_users(name);
    if !users.is_empty() {
        return Err(AwsError::bad_request(format!(
            "Data source {name} is used by channel namespace {}: change their handlerConfigs first",
            users.join(", ")
        )));
    }
    state
        .api
        .store
        .delete_data_source(&state.api.config.api_id, name)
        .await
        .map_err(AwsError::store_failed)?;
    state.api.remove_data_source(name);
    tracing::info!(data_source = %name, "data source deleted");
    Ok(ok(json!({})))
}
