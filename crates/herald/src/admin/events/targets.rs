//! `PutTargets`, `RemoveTargets`, `ListTargetsByRule`. A target with the
//! `Id` of an existing one replaces it. A malformed target refuses the whole
//! request (`ValidationException`, naming the field); a well-formed one that
//! this server cannot reach (an SQS queue with no `[[event_sources]]` entry)
//! fails alone, in `FailedEntries`.

use super::super::aws::{AwsError, Body};
use super::super::AdminState;
use super::buses::reload;
use super::rules::find;
use super::{ok, page, store_failed, validation, Req};
use crate::bus::spec::{RuleSpec, TargetSpec, MAX_TARGETS_PER_RULE};
use crate::bus::EventBuses;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

fn list_of<'a>(req: &'a Req, field: &str) -> Result<&'a Vec<Value>, AwsError> {
    match req.get(field).and_then(Value::as_array) {
        Some(l) if (1..=100).contains(&l.len()) => Ok(l),
        _ => Err(validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length between 1 and 100",
            super::lower_first(field)
        ))),
    }
}

pub async fn put(state: &AdminState, req: &Req) -> Result<Response<Body>, AwsError> {
    let b = &state.buses;
    let given = list_of(req, "Targets")?;
    let mut specs = Vec::with_capacity(given.len());
    for t in given {
        specs.push(TargetSpec::from_request(t).map_err(validation)?);
    }
    let _changing = b.lock().await;
    let rule = find(b, req, "Rule")?;
    super::rules::unmanaged(&rule)?;
    let mut failed = Vec::new();
    let mut targets = rule.targets.clone();
    for t in specs {
        if let Some(parts) = b.parts() {
            let reach = crate::bus::target::Target::new(&t.arn, parts).and_then(|_| {
                match t.dead_letter() {
                    Some(d) => crate::bus::target::dead_letter(d, parts).map(|_| ()),
                    None => Ok(()),
                }
            });
            if let Err(e) = reach {
                failed.push(json!({"TargetId": t.id, "ErrorCode": "ValidationException", "ErrorMessage": e}));
                continue;
            }
        }
        match targets.iter_mut().find(|o| o.id == t.id) {
            Some(o) => *o = t,
            None => targets.push(t),
        }
    }
    if targets.len() > MAX_TARGETS_PER_RULE {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            format!("The requested resource exceeds the maximum number allowed ({MAX_TARGETS_PER_RULE} targets per rule)."),
        ));
    }
    save(b, &rule, targets).await?;
    ok(&json!({"FailedEntryCount": failed.len(), "FailedEntries": failed}))
}

/// Store the rule with `targets`, if they changed, and re-read.
async fn save(b: &EventBuses, rule: &RuleSpec, targets: Vec<TargetSpec>) -> Result<(), AwsError> {
    if targets == rule.targets {
        return Ok(());
    }
    let mut changed = rule.clone();
    changed.targets = targets;
    b.store()
        .put_rule(EventBuses::to_stored(&changed))
        .await
        .map_err(store_failed)?;
    reload(b).await;
    Ok(())
}

pub async fn remove(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let ids: Vec<&str> = list_of(req, "Ids")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let _changing = b.lock().await;
    let rule = find(b, req, "Rule")?;
    super::rules::unmanaged(&rule)?;
    let targets: Vec<TargetSpec> = rule
        .targets
        .iter()
        .filter(|t| !ids.contains(&t.id.as_str()))
        .cloned()
        .collect();
    save(b, &rule, targets).await?;
    ok(&json!({"FailedEntryCount": 0, "FailedEntries": []}))
}

pub fn list(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let rule = find(b, req, "Rule")?;
    let (items, next) = page(&rule.targets, req)?;
    let mut answer = json!({"Targets": items});
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    ok(&answer)
}
