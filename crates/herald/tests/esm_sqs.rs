//! SQS mappings against `moto_server` (SQS's JSON protocol, started by
//! `scripts/setup` on 127.0.0.1:5000): batching and filters with every
//! message deleted, a partial batch response deleting only the successes,
//! the queue's redrive policy taking a poison message to its dead-letter
//! queue, and FIFO groups stopping at their first failure.

mod common;

use common::esm::*;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

async fn queue_is_empty(url: &str) {
    for _ in 0..500 {
        let a = sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}),
        )
        .await;
        let n = |k: &str| {
            a["Attributes"][k]
                .as_str()
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap()
        };
        if n("ApproximateNumberOfMessages") + n("ApproximateNumberOfMessagesNotVisible") == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{url} never emptied");
}

#[tokio::test]
async fn sqs_batches_filter_and_delete_everything() {
    let name = unique("esm-sqs");
    // Visibility past the batching window: several pollers share the queue.
    let url = queue(&name, json!({"VisibilityTimeout": "30"})).await;
    let mut f = fn_server(Arc::new(|_, _| ok())).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &sqs_mapping(
            &uuid,
            &name,
            r#"batch_size = 10
maximum_batching_window_in_seconds = 1
filter_criteria = { filters = [{ pattern = '{"body": {"kind": ["order"]}}' }] }"#,
        ),
    ))
    .await;
    let mut want = HashSet::new();
    for i in 0..25 {
        let kind = if i % 5 == 0 { "noise" } else { "order" };
        sqs(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": json!({"kind": kind, "n": i}).to_string()}),
        )
        .await;
        if kind == "order" {
            want.insert(i);
        }
    }
    let mut got = HashSet::new();
    while got.len() < want.len() {
        let batch = f.batch().await;
        assert!(batch.len() <= 10);
        for r in batch {
            assert_eq!(r["eventSource"], "aws:sqs");
            assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
            assert!(
                got.insert(sqs_body(&r)["n"].as_i64().unwrap()),
                "each message once"
            );
        }
    }
    assert_eq!(got, want);
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 25),
            ("esm_filtered_out_events_total", 5),
            ("esm_invoked_events_total", 20),
            ("esm_processed_events_total", 20),
            ("esm_deleted_events_total", 25),
        ],
    )
    .await;
    queue_is_empty(&url).await;
}

#[tokio::test]
async fn a_partial_failure_deletes_only_the_successes() {
    let name = unique("esm-sqs-partial");
    let url = queue(&name, json!({})).await;
    // Each message with `fail` is reported failed the first time it comes.
    let failed_once = Arc::new(Mutex::new(HashSet::new()));
    let policy = {
        let failed_once = failed_once.clone();
        Arc::new(move |event: &Value, _| {
            let mut items = Vec::new();
            for r in event["Records"].as_array().unwrap() {
                let id = r["messageId"].as_str().unwrap().to_string();
                if sqs_body(r)["fail"] == true && failed_once.lock().unwrap().insert(id.clone()) {
                    items.push(json!({"itemIdentifier": id}));
                }
            }
            (200, json!({"batchItemFailures": items}).to_string())
        })
    };
    let mut f = fn_server(policy).await;
    for i in 0..6 {
        sqs(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": json!({"n": i, "fail": i == 2}).to_string()}),
        )
        .await;
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &sqs_mapping(
            &uuid,
            &name,
            r#"function_response_types = ["ReportBatchItemFailures"]"#,
        ),
    ))
    .await;
    let mut seen: Vec<(i64, String)> = Vec::new();
    while !seen.iter().any(|(n, count)| *n == 2 && count == "2") {
        for r in f.batch().await {
            seen.push((
                sqs_body(&r)["n"].as_i64().unwrap(),
                r["attributes"]["ApproximateReceiveCount"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ));
        }
    }
    // Only the failed message came back; the others were delivered once.
    let mut ns: Vec<i64> = seen.iter().map(|(n, _)| *n).collect();
    ns.sort();
    assert_eq!(ns, [0, 1, 2, 2, 3, 4, 5]);
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_processed_events_total", 6),
            ("esm_deleted_events_total", 6),
            ("esm_polled_events_total", 7),
        ],
    )
    .await;
    queue_is_empty(&url).await;
}

