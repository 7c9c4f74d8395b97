//! `PutEvents`: the answer comes once the accepted events are durable.

use super::super::aws::{AwsError, Body};
use super::{ok, validation, Req};
use crate::bus::put::PutError;
use crate::bus::EventBuses;
use hyper::{Response, StatusCode};
use serde_json::Value;

pub async fn put_events(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let entries = req
        .get("Entries")
        .and_then(Value::as_array)
        .ok_or_else(|| validation("1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null"))?;
    match b.put_events(entries).await {
        Ok(answer) => ok(&answer),
        Err(PutError::Invalid(m)) => Err(validation(m)),
        Err(PutError::Log(e)) => {
            tracing::error!(error = %e, "PutEvents: the event log failed");
            Err(AwsError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalException",
                "The events could not be stored; none was accepted",
            ))
        }
    }
}
