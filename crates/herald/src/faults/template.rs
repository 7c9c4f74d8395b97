//! Experiment templates: `CreateExperimentTemplate`'s body checked whole
//! (actions, their parameters and targets, `startAfter` without cycles),
//! with FIS's `ValidationException` messages; the schedule an experiment of
//! it follows; and how a target's `selectionMode` picks resources.

use super::actions;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// An error in FIS's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct FisError {
    /// `ValidationException`, `ResourceNotFoundException`, `ConflictException`,
    /// `ServiceQuotaExceededException`.
    pub kind: &'static str,
    pub message: String,
}

pub(super) fn invalid(message: impl Into<String>) -> FisError {
    FisError {
        kind: "ValidationException",
        message: message.into(),
    }
}

pub(super) fn not_found(message: impl Into<String>) -> FisError {
    FisError {
        kind: "ResourceNotFoundException",
        message: message.into(),
    }
}

pub(super) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

/// `EXT` or `EXP` and 14 random letters and digits, as FIS's ids look.
pub(super) fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..14)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

fn obj<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, FisError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{field} must be an object")))
}

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, FisError> {
    v.as_str()
        .ok_or_else(|| invalid(format!("{field} must be a string")))
}

/// `ALL`, `COUNT(n)` or `PERCENT(n)`.
fn check_selection(mode: &str) -> Result<(), FisError> {
    let n = |inner: &str, hi: u64| {
        inner
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=hi).contains(n))
            .is_some()
    };
    let ok = mode == "ALL"
        || mode
            .strip_prefix("COUNT(")
            .and_then(|r| r.strip_suffix(')'))
            .is_some_and(|i| n(i, u32::MAX as u64))
        || mode
            .strip_prefix("PERCENT(")
            .and_then(|r| r.strip_suffix(')'))
            .is_some_and(|i| n(i, 100));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid selectionMode '{mode}': ALL, COUNT(n) or PERCENT(n)"
        )))
    }
}

/// The resources a target selects now.
pub(super) fn select(arns: &[String], mode: &str) -> Vec<String> {
    let mut pool = arns.to_vec();
    let keep = if let Some(n) = mode
        .strip_prefix("COUNT(")
        .and_then(|r| r.strip_suffix(')'))
    {
        n.parse::<usize>().unwrap_or(0)
    } else if let Some(p) = mode
        .strip_prefix("PERCENT(")
        .and_then(|r| r.strip_suffix(')'))
    {
        (arns.len() * p.parse::<usize>().unwrap_or(0)).div_ceil(100)
    } else {
        arns.len()
    };
    // A random subset: shuffle, keep the first `keep`.
    for i in (1..pool.len()).rev() {
        pool.swap(i, rand::random_range(0..=i));
    }
    pool.truncate(keep.min(arns.len()));
    pool
}

