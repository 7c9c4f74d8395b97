//! Channel history across a cluster, on the Redis engine (the server on
//! 127.0.0.1:6379) and on the NATS engine with JetStream (127.0.0.1:4222),
//! both run by `.ci/run`: three nodes share each channel's stream, so offsets
//! agree everywhere and a subscriber recovers on any node.

mod common;

use common::*;
use serde_json::{json, Value};

const REDIS: &str = "engine = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:6379\"";
const NATS: &str = "engine = \"nats\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"";

/// Deletes the API's JetStream history stream at the end of a test (a NATS
/// server that CI reuses should not collect them).
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let name = format!("HERALD_H_{}", self.0);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(client) = async_nats::connect("nats://127.0.0.1:4222").await {
                    let _ = async_nats::jetstream::new(client)
                        .delete_stream(&name)
                        .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

/// Three nodes of one API (a fresh name: its own keys or streams), and the name.
async fn three_nodes(engine: &str) -> (Vec<TestServer>, String) {
    let api = format!("hist-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(
            start_with_toml(&format!(
                r#"
name = "{api}"
node_id = "n{i}"
{engine}
[[api_keys]]
id = "{KEY}"
[[channel_namespaces]]
name = "h"
history = {{ size = 2000, ttl_secs = 600 }}
[[channel_namespaces]]
name = "small"
history = {{ size = 10, ttl_secs = 600 }}
"#
            ))
            .await,
        );
    }
    for n in &nodes {
        wait_ready(n).await;
    }
    (nodes, api)
}

