//! `TagResource`, `UntagResource`, `ListTagsForResource` on buses and rules
//! (`ResourceARN`; EventBridge's `[{Key, Value}]` lists).

use super::super::aws::{AwsError, Body};
use super::buses::{tag_list, MAX_TAGS};
use super::{not_found, ok, store_failed, string, validation, Req};
use crate::bus::EventBuses;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// The ARN, if it names a bus or rule this server has.
fn existing<'a>(b: &EventBuses, req: &'a Req) -> Result<&'a str, AwsError> {
    let arn = string(req, "ResourceARN")?;
    let view = b.view();
    let found = view.buses.values().any(|v| {
        b.bus_arn(&v.spec.name) == arn
            || v.rules
                .values()
                .any(|r| b.rule_arn(&r.event_bus_name, &r.name) == arn)
    });
    if found {
        Ok(arn)
    } else {
        Err(not_found(format!("Resource {arn} does not exist.")))
    }
}

pub async fn tag(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let arn = existing(b, req)?;
    let tags = tag_list(req.get("Tags"))?;
    if !b
        .store()
        .put_tags(arn, tags, MAX_TAGS)
        .await
        .map_err(store_failed)?
    {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            format!("A resource can have at most {MAX_TAGS} tags."),
        ));
    }
    ok(&json!({}))
}

pub async fn untag(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let arn = existing(b, req)?;
    let keys: Vec<String> = req
        .get("TagKeys")
        .and_then(Value::as_array)
        .ok_or_else(|| validation("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null"))?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    b.store()
        .remove_tags(arn, Some(keys))
        .await
        .map_err(store_failed)?;
    ok(&json!({}))
}

pub async fn list(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let arn = existing(b, req)?;
    let tags = b.store().tags(arn).await.map_err(store_failed)?;
    let list: Vec<Value> = tags
        .into_iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    ok(&json!({"Tags": list}))
}
