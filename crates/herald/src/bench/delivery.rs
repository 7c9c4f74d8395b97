//! The subscriber scenarios (`fanout`, `channels`): subscribe, publish, drain,
//! report.

use super::proc::proc_stats;
use super::publish::{event, publish_load, HttpPublisher, Plan, Published};
use super::subscribe::{count_frames, new_hist, subscriber};
use super::target::endpoints;
use super::Common;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Subscriber scenarios (`fanout`, `channels`): subscribe, publish, drain, report.
/// `per_channel` subscribers on each of `plan.channels`.
pub async fn delivery_scenario(
    name: &str,
    common: &Common,
    per_channel: usize,
    plan: Plan,
) -> Result<serde_json::Value, String> {
    let (publishers, ws, window, rate, batch, payload) = (
        plan.publishers,
        plan.ws,
        plan.window,
        plan.rate,
        plan.batch,
        plan.payload,
    );
    let eps = endpoints(common)?;
    let channels = plan.channels.clone();
    let total_subs = channels.len() * per_channel;
    eprintln!("[{name}] connecting {total_subs} subscribers…");
    let mut sockets = Vec::with_capacity(total_subs);
    let mut pending = tokio::task::JoinSet::new();
    let common_arc = Arc::new(common.clone());
    let eps_arc = Arc::new(eps);
    for i in 0..total_subs {
        let (common, eps, channels) = (common_arc.clone(), eps_arc.clone(), channels.clone());
        pending.spawn(async move {
            let ep = &eps[i % eps.len()];
            subscriber(ep, &common, i, channels[i % channels.len()].clone()).await
        });
        if pending.len() >= 200 {
            sockets.push(
                pending
                    .join_next()
                    .await
                    .unwrap()
                    .map_err(|e| e.to_string())??,
            );
        }
    }
    while let Some(r) = pending.join_next().await {
        sockets.push(r.map_err(|e| e.to_string())??);
    }
    let done = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(count_frames(ws, done.clone(), live.clone())))
        .collect();

    let before = proc_stats(&common.server_pids);
    let counters = Published::default();
    let published = counters.events.clone();
    let started = Instant::now();
    let progress = {
        let (live, published) = (live.clone(), published.clone());
        let name = name.to_string();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = live.load(Ordering::Relaxed);
                eprint!(
                    "\r[{name}] {:>4.0}s  {:>9} deliveries/s  {:>9} published",
                    started.elapsed().as_secs_f64(),
                    now - last,
                    published.load(Ordering::Relaxed)
                );
                last = now;
            }
        })
    };
    publish_load(&eps_arc, common, plan, counters.clone()).await?;
    let publish_elapsed = started.elapsed();
    let expected = published.load(Ordering::Relaxed) * per_channel as u64;
    // Drain: wait until everything arrived or nothing moves for 3 s.
    let mut last = u64::MAX;
    let mut still = Instant::now();
    while live.load(Ordering::Relaxed) < expected {
        let now = live.load(Ordering::Relaxed);
        if now != last {
            last = now;
            still = Instant::now();
        } else if still.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let after = proc_stats(&common.server_pids);
    progress.abort();
    eprintln!();
    done.store(true, Ordering::Relaxed);
    let received = live.load(Ordering::Relaxed);
    // Readers stop at their next frame; a final publish wakes them.
    if let Ok(mut p) = HttpPublisher::connect(&eps_arc[0], &common.api_key).await {
        for ch in channels.iter() {
            let _ = p.publish(ch, vec![event(10)]).await;
        }
    }
    let mut hist = new_hist();
    let mut cut_off = 0u64;
    for r in readers {
        match tokio::time::timeout(Duration::from_secs(5), r).await {
            Ok(Ok(t)) => {
                hist.add(&t.hist).ok();
                cut_off += u64::from(t.cut_off);
            }
            _ => cut_off += 1,
        }
    }
    let publish_errors = counters.errors.load(Ordering::Relaxed);
    let failed_events = counters.failed_events.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(received);
    let secs = elapsed.as_secs_f64();
    let deliveries_per_sec = received as f64 / secs;
    let mut report = json!({
        "scenario": name,
        "namespace": common.namespace,
        "endpoints": common.endpoints,
        "subscribers": total_subs,
        "channels": channels.len(),
        "publishers": publishers,
        "publish_via": if ws { "websocket" } else { "http" },
        "window": window,
        "rate_target": rate,
        "batch": batch,
        "payload_bytes": payload,
        "publish_seconds": publish_elapsed.as_secs_f64(),
        "seconds": secs,
        "published_events": published.load(Ordering::Relaxed),
        "publish_errors": publish_errors,
        "failed_events": failed_events,
        "subscribers_cut_off": cut_off,
        "publishes_per_sec": published.load(Ordering::Relaxed) as f64 / publish_elapsed.as_secs_f64(),
        "expected_deliveries": expected,
        "received": received,
        "lost": lost,
        "ok": publish_errors == 0 && lost == 0 && cut_off == 0,
        "deliveries_per_sec": deliveries_per_sec,
        "latency_ms": {"p50": pct(&hist, 0.5), "p90": pct(&hist, 0.9), "p99": pct(&hist, 0.99),
                        "p99.9": pct(&hist, 0.999), "max": hist.max() as f64 / 1000.0},
    });
    if let (Some(b), Some(a)) = (before, after) {
        let cpu = a.cpu_secs - b.cpu_secs;
        report["server_cpu_seconds"] = json!(cpu);
        report["server_cpu_us_per_delivery"] = json!(if received > 0 {
            cpu * 1e6 / received as f64
        } else {
            0.0
        });
        report["server_cpu_seconds_per_million_deliveries"] = json!(if received > 0 {
            cpu * 1e6 / received as f64
        } else {
            0.0
        });
        report["server_rss_mib"] = json!(a.rss_kib as f64 / 1024.0);
    }
    Ok(report)
}
