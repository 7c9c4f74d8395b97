//! AppSync's control-plane API (REST-JSON, `/v2/apis...` and
//! `/v1/apis/{apiId}/apikeys...`), with AWS's shapes, status codes and
//! exceptions, over the API Herald serves.
//!
//! The configuration file's API, and those `CreateApi` adds ([`apis`]); for
//! each, API keys ([`keys`]), channel namespaces ([`namespaces`]), data
//! sources ([`datasources`]) and tags ([`tags`]) are live: created, changed and deleted while clients are
//! served, kept in the store, listed with the file's; a created API's own
//! settings change with `UpdateApi`. The file's own resources are changed
//! in the file.

mod apis;
mod datasources;
mod keys;
mod namespaces;
mod tags;

use super::aws::{json_response, page, AwsError, Body};
use super::{AdminState, Scope};
use crate::config::{AuthType, NamespaceConfig, ProviderConfig};
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// AppSync's page size limit for list operations.
const MAX_RESULTS: usize = 25;

/// Route a REST request; `None` when no AppSync operation has this method
/// and path.
pub async fn route(
    state: &AdminState,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Option<Result<Response<Body>, AwsError>> {
    let segments = super::aws::path_segments(path);
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let read = method == Method::GET;
    Some(match seg.as_slice() {
        ["v2", "apis"] if read => list_apis(state, query).await,
        ["v2", "apis"] if method == Method::POST => apis::create(state, body).await,
        ["v2", "apis", id] if method == Method::DELETE => apis::delete(state, id).await,
        ["v2", "apis", id] if method == Method::POST => apis::update(state, id, body).await,
        ["v2", "apis", id] if read => match state.scope(id) {
            Ok(s) => Ok(ok(json!({"api": api_shape(&s).await}))),
            Err(e) => Err(e),
        },
        ["v2", "apis", id, "channelNamespaces"] if read => match state.scope(id) {
            Ok(s) => list_namespaces(&s, query).await,
            Err(e) => Err(e),
        },
        ["v2", "apis", id, "channelNamespaces"] if method == Method::POST => {
            match state.scope(id) {
                Ok(s) => namespaces::create(&s, body).await,
                Err(e) => Err(e),
            }
        }
        ["v2", "apis", id, "channelNamespaces", name] if method == Method::POST => {
            match state.scope(id) {
                Ok(s) => namespaces::update(&s, name, body).await,
                Err(e) => Err(e),
            }
        }
        ["v2", "apis", id, "channelNamespaces", name] if method == Method::DELETE => {
            match state.scope(id) {
                Ok(s) => namespaces::delete(&s, name).await,
                Err(e) => Err(e),
            }
        }
        ["v2", "apis", id, "channelNamespaces", name] if read => {
            match state
                .scope(id)
                .and_then(|s| namespace_by_name(&s, name).map(|ns| (s, ns)))
            {
                Ok((s, ns)) => Ok(ok(
                    json!({"channelNamespace": namespace_shape(&s, &ns).await}),
                )),
                Err(e) => Err(e),
            }
        }
        ["v1", "apis", id, "apikeys"] if read => {
            state.scope(id).and_then(|s| list_api_keys(&s, query))
        }
        ["v1", "apis", id, "datasources"] if read => {
            state.scope(id).and_then(|s| datasources::list(&s, query))
        }
        ["v1", "apis", id, "datasources"] if method == Method::POST => match state.scope(id) {
            Ok(s) => datasources::create(&s, body).await,
            Err(e) => Err(e),
        },
        ["v1", "apis", id, "datasources", name] if read => {
            state.scope(id).and_then(|s| datasources::get(&s, name))
        }
        ["v1", "apis", id, "datasources", name] if method == Method::POST => {
            match state.scope(id) {
                Ok(s) => datasources::update(&s, name, body).await,
                Err(e) => Err(e),
            }
        }
        ["v1", "apis", id, "datasources", name] if method == Method::DELETE => {
            match state.scope(id) {
                Ok(s) => datasources::delete(&s, name).await,
                Err(e) => Err(e),
            }
        }
        ["v1", "tags", arn] => match tags::scope(state, arn) {
            Err(e) => Err(e),
            Ok(s) if read => tags::list(&s, arn).await,
            Ok(s) if method == Method::POST => tags::tag(&s, arn, body).await,
            Ok(s) if method == Method::DELETE => tags::untag(&s, arn, query).await,
            Ok(_) => return None,
        },
        ["v1", "apis", id, "apikeys"] if method == Method::POST => match state.scope(id) {
            Ok(s) => keys::create(&s, body).await,
            Err(e) => Err(e),
        },
        ["v1", "apis", id, "apikeys", key] if method == Method::POST => match state.scope(id) {
            Ok(s) => keys::update(&s, key, body).await,
            Err(e) => Err(e),
        },
        ["v1", "apis", id, "apikeys", key] if method == Method::DELETE => match state.scope(id) {
            Ok(s) => keys::delete(&s, key).await,
            Err(e) => Err(e),
        },
        ["v2", "apis"]
        | ["v2", "apis", _]
        | ["v2", "apis", _, "channelNamespaces"]
        | ["v2", "apis", _, "channelNamespaces", _]
        | ["v1", "apis", _, "apikeys"]
        | ["v1", "apis", _, "apikeys", _] => Err(read_only()),
        _ => return None,
    })
}

pub(super) fn ok(body: Value) -> Response<Body> {
    json_response(StatusCode::OK, &body)
}

fn read_only() -> AwsError {
    AwsError::bad_request(
        "The API is defined in Herald's configuration file: change it there and restart",
    )
}

impl Scope {
    pub(super) fn api_arn(&self) -> String {
        let c = &self.api.config;
        format!(
            "arn:aws:appsync:{}:{}:apis/{}",
            c.aws_region, c.account_id, c.api_id
        )
    }
}

pub(super) fn modes(list: &[AuthType]) -> Value {
    Value::Array(
        list.iter()
            .map(|m| json!({"authType": m.as_str()}))
            .collect(),
    )
}

/// The API's shape with its stored tags.
pub(super) async fn api_shape(state: &Scope) -> Value {
    let mut v = api(state);
    v["tags"] = tags::of(state, &state.api_arn()).await;
    v
}

/// A namespace's shape with its stored tags.
pub(super) async fn namespace_shape(state: &Scope, ns: &NamespaceConfig) -> Value {
    let mut v = namespace(state, ns);
    v["tags"] = tags::of(state, &namespace_arn(state, &ns.name)).await;
    v
}

pub(super) fn namespace_arn(state: &Scope, name: &str) -> String {
    state.api.namespace_arn(name)
}

/// AppSync's `Api` shape for the configured API.
fn api(state: &Scope) -> Value {
    let live = state.api.live();
    let c = &live.config;
    let providers: Vec<Value> = c
        .providers
        .iter()
        .map(|p| match p {
            ProviderConfig::ApiKey => json!({"authType": "API_KEY"}),
            ProviderConfig::Iam => json!({"authType": "AWS_IAM"}),
            ProviderConfig::Cognito(cc) => json!({"authType": "AMAZON_COGNITO_USER_POOLS",
                "cognitoConfig": {"userPoolId": cc.user_pool_id, "awsRegion": cc.aws_region,
                                  "appIdClientRegex": cc.app_id_client_regex}}),
            ProviderConfig::Oidc(oc) => json!({"authType": "OPENID_CONNECT",
                "openIDConnectConfig": {"issuer": oc.issuer, "clientId": oc.client_id,
                                        "iatTTL": oc.iat_ttl, "authTTL": oc.auth_ttl}}),
            ProviderConfig::Lambda(lc) => json!({"authType": "AWS_LAMBDA",
                "lambdaAuthorizerConfig": {"authorizerUri": lc.authorizer_uri,
                    "authorizerResultTtlInSeconds": lc.authorizer_result_ttl_in_seconds,
                    "identityValidationExpression": lc.identity_validation_expression}}),
        })
        .collect();
    let mut event_config = json!({
        "authProviders": providers,
        "connectionAuthModes": modes(&c.connection_auth_modes),
        "defaultPublishAuthModes": modes(&c.default_publish_auth_modes),
        "defaultSubscribeAuthModes": modes(&c.default_subscribe_auth_modes),
    });
    if let Some(level) = &c.log_level {
        event_config["logConfig"] = json!({"logLevel": level, "cloudWatchLogsRoleArn": ""});
    }
    let host = state.public_authority();
    without_nulls(json!({
        "apiId": c.api_id,
        "name": c.name,
        "ownerContact": c.owner_contact,
        "tags": {},
        "dns": {"HTTP": host, "REALTIME": host},
        "apiArn": state.api_arn(),
        "created": state.created,
        "xrayEnabled": false,
        "eventConfig": event_config,
    }))
}

/// AppSync leaves absent optional members out rather than sending null.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

async fn list_apis(state: &AdminState, query: &str) -> Result<Response<Body>, AwsError> {
    let mut all = Vec::new();
    for api in state.apis.all() {
        all.push(api_shape(&state.scope_of(api)).await);
    }
    let (apis, next) = page(&all, query, MAX_RESULTS)?;
    Ok(ok(without_nulls(json!({"apis": apis, "nextToken": next}))))
}

fn namespace_by_name(state: &Scope, name: &str) -> Result<Arc<NamespaceConfig>, AwsError> {
    state
        .api
        .find_namespace(name)
        .ok_or_else(|| AwsError::not_found(format!("Channel namespace {name} not found.")))
}

/// AppSync's `ChannelNamespace` shape.
fn namespace(state: &Scope, ns: &NamespaceConfig) -> Value {
    let c = &state.api.config;
    without_nulls(json!({
        "apiId": c.api_id,
        "name": ns.name,
        "subscribeAuthModes": modes(&ns.subscribe_auth_modes),
        "publishAuthModes": modes(&ns.publish_auth_modes),
        "codeHandlers": ns.code_handlers,
        "handlerConfigs": ns.handler_configs,
        "tags": {},
        "channelNamespaceArn": namespace_arn(state, &ns.name),
        "created": state.created,
        "lastModified": state.created,
    }))
}

async fn list_namespaces(state: &Scope, query: &str) -> Result<Response<Body>, AwsError> {
    let mut all = Vec::new();
    for ns in state.api.namespace_list() {
        all.push(namespace_shape(state, &ns).await);
    }
    let (items, next) = page(&all, query, MAX_RESULTS)?;
    Ok(ok(without_nulls(
        json!({"channelNamespaces": items, "nextToken": next}),
    )))
}

fn list_api_keys(state: &Scope, query: &str) -> Result<Response<Body>, AwsError> {
    let all: Vec<Value> = state
        .api
        .api_keys()
        .list()
        .into_iter()
        .map(|(id, k)| keys::shape(&id, &k))
        .collect();
    let (items, next) = page(&all, query, MAX_RESULTS)?;
    Ok(ok(without_nulls(
        json!({"apiKeys": items, "nextToken": next}),
    )))
}
