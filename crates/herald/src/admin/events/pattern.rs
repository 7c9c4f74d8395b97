//! `TestEventPattern`, with the one pattern matcher ([`herald_pattern`])
//! that rules, event source mappings and filtered subscriptions use, so a
//! pattern answers the same everywhere.

use super::super::aws::{AwsError, Body};
use super::{ok, string, validation, Req};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// EventBridge's limit on `EventPattern` (characters).
pub const MAX_PATTERN: usize = crate::bus::spec::MAX_PATTERN_CHARS;

/// The fields `TestEventPattern` requires in the event (AWS's documentation
/// also lists `resources`, which AWS does not require in practice).
const REQUIRED: &[&str] = &["id", "account", "source", "time", "region", "detail-type"];

/// A rule's or a test's pattern, checked: AWS's length limit, then the
/// pattern language (`InvalidEventPatternException` naming the field).
pub fn parse(pattern: &str) -> Result<herald_pattern::Pattern, AwsError> {
    if pattern.chars().count() > MAX_PATTERN {
        return Err(validation(format!(
            "1 validation error detected: Value at 'eventPattern' failed to satisfy constraint: Member must have length less than or equal to {MAX_PATTERN}"
        )));
    }
    herald_pattern::Pattern::parse(pattern).map_err(|e| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidEventPatternException",
            e.to_string(),
        )
    })
}

/// `{"Result": bool}`: does `Event` match `EventPattern`. An event that is
/// not a JSON object with EventBridge's envelope fields is AWS's
/// `ValidationException` "Parameter Event is not valid.".
pub fn test_event_pattern(req: &Req) -> Result<Response<Body>, AwsError> {
    let pattern = parse(string(req, "EventPattern")?)?;
    let event = string(req, "Event")?;
    let event = match serde_json::from_str::<Value>(event) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(validation("Parameter Event is not valid.")),
    };
    if let Some(missing) = REQUIRED.iter().find(|f| event.get(**f).is_none()) {
        return Err(validation(format!(
            "Parameter Event is not valid. Reason: Provided Event is missing required field {missing}."
        )));
    }
    ok(&json!({"Result": pattern.matches(&event)}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn event() -> String {
        json!({"id": "1", "account": "123456789012", "source": "shop", "time": "2026-11-29T00:00:00Z", "region": "us-east-1", "resources": [], "detail-type": "Order Placed", "detail": {"amount": 300}}).to_string()
    }

    async fn call(body: Value) -> Result<Value, AwsError> {
        let r = test_event_pattern(body.as_object().unwrap())?;
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
    }
}