/// Bounded wait until the node's engine is connected.
async fn wait_ready(node: &TestServer) {
    for _ in 0..500 {
        if http_request(node.addr, "GET", "/ready", vec![], &[])
            .await
            .status
            == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("node {} never became ready", node.addr);
}

async fn subscribe(c: &mut WsClient, id: &str, channel: &str, since: Option<Value>) -> Value {
    let mut msg = json!({"type": "subscribe", "id": id, "channel": channel,
                         "authorization": {"x-api-key": KEY}});
    if let Some(s) = since {
        msg["since"] = s;
    }
    c.send(msg).await;
    let r = c.recv().await;
    assert_eq!(r["type"], "subscribe_success", "{r}");
    r
}

/// Publish `{"n": k}` for each k, five per request, spread over `nodes`.
async fn publish(nodes: &[&TestServer], channel: &str, ns: std::ops::Range<u64>) {
    let all: Vec<u64> = ns.collect();
    for (i, chunk) in all.chunks(5).enumerate() {
        let events: Vec<String> = chunk.iter().map(|n| json!({"n": n}).to_string()).collect();
        let r = nodes[i % nodes.len()]
            .post(json!({"channel": channel, "events": events}))
            .await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }
}

async fn next(c: &mut WsClient) -> (u64, u64) {
    let f = c.recv().await;
    assert_eq!(f["type"], "data", "{f}");
    let e: Value = serde_json::from_str(f["event"].as_str().unwrap()).unwrap();
    (e["n"].as_u64().unwrap(), f["offset"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_recovers_on_another_node_redis() {
    recovers_on_another_node(REDIS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_recovers_on_another_node_nats() {
    recovers_on_another_node(NATS).await;
}

async fn recovers_on_another_node(engine: &str) {
    let (nodes, api) = three_nodes(engine).await;
    let _cleanup = Cleanup(api);
    let mut c = nodes[0].ws().await;
    c.init().await;
    let ok = subscribe(&mut c, "s", "/h/room", None).await;
    let epoch = ok["epoch"].as_str().unwrap().to_string();
    assert_eq!(ok["offset"], 0);
    // Published on all three nodes, in order: every node gives the same offsets.
    publish(&[&nodes[0], &nodes[1], &nodes[2]], "/h/room", 1..16).await;
    for k in 1..16 {
        assert_eq!(next(&mut c).await, (k, k));
    }
    drop(c);
    // 1,000 while away, through nodes 1 and 2; then the subscriber comes back
    // on node 2 while node 1 keeps publishing.
    publish(&[&nodes[1], &nodes[2]], "/h/room", 16..1016).await;
    let late = {
        let addr = nodes[1].addr;
        tokio::spawn(async move {
            let node = TestServer {
                addr,
                running: None,
            };
            publish(&[&node], "/h/room", 1016..1116).await;
        })
    };
    let mut c = nodes[2].ws().await;
    c.init().await;
    let ok = subscribe(
        &mut c,
        "s",
        "/h/room",
        Some(json!({"offset": 15, "epoch": epoch})),
    )
    .await;
    assert_eq!(
        (ok["recovered"].as_bool(), ok["epoch"].as_str()),
        (Some(true), Some(epoch.as_str())),
        "{ok}"
    );
    for k in 16..1116 {
        assert_eq!(
            next(&mut c).await,
            (k, k),
            "once each, in order, across the switch"
        );
    }
    late.await.unwrap();
    publish(&[&nodes[0]], "/h/room", 1116..1117).await;
    assert_eq!(
        next(&mut c).await,
        (1116, 1116),
        "nothing extra before the live event"
    );

    // The read API on any node sees the same stream.
    let r = http_request(
        nodes[1].addr,
        "GET",
        "/event/history?channel=/h/room&limit=2&nextToken=1114",
        vec![],
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let offsets: Vec<u64> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1115, 1116]);
    assert_eq!(r.body["epoch"], epoch.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_foreign_and_wildcard_positions_redis() {
    trimmed_foreign_and_wildcard(REDIS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_foreign_and_wildcard_positions_nats() {
    trimmed_foreign_and_wildcard(NATS).await;
}

/// Positions trimmed away or of another epoch are not recovered; a wildcard
/// recovers per channel, a channel begun while away included.
async fn trimmed_foreign_and_wildcard(engine: &str) {
    let (nodes, api) = three_nodes(engine).await;
    let _cleanup = Cleanup(api);
    let mut c = nodes[0].ws().await;
    c.init().await;
    let ok = subscribe(&mut c, "w", "/small/*", None).await;
    assert_eq!(ok["channels"], json!({}), "{ok}");
    publish(&[&nodes[1]], "/small/a", 1..3).await;
    let mut epoch_a = String::new();
    for _ in 0..2 {
        let f = c.recv().await;
        epoch_a = f["epoch"].as_str().unwrap().to_string();
    }
    drop(c);
    publish(&[&nodes[1]], "/small/a", 3..5).await;
    publish(&[&nodes[2]], "/small/b", 1..3).await;
    let mut c = nodes[1].ws().await;
    c.init().await;
    let since = json!({"channels": {"/small/a": {"offset": 2, "epoch": epoch_a}}});
    let ok = subscribe(&mut c, "w", "/small/*", Some(since)).await;
    assert_eq!(ok["recovered"], true, "{ok}");
    let mut got: Vec<(String, u64)> = Vec::new();
    for _ in 0..4 {
        let f = c.recv().await;
        got.push((
            f["channel"].as_str().unwrap().into(),
            f["offset"].as_u64().unwrap(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("/small/a".into(), 3),
            ("/small/a".into(), 4),
            ("/small/b".into(), 1),
            ("/small/b".into(), 2)
        ]
    );
    // Past the size (10 kept): offset 2 is too old now; another epoch never matches.
    publish(&[&nodes[2]], "/small/a", 5..25).await;
    for _ in 0..20 {
        c.recv().await;
    }
    let r = subscribe(
        &mut c,
        "old",
        "/small/a",
        Some(json!({"offset": 2, "epoch": epoch_a})),
    )
    .await;
    assert_eq!(
        (r["recovered"].as_bool(), r["offset"].as_u64()),
        (Some(false), Some(24)),
        "{r}"
    );
    let r = subscribe(
        &mut c,
        "other",
        "/small/a",
        Some(json!({"offset": 20, "epoch": "0"})),
    )
    .await;
    assert_eq!(r["recovered"], false, "{r}");
    let r = subscribe(
        &mut c,
        "fine",
        "/small/a",
        Some(json!({"offset": 20, "epoch": epoch_a})),
    )
    .await;
    assert_eq!(r["recovered"], true, "{r}");
    for k in 21..25 {
        let f = c.recv().await;
        assert_eq!(
            (f["id"].as_str(), f["offset"].as_u64()),
            (Some("fine"), Some(k)),
            "{f}"
        );
    }
}

/// Redis unreachable: a publish with history is refused and delivered
/// nowhere (nothing acknowledged is lost, nothing unrecorded is seen), and a
/// subscription that cannot read its position is refused.
#[tokio::test]
async fn without_redis_nothing_is_published_or_positioned() {
    let node = start_with_toml(&format!(
        "name = \"hist-down\"\nengine = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:1\"\n[[api_keys]]\nid = \"{KEY}\"\n[[channel_namespaces]]\nname = \"h\"\nhistory = {{ size = 10, ttl_secs = 60 }}\n"
    ))
    .await;
    let r = node
        .post(json!({"channel": "/h/a", "events": [json!({"n": 1}).to_string()]}))
        .await;
    assert_http_error(&r, 503, "ServiceUnavailableException", "were not published");
    let mut c = node.ws().await;
    c.init().await;
    c.send(json!({"type": "subscribe", "id": "s", "channel": "/h/a", "authorization": {"x-api-key": KEY}}))
        .await;
    let f = c.recv().await;
    assert_eq!(f["type"], "subscribe_error", "{f}");
    assert!(
        f["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("history is unavailable"),
        "{f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_consecutive_offsets_redis() {
    concurrent_publishers(REDIS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_consecutive_offsets_nats() {
    concurrent_publishers(NATS).await;
}

/// Eight publishers on two nodes racing for one channel: every publish is
/// accepted and a subscriber on the third node sees offsets 1..=N, once each.
async fn concurrent_publishers(engine: &str) {
    let (nodes, api) = three_nodes(engine).await;
    let _cleanup = Cleanup(api);
    let mut c = nodes[2].ws().await;
    c.init().await;
    subscribe(&mut c, "s", "/h/race", None).await;
    let mut tasks = Vec::new();
    for p in 0..8u64 {
        let addr = nodes[(p % 2) as usize].addr;
        tasks.push(tokio::spawn(async move {
            let node = TestServer {
                addr,
                running: None,
            };
            publish(&[&node], "/h/race", p * 25..p * 25 + 25).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for k in 1..=200u64 {
        let (n, offset) = next(&mut c).await;
        assert_eq!(offset, k, "offsets arrive in order, without a gap");
        assert!(seen.insert(n), "event {n} arrived twice");
    }
}
