//! AWS Fault Injection Service's API (REST-JSON, signing name `fis`):
//! experiment templates, experiments and the action catalogue, over
//! [`crate::faults`]. Refused with a `ValidationException` unless fault
//! injection is enabled (`[fault_injection] enabled = true`, or the
//! development mode).

use super::aws::{json_response, query_param, AwsError, Body};
use super::AdminState;
use crate::faults::experiments::{self, FisError, Host};
use crate::faults::{actions, Faults};
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

fn error(e: FisError) -> AwsError {
    let status = match e.kind {
        "ResourceNotFoundException" => StatusCode::NOT_FOUND,
        "ConflictException" => StatusCode::CONFLICT,
        "ServiceQuotaExceededException" => StatusCode::PAYMENT_REQUIRED,
        _ => StatusCode::BAD_REQUEST,
    };
    AwsError::new(status, e.kind, e.message)
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
}

fn ok(body: Value) -> Result<Response<Body>, AwsError> {
    Ok(json_response(StatusCode::OK, &body))
}

/// What experiments act on: the server's functions and APIs.
pub(super) struct ServerHost {
    pub(super) apis: Arc<crate::api::Registry>,
}

impl ServerHost {
    fn api(&self, arn: &str) -> Option<Arc<crate::api::EventApi>> {
        let id = arn.rsplit_once(":apis/")?.1;
        self.apis
            .get(id)
            .filter(|a| crate::api::api_arn(&a.config) == arn)
    }
}

impl Host for ServerHost {
    fn function_exists(&self, arn: &str) -> bool {
        let functions = &self.apis.default_api().functions;
        functions
            .get(arn)
            .is_some_and(|f| functions.arn(&f.spec.name) == arn)
    }

    fn api_exists(&self, arn: &str) -> bool {
        self.api(arn).is_some()
    }

    fn namespace_exists(&self, arn: &str) -> bool {
        let Some((api, name)) = arn.split_once("/channelNamespace/") else {
            return false;
        };
        self.api(api)
            .is_some_and(|a| a.find_namespace(name).is_some() && a.namespace_arn(name) == arn)
    }

    fn close_connections(&self, api_arn: &str, percentage: f64) -> usize {
        self.api(api_arn)
            .map(|a| a.close_connections_share(percentage))
            .unwrap_or(0)
    }
}

fn body_json(body: &[u8]) -> Result<Value, AwsError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| validation(format!("The request body is not JSON: {e}")))
}

fn action_json(spec: &actions::ActionSpec, region: &str, account: &str, full: bool) -> Value {
    let mut a = json!({
        "id": spec.id,
        "arn": format!("arn:aws:fis:{region}:{account}:action/{}", spec.id),
        "description": spec.description,
        "targets": spec.target.map(|(k, t)| json!({k: {"resourceType": t}})).unwrap_or(json!({})),
        "tags": {},
    });
    if full {
        a["parameters"] = spec
            .params
            .iter()
            .map(|p| {
                (
                    p.name.to_string(),
                    json!({"description": p.description, "required": p.required}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    a
}

fn summary(v: &Value, keys: &[&str]) -> Value {
    keys.iter()
        .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn start(
    state: &AdminState,
    faults: &Arc<Faults>,
    body: &[u8],
    region: &str,
    account: &str,
) -> Result<Response<Body>, AwsError> {
    let b = body_json(body)?;
    let template = b
        .get("experimentTemplateId")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("experimentTemplateId is required"))?;
    let host = Arc::new(ServerHost {
        apis: state.apis.clone(),
    });
    let tags = b.get("tags").cloned();
    let e = experiments::start(faults, host, template, tags, region, account)
        .await
        .map_err(error)?;
    ok(json!({"experiment": e}))
}

/// Route a REST request; `None` when no FIS operation has this path.
pub async fn route(
    state: &AdminState,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Option<Result<Response<Body>, AwsError>> {
    let segments = super::aws::path_segments(path);
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    if !matches!(
        seg.first(),
        Some(&"experimentTemplates" | &"experiments" | &"actions" | &"targetResourceTypes")
    ) {
        return None;
    }
    let api = state.apis.default_api();
    let faults: &Arc<Faults> = api.functions.faults();
    if !faults.enabled() {
        return Some(Err(validation(
            "Fault injection is disabled on this server: set [fault_injection] enabled = true in its configuration",
        )));
    }
    let (region, account) = (api.config.aws_region.clone(), api.config.account_id.clone());
    let exps = &faults.experiments;
    let m = method.clone();
    Some(match (seg.as_slice(), m) {
        (["actions"], Method::GET) => ok(json!({"actions": actions::CATALOGUE
            .iter()
            .map(|a| action_json(a, &region, &account, false))
            .collect::<Vec<_>>()})),
        (["actions", id], Method::GET) => match actions::find(id) {
            Some(a) => ok(json!({"action": action_json(a, &region, &account, true)})),
            None => Err(error(FisError {
                kind: "ResourceNotFoundException",
                message: format!("Action {id} not found"),
            })),
        },
        (["targetResourceTypes"], Method::GET) => ok(json!({"targetResourceTypes": [
            {"resourceType": actions::FUNCTION, "description": "Herald functions (Lambda's API)"},
            {"resourceType": actions::API, "description": "Herald Event APIs (AppSync Events)"},
            {"resourceType": actions::NAMESPACE, "description": "Channel namespaces: their onPublish and onSubscribe handlers"},
        ]})),
        (["experimentTemplates"], Method::POST) => body_json(body).and_then(|b| {
            let t = experiments::template_from_request(&b, &region, &account).map_err(error)?;
            let t = exps.create_template(t).map_err(error)?;
            tracing::info!(template = %t["id"].as_str().unwrap_or_default(), "experiment template created");
            ok(json!({"experimentTemplate": t}))
        }),
        (["experimentTemplates"], Method::GET) => ok(json!({"experimentTemplates": exps
            .templates()
            .iter()
            .map(|t| summary(t, &["id", "arn", "description", "creationTime", "lastUpdateTime", "tags"]))
            .collect::<Vec<_>>()})),
        (["experimentTemplates", id], Method::GET) => exps
            .template(id)
            .map_err(error)
            .and_then(|t| ok(json!({"experimentTemplate": t}))),
        (["experimentTemplates", id], Method::DELETE) => exps
            .delete_template(id)
            .map_err(error)
            .and_then(|t| ok(json!({"experimentTemplate": t}))),
        (["experiments"], Method::POST) => start(state, faults, body, &region, &account).await,
        (["experiments"], Method::GET) => {
            let template = query_param(query, "experimentTemplateId");
            ok(json!({"experiments": exps
                .experiments()
                .iter()
                .filter(|e| template.as_deref().is_none_or(|t| e["experimentTemplateId"] == t))
                .map(|e| summary(e, &["id", "arn", "experimentTemplateId", "state", "creationTime", "tags"]))
                .collect::<Vec<_>>()}))
        }
        (["experiments", id], Method::GET) => exps
            .experiment(id)
            .map_err(error)
            .and_then(|e| ok(json!({"experiment": e}))),
        (["experiments", id], Method::DELETE) => exps.stop(id).map_err(error).and_then(|e| {
            // Its actions stop acting before the answer; the experiment
            // says `stopped` once its runner has noted each action's end.
            faults.remove(id, None);
            ok(json!({"experiment": e}))
        }),
        _ => Err(AwsError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("No FIS operation matches {method} {path}"),
        )),
    })
}
