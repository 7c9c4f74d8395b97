//! Server-to-client frames and HTTP response bodies, as JSON text.
//!
//! Control frames are built with `serde_json`. The `data` frame, the only one on
//! the hot path, is spliced from the subscription id and the event's
//! pre-encoded string literal ([`crate::event::EncodedEvent`]) so the event is
//! never re-serialized per subscriber.

use crate::error::OpError;
use crate::frame::ErrorFrame;
use serde_json::{json, Value};
use std::time::Duration;

/// One entry of a `successful` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub identifier: String,
    pub index: usize,
}

/// One entry of a `failed` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub identifier: String,
    pub index: usize,
    pub code: u16,
    pub message: String,
}

/// The result of a publish that was accepted as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishResult {
    pub successful: Vec<Accepted>,
    pub failed: Vec<Rejected>,
}

impl PublishResult {
    fn lists(&self) -> (Value, Value) {
        let ok: Vec<Value> = self
            .successful
            .iter()
            .map(|a| json!({"identifier": a.identifier, "index": a.index}))
            .collect();
        let failed: Vec<Value> = self
            .failed
            .iter()
            .map(|r| {
                json!({"identifier": r.identifier, "index": r.index,
                       "errorCode": r.code, "errorMessage": r.message})
            })
            .collect();
        (Value::Array(ok), Value::Array(failed))
    }

    /// The HTTP 200 body: `{"failed":[...],"successful":[...]}`.
    pub fn http_body(&self) -> String {
        let (ok, failed) = self.lists();
        json!({"failed": failed, "successful": ok}).to_string()
    }

    /// The WebSocket `publish_success` frame.
    pub fn ws_frame(&self, id: &str) -> String {
        let (ok, failed) = self.lists();
        json!({"type": "publish_success", "id": id, "successful": ok, "failed": failed}).to_string()
    }
}

fn error_entry(e: &OpError) -> Value {
    json!({"errorType": e.kind.as_str(), "message": e.message, "errorCode": e.kind.status()})
}

/// `connection_ack`. The timeout is given at the top level (Amplify reads it
/// there) and again in `payload` (the Swift SDK reads it there).
pub fn connection_ack(timeout: Duration) -> String {
    let ms = timeout.as_millis() as u64;
    json!({"type": "connection_ack", "connectionTimeoutMs": ms,
           "payload": {"connectionTimeoutMs": ms}})
    .to_string()
}

/// `connection_error` with the given errors.
pub fn connection_error(e: &OpError) -> String {
    json!({"type": "connection_error", "errors": [error_entry(e)]}).to_string()
}

/// The keep-alive frame.
pub const KA: &str = r#"{"type":"ka"}"#;

pub fn subscribe_success(id: &str) -> String {
    json!({"type": "subscribe_success", "id": id}).to_string()
}

pub fn unsubscribe_success(id: &str) -> String {
    json!({"type": "unsubscribe_success", "id": id}).to_string()
}

/// An error reply of the given kind (`error`, `subscribe_error`, ...).
pub fn error_frame(frame: ErrorFrame, id: Option<&str>, e: &OpError) -> String {
    let ty = match frame {
        ErrorFrame::Error => "error",
        ErrorFrame::Subscribe => "subscribe_error",
        ErrorFrame::Unsubscribe => "unsubscribe_error",
        ErrorFrame::Publish => "publish_error",
        ErrorFrame::History => "history_error",
    };
    let mut v = json!({"type": ty, "errors": [error_entry(e)]});
    if let Some(id) = id {
        v["id"] = Value::String(id.to_string());
    }
    v.to_string()
}

/// Append a `data` frame for one event to `out`:
/// `{"type":"data","id":"<sub id>","event":"<event JSON as a string>"}`.
///
/// `sub_id` is a validated operation id (no characters that need escaping) and
/// `event_literal` an already-encoded JSON string literal.
pub fn write_data_frame(out: &mut String, sub_id: &str, event_literal: &str) {
    for piece in data_frame_pieces(sub_id, event_literal) {
        out.push_str(piece);
    }
}

