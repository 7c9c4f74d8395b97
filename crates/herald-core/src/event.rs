//! Published events: validation against the limits, and the one-time encoding
//! that every subscriber's `data` frame reuses.

use crate::error::{ErrorType, OpError};
use crate::limits::Limits;
use serde_json::Value;
use std::sync::Arc;

/// One event ready for fan-out.
///
/// `literal` is the event's JSON text encoded as a JSON string literal, quotes
/// included: exactly the bytes that follow `"event":` in a `data` frame. It is
/// computed once per publish and shared (`Arc`) by every subscriber's frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    pub literal: Arc<str>,
}

impl EncodedEvent {
    /// Encode one event's JSON text.
    pub fn encode(json_text: &str) -> EncodedEvent {
        EncodedEvent {
            literal: serde_json::to_string(json_text)
                .expect("a str always serializes")
                .into(),
        }
    }
}

/// Check the `events` field of a publish (HTTP body or WebSocket frame) and return
/// the event texts.
///
/// A request that breaks any rule is refused whole, so nothing of it is delivered:
/// 1 to `max_events_per_publish` events; each a string holding valid JSON (any
/// value: object, string, number...); each at most `max_event_bytes`; together at
/// most `max_request_bytes`. AppSync drops oversize events silently; Herald says so.
pub fn validate_events(events: Option<Value>, limits: &Limits) -> Result<Vec<String>, OpError> {
    let items = match events {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => {
            return Err(OpError::bad_request(
                "'events' is required: an array of 1 to 5 JSON strings",
            ))
        }
        Some(_) => {
            return Err(OpError::bad_request(
                "'events' must be an array of JSON strings",
            ))
        }
    };
    if items.is_empty() {
        return Err(OpError::bad_request(
            "'events' is empty: publish at least one event",
        ));
    }
    if items.len() > limits.max_events_per_publish {
        return Err(OpError::bad_request(format!(
            "A publish request can carry at most {} events; this one has {}",
            limits.max_events_per_publish,
            items.len()
        )));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::String(text) = item else {
            return Err(OpError::bad_request(format!(
                "events[{i}] must be a string holding JSON (use JSON.stringify on each event)"
            )));
        };
        if text.len() > limits.max_event_bytes {
            return Err(OpError::new(
                ErrorType::PayloadTooLarge,
                format!(
                    "events[{i}] is {} bytes; the limit is {} bytes per event",
                    text.len(),
                    limits.max_event_bytes
                ),
            ));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
            return Err(OpError::bad_request(format!(
                "events[{i}] is not valid JSON text"
            )));
        }
        total += text.len();
        out.push(text);
    }
    if total > limits.max_request_bytes {
        return Err(OpError::new(
            ErrorType::PayloadTooLarge,
            format!(
                "The events of this request total {total} bytes; the limit is {} bytes per request",
                limits.max_request_bytes
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_once_as_a_string_literal() {
        let e = EncodedEvent::encode(r#"{"a":"<b>\n"}"#);
        assert_eq!(&*e.literal, r#""{\"a\":\"<b>\\n\"}""#);
        let back: String = serde_json::from_str(&e.literal).unwrap();
        assert_eq!(back, r#"{"a":"<b>\n"}"#);
    }

    #[test]
    fn validation() {
        let l = Limits::default();
        let ok = validate_events(Some(json!(["{\"a\":1}", "\"s\"", "3"])), &l).unwrap();
        assert_eq!(ok.len(), 3);
        let err = |v: Value| validate_events(Some(v), &l).unwrap_err();
        assert_eq!(err(json!([])).kind, ErrorType::BadRequest);
        assert!(err(json!(["1", "2", "3", "4", "5", "6"]))
            .message
            .contains("at most 5"));
        assert!(err(json!([{"a": 1}]))
            .message
            .contains("events[0] must be a string"));
        assert!(err(json!(["1", "not json"]))
            .message
            .contains("events[1] is not valid JSON"));
        assert_eq!(err(json!("x")).kind, ErrorType::BadRequest);
        assert!(validate_events(None, &l).is_err());

        let big = format!("\"{}\"", "x".repeat(l.max_event_bytes - 2));
        assert!(validate_events(Some(json!([big.clone()])), &l).is_ok());
        let too_big = format!("\"{}\"", "x".repeat(l.max_event_bytes - 1));
        assert_eq!(err(json!([too_big])).kind, ErrorType::PayloadTooLarge);
        let total = json!([
            big.clone(),
            big.clone(),
            big.clone(),
            big.clone(),
            big.clone(),
            big
        ]);
        let small = Limits {
            max_events_per_publish: 6,
            ..Limits::default()
        };
        assert!(validate_events(Some(total), &small)
            .unwrap_err()
            .message
            .contains("per request"));
    }
}
