//! Event source mappings against the real brokers (Redis on 127.0.0.1:6379,
//! NATS JetStream on 127.0.0.1:4222): batching, filtering, partial batch
//! responses, bisect, retries and record age ending at the on-failure
//! destination, channel targets, the metrics adding up, and a killed node's
//! records processed after its restart.
//!
//! The function is an HTTP function served by the test, so the test sees
//! every batch Herald sends and chooses every answer.

mod common;

use common::esm::*;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;

fn fields(record: &Value) -> &Value {
    &record["redis"]["fields"]
}

/// A mapping of Redis stream `key` to the function `sink` from the start,
/// then `extra` (TOML lines).
fn redis_mapping(uuid: &str, key: &str, extra: &str) -> String {
    format!(
        "uuid = \"{uuid}\"\nevent_source_arn = \"arn:aws:redis:{REGION_ACCOUNT}:stream/{key}\"\n\
         function_name = \"sink\"\nstarting_position = \"TRIM_HORIZON\"\n{extra}"
    )
}

#[tokio::test]
async fn redis_streams_batches_filters_and_the_counts_add_up() {
    let key = unique("esm-happy");
    let mut f = fn_server(Arc::new(|_, _| ok())).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &redis_mapping(&uuid, &key, r#"batch_size = 10
maximum_batching_window_in_seconds = 1
filter_criteria = { filters = [{ pattern = '{"data": {"type": ["order"], "amount": [{"numeric": [">", 5]}]}}' }] }
metrics_config = { metrics = ["EventCount"] }"#),
    ))
    .await;
    let mut r = redis().await;
    let mut expected = Vec::new();
    for i in 0..25u32 {
        let (kind, amount) = if i % 5 == 0 {
            ("refund", 10)
        } else {
            ("order", i)
        };
        xadd(
            &mut r,
            &key,
            "*",
            &[
                ("type", kind.into()),
                ("amount", amount.to_string()),
                ("n", i.to_string()),
            ],
        )
        .await;
        if kind == "order" && amount > 5 {
            expected.push(i.to_string());
        }
    }
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let batch = f.batch().await;
        assert!(
            !batch.is_empty() && batch.len() <= 10,
            "batch of {}",
            batch.len()
        );
        for rec in batch {
            assert_eq!(rec["eventSource"], "herald:redis");
            assert_eq!(
                rec["eventSourceARN"],
                format!("arn:aws:redis:{REGION_ACCOUNT}:stream/{key}")
            );
            seen.push(fields(&rec)["n"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        seen, expected,
        "in stream order, the filtered-out ones never sent"
    );
    let n = expected.len() as u64;
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 25),
            ("esm_filtered_out_events_total", 25 - n),
            ("esm_invoked_events_total", n),
            ("esm_processed_events_total", n),
            ("esm_failed_invoke_events_total", 0),
            ("esm_offset_lag", 0),
        ],
    )
    .await;
    // Everything was acknowledged to the group.
    let pending: Value = redis::cmd("XPENDING")
        .arg(&key)
        .arg(format!("herald-{uuid}"))
        .query_async::<redis::Value>(&mut r)
        .await
        .map(|v| match v {
            redis::Value::Array(a) => match a.first() {
                Some(redis::Value::Int(n)) => json!(n),
                _ => json!(null),
            },
            _ => json!(null),
        })
        .unwrap();
    assert_eq!(pending, json!(0));
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_partial_batch_response_retries_from_the_lowest_failed_record() {
    let key = unique("esm-partial");
    // First call: report records 3 and 5 failed; then succeed.
    let mut f = fn_server(Arc::new(|event, n| {
        if n == 1 {
            let recs = event["Records"].as_array().unwrap();
            let id = |i: usize| recs[i]["redis"]["id"].clone();
            (200, json!({"batchItemFailures": [{"itemIdentifier": id(5)}, {"itemIdentifier": id(3)}]}).to_string())
        } else {
            ok()
        }
    }))
    .await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut r = redis().await;
    for i in 0..8u32 {
        xadd(&mut r, &key, "*", &[("n", i.to_string())]).await;
    }
    let server = start_with_toml(&config(
        f.addr,
        &redis_mapping(
            &uuid,
            &key,
            r#"function_response_types = ["ReportBatchItemFailures"]
metrics_config = { metrics = ["EventCount"] }"#,
        ),
    ))
    .await;
    let first = f.batch().await;
    assert_eq!(first.len(), 8);
    let second = f.batch().await;
    let ns: Vec<&str> = second
        .iter()
        .map(|r| fields(r)["n"].as_str().unwrap())
        .collect();
    assert_eq!(
        ns,
        ["3", "4", "5", "6", "7"],
        "the checkpoint is the lowest failed record"
    );
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 8),
            ("esm_invoked_events_total", 13),
            ("esm_failed_invoke_events_total", 8),
            ("esm_processed_events_total", 8),
        ],
    )
    .await;
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
}

