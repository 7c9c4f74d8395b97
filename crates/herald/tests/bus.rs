//! The event bus end to end: rules with patterns route `PutEvents` to a
//! channel (a WebSocket subscriber sees the event), to a function (over
//! HTTP, with the transformed input), to another bus; failures are retried
//! and dead-lettered; and after `kill -9` right after `PutEvents` answered,
//! every accepted event still reaches its target.

mod common;

use common::aws::*;
use common::esm::{fn_server, FnServer, Policy};
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

fn config(function: SocketAddr) -> String {
    format!(
        r#"
        account_id = "123456789012"
        aws_region = "eu-west-1"
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
        [[event_sources]]
        arn = "arn:aws:nats:eu-west-1:123456789012:subject/*"
        url = "nats://127.0.0.1:4222"
        "#
    )
}

async fn server(policy: Policy) -> (TestServer, SocketAddr, FnServer) {
    let function = fn_server(policy).await;
    let server = start_with_toml(&config(function.addr)).await;
    let admin = server.running.as_ref().unwrap().admin_addr.unwrap();
    (server, admin, function)
}

fn ok_policy() -> Policy {
    Arc::new(|_, _| (200, "{}".into()))
}

const FUNCTION: &str = "arn:aws:lambda:eu-west-1:123456789012:function:sink";

/// A rule on the default bus with `pattern` and `targets`.
async fn rule(admin: SocketAddr, name: &str, pattern: &str, targets: Value) {
    events_ok(
        admin,
        "PutRule",
        json!({"Name": name, "EventPattern": pattern}),
    )
    .await;
    let r = events_ok(
        admin,
        "PutTargets",
        json!({"Rule": name, "Targets": targets}),
    )
    .await;
    assert_eq!(r["FailedEntryCount"], 0, "{r}");
}

const SHOP: &str = r#"{"source": ["shop"]}"#;

async fn put(admin: SocketAddr, entries: Value) -> Value {
    let r = events_ok(admin, "PutEvents", json!({"Entries": entries})).await;
    assert_eq!(r["FailedEntryCount"], 0, "{r}");
    r
}

fn order(id: &str, amount: u32) -> Value {
    json!({"Source": "shop", "DetailType": "Order Placed",
           "Detail": json!({"id": id, "amount": amount, "region": "eu"}).to_string()})
}

