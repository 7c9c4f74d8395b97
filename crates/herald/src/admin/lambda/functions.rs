//! `CreateFunction`, `GetFunction`, `GetFunctionConfiguration`,
//! `ListFunctions`, `UpdateFunctionCode`, `UpdateFunctionConfiguration`,
//! `DeleteFunction`, and reserved concurrency (`PutFunctionConcurrency`,
//! `GetFunctionConcurrency`, `DeleteFunctionConcurrency`).
//!
//! A change is checked (JavaScript must load and initialize: a syntax error
//! is refused here with Lambda's error type and the message, not at the
//! first invocation), written to the store, then served: the new code is
//! warmed on the workers and takes the next invocation; invocations running
//! on the old one finish on it. Only `$LATEST` exists (no versions or
//! aliases yet; `Publish` is accepted and ignored).

use super::super::aws::{json_response, query_param, AwsError, Body};
use super::super::AdminState;
use super::{invalid, not_found};
use crate::functions::{
    now_iso, sha256_base64, Function, FunctionSpec, Functions, Package, MAX_FUNCTIONS,
};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

impl AdminState {
    pub(in crate::admin) fn functions(&self) -> Arc<Functions> {
        self.apis.default_api().functions.clone()
    }
}

/// Lambda's `FunctionConfiguration`.
pub fn configuration(functions: &Functions, f: &Function) -> Value {
    let s = &f.spec;
    let mut v = json!({
        "FunctionName": s.name,
        "FunctionArn": functions.arn(&s.name),
        "Runtime": s.runtime,
        "Role": s.role,
        "Handler": s.handler,
        "CodeSize": s.code_size,
        "Description": s.description,
        "Timeout": s.timeout_secs,
        "MemorySize": s.memory_mb,
        "LastModified": s.last_modified,
        "CodeSha256": s.code_sha256,
        "Version": "$LATEST",
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": s.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", s.name)},
    });
    if !s.environment.is_empty() {
        v["Environment"] = json!({"Variables": s.environment});
    }
    v
}

pub(super) fn object(body: &[u8]) -> Result<Map<String, Value>, AwsError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(invalid("The request body must be a JSON object")),
    }
}

/// Members Herald accepts and does not act on (it has no such concept).
const IGNORED: &[&str] = &[
    "Publish",
    "Tags",
    "TracingConfig",
    "Architectures",
    "LoggingConfig",
    "EphemeralStorage",
    "PackageType",
    "DryRun",
    "RevisionId",
];

/// What is left of a request once its members are taken: the ignored ones
/// dropped, any other refused by name.
fn refuse_unknown(obj: &mut Map<String, Value>) -> Result<(), AwsError> {
    for k in IGNORED {
        obj.remove(*k);
    }
    match obj.keys().next() {
        Some(other) => Err(invalid(format!("Herald does not support {other}"))),
        None => Ok(()),
    }
}

/// Deploy `f` again with its spec changed by `change` and the same code.
pub(super) async fn redeploy(
    state: &AdminState,
    f: &Function,
    change: impl FnOnce(&mut FunctionSpec),
) -> Result<Arc<Function>, AwsError> {
    let mut spec = f.spec.clone();
    change(&mut spec);
    let zip = f.zip.as_deref().unwrap_or_default().to_vec();
    deploy(state, spec, zip).await
}

/// The configuration members of a create or update request, applied to `spec`.
fn apply_fields(spec: &mut FunctionSpec, obj: &mut Map<String, Value>) -> Result<(), AwsError> {
    let text = |k: &str, v: Value| -> Result<String, AwsError> {
        match v {
            Value::String(s) => Ok(s),
            _ => Err(invalid(format!("{k} must be a string"))),
        }
    };
    for key in ["Runtime", "Handler", "Description", "Role"] {
        if let Some(v) = obj.remove(key) {
            let v = text(key, v)?;
            match key {
                "Runtime" => spec.runtime = v,
                "Handler" => spec.handler = v,
                "Description" => {
                    if v.chars().count() > 256 {
                        return Err(invalid("Description must be at most 256 characters"));
                    }
                    spec.description = v
                }
                _ => spec.role = v,
            }
        }
    }
    if let Some(v) = obj.remove("Timeout") {
        spec.timeout_secs = v
            .as_u64()
            .ok_or_else(|| invalid("Timeout must be a whole number of seconds"))?;
    }
    if let Some(v) = obj.remove("MemorySize") {
        spec.memory_mb = v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid("MemorySize must be a whole number of MB"))?;
    }
    if let Some(v) = obj.remove("Environment") {
        let vars = v.get("Variables").cloned().unwrap_or(json!({}));
        let vars: BTreeMap<String, String> = serde_json::from_value(vars)
            .map_err(|_| invalid("Environment.Variables must map names to strings"))?;
        if vars.keys().any(|k| k.is_empty() || k.starts_with("AWS_")) {
            return Err(invalid(
                "Environment variable names must be non-empty and may not start with AWS_ (reserved)",
            ));
        }
        spec.environment = vars;
    }
    refuse_unknown(obj)?;
    spec.check().map_err(invalid)
}

