//! Channel history and recovery (Herald's extension): `data` frames of a
//! namespace with history carry `channel`, `offset` and `epoch`; a
//! `subscribe` with `since` gets what it missed, then live events, with no
//! gap and nothing twice; positions that cannot be recovered say
//! `recovered: false`; `GET /event/history` pages a channel's events.

mod common;

use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
[[api_keys]]
id = "da2-testkey0000000000000000000"
[[channel_namespaces]]
name = "h"
history = { size = 2000, ttl_secs = 600 }
[[channel_namespaces]]
name = "small"
history = { size = 10, ttl_secs = 600 }
[[channel_namespaces]]
name = "plain"
"#;

async fn subscribe_since(c: &mut WsClient, id: &str, channel: &str, since: Option<Value>) -> Value {
    let mut msg = json!({"type": "subscribe", "id": id, "channel": channel,
                         "authorization": {"x-api-key": KEY}});
    if let Some(s) = since {
        msg["since"] = s;
    }
    c.send(msg).await;
    let r = c.recv().await;
    assert_eq!(r["type"], "subscribe_success", "{r}");
    r
}

/// Publish `{"n": k}` for each k, five per request, in order.
async fn publish_numbers(server: &TestServer, channel: &str, ns: std::ops::Range<u64>) {
    let all: Vec<u64> = ns.collect();
    for chunk in all.chunks(5) {
        let events: Vec<String> = chunk.iter().map(|n| json!({"n": n}).to_string()).collect();
        let r = server
            .post(json!({"channel": channel, "events": events}))
            .await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }
}

/// The next data frame's (n, offset, epoch).
async fn next(c: &mut WsClient) -> (u64, u64, String) {
    let f = c.recv().await;
    assert_eq!(f["type"], "data", "{f}");
    let event: Value = serde_json::from_str(f["event"].as_str().unwrap()).unwrap();
    (
        event["n"].as_u64().unwrap(),
        f["offset"].as_u64().expect("data frames carry the offset"),
        f["epoch"].as_str().expect("and the epoch").to_string(),
    )
}

#[tokio::test]
async fn a_reconnecting_subscriber_gets_exactly_what_it_missed_then_live_events() {
    let server = start_with_toml(CONFIG).await;
    let mut c = server.ws().await;
    c.init().await;
    let ok = subscribe_since(&mut c, "s", "/h/room", None).await;
    assert_eq!(ok["offset"], 0, "{ok}");
    let epoch = ok["epoch"].as_str().unwrap().to_string();
    assert!(ok.get("recovered").is_none());
    publish_numbers(&server, "/h/room", 1..6).await;
    for k in 1..6 {
        let (n, offset, e) = next(&mut c).await;
        assert_eq!((n, offset, e.as_str()), (k, k, epoch.as_str()));
    }
    drop(c);

    // 1,000 events while away; then a publisher that keeps going while the
    // client comes back, so the switch from history to live is exercised.
    publish_numbers(&server, "/h/room", 6..1006).await;
    let publisher = {
        let addr = server.addr;
        tokio::spawn(async move {
            let server = TestServer {
                addr,
                running: None,
            };
            publish_numbers(&server, "/h/room", 1006..1206).await;
        })
    };
    let mut c = server.ws().await;
    c.init().await;
    let ok = subscribe_since(
        &mut c,
        "s",
        "/h/room",
        Some(json!({"offset": 5, "epoch": epoch})),
    )
    .await;
    assert_eq!(ok["recovered"], true, "{ok}");
    assert_eq!(ok["epoch"], epoch.as_str());
    for k in 6..1206 {
        let (n, offset, _) = next(&mut c).await;
        assert_eq!(
            (n, offset),
            (k, k),
            "every event once, in order, across the switch"
        );
    }
    publisher.await.unwrap();
    // Nothing after the last one: the next frame is a live publish.
    publish_numbers(&server, "/h/room", 1206..1207).await;
    assert_eq!(next(&mut c).await.0, 1206);
}

