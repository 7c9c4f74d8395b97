//! `PutRule`, `DescribeRule`, `ListRules`, `EnableRule`, `DisableRule`,
//! `DeleteRule`. `PutRule` on an existing rule changes it and keeps its
//! targets, as EventBridge does.

use super::super::aws::{AwsError, Body};
use super::buses::{named, reload, tag_list, MAX_TAGS};
use super::{not_found, ok, opt, page, store_failed, string, validation, Req};
use crate::bus::schedule::Schedule;
use crate::bus::spec::{check_name, RuleSpec, DEFAULT_BUS, MAX_RULES_PER_BUS};
use crate::bus::EventBuses;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

const STATES: &[&str] = &[
    "ENABLED",
    "DISABLED",
    "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
];

fn no_rule(name: &str, bus: &str) -> AwsError {
    not_found(format!("Rule {name} does not exist on EventBus {bus}."))
}

/// The rule a request names (`Name` or `Rule`, and `EventBusName`).
pub fn find(b: &EventBuses, req: &Req, field: &str) -> Result<Arc<RuleSpec>, AwsError> {
    let name = string(req, field)?;
    let bus = named(req, "EventBusName")?;
    let view = b.view();
    let v = view
        .buses
        .get(&bus)
        .ok_or_else(|| not_found(format!("Event bus {bus} does not exist.")))?;
    v.rules
        .get(name)
        .cloned()
        .ok_or_else(|| no_rule(name, &bus))
}

/// The API does not change a rule the configuration file declares: AWS's
/// answer for a rule another service manages.
pub fn unmanaged(r: &RuleSpec) -> Result<(), AwsError> {
    match &r.managed_by {
        Some(by) => Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "ManagedRuleException",
            format!(
                "Rule {} on EventBus {} is managed by {by} (Herald's configuration file); change it there.",
                r.name, r.event_bus_name
            ),
        )),
        None => Ok(()),
    }
}

fn describe_rule(b: &EventBuses, r: &RuleSpec) -> Value {
    let mut v = json!({
        "Name": r.name,
        "Arn": b.rule_arn(&r.event_bus_name, &r.name),
        "State": r.state,
        "EventBusName": r.event_bus_name,
    });
    for (k, val) in [
        ("EventPattern", &r.event_pattern),
        ("ScheduleExpression", &r.schedule_expression),
        ("Description", &r.description),
        ("RoleArn", &r.role_arn),
        ("ManagedBy", &r.managed_by),
    ] {
        if let Some(s) = val {
            v[k] = s.clone().into();
        }
    }
    v
}

pub async fn put(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "Name")?;
    check_name(name, "name", 64).map_err(validation)?;
    let bus = named(req, "EventBusName")?;
    let pattern = opt(req, "EventPattern")?;
    let schedule = opt(req, "ScheduleExpression")?;
    if pattern.is_none() && schedule.is_none() {
        return Err(validation(
            "Parameter(s) EventPattern or ScheduleExpression must be specified.",
        ));
    }
    if let Some(p) = pattern {
        super::pattern::parse(p)?;
    }
    if let Some(s) = schedule {
        if bus != DEFAULT_BUS {
            return Err(validation(
                "ScheduleExpression is supported only on the default event bus.",
            ));
        }
        Schedule::parse(s).map_err(validation)?;
    }
    let state = opt(req, "State")?.unwrap_or("ENABLED");
    if !STATES.contains(&state) {
        return Err(validation(format!(
            "1 validation error detected: Value '{state}' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            STATES.join(", ")
        )));
    }
    let description = opt(req, "Description")?;
    if description.is_some_and(|d| d.chars().count() > 512) {
        return Err(validation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 512"));
    }
    let tags = tag_list(req.get("Tags"))?;
    let _changing = b.lock().await;
    let view = b.view();
    let v = view
        .buses
        .get(&bus)
        .ok_or_else(|| not_found(format!("Event bus {bus} does not exist.")))?;
    let existing = v.rules.get(name);
    if let Some(r) = existing {
        unmanaged(r)?;
    }
    if existing.is_none() && v.rules.len() >= MAX_RULES_PER_BUS {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "LimitExceededException",
            format!("The requested resource exceeds the maximum number allowed ({MAX_RULES_PER_BUS} rules per event bus)."),
        ));
    }
    let rule = RuleSpec {
        name: name.to_string(),
        event_bus_name: bus.clone(),
        event_pattern: pattern.map(str::to_string),
        schedule_expression: schedule.map(str::to_string),
        state: state.to_string(),
        description: description.map(str::to_string),
        role_arn: opt(req, "RoleArn")?.map(str::to_string),
        targets: existing.map(|r| r.targets.clone()).unwrap_or_default(),
        managed_by: None,
    };
    let arn = b.rule_arn(&bus, name);
    if existing.is_none() && !tags.is_empty() {
        b.store()
            .put_tags(&arn, tags, MAX_TAGS)
            .await
            .map_err(store_failed)?;
    }
    b.store()
        .put_rule(EventBuses::to_stored(&rule))
        .await
        .map_err(store_failed)?;
    reload(b).await;
    ok(&json!({"RuleArn": arn}))
}

pub fn describe(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let r = find(b, req, "Name")?;
    let mut v = describe_rule(b, &r);
    v["CreatedBy"] = b.account.clone().into();
    ok(&v)
}

pub fn list(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let prefix = opt(req, "NamePrefix")?.unwrap_or_default();
    let bus = named(req, "EventBusName")?;
    let view = b.view();
    let v = view
        .buses
        .get(&bus)
        .ok_or_else(|| not_found(format!("Event bus {bus} does not exist.")))?;
    let all: Vec<Value> = v
        .rules
        .values()
        .filter(|r| r.name.starts_with(prefix))
        .map(|r| describe_rule(b, r))
        .collect();
    let (items, next) = page(&all, req)?;
    let mut answer = json!({"Rules": items});
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    ok(&answer)
}

pub async fn set_state(b: &EventBuses, req: &Req, state: &str) -> Result<Response<Body>, AwsError> {
    let _changing = b.lock().await;
    let r = find(b, req, "Name")?;
    unmanaged(&r)?;
    if r.state != state {
        let mut changed = (*r).clone();
        changed.state = state.to_string();
        b.store()
            .put_rule(EventBuses::to_stored(&changed))
            .await
            .map_err(store_failed)?;
        reload(b).await;
    }
    ok(&json!({}))
}

pub async fn delete(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let _changing = b.lock().await;
    let r = match find(b, req, "Name") {
        Ok(r) => r,
        Err(e) if e.kind == "ResourceNotFoundException" => return ok(&json!({})),
        Err(e) => return Err(e),
    };
    unmanaged(&r)?;
    let force = req.get("Force").and_then(Value::as_bool).unwrap_or(false);
    if !r.targets.is_empty() && !force {
        return Err(validation("Rule can't be deleted since it has targets."));
    }
    b.store()
        .delete_rule(&r.event_bus_name, &r.name)
        .await
        .map_err(store_failed)?;
    let _ = b
        .store()
        .remove_tags(&b.rule_arn(&r.event_bus_name, &r.name), None)
        .await;
    reload(b).await;
    ok(&json!({}))
}
