//! Connections and API destinations: a rule's target can be any HTTP
//! endpoint (`InvocationEndpoint`, its `*` filled from the target's
//! `HttpParameters.PathParameterValues`), called with the connection's
//! authorization (`BASIC`, `API_KEY`, or `OAUTH_CLIENT_CREDENTIALS`, whose
//! token Herald fetches, caches until it expires, and fetches again when
//! the endpoint answers 401) and at most `InvocationRateLimitPerSecond`
//! calls a second (each call waits its turn; nothing is dropped).
//!
//! The target's `HttpParameters` values (path, header and query string)
//! are taken as written, or from the event when they are JSONPaths
//! (`$.detail.id`), as EventBridge reads them.
//!
//! As EventBridge: a 2xx answer is a delivery; 401, 407, 409, 429, 5xx, a
//! timeout (5 s) or a refused connection are retried under the target's
//! `RetryPolicy`; other 4xx answers are not retried (the event goes to the
//! dead-letter target at once). Secrets are kept in the store as given
//! (AWS keeps them in Secrets Manager): protect the data directory, or the
//! PostgreSQL database, accordingly.

use super::target::Failed;
use crate::http_client::HttpClient;
use base64::Engine;
use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const AUTH_TYPES: &[&str] = &["BASIC", "API_KEY", "OAUTH_CLIENT_CREDENTIALS"];
pub const METHODS: &[&str] = &["POST", "GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"];
/// EventBridge's timeout for an API destination call.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection as stored: AWS's request fields, secrets included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectionSpec {
    pub name: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub authorization_type: String,
    pub auth_parameters: Value,
    pub creation_time: f64,
    pub last_modified_time: f64,
}

/// An API destination as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiDestinationSpec {
    pub name: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub connection_arn: String,
    pub invocation_endpoint: String,
    pub http_method: String,
    pub invocation_rate_limit_per_second: u32,
    pub creation_time: f64,
    pub last_modified_time: f64,
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

impl ConnectionSpec {
    /// Check `AuthParameters` against `AuthorizationType`.
    pub fn check(auth_type: &str, p: &Value) -> Result<(), String> {
        if !AUTH_TYPES.contains(&auth_type) {
            return Err(format!(
                "1 validation error detected: Value '{auth_type}' at 'authorizationType' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                AUTH_TYPES.join(", ")
            ));
        }
        let need = |path: &[&str]| {
            s(p, path)
                .filter(|v| !v.is_empty())
                .map(|_| ())
                .ok_or_else(|| {
                    format!(
                        "AuthParameters.{} is required for {auth_type} connections",
                        path.join(".")
                    )
                })
        };
        match auth_type {
            "BASIC" => {
                need(&["BasicAuthParameters", "Username"])?;
                need(&["BasicAuthParameters", "Password"])
            }
            "API_KEY" => {
                need(&["ApiKeyAuthParameters", "ApiKeyName"])?;
                need(&["ApiKeyAuthParameters", "ApiKeyValue"])
            }
            _ => {
                need(&["OAuthParameters", "ClientParameters", "ClientID"])?;
                need(&["OAuthParameters", "ClientParameters", "ClientSecret"])?;
                need(&["OAuthParameters", "AuthorizationEndpoint"])?;
                let m = s(p, &["OAuthParameters", "HttpMethod"]).unwrap_or("POST");
                if !["GET", "POST", "PUT"].contains(&m) {
                    return Err(format!(
                        "OAuthParameters.HttpMethod {m} is not one of GET, POST, PUT"
                    ));
                }
                let url = s(p, &["OAuthParameters", "AuthorizationEndpoint"]).unwrap_or_default();
                crate::http_client::Url::parse(url)
                    .map(|_| ())
                    .map_err(|e| format!("OAuthParameters.AuthorizationEndpoint: {e}"))
            }
        }
    }

