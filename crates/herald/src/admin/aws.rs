//! The AWS wire conventions of the admin listener: which protocol a request
//! speaks, and AWS's error shapes for each.
//!
//! botocore addresses a REST-JSON service (AppSync, Lambda) by method and
//! path, and a JSON 1.0/1.1 service (EventBridge, Step Functions) by
//! `POST /` with `X-Amz-Target: <Service>.<Operation>`. Errors follow each
//! protocol: REST-JSON puts the exception name in `x-amzn-ErrorType` and
//! `{"message": ...}` in the body; JSON 1.x puts `{"__type": ..., "message":
//! ...}` in the body (status 400 unless the exception says otherwise).
//! botocore reads the name from either place, so clients see the exception
//! AWS would have raised.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

pub use crate::auth::sigv4::percent_decode;

pub type Body = Full<Bytes>;

/// An error to answer with: HTTP status, AWS exception name, message.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> AwsError {
        AwsError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> AwsError {
        AwsError::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    /// The store failed: logged, and answered as AWS answers its own
    /// failures. The change was not made.
    pub fn store_failed(e: String) -> AwsError {
        tracing::error!(error = %e, "the store failed");
        AwsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            "The change could not be stored; nothing changed",
        )
    }

    pub fn not_found(message: impl Into<String>) -> AwsError {
        AwsError::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    /// A REST-JSON error response.
    pub fn rest(&self) -> Response<Body> {
        let mut r = json_response(self.status, &json!({"message": self.message}));
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        r
    }

    /// A JSON 1.x error response.
    pub fn json(&self, content_type: &'static str) -> Response<Body> {
        let mut r = json_response(
            self.status,
            &json!({"__type": self.kind, "message": self.message}),
        );
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        r
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A REST path's segments, percent-decoded (`/a/b%2Fc/` is `["a", "b/c"]`).
pub fn path_segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect()
}

/// The query parameter `name`, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// One page of `items` for `maxResults` (1..=`max`, default `max`) and an
/// opaque `nextToken` (the offset), as AppSync's list operations page.
pub fn page<T: Clone>(
    items: &[T],
    query: &str,
    max: usize,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let limit = match query_param(query, "maxResults") {
        None => max,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(AwsError::bad_request(format!(
                    "maxResults must be an integer from 1 to {max}"
                )))
            }
        },
    };
    let start = match query_param(query, "nextToken") {
        None => 0,
        Some(t) => t
            .strip_prefix("herald-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| AwsError::bad_request("The nextToken is not valid"))?,
    };
    let end = (start + limit).min(items.len());
    let next = (end < items.len()).then(|| format!("herald-{end}"));
    Ok((items[start..end].to_vec(), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_tokens() {
        let items: Vec<u32> = (0..5).collect();
        let (p, next) = page(&items, "maxResults=2", 25).unwrap();
        assert_eq!((p, next.as_deref()), (vec![0, 1], Some("herald-2")));
        let (p, next) = page(&items, "maxResults=2&nextToken=herald-4", 25).unwrap();
        assert_eq!((p, next), (vec![4], None));
        assert!(page(&items, "maxResults=0", 25).is_err());
        assert!(page(&items, "maxResults=26", 25).is_err());
        assert!(page(&items, "nextToken=bogus", 25).is_err());
        assert_eq!(percent_decode("arn%3Aaws%3Aappsync"), "arn:aws:appsync");
    }
}
