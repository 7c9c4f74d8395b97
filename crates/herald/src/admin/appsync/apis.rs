//! `CreateApi`, `UpdateApi` and `DeleteApi`: more Event APIs on one server.
//!
//! A created API gets a fresh id (26 lowercase letters and digits, AppSync's
//! shape) and its own namespaces, keys, auth and hub: nothing crosses between
//! APIs. It serves at `/apis/<apiId>/event` and `/event/realtime` as soon as
//! the answer is sent, and starts with no namespace and no key (as on AWS:
//! create them next). It is kept in the store and served again after a
//! restart. Deleting it removes what it owns and closes its WebSocket
//! connections with 1008 "API deleted". The configuration file's API is
//! changed in the file.

use super::super::aws::{AwsError, Body};
use super::super::AdminState;
use super::{api_shape, ok, tags};
use crate::store::StoredApi;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

/// AppSync's quota of Event APIs per account and region.
const MAX_APIS: usize = 50;

fn new_api_id() -> String {
    crate::config::random_text(crate::config::LOWER_ALNUM, 26)
}

fn object(body: &[u8]) -> Result<Map<String, Value>, AwsError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err(AwsError::bad_request(
            "The request body must be a JSON object",
        )),
    }
}

/// `name`: required, AppSync's pattern.
fn name(obj: &mut Map<String, Value>) -> Result<String, AwsError> {
    let name = match obj.remove("name") {
        Some(Value::String(n)) => n,
        _ => return Err(AwsError::bad_request("name is required (a string)")),
    };
    if name.is_empty()
        || name.chars().count() > 50
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
    {
        return Err(AwsError::bad_request(format!(
            "name '{name}' is invalid: 1-50 letters, digits, '_', '-' or spaces"
        )));
    }
    Ok(name)
}

fn owner_contact(obj: &mut Map<String, Value>) -> Result<Option<String>, AwsError> {
    match obj.remove("ownerContact") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AwsError::bad_request("ownerContact must be a string")),
    }
}

pub async fn create(state: &AdminState, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let mut obj = object(body)?;
    let name = name(&mut obj)?;
    let event_config = match obj.remove("eventConfig") {
        Some(v @ Value::Object(_)) => v,
        _ => return Err(AwsError::bad_request("eventConfig is required (an object)")),
    };
    let owner_contact = owner_contact(&mut obj)?;
    let tag_list = match obj.remove("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(t)) => tags::check(&t)?,
        Some(_) => return Err(AwsError::bad_request("tags must be a map")),
    };
    if let Some(other) = obj.keys().next() {
        return Err(AwsError::bad_request(format!("Unknown field '{other}'")));
    }
    if state.apis.all().len() >= MAX_APIS {
        return Err(AwsError::new(
            StatusCode::PAYMENT_REQUIRED,
            "ServiceQuotaExceededException",
            format!("A server can run at most {MAX_APIS} APIs."),
        ));
    }
    let default = state.apis.default_api().clone();
    let stored = StoredApi {
        api_id: new_api_id(),
        name,
        owner_contact,
        event_config,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64().floor())
            .unwrap_or(0.0),
    };
    // Built (and so checked) before anything is stored.
    let api = crate::api::EventApi::create(
        &default.config,
        &stored,
        default.store.clone(),
        default.functions.clone(),
        default.workflows.clone(),
    )
    .await
    .map_err(AwsError::bad_request)?;
    default
        .store
        .insert_api(stored.clone())
        .await
        .map_err(AwsError::store_failed)?;
    state.apis.insert(api.clone());
    let scope = state.scope_of(api);
    tags::put(&scope, &scope.api_arn(), tag_list).await?;
    tracing::info!(api = %stored.api_id, name = %stored.name, "API created");
    Ok(ok(json!({"api": api_shape(&scope).await})))
}

pub async fn delete(state: &AdminState, id: &str) -> Result<Response<Body>, AwsError> {
    let scope = state.scope(id)?;
    if id == state.apis.default_api().config.api_id {
        return Err(AwsError::bad_request(
            "The API is defined in Herald's configuration file: change it there",
        ));
    }
    let found = scope
        .api
        .store
        .delete_api(id, &scope.api_arn())
        .await
        .map_err(AwsError::store_failed)?;
    if !found {
        return Err(AwsError::not_found(format!("GraphQL API {id} not found.")));
    }
    state.apis.remove(id);
    let closed = scope.api.revoke_all_connections();
    tracing::info!(api = %id, closed, "API deleted");
    Ok(ok(json!({})))
}

/// `UpdateApi`: a created API's `name`, `ownerContact` and `eventConfig`
/// (each absent optional member keeps its value). Checked like `CreateApi`,
/// and refused when a namespace uses an auth mode the new `eventConfig` no
/// longer provides. Applied to the next operation of every connection; no
/// connection is closed.
pub async fn update(state: &AdminState, id: &str, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let scope = state.scope(id)?;
    let mut obj = object(body)?;
    let name = name(&mut obj)?;
    let owner_contact = owner_contact(&mut obj)?;
    let event_config = match obj.remove("eventConfig") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => return Err(AwsError::bad_request("eventConfig must be an object")),
    };
    if let Some(other) = obj.keys().next() {
        return Err(AwsError::bad_request(format!("Unknown field '{other}'")));
    }
    let Some(current) = scope.api.live().stored.clone() else {
        return Err(AwsError::bad_request(
            "The API is defined in Herald's configuration file: change it there",
        ));
    };
    let stored = StoredApi {
        name,
        owner_contact: owner_contact.or(current.owner_contact.clone()),
        event_config: event_config.unwrap_or(current.event_config.clone()),
        ..current
    };
    let default = state.apis.default_api();
    let config = crate::config::ApiConfig::derived(
        &default.config,
        id,
        &stored.name,
        stored.owner_contact.clone(),
        &stored.event_config,
    )
    .map_err(AwsError::bad_request)?;
    for ns in scope.api.namespace_list() {
        let used = ns.publish_auth_modes.iter().chain(&ns.subscribe_auth_modes);
        if let Some(mode) = used
            .into_iter()
            .find(|m| !config.auth_providers.contains(m))
        {
            return Err(AwsError::bad_request(format!(
                "Channel namespace {} uses {}, which eventConfig.authProviders no longer lists: change the namespace first",
                ns.name,
                mode.as_str()
            )));
        }
    }
    let found = default
        .store
        .update_api(stored.clone())
        .await
        .map_err(AwsError::store_failed)?;
    if !found {
        return Err(AwsError::not_found(format!("GraphQL API {id} not found.")));
    }
    scope.api.set_live(config, stored);
    tracing::info!(api = %id, "API updated");
    Ok(ok(json!({"api": api_shape(&scope).await})))
}
