//! Connections and API destinations: `CreateConnection`,
//! `DescribeConnection`, `ListConnections`, `DeleteConnection`,
//! `CreateApiDestination`, `DescribeApiDestination`, `ListApiDestinations`,
//! `DeleteApiDestination`. Secrets are never shown back.

use super::super::aws::{AwsError, Body};
use super::buses::reload;
use super::{not_found, ok, opt, page, store_failed, string, time, validation, Req};
use crate::bus::api_destination::{ApiDestinationSpec, ConnectionSpec, METHODS};
use crate::bus::spec::check_name;
use crate::bus::{EventBuses, API_DESTINATION, CONNECTION};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

fn exists(what: &str, name: &str) -> AwsError {
    AwsError::new(
        StatusCode::BAD_REQUEST,
        "ResourceAlreadyExistsException",
        format!("{what} {name} already exists."),
    )
}

fn no_connection(name: &str) -> AwsError {
    not_found(format!(
        "Failed to describe the connection(s). Connection '{name}' does not exist."
    ))
}

fn no_destination(name: &str) -> AwsError {
    not_found(format!(
        "Failed to describe the api-destination(s). An api-destination '{name}' does not exist."
    ))
}

fn description(req: &Req) -> Result<Option<String>, AwsError> {
    let d = opt(req, "Description")?;
    if d.is_some_and(|d| d.chars().count() > 512) {
        return Err(validation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 512"));
    }
    Ok(d.map(str::to_string))
}

/// Store a connection or an API destination, then re-read.
async fn save(
    b: &EventBuses,
    kind: &str,
    name: &str,
    spec: &impl serde::Serialize,
) -> Result<(), AwsError> {
    b.store()
        .put_bus_resource(kind, name, serde_json::to_string(spec).expect("serializes"))
        .await
        .map_err(store_failed)?;
    reload(b).await;
    Ok(())
}

/// `InvocationRateLimitPerSecond`, if given: 1 or more.
fn rate_limit(req: &Req) -> Result<Option<u32>, AwsError> {
    match req.get("InvocationRateLimitPerSecond") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
            .map(|n| Some(n as u32))
            .ok_or_else(|| validation("1 validation error detected: Value at 'invocationRateLimitPerSecond' failed to satisfy constraint: Member must have value greater than or equal to 1")),
    }
}

fn summary(c: &ConnectionSpec) -> Value {
    json!({
        "ConnectionArn": c.arn,
        "Name": c.name,
        "ConnectionState": "AUTHORIZED",
        "AuthorizationType": c.authorization_type,
        "CreationTime": time(c.creation_time),
        "LastModifiedTime": time(c.last_modified_time),
        "LastAuthorizedTime": time(c.last_modified_time),
    })
}

pub async fn create_connection(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    check_name(name, "name", 64).map_err(validation)?;
    let auth_type = string(req, "AuthorizationType")?;
    let params = req
        .get("AuthParameters")
        .cloned()
        .ok_or_else(|| validation("1 validation error detected: Value null at 'authParameters' failed to satisfy constraint: Member must not be null"))?;
    ConnectionSpec::check(auth_type, &params).map_err(validation)?;
    let description = description(req)?;
    let _changing = b.lock().await;
    if b.view().connections.contains_key(name) {
        return Err(exists("Connection", name));
    }
    let now = crate::esm::spec::now_secs();
    let spec = ConnectionSpec {
        name: name.to_string(),
        arn: format!(
            "arn:aws:events:{}:{}:connection/{name}/{}",
            b.region,
            b.account,
            crate::new_uuid()
        ),
        description,
        authorization_type: auth_type.to_string(),
        auth_parameters: params,
        creation_time: now,
        last_modified_time: now,
    };
    save(b, CONNECTION, name, &spec).await?;
    ok(&json!({
        "ConnectionArn": spec.arn,
        "ConnectionState": "AUTHORIZED",
        "CreationTime": time(now),
        "LastModifiedTime": time(now),
    }))
}

pub fn describe_connection(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    let view = b.view();
    let c = view
        .connections
        .get(name)
        .ok_or_else(|| no_connection(name))?;
    let mut v = summary(c);
    v["AuthParameters"] = c.shown_parameters();
    if let Some(d) = &c.description {
        v["Description"] = d.clone().into();
    }
    ok(&v)
}

