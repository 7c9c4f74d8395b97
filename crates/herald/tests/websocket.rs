//! The WebSocket protocol at `/event/realtime`, driven by a raw tokio-tungstenite
//! client through every frame type and error path.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use herald::config::ApiConfig;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn handshake_ack_and_keepalive() {
    let mut config = ApiConfig::for_tests(KEY);
    config.limits.keepalive_interval = Duration::from_millis(200);
    let server = TestServer::with_config(config).await;
    let mut c = server.ws().await;
    assert_eq!(
        c.protocol.as_deref(),
        Some("aws-appsync-event-ws"),
        "only the protocol name is echoed"
    );
    let ack = c.init().await;
    assert_eq!(ack["connectionTimeoutMs"], 300000);
    assert_eq!(ack["payload"]["connectionTimeoutMs"], 300000);
    // A ka right after the ack, then one per interval.
    for _ in 0..3 {
        assert_eq!(c.recv_any().await.unwrap(), json!({"type": "ka"}));
    }
}

#[tokio::test]
async fn upgrade_header_auth_without_init() {
    // The Swift SDK's way: credentials as upgrade headers, no connection_init.
    let server = TestServer::start().await;
    let mut c = WsClient::connect(server.addr, Auth::UpgradeHeaders(KEY)).await;
    assert_eq!(c.protocol.as_deref(), Some("aws-appsync-event-ws"));
    c.subscribe("s", "default/x").await;
    server
        .post(json!({"channel": "/default/x", "events": ["{\"n\":1}"]}))
        .await;
    assert_eq!(c.data("s").await, json!({"n": 1}));
}

#[tokio::test]
async fn bad_connect_auth_gets_connection_error_not_http_refusal() {
    let server = TestServer::start().await;
    for auth in [
        Auth::Subprotocol("da2-wrong00000000000000000000"),
        Auth::None,
    ] {
        let mut c = WsClient::connect(server.addr, auth).await; // the upgrade succeeds
        c.send(json!({"type": "connection_init"})).await;
        let (close, frames) = c.recv_until_close().await;
        assert_eq!(frames.len(), 1, "{frames:?}");
        let e = &frames[0];
        assert_eq!(e["type"], "connection_error");
        assert_eq!(e["errors"][0]["errorType"], "UnauthorizedException");
        assert_eq!(e["errors"][0]["errorCode"], 401);
        assert_eq!(
            e["errors"][0]["message"],
            "You are not authorized to make this call."
        );
        assert_eq!(close.unwrap().code, CloseCode::Policy);
    }
    // Whatever the first frame is, the answer is the same.
    let mut c = WsClient::connect(
        server.addr,
        Auth::Subprotocol("da2-wrong00000000000000000000"),
    )
    .await;
    c.send(json!({"type": "subscribe", "id": "s", "channel": "/default/a"}))
        .await;
    let (_, frames) = c.recv_until_close().await;
    assert_eq!(frames[0]["type"], "connection_error");
}

#[tokio::test]
async fn subscribe_publish_unsubscribe() {
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("exact", "/default/chat").await;
    c.subscribe("marker", "/default/marker").await;

    // WebSocket publish, batch of 3: publish_success lists them; 3 data frames.
    c.send(
        json!({"type": "publish", "id": "p1", "channel": "default/chat",
                  "events": ["{\"i\":0}", "{\"i\":1}", "{\"i\":2}"],
                  "authorization": {"x-api-key": KEY}}),
    )
    .await;
    let mut saw_success = false;
    let mut got = Vec::new();
    while got.len() < 3 || !saw_success {
        let f = c.recv().await;
        match f["type"].as_str().unwrap() {
            "publish_success" => {
                assert_eq!(f["id"], "p1");
                assert_eq!(f["failed"], json!([]));
                assert_eq!(f["successful"].as_array().unwrap().len(), 3);
                assert_eq!(f["successful"][2]["index"], 2);
                saw_success = true;
            }
            "data" => {
                assert_eq!(f["id"], "exact");
                got.push(
                    serde_json::from_str::<serde_json::Value>(f["event"].as_str().unwrap())
                        .unwrap(),
                );
            }
            other => panic!("unexpected {other}: {f}"),
        }
    }
    assert_eq!(got, vec![json!({"i":0}), json!({"i":1}), json!({"i":2})]);

    c.send(json!({"type": "unsubscribe", "id": "exact"})).await;
    assert_eq!(
        c.recv().await,
        json!({"type": "unsubscribe_success", "id": "exact"})
    );
    c.send(json!({"type": "unsubscribe", "id": "exact"})).await;
    let e = c.recv().await;
    assert_ws_error(
        &e,
        "unsubscribe_error",
        Some("exact"),
        "UnknownOperationError",
        "Unknown operation id exact",
    );

    // After unsubscribing, nothing arrives for it: the marker comes first.
    server
        .post(json!({"channel": "/default/chat", "events": ["\"gone\""]}))
        .await;
    server
        .post(json!({"channel": "/default/marker", "events": ["\"m\""]}))
        .await;
    assert_eq!(c.data("marker").await, json!("m"));

    // The id can be reused after unsubscribe.
    c.subscribe("exact", "/default/chat").await;
}

