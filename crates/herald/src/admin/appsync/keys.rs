//! `CreateApiKey`, `UpdateApiKey`, `DeleteApiKey`: live API keys.
//!
//! A change is written to the store first (durably: the answer means it
//! survives a restart), then applied to the running API: a created key
//! works for the next request, a deleted one is refused from the next
//! request on, and the WebSocket connections made with it are closed with
//! 1008 "API key deleted". Keys defined in the configuration file are not
//! changed here (change the file).
//!
//! AppSync's rules: `expires` is epoch seconds, rounded down to the hour,
//! from 1 to 365 days ahead (default 7 days); a key is deleted 60 days after
//! it expires (`deletes`); at most 50 keys per API.

use super::super::aws::{json_response, AwsError, Body};
use super::super::Scope;
use crate::auth::KeyEntry;
use crate::store::StoredKey;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

const DAY: i64 = 24 * 3600;
const MAX_KEYS: usize = 50;
const MAX_DESCRIPTION: usize = 1024;

/// AppSync's `ApiKey` shape.
pub fn shape(id: &str, k: &KeyEntry) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(id));
    if let Some(d) = &k.description {
        v.insert("description".into(), json!(d));
    }
    if let Some(e) = k.expires {
        v.insert("expires".into(), json!(e));
    }
    if let Some(d) = k.deletes {
        v.insert("deletes".into(), json!(d));
    }
    Value::Object(v)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The request body's `description` and `expires`, checked.
fn fields(body: &[u8]) -> Result<(Option<String>, Option<i64>), AwsError> {
    let obj = match body {
        b"" => Map::new(),
        _ => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(o)) => o,
            _ => {
                return Err(AwsError::bad_request(
                    "The request body must be a JSON object",
                ))
            }
        },
    };
    let mut description = None;
    let mut expires = None;
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("description", Value::String(d)) => {
                if d.chars().count() > MAX_DESCRIPTION {
                    return Err(AwsError::bad_request(format!(
                        "description is longer than {MAX_DESCRIPTION} characters"
                    )));
                }
                description = Some(d);
            }
            ("description", Value::Null) | ("expires", Value::Null) => {}
            ("expires", Value::Number(n)) => {
                expires = Some(n.as_i64().ok_or_else(|| {
                    AwsError::bad_request("expires must be whole epoch seconds")
                })?)
            }
            ("description" | "expires", _) => {
                return Err(AwsError::bad_request(format!("{k} has the wrong type")))
            }
            (other, _) => {
                return Err(AwsError::bad_request(format!(
                    "Unknown field '{other}' (CreateApiKey and UpdateApiKey take description and expires)"
                )))
            }
        }
    }
    Ok((description, expires))
}

/// `expires` rounded down to the hour and within AppSync's bounds.
fn validity(expires: Option<i64>) -> Result<i64, AwsError> {
    let now = now();
    let expires = expires.unwrap_or(now + 7 * DAY);
    let expires = expires - expires.rem_euclid(3600);
    let out_of_bounds = |m: &str| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "ApiKeyValidityOutOfBoundsException",
            m.to_string(),
        )
    };
    if expires < now + DAY - 3600 {
        return Err(out_of_bounds(
            "API key must be valid for a minimum of 1 days.",
        ));
    }
    if expires > now + 365 * DAY {
        return Err(out_of_bounds(
            "API key must be valid for a maximum of 365 days.",
        ));
    }
    Ok(expires)
}

fn file_key(id: &str) -> AwsError {
    AwsError::bad_request(format!(
        "The API key {} is defined in Herald's configuration file: change it there",
        redact(id)
    ))
}

/// A key in messages and logs: its first characters only.
fn redact(id: &str) -> String {
    format!("{}…", id.chars().take(8).collect::<String>())
}

pub async fn create(state: &Scope, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let (description, expires) = fields(body)?;
    let expires = validity(expires)?;
    let keys = state.api.api_keys();
    if keys.len() >= MAX_KEYS {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "ApiKeyLimitExceededException",
            format!("The API key limit of {MAX_KEYS} has been exceeded."),
        ));
    }
    let stored = StoredKey {
        id: crate::config::generate_api_key(),
        description,
        expires,
        deletes: expires + 60 * DAY,
    };
    state
        .api
        .store
        .insert_key(&state.api.config.api_id, stored.clone())
        .await
        .map_err(AwsError::store_failed)?;
    let entry = KeyEntry {
        description: stored.description,
        expires: Some(stored.expires),
        deletes: Some(stored.deletes),
        from_file: false,
    };
    keys.insert(&stored.id, entry.clone());
    tracing::info!(key = %redact(&stored.id), "API key created");
    Ok(json_response(
        StatusCode::OK,
        &json!({"apiKey": shape(&stored.id, &entry)}),
    ))
}

pub async fn update(state: &Scope, id: &str, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let (description, expires) = fields(body)?;
    let keys = state.api.api_keys();
    let current = keys
        .get(id)
        .ok_or_else(|| AwsError::not_found("API key not found."))?;
    if current.from_file {
        return Err(file_key(id));
    }
    let expires = match expires {
        Some(e) => validity(Some(e))?,
        None => current.expires.unwrap_or_else(now),
    };
    let stored = StoredKey {
        id: id.to_string(),
        description: description.or(current.description),
        expires,
        deletes: expires + 60 * DAY,
    };
    let found = state
        .api
        .store
        .update_key(&state.api.config.api_id, stored.clone())
        .await
        .map_err(AwsError::store_failed)?;
    if !found {
        return Err(AwsError::not_found("API key not found."));
    }
    let entry = KeyEntry {
        description: stored.description,
        expires: Some(stored.expires),
        deletes: Some(stored.deletes),
        from_file: false,
    };
    keys.insert(id, entry.clone());
    Ok(json_response(
        StatusCode::OK,
        &json!({"apiKey": shape(id, &entry)}),
    ))
}

pub async fn delete(state: &Scope, id: &str) -> Result<Response<Body>, AwsError> {
    let keys = state.api.api_keys();
    match keys.get(id) {
        None => return Err(AwsError::not_found("API key not found.")),
        Some(k) if k.from_file => return Err(file_key(id)),
        Some(_) => {}
    }
    state
        .api
        .store
        .delete_key(&state.api.config.api_id, id)
        .await
        .map_err(AwsError::store_failed)?;
    keys.remove(id);
    let closed = state.api.revoke_key_connections(id);
    tracing::info!(key = %redact(id), closed, "API key deleted");
    Ok(json_response(StatusCode::OK, &json!({})))
}
