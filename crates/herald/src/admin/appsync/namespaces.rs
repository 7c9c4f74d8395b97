//! `CreateChannelNamespace`, `UpdateChannelNamespace`,
//! `DeleteChannelNamespace`: live namespaces on the configured API.
//!
//! A change is checked (name, auth modes among the API's providers, handler
//! code that loads), written to the store, then applied: a created namespace
//! serves the next operation, a changed one applies its new auth modes and
//! code to the next operation without touching connections, and a deleted one
//! refuses new operations and ends its subscriptions with a `subscribe_error`.
//! Namespaces the configuration file defines are changed in the file.

use super::super::aws::{AwsError, Body};
use super::super::Scope;
use super::{namespace_arn, namespace_shape, ok, tags};
use crate::config::{valid_namespace_name, AuthType, NamespaceConfig};
use crate::store::StoredNamespace;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// AppSync's quota of channel namespaces per API.
const MAX_NAMESPACES: usize = 50;

/// The fields of a create or update request.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    publish: Option<Vec<AuthType>>,
    subscribe: Option<Vec<AuthType>>,
    code: Option<String>,
    tags: Vec<(String, String)>,
    handler_configs: Option<Value>,
}

fn auth_modes(field: &str, v: Value, state: &Scope) -> Result<Vec<AuthType>, AwsError> {
    let bad = |m: String| AwsError::bad_request(m);
    let Value::Array(items) = v else {
        return Err(bad(format!(
            "{field} must be a list of {{\"authType\": ...}}"
        )));
    };
    if items.is_empty() {
        return Err(bad(format!(
            "{field} is empty: list at least one auth mode"
        )));
    }
    items
        .into_iter()
        .map(|item| {
            let t = item
                .get("authType")
                .cloned()
                .and_then(|t| serde_json::from_value::<AuthType>(t).ok())
                .ok_or_else(|| bad(format!("{field}: {item} is not an auth mode")))?;
            if !state.api.live().config.auth_providers.contains(&t) {
                return Err(bad(format!(
                    "{field} names {} but the API has no such auth provider",
                    t.as_str()
                )));
            }
            Ok(t)
        })
        .collect()
}

fn fields(body: &[u8], state: &Scope) -> Result<Fields, AwsError> {
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o,
        _ => {
            return Err(AwsError::bad_request(
                "The request body must be a JSON object",
            ))
        }
    };
    let mut f = Fields::default();
    for (k, v) in obj {
        match k.as_str() {
            "name" => {
                f.name = Some(
                    v.as_str()
                        .ok_or_else(|| AwsError::bad_request("name must be a string"))?
                        .to_string(),
                )
            }
            "publishAuthModes" => f.publish = Some(auth_modes(&k, v, state)?),
            "subscribeAuthModes" => f.subscribe = Some(auth_modes(&k, v, state)?),
            "codeHandlers" => match v {
                Value::String(code) => f.code = Some(code),
                Value::Null => {}
                _ => return Err(AwsError::bad_request("codeHandlers must be a string")),
            },
            "tags" => match v {
                Value::Object(t) => f.tags = tags::check(&t)?,
                _ => return Err(AwsError::bad_request("tags must be a map")),
            },
            "handlerConfigs" => match v {
                Value::Null => {}
                v => {
                    state
                        .api
                        .resolve_handler_configs(&v)
                        .map_err(AwsError::bad_request)?;
                    f.handler_configs = Some(v);
                }
            },
            other => return Err(AwsError::bad_request(format!("Unknown field '{other}'"))),
        }
    }
    Ok(f)
}

fn stored(ns: &NamespaceConfig) -> StoredNamespace {
    let names = |l: &[AuthType]| l.iter().map(|t| t.as_str().to_string()).collect();
    StoredNamespace {
        name: ns.name.clone(),
        publish_auth_modes: names(&ns.publish_auth_modes),
        subscribe_auth_modes: names(&ns.subscribe_auth_modes),
        code_handlers: ns.code_handlers.clone(),
        handler_configs: ns.handler_configs.as_ref().map(|v| v.to_string()),
    }
}

/// The namespace with its `handlerConfigs` resolved to DIRECT handlers.
fn with_direct(state: &Scope, mut ns: NamespaceConfig) -> Result<NamespaceConfig, AwsError> {
    if let Some(h) = &ns.handler_configs {
        let (on_publish, on_subscribe) = state
            .api
            .resolve_handler_configs(h)
            .map_err(AwsError::bad_request)?;
        ns.direct_on_publish = on_publish;
        ns.direct_on_subscribe = on_subscribe;
    }
    Ok(ns)
}

fn file_namespace(name: &str) -> AwsError {
    AwsError::bad_request(format!(
        "The channel namespace {name} is defined in Herald's configuration file: change it there"
    ))
}

