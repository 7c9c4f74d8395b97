//! A client for AWS's JSON protocols (SQS's JSON 1.0, Kinesis's JSON 1.1),
//! over the server's one outbound HTTP client, SigV4-signed when the event
//! source has credentials.

use super::super::config::EventSourceFile;
use crate::http_client::HttpClient;
use bytes::Bytes;
use hyper::Method;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct AwsJson {
    http: HttpClient,
    endpoint: String,
    host: String,
    credentials: Option<(String, String)>,
    region: String,
    /// SigV4's service name (`sqs`, `kinesis`).
    service: &'static str,
    /// `AmazonSQS`, `Kinesis_20131202`.
    target: &'static str,
    content_type: &'static str,
}

impl AwsJson {
    pub fn new(
        http: HttpClient,
        source: &EventSourceFile,
        region: &str,
        service: &'static str,
        target: &'static str,
        content_type: &'static str,
    ) -> AwsJson {
        let endpoint = source.url.trim_end_matches('/').to_string();
        let host = endpoint
            .split("://")
            .nth(1)
            .unwrap_or(&endpoint)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        AwsJson {
            http,
            host,
            endpoint,
            credentials: source
                .access_key_id
                .clone()
                .zip(source.secret_access_key.clone()),
            region: region.to_string(),
            service,
            target,
            content_type,
        }
    }

    /// One call; an error answer becomes its type and message.
    pub async fn call(&self, op: &str, body: Value, timeout: Duration) -> Result<Value, String> {
        let body = Bytes::from(body.to_string());
        let target = format!("{}.{op}", self.target);
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), self.content_type.into()),
            ("x-amz-target".into(), target.clone()),
        ];
        if let Some((id, secret)) = &self.credentials {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            headers.extend(crate::auth::sigv4::sign(
                id,
                secret,
                &self.region,
                self.service,
                "POST",
                "/",
                &[
                    ("host", &self.host),
                    ("content-type", self.content_type),
                    ("x-amz-target", &target),
                ],
                &body,
                now,
            ));
        }
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = self
            .http
            .request(
                Method::POST,
                &format!("{}/", self.endpoint),
                &refs,
                body,
                timeout,
            )
            .await
            .map_err(|e| format!("{} {op}: {e}", self.service))?;
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if resp.status.as_u16() == 200 && !v.is_object() {
            return Err(format!(
                "{} {op}: the answer is not JSON (is this the {} endpoint? some local stand-ins route unsigned requests elsewhere: give the event source credentials)",
                self.service, self.service
            ));
        }
        if resp.status.as_u16() != 200 {
            return Err(format!(
                "{} {op}: {} {}: {}",
                self.service,
                resp.status.as_u16(),
                v["__type"].as_str().unwrap_or_default(),
                v["message"]
                    .as_str()
                    .or(v["Message"].as_str())
                    .unwrap_or_default()
            ));
        }
        Ok(v)
    }
}
