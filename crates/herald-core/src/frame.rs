//! Client-to-server WebSocket frames.
//!
//! Every frame is a JSON text object with a `type`. Unknown fields are ignored
//! (Amplify adds a redundant `payload`, clients add `x-amz-user-agent` and the
//! like). Parsing never panics and always says what was wrong, together with the
//! frame's `id` when it had one, so the error can be correlated.

use crate::error::{ErrorType, OpError};
use serde_json::{Map, Value};

/// Longest operation id (`^[a-zA-Z0-9-_+]{1,128}$`).
pub const MAX_ID_LEN: usize = 128;

/// A parsed client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    ConnectionInit,
    Subscribe {
        id: String,
        channel: String,
        authorization: Option<Map<String, Value>>,
        /// Herald's extension: an event pattern each event's payload must
        /// match (validated by the server once the subscription is authorized).
        filter: Option<Map<String, Value>>,
        /// Herald's extension: the position to recover from, in a namespace
        /// with history (`{"offset", "epoch"}`, or for a wildcard
        /// `{"channels": {path: {"offset", "epoch"}}}`; read by the server).
        since: Option<Map<String, Value>>,
    },
    Unsubscribe {
        id: String,
    },
    Publish {
        id: String,
        channel: String,
        /// Still unchecked: [`crate::event::validate_events`] checks it once the
        /// publish is authorized.
        events: Option<Value>,
        authorization: Option<Map<String, Value>>,
    },
    /// Herald's extension: a page of a channel's history.
    History {
        id: String,
        channel: String,
        authorization: Option<Map<String, Value>>,
        /// Events in the page (checked by the server).
        limit: Option<u64>,
        /// Where the previous page ended.
        next_token: Option<String>,
    },
}

/// Which reply frame an error belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFrame {
    /// `{"type":"error"}`: the frame could not be read as any operation.
    Error,
    Subscribe,
    Unsubscribe,
    Publish,
    History,
}

/// A frame that could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub frame: ErrorFrame,
    /// The frame's `id`, echoed when it was a string, so clients can correlate.
    pub id: Option<String>,
    pub error: OpError,
}

/// Whether `id` is a valid operation id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'+')
}