/// Check the namespace's code, store it, then serve it.
async fn apply(state: &Scope, ns: NamespaceConfig) -> Result<(), AwsError> {
    if let Some(code) = &ns.code_handlers {
        // Checked before anything is stored: refused code changes nothing.
        crate::handlers::check_code(&ns.name, code, &state.api.config.handlers)
            .map_err(AwsError::bad_request)?;
    }
    state
        .api
        .store
        .put_namespace(&state.api.config.api_id, stored(&ns))
        .await
        .map_err(AwsError::store_failed)?;
    state.api.put_namespace(ns).map_err(AwsError::bad_request)
}

pub async fn create(state: &Scope, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let f = fields(body, state)?;
    let name = f
        .name
        .ok_or_else(|| AwsError::bad_request("name is required"))?;
    if !valid_namespace_name(&name) {
        return Err(AwsError::bad_request(format!(
            "name '{name}' is invalid: 1-50 letters, digits or '-', not starting or ending with '-'"
        )));
    }
    if state.api.find_namespace(&name).is_some() {
        return Err(AwsError::new(
            StatusCode::CONFLICT,
            "ConflictException",
            format!("Channel namespace {name} already exists."),
        ));
    }
    if state.api.namespace_list().len() >= MAX_NAMESPACES {
        return Err(AwsError::new(
            StatusCode::PAYMENT_REQUIRED,
            "ServiceQuotaExceededException",
            format!("An API can have at most {MAX_NAMESPACES} channel namespaces."),
        ));
    }
    let tags = f.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let history = crate::hub::history::settings::from_tags(tags, &format!("namespace '{name}'"))
        .map_err(AwsError::bad_request)?;
    let c = &state.api.live().config;
    let ns = NamespaceConfig {
        name,
        publish_auth_modes: f
            .publish
            .unwrap_or_else(|| c.default_publish_auth_modes.clone()),
        subscribe_auth_modes: f
            .subscribe
            .unwrap_or_else(|| c.default_subscribe_auth_modes.clone()),
        code_handlers: f.code,
        direct_on_publish: None,
        direct_on_subscribe: None,
        handler_configs: f.handler_configs,
        history,
    };
    let ns = with_direct(state, ns)?;
    // Tags first: a node that learns of the namespace from the store reads
    // its history from them.
    let arn = namespace_arn(state, &ns.name);
    tags::put(state, &arn, f.tags).await?;
    if let Err(e) = apply(state, ns.clone()).await {
        let _ = state.api.store.remove_tags(&arn, None).await;
        return Err(e);
    }
    tracing::info!(namespace = %ns.name, "channel namespace created");
    Ok(ok(
        json!({"channelNamespace": namespace_shape(state, &ns).await}),
    ))
}

pub async fn update(state: &Scope, name: &str, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let f = fields(body, state)?;
    let current = state
        .api
        .find_namespace(name)
        .ok_or_else(|| AwsError::not_found(format!("Channel namespace {name} not found.")))?;
    if state.api.namespace_from_file(name) {
        return Err(file_namespace(name));
    }
    if f.name.as_deref().is_some_and(|n| n != name) {
        return Err(AwsError::bad_request("A namespace cannot be renamed"));
    }
    let ns = NamespaceConfig {
        name: name.to_string(),
        publish_auth_modes: f.publish.unwrap_or(current.publish_auth_modes.clone()),
        subscribe_auth_modes: f.subscribe.unwrap_or(current.subscribe_auth_modes.clone()),
        code_handlers: f.code.or(current.code_handlers.clone()),
        direct_on_publish: None,
        direct_on_subscribe: None,
        handler_configs: f.handler_configs.or(current.handler_configs.clone()),
        history: current.history,
    };
    let ns = with_direct(state, ns)?;
    if !f.tags.is_empty() {
        return Err(AwsError::bad_request(
            "UpdateChannelNamespace does not take tags: use TagResource",
        ));
    }
    apply(state, ns.clone()).await?;
    tracing::info!(namespace = %name, "channel namespace updated");
    Ok(ok(
        json!({"channelNamespace": namespace_shape(state, &ns).await}),
    ))
}

pub async fn delete(state: &Scope, name: &str) -> Result<Response<Body>, AwsError> {
    if state.api.find_namespace(name).is_none() {
        return Err(AwsError::not_found(format!(
            "Channel namespace {name} not found."
        )));
    }
    if state.api.namespace_from_file(name) {
        return Err(file_namespace(name));
    }
    state
        .api
        .store
        .delete_namespace(&state.api.config.api_id, name)
        .await
        .map_err(AwsError::store_failed)?;
    let ended = state.api.remove_namespace(name);
    // Its tags go with it (a failure here leaves only orphaned tags behind).
    let _ = state
        .api
        .store
        .remove_tags(&namespace_arn(state, name), None)
        .await;
    tracing::info!(namespace = %name, subscriptions_ended = ended, "channel namespace deleted");
    Ok(ok(json!({})))
}
