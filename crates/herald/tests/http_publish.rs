//! `POST /event` over a real HTTP/1.1 client: success, delivery, and every error path.

mod common;

use common::*;
use herald::config::{ApiConfig, ApiKey};
use serde_json::json;

#[tokio::test]
async fn publish_succeeds_and_reaches_subscribers() {
    let server = TestServer::start().await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s1", "/default/room").await;

    // Leading slash optional; any JSON value is an event.
    let r = server
        .post(json!({"channel": "default/room", "events": ["{\"a\":1}", "\"text\"", "42"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers.contains_key("x-amzn-requestid"));
    assert_eq!(r.body["failed"], json!([]));
    let ok = r.body["successful"].as_array().unwrap();
    assert_eq!(ok.len(), 3);
    let mut ids = std::collections::HashSet::new();
    for (i, entry) in ok.iter().enumerate() {
        assert_eq!(entry["index"], i);
        let id = entry["identifier"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        ids.insert(id.to_string());
    }
    assert_eq!(ids.len(), 3, "identifiers are unique");

    // One data frame per event, in order, each `event` a JSON string.
    assert_eq!(sub.data("s1").await, json!({"a": 1}));
    assert_eq!(sub.data("s1").await, json!("text"));
    assert_eq!(sub.data("s1").await, json!(42));
}

#[tokio::test]
async fn auth_failures_are_401_with_fixed_message() {
    let mut config = ApiConfig::for_tests(KEY);
    config.api_keys.push(ApiKey {
        id: "da2-expired000000000000000000".into(),
        description: None,
        expires: Some(1_000_000),
    });
    let server = TestServer::with_config(config).await;
    let body = json!({"channel": "/default/a", "events": ["1"]})
        .to_string()
        .into_bytes();
    for headers in [
        vec![],
        vec![("x-api-key", "da2-wrong00000000000000000000")],
        vec![("x-api-key", "da2-expired000000000000000000")],
        vec![("authorization", "some-token")],
    ] {
        let r = http_post(server.addr, body.clone(), &headers).await;
        assert_http_error(
            &r,
            401,
            "UnauthorizedException",
            "You are not authorized to make this call.",
        );
        assert_eq!(
            r.body["message"],
            "You are not authorized to make this call."
        );
    }
    // Header names are case-insensitive, as Amplify sends X-Api-Key.
    let r = http_post(server.addr, body, &[("X-Api-Key", KEY)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

#[tokio::test]
async fn bad_requests_are_400_and_deliver_nothing() {
    let server = TestServer::start().await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("all", "/default/*").await;

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (b"[1,2]".to_vec(), "must be a JSON object"),
        (json!({"events": ["1"]}).to_string().into(), "no 'channel'"),
        (
            json!({"channel": 5, "events": ["1"]}).to_string().into(),
            "'channel' must be a string",
        ),
        (
            json!({"channel": "/default/a b", "events": ["1"]})
                .to_string()
                .into(),
            "Invalid channel",
        ),
        (
            json!({"channel": "/default/a/b/c/d/e", "events": ["1"]})
                .to_string()
                .into(),
            "more than 5 segments",
        ),
        (
            json!({"channel": "/default/*", "events": ["1"]})
                .to_string()
                .into(),
            "wildcard",
        ),
        (
            json!({"channel": "/nope/a", "events": ["1"]})
                .to_string()
                .into(),
            "namespace 'nope' does not exist",
        ),
        (
            json!({"channel": "/default/a"}).to_string().into(),
            "'events' is required",
        ),
        (
            json!({"channel": "/default/a", "events": []})
                .to_string()
                .into(),
            "empty",
        ),
        (
            json!({"channel": "/default/a", "events": ["1","2","3","4","5","6"]})
                .to_string()
                .into(),
            "at most 5 events",
        ),
        (
            json!({"channel": "/default/a", "events": [{"a": 1}]})
                .to_string()
                .into(),
            "events[0] must be a string",
        ),
        (
            json!({"channel": "/default/a", "events": ["1", "{oops"]})
                .to_string()
                .into(),
            "events[1] is not valid JSON",
        ),
    ];
    for (body, part) in cases {
        let r = http_post(server.addr, body, &[("x-api-key", KEY)]).await;
        assert_http_error(&r, 400, "BadRequestException", part);
    }

    // Oversize event: refused whole with 413, not dropped silently.
    let big = format!("\"{}\"", "x".repeat(240 * 1024));
    let r = server
        .post(json!({"channel": "/default/a", "events": ["1", big]}))
        .await;
    assert_http_error(
        &r,
        413,
        "PayloadTooLargeException",
        "events[1] is 245762 bytes",
    );

    // Request total over 1.2 MiB (each event within its own limit).
    let part = format!("\"{}\"", "y".repeat(240 * 1024 - 2));
    let r = server
        .post(json!({"channel": "/default/a", "events": [part.clone(), part.clone(), part.clone(), part.clone(), part.clone(), part]}))
        .await;
    assert_http_error(&r, 400, "BadRequestException", "at most 5 events");

    // A body over the transport cap is refused before it is parsed.
    let huge = vec![b' '; 3 * 1024 * 1024];
    let r = http_post(server.addr, huge, &[("x-api-key", KEY)]).await;
    assert_http_error(&r, 413, "PayloadTooLargeException", "larger than");

    // Nothing of the refused requests was delivered: the next frame is this marker.
    server
        .post(json!({"channel": "/default/marker", "events": ["\"marker\""]}))
        .await;
    assert_eq!(sub.data("all").await, json!("marker"));
}

#[tokio::test]
async fn request_total_limit() {
    let mut config = ApiConfig::for_tests(KEY);
    config.limits.max_request_bytes = 1000;
    let server = TestServer::with_config(config).await;
    let ev = format!("\"{}\"", "z".repeat(598));
    let r = server
        .post(json!({"channel": "/default/a", "events": [ev.clone(), ev]}))
        .await;
    assert_http_error(
        &r,
        413,
        "PayloadTooLargeException",
        "total 1200 bytes; the limit is 1000",
    );
}

#[tokio::test]
async fn cors_methods_and_routes() {
    let server = TestServer::start().await;
    let r = http_request(
        server.addr,
        "OPTIONS",
        "/event",
        vec![],
        &[
            ("origin", "http://example.com"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let allowed = r.headers["access-control-allow-headers"].to_str().unwrap();
    for h in [
        "x-api-key",
        "authorization",
        "content-type",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-user-agent",
    ] {
        assert!(allowed.contains(h), "{h} missing from {allowed}");
    }
    assert!(r.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));

    let r = http_request(server.addr, "GET", "/event", vec![], &[]).await;
    assert_http_error(&r, 405, "BadRequestException", "POST");
    assert_eq!(r.headers["allow"], "POST, OPTIONS");

    let r = http_request(server.addr, "GET", "/nowhere", vec![], &[]).await;
    assert_eq!(r.status, 404);

    let r = http_request(server.addr, "GET", "/event/realtime", vec![], &[]).await;
    assert_http_error(&r, 426, "BadRequestException", "WebSocket endpoint");

    // Successful responses carry CORS too.
    let r = server
        .post(json!({"channel": "/default/a", "events": ["1"]}))
        .await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert!(r.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-amzn-ErrorType"));
}