/// Parse one text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let fail = |frame, id: Option<String>, error| FrameError { frame, id, error };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        fail(
            ErrorFrame::Error,
            None,
            OpError::bad_request(format!("The message is not valid JSON: {e}")),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err(fail(
            ErrorFrame::Error,
            None,
            OpError::bad_request("The message must be a JSON object"),
        ));
    };
    // Echo the id only when it is a reasonably short string.
    let raw_id = match obj.get("id") {
        Some(Value::String(s)) if s.len() <= 4 * MAX_ID_LEN => Some(s.clone()),
        _ => None,
    };
    let ty = match obj.remove("type") {
        Some(Value::String(t)) => t,
        Some(_) => {
            return Err(fail(
                ErrorFrame::Error,
                raw_id,
                OpError::bad_request("'type' must be a string"),
            ))
        }
        None => {
            return Err(fail(
                ErrorFrame::Error,
                raw_id,
                OpError::bad_request("The message has no 'type'"),
            ))
        }
    };
    let frame = match ty.as_str() {
        "connection_init" => return Ok(ClientFrame::ConnectionInit),
        "subscribe" => ErrorFrame::Subscribe,
        "unsubscribe" => ErrorFrame::Unsubscribe,
        "publish" => ErrorFrame::Publish,
        "history" => ErrorFrame::History,
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(fail(
                ErrorFrame::Error,
                raw_id,
                OpError::new(
                    ErrorType::UnsupportedOperation,
                    format!(
                        "Unknown message type '{shown}'; expected connection_init, subscribe, unsubscribe, publish or history"
                    ),
                ),
            ));
        }
    };
    let id = match obj.remove("id") {
        Some(Value::String(id)) if valid_id(&id) => id,
        Some(Value::String(_)) => {
            return Err(fail(
                frame,
                raw_id,
                OpError::bad_request("'id' must match ^[a-zA-Z0-9-_+]{1,128}$"),
            ))
        }
        Some(_) => {
            return Err(fail(
                frame,
                None,
                OpError::bad_request("'id' must be a string"),
            ))
        }
        None => {
            return Err(fail(
                frame,
                None,
                OpError::bad_request("The message has no 'id'"),
            ))
        }
    };
    let fail_id = |error| FrameError {
        frame,
        id: Some(id.clone()),
        error,
    };
    if frame == ErrorFrame::Unsubscribe {
        return Ok(ClientFrame::Unsubscribe { id });
    }
    let channel = match obj.remove("channel") {
        Some(Value::String(c)) => c,
        Some(_) => return Err(fail_id(OpError::bad_request("'channel' must be a string"))),
        None => {
            return Err(fail_id(OpError::bad_request(
                "The message has no 'channel'",
            )))
        }
    };
    let authorization = match obj.remove("authorization") {
        Some(Value::Object(a)) => Some(a),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(fail_id(OpError::bad_request(
                "'authorization' must be an object of headers",
            )))
        }
    };
    Ok(match frame {
        ErrorFrame::Subscribe => {
            ClientFrame::Subscribe {
                since: match obj.remove("since") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(f)) => Some(f),
                    Some(_) => return Err(fail_id(OpError::bad_request(
                        "'since' must be a position: {\"offset\": <number>, \"epoch\": <string>}",
                    ))),
                },
                filter: match obj.remove("filter") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(f)) => Some(f),
                    Some(_) => {
                        return Err(fail_id(OpError::bad_request(
                            "'filter' must be an event pattern (a JSON object)",
                        )))
                    }
                },
                id,
                channel,
                authorization,
            }
        }
        ErrorFrame::History => ClientFrame::History {
            limit: match obj.remove("limit") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
                Some(_) => {
                    return Err(fail_id(OpError::bad_request(
                        "'limit' must be a positive integer",
                    )))
                }
            },
            next_token: match obj.remove("nextToken") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(t),
                Some(_) => {
                    return Err(fail_id(OpError::bad_request(
                        "'nextToken' must be a string",
                    )))
                }
            },
            id,
            channel,
            authorization,
        },
        _ => ClientFrame::Publish {
            id,
            channel,
            events: obj.remove("events"),
            authorization,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_amplify_subscribe() {
        let f = parse_client_frame(
            r#"{"id":"5d0b-aa","channel":"default/channel","authorization":{"host":"h","x-api-key":"k"},"payload":{"x":1},"type":"subscribe"}"#,
        )
        .unwrap();
        match f {
            ClientFrame::Subscribe {
                id,
                channel,
                authorization,
                filter,
                since,
            } => {
                assert_eq!(filter, None);
                assert_eq!(since, None);
                assert_eq!(id, "5d0b-aa");
                assert_eq!(channel, "default/channel");
                assert_eq!(authorization.unwrap()["x-api-key"], "k");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_frame_and_id() {
        let e = parse_client_frame("{nope").unwrap_err();
        assert_eq!((e.frame, e.id), (ErrorFrame::Error, None));
        let e = parse_client_frame(r#"{"type":"frobnicate","id":"x1"}"#).unwrap_err();
        assert_eq!(e.error.kind, ErrorType::UnsupportedOperation);
        assert_eq!(e.id.as_deref(), Some("x1"));
        let e = parse_client_frame(r#"{"type":"subscribe","id":"bad id"}"#).unwrap_err();
        assert_eq!(e.frame, ErrorFrame::Subscribe);
        assert_eq!(e.id.as_deref(), Some("bad id"));
        let e = parse_client_frame(r#"{"type":"publish","id":"p1"}"#).unwrap_err();
        assert_eq!(
            (e.frame, e.id.as_deref()),
            (ErrorFrame::Publish, Some("p1"))
        );
        let e = parse_client_frame(r#"{"type":"subscribe","id":"s1","channel":"/a","filter":[1]}"#)
            .unwrap_err();
        assert_eq!(
            (e.frame, e.id.as_deref()),
            (ErrorFrame::Subscribe, Some("s1"))
        );
        assert!(e.error.message.contains("'filter'"));
        let e = parse_client_frame("[1]").unwrap_err();
        assert_eq!(e.frame, ErrorFrame::Error);
        assert!(!valid_id(&"a".repeat(129)));
        assert!(valid_id("a-b_c+D9"));
    }
}
