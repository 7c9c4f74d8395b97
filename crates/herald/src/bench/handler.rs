//! The `handler` scenario: the JavaScript engine's cold start and warm calls,
//! without the network.

use serde_json::json;
use std::time::Duration;

/// The AWS documentation's "transform" handler, enriched with `util.time`.
pub const DEFAULT_HANDLER: &str = r#"import { util } from '@aws-appsync/utils'
export function onPublish(ctx) {
  return ctx.events.map((e) => ({ id: e.id, payload: { ...e.payload, message: String(e.payload.message).toUpperCase(), at: util.time.nowISO8601() } }))
}"#;

pub fn handler_scenario(
    code: Option<std::path::PathBuf>,
    events: usize,
    loads: usize,
    calls: usize,
) -> Result<serde_json::Value, String> {
    let source = match &code {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => DEFAULT_HANDLER.to_string(),
    };
    let evs: Vec<serde_json::Value> = (0..events)
        .map(|i| json!({"id": crate::new_uuid().to_string(), "payload": {"message": format!("hello {i}"), "n": i}}))
        .collect();
    let ctx = json!({"identity": null, "request": {"headers": {}, "domainName": null},
        "info": {"channel": {"path": "/default/bench", "segments": ["default", "bench"]}, "channelNamespace": {"name": "default"}, "operation": "PUBLISH"},
        "events": evs, "stash": {}, "prev": null, "outErrors": [], "result": null, "error": null});
    let (mut cold, mut warm) = crate::handlers::measure(&source, &ctx, loads, calls)?;
    cold.sort();
    warm.sort();
    let q =
        |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    Ok(json!({
        "scenario": "handler",
        "events_per_invocation": events,
        "cold_start_us": {"p50": q(&cold, 0.5), "p90": q(&cold, 0.9), "max": q(&cold, 1.0)},
        "warm_invocation_us": {"p50": q(&warm, 0.5), "p90": q(&warm, 0.9), "p99": q(&warm, 0.99), "max": q(&warm, 1.0)},
        "warm_us_per_event_p50": q(&warm, 0.5) / events.max(1) as f64,
        "loads": loads,
        "calls": calls,
    }))
}