#[tokio::test]
async fn the_queues_redrive_policy_takes_a_poison_message_to_its_dead_letter_queue() {
    let name = unique("esm-sqs-redrive");
    let dlq = queue(&format!("{name}-dlq"), json!({})).await;
    let dlq_arn = sqs(
        "GetQueueAttributes",
        json!({"QueueUrl": dlq, "AttributeNames": ["QueueArn"]}),
    )
    .await["Attributes"]["QueueArn"]
        .as_str()
        .unwrap()
        .to_string();
    let url = queue(
        &name,
        json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string()}),
    )
    .await;
    // The function fails every batch holding the poison message.
    let mut f = fn_server(Arc::new(|event, _| {
        if event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| sqs_body(r)["poison"] == true)
        {
            (
                500,
                json!({"errorType": "Poison", "errorMessage": "no"}).to_string(),
            )
        } else {
            ok()
        }
    }))
    .await;
    sqs(
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": json!({"poison": true}).to_string()}),
    )
    .await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let _server = start_with_toml(&config(
        f.addr,
        &sqs_mapping(&uuid, &name, "batch_size = 1"),
    ))
    .await;
    let first = f.batch().await;
    assert_eq!(first[0]["attributes"]["ApproximateReceiveCount"], "1");
    let second = f.batch().await;
    assert_eq!(second[0]["attributes"]["ApproximateReceiveCount"], "2");
    // Past maxReceiveCount the queue moves it to the dead-letter queue.
    let mut moved = Value::Null;
    for _ in 0..20 {
        let r = sqs(
            "ReceiveMessage",
            json!({"QueueUrl": dlq, "WaitTimeSeconds": 1}),
        )
        .await;
        if let Some(m) = r["Messages"].as_array().and_then(|m| m.first()) {
            moved = m.clone();
            break;
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(
            moved["Body"]
                .as_str()
                .expect("the poison message reached the DLQ")
        )
        .unwrap(),
        json!({"poison": true})
    );
}

#[tokio::test]
async fn a_fifo_group_stops_at_its_first_failure() {
    let name = format!("{}.fifo", unique("esm-fifo"));
    let url = queue(
        &name,
        json!({"FifoQueue": "true", "ContentBasedDeduplication": "true"}),
    )
    .await;
    // The first call reports only "a" failed (not the later messages of its
    // group, as a careless function might): Herald must keep b and c too.
    let mut f = fn_server(Arc::new(|event, n| {
        if n == 1 {
            let a = event["Records"][0]["messageId"].clone();
            (
                200,
                json!({"batchItemFailures": [{"itemIdentifier": a}]}).to_string(),
            )
        } else {
            ok()
        }
    }))
    .await;
    for m in ["a", "b", "c"] {
        sqs("SendMessage", json!({"QueueUrl": url, "MessageBody": json!({"m": m}).to_string(), "MessageGroupId": "g1"})).await;
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &sqs_mapping(&uuid, &name, "function_response_types = [\"ReportBatchItemFailures\"]\nscaling_config = { maximum_concurrency = 2 }"),
    ))
    .await;
    let order = |b: &[Value]| {
        b.iter()
            .map(|r| sqs_body(r)["m"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let first = f.batch().await;
    assert_eq!(order(&first), ["a", "b", "c"]);
    assert_eq!(first[0]["attributes"]["MessageGroupId"], "g1");
    let mut again = Vec::new();
    while again.len() < 3 {
        again.extend(order(&f.batch().await));
    }
    // None of the group was deleted: all three come back (moto_server does
    // not keep a group's order on redelivery, as SQS does, so only the set
    // is checked).
    again.sort();
    assert_eq!(again, ["a", "b", "c"], "the group came back whole");
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_processed_events_total", 3),
            ("esm_deleted_events_total", 3),
        ],
    )
    .await;
    queue_is_empty(&url).await;
}
