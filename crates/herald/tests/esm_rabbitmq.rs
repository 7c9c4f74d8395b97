//! Amazon MQ (RabbitMQ) mappings against the broker on 127.0.0.1:5672
//! (guest/guest, started by `scripts/setup`): Lambda's `rmqMessagesByQueue`
//! event, filters, acknowledgements, and a failing message requeued until
//! `max_deliveries`, then dead-lettered by the queue's own policy.

mod common;

use base64::Engine as _;
use common::esm::*;
use common::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::sync::Arc;

async fn amqp() -> Channel {
    let conn = Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ runs on 127.0.0.1:5672 (scripts/setup starts it)");
    let ch = conn.create_channel().await.unwrap();
    // The connection lives as long as the test process (it closes on drop).
    std::mem::forget(conn);
    ch
}

async fn declare(ch: &Channel, name: &str, args: FieldTable) -> u32 {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap()
        .message_count()
}

async fn send(ch: &Channel, queue: &str, body: Value, id: &str) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body.to_string().as_bytes(),
        BasicProperties::default()
            .with_message_id(id.into())
            .with_content_type("application/json".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

fn messages(event: &Value, queue: &str) -> Vec<Value> {
    assert_eq!(event["eventSource"], "aws:rmq");
    event["rmqMessagesByQueue"][format!("{queue}::/")]
        .as_array()
        .unwrap_or_else(|| panic!("no messages of {queue}::/ in {event}"))
        .iter()
        .map(|m| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(m["data"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice(&raw).unwrap()
        })
        .collect()
}

fn mapping(uuid: &str, queue: &str, extra: &str) -> String {
    format!(
        r#"uuid = "{uuid}"
event_source_arn = "arn:aws:mq:{REGION_ACCOUNT}:broker:test:b-1"
queues = ["{queue}"]
function_name = "sink"
metrics_config = {{ metrics = ["EventCount"] }}
{extra}"#
    )
}

#[tokio::test]
async fn rabbitmq_messages_are_filtered_batched_and_acknowledged() {
    let ch = amqp().await;
    let queue = unique("esm-rmq");
    declare(&ch, &queue, FieldTable::default()).await;
    let mut f = fn_server(Arc::new(|_, _| ok())).await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let server = start_with_toml(&config(
        f.addr,
        &mapping(
            &uuid,
            &queue,
            r#"batch_size = 10
filter_criteria = { filters = [{ pattern = '{"data": {"kind": ["order"]}}' }] }"#,
        ),
    ))
    .await;
    let mut want = Vec::new();
    for i in 0..30 {
        let kind = if i % 3 == 0 { "noise" } else { "order" };
        send(&ch, &queue, json!({"n": i, "kind": kind}), &format!("m{i}")).await;
        if kind == "order" {
            want.push(i);
        }
    }
    let mut got = Vec::new();
    while got.len() < want.len() {
        let event = f.event().await;
        let batch = messages(&event, &queue);
        assert!(batch.len() <= 10);
        got.extend(batch.iter().map(|m| m["n"].as_i64().unwrap()));
    }
    got.sort();
    assert_eq!(got, want);
    metrics_reach(
        &server,
        &uuid,
        &[
            ("esm_polled_events_total", 30),
            ("esm_filtered_out_events_total", 10),
            ("esm_processed_events_total", 20),
        ],
    )
    .await;
    assert_eq!(
        declare(&ch, &queue, FieldTable::default()).await,
        0,
        "nothing left in the queue"
    );
}

#[tokio::test]
async fn a_failing_message_is_requeued_then_dead_lettered() {
    let ch = amqp().await;
    let queue = unique("esm-rmq-dl");
    let dlq = format!("{queue}-dlq");
    declare(&ch, &dlq, FieldTable::default()).await;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dlq.as_str().into()),
    );
    declare(&ch, &queue, args).await;
    let mut f = fn_server(Arc::new(|event, _| {
        let poisoned = event["rmqMessagesByQueue"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|v| v.as_array().unwrap())
            .any(|m| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(m["data"].as_str().unwrap())
                    .unwrap();
                String::from_utf8_lossy(&raw).contains("poison")
            });
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
    let uuid = uuid::Uuid::new_v4().to_string();
    let _server = start_with_toml(&config(f.addr, &mapping(&uuid, &queue, "batch_size = 1"))).await;
    send(&ch, &queue, json!({"poison": true}), "p1").await;
    // Delivered max_deliveries (3) times, the later ones marked redelivered.
    for i in 0..3 {
        let event = f.event().await;
        let m = &event["rmqMessagesByQueue"][format!("{queue}::/")][0];
        assert_eq!(m["redelivered"], i > 0, "{event}");
        assert_eq!(m["basicProperties"]["messageId"], "p1");
    }
    // Then the queue's dead-letter policy takes it.
    let mut dead = None;
    for _ in 0..500 {
        if let Some(m) = ch
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            dead = Some(m);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dead = dead.expect("the message reached the dead-letter queue");
    assert_eq!(
        serde_json::from_slice::<Value>(&dead.delivery.data).unwrap(),
        json!({"poison": true})
    );
}
