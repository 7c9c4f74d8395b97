//! DIRECT handlers: a namespace's `onPublish` / `onSubscribe` answered by a
//! Lambda-style function (AppSync's direct Lambda integration), with
//! AppSync's payload and response shapes: a function reached over HTTP, or a
//! Herald function run in-process (a data source whose `lambda_config` names
//! it), with no HTTP hop.
//!
//! `REQUEST_RESPONSE` waits for the answer: for publish
//! `{"events": [{id, payload} | {id, error}], "error"?}` (a top-level `error` is
//! logged, not returned to the publisher); for subscribe `null` (allow) or
//! `{"error": "..."}` (reject). `EVENT` posts without waiting; events are
//! broadcast as usual and subscriptions allowed. A function that cannot be
//! reached, times out or answers garbage fails the request (500); one that
//! answers an error status rejects it (403).

use super::{Failure, Kind, Outcome};
use crate::functions::Functions;
use crate::http_client::HttpClient;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeType {
    RequestResponse,
    Event,
}

/// What a DIRECT handler calls.
#[derive(Clone)]
pub enum Target {
    /// A function reached over HTTP.
    Url(String),
    /// A Herald function, run in-process (no HTTP hop).
    Function {
        functions: Arc<Functions>,
        name: String,
    },
}

/// One configured DIRECT handler.
#[derive(Clone)]
pub struct DirectHandler {
    pub target: Target,
    pub invoke_type: InvokeType,
    pub timeout: Duration,
    pub http: HttpClient,
}

impl DirectHandler {
    pub async fn invoke(
        &self,
        namespace: &str,
        kind: Kind,
        ctx: &Value,
    ) -> Result<Outcome, Failure> {
        let body = Bytes::from(ctx.to_string());
        let headers = [("content-type", "application/json")];
        if self.invoke_type == InvokeType::Event {
            let ns = namespace.to_string();
            match &self.target {
                Target::Function { functions, name } => {
                    if let Err(e) = functions.invoke_async(name, body) {
                        tracing::warn!(namespace = %ns, handler = kind.export(), error = ?e, "EVENT handler's function refused the invocation");
                    }
                }
                Target::Url(url) => {
                    let this = self.clone();
                    let url = url.clone();
                    tokio::spawn(async move {
                        match this
                            .http
                            .request(hyper::Method::POST, &url, &headers, body, this.timeout)
                            .await
                        {
                            Ok(r) if r.status.is_success() => {}
                            Ok(r) => {
                                tracing::warn!(namespace = %ns, handler = kind.export(), status = %r.status, "EVENT handler answered an error")
                            }
                            Err(e) => {
                                tracing::warn!(namespace = %ns, handler = kind.export(), error = %e, "EVENT handler unreachable")
                            }
                        }
                    });
                }
            }
            return Ok(Outcome::Absent);
        }
        // The answer, or why the data source refused (an error status or a
        // function error).
        let answer: Result<Bytes, String> = match &self.target {
            Target::Url(url) => {
                let resp = self
                    .http
                    .request(hyper::Method::POST, url, &headers, body, self.timeout)
                    .await
                    .map_err(|e| Failure(format!("the data source is unreachable: {e}")))?;
                if resp.status.is_success() {
                    Ok(resp.body)
                } else {
                    Err(format!("HTTP {}", resp.status.as_u16()))
                }
            }
            Target::Function { functions, name } => {
                let r = functions.invoke(name, body, None).await.map_err(|e| {
                    Failure(format!("the data source's function did not run: {e:?}"))
                })?;
                if r.function_error {
                    let e: Value = serde_json::from_slice(&r.payload).unwrap_or(Value::Null);
                    Err(format!(
                        "function error {}: {}",
                        e["errorType"].as_str().unwrap_or("Unhandled"),
                        e["errorMessage"].as_str().unwrap_or_default()
                    ))
                } else {
                    Ok(r.payload)
                }
            }
        };
        let body = match answer {
            Ok(b) => b,
            Err(why) => {
                return Ok(Outcome::Error {
                    message: format!(
                        "The {} data source rejected the request ({why})",
                        kind.export()
                    ),
                    error_type: None,
                })
            }
        };
        let answer: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .map_err(|_| Failure("the data source answered with invalid JSON".into()))?
        };
        if let Some(err) = answer.get("error").filter(|e| !e.is_null()) {
            let message = err
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            if kind == Kind::OnSubscribe {
                return Ok(Outcome::Error {
                    message,
                    error_type: None,
                });
            }
            tracing::warn!(namespace, handler = kind.export(), error = %message, "data source returned an error");
        }
        match kind {
            Kind::OnSubscribe => Ok(Outcome::Returned(Value::Null)),
            Kind::OnPublish => Ok(Outcome::Returned(
                answer.get("events").cloned().unwrap_or(Value::Null),
            )),
        }
    }
}
