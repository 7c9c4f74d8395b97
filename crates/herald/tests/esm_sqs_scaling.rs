//! SQS poller scaling against `moto_server`, in its own test binary: its
//! backlog and ten held pollers would otherwise load the one `moto_server`
//! while the other SQS tests run, and moto's FIFO queues do not lock a
//! message group under such concurrency as SQS does.

mod common;

use common::esm::*;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;

/// A backlog scales the pollers past the initial five up to
/// `MaximumConcurrency` (10): with a function that holds every batch, ten
/// batches are in flight at once and `esm_pollers` says 10, while a mapping
/// of the same settings on an empty queue keeps five.
#[tokio::test]
async fn a_backlog_scales_pollers_up_to_maximum_concurrency() {
    let idle = unique("esm-sqs-idle");
    queue(&idle, json!({})).await;
    let busy = unique("esm-sqs-scale");
    let url = queue(&busy, json!({"VisibilityTimeout": "60"})).await;
    for i in 0..15 {
        let entries: Vec<Value> = (0..10)
            .map(|j| json!({"Id": format!("m{j}"), "MessageBody": json!({"n": i * 10 + j}).to_string()}))
            .collect();
        sqs(
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": entries}),
        )
        .await;
    }
    // Never answers: each poller holds its batch.
    let mut f = fn_server(Arc::new(|_, _| (0, String::new()))).await;
    let settings = "batch_size = 10\nscaling_config = { maximum_concurrency = 10 }";
    let (idle_uuid, busy_uuid) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let both = format!(
        "{}\n[[event_source_mappings]]\n{}",
        sqs_mapping(&idle_uuid, &idle, settings),
        sqs_mapping(&busy_uuid, &busy, settings)
    );
    let server = start_with_toml(&config(f.addr, &both)).await;
    // Ten batches arrive with none answered: ten pollers hold one each (SQS
    // may return fewer than ten messages to a receive, so only the batches
    // are counted). A standard queue delivers at least once, and
    // moto_server's ReceiveMessage picks visible messages outside its queue
    // lock, so two concurrent receives now and then get the same message: a
    // repeat is not Herald's, and not counted against it here (esm_sqs.rs
    // checks that every message is handled and deleted).
    for _ in 0..10 {
        let batch = f.batch().await;
        assert!(!batch.is_empty(), "a batch holds records");
        for r in batch {
            assert!(sqs_body(&r)["n"].is_i64(), "a record carries its message");
        }
    }
    metrics_reach(&server, &busy_uuid, &[("esm_pollers", 10)]).await;
    // The idle mapping kept the initial five.
    metrics_reach(&server, &idle_uuid, &[("esm_pollers", 5)]).await;
}
