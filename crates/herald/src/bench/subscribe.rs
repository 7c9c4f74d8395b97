//! The subscribing side of a run: connections, acknowledged subscriptions, and
//! per-subscriber latency tallies.

use super::rawws::{self, Frame, RawWs};
use super::target::{now_us, source_ip, Endpoint};
use super::Common;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// One subscriber's tally.
pub struct Tally {
    pub received: u64,
    pub hist: Histogram<u64>,
    /// The connection ended before the run did (closed or failed).
    pub cut_off: bool,
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// Open connection `i` to `ep` (from its source address) and send
/// `connection_init`.
pub async fn open_ws(ep: &Endpoint, common: &Common, i: usize) -> Result<RawWs, String> {
    let mut ws = RawWs::connect(
        ep.addr,
        &ep.url.authority,
        &common.api_key,
        source_ip(common, i, ep.addr),
    )
    .await
    .map_err(|e| format!("connect: {e}"))?;
    ws.send_text(r#"{"type":"connection_init"}"#)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Open connection `i`, subscribe it to `channel`, and return it once the
/// subscription is acknowledged.
pub async fn subscriber(
    ep: &Endpoint,
    common: &Common,
    i: usize,
    channel: String,
) -> Result<RawWs, String> {
    let mut ws = open_ws(ep, common, i).await?;
    ws.send_text(&json!({"type": "subscribe", "id": "b", "channel": channel, "authorization": {"x-api-key": common.api_key, "host": ep.url.authority}}).to_string())
        .await
        .map_err(|e| e.to_string())?;
    let mut outcome = Err("closed before subscribe_success".to_string());
    ws.read_frames(|f| match f {
        Frame::Text(t) if rawws::find(t, b"subscribe_success").is_some() => {
            outcome = Ok(());
            false
        }
        Frame::Text(t) if rawws::find(t, b"_error").is_some() => {
            outcome = Err(String::from_utf8_lossy(t).into_owned());
            false
        }
        Frame::Text(_) => true,
        Frame::Close => false,
    })
    .await
    .map_err(|e| e.to_string())?;
    outcome.map(|()| ws)
}

pub async fn count_frames(mut ws: RawWs, done: Arc<AtomicBool>, live: Arc<AtomicU64>) -> Tally {
    let mut tally = Tally {
        received: 0,
        hist: new_hist(),
        cut_off: false,
    };
    let _ = ws
        .read_frames(|f| match f {
            Frame::Text(t) => {
                if let Some(ts) = rawws::timestamp_us(t) {
                    tally.received += 1;
                    live.fetch_add(1, Ordering::Relaxed);
                    let _ = tally.hist.record(now_us().saturating_sub(ts).max(1));
                }
                !done.load(Ordering::Relaxed)
            }
            Frame::Close => false,
        })
        .await;
    tally.cut_off = !done.load(Ordering::Relaxed);
    tally
}