    /// `AuthParameters` without the secrets, as `DescribeConnection` shows it.
    pub fn shown_parameters(&self) -> Value {
        let p = &self.auth_parameters;
        let mut out = json!({});
        if let Some(u) = s(p, &["BasicAuthParameters", "Username"]) {
            out["BasicAuthParameters"] = json!({"Username": u});
        }
        if let Some(n) = s(p, &["ApiKeyAuthParameters", "ApiKeyName"]) {
            out["ApiKeyAuthParameters"] = json!({"ApiKeyName": n});
        }
        if let Some(o) = p.get("OAuthParameters") {
            let mut shown = json!({
                "ClientParameters": {"ClientID": s(o, &["ClientParameters", "ClientID"])},
                "AuthorizationEndpoint": s(o, &["AuthorizationEndpoint"]),
                "HttpMethod": s(o, &["HttpMethod"]).unwrap_or("POST"),
            });
            if let Some(h) = o.get("OAuthHttpParameters") {
                shown["OAuthHttpParameters"] = public(h);
            }
            out["OAuthParameters"] = shown;
        }
        if let Some(h) = p.get("InvocationHttpParameters") {
            out["InvocationHttpParameters"] = public(h);
        }
        out
    }
}

/// HTTP parameters with the values marked `IsValueSecret` left out.
fn public(h: &Value) -> Value {
    let mut out = json!({});
    for list in [
        "HeaderParameters",
        "QueryStringParameters",
        "BodyParameters",
    ] {
        if let Some(items) = h.get(list).and_then(Value::as_array) {
            let shown: Vec<Value> = items
                .iter()
                .map(|i| {
                    let mut i = i.clone();
                    if i.get("IsValueSecret").and_then(Value::as_bool) == Some(true) {
                        if let Some(o) = i.as_object_mut() {
                            o.remove("Value");
                        }
                    }
                    i
                })
                .collect();
            out[list] = Value::Array(shown);
        }
    }
    out
}

/// `[{Key, Value}]` as pairs.
fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| {
                    Some((
                        i.get("Key")?.as_str()?.to_string(),
                        i.get("Value")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A target's `HttpParameters` value: as written, or, when it is a
/// JSONPath (`$.detail.id`), the event's value there.
fn dynamic(v: &str, event: &Value) -> String {
    if !v.starts_with("$.") {
        return v.to_string();
    }
    match super::input::JsonPath::parse(v)
        .ok()
        .and_then(|p| p.select(event).cloned())
    {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `{name: value}` as pairs (a target's `HttpParameters` maps).
fn map_pairs(v: Option<&Value>, event: &Value) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), dynamic(v.as_str()?, event))))
                .collect()
        })
        .unwrap_or_default()
}

fn query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

use crate::auth::sigv4::uri_encode as encode;

/// A cached OAuth token.
struct Token {
    value: String,
    until: Instant,
}

/// A token belongs to a connection as it was when the token was fetched:
/// `UpdateConnection` (new credentials) makes the next call fetch anew.
fn token_key(c: &ConnectionSpec) -> String {
    format!("{}@{}", c.name, c.last_modified_time)
}

/// What API destination calls share: OAuth tokens by connection, and each
/// destination's next free slot under its rate limit.
#[derive(Default)]
pub struct Calls {
    tokens: Mutex<HashMap<String, Token>>,
    slots: Mutex<HashMap<String, Instant>>,
}

