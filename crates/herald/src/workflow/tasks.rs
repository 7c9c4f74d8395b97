//! What a `Task` state calls, through the server's one function invoker,
//! one outbound HTTP client, the event bus and the channels:
//!
//! | `Resource` | arguments | result |
//! |---|---|---|
//! | `arn:aws:states:::lambda:invoke` | `FunctionName`, `Payload` | `{"Payload", "StatusCode": 200, "ExecutedVersion"}` |
//! | `arn:aws:lambda:<region>:<account>:function:<name>` | the payload | the function's result |
//! | `arn:aws:states:::http:invoke` | `ApiEndpoint`, `Method`, `Headers`, `QueryParameters`, `RequestBody`, `Authentication.ConnectionArn` (the event bus's connection: its authorization, headers and query) | `{"StatusCode", "StatusText", "Headers", "ResponseBody"}` |
//! | `arn:aws:states:::events:putEvents` | `Entries` | `PutEvents`' answer |
//! | `arn:aws:states:::herald:publish` (Herald's) | `Channel` (`/ns/path`), `Events` (a list) | `{}` |
//!
//! A function error is the error its `errorType` names (`Lambda.Unknown`
//! without one); an HTTP answer outside 2xx is
//! `States.Http.StatusCode.<code>`.

use super::run::Tasks;
use super::Failure;
use crate::bus::target::Parts;
use crate::bus::EventBuses;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// An HTTP task's longest wait for its answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HeraldTasks {
    pub parts: Arc<Parts>,
    pub buses: Arc<EventBuses>,
}

fn bad(message: impl Into<String>) -> Failure {
    Failure::new("States.Runtime", message)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl HeraldTasks {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, Failure> {
        let body = Bytes::from(payload.to_string());
        let invoked = self
            .parts
            .functions
            .invoke_built(function, body)
            .await
            .map_err(|e| match e {
                crate::functions::InvokeError::NotFound(n) => Failure::new(
                    "Lambda.ResourceNotFoundException",
                    format!("Function not found: {n}"),
                ),
                crate::functions::InvokeError::TooManyRequests(w) => {
                    Failure::new("Lambda.TooManyRequestsException", w)
                }
                other => Failure::new("Lambda.ServiceException", format!("{other:?}")),
            })?;
        let result: Value = serde_json::from_slice(&invoked.payload).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&invoked.payload).into_owned())
        });
        if invoked.function_error {
            let error = result
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("Lambda.Unknown")
                .to_string();
            return Err(Failure::new(error, text(&result)));
        }
        Ok(result)
    }

    async fn http(&self, args: &Value) -> Result<Value, Failure> {
        let endpoint = args
            .get("ApiEndpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("http:invoke needs ApiEndpoint"))?;
        let method = args.get("Method").and_then(Value::as_str).unwrap_or("GET");
        let method = hyper::Method::from_bytes(method.as_bytes())
            .map_err(|_| bad(format!("http:invoke: {method} is not an HTTP method")))?;
        // `Authentication.ConnectionArn`: the event bus's connection adds
        // its headers, query parameters and authorization.
        let connection = match args
            .pointer("/Authentication/ConnectionArn")
            .and_then(Value::as_str)
        {
            None => None,
            Some(arn) => Some(
                self.buses
                    .view()
                    .connections
                    .values()
                    .find(|c| c.arn == arn)
                    .cloned()
                    .ok_or_else(|| bad(format!("Connection {arn} does not exist.")))?,
            ),
        };
        let mut url = endpoint.to_string();
        let mut query: Vec<(String, String)> = connection
            .as_deref()
            .map(crate::bus::api_destination::Calls::connection_query)
            .unwrap_or_default();
        if let Some(q) = args.get("QueryParameters").and_then(Value::as_object) {
            query.extend(q.iter().map(|(k, v)| (k.clone(), text(v))));
        }
        {
            let pairs: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        crate::auth::sigv4::uri_encode(k),
                        crate::auth::sigv4::uri_encode(v)
                    )
                })
                .collect();
            if !pairs.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&pairs.join("&"));
            }
        }
        let mut headers: Vec<(String, String)> = args
            .get("Headers")
            .and_then(Value::as_object)
            .map(|h| h.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default();
        if let Some(c) = &connection {
            let added = self
                .parts
                .calls
                .connection_headers(self.parts.functions.http(), c)
                .await
                .map_err(|f| Failure::new("States.Http.Socket", f.message))?;
            headers.extend(added);
        }
        let body = match args.get("RequestBody") {
            None | Some(Value::Null) => Bytes::new(),
            Some(Value::String(s)) => Bytes::from(s.clone()),
            Some(other) => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                Bytes::from(other.to_string())
            }
        };
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = self
            .parts
            .functions
            .http()
            .request(method, &url, &refs, body, HTTP_TIMEOUT)
            .await
            .map_err(|e| Failure::new("States.Http.Socket", e))?;
        let text_body = String::from_utf8_lossy(&r.body).into_owned();
        let response_body =
            serde_json::from_str::<Value>(&text_body).unwrap_or(Value::String(text_body.clone()));
        let status = r.status.as_u16();
        if !r.status.is_success() {
            return Err(Failure::new(
                format!("States.Http.StatusCode.{status}"),
                text_body,
            ));
        }
        let mut h = Map::new();
        for (k, v) in &r.headers {
            h.insert(
                k.as_str().to_string(),
                json!([String::from_utf8_lossy(v.as_bytes())]),
            );
        }
        Ok(json!({
            "StatusCode": status,
            "StatusText": r.status.canonical_reason().unwrap_or_default(),
            "Headers": h,
            "ResponseBody": response_body,
        }))
    }
}

