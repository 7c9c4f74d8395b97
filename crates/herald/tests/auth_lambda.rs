//! AWS_LAMBDA: a local HTTP authorizer allowing, denying, timing out, answering
//! garbage, and the result cache.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn authorizer() -> TinyServer {
    TinyServer::start(|r| {
        let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let token = req["authorizationToken"].as_str().unwrap_or_default();
        match token.split('-').next().unwrap_or_default() {
            "allow" => {
                Answer::json(json!({"isAuthorized": true, "handlerContext": {"user": token}}))
            }
            "cache" => Answer::json(json!({"isAuthorized": true, "ttlOverride": 300})),
            "deny" => Answer::json(json!({"isAuthorized": false})),
            "slow" => Answer {
                status: 200,
                body: json!({"isAuthorized": true}).to_string(),
                delay: Duration::from_secs(3),
            },
            "garbage" => Answer {
                status: 200,
                body: "<html>oops</html>".into(),
                delay: Duration::ZERO,
            },
            "stringy" => Answer::json(json!({"isAuthorized": "true"})),
            "error" => Answer {
                status: 500,
                body: json!({"isAuthorized": true}).to_string(),
                delay: Duration::ZERO,
            },
            _ => Answer::json(json!({"isAuthorized": false})),
        }
    })
    .await
}

async fn server_for(auth: &TinyServer, ttl: u64) -> TestServer {
    start_with_toml(&format!(
        r#"
        name = "lambda-api"
        [event_config]
        auth_providers = [{{ auth_type = "AWS_LAMBDA", lambda_authorizer_config = {{ authorizer_uri = "{}", authorizer_result_ttl_in_seconds = {ttl}, identity_validation_expression = "(allow|cache|deny|slow|garbage|stringy|error)-[a-z0-9]+", timeout_ms = 500 }} }}]
        "#,
        auth.url("/authorize")
    ))
    .await
}

async fn publish(server: &TestServer, token: &str, channel: &str) -> u16 {
    http_post(
        server.addr,
        json!({"channel": channel, "events": ["1"]})
            .to_string()
            .into_bytes(),
        &[("authorization", token), ("x-custom", "yes")],
    )
    .await
    .status
}

#[tokio::test]
async fn configured_api_and_account_ids_reach_the_authorizer() {
    let auth = authorizer().await;
    let server = start_with_toml(&format!(
        r#"
        name = "lambda-api"
        api_id = "abcdefghijklmnopqrstuvwxyz"
        account_id = "123456789012"
        [event_config]
        auth_providers = [{{ auth_type = "AWS_LAMBDA", lambda_authorizer_config = {{ authorizer_uri = "{}" }} }}]
        "#,
        auth.url("/authorize")
    ))
    .await;
    assert_eq!(publish(&server, "allow-alice", "/default/a").await, 200);
    let req: Value = serde_json::from_slice(&auth.requests()[0].body).unwrap();
    assert_eq!(req["requestContext"]["apiId"], "abcdefghijklmnopqrstuvwxyz");
    assert_eq!(req["requestContext"]["accountId"], "123456789012");
}