#[tokio::test]
async fn positions_that_cannot_be_recovered_say_so() {
    let server = start_with_toml(CONFIG).await;
    let mut c = server.ws().await;
    c.init().await;
    let ok = subscribe_since(&mut c, "s", "/small/a", None).await;
    let epoch = ok["epoch"].as_str().unwrap().to_string();
    drop(c);
    publish_numbers(&server, "/small/a", 1..21).await;
    let mut c = server.ws().await;
    c.init().await;
    // Kept: 11..20. From 5, events 6..10 are gone.
    let r = subscribe_since(
        &mut c,
        "old",
        "/small/a",
        Some(json!({"offset": 5, "epoch": epoch})),
    )
    .await;
    assert_eq!(
        (r["recovered"].as_bool(), r["offset"].as_u64()),
        (Some(false), Some(20)),
        "{r}"
    );
    // Another epoch (a restarted memory store, say).
    let r = subscribe_since(
        &mut c,
        "other",
        "/small/a",
        Some(json!({"offset": 15, "epoch": "0000"})),
    )
    .await;
    assert_eq!(r["recovered"], false, "{r}");
    // From 10 nothing is missing: 11..20 follow.
    let r = subscribe_since(
        &mut c,
        "fine",
        "/small/a",
        Some(json!({"offset": 10, "epoch": epoch})),
    )
    .await;
    assert_eq!(r["recovered"], true, "{r}");
    for k in 11..21 {
        let f = c.recv().await;
        assert_eq!(
            (f["id"].as_str(), f["offset"].as_u64()),
            (Some("fine"), Some(k)),
            "{f}"
        );
    }
    // The unrecovered subscriptions are live: one publish reaches all three.
    publish_numbers(&server, "/small/a", 21..22).await;
    let mut ids: Vec<String> = Vec::new();
    for _ in 0..3 {
        let f = c.recv().await;
        assert_eq!(f["offset"], 21, "{f}");
        ids.push(f["id"].as_str().unwrap().into());
    }
    ids.sort();
    assert_eq!(ids, ["fine", "old", "other"]);

    // A restart of the memory store: a new epoch, the old position does not recover.
    let mut server = server;
    server.shutdown().await;
    let server = start_with_toml(CONFIG).await;
    let mut c = server.ws().await;
    c.init().await;
    let r = subscribe_since(
        &mut c,
        "s",
        "/small/a",
        Some(json!({"offset": 21, "epoch": epoch})),
    )
    .await;
    assert_eq!(r["recovered"], false, "{r}");
    assert_ne!(r["epoch"], epoch.as_str());
    assert_eq!(r["offset"], 0);
}

#[tokio::test]
async fn wildcard_subscriptions_recover_per_channel() {
    let server = start_with_toml(CONFIG).await;
    publish_numbers(&server, "/h/a", 1..3).await;
    let mut c = server.ws().await;
    c.init().await;
    let ok = subscribe_since(&mut c, "w", "/h/*", None).await;
    assert_eq!(ok["channels"]["/h/a"]["offset"], 2, "{ok}");
    publish_numbers(&server, "/h/b", 1..2).await;
    let f = c.recv().await;
    assert_eq!(
        (f["channel"].as_str(), f["offset"].as_u64()),
        (Some("/h/b"), Some(1)),
        "{f}"
    );
    let mut since = json!({"channels": {
        "/h/a": ok["channels"]["/h/a"],
        "/h/b": {"offset": 1, "epoch": f["epoch"]},
    }});
    drop(c);
    // Away: two more on /h/a, one on /h/b, and a channel that did not exist.
    publish_numbers(&server, "/h/a", 3..5).await;
    publish_numbers(&server, "/h/b", 2..3).await;
    publish_numbers(&server, "/h/c/deep", 1..3).await;
    let mut c = server.ws().await;
    c.init().await;
    let ok = subscribe_since(&mut c, "w", "/h/*", Some(since.clone())).await;
    assert_eq!(ok["recovered"], true, "{ok}");
    let mut got: Vec<(String, u64, u64)> = Vec::new();
    for _ in 0..5 {
        let f = c.recv().await;
        let n = serde_json::from_str::<Value>(f["event"].as_str().unwrap()).unwrap()["n"]
            .as_u64()
            .unwrap();
        got.push((
            f["channel"].as_str().unwrap().into(),
            f["offset"].as_u64().unwrap(),
            n,
        ));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("/h/a".into(), 3, 3),
            ("/h/a".into(), 4, 4),
            ("/h/b".into(), 2, 2),
            ("/h/c/deep".into(), 1, 1),
            ("/h/c/deep".into(), 2, 2)
        ]
    );
    // A position in another epoch spoils that channel's recovery, and the whole.
    since["channels"]["/h/b"]["epoch"] = json!("elsewhere");
    let ok = subscribe_since(&mut c, "w2", "/h/*", Some(since)).await;
    assert_eq!(
        (
            ok["recovered"].as_bool(),
            ok["channels"]["/h/b"]["recovered"].as_bool()
        ),
        (Some(false), Some(false)),
        "{ok}"
    );
    assert_eq!(ok["channels"]["/h/a"]["recovered"], true);
    // A malformed `since` is the subscription's error.
    c.send(json!({"type": "subscribe", "id": "bad", "channel": "/h/*", "authorization": {"x-api-key": KEY},
                  "since": {"channels": {"/plain/x": {"offset": 1, "epoch": "e"}}}})).await;
    loop {
        let f = c.recv().await;
        if f["id"] == "bad" {
            assert_eq!(f["type"], "subscribe_error", "{f}");
            assert!(
                f["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("not under"),
                "{f}"
            );
            break;
        }
    }
}

