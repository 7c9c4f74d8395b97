//! `AWS_LAMBDA`: a Lambda-style authorizer reached over HTTP.
//!
//! Herald POSTs AppSync's Lambda authorizer request to `authorizer_uri` and reads
//! its response (`isAuthorized`, `handlerContext`, `ttlOverride`). The token is
//! first checked against `identity_validation_expression` (no call when it does
//! not match). Results are cached per (token, operation, channel) for
//! `authorizer_result_ttl_in_seconds` (0 = no caching) or the response's
//! `ttlOverride`. **Fail closed**: a timeout, an error status, or a body that is
//! not a well-formed answer is a denial.

use super::{AuthRequest, Operation};
use crate::config::LambdaConfig;
use crate::http_client::HttpClient;
use bytes::Bytes;
use regex_lite::Regex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most cached results; expired ones are swept when the cache is full, and if it
/// is still full nothing new is cached (the authorizer is just called again).
const MAX_CACHE_ENTRIES: usize = 10_000;
/// AppSync's Lambda authorizer timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

type CacheKey = (String, Operation, Option<String>);
/// A cached answer: when it expires, and the handler context or the denial reason.
type CacheEntry = (Instant, Result<Value, String>);

pub struct LambdaAuthorizer {
    url: String,
    ttl: Duration,
    validation: Option<Regex>,
    timeout: Duration,
    api_id: String,
    account_id: String,
    http: HttpClient,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl LambdaAuthorizer {
    pub fn new(
        config: &LambdaConfig,
        api_id: &str,
        account_id: &str,
        http: HttpClient,
    ) -> LambdaAuthorizer {
        LambdaAuthorizer {
            url: config.authorizer_uri.clone(),
            ttl: Duration::from_secs(config.authorizer_result_ttl_in_seconds.unwrap_or(0)),
            validation: config
                .identity_validation_expression
                .as_deref()
                .map(|re| Regex::new(&format!("^(?:{re})$")).expect("validated at load")),
            timeout: config
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            api_id: api_id.to_string(),
            account_id: account_id.to_string(),
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Authorize `token`; `Ok(handlerContext)` or the reason for the log.
    pub async fn authorize(&self, token: &str, req: &AuthRequest<'_>) -> Result<Value, String> {
        if let Some(re) = &self.validation {
            if !re.is_match(token) {
                return Err("token does not match identity_validation_expression".into());
            }
        }
        let key: CacheKey = (token.to_string(), req.op, req.channel.map(str::to_string));
        if let Some((expires, result)) = self.cache.lock().unwrap().get(&key) {
            if *expires > Instant::now() {
                return result.clone();
            }
        }
        let (result, ttl) = self.call(token, req).await;
        let ttl = ttl.unwrap_or(self.ttl);
        if !ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap();
            if cache.len() >= MAX_CACHE_ENTRIES {
                let now = Instant::now();
                cache.retain(|_, (exp, _)| *exp > now);
            }
            if cache.len() < MAX_CACHE_ENTRIES {
                cache.insert(key, (Instant::now() + ttl, result.clone()));
            }
        }
        result
    }

    async fn call(
        &self,
        token: &str,
        req: &AuthRequest<'_>,
    ) -> (Result<Value, String>, Option<Duration>) {
        let request_headers: serde_json::Map<String, Value> = req
            .headers
            .iter()
            .filter(|(k, _)| !matches!(*k, "authorization" | "x-api-key" | "cookie"))
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let body = json!({
            "authorizationToken": token,
            "requestContext": {
                "apiId": self.api_id,
                "accountId": self.account_id,
                "requestId": crate::new_uuid().to_string(),
                "operation": req.op.as_str(),
                "channelNamespaceName": req.namespace,
                "channel": req.channel,
            },
            "requestHeaders": request_headers,
        });
        let resp = match self
            .http
            .request(
                hyper::Method::POST,
                &self.url,
                &[("content-type", "application/json")],
                Bytes::from(body.to_string()),
                self.timeout,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return (
                    Err(format!("authorizer unreachable: {e}")),
                    Some(Duration::ZERO),
                )
            }
        };
        if !resp.status.is_success() {
            return (
                Err(format!("authorizer answered HTTP {}", resp.status)),
                Some(Duration::ZERO),
            );
        }
        let answer: Value = match serde_json::from_slice(&resp.body) {
            Ok(v) => v,
            Err(_) => {
                return (
                    Err("authorizer answered with invalid JSON".into()),
                    Some(Duration::ZERO),
                )
            }
        };
        let ttl = answer
            .get("ttlOverride")
            .and_then(Value::as_u64)
            .map(|s| Duration::from_secs(s.min(3600)));
        match answer.get("isAuthorized") {
            Some(Value::Bool(true)) => {
                let ctx = match answer.get("handlerContext") {
                    None | Some(Value::Null) => json!({}),
                    Some(v @ Value::Object(_)) => v.clone(),
                    Some(_) => {
                        return (
                            Err("authorizer handlerContext is not an object".into()),
                            Some(Duration::ZERO),
                        )
                    }
                };
                (Ok(ctx), ttl)
            }
            Some(Value::Bool(false)) => (Err("authorizer denied".into()), ttl),
            _ => (
                Err("authorizer answer has no boolean isAuthorized".into()),
                Some(Duration::ZERO),
            ),
        }
    }
}