#[tokio::test]
async fn bisect_isolates_a_poison_record_which_ends_in_the_file_destination() {
    let key = unique("esm-bisect");
    let dir = temp_dir("esm-bisect");
    let dest = dir.join("failed.jsonl");
    // Any batch holding the poison record fails.
    let mut f = fn_server(Arc::new(|event, _| {
        let poisoned = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["redis"]["fields"]["poison"] == "yes");
        if poisoned {
            (
                500,
                json!({"errorType": "Poison", "errorMessage": "cannot digest"}).to_string(),
            )
        } else {
            ok()
        }
    }))
    .await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut r = redis().await;
    for i in 0..8u32 {
        let poison = if i == 5 { "yes" } else { "no" };
        xadd(
            &mut r,
            &key,
            "*",
            &[("n", i.to_string()), ("poison", poison.into())],
        )
        .await;
    }
    let server = start_with_toml(&config(
        f.addr,
        &redis_mapping(
            &uuid,
            &key,
            &format!(
                r#"bisect_batch_on_function_error = true
maximum_retry_attempts = 1
destination_config = {{ on_failure = {{ destination = "file://{}" }} }}
metrics_config = {{ metrics = ["EventCount"] }}"#,
                dest.display()
            ),
        ),
    ))
    .await;
    // Batches: 8 (fails), 0-3 (ok), 4-7 (fails), 4-5 (fails), 4 (ok),
    // 5 (fails), 5 again (fails, retries spent), 6-7 (ok).
    let mut sizes = Vec::new();
    for _ in 0..8 {
        sizes.push(f.batch().await.len());
    }
    assert_eq!(sizes, [8, 4, 4, 2, 1, 1, 1, 2]);
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 8),
            ("esm_processed_events_total", 7),
            ("esm_on_failure_destination_delivered_events_total", 1),
            ("esm_dropped_events_total", 0),
        ],
    )
    .await;
    let text = std::fs::read_to_string(&dest).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let rec = &lines[0];
    assert_eq!(rec["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(rec["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(rec["responseContext"]["functionError"], "Unhandled");
    assert_eq!(rec["RedisStreamsBatchInfo"]["batchSize"], 1);
    assert_eq!(rec["RedisStreamsBatchInfo"]["shardId"], key.as_str());
    let payload: Value = serde_json::from_str(rec["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["Records"][0]["redis"]["fields"]["n"], "5");
    assert_eq!(
        rec["RedisStreamsBatchInfo"]["startSequenceNumber"],
        payload["Records"][0]["redis"]["id"]
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn records_past_their_age_go_to_a_channel_destination_without_an_invoke() {
    let key = unique("esm-age");
    let mut f = fn_server(Arc::new(|_, _| ok())).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &redis_mapping(
            &uuid,
            &key,
            r#"maximum_record_age_in_seconds = 60
destination_config = { on_failure = { destination = "channel:/esm/failed" } }
metrics_config = { metrics = ["EventCount"] }"#,
        ),
    ))
    .await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/esm/failed").await;
    // An entry stamped two minutes ago (explicit ids may be old on a stream
    // the group created empty), then a fresh one.
    let mut r = redis().await;
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 120_000;
    xadd(&mut r, &key, &format!("{old}-0"), &[("n", "old".into())]).await;
    xadd(&mut r, &key, "*", &[("n", "new".into())]).await;
    let failed = sub.data("s").await;
    assert_eq!(failed["requestContext"]["condition"], "RecordAgeExceeded");
    assert_eq!(failed["requestContext"]["approximateInvokeCount"], 0);
    assert_eq!(
        failed["requestContext"]["functionArn"],
        format!("arn:aws:lambda:{REGION_ACCOUNT}:function:sink")
    );
    let payload: Value = serde_json::from_str(failed["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["Records"][0]["redis"]["fields"]["n"], "old");
    let batch = f.batch().await;
    assert_eq!(batch.len(), 1);
    assert_eq!(fields(&batch[0])["n"], "new");
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 2),
            ("esm_invoked_events_total", 1),
            ("esm_processed_events_total", 1),
            ("esm_on_failure_destination_delivered_events_total", 1),
        ],
    )
    .await;
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
}

async fn jetstream(name: &str) -> async_nats::jetstream::Context {
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS runs on 127.0.0.1:4222 (scripts/setup starts it)");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    js
}

async fn js_publish(js: &async_nats::jetstream::Context, subject: String, body: Value) {
    js.publish(subject, body.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_jetstream_stream_feeds_a_channel_with_no_code() {
    let name = unique("ESM").replace('-', "_");
    let f = fn_server(Arc::new(|_, _| ok())).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &format!(
            r#"uuid = "{uuid}"
event_source_arn = "arn:aws:nats:{REGION_ACCOUNT}:stream/{name}"
function_name = "channel:/esm/orders"
starting_position = "TRIM_HORIZON"
filter_criteria = {{ filters = [{{ pattern = '{{"subject": [{{"prefix": "{name}.orders"}}]}}' }}] }}
metrics_config = {{ metrics = ["EventCount"] }}"#
        ),
    ))
    .await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/esm/orders").await;
    let js = jetstream(&name).await;
    for i in 0..20 {
        let subject = if i % 4 == 3 {
            format!("{name}.audit")
        } else {
            format!("{name}.orders.eu")
        };
        js_publish(&js, subject, json!({"n": i})).await;
    }
    let mut got = Vec::new();
    for _ in 0..15 {
        got.push(sub.data("s").await["n"].as_i64().unwrap());
    }
    let want: Vec<i64> = (0..20).filter(|i| i % 4 != 3).collect();
    assert_eq!(got, want, "each record's data, in stream order");
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 20),
            ("esm_filtered_out_events_total", 5),
            ("esm_processed_events_total", 15),
            ("esm_offset_lag", 0),
        ],
    )
    .await;
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn jetstream_retries_run_out_and_the_batch_goes_to_the_destination() {
    let name = unique("ESMF").replace('-', "_");
    let mut f = fn_server(Arc::new(|_, _| {
        (
            500,
            json!({"errorType": "Boom", "errorMessage": "always"}).to_string(),
        )
    }))
    .await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let js = jetstream(&name).await;
    for i in 0..3 {
        js_publish(&js, format!("{name}.x"), json!({"n": i})).await;
    }
    let server = start_with_toml(&config(
        f.addr,
        &format!(
            r#"uuid = "{uuid}"
event_source_arn = "arn:aws:nats:{REGION_ACCOUNT}:stream/{name}"
function_name = "sink"
starting_position = "TRIM_HORIZON"
maximum_retry_attempts = 2
destination_config = {{ on_failure = {{ destination = "channel:/esm/failed" }} }}
metrics_config = {{ metrics = ["EventCount"] }}"#
        ),
    ))
    .await;
    for _ in 0..3 {
        let batch = f.batch().await;
        assert_eq!(batch.len(), 3);
        let data = &batch[0]["jetstream"]["data"];
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).unwrap(),
            json!({"n": 0})
        );
    }
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 3),
            ("esm_invoked_events_total", 9),
            ("esm_failed_invoke_events_total", 9),
            ("esm_processed_events_total", 0),
            ("esm_on_failure_destination_delivered_events_total", 3),
            ("esm_offset_lag", 0),
        ],
    )
    .await;
    js.delete_stream(&name).await.unwrap();
}

