//! Several `herald serve` processes sharing a broker: the NATS server on
//! 127.0.0.1:4222 and the Redis server on 127.0.0.1:6379 (both run by `.ci/run`),
//! and brokers a test starts on its own port to stop and restart mid-test.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

struct Node {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start a node; `engine` is the TOML for the engine settings.
fn node(api: &str, id: &str, engine: &str) -> Node {
    let dir = temp_dir("cluster");
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!("name = \"{api}\"\nnode_id = \"{id}\"\n{engine}\n[[api_keys]]\nid = \"{KEY}\"\n[[channel_namespaces]]\nname = \"default\"\n"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("Herald listening on ")
        .unwrap()
        .parse()
        .unwrap();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Node {
        child,
        addr,
        _dir: TempDir(dir),
    }
}

/// Wait (bounded) until `/ready` answers `status`.
async fn wait_ready(addr: SocketAddr, status: u16) {
    for _ in 0..500 {
        if http_request(addr, "GET", "/ready", vec![], &[])
            .await
            .status
            == status
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} never answered /ready with {status}");
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn subscriber(addr: SocketAddr, channel: &str) -> WsClient {
    let mut c = WsClient::connect(addr, Auth::Subprotocol(KEY)).await;
    c.init().await;
    c.subscribe("s", channel).await;
    c
}

async fn ws_publish(c: &mut WsClient, id: &str, channel: &str, event: &Value) {
    c.send(json!({"type": "publish", "id": id, "channel": channel, "events": [event.to_string()]}))
        .await;
    let r = c.recv().await;
    assert_eq!(r["type"], "publish_success", "{r}");
}

async fn http_publish(addr: SocketAddr, channel: &str, event: &Value) -> HttpResponse {
    http_post(
        addr,
        json!({"channel": channel, "events": [event.to_string()]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", KEY)],
    )
    .await
}

/// Every subscriber on every node, exact and wildcard, gets every event exactly
/// once, in per-publisher order, from publishers on every node (HTTP and WebSocket).
async fn three_nodes(engine: &str) {
    let api = unique("cluster");
    let nodes: Vec<Node> = (0..3)
        .map(|i| node(&api, &format!("n{i}"), engine))
        .collect();
    for n in &nodes {
        wait_ready(n.addr, 200).await;
    }
    let mut subs = Vec::new();
    for n in &nodes {
        subs.push(subscriber(n.addr, "/default/room").await);
        subs.push(subscriber(n.addr, "/default/*").await);
    }
    const N: i64 = 15;
    let mut publishers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let addr = n.addr;
        publishers.push(tokio::spawn(async move {
            for k in 0..N {
                let r = http_publish(
                    addr,
                    "/default/room",
                    &json!({"p": format!("http{i}"), "n": k}),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.raw);
            }
        }));
        let mut ws = WsClient::connect(n.addr, Auth::Subprotocol(KEY)).await;
        ws.init().await;
        publishers.push(tokio::spawn(async move {
            for k in 0..N {
                ws_publish(
                    &mut ws,
                    &format!("p{k}"),
                    "default/room",
                    &json!({"p": format!("ws{i}"), "n": k}),
                )
                .await;
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    // A deeper channel reaches only the wildcard subscribers.
    let r = http_publish(
        nodes[1].addr,
        "/default/room/deep",
        &json!({"p": "deep", "n": 0}),
    )
    .await;
    assert_eq!(r.status, 200);

    for (i, c) in subs.iter_mut().enumerate() {
        let wildcard = i % 2 == 1;
        let expected = 6 * N as usize + usize::from(wildcard);
        let mut last: HashMap<String, i64> = HashMap::new();
        for _ in 0..expected {
            let e = c.data("s").await;
            let p = e["p"].as_str().unwrap().to_string();
            let n = e["n"].as_i64().unwrap();
            let prev = last.insert(p.clone(), n).unwrap_or(-1);
            assert_eq!(
                n,
                prev + 1,
                "subscriber {i}: {p} jumped from {prev} to {n} (lost, duplicated or reordered)"
            );
        }
        assert_eq!(last.len(), 6 + usize::from(wildcard));
    }
    // Nothing more: every subscriber has everything published so far, so a
    // marker published now must be the very next frame of each (an extra copy of
    // an earlier event would come first).
    let r = http_publish(
        nodes[2].addr,
        "/default/room",
        &json!({"p": "marker", "n": 0}),
    )
    .await;
    assert_eq!(r.status, 200);
    for (i, c) in subs.iter_mut().enumerate() {
        assert_eq!(
            c.data("s").await["p"],
            "marker",
            "subscriber {i} got an extra event"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_nats() {
    three_nodes("engine = \"nats\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_redis() {
    three_nodes("engine = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:6379\"").await;
}

/// "Ack means live" across nodes even when the link to the broker is slow: a
/// node whose broker traffic is delayed by 300 ms still acknowledges a
/// subscription only once the broker has registered it, so an event published
/// on another node right after the ack arrives. (With an ack on "written to
/// the socket", the publish reached the broker before the subscription did.)
async fn live_on_ack_over_slow_link(kind: &str) {
    let (direct, port) = match kind {
        "nats" => ("nats://127.0.0.1:4222", 4222),
        _ => ("redis://127.0.0.1:6379", 6379),
    };
    let proxy = DelayProxy::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .await;
    let engine = |url: &str| format!("engine = \"{kind}\"\n[{kind}]\nurl = \"{url}\"");
    let api = unique("slowlink");
    let slow = node(
        &api,
        "slow",
        &engine(&format!("{kind}://127.0.0.1:{}", proxy.addr.port())),
    );
    let fast = node(&api, "fast", &engine(direct));
    wait_ready(slow.addr, 200).await;
    wait_ready(fast.addr, 200).await;
    for round in 0..3 {
        let channel = format!("/default/slow{round}");
        let mut sub = subscriber(slow.addr, &channel).await;
        let r = http_publish(fast.addr, &channel, &json!({"round": round})).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(
            sub.data("s").await["round"],
            round,
            "the event published right after subscribe_success was lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_on_ack_over_slow_link_nats() {
    live_on_ack_over_slow_link("nats").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_on_ack_over_slow_link_redis() {
    live_on_ack_over_slow_link("redis").await;
}

struct Broker {
    child: Child,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(kind: &str, port: u16) -> Broker {
    let child = match kind {
        "nats" => Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed"),
        _ => Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
    };
    Broker { child }
}

/// The broker stops and comes back mid-test.
async fn outage(kind: &str) {
    let port = free_port();
    let mut broker = start_broker(kind, port);
    let engine = match kind {
        "nats" => format!("engine = \"nats\"\n[nats]\nurl = \"nats://127.0.0.1:{port}\""),
        _ => format!("engine = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:{port}\""),
    };
    let api = unique("outage");
    let a = node(&api, "a", &engine);
    let b = node(&api, "b", &engine);
    wait_ready(a.addr, 200).await;
    wait_ready(b.addr, 200).await;
    let mut sub_a = subscriber(a.addr, "/default/ev/*").await;
    let mut sub_b = subscriber(b.addr, "/default/ev/*").await;
    let mut probe_b = subscriber(b.addr, "/default/probe").await;

    assert_eq!(
        http_publish(a.addr, "/default/ev/x", &json!({"n": 1}))
            .await
            .status,
        200
    );
    assert_eq!(sub_a.data("s").await["n"], 1);
    assert_eq!(sub_b.data("s").await["n"], 1);

    // Down: publishes on A get a clear error, yet reach A's own subscribers.
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    wait_ready(a.addr, 503).await;
    let r = http_publish(a.addr, "/default/ev/x", &json!({"n": 2})).await;
    assert_http_error(&r, 503, "ServiceUnavailableException", "this node only");
    assert_eq!(sub_a.data("s").await["n"], 2);
    // B keeps serving its own clients too.
    let r = http_publish(b.addr, "/default/ev/y", &json!({"n": 20})).await;
    assert_eq!(r.status, 503);
    assert_eq!(sub_b.data("s").await["n"], 20);
    // A subscription made during the outage is restored with the others.
    let mut late_b = subscriber(b.addr, "/default/ev/late").await;

    // Back: both nodes reconnect and restore their interests.
    let _broker = start_broker(kind, port);
    wait_ready(a.addr, 200).await;
    wait_ready(b.addr, 200).await;
    // B's interests are restored together; once a probe crosses, all are back.
    let mut crossed = false;
    for k in 0..100 {
        assert_eq!(
            http_publish(a.addr, "/default/probe", &json!({"k": k}))
                .await
                .status,
            200
        );
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(50), probe_b.recv_any()).await
        {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "node B's interests were never restored");
    let r = http_publish(a.addr, "/default/ev/late", &json!({"n": 3})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(sub_a.data("s").await["n"], 3);
    // B missed event 2 (published during the outage) and gets 3.
    assert_eq!(sub_b.data("s").await["n"], 3);
    assert_eq!(late_b.data("s").await["n"], 3);

    let metrics = http_request(a.addr, "GET", "/metrics", vec![], &[])
        .await
        .raw;
    assert!(metrics.contains("herald_engine_connected 1"), "{metrics}");
    assert!(
        !metrics.contains("herald_engine_reconnects_total 0\n"),
        "the reconnect was counted"
    );
    assert!(
        !metrics.contains("herald_engine_publish_errors_total 0\n"),
        "the failed publish was counted"
    );
}

/// Pause (`-STOP`) or resume (`-CONT`) a broker: its connections stay open
/// while nothing answers on them.
fn signal(broker: &Broker, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &broker.child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig}");
}

/// A broker of `kind` on a port of its own, two nodes on it with a wildcard
/// subscriber each, and an event seen crossing from A to B.
async fn crossing_pair(kind: &str) -> (Broker, Node, Node, WsClient, WsClient) {
    let port = free_port();
    let broker = start_broker(kind, port);
    let engine = format!("engine = \"{kind}\"\n[{kind}]\nurl = \"{kind}://127.0.0.1:{port}\"");
    let api = unique("pause");
    let a = node(&api, "a", &engine);
    let b = node(&api, "b", &engine);
    wait_ready(a.addr, 200).await;
    wait_ready(b.addr, 200).await;
    let mut sub_a = subscriber(a.addr, "/default/ev/*").await;
    let mut sub_b = subscriber(b.addr, "/default/ev/*").await;
    let r = http_publish(a.addr, "/default/ev/x", &json!({"n": 0})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(sub_a.data("s").await["n"], 0);
    assert_eq!(sub_b.data("s").await["n"], 0);
    (broker, a, b, sub_a, sub_b)
}

/// A NATS server paused for a while (SIGSTOP): publishes are answered at
/// once (the client buffers them), this node's subscribers get them, and when
/// the server resumes the other node gets every one, in order; a pause the
/// connection survives loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_nats_server_loses_nothing_when_it_resumes() {
    let (broker, a, _b, mut sub_a, mut sub_b) = crossing_pair("nats").await;

    signal(&broker, "-STOP");
    for n in 1..=5 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            http_publish(a.addr, "/default/ev/x", &json!({"n": n})),
        )
        .await
        .expect("a publish is answered while NATS is paused");
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(sub_a.data("s").await["n"], n);
    }
    signal(&broker, "-CONT");
    for n in 1..=5 {
        assert_eq!(sub_b.data("s").await["n"], n);
    }
}

/// A Redis server paused for a while (SIGSTOP): a publish waits for it until
/// the Redis client's response timeout and is answered 503 "this node only",
/// having reached this node's subscribers; once Redis resumes, publishes
/// cross again. (Redis may still carry the refused publish when it reads it
/// after resuming: an error answer does not promise it was not delivered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_server_fails_publishes_clearly_and_recovers() {
    let (broker, a, _b, mut sub_a, mut sub_b) = crossing_pair("redis").await;

    signal(&broker, "-STOP");
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        http_publish(a.addr, "/default/ev/x", &json!({"n": 1})),
    )
    .await
    .expect("a publish is answered while Redis is paused");
    assert_http_error(&r, 503, "ServiceUnavailableException", "this node only");
    assert_eq!(sub_a.data("s").await["n"], 1);

    signal(&broker, "-CONT");
    let r = http_publish(a.addr, "/default/ev/x", &json!({"n": 2})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(sub_a.data("s").await["n"], 2);
    // B gets 2, perhaps after 1 (see above), and nothing else.
    let first = sub_b.data("s").await["n"].clone();
    if first == 1 {
        assert_eq!(sub_b.data("s").await["n"], 2);
    } else {
        assert_eq!(first, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_outage_and_recovery() {
    outage("nats").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_and_recovery() {
    outage("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_does_not_stop_the_others() {
    let engine = "engine = \"nats\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"";
    let api = unique("kill");
    let a = node(&api, "a", engine);
    let b = node(&api, "b", engine);
    let mut c = node(&api, "c", engine);
    for n in [&a, &b, &c] {
        wait_ready(n.addr, 200).await;
    }
    let mut on_b = subscriber(b.addr, "/default/room").await;
    let mut on_c = subscriber(c.addr, "/default/room").await;

    c.child.kill().unwrap();
    c.child.wait().unwrap();
    // C's client sees its connection end (recv_until_close fails the test if it
    // does not within the wait)...
    on_c.recv_until_close().await;
    // ...and reconnects to another node, as a client behind a balancer would.
    let mut moved = subscriber(a.addr, "/default/room").await;

    let r = http_publish(a.addr, "/default/room", &json!({"n": 1})).await;
    assert_eq!(r.status, 200);
    assert_eq!(on_b.data("s").await["n"], 1);
    assert_eq!(moved.data("s").await["n"], 1);
}

fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interest_follows_local_subscribers_and_wildcards_do_not_overmatch() {
    let engine = "engine = \"nats\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"";
    let api = unique("interest");
    let a = node(&api, "a", engine);
    let b = node(&api, "b", engine);
    wait_ready(a.addr, 200).await;
    wait_ready(b.addr, 200).await;

    let mut c = WsClient::connect(a.addr, Auth::Subprotocol(KEY)).await;
    c.init().await;
    c.subscribe("wild", "/default/a/*").await;
    c.subscribe("x", "/default/x").await;
    c.subscribe("marker", "/default/marker").await;

    // `/default/a/*` does not match `/default/ab/c` or `/default/a` on another node.
    for ch in ["/default/ab/c", "/default/a"] {
        assert_eq!(
            http_publish(b.addr, ch, &json!({"ch": ch})).await.status,
            200
        );
    }
    assert_eq!(
        http_publish(b.addr, "/default/a/b/c", &json!({"ch": "deep"}))
            .await
            .status,
        200
    );
    assert_eq!(c.data("wild").await["ch"], "deep");

    // Once the last subscriber of /default/x leaves, node A drops its interest:
    // B's publishes to it no longer reach A at all.
    c.send(json!({"type": "unsubscribe", "id": "x"})).await;
    assert_eq!(c.recv().await["type"], "unsubscribe_success");
    let before = http_request(a.addr, "GET", "/metrics", vec![], &[])
        .await
        .raw;
    assert_eq!(
        http_publish(b.addr, "/default/x", &json!({"n": 1}))
            .await
            .status,
        200
    );
    assert_eq!(
        http_publish(b.addr, "/default/marker", &json!({"n": 2}))
            .await
            .status,
        200
    );
    assert_eq!(c.data("marker").await["n"], 2);
    let after = http_request(a.addr, "GET", "/metrics", vec![], &[])
        .await
        .raw;
    for name in [
        "herald_engine_received_total",
        "herald_engine_duplicates_total",
    ] {
        let delta = counter(&after, name) - counter(&before, name);
        let want = if name == "herald_engine_received_total" {
            1.0
        } else {
            0.0
        };
        assert_eq!(delta, want, "{name}: only the marker crossed to node A");
    }
}
