//! HTTP functions: Herald POSTs the event to a URL, for functions written
//! in any language, with Lambda's invoke contract. The request carries the
//! headers Lambda's runtime API gives a function (`Lambda-Runtime-Aws-Request-Id`,
//! `-Deadline-Ms`, `-Invoked-Function-Arn`, `-Client-Context`); the answer is
//! the result, or a function error when the response says
//! `X-Amz-Function-Error` or has an error status (its body passed on when
//! it is `{"errorType", "errorMessage"}`, else described).

use crate::http_client::HttpClient;
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;

/// An HTTP function's answer: the payload, and whether it is an error.
pub struct Answer {
    pub payload: Bytes,
    pub error: bool,
}

/// What the request says about the invocation.
pub struct Call<'a> {
    pub request_id: &'a str,
    pub deadline_ms: u128,
    pub arn: &'a str,
    pub client_context: Option<&'a str>,
}

fn error(error_type: &str, message: String) -> Answer {
    Answer {
        payload: Bytes::from(
            json!({"errorType": error_type, "errorMessage": message, "trace": []}).to_string(),
        ),
        error: true,
    }
}

pub async fn invoke(
    http: &HttpClient,
    url: &str,
    payload: Bytes,
    call: Call<'_>,
    timeout: Duration,
) -> Answer {
    let deadline = call.deadline_ms.to_string();
    let mut headers = vec![
        ("content-type", "application/json"),
        ("lambda-runtime-aws-request-id", call.request_id),
        ("lambda-runtime-deadline-ms", deadline.as_str()),
        ("lambda-runtime-invoked-function-arn", call.arn),
    ];
    if let Some(c) = call.client_context {
        headers.push(("lambda-runtime-client-context", c));
    }
    let resp = match http
        .request(hyper::Method::POST, url, &headers, payload, timeout)
        .await
    {
        Ok(r) => r,
        Err(e) if e.contains("no answer within") => {
            return error(
                "Sandbox.Timedout",
                format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            )
        }
        Err(e) => return error("Herald.FunctionUnreachable", e),
    };
    let flagged = resp.headers.contains_key("x-amz-function-error");
    if resp.status.is_success() && !flagged {
        let body = if resp.body.is_empty() {
            Bytes::from_static(b"null")
        } else {
            resp.body
        };
        return Answer {
            payload: body,
            error: false,
        };
    }
    let shaped = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .filter(|v| v.get("errorMessage").is_some() || v.get("errorType").is_some());
    match shaped {
        Some(_) => Answer {
            payload: resp.body,
            error: true,
        },
        None => {
            let text: String = String::from_utf8_lossy(&resp.body)
                .chars()
                .take(256)
                .collect();
            error(
                "Herald.FunctionHttpError",
                format!(
                    "the function's URL answered HTTP {}: {text}",
                    resp.status.as_u16()
                ),
            )
        }
    }
}
