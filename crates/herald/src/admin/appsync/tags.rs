//! `TagResource`, `UntagResource`, `ListTagsForResource` on the API's and its
//! namespaces' ARNs, kept in the store. AppSync's rules: keys of 1-128
//! characters not starting with `aws:`, values of at most 256, at most 50
//! tags per resource.

use super::super::aws::{percent_decode, AwsError, Body};
use super::super::{AdminState, Scope};
use super::ok;
use hyper::Response;
use serde_json::{json, Map, Value};

const MAX_TAGS: usize = 50;

/// The API an ARN belongs to (`arn:aws:appsync:<region>:<account>:apis/<id>...`).
pub fn scope(state: &AdminState, arn: &str) -> Result<Scope, AwsError> {
    let id = arn
        .split_once(":apis/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .ok_or_else(|| not_found(arn))?;
    state.scope(id).map_err(|_| not_found(arn))
}

/// Whether `arn` names the API or one of its namespaces.
fn known(state: &Scope, arn: &str) -> bool {
    let api = state.api_arn();
    arn == api
        || arn
            .strip_prefix(&format!("{api}/channelNamespace/"))
            .is_some_and(|name| state.api.find_namespace(name).is_some())
}

/// History is set when a namespace is created (its streams depend on it).
fn history_fixed() -> AwsError {
    AwsError::bad_request(
        "The herald:history-* tags are set by CreateChannelNamespace and cannot change afterwards (delete and create the namespace)",
    )
}

fn not_found(arn: &str) -> AwsError {
    AwsError::not_found(format!("Resource {arn} not found."))
}

/// A resource's tags as AppSync's `tags` map (empty when the store fails:
/// reads degrade, they do not fail).
pub async fn of(state: &Scope, arn: &str) -> Value {
    let tags = state.api.store.tags(arn).await.unwrap_or_default();
    Value::Object(
        tags.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

/// Check a `tags` map.
pub fn check(tags: &Map<String, Value>) -> Result<Vec<(String, String)>, AwsError> {
    if tags.len() > MAX_TAGS {
        return Err(AwsError::bad_request(format!(
            "At most {MAX_TAGS} tags per resource"
        )));
    }
    tags.iter()
        .map(|(k, v)| {
            let v = v.as_str().ok_or_else(|| {
                AwsError::bad_request(format!("tag '{k}' must have a string value"))
            })?;
            if k.is_empty() || k.chars().count() > 128 || k.starts_with("aws:") {
                return Err(AwsError::bad_request(format!(
                    "tag key '{k}' must be 1-128 characters and not start with 'aws:'"
                )));
            }
            if v.chars().count() > 256 {
                return Err(AwsError::bad_request(format!(
                    "the value of tag '{k}' is longer than 256 characters"
                )));
            }
            Ok((k.clone(), v.to_string()))
        })
        .collect()
}

/// Store checked tags on a resource, within the per-resource limit.
pub async fn put(state: &Scope, arn: &str, tags: Vec<(String, String)>) -> Result<(), AwsError> {
    if tags.is_empty() {
        return Ok(());
    }
    let fits = state
        .api
        .store
        .put_tags(arn, tags, MAX_TAGS)
        .await
        .map_err(AwsError::store_failed)?;
    if fits {
        Ok(())
    } else {
        Err(AwsError::bad_request(format!(
            "A resource can have at most {MAX_TAGS} tags"
        )))
    }
}

pub async fn list(state: &Scope, arn: &str) -> Result<Response<Body>, AwsError> {
    if !known(state, arn) {
        return Err(not_found(arn));
    }
    Ok(ok(json!({"tags": of(state, arn).await})))
}

pub async fn tag(state: &Scope, arn: &str, body: &[u8]) -> Result<Response<Body>, AwsError> {
    if !known(state, arn) {
        return Err(not_found(arn));
    }
    let tags = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => match o.remove("tags") {
            Some(Value::Object(t)) if !t.is_empty() && o.is_empty() => t,
            _ => {
                return Err(AwsError::bad_request(
                    "The body must be {\"tags\": {...}} with at least one tag",
                ))
            }
        },
        _ => {
            return Err(AwsError::bad_request(
                "The request body must be a JSON object",
            ))
        }
    };
    if tags
        .keys()
        .any(|k| crate::hub::history::settings::is_history_tag(k))
    {
        return Err(history_fixed());
    }
    put(state, arn, check(&tags)?).await?;
    Ok(ok(json!({})))
}

pub async fn untag(state: &Scope, arn: &str, query: &str) -> Result<Response<Body>, AwsError> {
    if !known(state, arn) {
        return Err(not_found(arn));
    }
    let keys: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("tagKeys="))
        .map(percent_decode)
        .collect();
    if keys.is_empty() {
        return Err(AwsError::bad_request("tagKeys is required"));
    }
    if keys
        .iter()
        .any(|k| crate::hub::history::settings::is_history_tag(k))
    {
        return Err(history_fixed());
    }
    state
        .api
        .store
        .remove_tags(arn, Some(keys))
        .await
        .map_err(AwsError::store_failed)?;
    Ok(ok(json!({})))
}
