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
