//! Operations: `/metrics` (exact counter movements, valid Prometheus text),
//! `/health`, `/ready`, and the console's routes.

mod common;

use common::*;
use herald::config::ApiConfig;
use serde_json::json;
use std::collections::HashMap;

/// Parse Prometheus text format 0.0.4 strictly enough to catch malformed output:
/// every sample belongs to a family declared by `# TYPE`, names and labels are
/// well formed, values are numbers. Returns `series -> value`.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().expect("a metric name");
            assert!(valid_name(name), "bad name in {line:?}");
            match kind {
                "TYPE" => {
                    let t = parts.next().expect("a type");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad type in {line:?}"
                    );
                    types.insert(name.to_string(), t.to_string());
                }
                "HELP" => {}
                other => panic!("unknown comment {other} in {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad name in {line:?}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "bad labels in {line:?}"
                );
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(valid_name(k), "bad label name in {line:?}");
                    assert!(!v.contains('\n'));
                }
            }
        }
        // Every sample belongs to a family declared by `# TYPE`.
        types
            .keys()
            .find(|t| {
                name == t.as_str()
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(t.as_str()))
            })
            .unwrap_or_else(|| panic!("sample without # TYPE: {line:?}"));
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let r = http_request(server.addr, "GET", "/metrics", vec![], &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    parse_prometheus(&r.raw)
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_by_exactly_the_workload() {
    let server = TestServer::start().await;
    let before = scrape(&server).await;
    // Drop reasons exist before anything happened.
    for reason in ["slow_consumer", "size", "auth", "handler"] {
        assert_eq!(
            before.get(&format!(
                "herald_events_dropped_total{{reason=\"{reason}\"}}"
            )),
            Some(&0.0)
        );
    }

    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("all", "/default/*").await;
    c.send(json!({"type": "subscribe", "id": "bad", "channel": "/nope/x"}))
        .await;
    assert_eq!(c.recv().await["type"], "subscribe_error");

    let r = server
        .post(json!({"channel": "/default/a", "events": ["1", "2"]}))
        .await;
    assert_eq!(r.status, 200);
    c.data("all").await;
    c.data("all").await;

    c.send(json!({"type": "publish", "id": "p", "channel": "/default/b", "events": ["3"]}))
        .await;
    let mut types = vec![
        c.recv().await["type"].clone(),
        c.recv().await["type"].clone(),
    ];
    types.sort_by_key(|t| t.to_string());
    assert_eq!(types, [json!("data"), json!("publish_success")]);

    let r = http_post(
        server.addr,
        json!({"channel": "/default/a", "events": ["1", "2", "3"]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", "da2-wrong")],
    )
    .await;
    assert_eq!(r.status, 401);
    let big = format!("\"{}\"", "x".repeat(250_000));
    let r = server
        .post(json!({"channel": "/default/a", "events": [big]}))
        .await;
    assert_eq!(r.status, 413);

    let after = scrape(&server).await;
    let delta = |s: &str| get(&after, s) - get(&before, s);
    let expect = [
        ("herald_websocket_connections", 1.0),
        ("herald_websocket_connections_opened_total", 1.0),
        ("herald_subscriptions", 1.0),
        ("herald_subscribe_requests_total{namespace=\"default\",result=\"ok\"}", 1.0),
        ("herald_subscribe_requests_total{namespace=\"_invalid\",result=\"BadRequestException\"}", 1.0),
        ("herald_publish_requests_total{transport=\"http\",namespace=\"default\",result=\"ok\"}", 1.0),
        ("herald_publish_requests_total{transport=\"websocket\",namespace=\"default\",result=\"ok\"}", 1.0),
        ("herald_publish_requests_total{transport=\"http\",namespace=\"default\",result=\"UnauthorizedException\"}", 1.0),
        ("herald_publish_requests_total{transport=\"http\",namespace=\"default\",result=\"PayloadTooLargeException\"}", 1.0),
        ("herald_events_in_total{transport=\"http\",namespace=\"default\"}", 2.0),
        ("herald_events_in_total{transport=\"websocket\",namespace=\"default\"}", 1.0),
        ("herald_events_delivered_total{namespace=\"default\"}", 3.0),
        ("herald_events_dropped_total{reason=\"auth\"}", 3.0),
        ("herald_events_dropped_total{reason=\"size\"}", 1.0),
        ("herald_events_dropped_total{reason=\"slow_consumer\"}", 0.0),
        ("herald_auth_requests_total{mode=\"API_KEY\",operation=\"EVENT_CONNECT\",result=\"allowed\"}", 1.0),
        ("herald_auth_requests_total{mode=\"API_KEY\",operation=\"EVENT_SUBSCRIBE\",result=\"allowed\"}", 1.0),
        // The HTTP publishes that passed auth plus the WebSocket one (which used
        // the connection's credentials); the oversize one passed auth too.
        ("herald_auth_requests_total{mode=\"API_KEY\",operation=\"EVENT_PUBLISH\",result=\"allowed\"}", 3.0),
        ("herald_auth_requests_total{mode=\"API_KEY\",operation=\"EVENT_PUBLISH\",result=\"denied\"}", 1.0),
    ];
    for (series, want) in expect {
        assert_eq!(delta(series), want, "{series}");
    }
    // Every data frame written was timed: at least one observation per write.
    assert!(delta("herald_publish_to_send_seconds_count") >= 1.0);
    assert!(after
        .keys()
        .any(|k| k.starts_with("herald_publish_to_send_seconds_bucket{le=")));

    // Closing the socket moves the gauges back and counts the reason.
    c.ws.close(None).await.unwrap();
    let mut closed = HashMap::new();
    for _ in 0..250 {
        closed = scrape(&server).await;
        if get(&closed, "herald_websocket_connections") == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(get(&closed, "herald_websocket_connections"), 0.0);
    assert_eq!(get(&closed, "herald_subscriptions"), 0.0);
    assert_eq!(
        get(
            &closed,
            "herald_websocket_connections_closed_total{reason=\"client_closed\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn health_and_ready() {
    let server = TestServer::start().await;
    let r = http_request(server.addr, "GET", "/health", vec![], &[]).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"status": "ok"})));
    let r = http_request(server.addr, "GET", "/ready", vec![], &[]).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, json!({"status": "ready", "engine": "memory"}))
    );
}

