//! DIRECT handlers: a namespace's `onPublish` / `onSubscribe` answered by a
//! Lambda-style function reached over HTTP (AppSync's direct Lambda
//! integration), with AppSync's payload and response shapes.
//!
//! `REQUEST_RESPONSE` waits for the answer: for publish
//! `{"events": [{id, payload} | {id, error}], "error"?}` (a top-level `error` is
//! logged, not returned to the publisher); for subscribe `null` (allow) or
//! `{"error": "..."}` (reject). `EVENT` posts without waiting; events are
//! broadcast as usual and subscriptions allowed. A function that cannot be
//! reached, times out or answers garbage fails the request (500); one that
//! answers an error status rejects it (403).

use super::{Failure, Kind, Outcome};
use crate::http_client::HttpClient;
use bytes::Bytes;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeType {
    RequestResponse,
    Event,
}

/// One configured DIRECT handler.
#[derive(Clone)]
pub struct DirectHandler {
    pub url: String,
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
            let this = self.clone();
            let ns = namespace.to_string();
            tokio::spawn(async move {
                match this
                    .http
                    .request(hyper::Method::POST, &this.url, &headers, body, this.timeout)
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
            return Ok(Outcome::Absent);
        }
        let resp = self
            .http
            .request(hyper::Method::POST, &self.url, &headers, body, self.timeout)
            .await
            .map_err(|e| Failure(format!("the data source is unreachable: {e}")))?;
        if !resp.status.is_success() {
            return Ok(Outcome::Error {
                message: format!(
                    "The {} data source rejected the request (HTTP {})",
                    kind.export(),
                    resp.status.as_u16()
                ),
                error_type: None,
            });
        }
        let answer: Value = if resp.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body)
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
