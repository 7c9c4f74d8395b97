//! `recovery`: how long a subscriber that missed N events takes to get them
//! back. Per round: subscribe to a fresh channel of a namespace with history
//! (for its epoch), disconnect, publish N events over HTTP, reconnect and
//! subscribe with `since` at offset 0; timed from the `subscribe` message to
//! the N-th `data` frame. Checks that exactly the N events arrived, in offset
//! order. The namespace must keep at least N events.

use super::delivery::pct;
use super::publish::{event, HttpPublisher};
use super::rawws::{self, Frame};
use super::subscribe::{new_hist, open_ws};
use super::target::endpoints;
use super::Common;
use serde_json::{json, Value};
use std::time::Instant;

/// The first text frame that is not a `ka` or `connection_ack`, as JSON.
async fn reply(ws: &mut rawws::RawWs) -> Result<Value, String> {
    let mut out = Err("closed".to_string());
    ws.read_frames(|f| match f {
        Frame::Text(t) if rawws::find(t, b"\"ka\"").is_some() => true,
        Frame::Text(t) if rawws::find(t, b"connection_ack").is_some() => true,
        Frame::Text(t) => {
            out = serde_json::from_slice(t).map_err(|e| e.to_string());
            false
        }
        Frame::Close => false,
    })
    .await
    .map_err(|e| e.to_string())?;
    out
}

pub async fn recovery_scenario(
    common: &Common,
    events: usize,
    rounds: usize,
    publishers: usize,
) -> Result<Value, String> {
    let eps = endpoints(common)?;
    let ep = &eps[0];
    let mut hist = new_hist();
    let mut problems = 0u64;
    let run = crate::new_uuid().simple().to_string();
    for round in 0..rounds.max(1) {
        let channel = format!("/{}/recovery-{}-{round}", common.namespace, &run[..8]);
        let subscribe = |since: Option<Value>| {
            let mut m = json!({"type": "subscribe", "id": "r", "channel": channel,
                               "authorization": {"x-api-key": common.api_key, "host": ep.url.authority}});
            if let Some(s) = since {
                m["since"] = s;
            }
            m.to_string()
        };
        let mut ws = open_ws(ep, common, round).await?;
        ws.send_text(&subscribe(None))
            .await
            .map_err(|e| e.to_string())?;
        let ok = reply(&mut ws).await?;
        let Some(epoch) = ok["epoch"].as_str().map(str::to_string) else {
            return Err(format!(
                "namespace {} keeps no history (subscribe_success: {ok})",
                common.namespace
            ));
        };
        drop(ws);
        // N events while away, by several keep-alive publishers.
        let mut tasks = tokio::task::JoinSet::new();
        let per = events.div_ceil(publishers.max(1));
        for p in 0..publishers.max(1) {
            let (ep, key, channel) = (ep.clone(), common.api_key.clone(), channel.clone());
            let n = per.min(events.saturating_sub(p * per));
            tasks.spawn(async move {
                let mut publisher = HttpPublisher::connect(&ep, &key).await?;
                let mut left = n;
                while left > 0 {
                    let k = left.min(5);
                    publisher
                        .publish(&channel, (0..k).map(|_| event(100)).collect())
                        .await?;
                    left -= k;
                }
                Ok::<(), String>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| e.to_string())??;
        }
        let mut ws = open_ws(ep, common, round).await?;
        let started = Instant::now();
        ws.send_text(&subscribe(Some(json!({"offset": 0, "epoch": epoch}))))
            .await
            .map_err(|e| e.to_string())?;
        let ok = reply(&mut ws).await?;
        if ok["recovered"] != true {
            return Err(format!("not recovered: {ok}"));
        }
        let mut next = 1u64;
        let mut bad = false;
        ws.read_frames(|f| match f {
            Frame::Text(t) if rawws::find(t, b"\"data\"").is_some() => {
                let offset = rawws::find(t, b"\"offset\":")
                    .and_then(|i| {
                        let rest = &t[i + 9..];
                        let end = rest.iter().position(|b| !b.is_ascii_digit())?;
                        std::str::from_utf8(&rest[..end]).ok()?.parse::<u64>().ok()
                    })
                    .unwrap_or(0);
                bad |= offset != next;
                next += 1;
                next <= events as u64
            }
            Frame::Text(_) => true,
            Frame::Close => false,
        })
        .await
        .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        if bad || next != events as u64 + 1 {
            problems += 1;
        }
        let _ = hist.record(took.as_micros().max(1) as u64);
        eprintln!(
            "[recovery] round {}: {events} events in {:.1} ms",
            round + 1,
            took.as_secs_f64() * 1000.0
        );
    }
    Ok(json!({
        "scenario": "recovery",
        "namespace": common.namespace,
        "events": events,
        "rounds": rounds,
        // `pct` reads the microsecond histogram in milliseconds.
        "recovery_ms": {
            "p50": pct(&hist, 0.5),
            "p99": pct(&hist, 0.99),
            "max": hist.max() as f64 / 1000.0,
        },
        "events_per_sec_p50": (events as f64 / (pct(&hist, 0.5) / 1e3)).round(),
        "out_of_order_or_missing_rounds": problems,
        "ok": problems == 0,
    }))
}
