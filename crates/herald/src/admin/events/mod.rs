//! EventBridge's API (JSON 1.1, `X-Amz-Target: AWSEvents.<Operation>`), as
//! botocore sends it. Served so far: `TestEventPattern`, with the one
//! pattern matcher ([`herald_pattern`]) that event source mappings and
//! filtered subscriptions use, so a pattern answers the same everywhere.
//! Buses, rules and targets come with the event bus.

use super::aws::{AwsError, Body};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// The `X-Amz-Target` prefix of EventBridge's operations.
pub const PREFIX: &str = "AWSEvents.";

/// EventBridge's limit on `EventPattern` (characters).
const MAX_PATTERN: usize = 4096;

/// The fields `TestEventPattern` requires in the event (AWS's documentation
/// also lists `resources`, which AWS does not require in practice).
const REQUIRED: &[&str] = &["id", "account", "source", "time", "region", "detail-type"];

/// The operation `op` (the target after [`PREFIX`]), or `None` when
/// EventBridge has no such operation here.
pub fn route(op: &str, body: &[u8]) -> Option<Result<Response<Body>, AwsError>> {
    match op {
        "TestEventPattern" => Some(test_event_pattern(body)),
        _ => None,
    }
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
}

/// The request's JSON object (botocore sends `{}` at least).
fn request(body: &[u8]) -> Result<serde_json::Map<String, Value>, AwsError> {
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
fn string<'a>(req: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, AwsError> {
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

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// `{"Result": bool}`: does `Event` match `EventPattern`. A pattern that is
/// not valid is an `InvalidEventPatternException` naming the field; an event
/// that is not a JSON object with EventBridge's envelope fields is AWS's
/// `ValidationException` "Parameter Event is not valid.".
fn test_event_pattern(body: &[u8]) -> Result<Response<Body>, AwsError> {
    let req = request(body)?;
    let pattern = string(&req, "EventPattern")?;
    let event = string(&req, "Event")?;
    if pattern.chars().count() > MAX_PATTERN {
        return Err(validation(format!(
            "1 validation error detected: Value at 'eventPattern' failed to satisfy constraint: Member must have length less than or equal to {MAX_PATTERN}"
        )));
    }
    let pattern = herald_pattern::Pattern::parse(pattern).map_err(|e| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidEventPatternException",
            e.to_string(),
        )
    })?;
    let event = match serde_json::from_str::<Value>(event) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(validation("Parameter Event is not valid.")),
    };
    if let Some(missing) = REQUIRED.iter().find(|f| event.get(**f).is_none()) {
        return Err(validation(format!(
            "Parameter Event is not valid. Reason: Provided Event is missing required field {missing}."
        )));
    }
    let mut r =
        super::aws::json_response(StatusCode::OK, &json!({"Result": pattern.matches(&event)}));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn event() -> String {
        json!({"id": "1", "account": "123456789012", "source": "shop", "time": "2026-11-29T00:00:00Z", "region": "us-east-1", "resources": [], "detail-type": "Order Placed", "detail": {"amount": 300}}).to_string()
    }

    async fn call(body: Value) -> Result<Value, AwsError> {
        let r = route("TestEventPattern", body.to_string().as_bytes()).expect("served")?;
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn answers_match_and_no_match_and_aws_errors() {
        let m = call(json!({"EventPattern": r#"{"detail": {"amount": [{"numeric": [">", 299]}]}}"#, "Event": event()})).await;
        assert_eq!(m.unwrap(), json!({"Result": true}));
        let m = call(json!({"EventPattern": r#"{"source": ["other"]}"#, "Event": event()})).await;
        assert_eq!(m.unwrap(), json!({"Result": false}));
        let e = call(json!({"EventPattern": r#"{"source": "shop"}"#, "Event": event()}))
            .await
            .unwrap_err();
        assert_eq!(e.kind, "InvalidEventPatternException");
        assert!(e.message.contains("source"), "{}", e.message);
        let e = call(json!({"EventPattern": r#"{"source": ["shop"]}"#, "Event": "{"}))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            ("ValidationException", "Parameter Event is not valid.")
        );
        let e = call(
            json!({"EventPattern": r#"{"source": ["shop"]}"#, "Event": r#"{"source": "shop"}"#}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, "ValidationException");
        assert!(
            e.message.contains("missing required field id"),
            "{}",
            e.message
        );
        let e = call(json!({"Event": event()})).await.unwrap_err();
        assert_eq!(e.kind, "ValidationException");
        assert!(route("PutRule", b"{}").is_none());
    }
}
