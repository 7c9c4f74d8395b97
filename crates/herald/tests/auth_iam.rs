//! AWS_IAM: SigV4 signatures made by an independent implementation (the
//! `aws-sigv4` crate), over HTTP and over WebSocket, and a namespace that allows
//! publishing by IAM only and subscribing by API key only.

mod common;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

const AKID: &str = "AKIDHERALDTEST000001";
const SECRET: &str = "herald/test/secret+KEY0000000000000000000";
const SUB_AKID: &str = "AKIDHERALDSUBSCRIBER";

fn config() -> String {
    format!(
        r#"
        aws_region = "eu-west-1"
        [event_config]
        auth_providers = [{{ auth_type = "API_KEY" }}, {{ auth_type = "AWS_IAM" }}]
        [[api_keys]]
        id = "{KEY}"
        [[iam_credentials]]
        access_key_id = "{AKID}"
        secret_access_key = "{SECRET}"
        principal = "arn:aws:iam::123456789012:user/publisher"
        account_id = "123456789012"
        allow = [{{ actions = ["*"] }}]
        [[iam_credentials]]
        access_key_id = "{SUB_AKID}"
        secret_access_key = "{SECRET}"
        session_token = "session-token-1"
        principal = "arn:aws:iam::123456789012:role/subscriber"
        allow = [{{ actions = ["connect", "subscribe"], namespaces = ["default"] }}]
        [[channel_namespaces]]
        name = "default"
        [[channel_namespaces]]
        name = "split"
        publish_auth_modes = [{{ auth_type = "AWS_IAM" }}]
        subscribe_auth_modes = [{{ auth_type = "API_KEY" }}]
        "#
    )
}

struct Signer {
    akid: &'static str,
    secret: &'static str,
    token: Option<&'static str>,
    region: &'static str,
    time: SystemTime,
    /// The endpoint's path: `/event`, or the path form `/apis/<apiId>/event`.
    path: String,
}

impl Signer {
    fn new() -> Signer {
        Signer {
            akid: AKID,
            secret: SECRET,
            token: None,
            region: "eu-west-1",
            time: SystemTime::now(),
            path: "/event".into(),
        }
    }