/// The pieces of a `data` frame, in order: only the subscription id and the
/// shared event literal vary, so a writer can copy them straight into its
/// output without building the frame first.
pub fn data_frame_pieces<'a>(sub_id: &'a str, event_literal: &'a str) -> [&'a str; 5] {
    [
        r#"{"type":"data","id":""#,
        sub_id,
        r#"","event":"#,
        event_literal,
        "}",
    ]
}

/// The pieces of a `data` frame in a namespace with history: the event's
/// channel, offset and epoch follow the event (Herald's extension; clients
/// that do not know them ignore them). `offset` is the offset's digits.
pub fn data_frame_positioned_pieces<'a>(
    sub_id: &'a str,
    event_literal: &'a str,
    channel: &'a str,
    offset: &'a str,
    epoch: &'a str,
) -> [&'a str; 11] {
    [
        r#"{"type":"data","id":""#,
        sub_id,
        r#"","event":"#,
        event_literal,
        r#","channel":""#,
        channel,
        r#"","offset":"#,
        offset,
        r#","epoch":""#,
        epoch,
        r#""}"#,
    ]
}

/// `n` in decimal, written into `buf` (no allocation: a positioned `data`
/// frame is written once per subscriber).
pub fn decimal(n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

/// `subscribe_success` with Herald's extra members (a history namespace's
/// positions and whether the subscription recovered).
pub fn subscribe_success_with(
    id: &str,
    extra: serde_json::Map<String, serde_json::Value>,
) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("type".into(), json!("subscribe_success"));
    obj.insert("id".into(), json!(id));
    obj.extend(extra);
    serde_json::Value::Object(obj).to_string()
}

/// An HTTP error body: `{"errors":[{"errorType","message"}],"message"}`. The
/// top-level `message` is Herald's addition: Amplify's HTTP layer reads the
/// message from there (and the error name from the `x-amzn-ErrorType` header).
pub fn http_error_body(e: &OpError) -> String {
    json!({"errors": [{"errorType": e.kind.as_str(), "message": e.message}],
           "message": e.message})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EncodedEvent;

    #[test]
    fn decimal_writes_digits() {
        let mut buf = [0; 20];
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
    }

    #[test]
    fn positioned_data_frame_is_valid_json() {
        let e = EncodedEvent::encode(r#"{"a":"<\"b\">"}"#);
        let frame: String =
            data_frame_positioned_pieces("s-1", &e.literal, "/ns/a", "42", "0f").concat();
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["event"], r#"{"a":"<\"b\">"}"#);
        assert_eq!(
            (
                v["channel"].as_str(),
                v["offset"].as_u64(),
                v["epoch"].as_str()
            ),
            (Some("/ns/a"), Some(42), Some("0f"))
        );
        let ok = subscribe_success_with(
            "s-1",
            serde_json::from_str(r#"{"recovered":true}"#).unwrap(),
        );
        let ok: serde_json::Value = serde_json::from_str(&ok).unwrap();
        assert_eq!(
            ok,
            json!({"type": "subscribe_success", "id": "s-1", "recovered": true})
        );
    }

    #[test]
    fn data_frame_is_valid_json_with_string_event() {
        let ev = EncodedEvent::encode(r#"{"msg":"hé \"q\" </x>"}"#);
        let mut s = String::new();
        write_data_frame(&mut s, "sub-1", &ev.literal);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["type"], "data");
        assert_eq!(v["id"], "sub-1");
        assert_eq!(v["event"], r#"{"msg":"hé \"q\" </x>"}"#);
    }

    #[test]
    fn ack_and_errors() {
        let v: Value = serde_json::from_str(&connection_ack(Duration::from_secs(300))).unwrap();
        assert_eq!(v["connectionTimeoutMs"], 300000);
        assert_eq!(v["payload"]["connectionTimeoutMs"], 300000);
        let e = OpError::unauthorized();
        let v: Value =
            serde_json::from_str(&error_frame(ErrorFrame::Subscribe, Some("s"), &e)).unwrap();
        assert_eq!(v["type"], "subscribe_error");
        assert_eq!(v["id"], "s");
        assert_eq!(v["errors"][0]["errorType"], "UnauthorizedException");
        assert_eq!(v["errors"][0]["errorCode"], 401);
        let v: Value = serde_json::from_str(&error_frame(ErrorFrame::Error, None, &e)).unwrap();
        assert!(v.get("id").is_none());
    }
}