/// Validate a `CreateExperimentTemplate` body into the template to keep.
pub fn template_from_request(body: &Value, region: &str, account: &str) -> Result<Value, FisError> {
    let b = obj(body, "The request")?;
    let description = text(
        b.get("description")
            .ok_or_else(|| invalid("description is required"))?,
        "description",
    )?;
    if description.len() > 512 {
        return Err(invalid("description is longer than 512 characters"));
    }
    let role = text(
        b.get("roleArn")
            .ok_or_else(|| invalid("roleArn is required"))?,
        "roleArn",
    )?;
    let stops = b
        .get("stopConditions")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("stopConditions is required"))?;
    for s in stops {
        match s.get("source").and_then(Value::as_str) {
            Some("none") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "Stop condition source '{other}' is not supported by Herald (only 'none')"
                )))
            }
            None => return Err(invalid("a stop condition needs a source")),
        }
    }
    let empty = Map::new();
    let targets = match b.get("targets") {
        Some(t) => obj(t, "targets")?,
        None => &empty,
    };
    for (name, t) in targets {
        let t = obj(t, &format!("targets.{name}"))?;
        let rtype = t.get("resourceType").and_then(Value::as_str).unwrap_or("");
        if ![actions::FUNCTION, actions::API, actions::NAMESPACE].contains(&rtype) {
            return Err(invalid(format!(
                "Target {name}: resourceType '{rtype}' is not supported (use {}, {} or {})",
                actions::FUNCTION,
                actions::API,
                actions::NAMESPACE
            )));
        }
        check_selection(
            t.get("selectionMode")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("Target {name} needs a selectionMode")))?,
        )?;
        if t.contains_key("resourceTags") || t.contains_key("filters") {
            return Err(invalid(format!(
                "Target {name}: Herald selects resources by resourceArns only"
            )));
        }
        let arns = t
            .get("resourceArns")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| invalid(format!("Target {name} needs resourceArns")))?;
        if arns.iter().any(|a| !a.is_string()) {
            return Err(invalid(format!("Target {name}: resourceArns are strings")));
        }
    }
    let acts = b
        .get("actions")
        .and_then(Value::as_object)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("actions is required"))?;
    for (name, a) in acts {
        let a = obj(a, &format!("actions.{name}"))?;
        let id = a.get("actionId").and_then(Value::as_str).unwrap_or("");
        let spec = actions::find(id).ok_or_else(|| {
            invalid(format!(
                "Action {name}: '{id}' is not an action Herald offers (see ListActions)"
            ))
        })?;
        let params = match a.get("parameters") {
            Some(p) => obj(p, &format!("actions.{name}.parameters"))?.clone(),
            None => Map::new(),
        };
        actions::validate(spec, &params).map_err(|e| invalid(format!("Action {name}: {e}")))?;
        let action_targets = match a.get("targets") {
            Some(t) => obj(t, &format!("actions.{name}.targets"))?.clone(),
            None => Map::new(),
        };
        match spec.target {
            None if !action_targets.is_empty() => {
                return Err(invalid(format!("Action {name}: {id} takes no targets")))
            }
            None => {}
            Some((key, rtype)) => {
                let target = action_targets
                    .get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(format!("Action {name}: {id} needs the target {key}"))
                    })?;
                if action_targets.len() != 1 {
                    return Err(invalid(format!(
                        "Action {name}: {id} takes only the target {key}"
                    )));
                }
                let t = targets
                    .get(target)
                    .ok_or_else(|| invalid(format!("Action {name}: no target named {target}")))?;
                if t.get("resourceType").and_then(Value::as_str) != Some(rtype) {
                    return Err(invalid(format!(
                        "Action {name}: target {target} must be of resource type {rtype}"
                    )));
                }
            }
        }
        for after in a
            .get("startAfter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let after = text(after, "startAfter")?;
            if after == name || !acts.contains_key(after) {
                return Err(invalid(format!(
                    "Action {name}: startAfter names no other action '{after}'"
                )));
            }
        }
    }
    schedule(acts).map_err(invalid)?;
    let id = new_id("EXT");
    let now = now();
    Ok(json!({
        "id": id,
        "arn": format!("arn:aws:fis:{region}:{account}:experiment-template/{id}"),
        "description": description,
        "targets": targets,
        "actions": acts,
        "stopConditions": stops,
        "roleArn": role,
        "tags": b.get("tags").cloned().unwrap_or(json!({})),
        "creationTime": now,
        "lastUpdateTime": now,
    }))
}

/// Each action's start and end, as offsets from the experiment's start.
pub(super) fn schedule(
    acts: &Map<String, Value>,
) -> Result<BTreeMap<String, (Duration, Duration)>, String> {
    let mut done: BTreeMap<String, (Duration, Duration)> = BTreeMap::new();
    while done.len() < acts.len() {
        let before = done.len();
        for (name, a) in acts {
            if done.contains_key(name) {
                continue;
            }
            let after: Vec<&str> = a
                .get("startAfter")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if after.iter().all(|n| done.contains_key(*n)) {
                let start = after.iter().map(|n| done[*n].1).max().unwrap_or_default();
                let duration = a
                    .pointer("/parameters/duration")
                    .and_then(Value::as_str)
                    .map(actions::parse_duration)
                    .transpose()?
                    .unwrap_or_default();
                done.insert(name.clone(), (start, start + duration));
            }
        }
        if done.len() == before {
            return Err("the actions' startAfter form a cycle".into());
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_modes() {
        let arns: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        assert_eq!(select(&arns, "ALL").len(), 10);
        assert_eq!(select(&arns, "COUNT(3)").len(), 3);
        assert_eq!(select(&arns, "PERCENT(25)").len(), 3);
        assert!(check_selection("COUNT(0)").is_err());
        assert!(check_selection("PERCENT(101)").is_err());
        assert!(check_selection("SOME").is_err());
    }

    #[test]
    fn schedules_follow_start_after() {
        let acts = json!({
            "a": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT10S"}},
            "b": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT5S"}, "startAfter": ["a"]},
            "c": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}},
        });
        let s = schedule(acts.as_object().unwrap()).unwrap();
        assert_eq!(s["b"], (Duration::from_secs(10), Duration::from_secs(15)));
        assert_eq!(s["c"], (Duration::ZERO, Duration::from_secs(1)));
        let cycle = json!({
            "a": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}, "startAfter": ["b"]},
            "b": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}, "startAfter": ["a"]},
        });
        assert!(schedule(cycle.as_object().unwrap()).is_err());
    }
}
