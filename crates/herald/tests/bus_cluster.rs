//! The event bus on a cluster: nodes sharing a PostgreSQL store (a fresh
//! database per test) and an engine share one log, a JetStream stream on
//! NATS or a Redis stream (each test's own), every test on both. Each event reaches each matching target once
//! across the cluster, whichever node accepted it, failed deliveries are
//! retried from the shared stream, and the events a node accepted survive
//! its `kill -9`: another node delivers them.

mod common;

use common::aws::*;
use common::esm::{fn_server, unique, Policy};
use common::pg::Database;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const FUNCTION: &str = "arn:aws:lambda:eu-west-1:123456789012:function:sink";

fn config(engine: &str, db: &Database, stream: &str, function: SocketAddr) -> String {
    format!(
        r#"
        name = "shop"
        account_id = "123456789012"
        aws_region = "eu-west-1"
        engine = "{engine}"
        [[iam_credentials]]
        access_key_id = "{ADMIN_KEY}"
        secret_access_key = "{ADMIN_SECRET}"
        principal = "arn:aws:iam::123456789012:user/ops"
        allow = [{{ actions = ["admin"] }}]
        [[api_keys]]
        id = "{KEY}"
        [[channel_namespaces]]
        name = "default"
        [[functions]]
        name = "sink"
        runtime = "provided.al2023"
        url = "http://{function}/"
        timeout_secs = 10
        [store]
        backend = "postgres"
        url = "{}"
        [event_bus]
        stream = "{stream}"
        ack_wait_secs = 2
        "#,
        db.url
    )
}