pub fn list_connections(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let prefix = opt(req, "NamePrefix")?.unwrap_or_default();
    let all: Vec<Value> = b
        .view()
        .connections
        .values()
        .filter(|c| c.name.starts_with(prefix))
        .map(|c| summary(c))
        .collect();
    let (items, next) = page(&all, req)?;
    let mut answer = json!({"Connections": items});
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    ok(&answer)
}

pub async fn delete_connection(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    let _changing = b.lock().await;
    let view = b.view();
    let c = view
        .connections
        .get(name)
        .ok_or_else(|| no_connection(name))?;
    if let Some(d) = view
        .api_destinations
        .values()
        .find(|d| d.connection_arn == c.arn)
    {
        return Err(validation(format!(
            "Connection {name} is used by the API destination {}: delete that first",
            d.name
        )));
    }
    b.store()
        .delete_bus_resource(CONNECTION, name)
        .await
        .map_err(store_failed)?;
    reload(b).await;
    let mut v = summary(c);
    v["ConnectionState"] = "DELETING".into();
    if let Some(o) = v.as_object_mut() {
        o.remove("Name");
        o.remove("AuthorizationType");
    }
    ok(&v)
}

fn describe_destination(d: &ApiDestinationSpec) -> Value {
    let mut v = json!({
        "ApiDestinationArn": d.arn,
        "Name": d.name,
        "ApiDestinationState": "ACTIVE",
        "ConnectionArn": d.connection_arn,
        "InvocationEndpoint": d.invocation_endpoint,
        "HttpMethod": d.http_method,
        "InvocationRateLimitPerSecond": d.invocation_rate_limit_per_second,
        "CreationTime": time(d.creation_time),
        "LastModifiedTime": time(d.last_modified_time),
    });
    if let Some(desc) = &d.description {
        v["Description"] = desc.clone().into();
    }
    v
}

pub async fn create_api_destination(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    check_name(name, "name", 64).map_err(validation)?;
    let connection = string(req, "ConnectionArn")?;
    let endpoint = string(req, "InvocationEndpoint")?;
    crate::http_client::Url::parse(endpoint)
        .map_err(|e| validation(format!("InvocationEndpoint {endpoint} is not valid: {e}")))?;
    let method = string(req, "HttpMethod")?;
    if !METHODS.contains(&method) {
        return Err(validation(format!(
            "1 validation error detected: Value '{method}' at 'httpMethod' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            METHODS.join(", ")
        )));
    }
    let rate = rate_limit(req)?.unwrap_or(300);
    let description = description(req)?;
    let _changing = b.lock().await;
    let view = b.view();
    if view.api_destinations.contains_key(name) {
        return Err(exists("An api-destination", name));
    }
    if !view.connections.values().any(|c| c.arn == connection) {
        return Err(not_found(format!(
            "Connection {connection} does not exist."
        )));
    }
    let now = crate::esm::spec::now_secs();
    let spec = ApiDestinationSpec {
        name: name.to_string(),
        arn: format!(
            "arn:aws:events:{}:{}:api-destination/{name}/{}",
            b.region,
            b.account,
            crate::new_uuid()
        ),
        description,
        connection_arn: connection.to_string(),
        invocation_endpoint: endpoint.to_string(),
        http_method: method.to_string(),
        invocation_rate_limit_per_second: rate,
        creation_time: now,
        last_modified_time: now,
    };
    save(b, API_DESTINATION, name, &spec).await?;
    ok(&json!({
        "ApiDestinationArn": spec.arn,
        "ApiDestinationState": "ACTIVE",
        "CreationTime": time(now),
        "LastModifiedTime": time(now),
    }))
}

pub fn describe_api_destination(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    let view = b.view();
    let d = view
        .api_destinations
        .get(name)
        .ok_or_else(|| no_destination(name))?;
    ok(&describe_destination(d))
}