/// The package in `Code.ZipFile` (base64), or none for an HTTP function.
fn zip_of(code: Option<Value>) -> Result<Option<Vec<u8>>, AwsError> {
    let Some(code) = code else {
        return Ok(None);
    };
    let Value::Object(mut code) = code else {
        return Err(invalid("Code must be an object"));
    };
    let zip = match code.remove("ZipFile") {
        None | Some(Value::Null) => None,
        Some(Value::String(b64)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| invalid("Code.ZipFile is not base64"))?,
        ),
        Some(_) => return Err(invalid("Code.ZipFile must be base64 text")),
    };
    if let Some(other) = code.keys().next() {
        return Err(invalid(format!(
            "Herald takes code as Code.ZipFile, not {other}"
        )));
    }
    Ok(zip)
}

/// Build, store and serve `spec` with `zip`.
async fn deploy(
    state: &AdminState,
    mut spec: FunctionSpec,
    zip: Vec<u8>,
) -> Result<Arc<Function>, AwsError> {
    let functions = state.functions();
    spec.code_sha256 = sha256_base64(&zip);
    spec.code_size = zip.len() as u64;
    spec.last_modified = now_iso();
    spec.revision_id = crate::new_uuid().to_string();
    let f = {
        let functions = functions.clone();
        tokio::task::spawn_blocking(move || {
            let package = match spec.url() {
                Some(_) => None,
                None if zip.is_empty() => {
                    return Err("A JavaScript function needs Code.ZipFile".to_string())
                }
                None => Some(Package::from_zip(&zip, &spec.handler)?),
            };
            let zip = (!zip.is_empty()).then(|| Bytes::from(zip));
            functions.prepare(spec, package, zip, false)
        })
        .await
        .map_err(|e| {
            AwsError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                e.to_string(),
            )
        })?
        .map_err(invalid)?
    };
    state
        .apis
        .default_api()
        .store
        .put_function(Functions::to_stored(&f))
        .await
        .map_err(AwsError::store_failed)?;
    functions.install(f.clone()).await;
    Ok(f)
}

pub async fn create(state: &AdminState, body: &[u8]) -> Result<Response<Body>, AwsError> {
    let mut obj = object(body)?;
    let name = match obj.remove("FunctionName") {
        Some(Value::String(n)) => Functions::name_of(&n).to_string(),
        _ => return Err(invalid("FunctionName is required")),
    };
    crate::functions::check_name(&name).map_err(invalid)?;
    let functions = state.functions();
    if functions.get(&name).is_some() {
        return Err(AwsError::new(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            format!("Function already exist: {name}"),
        ));
    }
    if functions.len() >= MAX_FUNCTIONS {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "CodeStorageExceededException",
            format!("A server keeps at most {MAX_FUNCTIONS} functions"),
        ));
    }
    let zip = zip_of(obj.remove("Code"))?;
    let mut spec = FunctionSpec {
        name,
        runtime: String::new(),
        handler: String::new(),
        description: String::new(),
        role: String::new(),
        timeout_secs: 3,
        memory_mb: 128,
        environment: BTreeMap::new(),
        reserved_concurrency: None,
        event_invoke: None,
        code_sha256: String::new(),
        code_size: 0,
        last_modified: String::new(),
        revision_id: String::new(),
    };
    if !obj.contains_key("Runtime") {
        return Err(invalid(
            "Runtime is required (nodejs22.x or herald-js for JavaScript)",
        ));
    }
    apply_fields(&mut spec, &mut obj)?;
    if spec.url().is_none() && spec.handler.is_empty() {
        return Err(invalid("Handler is required (for example index.handler)"));
    }
    let f = deploy(state, spec, zip.unwrap_or_default()).await?;
    tracing::info!(function = %f.spec.name, "function created");
    Ok(json_response(
        StatusCode::CREATED,
        &configuration(&functions, &f),
    ))
}

pub(super) fn existing(state: &AdminState, name: &str) -> Result<Arc<Function>, AwsError> {
    state
        .functions()
        .get(name)
        .ok_or_else(|| not_found(state, name))
}

/// A function the API may change.
pub(super) fn changeable(state: &AdminState, name: &str) -> Result<Arc<Function>, AwsError> {
    let f = existing(state, name)?;
    if f.from_file {
        return Err(invalid(format!(
            "The function {} is defined in Herald's configuration file: change it there",
            f.spec.name
        )));
    }
    Ok(f)
}

fn check_revision(f: &Function, obj: &Map<String, Value>) -> Result<(), AwsError> {
    match obj.get("RevisionId").and_then(Value::as_str) {
        Some(r) if r != f.spec.revision_id => Err(AwsError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            "The RevisionId provided does not match the latest RevisionId for the Lambda function. Call the GetFunction or the GetAlias API to retrieve the latest RevisionId for your resource.",
        )),
        _ => Ok(()),
    }
}

