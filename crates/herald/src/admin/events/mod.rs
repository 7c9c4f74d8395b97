//! EventBridge's API (JSON 1.1, `X-Amz-Target: AWSEvents.<Operation>`), as
//! botocore sends it: buses ([`buses`]), rules ([`rules`]), targets
//! ([`targets`]), connections and API destinations ([`connections`]),
//! archives and replays ([`archives`]),
//! `PutEvents` ([`put`]), tags ([`tags`]) and
//! `TestEventPattern` ([`pattern`]), with AWS's shapes, exception names and
//! messages. A change is written to the store, then this node re-reads the
//! buses (other nodes follow the store).

mod archives;
mod buses;
mod connections;
mod pattern;
mod put;
mod rules;
mod tags;
mod targets;

use super::aws::{AwsError, Body};
use super::AdminState;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

/// The `X-Amz-Target` prefix of EventBridge's operations.
pub const PREFIX: &str = "AWSEvents.";

/// The operation `op` (the target after [`PREFIX`]), or `None` when
/// EventBridge has no such operation here.
pub async fn route(
    state: &AdminState,
    op: &str,
    body: &[u8],
) -> Option<Result<Response<Body>, AwsError>> {
    let b = &state.buses;
    let req = match request(body) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    Some(match op {
        "TestEventPattern" => pattern::test_event_pattern(&req),
        "CreateEventBus" => buses::create(b, &req).await,
        "DescribeEventBus" => buses::describe(b, &req),
        "ListEventBuses" => buses::list(b, &req),
        "DeleteEventBus" => buses::delete(b, &req).await,
        "PutRule" => rules::put(b, &req).await,
        "DescribeRule" => rules::describe(b, &req),
        "ListRules" => rules::list(b, &req),
        "EnableRule" => rules::set_state(b, &req, "ENABLED").await,
        "DisableRule" => rules::set_state(b, &req, "DISABLED").await,
        "DeleteRule" => rules::delete(b, &req).await,
        "PutTargets" => targets::put(state, &req).await,
        "RemoveTargets" => targets::remove(b, &req).await,
        "ListTargetsByRule" => targets::list(b, &req),
        "PutEvents" => put::put_events(b, &req).await,
        "CreateConnection" => connections::create_connection(b, &req).await,
        "DescribeConnection" => connections::describe_connection(b, &req),
        "ListConnections" => connections::list_connections(b, &req),
        "DeleteConnection" => connections::delete_connection(b, &req).await,
        "UpdateConnection" => connections::update_connection(b, &req).await,
        "CreateApiDestination" => connections::create_api_destination(b, &req).await,
        "DescribeApiDestination" => connections::describe_api_destination(b, &req),
        "ListApiDestinations" => connections::list_api_destinations(b, &req),
        "DeleteApiDestination" => connections::delete_api_destination(b, &req).await,
        "UpdateApiDestination" => connections::update_api_destination(b, &req).await,
        "CreateArchive" => archives::create_archive(b, &req).await,
        "DescribeArchive" => archives::describe_archive(b, &req).await,
        "ListArchives" => archives::list_archives(b, &req).await,
        "UpdateArchive" => archives::update_archive(b, &req).await,
        "DeleteArchive" => archives::delete_archive(b, &req).await,
        "StartReplay" => archives::start_replay(b, &req).await,
        "DescribeReplay" => archives::describe_replay(b, &req),
        "ListReplays" => archives::list_replays(b, &req),
        "CancelReplay" => archives::cancel_replay(b, &req).await,
        "TagResource" => tags::tag(b, &req).await,
        "UntagResource" => tags::untag(b, &req).await,
        "ListTagsForResource" => tags::list(b, &req).await,
        _ => return None,
    })
}

pub(super) fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
}

fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(
        StatusCode::BAD_REQUEST,
        "ResourceNotFoundException",
        message,
    )
}

fn store_failed(e: String) -> AwsError {
    tracing::error!(error = %e, "the store failed");
    AwsError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalException",
        "The change could not be stored; nothing changed",
    )
}

pub(super) type Req = Map<String, Value>;

/// The request's JSON object (botocore sends `{}` at least).
pub(super) fn request(body: &[u8]) -> Result<Req, AwsError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "The request body is not a JSON object",
        )),
    }
}

/// A required string parameter.
pub(super) fn string<'a>(req: &'a Req, name: &str) -> Result<&'a str, AwsError> {
    match req.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            format!("{name} must be a string"),
        )),
        None => Err(validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))),
    }
}

/// An optional string parameter.
pub(super) fn opt<'a>(req: &'a Req, name: &str) -> Result<Option<&'a str>, AwsError> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string(req, name).map(Some),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// A 200 answer in JSON 1.1.
fn ok(body: &Value) -> Result<Response<Body>, AwsError> {
    let mut r = super::aws::json_response(StatusCode::OK, body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(r)
}

/// One page of `items` for `Limit` (1-100) and `NextToken`, as
/// EventBridge's list operations page.
fn page<T: Clone>(items: &[T], req: &Req) -> Result<(Vec<T>, Option<String>), AwsError> {
    let limit = match req.get("Limit") {
        None | Some(Value::Null) => 100,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => {
                return Err(validation(
                    "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 100",
                ))
            }
        },
    };
    let start = match opt(req, "NextToken")? {
        None => 0,
        Some(t) => t
            .strip_prefix("herald-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| validation("The NextToken is not valid."))?,
    };
    let end = (start + limit).min(items.len());
    Ok((
        items[start..end].to_vec(),
        (end < items.len()).then(|| format!("herald-{end}")),
    ))
}

/// Epoch seconds as botocore reads a JSON 1.1 timestamp.
fn time(secs: f64) -> Value {
    serde_json::json!(secs)
}