#[tokio::test]
async fn allow_deny_timeout_garbage_and_fail_closed() {
    let auth = authorizer().await;
    let server = server_for(&auth, 0).await;
    assert_eq!(publish(&server, "allow-alice", "/default/a").await, 200);

    // The request follows AppSync's Lambda authorizer contract.
    let seen = auth.requests();
    let req: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(req["authorizationToken"], "allow-alice");
    assert_eq!(req["requestContext"]["operation"], "EVENT_PUBLISH");
    assert_eq!(req["requestContext"]["channel"], "/default/a");
    assert_eq!(req["requestContext"]["channelNamespaceName"], "default");
    // The API's id (distinct from its name) and a 12-digit account id, as AWS sends.
    let api_id = req["requestContext"]["apiId"].as_str().unwrap();
    assert_eq!(api_id, herald::config::derived_api_id("lambda-api"));
    assert_eq!(api_id.len(), 26);
    assert!(api_id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(req["requestContext"]["accountId"], "000000000000");
    assert!(req["requestContext"]["requestId"].is_string());
    assert_eq!(req["requestHeaders"]["x-custom"], "yes");
    assert!(
        req["requestHeaders"].get("authorization").is_none(),
        "the token is not repeated in headers"
    );

    for token in [
        "deny-bob",
        "slow-carol",
        "garbage-dave",
        "stringy-erin",
        "error-frank",
    ] {
        assert_eq!(publish(&server, token, "/default/a").await, 401, "{token}");
    }
    // Not matching identity_validation_expression: refused without a call.
    let calls = auth.requests().len();
    assert_eq!(publish(&server, "nomatch", "/default/a").await, 401);
    assert_eq!(
        publish(&server, "allow-UPPER", "/default/a").await,
        401,
        "the expression is anchored"
    );
    assert_eq!(auth.requests().len(), calls);

    // With no caching, every request calls the authorizer.
    let calls = auth.requests().len();
    assert_eq!(publish(&server, "allow-alice", "/default/a").await, 200);
    assert_eq!(publish(&server, "allow-alice", "/default/a").await, 200);
    assert_eq!(auth.requests().len(), calls + 2);
}

#[tokio::test]
async fn results_are_cached_per_token_operation_and_channel() {
    let auth = authorizer().await;
    let server = server_for(&auth, 60).await;
    for _ in 0..3 {
        assert_eq!(publish(&server, "allow-alice", "/default/a").await, 200);
        assert_eq!(publish(&server, "deny-bob", "/default/a").await, 401);
    }
    assert_eq!(auth.requests().len(), 2, "one call per token, then cached");
    assert_eq!(publish(&server, "allow-alice", "/default/b").await, 200);
    assert_eq!(
        auth.requests().len(),
        3,
        "another channel is another question"
    );

    // ttlOverride applies even when the configured TTL is 0.
    let auth2 = authorizer().await;
    let server2 = server_for(&auth2, 0).await;
    for _ in 0..3 {
        assert_eq!(publish(&server2, "cache-x", "/default/a").await, 200);
    }
    assert_eq!(auth2.requests().len(), 1);
}

#[tokio::test]
async fn authorizer_down_means_denied() {
    let auth = authorizer().await;
    let server = server_for(&auth, 0).await;
    drop(auth); // the authorizer goes away
    assert_eq!(publish(&server, "allow-alice", "/default/a").await, 401);
}

#[tokio::test]
async fn lambda_over_websocket() {
    let auth = authorizer().await;
    let server = server_for(&auth, 0).await;
    let mut c = WsClient::connect_with_auth(
        server.addr,
        &json!({"host": server.host(), "Authorization": "allow-ws"}),
    )
    .await;
    c.init().await;
    c.send(json!({"type": "subscribe", "id": "s", "channel": "/default/*", "authorization": {"Authorization": "allow-ws"}})).await;
    assert_eq!(c.recv().await["type"], "subscribe_success");
    c.send(json!({"type": "subscribe", "id": "d", "channel": "/default/x", "authorization": {"Authorization": "deny-ws"}})).await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("d"),
        "UnauthorizedException",
        "You are not authorized",
    );
    let ops: Vec<String> = auth
        .requests()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["requestContext"]["operation"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ops, ["EVENT_CONNECT", "EVENT_SUBSCRIBE", "EVENT_SUBSCRIBE"]);
    let connect: Value = serde_json::from_slice(&auth.requests()[0].body).unwrap();
    assert_eq!(connect["requestContext"]["channel"], Value::Null);

    let mut denied = WsClient::connect_with_auth(
        server.addr,
        &json!({"host": server.host(), "Authorization": "deny-ws"}),
    )
    .await;
    denied.send(json!({"type": "connection_init"})).await;
    let (_, frames) = denied.recv_until_close().await;
    assert_eq!(frames[0]["type"], "connection_error");
}