#[tokio::test]
async fn namespaces_without_history_are_unchanged() {
    let server = start_with_toml(CONFIG).await;
    let mut c = server.ws().await;
    c.init().await;
    c.send(json!({"type": "subscribe", "id": "p", "channel": "/plain/a", "authorization": {"x-api-key": KEY}})).await;
    let ok = c.recv().await;
    assert_eq!(ok, json!({"type": "subscribe_success", "id": "p"}));
    let r = subscribe_since(
        &mut c,
        "q",
        "/plain/b",
        Some(json!({"offset": 1, "epoch": "e"})),
    )
    .await;
    assert_eq!(r["recovered"], false, "{r}");
    publish_numbers(&server, "/plain/a", 1..2).await;
    let f = c.recv().await;
    let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["type", "id", "event"], "AppSync's data frame: {f}");
}

#[tokio::test]
async fn history_pages_with_the_subscribe_authorization() {
    let server = start_with_toml(CONFIG).await;
    publish_numbers(&server, "/h/log", 1..8).await;
    let get = |query: String, key: &'static str| {
        let addr = server.addr;
        async move {
            http_request(
                addr,
                "GET",
                &format!("/event/history?{query}"),
                Vec::new(),
                &[("x-api-key", key)],
            )
            .await
        }
    };
    let r = get("channel=%2Fh%2Flog&limit=3".into(), KEY).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let offsets = |v: &Value| -> Vec<u64> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["offset"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(offsets(&r.body), [1, 2, 3]);
    assert_eq!(r.body["offset"], 7);
    assert_eq!(
        serde_json::from_str::<Value>(r.body["events"][0]["event"].as_str().unwrap()).unwrap(),
        json!({"n": 1})
    );
    let mut token = r.body["nextToken"].as_str().unwrap().to_string();
    let mut all = offsets(&r.body);
    loop {
        let r = get(format!("channel=/h/log&limit=3&nextToken={token}"), KEY).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        all.extend(offsets(&r.body));
        match r.body["nextToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(all, (1..8).collect::<Vec<_>>());
    let denied = get("channel=/h/log".into(), "da2-wrongkey00000000000000000000").await;
    assert_eq!(denied.status, 401, "{}", denied.raw);
    let plain = get("channel=/plain/a".into(), KEY).await;
    assert_http_error(&plain, 400, "BadRequestException", "keeps no history");
    let bad = get("channel=/h/log&limit=0".into(), KEY).await;
    assert_http_error(&bad, 400, "BadRequestException", "limit");
    let unknown = get("channel=/h/never".into(), KEY).await;
    assert_eq!(
        (
            unknown.status,
            unknown.body["events"].as_array().map(Vec::len)
        ),
        (200, Some(0))
    );
}

#[tokio::test]
async fn history_pages_over_websocket() {
    let server = start_with_toml(CONFIG).await;
    publish_numbers(&server, "/h/ws", 1..5).await;
    let mut c = server.ws().await;
    c.init().await;
    c.send(
        json!({"type": "history", "id": "h1", "channel": "/h/ws", "limit": 3,
                  "authorization": {"x-api-key": KEY}}),
    )
    .await;
    let r = c.recv().await;
    assert_eq!(
        (r["type"].as_str(), r["id"].as_str()),
        (Some("history_result"), Some("h1")),
        "{r}"
    );
    let offsets: Vec<u64> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2, 3]);
    c.send(
        json!({"type": "history", "id": "h2", "channel": "/h/ws", "nextToken": r["nextToken"],
                  "authorization": {"x-api-key": KEY}}),
    )
    .await;
    let r = c.recv().await;
    assert_eq!(r["events"][0]["offset"], 4, "{r}");
    assert!(r.get("nextToken").is_none(), "{r}");
    for (bad, says) in [
        (
            json!({"type": "history", "id": "e1", "channel": "/plain/a", "authorization": {"x-api-key": KEY}}),
            "keeps no history",
        ),
        (
            json!({"type": "history", "id": "e2", "channel": "/h/ws", "limit": 0, "authorization": {"x-api-key": KEY}}),
            "limit",
        ),
        (
            json!({"type": "history", "id": "e3", "channel": "/h/ws", "authorization": {"x-api-key": "da2-wrong0000000000000000000000"}}),
            "not authorized",
        ),
    ] {
        c.send(bad).await;
        let r = c.recv().await;
        assert_eq!(r["type"], "history_error", "{r}");
        let m = r["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(m.contains(says), "{r}");
    }
}
