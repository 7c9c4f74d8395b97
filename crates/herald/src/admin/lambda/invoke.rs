//! `Invoke`: `RequestResponse` (the answer, or a function error as 200 with
//! `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage}`),
//! `Event` (202, run in the background with retries) and `DryRun` (204: the
//! function exists and may be invoked). `X-Amz-Log-Type: Tail` returns
//! Lambda's `START`/`END`/`REPORT` lines in `X-Amz-Log-Result` (base64), with
//! the init time of a cold start.

use super::super::aws::{query_param, AwsError, Body};
use super::super::AdminState;
use super::functions::empty;
use super::not_found;
use crate::functions::InvokeError;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Response, StatusCode};

fn error(state: &AdminState, name: &str, e: InvokeError) -> AwsError {
    match e {
        InvokeError::NotFound(_) => not_found(state, name),
        InvokeError::TooManyRequests(reason) => AwsError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            format!("Rate Exceeded. ({reason})"),
        ),
        InvokeError::InvalidContent(m) => {
            AwsError::new(StatusCode::BAD_REQUEST, "InvalidRequestContentException", m)
        }
        InvokeError::TooLarge(limit) => AwsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
        ),
        InvokeError::Service(m) => {
            AwsError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", m)
        }
    }
}

pub async fn invoke(
    state: &AdminState,
    name: &str,
    headers: &HeaderMap,
    query: &str,
    body: &[u8],
) -> Result<Response<Body>, AwsError> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let functions = state.functions();
    if let Some(q) = query_param(query, "Qualifier").filter(|q| q != "$LATEST") {
        return Err(AwsError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!(
                "Function not found: {}:{q} (Herald serves $LATEST only)",
                functions.arn(crate::functions::Functions::name_of(name))
            ),
        ));
    }
    let payload = Bytes::copy_from_slice(body);
    match header("x-amz-invocation-type").unwrap_or("RequestResponse") {
        "RequestResponse" => {}
        "Event" => {
            functions
                .invoke_async(name, payload)
                .map_err(|e| error(state, name, e))?;
            return Ok(empty(StatusCode::ACCEPTED));
        }
        "DryRun" => {
            return match functions.get(name) {
                Some(_) => Ok(empty(StatusCode::NO_CONTENT)),
                None => Err(not_found(state, name)),
            }
        }
        other => {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!("InvocationType {other} is not RequestResponse, Event or DryRun"),
            ))
        }
    }
    let client_context = match header("x-amz-client-context") {
        None => None,
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    AwsError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidParameterValueException",
                        "X-Amz-Client-Context must be base64 JSON",
                    )
                })?,
        ),
    };
    let r = functions
        .invoke(name, payload, client_context.as_deref())
        .await
        .map_err(|e| error(state, name, e))?;
    let mut resp = Response::new(Full::new(r.payload));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if r.function_error {
        h.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if header("x-amz-log-type") == Some("Tail") {
        let ms = r.duration.as_secs_f64() * 1e3;
        let init = r
            .init
            .map(|d| format!("\tInit Duration: {:.2} ms", d.as_secs_f64() * 1e3))
            .unwrap_or_default();
        let log = format!(
            "START RequestId: {id} Version: $LATEST\nEND RequestId: {id}\nREPORT RequestId: {id}\tDuration: {ms:.2} ms{init}\n",
            id = r.request_id
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(log);
        if let Ok(v) = HeaderValue::from_str(&b64) {
            h.insert("x-amz-log-result", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&r.request_id) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(resp)
}