pub fn list_api_destinations(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let prefix = opt(req, "NamePrefix")?.unwrap_or_default();
    let connection = opt(req, "ConnectionArn")?;
    let all: Vec<Value> = b
        .view()
        .api_destinations
        .values()
        .filter(|d| d.name.starts_with(prefix))
        .filter(|d| connection.is_none_or(|c| d.connection_arn == c))
        .map(|d| describe_destination(d))
        .collect();
    let (items, next) = page(&all, req)?;
    let mut answer = json!({"ApiDestinations": items});
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    ok(&answer)
}

pub async fn delete_api_destination(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    let _changing = b.lock().await;
    if !b.view().api_destinations.contains_key(name) {
        return Err(no_destination(name));
    }
    b.store()
        .delete_bus_resource(API_DESTINATION, name)
        .await
        .map_err(store_failed)?;
    reload(b).await;
    ok(&json!({}))
}

/// `b` laid over `a`: objects merge key by key, anything else replaces.
fn merged(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = a.clone();
            for (k, v) in b {
                let next = match out.get(k) {
                    Some(old) => merged(old, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), next);
            }
            Value::Object(out)
        }
        (_, b) => b.clone(),
    }
}

/// `UpdateConnection`: a new `AuthorizationType` takes whole
/// `AuthParameters`; without one, the given parameters are laid over the
/// stored ones (change only the API key's value, say). Checked as
/// `CreateConnection` checks.
pub async fn update_connection(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    let description = description(req)?;
    let _changing = b.lock().await;
    let old = b
        .view()
        .connections
        .get(name)
        .cloned()
        .ok_or_else(|| no_connection(name))?;
    let mut spec = (*old).clone();
    match (opt(req, "AuthorizationType")?, req.get("AuthParameters")) {
        (Some(t), Some(p)) => {
            spec.authorization_type = t.to_string();
            spec.auth_parameters = p.clone();
        }
        (Some(_), None) => {
            return Err(validation(
                "AuthParameters are required when AuthorizationType changes.",
            ))
        }
        (None, Some(p)) => spec.auth_parameters = merged(&spec.auth_parameters, p),
        (None, None) => {}
    }
    ConnectionSpec::check(&spec.authorization_type, &spec.auth_parameters).map_err(validation)?;
    if description.is_some() {
        spec.description = description;
    }
    spec.last_modified_time = crate::esm::spec::now_secs();
    save(b, CONNECTION, name, &spec).await?;
    ok(&json!({
        "ConnectionArn": spec.arn,
        "ConnectionState": "AUTHORIZED",
        "CreationTime": time(spec.creation_time),
        "LastModifiedTime": time(spec.last_modified_time),
        "LastAuthorizedTime": time(spec.last_modified_time),
    }))
}

/// `UpdateApiDestination`: the fields given replace the stored ones,
/// checked as `CreateApiDestination` checks them.
pub async fn update_api_destination(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    let description = description(req)?;
    let _changing = b.lock().await;
    let view = b.view();
    let mut spec = (**view
        .api_destinations
        .get(name)
        .ok_or_else(|| no_destination(name))?)
    .clone();
    if let Some(c) = opt(req, "ConnectionArn")? {
        if !view.connections.values().any(|x| x.arn == c) {
            return Err(not_found(format!("Connection {c} does not exist.")));
        }
        spec.connection_arn = c.to_string();
    }
    if let Some(e) = opt(req, "InvocationEndpoint")? {
        crate::http_client::Url::parse(e)
            .map_err(|err| validation(format!("InvocationEndpoint {e} is not valid: {err}")))?;
        spec.invocation_endpoint = e.to_string();
    }
    if let Some(m) = opt(req, "HttpMethod")? {
        if !METHODS.contains(&m) {
            return Err(validation(format!(
                "1 validation error detected: Value '{m}' at 'httpMethod' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                METHODS.join(", ")
            )));
        }
        spec.http_method = m.to_string();
    }
    if let Some(r) = rate_limit(req)? {
        spec.invocation_rate_limit_per_second = r;
    }
    if description.is_some() {
        spec.description = description;
    }
    spec.last_modified_time = crate::esm::spec::now_secs();
    save(b, API_DESTINATION, name, &spec).await?;
    ok(&json!({
        "ApiDestinationArn": spec.arn,
        "ApiDestinationState": "ACTIVE",
        "CreationTime": time(spec.creation_time),
        "LastModifiedTime": time(spec.last_modified_time),
    }))
}