#[tokio::test]
async fn wildcards_match_any_depth_and_nothing_else() {
    let mut config = ApiConfig::for_tests(KEY);
    config.namespaces.push(herald::config::NamespaceConfig {
        name: "other".into(),
        publish_auth_modes: vec![herald::config::AuthType::ApiKey],
        subscribe_auth_modes: vec![herald::config::AuthType::ApiKey],
        code_handlers: None,
        direct_on_publish: None,
        direct_on_subscribe: None,
        handler_configs: None,
        history: None,
    });
    let server = TestServer::with_config(config).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("all", "/default/*").await;
    c.subscribe("a", "/default/a/*").await;
    c.subscribe("exact", "/default/a").await;

    for ch in ["/other/a", "/default", "/default/ab/c"] {
        server
            .post(json!({"channel": ch, "events": [json!(ch).to_string()]}))
            .await;
    }
    // `/default` reaches no wildcard; `/default/ab/c` reaches only `all`; `/other/a` none.
    assert_eq!(c.data("all").await, json!("/default/ab/c"));
    server
        .post(json!({"channel": "/default/a/b/c/d", "events": ["\"deep\""]}))
        .await;
    let mut seen = vec![];
    for _ in 0..2 {
        let f = c.recv().await;
        seen.push(f["id"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["a", "all"]);
    server
        .post(json!({"channel": "/default/a", "events": ["\"a\""]}))
        .await;
    let mut seen = vec![];
    for _ in 0..2 {
        let f = c.recv().await;
        seen.push(f["id"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["all", "exact"]);
}

#[tokio::test]
async fn subscribe_errors() {
    let mut config = ApiConfig::for_tests(KEY);
    config.limits.max_subscriptions_per_connection = 3;
    let server = TestServer::with_config(config).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("one", "/default/1").await;

    let cases = [
        (
            json!({"type": "subscribe", "id": "one", "channel": "/default/2"}),
            "DuplicatedOperationError",
            "already in use",
        ),
        (
            json!({"type": "subscribe", "id": "x1", "channel": "/default/*/b"}),
            "BadRequestException",
            "last segment",
        ),
        (
            json!({"type": "subscribe", "id": "x2", "channel": "/*"}),
            "BadRequestException",
            "must follow the namespace",
        ),
        (
            json!({"type": "subscribe", "id": "x3", "channel": "/nope/a"}),
            "BadRequestException",
            "namespace 'nope' does not exist",
        ),
        (
            json!({"type": "subscribe", "id": "x4", "channel": "/default/a_b"}),
            "BadRequestException",
            "Invalid channel",
        ),
        (
            json!({"type": "subscribe", "id": "x5", "channel": "/default/a", "authorization": {"x-api-key": "da2-nope"}}),
            "UnauthorizedException",
            "not authorized",
        ),
        (
            json!({"type": "subscribe", "id": "bad id!", "channel": "/default/a"}),
            "BadRequestException",
            "'id' must match",
        ),
        (
            json!({"type": "subscribe", "id": "x6"}),
            "BadRequestException",
            "no 'channel'",
        ),
    ];
    for (frame, ty, part) in cases {
        let id = frame["id"].as_str().map(str::to_string);
        c.send(frame).await;
        let e = c.recv().await;
        assert_ws_error(&e, "subscribe_error", id.as_deref(), ty, part);
    }
    // A subscribe without an id cannot be correlated: it still gets subscribe_error, without id.
    c.send(json!({"type": "subscribe", "channel": "/default/a"}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        None,
        "BadRequestException",
        "no 'id'",
    );

    c.subscribe("two", "/default/2").await;
    c.subscribe("three", "/default/3").await;
    c.send(json!({"type": "subscribe", "id": "four", "channel": "/default/4"}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("four"),
        "MaxSubscriptionsReachedError",
        "at most 3",
    );
}

#[tokio::test]
async fn message_level_errors_keep_the_connection() {
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;
    c.send_raw(Message::text("{not json")).await;
    assert_ws_error(
        &c.recv().await,
        "error",
        None,
        "BadRequestException",
        "not valid JSON",
    );
    c.send(json!({"type": "frobnicate", "id": "f1"})).await;
    assert_ws_error(
        &c.recv().await,
        "error",
        Some("f1"),
        "UnsupportedOperation",
        "Unknown message type 'frobnicate'",
    );
    c.send(json!({"id": "f2"})).await;
    assert_ws_error(
        &c.recv().await,
        "error",
        Some("f2"),
        "BadRequestException",
        "no 'type'",
    );
    c.send_raw(Message::binary(b"{\"type\":\"connection_init\"}".to_vec()))
        .await;
    assert_ws_error(
        &c.recv().await,
        "error",
        None,
        "UnsupportedOperation",
        "Binary frames",
    );
    c.send_raw(Message::Ping(b"hi".to_vec().into())).await;
    // Still serving.
    c.subscribe("s", "/default/ok").await;
}

#[tokio::test]
async fn publish_errors() {
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;
    let auth = json!({"x-api-key": KEY});
    let cases = [
        (
            json!({"type": "publish", "id": "p1", "channel": "/default/*", "events": ["1"], "authorization": auth}),
            "BadRequestException",
            "wildcard",
        ),
        (
            json!({"type": "publish", "id": "p2", "channel": "/default/a", "events": ["1","2","3","4","5","6"], "authorization": auth}),
            "BadRequestException",
            "at most 5",
        ),
        (
            json!({"type": "publish", "id": "p3", "channel": "/default/a", "events": ["{x"], "authorization": auth}),
            "BadRequestException",
            "not valid JSON",
        ),
        (
            json!({"type": "publish", "id": "p4", "channel": "/default/a", "events": [1], "authorization": auth}),
            "BadRequestException",
            "must be a string",
        ),
        (
            json!({"type": "publish", "id": "p5", "channel": "/default/a", "events": ["1"], "authorization": {"x-api-key": "da2-no"}}),
            "UnauthorizedException",
            "not authorized",
        ),
        (
            json!({"type": "publish", "id": "p6", "channel": "/nope/a", "events": ["1"], "authorization": auth}),
            "BadRequestException",
            "does not exist",
        ),
        (
            json!({"type": "publish", "id": "p7", "channel": "/default/a", "authorization": auth}),
            "BadRequestException",
            "'events' is required",
        ),
    ];
    for (frame, ty, part) in cases {
        let id = frame["id"].as_str().unwrap().to_string();
        c.send(frame).await;
        assert_ws_error(&c.recv().await, "publish_error", Some(&id), ty, part);
    }
    let big = format!("\"{}\"", "x".repeat(240 * 1024));
    c.send(json!({"type": "publish", "id": "p8", "channel": "/default/a", "events": [big], "authorization": auth})).await;
    assert_ws_error(
        &c.recv().await,
        "publish_error",
        Some("p8"),
        "PayloadTooLargeException",
        "per event",
    );
}

#[tokio::test]
async fn message_without_authorization_uses_connection_credentials() {
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;
    c.send(json!({"type": "subscribe", "id": "s", "channel": "/default/a"}))
        .await;
    assert_eq!(c.recv().await["type"], "subscribe_success");
    c.send(json!({"type": "publish", "id": "p", "channel": "/default/a", "events": ["7"]}))
        .await;
    let mut types = vec![];
    for _ in 0..2 {
        types.push(c.recv().await["type"].as_str().unwrap().to_string());
    }
    types.sort();
    assert_eq!(types, ["data", "publish_success"]);
}

#[tokio::test]
async fn publish_rate_limit_per_connection() {
    let mut config = ApiConfig::for_tests(KEY);
    config.limits.max_publish_per_second_per_connection = 3;
    let server = TestServer::with_config(config).await;
    let mut c = server.ws().await;
    c.init().await;
    // Send 10 at once: the bucket holds 3, and refills far slower than this loop.
    for i in 0..10 {
        c.send(json!({"type": "publish", "id": format!("p{i}"), "channel": "/default/a", "events": ["1"]})).await;
    }
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..10 {
        let f = c.recv().await;
        match f["type"].as_str().unwrap() {
            "publish_success" => ok += 1,
            "publish_error" => {
                assert_eq!(f["errors"][0]["errorType"], "TooManyRequestsException");
                assert_eq!(f["errors"][0]["errorCode"], 429);
                limited += 1;
            }
            other => panic!("{other}"),
        }
    }
    assert!(ok >= 3, "the burst is allowed ({ok})");
    assert!(limited >= 1, "some publishes are limited ({limited})");
    assert_eq!(ok + limited, 10);
}

#[tokio::test]
async fn oversize_frame_closes_with_1009_and_others_are_unaffected() {
    let server = TestServer::start().await;
    let mut other = server.ws().await;
    other.init().await;
    other.subscribe("s", "/default/a").await;

    let mut c = server.ws().await;
    c.init().await;
    let huge = "x".repeat(3 * 1024 * 1024);
    c.send_raw(Message::text(huge)).await;
    let (close, _) = c.recv_until_close().await;
    assert_eq!(close.unwrap().code, CloseCode::Size);

    server
        .post(json!({"channel": "/default/a", "events": ["1"]}))
        .await;
    assert_eq!(other.data("s").await, json!(1));
}

#[tokio::test]
async fn subscribe_success_means_live() {
    // Publish from another connection the moment the ack arrives; it must arrive.
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;
    for i in 0..50 {
        let ch = format!("/default/live{i}");
        c.subscribe(&format!("s{i}"), &ch).await;
        server
            .post(json!({"channel": ch, "events": [i.to_string()]}))
            .await;
        assert_eq!(c.data(&format!("s{i}")).await, json!(i));
    }
}

#[tokio::test]
async fn per_publisher_order_is_kept() {
    let server = TestServer::start().await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut c = server.ws().await;
        c.init().await;
        c.subscribe("s", "/default/*").await;
        subs.push(c);
    }
    // Two publishers interleaving on one channel; each one's events stay in order.
    let a = server.addr;
    let publisher = |name: &'static str| async move {
        for i in 0..40 {
            let events: Vec<String> = (0..(i % 5 + 1))
                .map(|j| json!({"p": name, "n": i * 10 + j}).to_string())
                .collect();
            let r = http_post(
                a,
                json!({"channel": "/default/ordered", "events": events})
                    .to_string()
                    .into_bytes(),
                &[("x-api-key", KEY)],
            )
            .await;
            assert_eq!(r.status, 200);
        }
    };
    tokio::join!(publisher("a"), publisher("b"));
    let total: usize = (0..40).map(|i| i % 5 + 1).sum::<usize>() * 2;
    for c in &mut subs {
        let mut last = std::collections::HashMap::new();
        for _ in 0..total {
            let e = c.data("s").await;
            let p = e["p"].as_str().unwrap().to_string();
            let n = e["n"].as_i64().unwrap();
            if let Some(prev) = last.insert(p, n) {
                assert!(n > prev, "out of order: {n} after {prev}");
            }
        }
    }
}

#[tokio::test]
async fn slow_consumer_is_closed_and_publisher_and_others_unaffected() {
    let mut config = ApiConfig::for_tests(KEY);
    config.outbound_queue_bytes = 1 << 20;
    let server = TestServer::with_config(config).await;
    let mut slow = server.ws().await;
    slow.init().await;
    slow.subscribe("s", "/default/firehose").await;
    let mut healthy = server.ws().await;
    healthy.init().await;
    healthy.subscribe("h", "/default/firehose").await;

    // ~40 MB towards a client that reads nothing: more than socket buffers and
    // the 1 MiB queue hold. Every publish still succeeds at once. The healthy
    // subscriber reads concurrently and gets every event in order.
    let event = json!({"pad": "p".repeat(200_000)}).to_string();
    let n = 200;
    let reader = async {
        for i in 0..n {
            let e = healthy.data("h").await;
            assert_eq!(e["pad"].as_str().unwrap().len(), 200_000, "event {i}");
        }
    };
    let addr = server.addr;
    let ev = event.clone();
    let publisher = async move {
        for _ in 0..n {
            let r = http_post(
                addr,
                json!({"channel": "/default/firehose", "events": [ev]})
                    .to_string()
                    .into_bytes(),
                &[("x-api-key", KEY)],
            )
            .await;
            assert_eq!(r.status, 200);
        }
    };
    tokio::join!(reader, publisher);

    // The slow client finds some events, then a 1008 close: never a silent gap.
    let (close, frames) = slow.recv_until_close().await;
    let close = close.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(close.reason.contains("Slow consumer"), "{}", close.reason);
    assert!(
        frames.len() < n,
        "the slow consumer did not get everything ({})",
        frames.len()
    );
    assert!(frames.iter().all(|f| f["type"] == "data"));
}

#[tokio::test]
async fn connection_lifetime_cap_closes() {
    let mut config = ApiConfig::for_tests(KEY);
    config.limits.max_connection_duration = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let mut c = server.ws().await;
    c.init().await;
    let (close, _) = c.recv_until_close().await;
    let close = close.unwrap();
    assert_eq!(close.code, CloseCode::Normal);
    assert!(close.reason.contains("lifetime"));
}

#[tokio::test]
async fn graceful_shutdown_sends_going_away() {
    let mut server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("s", "/default/a").await;
    let addr = server.addr;
    server.shutdown().await;
    let (close, _) = c.recv_until_close().await;
    assert_eq!(close.unwrap().code, CloseCode::Away);
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Herald frames WebSocket traffic itself: the parts of RFC 6455 that clients
/// use beyond single text frames.
#[tokio::test]
async fn framing_pings_fragments_and_close_handshake() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    c.init().await;

    // A ping is answered with a pong carrying the same payload.
    c.send_raw(Message::Ping(b"are you there".to_vec().into()))
        .await;
    let pong = loop {
        match tokio::time::timeout(WAIT, c.ws.next()).await.unwrap() {
            Some(Ok(Message::Pong(p))) => break p,
            Some(Ok(_)) => {}
            other => panic!("no pong: {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"are you there");

    // A subscribe split over three fragments with a ping between them.
    let text = json!({"type": "subscribe", "id": "frag", "channel": "/default/f",
                      "authorization": {"x-api-key": KEY, "host": server.host()}})
    .to_string();
    let (a, rest) = text.split_at(10);
    let (b, z) = rest.split_at(20);
    let frame = |s: &str, op, fin| Message::Frame(Frame::message(s.as_bytes().to_vec(), op, fin));
    c.send_raw(frame(a, OpCode::Data(Data::Text), false)).await;
    c.send_raw(Message::Ping(b"".to_vec().into())).await;
    c.send_raw(frame(b, OpCode::Data(Data::Continue), false))
        .await;
    c.send_raw(frame(z, OpCode::Data(Data::Continue), true))
        .await;
    let ok = c.recv().await;
    assert_eq!(ok, json!({"type": "subscribe_success", "id": "frag"}));

    // The client's close is answered with its own code.
    c.ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Library(4000),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let (close, _) = c.recv_until_close().await;
    assert_eq!(close.unwrap().code, CloseCode::Library(4000));
}

#[tokio::test]
async fn framing_errors_close_with_their_codes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let server = TestServer::start().await;

    // Invalid UTF-8 in a text frame: 1007.
    let mut c = server.ws().await;
    c.init().await;
    c.send_raw(Message::Frame(Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    let (close, _) = c.recv_until_close().await;
    assert_eq!(close.unwrap().code, CloseCode::Invalid);

    // An unmasked client frame (raw socket: client libraries always mask): 1002,
    // as the first bytes of the server's close frame.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let upgrade = format!(
        "GET /event/realtime HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: aws-appsync-event-ws, {}\r\n\r\n",
        server.host(),
        auth_header_subprotocol(&server.host(), KEY)
    );
    tcp.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tcp.write_all(b"\x81\x02hi").await.unwrap();
    let mut reply = [0u8; 4];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([reply[2], reply[3]]), 1002);

    // Others are unaffected.
    let mut other = server.ws().await;
    other.init().await;
    other.subscribe("s", "/default/still").await;
}
