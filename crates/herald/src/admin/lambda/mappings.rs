//! `CreateEventSourceMapping`, `GetEventSourceMapping`,
//! `ListEventSourceMappings`, `UpdateEventSourceMapping`,
//! `DeleteEventSourceMapping`: Lambda's shapes, status codes (202 for the
//! changes, with the transitional `State`) and exceptions. A change is
//! validated, written to the store, then applied on this node (other nodes
//! follow the store); the configuration file's mappings are listed and
//! described, and changed only in the file.

use super::super::aws::{json_response, query_param, AwsError, Body};
use super::super::AdminState;
use super::functions::object;
use super::invalid;
use crate::esm::spec::MappingSpec;
use crate::esm::{CheckError, Mappings, MAX_MAPPINGS};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

fn not_found() -> AwsError {
    AwsError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
    )
}

fn conflict(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::CONFLICT, "ResourceConflictException", message)
}

fn store_error(e: String) -> AwsError {
    AwsError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", e)
}

fn checked(state: &AdminState, spec: &MappingSpec) -> Result<(), AwsError> {
    match state.mappings.check_runnable(spec) {
        Ok(()) => {}
        Err(CheckError::Invalid(m)) => return Err(invalid(m)),
        Err(CheckError::NotFound(m)) => {
            return Err(AwsError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                m,
            ))
        }
    }
    if let Some(other) = state.mappings.duplicate(spec) {
        return Err(conflict(format!(
            "The event source arn (\" {} \") and function (\" {} \") provided mapping already exists. Please update or delete the existing mapping with UUID {other}",
            spec.source_arn,
            crate::functions::Functions::name_of(&spec.function)
        )));
    }
    Ok(())
}

pub async fn create(state: &AdminState, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let req = object(body)?;
    if state.mappings.len() >= MAX_MAPPINGS {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "ResourceLimitExceededException",
            format!("At most {MAX_MAPPINGS} event source mappings per server"),
        ));
    }
    let uuid = crate::new_uuid().to_string();
    let spec = MappingSpec::from_request(&req, None, uuid).map_err(invalid)?;
    checked(state, &spec)?;
    let store = &state.apis.default_api().store;
    store
        .put_mapping(Mappings::to_stored(&spec))
        .await
        .map_err(store_error)?;
    if let Some(Value::Object(tags)) = req.get("Tags") {
        let tags = tags
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        store
            .put_tags(&state.mappings.arn(&spec), tags, 50)
            .await
            .map_err(store_error)?;
    }
    let uuid = spec.uuid.clone();
    state.mappings.apply(spec);
    let d = state.mappings.get(&uuid).ok_or_else(not_found)?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &state.mappings.describe(&d, Some("Creating")),
    ))
}

pub fn get(state: &AdminState, uuid: &str) -> Result<Response<Body>, AwsError> {
    let d = state.mappings.get(uuid).ok_or_else(not_found)?;
    Ok(json_response(
        StatusCode::OK,
        &state.mappings.describe(&d, None),
    ))
}

/// `ListEventSourceMappings`: by source and/or function, paged by
/// `Marker` (the last UUID of the previous page) and `MaxItems` (1–10,000,
/// default 100).
pub fn list(state: &AdminState, query: &str) -> Result<Response<Body>, AwsError> {
    let source = query_param(query, "EventSourceArn");
    let function = query_param(query, "FunctionName")
        .map(|f| crate::functions::Functions::name_of(&f).to_string());
    let max = match query_param(query, "MaxItems") {
        None => 100,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => return Err(invalid("MaxItems must be between 1 and 10000")),
        },
    };
    let marker = query_param(query, "Marker").unwrap_or_default();
    let all: Vec<_> = state
        .mappings
        .list()
        .into_iter()
        .filter(|d| source.as_ref().is_none_or(|s| &d.spec.source_arn == s))
        .filter(|d| {
            function.as_ref().is_none_or(|f| {
                crate::functions::Functions::name_of(&d.spec.function) == f.as_str()
            })
        })
        .filter(|d| marker.is_empty() || d.spec.uuid.as_str() > marker.as_str())
        .collect();
    let page: Vec<Value> = all
        .iter()
        .take(max)
        .map(|d| state.mappings.describe(d, None))
        .collect();
    let mut out = json!({"EventSourceMappings": page});
    if all.len() > max {
        out["NextMarker"] = json!(all[max - 1].spec.uuid);
    }
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn update(
    state: &AdminState,
    uuid: &str,
    body: &[u8],
) -> Result<Response<Body>, AwsError> {
    let req = object(body)?;
    let current = state.mappings.get(uuid).ok_or_else(not_found)?;
    if current.spec.from_file {
        return Err(conflict(format!(
            "The event source mapping {uuid} is declared in the configuration file; change it there"
        )));
    }
    let spec =
        MappingSpec::from_request(&req, Some(&current.spec), String::new()).map_err(invalid)?;
    checked(state, &spec)?;
    state
        .apis
        .default_api()
        .store
        .put_mapping(Mappings::to_stored(&spec))
        .await
        .map_err(store_error)?;
    let transition = match (current.spec.enabled, spec.enabled) {
        (true, false) => "Disabling",
        (false, true) => "Enabling",
        _ => "Updating",
    };
    state.mappings.apply(spec);
    let d = state.mappings.get(uuid).ok_or_else(not_found)?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &state.mappings.describe(&d, Some(transition)),
    ))
}

pub async fn delete(state: &AdminState, uuid: &str) -> Result<Response<Body>, AwsError> {
    let current = state.mappings.get(uuid).ok_or_else(not_found)?;
    if current.spec.from_file {
        return Err(conflict(format!(
            "The event source mapping {uuid} is declared in the configuration file; remove it there"
        )));
    }
    let store = &state.apis.default_api().store;
    store.delete_mapping(uuid).await.map_err(store_error)?;
    store
        .remove_tags(&state.mappings.arn(&current.spec), None)
        .await
        .map_err(store_error)?;
    let body = state.mappings.describe(&current, Some("Deleting"));
    state.mappings.remove(uuid);
    Ok(json_response(StatusCode::ACCEPTED, &body))
}
