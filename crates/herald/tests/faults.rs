//! Faults clients cause, against a `herald serve` process of its own (its
//! file descriptors are not this test's): each has a defined answer, and the
//! server goes on serving everyone else without a restart.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const HALF_OPEN: usize = 10_000;

/// 10,000 connections that open TCP and never send a byte (half-open from
/// HTTP's view, as a slowloris attack leaves them): while they are held, a
/// WebSocket client subscribes and receives what is published over HTTP;
/// then the server closes each of them once `header_read_timeout_ms` has
/// passed, and still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_silent_connections_are_closed_and_service_goes_on() {
    let dir = temp_dir("faults-half-open");
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nheader_read_timeout_ms = 3000\n[[api_keys]]\nid = \"{KEY}\"\n[[channel_namespaces]]\nname = \"default\"\n"
        ),
    )
    .unwrap();
    let (_server, addr, _) = serve_process_at(&config, &[]);
    // Open them all, spread over 16 source addresses' port ranges.
    let mut silent = Vec::with_capacity(HALF_OPEN);
    let opened = Instant::now();
    for i in 0..HALF_OPEN {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("127.0.0.{}:0", 2 + i % 16).parse().unwrap())
            .unwrap();
        silent.push(socket.connect(addr).await.expect("the listener accepts"));
    }
    let opening = opened.elapsed();

    // Someone else is served meanwhile.
    let mut c = WsClient::connect(addr, Auth::Subprotocol(KEY)).await;
    c.init().await;
    c.subscribe("s", "/default/room").await;
    let body = json!({"channel": "/default/room", "events": [json!({"n": 1}).to_string()]});
    let r = http_post(addr, body.to_string().into_bytes(), &[("x-api-key", KEY)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(c.data("s").await, json!({"n": 1}));

    // Each silent connection is closed by the server (EOF or reset), not
    // held: awaited on every socket, within the timeout plus the time they
    // took to open and a margin.
    let bound = Duration::from_secs(3) + opening + Duration::from_secs(10);
    let closed = futures_util::future::join_all(silent.iter_mut().map(|s| async move {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(bound, s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }))
    .await;
    let still_open = closed.iter().filter(|c| !**c).count();
    assert_eq!(still_open, 0, "silent connections the server kept");
    drop(silent);

    // Still serving, on the WebSocket that was open all along and on new
    // requests.
    let body = json!({"channel": "/default/room", "events": [json!({"n": 2}).to_string()]});
    let r = http_post(addr, body.to_string().into_bytes(), &[("x-api-key", KEY)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(c.data("s").await, json!({"n": 2}));
}

/// The disk full under the store (a file size limit on the server process,
/// whose writes past it fail as on a full disk): `PutEvents` the event log
/// cannot keep is refused with 500 "none was accepted", the public listener
/// goes on serving, and once there is room again (the limit lifted while the
/// server runs) writes succeed with no restart, and every event that was
/// acknowledged is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_room_again_needs_no_restart() {
    use common::aws::*;
    let dir = temp_dir("faults-disk-full");
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[channel_namespaces]]\nname = \"default\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            admin_toml()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    // `trap '' XFSZ`: a write past the limit fails (EFBIG) instead of
    // killing the process, as a full disk's ENOSPC does.
    let (server, addr, admin) = serve_process_under(
        &[
            "sh",
            "-c",
            "trap '' XFSZ; exec prlimit --fsize=4000000:unlimited -- \"$@\"",
            "sh",
        ],
        &config,
        &[std::ffi::OsStr::new("--data"), data.as_os_str()],
    );
    let admin = admin.expect("an admin listener");
    events_ok(
        admin,
        "PutRule",
        json!({"Name": "all", "EventPattern": r#"{"source": ["fill"]}"#}),
    )
    .await;
    events_ok(
        admin,
        "PutTargets",
        json!({"Rule": "all", "Targets": [{"Id": "ws", "Arn": "channel:/default/bus", "InputPath": "$.detail"}]}),
    )
    .await;
    let mut c = WsClient::connect(addr, Auth::Subprotocol(KEY)).await;
    c.init().await;
    c.subscribe("s", "/default/bus").await;

    let pad = "x".repeat(100_000);
    let entry = |n: usize| {
        json!({"Entries": [{"Source": "fill", "DetailType": "t",
            "Detail": json!({"n": n, "pad": pad}).to_string()}]})
    };
    // Fill it: acknowledged events, then a refusal.
    let mut acknowledged = Vec::new();
    let refusal = loop {
        let n = acknowledged.len();
        assert!(n < 200, "the log never filled up");
        let r = events(admin, "PutEvents", entry(n)).await;
        if r.status == 200 && r.body["FailedEntryCount"] == 0 {
            acknowledged.push(n);
        } else {
            break r;
        }
    };
    assert_eq!(refusal.status, 500, "{}", refusal.raw);
    assert_eq!(error_type(&refusal), "InternalException");
    assert!(refusal.raw.contains("none was accepted"), "{}", refusal.raw);
    // The public listener serves meanwhile.
    let body = json!({"channel": "/default/other", "events": ["1"]});
    let r = http_post(addr, body.to_string().into_bytes(), &[("x-api-key", KEY)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);

    // Room again, the same process.
    let lifted = std::process::Command::new("prlimit")
        .args(["--pid", &server.0.id().to_string(), "--fsize=unlimited"])
        .status()
        .unwrap();
    assert!(lifted.success());
    let last = acknowledged.len() + 1000;
    let r = events(admin, "PutEvents", entry(last)).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["FailedEntryCount"], 0, "{}", r.raw);
    acknowledged.push(last);

    // Every acknowledged event arrives (a refused one may not).
    let mut missing: std::collections::BTreeSet<usize> = acknowledged.into_iter().collect();
    while !missing.is_empty() {
        let event = c.data("s").await;
        missing.remove(&(event["n"].as_u64().unwrap() as usize));
    }
}
