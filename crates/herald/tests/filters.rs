//! Filtered subscriptions (Herald's extension): a `subscribe` message may carry
//! an event pattern, and an `onSubscribe` handler may set one with
//! `extensions.setSubscriptionFilter`; a subscription receives only the events
//! whose payload matches. Clients that send no filter see no change.

mod common;

use common::*;
use serde_json::{json, Value};

async fn subscribe_filtered(c: &mut WsClient, id: &str, channel: &str, filter: Value) -> Value {
    c.send(json!({"type": "subscribe", "id": id, "channel": channel,
                  "authorization": {"x-api-key": KEY}, "filter": filter}))
        .await;
    c.recv().await
}

async fn publish(server: &TestServer, channel: &str, events: &[Value]) {
    let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let r = server
        .post(json!({"channel": channel, "events": events}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

/// A server whose namespace `h` runs `code`.
async fn with_handler(code: &str) -> TestServer {
    start_with_toml(&format!(
        "[[api_keys]]\nid = \"{KEY}\"\n[[channel_namespaces]]\nname = \"h\"\ncode_handlers = {}\n",
        serde_json::to_string(code).unwrap()
    ))
    .await
}

#[tokio::test]
async fn exact_and_wildcard_channels_with_and_without_a_filter() {
    let server = TestServer::start().await;
    let mut plain = server.ws().await;
    plain.init().await;
    plain.subscribe("all", "/default/orders").await;
    let mut big = server.ws().await;
    big.init().await;
    let ok = subscribe_filtered(
        &mut big,
        "big",
        "/default/orders",
        json!({"type": ["order"], "amount": [{"numeric": [">", 100]}]}),
    )
    .await;
    assert_eq!(ok["type"], "subscribe_success", "{ok}");
    let wild = subscribe_filtered(
        &mut big,
        "eu",
        "/default/*",
        json!({"region": [{"prefix": "eu-"}]}),
    )
    .await;
    assert_eq!(wild["type"], "subscribe_success", "{wild}");

    // One batch: the filtered subscriptions get their subsets, in order.
    let events = [
        json!({"type": "order", "amount": 50, "region": "eu-west-1", "n": 1}),
        json!({"type": "order", "amount": 500, "region": "us-east-1", "n": 2}),
        json!("not an object"),
        json!({"type": "refund", "amount": 900, "region": "eu-north-1", "n": 4}),
        json!({"type": "order", "amount": 101, "region": "eu-central-1", "n": 5}),
    ];
    publish(&server, "/default/orders", &events).await;
    for e in &events {
        assert_eq!(
            &plain.data("all").await,
            e,
            "the unfiltered subscriber gets everything"
        );
    }
    // `big` holds two subscriptions: frames arrive per publish, per subscription.
    let mut got: Vec<(String, i64)> = Vec::new();
    for _ in 0..5 {
        let f = big.recv().await;
        assert_eq!(f["type"], "data", "{f}");
        let e: Value = serde_json::from_str(f["event"].as_str().unwrap()).unwrap();
        got.push((f["id"].as_str().unwrap().into(), e["n"].as_i64().unwrap()));
    }
    let of = |id: &str| -> Vec<i64> {
        got.iter()
            .filter(|(s, _)| s == id)
            .map(|(_, n)| *n)
            .collect()
    };
    assert_eq!(of("big"), [2, 5]);
    assert_eq!(of("eu"), [1, 4, 5]);

    // A deeper channel reaches the wildcard subscription only; nothing else is queued.
    publish(
        &server,
        "/default/orders/x",
        &[json!({"region": "eu-x", "n": 6})],
    )
    .await;
    let e = big.data("eu").await;
    assert_eq!(e["n"], 6);
    let metrics = http_request(server.addr, "GET", "/metrics", vec![], &[])
        .await
        .raw;
    assert!(
        metrics.contains("herald_events_filtered_total{namespace=\"default\"} 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_filter_is_a_subscribe_error_naming_the_problem() {
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;
    for (filter, part) in [
        (json!({"amount": [{"numeric": [">", "ten"]}]}), "numeric"),
        (json!({"source": "aws.ec2"}), "source"),
        (json!({"a": [{"wildcard": "x**y"}]}), "wildcard"),
        (json!({"$or": [{"a": [1]}]}), "$or"),
        (json!({"a": [{"nope": 1}]}), "nope"),
        (json!([1, 2]), "filter"),
    ] {
        let r = subscribe_filtered(&mut c, "bad", "/default/x", filter.clone()).await;
        assert_eq!(r["type"], "subscribe_error", "{filter}: {r}");
        assert_eq!(r["id"], "bad");
        assert_eq!(r["errors"][0]["errorType"], "BadRequestException", "{r}");
        let msg = r["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains(part), "{filter}: {msg}");
    }
    // The connection still works, and the id can be used again.
    c.subscribe("bad", "/default/x").await;
}

#[tokio::test]
async fn an_on_subscribe_handler_sets_a_filter() {
    let code = r#"
import { extensions } from '@aws-appsync/utils';
export function onSubscribe(ctx) {
  // Subscribers of /h/alerts/<level> get only that level.
  extensions.setSubscriptionFilter({ level: [ctx.info.channel.segments[2]] });
}"#;
    let server = with_handler(code).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("high", "/h/alerts/high").await;
    // A client filter narrows further: both must match.
    let r = subscribe_filtered(&mut c, "db", "/h/alerts/low", json!({"service": ["db"]})).await;
    assert_eq!(r["type"], "subscribe_success", "{r}");

    publish(
        &server,
        "/h/alerts/high",
        &[
            json!({"level": "low", "n": 1}),
            json!({"level": "high", "n": 2}),
        ],
    )
    .await;
    assert_eq!(c.data("high").await["n"], 2);
    publish(
        &server,
        "/h/alerts/low",
        &[
            json!({"level": "low", "service": "web", "n": 3}),
            json!({"level": "low", "service": "db", "n": 4}),
            json!({"level": "high", "service": "db", "n": 5}),
        ],
    )
    .await;
    assert_eq!(c.data("db").await["n"], 4);
    // Nothing else was queued: a marker is the next frame.
    publish(
        &server,
        "/h/alerts/high",
        &[json!({"level": "high", "n": 6})],
    )
    .await;
    assert_eq!(c.data("high").await["n"], 6);
}

#[tokio::test]
async fn a_handler_filter_that_is_not_a_valid_pattern_fails_the_subscription() {
    let code = r#"
export function onSubscribe(ctx) {
  extensions.setSubscriptionFilter({ level: "high" });
}"#;
    let server = with_handler(code).await;
    let mut c = server.ws().await;
    c.init().await;
    c.send(json!({"type": "subscribe", "id": "s", "channel": "/h/x", "authorization": {"x-api-key": KEY}}))
        .await;
    let r = c.recv().await;
    assert_eq!(r["type"], "subscribe_error", "{r}");
    let msg = r["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("invalid filter") && msg.contains("level"),
        "{msg}"
    );
}
