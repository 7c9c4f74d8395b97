//! Asynchronous invocations (`Event`), as Lambda runs them: the event is
//! queued and the caller answered at once; a function error or failure is
//! retried (`MaximumRetryAttempts`, default 2, after 1 s and then 2 s); an
//! event older than `MaximumEventAgeInSeconds` (default 6 hours) is not
//! tried again. The outcome can go to a destination (`DestinationConfig`:
//! `OnSuccess`, `OnFailure`), another Herald function invoked asynchronously
//! with Lambda's invocation record. An event that fails every attempt with no
//! failure destination is logged at ERROR and counted
//! (`herald_function_async_failures_total`).
//!
//! Pending events are bounded ([`super::MAX_ASYNC_PENDING`]); past that an
//! `Event` invocation is refused with `TooManyRequestsException`. They live
//! in memory: a node that stops loses the events it had not run (Lambda
//! keeps them in a durable queue; Herald's durable queue is the event bus).

use super::{checked_json, now_rfc3339, Functions, InvokeError, MAX_ASYNC_PAYLOAD};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pauses before the first and the second retry.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// Lambda's `FunctionEventInvokeConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    /// 0-2.
    pub maximum_retry_attempts: u32,
    /// 60-21,600.
    pub maximum_event_age_secs: u32,
    /// Function ARNs (or names).
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    /// Epoch seconds.
    pub last_modified: f64,
}

impl Default for EventInvokeConfig {
    fn default() -> Self {
        EventInvokeConfig {
            maximum_retry_attempts: 2,
            maximum_event_age_secs: 21_600,
            on_success: None,
            on_failure: None,
            last_modified: 0.0,
        }
    }
}

impl EventInvokeConfig {
    /// Check the bounds and destinations as Lambda does (a destination must
    /// be a function: Herald's queues and buses come later).
    pub fn check(&self) -> Result<(), String> {
        if self.maximum_retry_attempts > 2 {
            return Err("MaximumRetryAttempts must be from 0 to 2".into());
        }
        if !(60..=21_600).contains(&self.maximum_event_age_secs) {
            return Err("MaximumEventAgeInSeconds must be from 60 to 21600".into());
        }
        for d in [&self.on_success, &self.on_failure].into_iter().flatten() {
            if d.starts_with("arn:") && !d.contains(":lambda:") {
                return Err(format!(
                    "The destination {d} is not a function: Herald sends destinations to functions only"
                ));
            }
        }
        Ok(())
    }
}

/// How an asynchronous invocation ended.
enum Outcome {
    Success(Bytes),
    /// The last answer (a function error), or none when it never ran.
    Failure(Option<Bytes>, &'static str),
}

impl Functions {
    /// Queue an asynchronous invocation; returns its request id.
    pub fn invoke_async(
        self: &Arc<Self>,
        reference: &str,
        payload: Bytes,
    ) -> Result<String, InvokeError> {
        let f = self
            .get(reference)
            .ok_or_else(|| InvokeError::NotFound(Self::name_of(reference).to_string()))?;
        if payload.len() > MAX_ASYNC_PAYLOAD {
            return Err(InvokeError::TooLarge(MAX_ASYNC_PAYLOAD));
        }
        let payload = checked_json(payload)?;
        let permit = self
            .async_pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| InvokeError::TooManyRequests("ConcurrentInvocationLimitExceeded"))?;
        let config = f.spec.event_invoke.clone().unwrap_or_default();
        let this = self.clone();
        let name = f.spec.name.clone();
        let id = crate::new_uuid().to_string();
        let request_id = id.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let queued = Instant::now();
            let max_age = Duration::from_secs(config.maximum_event_age_secs.into());
            let mut attempts = 0u32;
            let mut outcome = Outcome::Failure(None, "RetriesExhausted");
            for attempt in 0..=config.maximum_retry_attempts {
                if attempt > 0 {
                    tokio::time::sleep(RETRY_DELAYS[attempt as usize - 1]).await;
                }
                if queued.elapsed() > max_age {
                    outcome = match outcome {
                        Outcome::Failure(last, _) => Outcome::Failure(last, "EventAgeExceeded"),
                        done => done,
                    };
                    break;
                }
                attempts += 1;
                match this.invoke(&name, payload.clone(), None).await {
                    Ok(r) if !r.function_error => {
                        outcome = Outcome::Success(r.payload);
                        break;
                    }
                    Ok(r) => {
                        tracing::warn!(function = %name, request = %request_id, attempt, error = %String::from_utf8_lossy(&r.payload), "asynchronous invocation failed");
                        outcome = Outcome::Failure(Some(r.payload), "RetriesExhausted");
                    }
                    Err(InvokeError::NotFound(_)) => {
                        tracing::warn!(function = %name, request = %request_id, "function deleted before its asynchronous invocation ran");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(function = %name, request = %request_id, attempt, error = ?e, "asynchronous invocation not run")
                    }
                }
            }
            let (destination, condition, response) = match &outcome {
                Outcome::Success(p) => (config.on_success.as_ref(), "Success", Some(p)),
                Outcome::Failure(p, condition) => {
                    this.metrics.async_failed(&name);
                    (config.on_failure.as_ref(), *condition, p.as_ref())
                }
            };
            let Some(destination) = destination else {
                if let Outcome::Failure(..) = outcome {
                    tracing::error!(function = %name, request = %request_id, attempts, condition, "asynchronous invocation failed; no failure destination, dropped");
                }
                return;
            };
            let record = json!({
                "version": "1.0",
                "timestamp": now_rfc3339(),
                "requestContext": {
                    "requestId": request_id,
                    "functionArn": format!("{}:$LATEST", this.arn(&name)),
                    "condition": condition,
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": serde_json::from_slice::<Value>(&payload).unwrap_or(Value::Null),
                "responseContext": match &outcome {
                    Outcome::Success(_) => json!({"statusCode": 200, "executedVersion": "$LATEST"}),
                    Outcome::Failure(Some(_), _) => json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}),
                    Outcome::Failure(None, _) => json!({"statusCode": 429, "executedVersion": "$LATEST"}),
                },
                "responsePayload": response.and_then(|p| serde_json::from_slice::<Value>(p).ok()),
            });
            if let Err(e) = this.invoke_async(destination, Bytes::from(record.to_string())) {
                tracing::error!(function = %name, request = %request_id, destination = %destination, error = ?e, "the destination refused the invocation record; dropped");
            }
        });
        Ok(id)
    }
}