#[tokio::test]
async fn console_only_when_enabled_and_stats_need_a_key() {
    let off = TestServer::start().await;
    assert_eq!(
        http_request(off.addr, "GET", "/console", vec![], &[])
            .await
            .status,
        404
    );

    let mut config = ApiConfig::for_tests(KEY);
    config.console = true;
    let on = TestServer::with_config(config).await;
    let page = http_request(on.addr, "GET", "/console", vec![], &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.raw.contains("Herald console"));
    assert!(!page.raw.contains(KEY), "the page never carries a key");
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    for asset in ["/console/console.js", "/console/console.css"] {
        let r = http_request(on.addr, "GET", asset, vec![], &[]).await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(!r.raw.contains(KEY));
    }
    let r = http_request(on.addr, "GET", "/console/api/stats", vec![], &[]).await;
    assert_eq!(r.status, 401);
    let r = http_request(
        on.addr,
        "GET",
        "/console/api/stats",
        vec![],
        &[("x-api-key", "da2-wrong")],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = http_request(
        on.addr,
        "GET",
        "/console/api/stats",
        vec![],
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["engine"], "memory");
    assert_eq!(r.body["namespaces"], json!(["default"]));
    assert_eq!(r.body["connections"], 0);
    on.post(json!({"channel": "/default/a", "events": ["1", "2"]}))
        .await;
    let r = http_request(
        on.addr,
        "GET",
        "/console/api/stats",
        vec![],
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(r.body["eventsIn"], 2);
    assert_eq!(r.body["publishRequests"], 1);
}