pub async fn get(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = existing(state, name)?;
    let functions = state.functions();
    let mut v = json!({
        "Configuration": configuration(&functions, &f),
        "Code": {"RepositoryType": "S3", "Location": ""},
        "Tags": {},
    });
    if let Some(n) = f.spec.reserved_concurrency {
        v["Concurrency"] = json!({"ReservedConcurrentExecutions": n});
    }
    Ok(json_response(StatusCode::OK, &v))
}

/// `ListVersionsByFunction`: `$LATEST`, the only version Herald has (tools
/// such as Terraform read it).
pub fn list_versions(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = existing(state, name)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"Versions": [configuration(&state.functions(), &f)]}),
    ))
}

/// `PublishVersion`: refused (for an existing function) until versions exist.
pub fn publish_version(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    existing(state, name)?;
    Err(invalid(
        "Herald serves $LATEST only: PublishVersion is not available yet",
    ))
}

/// `GetFunctionCodeSigningConfig`: none (Herald does not check signatures).
pub fn code_signing(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = existing(state, name)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"CodeSigningConfigArn": "", "FunctionName": f.spec.name}),
    ))
}

pub fn get_configuration(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = existing(state, name)?;
    Ok(json_response(
        StatusCode::OK,
        &configuration(&state.functions(), &f),
    ))
}

pub fn list(state: &AdminState, query: &str) -> Result<Response<Body>, AwsError> {
    let functions = state.functions();
    let all = functions.list();
    let max = match query_param(query, "MaxItems") {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| invalid("MaxItems must be from 1 to 10000"))?,
    };
    let start = match query_param(query, "Marker") {
        None => 0,
        Some(m) => m
            .strip_prefix("herald-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= all.len())
            .ok_or_else(|| invalid("The Marker is not valid"))?,
    };
    let end = (start + max).min(all.len());
    let page: Vec<Value> = all[start..end]
        .iter()
        .map(|f| configuration(&functions, f))
        .collect();
    let mut v = json!({"Functions": page});
    if end < all.len() {
        v["NextMarker"] = json!(format!("herald-{end}"));
    }
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn update_code(
    state: &AdminState,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, AwsError> {
    let f = changeable(state, name)?;
    let mut obj = object(body)?;
    check_revision(&f, &obj)?;
    let zip = match obj.remove("ZipFile") {
        Some(v) => zip_of(Some(json!({"ZipFile": v})))?.unwrap_or_default(),
        None => return Err(invalid("ZipFile is required (Herald takes code as a zip)")),
    };
    refuse_unknown(&mut obj)?;
    let f = deploy(state, f.spec.clone(), zip).await?;
    tracing::info!(function = %f.spec.name, "function code updated");
    Ok(json_response(
        StatusCode::OK,
        &configuration(&state.functions(), &f),
    ))
}

pub async fn update_configuration(
    state: &AdminState,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, AwsError> {
    let f = changeable(state, name)?;
    let mut obj = object(body)?;
    check_revision(&f, &obj)?;
    let mut spec = f.spec.clone();
    apply_fields(&mut spec, &mut obj)?;
    let f = redeploy(state, &f, |s| *s = spec).await?;
    tracing::info!(function = %f.spec.name, "function configuration updated");
    Ok(json_response(
        StatusCode::OK,
        &configuration(&state.functions(), &f),
    ))
}

pub async fn delete(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = changeable(state, name)?;
    state
        .apis
        .default_api()
        .store
        .delete_function(&f.spec.name)
        .await
        .map_err(AwsError::store_failed)?;
    state.functions().remove(&f.spec.name);
    tracing::info!(function = %f.spec.name, "function deleted");
    Ok(empty(StatusCode::NO_CONTENT))
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

pub async fn put_concurrency(
    state: &AdminState,
    name: &str,
    body: &[u8],
) -> Result<Response<Body>, AwsError> {
    let f = changeable(state, name)?;
    let obj = object(body)?;
    let n = obj
        .get("ReservedConcurrentExecutions")
        .and_then(Value::as_u64)
        .filter(|n| *n <= 1000)
        .ok_or_else(|| invalid("ReservedConcurrentExecutions must be from 0 to 1000"))?;
    redeploy(state, &f, |s| s.reserved_concurrency = Some(n as u32)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"ReservedConcurrentExecutions": n}),
    ))
}

pub fn get_concurrency(state: &AdminState, name: &str) -> Result<Response<Body>, AwsError> {
    let f = existing(state, name)?;
    let v = match f.spec.reserved_concurrency {
        Some(n) => json!({"ReservedConcurrentExecutions": n}),
        None => json!({}),
    };
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn delete_concurrency(
    state: &AdminState,
    name: &str,
) -> Result<Response<Body>, AwsError> {
    let f = changeable(state, name)?;
    redeploy(state, &f, |s| s.reserved_concurrency = None).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