/// Node A is killed (SIGKILL) while its function holds a batch; node B, a
/// different consumer in the same group, claims the unacknowledged entries
/// once `ack_wait_secs` has passed and processes every one; its counts add up.
#[tokio::test]
async fn a_killed_nodes_records_are_taken_over_and_processed() {
    let key = unique("esm-kill");
    // The first call never answers (A dies holding it); later calls succeed.
    let mut f = fn_server(Arc::new(
        |_, n| if n == 1 { (0, String::new()) } else { ok() },
    ))
    .await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let text = config(
        f.addr,
        &redis_mapping(
            &uuid,
            &key,
            r#"metrics_config = { metrics = ["EventCount"] }"#,
        ),
    );
    let mut r = redis().await;
    for i in 0..5u32 {
        xadd(&mut r, &key, "*", &[("n", i.to_string())]).await;
    }
    let a = node(&text, "node-a");
    let held = f.batch().await;
    assert_eq!(held.len(), 5);
    drop(a);
    let b = node(&text, "node-b");
    let again = f.batch().await;
    let ids = |b: &[Value]| b.iter().map(|r| fields(r)["n"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&held), "the same records, in order");
    let b_server = b.server();
    metrics_reach(
        &b_server,
        &uuid,
        &[
            ("esm_polled_events_total", 5),
            ("esm_processed_events_total", 5),
            ("esm_offset_lag", 0),
        ],
    )
    .await;
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut r)
        .await
        .unwrap();
}