impl Tasks for HeraldTasks {
    fn call<'a>(&'a self, resource: &'a str, args: Value) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            match resource {
                "arn:aws:states:::lambda:invoke" => {
                    let f = args
                        .get("FunctionName")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("lambda:invoke needs FunctionName"))?;
                    let payload = args.get("Payload").cloned().unwrap_or(json!({}));
                    let result = self.invoke(f, &payload).await?;
                    Ok(json!({"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}))
                }
                r if r.starts_with("arn:aws:lambda:") => self.invoke(r, &args).await,
                "arn:aws:states:::http:invoke" => self.http(&args).await,
                "arn:aws:states:::events:putEvents" => {
                    let entries = args
                        .get("Entries")
                        .and_then(Value::as_array)
                        .ok_or_else(|| bad("events:putEvents needs Entries"))?;
                    self.buses.put_events(entries).await.map_err(|e| match e {
                        crate::bus::put::PutError::Invalid(m) => {
                            Failure::new("EventBridge.ValidationException", m)
                        }
                        crate::bus::put::PutError::Log(m) => {
                            Failure::new("EventBridge.InternalException", m)
                        }
                    })
                }
                "arn:aws:states:::herald:publish" => {
                    let channel = args
                        .get("Channel")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("herald:publish needs Channel"))?;
                    let reference = if channel.starts_with("channel:") {
                        channel.to_string()
                    } else {
                        format!("channel:{channel}")
                    };
                    let target = crate::esm::target::ChannelTarget::parse(&reference)
                        .ok_or_else(|| bad(format!("{channel} is not a channel")))?;
                    let events: Vec<String> = match args.get("Events") {
                        Some(Value::Array(a)) => a.iter().map(Value::to_string).collect(),
                        Some(other) => vec![other.to_string()],
                        None => return Err(bad("herald:publish needs Events")),
                    };
                    target
                        .publish(&self.parts.apis, events)
                        .await
                        .map_err(|e| Failure::new("Herald.PublishFailed", e))?;
                    Ok(json!({}))
                }
                other => Err(bad(format!("{other} is not a resource Herald serves"))),
            }
        })
    }
}
