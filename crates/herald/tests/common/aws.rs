//! Admin API calls as botocore makes them: signed with SigV4 by AWS's own
//! signer (`aws-sigv4`), with the test configurations' admin credentials.

use super::{http_post, http_request, HttpResponse};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::json;
use std::net::SocketAddr;
use std::time::SystemTime;

pub const ADMIN_KEY: &str = "AKIAADMINADMINADMIN0";
pub const ADMIN_SECRET: &str = "admin-secret-admin-secret-admin-secret-00";
pub const USER_KEY: &str = "AKIAUSERUSERUSERUSER";
pub const USER_SECRET: &str = "user-secret-user-secret-user-secret-00000";

/// The top of a test configuration with an admin: account and region (as
/// [`call`] signs), the admin credentials, and the API key `KEY`.
pub fn admin_toml() -> String {
    format!(
        r#"account_id = "123456789012"
aws_region = "eu-west-1"
[[iam_credentials]]
access_key_id = "{ADMIN_KEY}"
secret_access_key = "{ADMIN_SECRET}"
principal = "arn:aws:iam::123456789012:user/ops"
allow = [{{ actions = ["admin"] }}]
[[api_keys]]
id = "{}"
"#,
        super::KEY
    )
}

/// A request as botocore sends it: signed for `service` with `creds` at `time`.
pub struct Call<'a> {
    pub creds: (&'a str, &'a str),
    pub service: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub time: SystemTime,
}

impl<'a> Call<'a> {
    /// An admin's signed `GET path` for AppSync.
    pub fn get(path: &'a str) -> Call<'a> {
        Call {
            creds: (ADMIN_KEY, ADMIN_SECRET),
            service: "appsync",
            method: "GET",
            path,
            headers: &[],
            body: b"",
            time: SystemTime::now(),
        }
    }
}

pub async fn call(admin: SocketAddr, c: Call<'_>) -> HttpResponse {
    let Call {
        creds: (key, secret),
        service,
        method,
        path: path_and_query,
        headers: extra,
        body,
        time,
    } = c;
    let identity = Credentials::new(key, secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://{admin}{path_and_query}");
    let host = admin.to_string();
    let mut headers: Vec<(&str, &str)> = vec![("host", &host)];
    headers.extend_from_slice(extra);
    let signable = SignableRequest::new(
        method,
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let signed: Vec<(String, String)> = instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut all: Vec<(&str, &str)> = extra.to_vec();
    all.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    http_request(admin, method, path_and_query, body.to_vec(), &all).await
}

pub async fn get(admin: SocketAddr, path: &str) -> HttpResponse {
    call(admin, Call::get(path)).await
}

pub fn error_type(r: &HttpResponse) -> String {
    r.headers
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub async fn post(admin: SocketAddr, path: &str, body: &serde_json::Value) -> HttpResponse {
    let text = body.to_string();
    call(
        admin,
        Call {
            method: "POST",
            headers: &[("content-type", "application/json")],
            body: text.as_bytes(),
            ..Call::get(path)
        },
    )
    .await
}

pub async fn delete(admin: SocketAddr, path: &str) -> HttpResponse {
    call(
        admin,
        Call {
            method: "DELETE",
            ..Call::get(path)
        },
    )
    .await
}

pub async fn publish_with(addr: SocketAddr, key: &str) -> u16 {
    http_post(
        addr,
        json!({"channel": "/default/k", "events": ["1"]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", key)],
    )
    .await
    .status
}

/// Give API `api_id` a namespace `namespace` and a new key (AppSync's
/// `CreateChannelNamespace` and `CreateApiKey`); returns the key.
pub async fn namespace_and_key(admin: SocketAddr, api_id: &str, namespace: &str) -> String {
    let r = post(
        admin,
        &format!("/v2/apis/{api_id}/channelNamespaces"),
        &json!({"name": namespace}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = post(admin, &format!("/v1/apis/{api_id}/apikeys"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    r.body["apiKey"]["id"].as_str().unwrap().to_string()
}

/// An EventBridge operation as botocore sends it (JSON 1.1, `X-Amz-Target`).
pub async fn events(admin: SocketAddr, op: &str, body: serde_json::Value) -> HttpResponse {
    let target = format!("AWSEvents.{op}");
    let text = body.to_string();
    call(
        admin,
        Call {
            service: "events",
            method: "POST",
            headers: &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", &target),
            ],
            body: text.as_bytes(),
            ..Call::get("/")
        },
    )
    .await
}

/// [`events`], expecting success.
pub async fn events_ok(admin: SocketAddr, op: &str, body: serde_json::Value) -> serde_json::Value {
    let r = events(admin, op, body).await;
    assert_eq!(r.status, 200, "{op}: {}", r.raw);
    r.body
}

/// A Step Functions operation as botocore sends it (JSON 1.0, `X-Amz-Target`).
pub async fn states(admin: SocketAddr, op: &str, body: serde_json::Value) -> HttpResponse {
    let target = format!("AWSStepFunctions.{op}");
    let text = body.to_string();
    call(
        admin,
        Call {
            service: "states",
            method: "POST",
            headers: &[
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", &target),
            ],
            body: text.as_bytes(),
            ..Call::get("/")
        },
    )
    .await
}

/// [`states`], expecting success.
pub async fn states_ok(admin: SocketAddr, op: &str, body: serde_json::Value) -> serde_json::Value {
    let r = states(admin, op, body).await;
    assert_eq!(r.status, 200, "{op}: {}", r.raw);
    r.body
}
