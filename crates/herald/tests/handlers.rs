//! Namespace handlers in JavaScript: AWS's documented examples (filter,
//! transform, enrich with util.time, reject, per-event errors), end to end over
//! HTTP and WebSocket, and handlers that loop, throw, exhaust memory or do not
//! load.

mod common;

use common::*;
use serde_json::{json, Value};

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

async fn server_with(code: &str, extra: &str) -> TestServer {
    start_with_toml(&format!(
        "[[api_keys]]\nid = \"{KEY}\"\n[[channel_namespaces]]\nname = \"default\"\n[[channel_namespaces]]\nname = \"h\"\ncode_handlers = {}\n{extra}",
        toml_string(code)
    ))
    .await
}

#[tokio::test]
async fn filtering_example() {
    // AWS docs: "Filtering events" (odd numbers only).
    let server = server_with(
        "export function onPublish(ctx) {\n  return ctx.events.filter((event) => event.payload.odds > 0)\n}",
        "",
    )
    .await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/h/*").await;
    let r = publish(
        &server,
        "/h/numbers",
        &[json!({"odds": 1}), json!({"odds": 0}), json!({"odds": 3})],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // Every event was accepted; the handler chose what to broadcast.
    assert_eq!(r.body["successful"].as_array().unwrap().len(), 3);
    assert_eq!(sub.data("s").await, json!({"odds": 1}));
    assert_eq!(sub.data("s").await, json!({"odds": 3}));
    // Other namespaces are untouched.
    sub.subscribe("d", "/default/x").await;
    publish(&server, "/default/x", &[json!({"odds": 0})]).await;
    assert_eq!(sub.data("d").await, json!({"odds": 0}));
}

#[tokio::test]
async fn transforming_and_enriching_with_util() {
    let code = r#"
import { util } from '@aws-appsync/utils'
export function onPublish(ctx) {
  return ctx.events.map((event) => ({
    id: event.id,
    payload: {
      ...event.payload,
      message: event.payload.message.toUpperCase(),
      time: util.time.nowISO8601(),
      channel: ctx.info.channel.path,
      segments: ctx.info.channel.segments,
      namespace: ctx.info.channelNamespace.name,
      operation: ctx.info.operation,
      top: [ctx.channel, ctx.operation],
      ids: [util.autoId().length, util.autoUlid().length],
      b64: util.base64Encode('hé'),
      back: util.base64Decode(util.base64Encode('hé')),
      url: util.urlEncode('a b&c'),
      identity: ctx.identity,
      hasHeaders: typeof ctx.request.headers === 'object',
    },
  }))
}
"#;
    let server = server_with(code, "").await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/h/chat").await;
    let r = publish(&server, "/h/chat", &[json!({"message": "hello"})]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let e = sub.data("s").await;
    assert_eq!(e["message"], "HELLO");
    let time = e["time"].as_str().unwrap();
    assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    assert_eq!(e["channel"], "/h/chat");
    assert_eq!(e["segments"], json!(["h", "chat"]));
    assert_eq!(e["namespace"], "h");
    assert_eq!(e["operation"], "PUBLISH");
    assert_eq!(e["top"], json!(["/h/chat", "PUBLISH"]));
    assert_eq!(e["ids"], json!([36, 26]));
    assert_eq!(e["b64"], "aMOp");
    assert_eq!(e["back"], "hé");
    assert_eq!(e["url"], "a%20b%26c");
    assert_eq!(e["identity"], Value::Null, "API key identity is null");
    assert_eq!(e["hasHeaders"], true);

    // The same over a WebSocket publish.
    sub.send(json!({"type": "publish", "id": "p", "channel": "/h/chat", "events": [json!({"message": "ws"}).to_string()]})).await;
    let mut got = None;
    for _ in 0..2 {
        let f = sub.recv().await;
        if f["type"] == "data" {
            got = Some(serde_json::from_str::<Value>(f["event"].as_str().unwrap()).unwrap());
        }
    }
    assert_eq!(got.unwrap()["message"], "WS");
}

#[tokio::test]
async fn per_event_errors_and_nothing_broadcast() {
    let code = r#"
export function onPublish(ctx) {
  if (ctx.events.some((e) => e.payload.drop)) return null
  if (ctx.events.some((e) => e.payload.none)) return []
  return ctx.events.map((e) => e.payload.bad ? { id: e.id, error: 'bad event: ' + e.payload.bad } : e)
}
"#;
    let server = server_with(code, "").await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/h/*").await;
    let r = publish(
        &server,
        "/h/x",
        &[json!({"n": 1}), json!({"bad": "no"}), json!({"n": 3})],
    )
    .await;
    assert_eq!(r.status, 200);
    let failed = r.body["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["index"], 1);
    assert_eq!(failed[0]["errorMessage"], "bad event: no");
    assert!(failed[0]["identifier"].is_string());
    let ok: Vec<i64> = r.body["successful"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["index"].as_i64().unwrap())
        .collect();
    assert_eq!(ok, [0, 2]);
    assert_eq!(sub.data("s").await, json!({"n": 1}));
    assert_eq!(sub.data("s").await, json!({"n": 3}));

    for stop in [json!({"drop": true}), json!({"none": true})] {
        let r = publish(&server, "/h/x", &[stop]).await;
        assert_eq!(r.status, 200);
    }
    publish(&server, "/h/x", &[json!({"n": "marker"})]).await;
    assert_eq!(
        sub.data("s").await,
        json!({"n": "marker"}),
        "null and [] broadcast nothing"
    );
}

#[tokio::test]
async fn rejecting_with_util_error_and_unauthorized() {
    let code = r#"
import { util } from '@aws-appsync/utils'
export function onPublish(ctx) {
  if (ctx.info.channel.segments.includes('private')) util.unauthorized()
  if (ctx.events.length > 2) util.error('Too many events at once')
  return ctx.events
}
export function onSubscribe(ctx) {
  if (ctx.info.channel.segments.includes('private')) util.unauthorized()
  if (ctx.info.channel.path === '/h/closed') util.error('This channel is closed')
  console.log('subscribe to', ctx.info.channel.path)
}
"#;
    let server = server_with(code, "").await;
    let r = publish(&server, "/h/private/x", &[json!(1)]).await;
    assert_http_error(&r, 401, "UnauthorizedException", "You are not authorized");
    let r = publish(&server, "/h/open", &[json!(1), json!(2), json!(3)]).await;
    assert_http_error(&r, 403, "ForbiddenException", "Too many events at once");

    let mut c = server.ws().await;
    c.init().await;
    c.send(json!({"type": "subscribe", "id": "a", "channel": "/h/private/*"}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("a"),
        "Unauthorized",
        "not authorized",
    );
    c.send(json!({"type": "subscribe", "id": "b", "channel": "/h/closed"}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("b"),
        "ForbiddenException",
        "This channel is closed",
    );
    c.send(json!({"type": "publish", "id": "p", "channel": "/h/private/x", "events": ["1"]}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "publish_error",
        Some("p"),
        "UnauthorizedException",
        "not authorized",
    );
    c.send(json!({"type": "publish", "id": "q", "channel": "/h/open", "events": ["1", "2", "3"]}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "publish_error",
        Some("q"),
        "ForbiddenException",
        "Too many events",
    );
    // The connection survives rejections and still subscribes.
    c.subscribe("ok", "/h/open").await;
}

#[tokio::test]
async fn invalid_results_are_errors() {
    let code = r#"
export function onPublish(ctx) {
  const p = ctx.events[0].payload
  if (p === 'unknown') return [{ id: 'nope', payload: 1 }]
  if (p === 'twice') return [ctx.events[0], ctx.events[0]]
  if (p === 'object') return { not: 'an array' }
  if (p === 'nopayload') return [{ id: ctx.events[0].id }]
  return ctx.events
}
"#;
    let server = server_with(code, "").await;
    for (p, part) in [
        ("unknown", "unknown event id"),
        ("twice", "returned twice"),
        ("object", "expected an array"),
        ("nopayload", "no payload"),
    ] {
        let r = publish(&server, "/h/x", &[json!(p)]).await;
        assert_http_error(&r, 500, "InternalFailureException", part);
    }
}

#[tokio::test]
async fn loops_throws_and_memory_fail_that_request_only() {
    let code = r#"
export function onPublish(ctx) {
  const p = ctx.events[0].payload
  if (p === 'loop') { while (true) {} }
  if (p === 'throw') throw new Error('boom')
  if (p === 'oom') { const a = []; while (true) a.push(new Array(100000).fill(1)) }
  return ctx.events
}
"#;
    let server = server_with(
        code,
        "[handlers]\ntimeout_ms = 300\nmemory_limit_mb = 16\nworkers = 1\n",
    )
    .await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/h/x").await;
    let r = publish(&server, "/h/x", &[json!("loop")]).await;
    assert_http_error(&r, 500, "InternalFailureException", "longer than 300 ms");
    let r = publish(&server, "/h/x", &[json!("throw")]).await;
    assert_http_error(&r, 500, "InternalFailureException", "Error: boom");
    let r = publish(&server, "/h/x", &[json!("oom")]).await;
    assert_http_error(
        &r,
        500,
        "InternalFailureException",
        "The onPublish handler failed",
    );
    // The same worker serves the next request normally.
    let r = publish(&server, "/h/x", &[json!("fine")]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(sub.data("s").await, json!("fine"));

    let metrics = http_request(server.addr, "GET", "/metrics", vec![], &[])
        .await
        .raw;
    assert!(metrics.contains(r#"herald_handler_invocations_total{namespace="h",handler="onPublish",result="failure"} 3"#), "{metrics}");
    assert!(metrics.contains(
        r#"herald_handler_invocations_total{namespace="h",handler="onPublish",result="ok"} 1"#
    ));
}

#[tokio::test]
async fn code_that_does_not_load_is_refused_at_startup() {
    for (code, part) in [
        (
            "export function onPublish(ctx) { return ctx.events",
            "SyntaxError",
        ),
        ("export const x = 1", "neither onPublish nor onSubscribe"),
        (
            "throw new Error('init failed'); export function onPublish(c) { return c.events }",
            "init failed",
        ),
        (
            "import { nope } from 'fs'; export function onPublish(c) { return c.events }",
            "fs",
        ),
    ] {
        let file = herald::config::ConfigFile::parse(&format!(
            "[[channel_namespaces]]\nname = \"h\"\ncode_handlers = {}",
            toml_string(code)
        ))
        .unwrap();
        let config = herald::config::ApiConfig::resolve(
            file,
            herald::config::Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        let err = herald::server::Server::bind(config)
            .await
            .err()
            .expect("refused");
        assert!(err.contains("namespace 'h'") && err.contains(part), "{err}");
    }
    let long = format!(
        "export function onPublish(c) {{ return c.events }} //{}",
        "x".repeat(33_000)
    );
    let file = herald::config::ConfigFile::parse(&format!(
        "[[channel_namespaces]]\nname = \"h\"\ncode_handlers = {}",
        toml_string(&long)
    ))
    .unwrap();
    let config = herald::config::ApiConfig::resolve(
        file,
        herald::config::Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    let err = herald::server::Server::bind(config)
        .await
        .err()
        .expect("refused");
    assert!(err.contains("longer than 32768"), "{err}");
}

/// A Lambda-style function for DIRECT handlers: uppercases `message`, fails
/// events with `bad`, rejects subscriptions to `/d/closed`, and can be slow.
async fn direct_function() -> TinyServer {
    TinyServer::start(|r| {
        let ctx: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let path = ctx["info"]["channel"]["path"].as_str().unwrap_or_default().to_string();
        if path.ends_with("/slow") {
            return Answer { status: 200, body: "null".into(), delay: std::time::Duration::from_secs(3) };
        }
        if path.ends_with("/broken") {
            return Answer { status: 500, body: "{}".into(), delay: Default::default() };
        }
        if path.ends_with("/garbage") {
            return Answer { status: 200, body: "<html>".into(), delay: Default::default() };
        }
        match ctx["info"]["operation"].as_str() {
            Some("SUBSCRIBE") if path == "/d/closed" => Answer::json(json!({"error": "closed for now"})),
            Some("SUBSCRIBE") => Answer { status: 200, body: "null".into(), delay: Default::default() },
            _ => {
                let events: Vec<Value> = ctx["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| match e["payload"].get("bad") {
                        Some(_) => json!({"id": e["id"], "error": "bad"}),
                        None => json!({"id": e["id"], "payload": {"message": e["payload"]["message"].as_str().unwrap_or_default().to_uppercase()}}),
                    })
                    .collect();
                Answer::json(json!({"events": events, "error": null}))
            }
        }
    })
    .await
}

fn direct_config(function: &TinyServer, invoke_type: &str) -> String {
    format!(
        r#"
[[api_keys]]
id = "{KEY}"
[[data_sources]]
name = "fn"
type = "AWS_LAMBDA"
endpoint = "{}"
timeout_ms = 500
[[channel_namespaces]]
name = "d"
handler_configs = {{ on_publish = {{ behavior = "DIRECT", integration = {{ data_source_name = "fn", lambda_config = {{ invoke_type = "{invoke_type}" }} }} }}, on_subscribe = {{ behavior = "DIRECT", integration = {{ data_source_name = "fn" }} }} }}
"#,
        function.url("/invoke")
    )
}

#[tokio::test]
async fn direct_handlers_request_response() {
    let function = direct_function().await;
    let server = start_with_toml(&direct_config(&function, "REQUEST_RESPONSE")).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("s", "/d/room").await;
    let r = publish(
        &server,
        "/d/room",
        &[json!({"message": "hi"}), json!({"bad": 1})],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["failed"][0]["index"], 1);
    assert_eq!(c.data("s").await, json!({"message": "HI"}));

    // The payload follows AppSync's direct Lambda shape.
    let seen: Value = serde_json::from_slice(&function.requests().last().unwrap().body).unwrap();
    for key in [
        "identity",
        "result",
        "request",
        "info",
        "error",
        "prev",
        "stash",
        "outErrors",
        "events",
    ] {
        assert!(seen.get(key).is_some(), "payload has {key}: {seen}");
    }
    assert_eq!(seen["info"]["operation"], "PUBLISH");
    assert_eq!(seen["info"]["channelNamespace"]["name"], "d");

    c.send(json!({"type": "subscribe", "id": "x", "channel": "/d/closed"}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("x"),
        "ForbiddenException",
        "closed for now",
    );
    let r = publish(&server, "/d/broken", &[json!(1)]).await;
    assert_http_error(&r, 403, "ForbiddenException", "rejected the request");
    let r = publish(&server, "/d/slow", &[json!(1)]).await;
    assert_http_error(&r, 500, "InternalFailureException", "unreachable");
    let r = publish(&server, "/d/garbage", &[json!(1)]).await;
    assert_http_error(&r, 500, "InternalFailureException", "invalid JSON");
}

#[tokio::test]
async fn direct_handlers_event_mode_fire_and_forget() {
    let function = direct_function().await;
    let server = start_with_toml(&direct_config(&function, "EVENT")).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("s", "/d/room").await;
    // Broadcast as published (not transformed): EVENT ignores the answer.
    let r = publish(&server, "/d/room", &[json!({"message": "as is"})]).await;
    assert_eq!(r.status, 200);
    assert_eq!(c.data("s").await, json!({"message": "as is"}));
    // Even a slow function does not hold the publisher.
    let r = publish(&server, "/d/slow", &[json!(1)]).await;
    assert_eq!(r.status, 200);
}