#[tokio::test]
async fn rules_route_to_a_channel_and_a_function() {
    let (server, admin, mut function) = server(ok_policy()).await;
    events_ok(admin, "PutRule", json!({"Name": "big", "EventPattern": r#"{"source": ["shop"], "detail": {"amount": [{"numeric": [">=", 100]}]}}"#})).await;
    let r = events_ok(admin, "PutTargets", json!({"Rule": "big", "Targets": [
        {"Id": "ws", "Arn": "channel:/default/orders/$.detail.region", "InputPath": "$.detail"},
        {"Id": "fn", "Arn": FUNCTION, "InputTransformer": {
            "InputPathsMap": {"id": "$.detail.id", "amount": "$.detail.amount"},
            "InputTemplate": r#"{"order": "<id>", "amount": <amount>, "rule": "<aws.events.rule-name>"}"#}},
    ]})).await;
    assert_eq!(r["FailedEntryCount"], 0, "{r}");
    let mut ws = server.ws().await;
    ws.init().await;
    ws.subscribe("s1", "/default/orders/eu").await;

    put(admin, json!([order("small", 5), order("o-1", 150)])).await;
    let seen = ws.data("s1").await;
    assert_eq!(seen, json!({"id": "o-1", "amount": 150, "region": "eu"}));
    let called = function.event().await;
    assert_eq!(
        called,
        json!({"order": "o-1", "amount": 150, "rule": "big"})
    );

    // A disabled rule routes nothing; enabled again, it does. Rules are
    // applied when the bus dispatches an event from its log, in the log's
    // order: a marker put after o-2 and routed by another rule shows that o-2
    // was dispatched (while `big` was off) before `big` is enabled again.
    events_ok(
        admin,
        "PutRule",
        json!({"Name": "marker", "EventPattern": r#"{"source": ["marker"]}"#}),
    )
    .await;
    events_ok(
        admin,
        "PutTargets",
        json!({"Rule": "marker", "Targets": [
        {"Id": "ws", "Arn": "channel:/default/orders/eu", "InputPath": "$.detail"}]}),
    )
    .await;
    events_ok(admin, "DisableRule", json!({"Name": "big"})).await;
    put(admin, json!([order("o-2", 500)])).await;
    put(
        admin,
        json!([{"Source": "marker", "DetailType": "m", "Detail": r#"{"id": "marker"}"#}]),
    )
    .await;
    assert_eq!(ws.data("s1").await["id"], "marker", "o-2 was not routed");
    events_ok(admin, "EnableRule", json!({"Name": "big"})).await;
    put(admin, json!([order("o-3", 700)])).await;
    assert_eq!(ws.data("s1").await["id"], "o-3");
    assert_eq!(function.event().await["order"], "o-3");
}

#[tokio::test]
async fn a_bus_feeds_another_bus() {
    let (_server, admin, mut function) = server(ok_policy()).await;
    events_ok(admin, "CreateEventBus", json!({"Name": "audit"})).await;
    rule(
        admin,
        "forward",
        SHOP,
        json!([
        {"Id": "audit", "Arn": "arn:aws:events:eu-west-1:123456789012:event-bus/audit"}]),
    )
    .await;
    events_ok(admin, "PutRule", json!({"Name": "all", "EventBusName": "audit", "EventPattern": r#"{"detail-type": ["Order Placed"]}"#})).await;
    events_ok(
        admin,
        "PutTargets",
        json!({"Rule": "all", "EventBusName": "audit", "Targets": [{"Id": "fn", "Arn": FUNCTION}]}),
    )
    .await;
    let id = put(admin, json!([order("o-9", 1)])).await["Entries"][0]["EventId"].clone();
    let got = function.event().await;
    assert_eq!(got["id"], id, "the event arrives as it was put: {got}");
    assert_eq!(got["detail"]["id"], "o-9");
    assert_eq!(got["account"], "123456789012");
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered() {
    // The function fails its first two calls for o-retry, and every call
    // for o-dead.
    let policy: Policy = Arc::new(|event: &Value, _| {
        let fail = || {
            (
                500,
                r#"{"errorType": "Boom", "errorMessage": "down"}"#.to_string(),
            )
        };
        match event["detail"]["id"].as_str() {
            Some("o-dead") => fail(),
            _ => (200, "{}".into()),
        }
    });
    let dlq = temp_dir("bus-dlq").join("dead.jsonl");
    let (_server, admin, mut function) = server(policy).await;
    rule(
        admin,
        "r",
        SHOP,
        json!([{"Id": "fn", "Arn": FUNCTION,
        "RetryPolicy": {"MaximumRetryAttempts": 1},
        "DeadLetterConfig": {"Arn": format!("file://{}", dlq.display())}}]),
    )
    .await;
    put(admin, json!([order("o-dead", 1)])).await;
    // The first attempt and one retry (about a second later), then the file.
    assert_eq!(function.event().await["detail"]["id"], "o-dead");
    assert_eq!(function.event().await["detail"]["id"], "o-dead");
    let line = wait_for_line(&dlq).await;
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["event"]["detail"]["id"], "o-dead");
    assert_eq!(record["attempts"], 2);
    assert_eq!(record["targetArn"], FUNCTION);
    assert_eq!(
        record["ruleArn"],
        "arn:aws:events:eu-west-1:123456789012:rule/r"
    );
    assert!(
        record["errorMessage"].as_str().unwrap().contains("down"),
        "{record}"
    );
}

#[tokio::test]
async fn a_retry_that_succeeds_is_delivered_once() {
    let policy: Policy = Arc::new(|_, n| {
        if n <= 2 {
            (
                500,
                r#"{"errorType": "Boom", "errorMessage": "not yet"}"#.to_string(),
            )
        } else {
            (200, "{}".into())
        }
    });
    let (server, admin, mut function) = server(policy).await;
    rule(admin, "r", SHOP, json!([{"Id": "fn", "Arn": FUNCTION}])).await;
    put(admin, json!([order("o-1", 1)])).await;
    for _ in 0..3 {
        assert_eq!(function.event().await["detail"]["id"], "o-1");
    }
    // Delivered on the third attempt: the retry table empties, and no
    // fourth call comes.
    let buses = server.running.as_ref().unwrap().buses.clone();
    loop {
        if buses.log.counts().await.unwrap().1 == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(function.calls.try_recv().is_err());
}

async fn wait_for_line(path: &std::path::Path) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(line) = text.lines().next() {
                return line.to_string();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing reached {}",
            path.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `herald serve` as a process on `dir` (its store and event log), and its
/// admin address from its banner.
fn start_node(dir: &std::path::Path, function: SocketAddr) -> (Process, SocketAddr) {
    let path = dir.join("herald.toml");
    std::fs::write(
        &path,
        format!("{}\n[admin]\nlisten = \"127.0.0.1:0\"\n", config(function)),
    )
    .unwrap();
    let (child, admin) = serve_process(&path, &[std::ffi::OsStr::new("--data"), dir.as_os_str()]);
    (child, admin.expect("the banner names the admin listener"))
}

#[tokio::test]
async fn accepted_events_survive_kill_9() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The function hangs until the restart: nothing is delivered before
    // the kill.
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
    let dir = temp_dir("bus-kill9");
    let (mut child, admin) = start_node(&dir, function.addr);
    rule(admin, "r", SHOP, json!([{"Id": "fn", "Arn": FUNCTION}])).await;
    let mut accepted = std::collections::HashSet::new();
    for batch in 0..5 {
        let entries: Vec<Value> = (0..10)
            .map(|i| order(&format!("o-{batch}-{i}"), i))
            .collect();
        let r = put(admin, Value::Array(entries)).await;
        for e in r["Entries"].as_array().unwrap() {
            accepted.insert(e["EventId"].as_str().unwrap().to_string());
        }
    }
    child.kill(); // SIGKILL, right after the last answer
                  // What reached the hanging function before the kill does not count.
    while function.calls.try_recv().is_ok() {}
    hang.store(false, Ordering::SeqCst);

    let (_child, _admin) = start_node(&dir, function.addr);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < accepted.len() {
        let e = function.event().await;
        seen.insert(e["id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, accepted);
}

/// What an HTTP receiver saw: method, path with query, headers, body.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    headers: hyper::HeaderMap,
    body: String,
}

type Answerer = Arc<dyn Fn(&Call) -> (u16, String) + Send + Sync>;

/// An HTTP receiver run by the test: every call goes to the channel, and
/// `answer` chooses the response.
async fn receiver(answer: Answerer) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Call>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (tx, answer) = (tx.clone(), answer.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (tx, answer) = (tx.clone(), answer.clone());
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().to_string();
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let call = Call {
                                method,
                                path,
                                headers,
                                body: String::from_utf8_lossy(&body).into(),
                            };
                            let (status, text) = answer(&call);
                            let _ = tx.send(call);
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

async fn next_call(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Call>) -> Call {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the receiver was called in time")
        .unwrap()
}

#[tokio::test]
async fn api_destinations_call_http_with_the_connections_auth() {
    let answer: Answerer = Arc::new(|c: &Call| {
        if c.path == "/token" {
            return (
                200,
                r#"{"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600}"#.into(),
            );
        }
        // Orders from the "bad" region are refused (4xx: not retried);
        // "flaky" fails once (5xx: retried).
        if c.body.contains("\"bad\"") {
            return (400, "{}".into());
        }
        (200, "{}".into())
    });
    let (recv, mut calls) = receiver(answer).await;
    let (_server, admin, _function) = server(ok_policy()).await;
    let dlq = temp_dir("bus-api-dlq").join("dead.jsonl");

    let oauth = events_ok(admin, "CreateConnection", json!({"Name": "oauth", "AuthorizationType": "OAUTH_CLIENT_CREDENTIALS",
        "AuthParameters": {"OAuthParameters": {"ClientParameters": {"ClientID": "me", "ClientSecret": "s3cret"},
            "AuthorizationEndpoint": format!("http://{recv}/token"), "HttpMethod": "POST"}}})).await;
    let described = events_ok(admin, "DescribeConnection", json!({"Name": "oauth"})).await;
    assert!(!described.to_string().contains("s3cret"), "{described}");
    let dest = events_ok(admin, "CreateApiDestination", json!({"Name": "orders", "ConnectionArn": oauth["ConnectionArn"],
        "InvocationEndpoint": format!("http://{recv}/orders/*"), "HttpMethod": "POST", "InvocationRateLimitPerSecond": 50})).await;
    events_ok(
        admin,
        "PutRule",
        json!({"Name": "r", "EventPattern": r#"{"source": ["shop"]}"#}),
    )
    .await;
    let r = events_ok(admin, "PutTargets", json!({"Rule": "r", "Targets": [{"Id": "http", "Arn": dest["ApiDestinationArn"],
        "HttpParameters": {"PathParameterValues": ["$.detail.region"], "HeaderParameters": {"x-team": "shop"}, "QueryStringParameters": {"v": "1"}},
        "InputTransformer": {"InputPathsMap": {"id": "$.detail.id", "region": "$.detail.region"}, "InputTemplate": r#"{"order": "<id>", "region": "<region>"}"#},
        "DeadLetterConfig": {"Arn": format!("file://{}", dlq.display())}}]})).await;
    assert_eq!(r["FailedEntryCount"], 0, "{r}");

    put(admin, json!([order("o-1", 1)])).await;
    let token = next_call(&mut calls).await;
    assert_eq!(token.path, "/token");
    assert_eq!(token.body, "grant_type=client_credentials");
    assert_eq!(token.headers["authorization"], "Basic bWU6czNjcmV0"); // me:s3cret
    let call = next_call(&mut calls).await;
    assert_eq!(
        call.path, "/orders/eu?v=1",
        "the path parameter came from the event"
    );
    assert_eq!(call.method, "POST");
    assert_eq!(call.headers["authorization"], "Bearer tok-1");
    assert_eq!(call.headers["x-team"], "shop");
    assert_eq!(
        serde_json::from_str::<Value>(&call.body).unwrap(),
        json!({"order": "o-1", "region": "eu"})
    );

    // A 4xx answer is not retried: straight to the dead-letter file.
    let bad = json!({"Source": "shop", "DetailType": "Order Placed", "Detail": json!({"id": "o-2", "region": "bad"}).to_string()});
    put(admin, json!([bad])).await;
    let call = next_call(&mut calls).await;
    assert!(call.body.contains("o-2"));
    let record: Value = serde_json::from_str(&wait_for_line(&dlq).await).unwrap();
    assert_eq!(record["event"]["detail"]["id"], "o-2");
    assert_eq!(record["attempts"], 1);
    assert!(
        calls.try_recv().is_err(),
        "a refused call is not tried again"
    );
}

#[tokio::test]
async fn api_key_and_basic_connections() {
    let answer: Answerer = Arc::new(|_| (200, "{}".into()));
    let (recv, mut calls) = receiver(answer).await;
    let (_server, admin, _function) = server(ok_policy()).await;
    let key = events_ok(admin, "CreateConnection", json!({"Name": "key", "AuthorizationType": "API_KEY",
        "AuthParameters": {"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k-1"}}})).await;
    let basic = events_ok(
        admin,
        "CreateConnection",
        json!({"Name": "basic", "AuthorizationType": "BASIC",
        "AuthParameters": {"BasicAuthParameters": {"Username": "u", "Password": "p"}}}),
    )
    .await;
    let d1 = events_ok(
        admin,
        "CreateApiDestination",
        json!({"Name": "d1", "ConnectionArn": key["ConnectionArn"],
        "InvocationEndpoint": format!("http://{recv}/key"), "HttpMethod": "PUT"}),
    )
    .await;
    let d2 = events_ok(
        admin,
        "CreateApiDestination",
        json!({"Name": "d2", "ConnectionArn": basic["ConnectionArn"],
        "InvocationEndpoint": format!("http://{recv}/basic"), "HttpMethod": "POST"}),
    )
    .await;
    rule(
        admin,
        "r",
        SHOP,
        json!([
        {"Id": "a", "Arn": d1["ApiDestinationArn"]}, {"Id": "b", "Arn": d2["ApiDestinationArn"]}]),
    )
    .await;
    let id = put(admin, json!([order("o-1", 1)])).await["Entries"][0]["EventId"].clone();
    let mut got = [next_call(&mut calls).await, next_call(&mut calls).await];
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        (got[0].path.as_str(), got[0].method.as_str()),
        ("/basic", "POST")
    );
    assert_eq!(got[0].headers["authorization"], "Basic dTpw"); // u:p
    assert_eq!(
        (got[1].path.as_str(), got[1].method.as_str()),
        ("/key", "PUT")
    );
    assert_eq!(got[1].headers["x-api-key"], "k-1");
    let event: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(
        event["id"], id,
        "without input settings the whole event is sent"
    );
    // A rotated key and a moved endpoint take effect on the next event.
    events_ok(
        admin,
        "UpdateConnection",
        json!({"Name": "key",
        "AuthParameters": {"ApiKeyAuthParameters": {"ApiKeyValue": "k-2"}}}),
    )
    .await;
    events_ok(
        admin,
        "UpdateApiDestination",
        json!({"Name": "d1", "InvocationEndpoint": format!("http://{recv}/key2")}),
    )
    .await;
    put(admin, json!([order("o-2", 2)])).await;
    let mut got = [next_call(&mut calls).await, next_call(&mut calls).await];
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(got[1].path, "/key2");
    assert_eq!(got[1].headers["x-api-key"], "k-2");
    // A connection in use is not deleted.
    let r = events(admin, "DeleteConnection", json!({"Name": "key"})).await;
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (400, Some("ValidationException")),
        "{}",
        r.raw
    );
    events_ok(admin, "DeleteApiDestination", json!({"Name": "d1"})).await;
    events_ok(admin, "DeleteConnection", json!({"Name": "key"})).await;
    let r = events(admin, "DescribeConnection", json!({"Name": "key"})).await;
    assert_eq!(r.body["__type"], "ResourceNotFoundException");
}

#[tokio::test]
async fn jsonata_transforms_and_its_errors_dead_letter() {
    let (_server, admin, mut function) = server(ok_policy()).await;
    let dlq = temp_dir("bus-jsonata").join("dead.jsonl");
    events_ok(
        admin,
        "PutRule",
        json!({"Name": "r", "EventPattern": r#"{"source": ["shop"]}"#}),
    )
    .await;
    let template = r#"{% {"order": $id, "cents": $number(detail.amount) * 100, "big": detail.amount > 100, "rule": $rule} %}"#;
    events_ok(
        admin,
        "PutTargets",
        json!({"Rule": "r", "Targets": [{"Id": "fn", "Arn": FUNCTION,
        "InputTransformer": {"InputPathsMap": {"id": "$.detail.id"}, "InputTemplate": template},
        "DeadLetterConfig": {"Arn": format!("file://{}", dlq.display())}}]}),
    )
    .await;
    put(admin, json!([order("o-1", 150)])).await;
    assert_eq!(
        function.event().await,
        json!({"order": "o-1", "cents": 15000, "big": true, "rule": "r"})
    );
    // An amount that is not a number fails $number: dead-lettered at once.
    let bad = json!({"Source": "shop", "DetailType": "Order Placed", "Detail": r#"{"id": "o-2", "amount": "lots"}"#});
    put(admin, json!([bad])).await;
    let record: Value = serde_json::from_str(&wait_for_line(&dlq).await).unwrap();
    assert_eq!(record["event"]["detail"]["id"], "o-2");
    assert_eq!(record["attempts"], 1);
    assert!(
        record["errorMessage"].as_str().unwrap().contains("JSONata"),
        "{record}"
    );
    // A template that does not parse is refused at PutTargets.
    let r = events(
        admin,
        "PutTargets",
        json!({"Rule": "r", "Targets": [{"Id": "x", "Arn": FUNCTION,
        "InputTransformer": {"InputTemplate": "{% detail.( %}"}}]}),
    )
    .await;
    assert_eq!(r.body["__type"], "ValidationException", "{}", r.raw);
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Poll an admin read until `done` holds for its answer (bounded).
async fn until(admin: SocketAddr, op: &str, body: Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = events_ok(admin, op, body.clone()).await;
        if done(&r) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{op} never got there: {r}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn archives_replay_a_time_range_to_the_chosen_rules() {
    let (_server, admin, mut function) = server(ok_policy()).await;
    let bus = "arn:aws:events:eu-west-1:123456789012:event-bus/default";
    let archive = events_ok(
        admin,
        "CreateArchive",
        json!({"ArchiveName": "shop", "EventSourceArn": bus,
        "EventPattern": r#"{"source": ["shop"]}"#, "RetentionDays": 7}),
    )
    .await;
    rule(admin, "r", SHOP, json!([{"Id": "fn", "Arn": FUNCTION}])).await;
    rule(
        admin,
        "r2",
        SHOP,
        json!([{"Id": "fn", "Arn": FUNCTION, "Input": r#"{"from": "r2"}"#}]),
    )
    .await;

    let start = now_secs();
    put(admin, json!([order("a", 1), order("b", 2)])).await;
    let end = now_secs();
    put(
        admin,
        json!([
            order("c", 3),
            json!({"Source": "other", "DetailType": "x", "Detail": "{}"})
        ]),
    )
    .await;
    // Live: a, b, c, each through both rules.
    for _ in 0..6 {
        function.event().await;
    }
    until(
        admin,
        "DescribeArchive",
        json!({"ArchiveName": "shop"}),
        |a| a["EventCount"] == 3,
    )
    .await;

    let r = events_ok(admin, "StartReplay", json!({"ReplayName": "again", "EventSourceArn": archive["ArchiveArn"],
        "EventStartTime": start, "EventEndTime": end,
        "Destination": {"Arn": bus, "FilterArns": ["arn:aws:events:eu-west-1:123456789012:rule/r"]}})).await;
    assert_eq!(r["State"], "STARTING");
    let mut replayed = vec![function.event().await, function.event().await];
    replayed.sort_by_key(|e| e["detail"]["id"].as_str().unwrap().to_string());
    assert_eq!(replayed[0]["detail"]["id"], "a");
    assert_eq!(replayed[1]["detail"]["id"], "b");
    for e in &replayed {
        assert_eq!(e["replay-name"], "again", "{e}");
    }
    let done = until(
        admin,
        "DescribeReplay",
        json!({"ReplayName": "again"}),
        |r| r["State"] == "COMPLETED",
    )
    .await;
    assert!(done["ReplayEndTime"].is_number(), "{done}");
    // Nothing else: not c (outside the range), not through r2 (filtered).
    assert!(function.calls.try_recv().is_err());
    // Replayed events were not archived again.
    let a = events_ok(admin, "DescribeArchive", json!({"ArchiveName": "shop"})).await;
    assert_eq!(a["EventCount"], 3);
    // AWS's refusals.
    let r = events(
        admin,
        "StartReplay",
        json!({"ReplayName": "again", "EventSourceArn": archive["ArchiveArn"],
        "EventStartTime": start, "EventEndTime": end, "Destination": {"Arn": bus}}),
    )
    .await;
    assert_eq!(
        r.body["__type"], "ResourceAlreadyExistsException",
        "{}",
        r.raw
    );
    let r = events(
        admin,
        "StartReplay",
        json!({"ReplayName": "x", "EventSourceArn": archive["ArchiveArn"],
        "EventStartTime": end, "EventEndTime": start, "Destination": {"Arn": bus}}),
    )
    .await;
    assert_eq!(r.body["__type"], "ValidationException", "{}", r.raw);
    let r = events(admin, "CancelReplay", json!({"ReplayName": "again"})).await;
    assert_eq!(r.body["__type"], "IllegalStatusException", "{}", r.raw);
    events_ok(admin, "DeleteArchive", json!({"ArchiveName": "shop"})).await;
    let r = events(admin, "DescribeArchive", json!({"ArchiveName": "shop"})).await;
    assert_eq!(r.body["__type"], "ResourceNotFoundException");
}

#[tokio::test]
async fn a_nats_subject_receives_the_event() {
    use futures_util::StreamExt;
    let (_server, admin, _function) = server(ok_policy()).await;
    let subject = format!("herald.bus.{}", uuid::Uuid::new_v4().simple());
    let client = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let mut sub = client.subscribe(subject.clone()).await.unwrap();
    client.flush().await.unwrap();
    let arn = format!("arn:aws:nats:eu-west-1:123456789012:subject/{subject}");
    rule(
        admin,
        "n",
        SHOP,
        json!([{"Id": "nats", "Arn": arn, "InputPath": "$.detail"}]),
    )
    .await;
    put(admin, json!([order("o-1", 7)])).await;
    let msg = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("the subject got the event in time")
        .unwrap();
    let v: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(v, json!({"id": "o-1", "amount": 7, "region": "eu"}));
    // A subject no [[event_sources]] entry reaches fails alone.
    let r = events_ok(
        admin,
        "PutTargets",
        json!({"Rule": "n", "Targets": [{"Id": "x",
        "Arn": "arn:aws:nats:us-west-2:999999999999:subject/x"}]}),
    )
    .await;
    assert_eq!(r["FailedEntryCount"], 1, "{r}");
}

#[tokio::test]
async fn rules_declared_in_the_file_route_and_the_api_leaves_them_alone() {
    let mut function = fn_server(ok_policy()).await;
    let toml = format!(
        r#"{}
        [[event_buses]]
        name = "orders"
        [[event_rules]]
        name = "big"
        event_bus_name = "orders"
        event_pattern = '{{"detail": {{"amount": [{{"numeric": [">", 100]}}]}}}}'
        [[event_rules.targets]]
        id = "fn"
        arn = "{FUNCTION}"
        input_transformer = {{ input_paths_map = {{ order_id = "$.detail.id" }}, input_template = '{{"big": "<order_id>"}}' }}
        "#,
        config(function.addr)
    );
    let server = start_with_toml(&toml).await;
    let admin = server.running.as_ref().unwrap().admin_addr.unwrap();
    let r = events_ok(
        admin,
        "PutEvents",
        json!({"Entries": [
            {"Source": "shop", "DetailType": "o", "Detail": r#"{"id": "small", "amount": 5}"#, "EventBusName": "orders"},
            {"Source": "shop", "DetailType": "o", "Detail": r#"{"id": "o-9", "amount": 500}"#, "EventBusName": "orders"}
        ]}),
    )
    .await;
    assert_eq!(r["FailedEntryCount"], 0, "{r}");
    assert_eq!(function.event().await, json!({"big": "o-9"}));
    let d = events_ok(
        admin,
        "DescribeRule",
        json!({"Name": "big", "EventBusName": "orders"}),
    )
    .await;
    assert_eq!(d["ManagedBy"], "herald.config", "{d}");
    for (op, body) in [
        (
            "PutTargets",
            json!({"Rule": "big", "EventBusName": "orders", "Targets": [{"Id": "x", "Arn": FUNCTION}]}),
        ),
        (
            "RemoveTargets",
            json!({"Rule": "big", "EventBusName": "orders", "Ids": ["fn"]}),
        ),
        (
            "DisableRule",
            json!({"Name": "big", "EventBusName": "orders"}),
        ),
        (
            "DeleteRule",
            json!({"Name": "big", "EventBusName": "orders", "Force": true}),
        ),
        (
            "PutRule",
            json!({"Name": "big", "EventBusName": "orders", "EventPattern": SHOP}),
        ),
    ] {
        let r = events(admin, op, body).await;
        assert_eq!(r.body["__type"], "ManagedRuleException", "{op}: {}", r.raw);
    }
    let r = events(admin, "DeleteEventBus", json!({"Name": "orders"})).await;
    assert_eq!(r.body["__type"], "ValidationException", "{}", r.raw);
    // Rules made through the API sit beside the file's.
    rule(admin, "api", SHOP, json!([{"Id": "fn", "Arn": FUNCTION}])).await;
    let l = events_ok(admin, "ListRules", json!({})).await;
    assert_eq!(l["Rules"].as_array().unwrap().len(), 1, "{l}");
}
