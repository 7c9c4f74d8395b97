//! Fault injection through the FIS API (signed as botocore signs): refused
//! on a server whose configuration does not enable it; Herald's own actions
//! measured by clients (closed WebSockets; publishes the engine never got,
//! counted). The Lambda actions are driven by botocore in tests/aws/test_fis.py.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;

const API_ID: &str = "faultapi000000000000000000";

async fn server(enabled: bool) -> (TestServer, SocketAddr) {
    let section = if enabled {
        "[fault_injection]\nenabled = true"
    } else {
        ""
    };
    server_with(section).await
}

/// The test server with `fault_injection` as its `[fault_injection]` TOML.
async fn server_with(fault_injection: &str) -> (TestServer, SocketAddr) {
    let server = start_with_toml(&format!(
        r#"
        api_id = "{API_ID}"
        {}
        [[channel_namespaces]]
        name = "default"
        [[channel_namespaces]]
        name = "handled"
        code_handlers = "export function onPublish(ctx) {{ return ctx.events }}"
        [server]
        metrics = true
        {}
        "#,
        admin_toml(),
        fault_injection
    ))
    .await;
    let admin = server.running.as_ref().unwrap().admin_addr.unwrap();
    (server, admin)
}

fn api_template(action_id: &str, parameters: Value) -> Value {
    json!({
        "clientToken": "t", "description": action_id, "roleArn": "arn:aws:iam::123456789012:role/fis",
        "stopConditions": [{"source": "none"}],
        "targets": {"Apis": {"resourceType": "herald:appsync:api", "selectionMode": "ALL",
                             "resourceArns": [format!("arn:aws:appsync:eu-west-1:123456789012:apis/{API_ID}")]}},
        "actions": {"act": {"actionId": action_id, "parameters": parameters, "targets": {"Apis": "Apis"}}},
    })
}

