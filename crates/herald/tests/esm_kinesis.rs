//! Kinesis mappings against `moto_server` (the Kinesis API, JSON 1.1):
//! Lambda's record shape, order per shard, bisect and a file destination,
//! and checkpoints in the store: a restarted server resumes after the last
//! record done, sending nothing twice that was done and losing nothing.

mod common;

use base64::Engine as _;
use common::esm::*;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

async fn stream(name: &str, shards: u32) {
    kinesis(
        "CreateStream",
        json!({"StreamName": name, "ShardCount": shards}),
    )
    .await;
}

async fn put(name: &str, key: &str, body: Value) {
    let data = base64::engine::general_purpose::STANDARD.encode(body.to_string());
    kinesis(
        "PutRecord",
        json!({"StreamName": name, "Data": data, "PartitionKey": key}),
    )
    .await;
}

fn decoded(record: &Value) -> Value {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(record["kinesis"]["data"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn mapping(uuid: &str, name: &str, extra: &str) -> String {
    format!(
        r#"uuid = "{uuid}"
event_source_arn = "arn:aws:kinesis:{REGION_ACCOUNT}:stream/{name}"
function_name = "sink"
starting_position = "TRIM_HORIZON"
metrics_config = {{ metrics = ["EventCount"] }}
{extra}"#
    )
}

/// A server whose store is a data directory (checkpoints survive it).
async fn server_in(dir: &std::path::Path, text: &str) -> TestServer {
    let file = herald::config::ConfigFile::parse(text).unwrap();
    let mut config = herald::config::ApiConfig::resolve(
        file,
        herald::config::Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    config.admin_listen = None;
    config.drain = std::time::Duration::ZERO;
    TestServer::with_config(config).await
}

#[tokio::test]
async fn kinesis_records_in_shard_order_and_checkpoints_that_survive_a_restart() {
    let name = unique("esm-kin");
    stream(&name, 2).await;
    let dir = temp_dir("esm-kinesis");
    let mut f = fn_server(Arc::new(|_, _| ok())).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let text = config(f.addr, &mapping(&uuid, &name, "batch_size = 5"));
    for i in 0..12 {
        put(
            &name,
            &format!("k{}", i % 3),
            json!({"n": i, "key": format!("k{}", i % 3)}),
        )
        .await;
    }
    let mut server = server_in(&dir, &text).await;
    // Per partition key (so per shard), in order.
    let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
    let mut total = 0;
    while total < 12 {
        for r in f.batch().await {
            assert_eq!(r["eventSource"], "aws:kinesis");
            assert!(r["eventID"].as_str().unwrap().starts_with("shardId-"));
            let d = decoded(&r);
            by_key
                .entry(d["key"].as_str().unwrap().into())
                .or_default()
                .push(d["n"].as_i64().unwrap());
            total += 1;
        }
    }
    for (k, ns) in &by_key {
        let mut sorted = ns.clone();
        sorted.sort();
        assert_eq!(ns, &sorted, "key {k} in order");
    }
    metrics_reach(&server, &uuid, &[("esm_processed_events_total", 12)]).await;
    server.shutdown().await;
    // Restarted on the same store: only what came after.
    for i in 12..15 {
        put(&name, "k0", json!({"n": i, "key": "k0"})).await;
    }
    let server = server_in(&dir, &text).await;
    let mut after = Vec::new();
    while after.len() < 3 {
        after.extend(
            f.batch()
                .await
                .iter()
                .map(|r| decoded(r)["n"].as_i64().unwrap()),
        );
    }
    assert_eq!(
        after,
        [12, 13, 14],
        "resumed after the checkpoint: nothing again, nothing lost"
    );
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 3),
            ("esm_processed_events_total", 3),
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_poison_record_is_bisected_out_to_the_destination() {
    let name = unique("esm-kin-bisect");
    stream(&name, 1).await;
    let dir = temp_dir("esm-kinesis-bisect");
    let dest = dir.join("failed.jsonl");
    let mut f = fn_server(Arc::new(|event, _| {
        let poisoned = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| decoded(r)["poison"] == true);
        if poisoned {
            (
                500,
                json!({"errorType": "Poison", "errorMessage": "no"}).to_string(),
            )
        } else {
            ok()
        }
    }))
    .await;
    for i in 0..4 {
        put(&name, "k", json!({"n": i, "poison": i == 2})).await;
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &mapping(
            &uuid,
            &name,
            &format!(
                "bisect_batch_on_function_error = true\nmaximum_retry_attempts = 0\ndestination_config = {{ on_failure = {{ destination = \"file://{}\" }} }}",
                dest.display()
            ),
        ),
    ))
    .await;
    // 4 (fails), 0-1 (ok), 2-3 (fails), 2 (fails: no retries left), 3 (ok).
    let sizes: Vec<usize> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(f.batch().await.len());
        }
        v
    };
    assert_eq!(sizes, [4, 2, 2, 1, 1]);
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_processed_events_total", 3),
            ("esm_on_failure_destination_delivered_events_total", 1),
        ],
    )
    .await;
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&dest)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        line["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(line["KinesisBatchInfo"]["batchSize"], 1);
    assert_eq!(
        line["KinesisBatchInfo"]["streamArn"],
        format!("arn:aws:kinesis:{REGION_ACCOUNT}:stream/{name}")
    );
    let payload: Value = serde_json::from_str(line["payload"].as_str().unwrap()).unwrap();
    assert_eq!(decoded(&payload["Records"][0])["n"], 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// Node A checkpoints its first batch, then is killed (SIGKILL) while its
/// function holds the second. Node B, started on the same store, takes the
/// lease once A's runs out (`ack_wait_secs = 2`) and resumes after the
/// checkpoint: the held batch comes again, the done one does not, and B's
/// counts add up.
#[tokio::test]
async fn a_killed_node_is_resumed_from_its_checkpoint() {
    let name = unique("esm-kin-kill");
    stream(&name, 1).await;
    for i in 0..6 {
        put(&name, "k", json!({"n": i})).await;
    }
    // The second call never answers (A dies holding it); the others succeed.
    let mut f = fn_server(Arc::new(
        |_, n| if n == 2 { (0, String::new()) } else { ok() },
    ))
    .await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let text = config(f.addr, &mapping(&uuid, &name, "batch_size = 3"));
    let dir = temp_dir("esm-kin-kill");
    let ns = |b: Vec<Value>| {
        b.iter()
            .map(|r| decoded(r)["n"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let a = node_in(&dir, &text, "node-a");
    assert_eq!(ns(f.batch().await), [0, 1, 2], "A's first batch");
    assert_eq!(ns(f.batch().await), [3, 4, 5], "the batch A holds");
    drop(a);
    let b = node_in(&dir, &text, "node-b");
    assert_eq!(
        ns(f.batch().await),
        [3, 4, 5],
        "B resumes after A's checkpoint: the held batch, and not the done one"
    );
    let b_server = b.server();
    metrics_reach(
        &b_server,
        &uuid,
        &[
            ("esm_polled_events_total", 3),
            ("esm_processed_events_total", 3),
        ],
    )
    .await;
    drop(b);
    let _ = std::fs::remove_dir_all(dir);
}

/// `ParallelizationFactor = 3` on one shard: batches of different partition
/// keys are in flight together (two arrive while neither is answered), a
/// key's records never split across them; and with a function that
/// answers, every record is processed once with each key in order.
#[tokio::test]
async fn parallelization_factor_runs_lanes_of_a_shard_together_in_key_order() {
    let keys = ["a", "b", "c", "d", "e", "f"];
    let fill = |name: String| async move {
        stream(&name, 1).await;
        for i in 0..30 {
            let key = keys[i % 6];
            put(&name, key, json!({"n": i, "key": key})).await;
        }
    };
    let key_of = |r: &Value| decoded(r)["key"].as_str().unwrap().to_string();
    let settings = "batch_size = 5\nparallelization_factor = 3";

    // A function that never answers: two batches still arrive.
    let name = unique("esm-kin-par");
    fill(name.clone()).await;
    let mut f = fn_server(Arc::new(|_, _| (0, String::new()))).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(f.addr, &mapping(&uuid, &name, settings))).await;
    let first: Vec<String> = f.batch().await.iter().map(key_of).collect();
    let second: Vec<String> = f.batch().await.iter().map(key_of).collect();
    assert!(
        first.iter().all(|k| !second.contains(k)),
        "a key in one lane: {first:?} {second:?}"
    );
    drop(server);

    // A function that answers: everything, each key in order.
    let name = unique("esm-kin-par");
    fill(name.clone()).await;
    let mut f = fn_server(Arc::new(|_, _| ok())).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(f.addr, &mapping(&uuid, &name, settings))).await;
    let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
    let mut total = 0;
    while total < 30 {
        for r in f.batch().await {
            by_key
                .entry(key_of(&r))
                .or_default()
                .push(decoded(&r)["n"].as_i64().unwrap());
            total += 1;
        }
    }
    for (k, ns) in &by_key {
        let mut sorted = ns.clone();
        sorted.sort();
        assert_eq!(ns, &sorted, "key {k} in order");
        assert_eq!(ns.len(), 5, "key {k}: each record once");
    }
    metrics_reach(&server, &uuid, &[("esm_processed_events_total", 30)]).await;
}