impl Calls {
    /// Wait for the destination's next slot (calls are spaced 1/rate s).
    async fn pace(&self, dest: &ApiDestinationSpec) {
        let gap =
            Duration::from_secs_f64(1.0 / f64::from(dest.invocation_rate_limit_per_second.max(1)));
        let at = {
            let mut slots = self.slots.lock().unwrap();
            let now = Instant::now();
            let next = slots.entry(dest.name.clone()).or_insert(now);
            let at = (*next).max(now);
            *next = at + gap;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// A bearer token for an OAuth connection (cached until it expires).
    async fn token(&self, http: &HttpClient, c: &ConnectionSpec) -> Result<String, Failed> {
        if let Some(t) = self.tokens.lock().unwrap().get(&token_key(c)) {
            if t.until > Instant::now() {
                return Ok(t.value.clone());
            }
        }
        let failed = |message: String| Failed {
            message,
            code: "SDK_CLIENT_ERROR",
            retryable: true,
        };
        let o = c
            .auth_parameters
            .get("OAuthParameters")
            .cloned()
            .unwrap_or_default();
        let id = s(&o, &["ClientParameters", "ClientID"]).unwrap_or_default();
        let secret = s(&o, &["ClientParameters", "ClientSecret"]).unwrap_or_default();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let http_params = o.get("OAuthHttpParameters");
        let mut body = vec![("grant_type".to_string(), "client_credentials".to_string())];
        body.extend(pairs(http_params.and_then(|h| h.get("BodyParameters"))));
        let mut url = s(&o, &["AuthorizationEndpoint"])
            .unwrap_or_default()
            .to_string();
        let q = query(&pairs(
            http_params.and_then(|h| h.get("QueryStringParameters")),
        ));
        if !q.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&q);
        }
        let auth = format!("Basic {basic}");
        let extra = pairs(http_params.and_then(|h| h.get("HeaderParameters")));
        let mut headers: Vec<(&str, &str)> = vec![
            ("authorization", &auth),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let method = Method::from_bytes(s(&o, &["HttpMethod"]).unwrap_or("POST").as_bytes())
            .unwrap_or(Method::POST);
        let r = http
            .request(method, &url, &headers, query(&body).into(), TIMEOUT)
            .await
            .map_err(|e| failed(format!("the OAuth endpoint failed: {e}")))?;
        if !r.status.is_success() {
            return Err(failed(format!("the OAuth endpoint answered {}", r.status)));
        }
        let answer: Value = serde_json::from_slice(&r.body)
            .map_err(|_| failed("the OAuth endpoint's answer is not JSON".into()))?;
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| failed("the OAuth endpoint's answer has no access_token".into()))?
            .to_string();
        let life = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        self.tokens.lock().unwrap().insert(
            token_key(c),
            Token {
                value: value.clone(),
                until: Instant::now() + Duration::from_secs(life.saturating_sub(10).max(1)),
            },
        );
        Ok(value)
    }

    /// Call `dest` with `payload` as the target's `HttpParameters` say
    /// (their values may be JSONPaths into `event`).
    /// What a connection adds to every request: its
    /// `InvocationHttpParameters` headers and its authorization (Basic, the
    /// API key header, or an OAuth bearer token, fetched and cached).
    pub async fn connection_headers(
        &self,
        http: &HttpClient,
        conn: &ConnectionSpec,
    ) -> Result<Vec<(String, String)>, Failed> {
        let p = &conn.auth_parameters;
        let mut headers = pairs(
            p.get("InvocationHttpParameters")
                .and_then(|h| h.get("HeaderParameters")),
        );
        match conn.authorization_type.as_str() {
            "BASIC" => {
                let u = s(p, &["BasicAuthParameters", "Username"]).unwrap_or_default();
                let pw = s(p, &["BasicAuthParameters", "Password"]).unwrap_or_default();
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"));
                headers.push(("authorization".into(), format!("Basic {b}")));
            }
            "API_KEY" => {
                let k = s(p, &["ApiKeyAuthParameters", "ApiKeyName"]).unwrap_or_default();
                let v = s(p, &["ApiKeyAuthParameters", "ApiKeyValue"]).unwrap_or_default();
                headers.push((k.to_string(), v.to_string()));
            }
            _ => {
                let t = self.token(http, conn).await?;
                headers.push(("authorization".into(), format!("Bearer {t}")));
            }
        }
        Ok(headers)
    }

