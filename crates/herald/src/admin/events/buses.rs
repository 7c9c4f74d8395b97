//! `CreateEventBus`, `DescribeEventBus`, `ListEventBuses`,
//! `DeleteEventBus`. The `default` bus always exists and cannot be created
//! or deleted; deleting a bus deletes its rules and their targets.

use super::super::aws::{AwsError, Body};
use super::{not_found, ok, opt, page, store_failed, string, time, validation, Req};
use crate::bus::spec::{bus_name, check_name, BusSpec, DEFAULT_BUS, MAX_BUSES};
use crate::bus::EventBuses;
use crate::store::StoredBus;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// Tags per resource (EventBridge's limit).
pub const MAX_TAGS: usize = 50;

/// `[{Key, Value}]` as pairs, checked.
pub fn tag_list(v: Option<&Value>) -> Result<Vec<(String, String)>, AwsError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let items = v
        .as_array()
        .ok_or_else(|| validation("Tags must be a list of {Key, Value}"))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for t in items {
        let k = t.get("Key").and_then(Value::as_str).unwrap_or_default();
        let val = t.get("Value").and_then(Value::as_str);
        let (Some(val), false) = (val, k.is_empty() || k.len() > 128) else {
            return Err(validation(
                "Each tag needs a Key (1-128 characters) and a Value",
            ));
        };
        if out.iter().any(|(o, _)| o == k) {
            return Err(validation(
                "Invalid parameter: Duplicated keys are not allowed.",
            ));
        }
        out.push((k.to_string(), val.to_string()));
    }
    Ok(out)
}

fn describe_bus(b: &EventBuses, spec: &BusSpec) -> Value {
    let mut v = json!({
        "Name": spec.name,
        "Arn": b.bus_arn(&spec.name),
        "CreationTime": time(spec.creation_time),
        "LastModifiedTime": time(spec.last_modified_time),
    });
    if let Some(d) = &spec.description {
        v["Description"] = d.clone().into();
    }
    v
}

pub async fn create(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    check_name(name, "name", 256).map_err(validation)?;
    if opt(req, "EventSourceName")?.is_some() {
        return Err(validation(
            "Herald has no partner event sources: leave EventSourceName out",
        ));
    }
    let description = opt(req, "Description")?;
    if description.is_some_and(|d| d.chars().count() > 512) {
        return Err(validation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 512"));
    }
    let tags = tag_list(req.get("Tags"))?;
    if tags.len() > MAX_TAGS {
        return Err(validation(format!(
            "A resource can have at most {MAX_TAGS} tags"
        )));
    }
    let _changing = b.lock().await;
    let view = b.view();
    if view.buses.contains_key(name) {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "ResourceAlreadyExistsException",
            format!("Event bus {name} already exists."),
        ));
    }
    if view.buses.len() > MAX_BUSES {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            format!("The requested resource exceeds the maximum number allowed ({MAX_BUSES} event buses)."),
        ));
    }
    let now = crate::esm::spec::now_secs();
    let spec = BusSpec {
        name: name.to_string(),
        description: description.map(str::to_string),
        creation_time: now,
        last_modified_time: now,
    };
    let arn = b.bus_arn(name);
    if !tags.is_empty() {
        b.store()
            .put_tags(&arn, tags, MAX_TAGS)
            .await
            .map_err(store_failed)?;
    }
    b.store()
        .put_bus(StoredBus {
            name: name.to_string(),
            spec: serde_json::to_string(&spec).expect("a bus serializes"),
        })
        .await
        .map_err(store_failed)?;
    reload(b).await;
    let mut answer = json!({"EventBusArn": arn});
    if let Some(d) = description {
        answer["Description"] = d.into();
    }
    ok(&answer)
}

/// Re-read the store after a change (what cannot be applied is logged).
pub async fn reload(b: &EventBuses) {
    match b.reload().await {
        Ok(problems) => {
            for p in problems {
                tracing::error!(problem = %p, "a stored bus or rule could not be applied");
            }
        }
        Err(e) => tracing::error!(error = %e, "re-reading the buses failed"),
    }
}

/// The bus a request names (`Name`, or `EventBusName`: a name or an ARN).
pub fn named(req: &Req, field: &str) -> Result<String, AwsError> {
    Ok(bus_name(opt(req, field)?))
}

pub fn describe(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = named(req, "Name")?;
    let view = b.view();
    let bus = view
        .buses
        .get(&name)
        .ok_or_else(|| not_found(format!("Event bus {name} does not exist.")))?;
    ok(&describe_bus(b, &bus.spec))
}

pub fn list(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let prefix = opt(req, "NamePrefix")?.unwrap_or_default();
    let view = b.view();
    let all: Vec<Value> = view
        .buses
        .values()
        .filter(|v| v.spec.name.starts_with(prefix))
        .map(|v| describe_bus(b, &v.spec))
        .collect();
    let (items, next) = page(&all, req)?;
    let mut answer = json!({"EventBuses": items});
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    ok(&answer)
}

pub async fn delete(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    if name == DEFAULT_BUS {
        return Err(validation("Cannot delete event bus default."));
    }
    if b.is_declared_bus(name) {
        return Err(validation(format!(
            "Cannot delete event bus {name}: Herald's configuration file declares it; remove it there."
        )));
    }
    let _changing = b.lock().await;
    let rules: Vec<String> = b
        .view()
        .buses
        .get(name)
        .map(|v| v.rules.keys().cloned().collect())
        .unwrap_or_default();
    if b.store().delete_bus(name).await.map_err(store_failed)? {
        for r in rules {
            let _ = b.store().remove_tags(&b.rule_arn(name, &r), None).await;
        }
        let _ = b.store().remove_tags(&b.bus_arn(name), None).await;
        reload(b).await;
    }
    ok(&json!({}))
}