    /// Sign `POST http://host/event` (or the signer's path) with `headers` and `body`; returns the
    /// headers to send (the given ones plus the signature's).
    fn sign(&self, host: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<(String, String)> {
        let identity = Credentials::new(
            self.akid,
            self.secret,
            self.token.map(str::to_string),
            None,
            "test",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name("appsync")
            .time(self.time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = format!("http://{host}{}", self.path);
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push(("host".into(), host.into()));
        for (k, v) in instructions.headers() {
            out.push((k.to_string(), v.to_string()));
        }
        out
    }

    /// The auth object of a WebSocket operation, signing the body AppSync clients sign.
    fn ws_auth(&self, host: &str, body: &str) -> Value {
        let base = [
            ("accept", "application/json, text/javascript"),
            ("content-encoding", "amz-1.0"),
            ("content-type", "application/json; charset=UTF-8"),
        ];
        let headers = self.sign(host, &base, body.as_bytes());
        Value::Object(
            headers
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    }
}

async fn signed_post(server: &TestServer, signer: &Signer, body: &Value) -> HttpResponse {
    let bytes = body.to_string().into_bytes();
    let headers = signer.sign(
        &server.host(),
        &[("content-type", "application/json")],
        &bytes,
    );
    let h: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k != "host")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http_request(server.addr, "POST", "/event", bytes, &h).await
}

const TRICKY: &[&str] = &[
    r#"{"html":"<b>bold</b> & <i>it</i>"}"#,
    r#"{"text":"héllo wörld ✓ 日本 🎉"}"#,
    r#"{"esc":"quote \" backslash \\ slash / tab \t newline \n ctl \u0001"}"#,
];

#[tokio::test]
async fn sigv4_over_http() {
    let server = start_with_toml(&config()).await;
    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/default/*").await;

    for event in TRICKY {
        let r = signed_post(
            &server,
            &Signer::new(),
            &json!({"channel": "/default/iam", "events": [event]}),
        )
        .await;
        assert_eq!(r.status, 200, "{event}: {}", r.raw);
        let got = sub.data("s").await;
        assert_eq!(got, serde_json::from_str::<Value>(event).unwrap());
    }

    let body = json!({"channel": "/default/iam", "events": ["1"]});
    let wrong_secret = Signer {
        secret: "not-the-secret",
        ..Signer::new()
    };
    let stale = Signer {
        time: SystemTime::now() - Duration::from_secs(600),
        ..Signer::new()
    };
    let future = Signer {
        time: SystemTime::now() + Duration::from_secs(600),
        ..Signer::new()
    };
    let wrong_region = Signer {
        region: "us-east-1",
        ..Signer::new()
    };
    let unknown = Signer {
        akid: "AKIDUNKNOWN000000000",
        ..Signer::new()
    };
    let no_token = Signer {
        akid: SUB_AKID,
        ..Signer::new()
    };
    for (what, signer) in [
        ("wrong secret", wrong_secret),
        ("stale date", stale),
        ("date in the future", future),
        ("wrong region", wrong_region),
        ("unknown key", unknown),
        ("missing session token", no_token),
    ] {
        let r = signed_post(&server, &signer, &body).await;
        assert_http_error(&r, 401, "UnauthorizedException", "You are not authorized");
        let _ = what;
    }

    // A signature replayed within the window on the same request is accepted (as
    // on AWS); replayed on a different body it is not.
    let bytes = body.to_string().into_bytes();
    let headers = Signer::new().sign(
        &server.host(),
        &[("content-type", "application/json")],
        &bytes,
    );
    let h: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k != "host")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        http_request(server.addr, "POST", "/event", bytes.clone(), &h)
            .await
            .status,
        200
    );
    assert_eq!(
        http_request(server.addr, "POST", "/event", bytes, &h)
            .await
            .status,
        200
    );
    let other = json!({"channel": "/default/iam", "events": ["2"]})
        .to_string()
        .into_bytes();
    assert_eq!(
        http_request(server.addr, "POST", "/event", other, &h)
            .await
            .status,
        401
    );
    // The subscriber-only principal may not publish.
    let sub_signer = Signer {
        akid: SUB_AKID,
        token: Some("session-token-1"),
        ..Signer::new()
    };
    assert_eq!(signed_post(&server, &sub_signer, &body).await.status, 401);
}

#[tokio::test]
async fn sigv4_over_websocket_with_rebuilt_bodies() {
    let server = start_with_toml(&config()).await;
    let host = server.host();
    let signer = Signer::new();
    let mut c = WsClient::connect_with_auth(server.addr, &signer.ws_auth(&host, "{}")).await;
    c.init().await;

    let channel = "default/iam-ws";
    c.send(json!({"type": "subscribe", "id": "s", "channel": channel,
                  "authorization": signer.ws_auth(&host, &json!({"channel": channel}).to_string())}))
        .await;
    assert_eq!(c.recv().await["type"], "subscribe_success");

    for (i, event) in TRICKY.iter().enumerate() {
        // The body clients sign: JSON.stringify({channel, events}).
        let signed_body = json!({"channel": channel, "events": [event]}).to_string();
        let id = format!("p{i}");
        c.send(
            json!({"type": "publish", "id": id, "channel": channel, "events": [event],
                      "authorization": signer.ws_auth(&host, &signed_body)}),
        )
        .await;
        let mut got = (false, None);
        while !(got.0 && got.1.is_some()) {
            let f = c.recv().await;
            match f["type"].as_str().unwrap() {
                "publish_success" => got.0 = true,
                "data" => {
                    got.1 =
                        Some(serde_json::from_str::<Value>(f["event"].as_str().unwrap()).unwrap())
                }
                _ => panic!("{event}: {f}"),
            }
        }
        assert_eq!(
            got.1.unwrap(),
            serde_json::from_str::<Value>(event).unwrap()
        );
    }

    // A signature over a different channel or different events is refused.
    c.send(json!({"type": "subscribe", "id": "x", "channel": "default/other",
                  "authorization": signer.ws_auth(&host, &json!({"channel": channel}).to_string())}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("x"),
        "UnauthorizedException",
        "not authorized",
    );
    c.send(json!({"type": "publish", "id": "y", "channel": channel, "events": ["2"],
                  "authorization": signer.ws_auth(&host, &json!({"channel": channel, "events": ["1"]}).to_string())}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "publish_error",
        Some("y"),
        "UnauthorizedException",
        "not authorized",
    );

    // A wrong signature at connect gets connection_error.
    let bad = Signer {
        secret: "nope",
        ..Signer::new()
    };
    let mut denied = WsClient::connect_with_auth(server.addr, &bad.ws_auth(&host, "{}")).await;
    denied.send(json!({"type": "connection_init"})).await;
    let (_, frames) = denied.recv_until_close().await;
    assert_eq!(frames[0]["type"], "connection_error");
}

/// A client that reached the API by path (`/apis/<apiId>/event/realtime`)
/// signs its WebSocket operations for `/apis/<apiId>/event`; that works as
/// the plain form does, and a signature for another API's path does not.
#[tokio::test]
async fn sigv4_over_websocket_on_the_path_form() {
    let server = start_with_toml(&config()).await;
    let host = server.host();
    let id = server.running.as_ref().unwrap().api.config.api_id.clone();
    let signer = Signer {
        path: format!("/apis/{id}/event"),
        ..Signer::new()
    };
    let realtime = format!("/apis/{id}/event/realtime");
    let mut c =
        WsClient::connect_with_auth_at(server.addr, &realtime, &signer.ws_auth(&host, "{}")).await;
    c.init().await;
    let channel = "default/by-path";
    c.send(json!({"type": "subscribe", "id": "s", "channel": channel,
                  "authorization": signer.ws_auth(&host, &json!({"channel": channel}).to_string())}))
        .await;
    assert_eq!(c.recv().await["type"], "subscribe_success");

    let other = Signer {
        path: "/apis/someotherapi/event".into(),
        ..Signer::new()
    };
    c.send(json!({"type": "subscribe", "id": "x", "channel": channel,
                  "authorization": other.ws_auth(&host, &json!({"channel": channel}).to_string())}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("x"),
        "UnauthorizedException",
        "not authorized",
    );
}

#[tokio::test]
async fn namespace_publish_by_iam_only_subscribe_by_api_key_only() {
    let server = start_with_toml(&config()).await;
    let host = server.host();
    let signer = Signer::new();
    let mut c = server.ws().await;
    c.init().await;

    // Subscribe: API key yes, IAM no.
    c.subscribe("k", "/split/room").await;
    c.send(json!({"type": "subscribe", "id": "i", "channel": "/split/room",
                  "authorization": signer.ws_auth(&host, &json!({"channel": "/split/room"}).to_string())}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("i"),
        "UnauthorizedException",
        "not authorized",
    );

    // Publish: API key no (HTTP and WebSocket), IAM yes.
    let r = server
        .post(json!({"channel": "/split/room", "events": ["1"]}))
        .await;
    assert_eq!(r.status, 401);
    c.send(json!({"type": "publish", "id": "pk", "channel": "/split/room", "events": ["1"], "authorization": {"x-api-key": KEY}})).await;
    assert_ws_error(
        &c.recv().await,
        "publish_error",
        Some("pk"),
        "UnauthorizedException",
        "not authorized",
    );
    let r = signed_post(
        &server,
        &signer,
        &json!({"channel": "/split/room", "events": ["{\"by\":\"iam\"}"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(c.data("k").await, json!({"by": "iam"}));
}
