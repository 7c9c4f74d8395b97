//! Archives and replays: `CreateArchive`, `DescribeArchive`,
//! `ListArchives`, `UpdateArchive`, `DeleteArchive`, `StartReplay`,
//! `DescribeReplay`, `ListReplays`, `CancelReplay`.

use super::super::aws::{AwsError, Body};
use super::buses::reload;
use super::{not_found, ok, opt, page, store_failed, string, time, validation, Req};
use crate::bus::archive::{ArchiveSpec, ReplaySpec, ARCHIVE, REPLAY};
use crate::bus::spec::{bus_name, check_name};
use crate::bus::EventBuses;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

fn no_archive(name: &str) -> AwsError {
    not_found(format!("Archive {name} does not exist."))
}

fn no_replay(name: &str) -> AwsError {
    not_found(format!("Replay {name} does not exist."))
}

fn retention(req: &Req) -> Result<Option<u32>, AwsError> {
    match req.get("RetentionDays") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                validation("RetentionDays must be a whole number of days (0: for ever)")
            }),
    }
}

fn pattern(req: &Req) -> Result<Option<String>, AwsError> {
    let p = opt(req, "EventPattern")?;
    if let Some(p) = p {
        super::pattern::parse(p)?;
    }
    Ok(p.map(str::to_string))
}

fn timestamp(req: &Req, field: &str) -> Result<f64, AwsError> {
    req.get(field).and_then(Value::as_f64).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            super::lower_first(field)
        ))
    })
}

async fn describe_archive_value(b: &EventBuses, a: &ArchiveSpec) -> Value {
    let (count, bytes) = b.log.archive_stats(&a.archive_name).await.unwrap_or((0, 0));
    let mut v = json!({
        "ArchiveArn": a.archive_arn,
        "ArchiveName": a.archive_name,
        "EventSourceArn": a.event_source_arn,
        "State": "ENABLED",
        "RetentionDays": a.retention_days,
        "SizeBytes": bytes,
        "EventCount": count,
        "CreationTime": time(a.creation_time),
    });
    if let Some(d) = &a.description {
        v["Description"] = d.clone().into();
    }
    if let Some(p) = &a.event_pattern {
        v["EventPattern"] = p.clone().into();
    }
    v
}

async fn store_archive(b: &EventBuses, a: &ArchiveSpec) -> Result<(), AwsError> {
    b.store()
        .put_bus_resource(
            ARCHIVE,
            &a.archive_name,
            serde_json::to_string(a).expect("serializes"),
        )
        .await
        .map_err(store_failed)?;
    reload(b).await;
    Ok(())
}

pub async fn create_archive(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "ArchiveName")?;
    check_name(name, "archiveName", 48).map_err(validation)?;
    let source = string(req, "EventSourceArn")?;
    let event_pattern = pattern(req)?;
    let retention_days = retention(req)?.unwrap_or(0);
    let _changing = b.lock().await;
    let view = b.view();
    if view.archives.contains_key(name) {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "ResourceAlreadyExistsException",
            format!("Archive {name} already exists."),
        ));
    }
    let bus = bus_name(Some(source));
    if !view.buses.contains_key(&bus) || b.bus_arn(&bus) != source {
        return Err(not_found(format!("Event bus {bus} does not exist.")));
    }
    let a = ArchiveSpec {
        archive_name: name.to_string(),
        archive_arn: format!("arn:aws:events:{}:{}:archive/{name}", b.region, b.account),
        event_source_arn: source.to_string(),
        description: opt(req, "Description")?.map(str::to_string),
        event_pattern,
        retention_days,
        creation_time: crate::esm::spec::now_secs(),
    };
    store_archive(b, &a).await?;
    ok(
        &json!({"ArchiveArn": a.archive_arn, "State": "ENABLED", "CreationTime": time(a.creation_time)}),
    )
}

pub async fn describe_archive(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "ArchiveName")?;
    let a = b
        .view()
        .archives
        .get(name)
        .map(|(a, _)| a.clone())
        .ok_or_else(|| no_archive(name))?;
    ok(&describe_archive_value(b, &a).await)
}

pub async fn list_archives(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let prefix = opt(req, "NamePrefix")?.unwrap_or_default();
    let source = opt(req, "EventSourceArn")?;
    let chosen: Vec<Arc<ArchiveSpec>> = b
        .view()
        .archives
        .values()
        .map(|(a, _)| a.clone())
        .filter(|a| a.archive_name.starts_with(prefix))
        .filter(|a| source.is_none_or(|s| a.event_source_arn == s))
        .collect();
    let (items, next) = page(&chosen, req)?;
    let mut shown = Vec::new();
    for a in items {
        let mut v = describe_archive_value(b, &a).await;
        if let Some(o) = v.as_object_mut() {
            o.remove("ArchiveArn");
            o.remove("Description");
            o.remove("EventPattern");
        }
        shown.push(v);
    }
    let mut answer = json!({"Archives": shown});
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    ok(&answer)
}

pub async fn update_archive(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "ArchiveName")?;
    let event_pattern = pattern(req)?;
    let retention_days = retention(req)?;
    let _changing = b.lock().await;
    let mut a = b
        .view()
        .archives
        .get(name)
        .map(|(a, _)| (**a).clone())
        .ok_or_else(|| no_archive(name))?;
    if let Some(d) = opt(req, "Description")? {
        a.description = Some(d.to_string());
    }
    if event_pattern.is_some() {
        a.event_pattern = event_pattern;
    }
    if let Some(r) = retention_days {
        a.retention_days = r;
    }
    store_archive(b, &a).await?;
    ok(
        &json!({"ArchiveArn": a.archive_arn, "State": "ENABLED", "CreationTime": time(a.creation_time)}),
    )
}