    /// A connection's `InvocationHttpParameters` query parameters.
    pub fn connection_query(conn: &ConnectionSpec) -> Vec<(String, String)> {
        pairs(
            conn.auth_parameters
                .get("InvocationHttpParameters")
                .and_then(|h| h.get("QueryStringParameters")),
        )
    }

    pub async fn call(
        &self,
        http: &HttpClient,
        dest: &ApiDestinationSpec,
        conn: &ConnectionSpec,
        params: Option<&Value>,
        event: &Value,
        payload: String,
    ) -> Result<(), Failed> {
        let failed = |message: String, retryable: bool| Failed {
            message,
            code: if retryable {
                "SDK_CLIENT_ERROR"
            } else {
                "NO_PERMISSIONS"
            },
            retryable,
        };
        let mut url = dest.invocation_endpoint.clone();
        let mut values = params
            .and_then(|p| p.get("PathParameterValues"))
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .map(|p| dynamic(p, event))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter();
        while let Some(i) = url.find('*') {
            let v = values.next().unwrap_or_default();
            url.replace_range(i..=i, &encode(&v));
        }
        let mut q = Self::connection_query(conn);
        q.extend(map_pairs(
            params.and_then(|p| p.get("QueryStringParameters")),
            event,
        ));
        if !q.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&query(&q));
        }
        let mut headers = vec![
            (
                "content-type".to_string(),
                "application/json; charset=utf-8".to_string(),
            ),
            (
                "user-agent".to_string(),
                "Amazon/EventBridge/ApiDestinations".to_string(),
            ),
        ];
        headers.extend(map_pairs(
            params.and_then(|p| p.get("HeaderParameters")),
            event,
        ));
        headers.extend(self.connection_headers(http, conn).await?);
        let method = Method::from_bytes(dest.http_method.as_bytes()).unwrap_or(Method::POST);
        let body = if matches!(method, Method::GET | Method::HEAD) {
            bytes::Bytes::new()
        } else {
            payload.into()
        };
        self.pace(dest).await;
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = http
            .request(method, &url, &refs, body, TIMEOUT)
            .await
            .map_err(|e| failed(e, true))?;
        let status = r.status.as_u16();
        if r.status.is_success() {
            return Ok(());
        }
        if status == 401 {
            self.tokens.lock().unwrap().remove(&token_key(conn));
        }
        let retryable = matches!(status, 401 | 407 | 409 | 429) || status >= 500;
        Err(failed(
            format!("{} answered {status}", dest.invocation_endpoint),
            retryable,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_checked_and_shown_without_secrets() {
        let basic = json!({"BasicAuthParameters": {"Username": "u", "Password": "p"},
            "InvocationHttpParameters": {"HeaderParameters": [{"Key": "x-a", "Value": "1"}, {"Key": "x-s", "Value": "hidden", "IsValueSecret": true}]}});
        assert!(ConnectionSpec::check("BASIC", &basic).is_ok());
        assert!(ConnectionSpec::check("API_KEY", &basic)
            .unwrap_err()
            .contains("ApiKeyName"));
        assert!(ConnectionSpec::check("DIGEST", &basic).is_err());
        let oauth = json!({"OAuthParameters": {"ClientParameters": {"ClientID": "id", "ClientSecret": "s"}, "AuthorizationEndpoint": "http://127.0.0.1:1/token", "HttpMethod": "POST"}});
        assert!(ConnectionSpec::check("OAUTH_CLIENT_CREDENTIALS", &oauth).is_ok());
        let c = ConnectionSpec {
            name: "c".into(),
            arn: "a".into(),
            description: None,
            authorization_type: "BASIC".into(),
            auth_parameters: basic,
            creation_time: 0.0,
            last_modified_time: 0.0,
        };
        let shown = c.shown_parameters().to_string();
        assert!(
            !shown.contains("\"p\"") && !shown.contains("hidden"),
            "{shown}"
        );
        assert!(shown.contains("x-a"));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query(&[("a b".into(), "c&d".into())]), "a%20b=c%26d");
    }
}
