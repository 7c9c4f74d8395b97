//! DIRECT handlers: a namespace's `onPublish` / `onSubscribe` answered by a
//! Lambda-style function (AppSync's direct Lambda integration), with
//! AppSync's payload and response shapes: a function reached over HTTP, or a
//! Herald function run in-process (a data source whose `lambda_config` names
//! it), with no HTTP hop; or a state machine (Herald's extension: the
//! `lambda_config` names its ARN), whose output is the answer.
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
use crate::workflow::WorkflowsSlot;
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
    /// A state machine: the handler's `ctx` is an execution's input.
    /// `REQUEST_RESPONSE` runs an EXPRESS machine to its end and takes its
    /// output as the function's answer (StartSyncExecution); `EVENT` starts
    /// an execution of either type and does not wait (StartExecution).
    StateMachine {
        workflows: WorkflowsSlot,
        arn: String,
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
    /// Run an EXPRESS machine to its end on `ctx`: its output, or why it
    /// failed (as a function error is), or why it could not run.
    async fn execute(
        &self,
        workflows: &WorkflowsSlot,
        arn: &str,
        ctx: &Value,
    ) -> Result<Result<Bytes, String>, Failure> {
        let w = crate::workflow::running(workflows)
            .ok_or_else(|| Failure("workflows are not running".into()))?;
        let run = w.start_sync(arn, None, ctx.clone());
        let exec = match tokio::time::timeout(self.timeout, run).await {
            Err(_) => return Err(Failure("the data source's execution timed out".into())),
            Ok(Err(crate::workflow::StartError::NoMachine(m))) => {
                return Err(Failure(format!("State Machine Does Not Exist: '{m}'")))
            }
            Ok(Err(crate::workflow::StartError::NotSupported(_))) => {
                return Err(Failure(format!(
                    "{arn} is a STANDARD state machine: a REQUEST_RESPONSE handler needs an EXPRESS one (or use invokeType EVENT)"
                )))
            }
            Ok(Err(e)) => return Err(Failure(format!("the execution did not start: {e:?}"))),
            Ok(Ok(exec)) => exec,
        };
        let outcome = exec.outcome();
        Ok(match (outcome.status, outcome.output, outcome.failure) {
            ("SUCCEEDED", output, _) => Ok(Bytes::from(output.unwrap_or(Value::Null).to_string())),
            (status, _, failure) => Err(match failure {
                Some(f) => format!("execution {status}: {}: {}", f.error, f.cause),
                None => format!("execution {status}"),
            }),
        })
    }

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
                Target::StateMachine { workflows, arn } => {
                    let started = crate::workflow::running(workflows)
                        .ok_or_else(|| "workflows are not running".to_string())
                        .and_then(|w| {
                            w.start(arn, None, ctx.clone())
                                .map_err(|e| format!("{e:?}"))
                        });
                    if let Err(e) = started {
                        tracing::warn!(namespace = %ns, handler = kind.export(), state_machine = %arn, error = %e, "EVENT handler's execution did not start");
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
            Target::StateMachine { workflows, arn } => self.execute(workflows, arn, ctx).await?,
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
