//! The `connect` scenario (handshake rate, memory per idle connection) and the
//! `http-publish` scenario.

use super::proc::proc_stats;
use super::publish::{publish_load, Plan, Published};
use super::subscribe::subscriber;
use super::target::endpoints;
use super::Common;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn connect_scenario(
    common: &Common,
    connections: usize,
    in_flight: usize,
    hold: u64,
) -> Result<serde_json::Value, String> {
    let eps = Arc::new(endpoints(common)?);
    let before = proc_stats(&common.server_pids);
    let common_arc = Arc::new(common.clone());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(common.duration.max(60));
    let mut set = tokio::task::JoinSet::new();
    let mut sockets = Vec::with_capacity(connections);
    let mut failed = 0usize;
    for i in 0..connections {
        if Instant::now() > deadline {
            break;
        }
        let (common, eps) = (common_arc.clone(), eps.clone());
        set.spawn(async move {
            let ep = &eps[i % eps.len()];
            subscriber(ep, &common, i, format!("/{}/c{}", common.namespace, i)).await
        });
        while set.len() >= in_flight {
            match set.join_next().await.unwrap() {
                Ok(Ok(ws)) => sockets.push(ws),
                _ => failed += 1,
            }
        }
        if i % 1000 == 999 {
            eprint!("\r[connect] {} connected", sockets.len());
        }
    }
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(ws)) => sockets.push(ws),
            _ => failed += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "\r[connect] {} connected, {failed} failed, holding {hold} s",
        sockets.len()
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let after = proc_stats(&common.server_pids);
    let mut report = json!({
        "scenario": "connect",
        "endpoints": common.endpoints,
        "connections": sockets.len(),
        "failed": failed,
        "in_flight": in_flight,
        "seconds": elapsed,
        "connections_per_sec": sockets.len() as f64 / elapsed,
        "ok": failed == 0,
    });
    if let (Some(b), Some(a)) = (before, after) {
        let grown = a.rss_kib.saturating_sub(b.rss_kib) as f64;
        report["server_rss_mib"] = json!(a.rss_kib as f64 / 1024.0);
        report["server_rss_kib_per_connection"] = json!(grown / sockets.len().max(1) as f64);
        report["server_cpu_seconds"] = json!(a.cpu_secs - b.cpu_secs);
    }
    drop(sockets);
    Ok(report)
}

pub async fn http_publish_scenario(
    common: &Common,
    publishers: usize,
    batch: usize,
    payload: usize,
) -> Result<serde_json::Value, String> {
    let eps = endpoints(common)?;
    let before = proc_stats(&common.server_pids);
    let counters = Published::default();
    let started = Instant::now();
    let channels = Arc::new(vec![format!("/{}/bench-http", common.namespace)]);
    let plan = Plan {
        publishers,
        ws: false,
        window: 1,
        channels,
        rate: 0,
        batch,
        payload,
    };
    publish_load(&eps, common, plan, counters.clone()).await?;
    let published = counters.events.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let after = proc_stats(&common.server_pids);
    let mut report = json!({
        "scenario": "http-publish",
        "endpoints": common.endpoints,
        "publishers": publishers,
        "batch": batch,
        "payload_bytes": payload,
        "seconds": secs,
        "events_accepted": published,
        "errors": errors,
        "failed_events": counters.failed_events.load(Ordering::Relaxed),
        "events_per_sec": published as f64 / secs,
        "requests_per_sec": published as f64 / batch as f64 / secs,
        "ok": errors == 0,
    });
    if let (Some(b), Some(a)) = (before, after) {
        report["server_cpu_seconds"] = json!(a.cpu_secs - b.cpu_secs);
        report["server_rss_mib"] = json!(a.rss_kib as f64 / 1024.0);
    }
    Ok(report)
}