async fn start_experiment(admin: SocketAddr, template: Value) -> String {
    let r = post(admin, "/experimentTemplates", &template).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let id = r.body["experimentTemplate"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        admin,
        "/experiments",
        &json!({"clientToken": "s", "experimentTemplateId": id}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["experiment"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn fault_injection_is_refused_unless_the_configuration_enables_it() {
    let (_server, admin) = server(false).await;
    let r = post(
        admin,
        "/experimentTemplates",
        &api_template("herald:appsync:close-connections", json!({})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(error_type(&r), "ValidationException");
    assert!(
        r.raw.contains("[fault_injection] enabled = true"),
        "{}",
        r.raw
    );
    assert_eq!(get(admin, "/experiments").await.status, 400);
}

#[tokio::test]
async fn close_connections_closes_every_websocket_and_they_reconnect() {
    let (server, admin) = server(true).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut c = server.ws().await;
        c.init().await;
        c.subscribe(&format!("s{i}"), "/default/room").await;
        clients.push(c);
    }
    start_experiment(
        admin,
        api_template(
            "herald:appsync:close-connections",
            json!({"percentage": "100"}),
        ),
    )
    .await;
    for mut c in clients {
        let (close, _) = c.recv_until_close().await;
        let close = close.expect("a close frame");
        assert_eq!(u16::from(close.code), 1001);
        assert_eq!(
            close.reason.as_str(),
            "Closed by a fault injection experiment"
        );
    }
    // A new connection is served as before.
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("again", "/default/room").await;
    let r = publish(&server, "/default/room", &[json!({"n": 1})]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(c.data("again").await, json!({"n": 1}));
}

/// On one node the engine's traffic goes nowhere visible, so the drop is
/// counted: every publish during the experiment is acted on, and this
/// node's own subscribers still receive them (the loss is the other
/// nodes'). `StopExperiment` ends it.
#[tokio::test]
async fn engine_drops_are_counted_and_end_when_stopped() {
    let (server, admin) = server(true).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("s", "/default/room").await;
    let id = start_experiment(
        admin,
        api_template(
            "herald:engine:drop-messages",
            json!({"duration": "PT5M", "percentage": "100"}),
        ),
    )
    .await;
    for n in 0..3 {
        let r = publish(&server, "/default/room", &[json!({"n": n})]).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(c.data("s").await, json!({"n": n}));
    }
    let metrics = http_request(server.addr, "GET", "/metrics", vec![], &[]).await;
    assert!(
        metrics
            .raw
            .contains("herald_fault_injections_total{action=\"herald:engine:drop-messages\"} 3"),
        "{}",
        metrics.raw
    );
    let r = delete(admin, &format!("/experiments/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
}

fn namespace_template(action_id: &str, parameters: Value) -> Value {
    json!({
        "clientToken": "t", "description": action_id, "roleArn": "arn:aws:iam::123456789012:role/fis",
        "stopConditions": [{"source": "none"}],
        "targets": {"Handled": {"resourceType": "herald:appsync:channel-namespace", "selectionMode": "ALL",
            "resourceArns": [format!("arn:aws:appsync:eu-west-1:123456789012:apis/{API_ID}/channelNamespace/handled")]}},
        "actions": {"act": {"actionId": action_id, "parameters": parameters,
            "targets": {"ChannelNamespaces": "Handled"}}},
    })
}

/// Handler actions act on the target namespace's handlers only: an
/// injected error fails its publishes as `util.error` does (403), an added
/// delay holds them, and other namespaces are untouched; stopped, the
/// handler answers as before.
#[tokio::test]
async fn handler_errors_and_delays_act_on_their_namespace_only() {
    let (server, admin) = server(true).await;
    let id = start_experiment(
        admin,
        namespace_template("herald:appsync:handler-error", json!({"duration": "PT5M"})),
    )
    .await;
    let r = publish(&server, "/handled/a", &[json!(1)]).await;
    assert_http_error(&r, 403, "ForbiddenException", "fault injection experiment");
    let r = publish(&server, "/default/a", &[json!(1)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // StopExperiment's answer means its actions act no more.
    assert_eq!(
        delete(admin, &format!("/experiments/{id}")).await.status,
        200
    );
    let r = publish(&server, "/handled/a", &[json!(1)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);

    let id = start_experiment(
        admin,
        namespace_template(
            "herald:appsync:handler-add-delay",
            json!({"duration": "PT5M", "startupDelayMilliseconds": "300"}),
        ),
    )
    .await;
    let started = std::time::Instant::now();
    let r = publish(&server, "/handled/a", &[json!(1)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(
        delete(admin, &format!("/experiments/{id}")).await.status,
        200
    );
}

/// A template declared in the file with `start = true` acts from the start,
/// is listed under its own id, and stops through the API.
#[tokio::test]
async fn a_template_in_the_file_can_start_with_the_server() {
    let (server, admin) = server_with(&format!(
        r#"[fault_injection]
        enabled = true
        [[fault_injection.experiment_templates]]
        id = "handled-fails"
        start = true
        description = "the handled namespace fails"
        role_arn = "arn:aws:iam::123456789012:role/fis"
        stop_conditions = [{{ source = "none" }}]
        targets = {{ Handled = {{ resource_type = "herald:appsync:channel-namespace", selection_mode = "ALL", resource_arns = ["arn:aws:appsync:eu-west-1:123456789012:apis/{API_ID}/channelNamespace/handled"] }} }}
        actions = {{ fail = {{ action_id = "herald:appsync:handler-error", parameters = {{ duration = "PT1H" }}, targets = {{ ChannelNamespaces = "Handled" }} }} }}
        "#
    ))
    .await;
    let r = publish(&server, "/handled/a", &[json!(1)]).await;
    assert_http_error(&r, 403, "ForbiddenException", "fault injection experiment");
    let t = get(admin, "/experimentTemplates/handled-fails").await;
    assert_eq!(t.status, 200, "{}", t.raw);
    assert_eq!(
        t.body["experimentTemplate"]["actions"]["fail"]["actionId"],
        "herald:appsync:handler-error"
    );
    let listed = get(admin, "/experiments").await;
    let running = &listed.body["experiments"][0];
    assert_eq!(running["experimentTemplateId"], "handled-fails");
    assert_eq!(running["state"]["status"], "running");
    let id = running["id"].as_str().unwrap();
    assert_eq!(
        delete(admin, &format!("/experiments/{id}")).await.status,
        200
    );
    let r = publish(&server, "/handled/a", &[json!(1)]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
}