/// Retries run out: an SQS destination gets the invocation record without
/// the records (as AWS sends it); an S3 destination gets an object under
/// AWS's key layout holding the records too.
#[tokio::test]
async fn sqs_and_s3_destinations_get_lambdas_records() {
    let failing = || {
        Arc::new(|_: &Value, _| {
            (
                500,
                json!({"errorType": "Boom", "errorMessage": "no"}).to_string(),
            )
        })
    };
    // SQS.
    let key = unique("esm-dest-sqs");
    let q = unique("esm-dlq");
    let url = queue(&q, json!({})).await;
    let mut f = fn_server(failing()).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let _server = start_with_toml(&config(
        f.addr,
        &redis_mapping(
            &uuid,
            &key,
            &format!(
                r#"maximum_retry_attempts = 0
destination_config = {{ on_failure = {{ destination = "arn:aws:sqs:{REGION_ACCOUNT}:{q}" }} }}"#
            ),
        ),
    ))
    .await;
    let mut r = redis().await;
    xadd(&mut r, &key, "*", &[("n", "1".into())]).await;
    f.batch().await;
    let mut got = Value::Null;
    for _ in 0..20 {
        let m = sqs(
            "ReceiveMessage",
            json!({"QueueUrl": url, "WaitTimeSeconds": 1}),
        )
        .await;
        if let Some(m) = m["Messages"].as_array().and_then(|m| m.first()) {
            got = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
            break;
        }
    }
    assert_eq!(
        got["requestContext"]["condition"], "RetryAttemptsExhausted",
        "{got}"
    );
    assert_eq!(got["RedisStreamsBatchInfo"]["batchSize"], 1);
    assert!(
        got.get("payload").is_none(),
        "SQS destinations get the metadata only"
    );

    // S3.
    let key2 = unique("esm-dest-s3");
    let bucket = unique("esm-bucket");
    let created = http_request(sqs_addr(), "PUT", &format!("/{bucket}"), vec![], &[("authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")]).await;
    assert_eq!(created.status, 200, "{}", created.raw);
    let mut f2 = fn_server(failing()).await;
    let uuid2 = uuid::Uuid::new_v4().to_string();
    let _server2 = start_with_toml(&config(
        f2.addr,
        &format!(
            r#"uuid = "{uuid2}"
event_source_arn = "arn:aws:redis:{REGION_ACCOUNT}:stream/{key2}"
function_name = "sink"
starting_position = "TRIM_HORIZON"
maximum_retry_attempts = 0
destination_config = {{ on_failure = {{ destination = "arn:aws:s3:::{bucket}" }} }}"#
        ),
    ))
    .await;
    xadd(&mut r, &key2, "*", &[("n", "2".into())]).await;
    f2.batch().await;
    let auth = [("authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")];
    let mut object_key = None;
    for _ in 0..500 {
        let listed = http_request(
            sqs_addr(),
            "GET",
            &format!("/{bucket}?list-type=2&prefix=aws/lambda/{uuid2}/"),
            vec![],
            &auth,
        )
        .await;
        if let Some(start) = listed.raw.find("<Key>") {
            let end = listed.raw[start..].find("</Key>").unwrap() + start;
            object_key = Some(listed.raw[start + 5..end].to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let object_key = object_key.expect("an object under aws/lambda/<uuid>/");
    assert!(
        object_key.starts_with(&format!("aws/lambda/{uuid2}/{key2}/")),
        "{object_key}"
    );
    let object = http_request(
        sqs_addr(),
        "GET",
        &format!("/{bucket}/{object_key}"),
        vec![],
        &auth,
    )
    .await;
    let body: Value = serde_json::from_str(&object.raw).unwrap();
    let payload: Value = serde_json::from_str(body["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload["Records"][0]["redis"]["fields"]["n"], "2",
        "the object holds the records"
    );
    for k in [&key, &key2] {
        let _: () = redis::cmd("DEL").arg(k).query_async(&mut r).await.unwrap();
    }
}

/// Start node A, wait for the batch it holds (its function never answers),
/// SIGKILL it, start node B: the held batch and the one B gets.
async fn kill_and_take_over(text: &str, f: &mut FnServer) -> (Vec<Value>, Vec<Value>, Node) {
    let a = node(text, "node-a");
    let held = f.event().await;
    drop(a);
    let b = node(text, "node-b");
    let again = f.event().await;
    let records = |e: &Value| match e.get("Records") {
        Some(r) => r.as_array().unwrap().clone(),
        None => e["rmqMessagesByQueue"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_array()
            .unwrap()
            .clone(),
    };
    (records(&held), records(&again), b)
}

fn hangs_first() -> Policy {
    Arc::new(|_, n| if n == 1 { (0, String::new()) } else { ok() })
}

#[tokio::test]
async fn a_killed_nodes_jetstream_sqs_and_rabbitmq_records_come_back() {
    use base64::Engine as _;
    let b64 = |s: &Value| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(s.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };

    // JetStream: redelivered once A's claim runs out (ack_wait_secs = 2).
    let name = unique("ESMK").replace('-', "_");
    let js = jetstream(&name).await;
    for i in 0..5 {
        js_publish(&js, format!("{name}.x"), json!({"n": i})).await;
    }
    let mut f = fn_server(hangs_first()).await;
    let text = config(f.addr, &format!("event_source_arn = \"arn:aws:nats:{REGION_ACCOUNT}:stream/{name}\"\nfunction_name = \"sink\"\nstarting_position = \"TRIM_HORIZON\""));
    let (held, again, _b) = kill_and_take_over(&text, &mut f).await;
    let ns = |b: &[Value]| {
        b.iter()
            .map(|r| b64(&r["jetstream"]["data"])["n"].clone())
            .collect::<Vec<_>>()
    };
    // What A held comes first, in order (B may also get what A never read).
    assert_eq!(
        ns(&held),
        ns(&again)[..held.len()],
        "JetStream: the held records again, in order"
    );
    assert_eq!(again[0]["jetstream"]["deliveryCount"], 2);
    js.delete_stream(&name).await.unwrap();

    // SQS: back after the visibility timeout (1 s).
    let q = unique("esm-kill-sqs");
    let url = queue(&q, json!({})).await;
    for i in 0..3 {
        sqs(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": json!({"n": i}).to_string()}),
        )
        .await;
    }
    let mut f = fn_server(hangs_first()).await;
    let text = config(f.addr, &format!("event_source_arn = \"arn:aws:sqs:{REGION_ACCOUNT}:{q}\"\nfunction_name = \"sink\"\nscaling_config = {{ maximum_concurrency = 2 }}"));
    let (held, mut again, b) = kill_and_take_over(&text, &mut f).await;
    // Every message A held comes again, received a second time (B may also
    // get messages A never received).
    let id = |r: &Value| r["messageId"].as_str().unwrap().to_string();
    let back = |again: &[Value]| held.iter().all(|h| again.iter().any(|r| id(r) == id(h)));
    while !back(&again) {
        again.extend(f.batch().await);
    }
    for h in &held {
        let r = again.iter().find(|r| id(r) == id(h)).unwrap();
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "2", "{r}");
    }
    drop(b);

    // RabbitMQ: requeued when A's connection dies.
    let conn = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ on 127.0.0.1:5672");
    let ch = conn.create_channel().await.unwrap();
    let rq = unique("esm-kill-rmq");
    ch.queue_declare(
        rq.as_str().into(),
        lapin::options::QueueDeclareOptions::default(),
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..3 {
        ch.basic_publish(
            "".into(),
            rq.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            json!({"n": i}).to_string().as_bytes(),
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut f = fn_server(hangs_first()).await;
    let text = config(f.addr, &format!("event_source_arn = \"arn:aws:mq:{REGION_ACCOUNT}:broker:test:b-1\"\nqueues = [\"{rq}\"]\nfunction_name = \"sink\"\nbatch_size = 10"));
    let (held, mut again, _b) = kill_and_take_over(&text, &mut f).await;
    let n = |m: &Value| b64(&m["data"])["n"].as_i64().unwrap();
    let back = |again: &[Value]| held.iter().all(|h| again.iter().any(|m| n(m) == n(h)));
    while !back(&again) {
        let e = f.event().await;
        again.extend(
            e["rmqMessagesByQueue"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    // Every message A held comes again, marked redelivered.
    for h in &held {
        let m = again.iter().find(|m| n(m) == n(h)).unwrap();
        assert_eq!(m["redelivered"], true, "{m}");
    }
}