async fn node(toml: &str) -> (TestServer, SocketAddr) {
    let mut config = herald::config::ApiConfig::resolve(
        herald::config::ConfigFile::parse(toml).unwrap(),
        herald::config::Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    config.drain = Duration::ZERO;
    let server = TestServer::with_config(config).await;
    let admin = server.running.as_ref().unwrap().admin_addr.unwrap();
    (server, admin)
}

/// A rule `r` on the default bus sending `source: shop` to the function,
/// made through `admin`, once every node in `others` has it.
async fn rule(admin: SocketAddr, others: &[SocketAddr]) {
    events_ok(
        admin,
        "PutRule",
        json!({"Name": "r", "EventPattern": r#"{"source": ["shop"]}"#}),
    )
    .await;
    let r = events_ok(
        admin,
        "PutTargets",
        json!({"Rule": "r", "Targets": [{"Id": "fn", "Arn": FUNCTION}]}),
    )
    .await;
    assert_eq!(r["FailedEntryCount"], 0, "{r}");
    for other in others {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let t = events(*other, "ListTargetsByRule", json!({"Rule": "r"})).await;
            if t.status == 200 && t.raw.contains("\"fn\"") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the rule reached every node"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Put `n` orders through `admin`; their event ids.
async fn put(admin: SocketAddr, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"Source": "shop", "DetailType": "Order",
                       "Detail": json!({"id": format!("{prefix}-{i}")}).to_string()})
            })
            .collect();
        let r = events_ok(admin, "PutEvents", json!({"Entries": entries})).await;
        assert_eq!(r["FailedEntryCount"], 0, "{r}");
        for e in r["Entries"].as_array().unwrap() {
            ids.push(e["EventId"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// Until nothing is unsettled or waiting for a retry in the shared log.
/// Delete the test's streams from the broker.
async fn remove_stream(engine: &str, stream: &str) {
    if engine == "nats" {
        let js =
            async_nats::jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await.unwrap());
        js.delete_stream(stream).await.unwrap();
    } else {
        let mut redis = common::esm::redis().await;
        let _: () = redis::cmd("DEL")
            .arg(format!("{stream}:events"))
            .arg(format!("{stream}:retries"))
            .query_async(&mut redis)
            .await
            .unwrap();
    }
}

fn is_shared(engine: &str, server: &TestServer) -> bool {
    use herald::bus::log::Log;
    match &server.running.as_ref().unwrap().buses.log {
        Log::JetStream(_) => engine == "nats",
        Log::Redis(_) => engine == "redis",
        Log::Local(_) => false,
    }
}

async fn drained(server: &TestServer) {
    let buses = server.running.as_ref().unwrap().buses.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while buses.log.counts().await.unwrap() != (0, 0) {
        assert!(tokio::time::Instant::now() < deadline, "the log drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_event_reaches_its_target_once_across_the_cluster_nats() {
    each_event_once("nats").await;
}

#[tokio::test]
async fn each_event_reaches_its_target_once_across_the_cluster_redis() {
    each_event_once("redis").await;
}

async fn each_event_once(engine: &str) {
    let db = Database::create("bus_once").await;
    let stream = unique("BUS").replace('-', "_");
    // Every event's first attempt fails: the retry goes through the
    // shared stream too.
    let failed = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let f = failed.clone();
    let policy: Policy = Arc::new(move |event, _| {
        let id = event["id"].as_str().unwrap_or_default().to_string();
        if f.lock().unwrap().insert(id) {
            (
                500,
                r#"{"errorType": "Boom", "errorMessage": "first"}"#.into(),
            )
        } else {
            (200, "{}".into())
        }
    });
    let mut function = fn_server(policy).await;
    let toml = config(engine, &db, &stream, function.addr);
    let (a, admin_a) = node(&toml).await;
    let (b, admin_b) = node(&toml).await;
    assert!(is_shared(engine, &a));
    rule(admin_a, &[admin_b]).await;

    let mut accepted: HashSet<String> = put(admin_a, "a", 30).await.into_iter().collect();
    accepted.extend(put(admin_b, "b", 30).await);
    assert_eq!(accepted.len(), 60);

    // Two calls per event (the failure, then the retry), from either node.
    let mut calls = std::collections::HashMap::<String, usize>::new();
    for _ in 0..120 {
        let e = function.event().await;
        *calls
            .entry(e["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    drained(&a).await;
    drained(&b).await;
    // Settled everywhere: nothing more can come.
    while let Ok(e) = function.calls.try_recv() {
        *calls
            .entry(e["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(calls.keys().cloned().collect::<HashSet<_>>(), accepted);
    assert!(calls.values().all(|n| *n == 2), "{calls:?}");
    drop((a, b));
    remove_stream(engine, &stream).await;
    db.drop_it().await;
}

#[tokio::test]
async fn a_killed_nodes_events_are_delivered_by_another_nats() {
    killed_node("nats").await;
}

#[tokio::test]
async fn a_killed_nodes_events_are_delivered_by_another_redis() {
    killed_node("redis").await;
}

async fn killed_node(engine: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = Database::create("bus_kill").await;
    let stream = unique("BUS").replace('-', "_");
    // The function hangs until the kill: the first node settles nothing.
    let hang = Arc::new(AtomicBool::new(true));
    let h = hang.clone();
    let policy: Policy = Arc::new(move |_, _| {
        if h.load(Ordering::SeqCst) {
            (0, String::new())
        } else {
            (200, "{}".into())
        }
    });
    let mut function = fn_server(policy).await;
    let toml = config(engine, &db, &stream, function.addr);
    let dir = temp_dir("bus-cluster-kill");
    let path = dir.join("herald.toml");
    std::fs::write(
        &path,
        format!("{toml}\n[admin]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let (mut first, admin) = serve_process(&path, &[]);
    let admin = admin.expect("the banner names the admin listener");
    rule(admin, &[]).await;
    let accepted: HashSet<String> = put(admin, "k", 40).await.into_iter().collect();
    first.kill();
    while function.calls.try_recv().is_ok() {}
    hang.store(false, Ordering::SeqCst);

    // Another node, after the first's ack_wait (2 s), gets them all.
    let (second, _) = node(&toml).await;
    let mut seen = HashSet::new();
    while seen.len() < accepted.len() {
        let e = function.event().await;
        seen.insert(e["id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, accepted);
    drained(&second).await;
    drop(second);
    remove_stream(engine, &stream).await;
    db.drop_it().await;
}

/// `op` through `admin` until `done` holds for its answer (bounded).
async fn until(admin: SocketAddr, op: &str, body: Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = events(admin, op, body.clone()).await;
        if r.status == 200 && done(&r.body) {
            return r.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{op}: {}", r.raw);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn archives_are_shared_and_replayed_by_any_node_nats() {
    archives_shared("nats").await;
}

#[tokio::test]
async fn archives_are_shared_and_replayed_by_any_node_redis() {
    archives_shared("redis").await;
}

async fn archives_shared(engine: &str) {
    let db = Database::create("bus_archive").await;
    let stream = unique("BUS").replace('-', "_");
    let mut function = fn_server(Arc::new(|_, _| (200, "{}".into()))).await;
    let toml = config(engine, &db, &stream, function.addr);
    let (a, admin_a) = node(&toml).await;
    let (b, admin_b) = node(&toml).await;
    let bus = "arn:aws:events:eu-west-1:123456789012:event-bus/default";
    let archive = events_ok(
        admin_a,
        "CreateArchive",
        json!({"ArchiveName": "orders.v1", "EventSourceArn": bus, "RetentionDays": 1}),
    )
    .await;
    rule(admin_a, &[admin_b]).await;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut accepted: HashSet<String> = put(admin_a, "a", 5).await.into_iter().collect();
    accepted.extend(put(admin_b, "b", 5).await);
    for _ in 0..10 {
        function.event().await;
    }
    // Both nodes archived into one place, and either reads it.
    until(
        admin_b,
        "DescribeArchive",
        json!({"ArchiveName": "orders.v1"}),
        |a| a["EventCount"] == 10,
    )
    .await;
    let end = start + 3600.0;
    events_ok(
        admin_b,
        "StartReplay",
        json!({"ReplayName": "again", "EventSourceArn": archive["ArchiveArn"],
        "EventStartTime": start, "EventEndTime": end, "Destination": {"Arn": bus}}),
    )
    .await;
    let mut replayed = HashSet::new();
    for _ in 0..10 {
        let e = function.event().await;
        assert_eq!(e["replay-name"], "again", "{e}");
        replayed.insert(e["id"].as_str().unwrap().to_string());
    }
    assert_eq!(replayed, accepted);
    until(
        admin_a,
        "DescribeReplay",
        json!({"ReplayName": "again"}),
        |r| r["State"] == "COMPLETED",
    )
    .await;
    // Deleting the archive deletes its stream.
    events_ok(
        admin_a,
        "DeleteArchive",
        json!({"ArchiveName": "orders.v1"}),
    )
    .await;
    let js =
        async_nats::jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await.unwrap());
    assert!(js
        .get_stream(format!("{stream}_ARCHIVE_orders_2Ev1"))
        .await
        .is_err());
    drained(&a).await;
    drained(&b).await;
    drop((a, b));
    remove_stream(engine, &stream).await;
    db.drop_it().await;
}