pub async fn delete_archive(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "ArchiveName")?;
    let _changing = b.lock().await;
    if !b.view().archives.contains_key(name) {
        return Err(no_archive(name));
    }
    b.store()
        .delete_bus_resource(ARCHIVE, name)
        .await
        .map_err(store_failed)?;
    b.log.purge_archive(name, f64::MAX).await;
    reload(b).await;
    ok(&json!({}))
}

fn describe_replay_value(r: &ReplaySpec) -> Value {
    let mut v = json!({
        "ReplayName": r.replay_name,
        "ReplayArn": r.replay_arn,
        "State": r.state,
        "EventSourceArn": r.event_source_arn,
        "Destination": r.destination,
        "EventStartTime": time(r.event_start_time),
        "EventEndTime": time(r.event_end_time),
        "ReplayStartTime": time(r.replay_start_time),
    });
    for (k, val) in [
        ("ReplayEndTime", r.replay_end_time),
        ("EventLastReplayedTime", r.event_last_replayed_time),
    ] {
        if let Some(t) = val {
            v[k] = time(t);
        }
    }
    if let Some(d) = &r.description {
        v["Description"] = d.clone().into();
    }
    if let Some(s) = &r.state_reason {
        v["StateReason"] = s.clone().into();
    }
    v
}

pub async fn start_replay(b: &Arc<EventBuses>, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "ReplayName")?;
    check_name(name, "replayName", 64).map_err(validation)?;
    let source = string(req, "EventSourceArn")?;
    let start = timestamp(req, "EventStartTime")?;
    let end = timestamp(req, "EventEndTime")?;
    if start > end {
        return Err(validation(
            "Parameter EventStartTime is not valid. Reason: EventStartTime must be before EventEndTime.",
        ));
    }
    let destination = req
        .get("Destination")
        .filter(|d| d.get("Arn").and_then(Value::as_str).is_some())
        .cloned()
        .ok_or_else(|| validation("1 validation error detected: Value null at 'destination.arn' failed to satisfy constraint: Member must not be null"))?;
    let _changing = b.lock().await;
    let view = b.view();
    if view.replays.contains_key(name) {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "ResourceAlreadyExistsException",
            format!("Replay {name} already exists."),
        ));
    }
    let archive_name = source.rsplit('/').next().unwrap_or_default();
    let (archive, _) = view
        .archives
        .get(archive_name)
        .filter(|(a, _)| a.archive_arn == source)
        .ok_or_else(|| no_archive(archive_name))?;
    if destination["Arn"].as_str() != Some(archive.event_source_arn.as_str()) {
        return Err(validation(
            "Parameter Destination.Arn is not valid. Reason: Cross event bus replay is not permitted.",
        ));
    }
    let now = crate::esm::spec::now_secs();
    let r = ReplaySpec {
        replay_name: name.to_string(),
        replay_arn: format!("arn:aws:events:{}:{}:replay/{name}", b.region, b.account),
        description: opt(req, "Description")?.map(str::to_string),
        event_source_arn: source.to_string(),
        destination,
        event_start_time: start,
        event_end_time: end,
        state: "STARTING".into(),
        state_reason: None,
        replay_start_time: now,
        replay_end_time: None,
        event_last_replayed_time: None,
    };
    b.store()
        .put_bus_resource(REPLAY, name, serde_json::to_string(&r).expect("serializes"))
        .await
        .map_err(store_failed)?;
    reload(b).await;
    drop(_changing);
    b.run_replay(r.clone());
    ok(&json!({"ReplayArn": r.replay_arn, "State": "STARTING", "ReplayStartTime": time(now)}))
}

pub fn describe_replay(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "ReplayName")?;
    let view = b.view();
    let r = view.replays.get(name).ok_or_else(|| no_replay(name))?;
    ok(&describe_replay_value(r))
}

pub fn list_replays(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let prefix = opt(req, "NamePrefix")?.unwrap_or_default();
    let state = opt(req, "State")?;
    let source = opt(req, "EventSourceArn")?;
    let all: Vec<Value> = b
        .view()
        .replays
        .values()
        .filter(|r| r.replay_name.starts_with(prefix))
        .filter(|r| state.is_none_or(|s| r.state == s))
        .filter(|r| source.is_none_or(|s| r.event_source_arn == s))
        .map(|r| describe_replay_value(r))
        .collect();
    let (items, next) = page(&all, req)?;
    let mut answer = json!({"Replays": items});
    if let Some(n) = next {
        answer["NextToken"] = n.into();
    }
    ok(&answer)
}

pub async fn cancel_replay(b: &EventBuses, req: &Req) -> Result<Response<Body>, AwsError> {
    let name = string(req, "ReplayName")?;
    let r = b
        .view()
        .replays
        .get(name)
        .cloned()
        .ok_or_else(|| no_replay(name))?;
    if !r.is_running() || !b.replays.cancel(name) {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "IllegalStatusException",
            format!("Replay {name} is not in a valid state for this operation."),
        ));
    }
    ok(&json!({"ReplayArn": r.replay_arn, "State": "CANCELLING"}))
}
