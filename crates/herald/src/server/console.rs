//! The web console: a page, embedded in the binary, that speaks the real
//! protocol from the browser (connect with a key, subscribe, publish, watch
//! events), plus a small stats endpoint for its live view.
//!
//! It holds no secret: the page never receives a key from the server; the key a
//! person types stays in that page's memory, and the stats endpoint answers only
//! to a valid key.

use super::http::{error, json_response, Body};
use super::ConnContext;
use crate::api::{Caller, HttpRequestParts};
use crate::auth::AuthHeaders;
use bytes::Bytes;
use herald_core::OpError;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The page may talk only to this server: its own origin over HTTP, and
/// WebSocket connections to the same host (named explicitly, since browsers
/// differ on whether `'self'` covers `ws:`/`wss:`).
fn csp(host: Option<&str>) -> HeaderValue {
    // Only a plain host[:port] goes into the header; anything else gets the
    // strictest policy.
    let host = host.filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    });
    let connect = match host {
        Some(h) => format!("connect-src 'self' ws://{h} wss://{h}"),
        None => "connect-src 'self'".into(),
    };
    HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; {connect}; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ))
    .expect("only header-safe characters")
}

fn asset(body: &'static str, content_type: &'static str, csp: HeaderValue) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", csp);
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

pub async fn serve(req: Request<Incoming>, ctx: &ConnContext) -> Response<Body> {
    let policy = csp(req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok()));
    match req.uri().path() {
        "/console" | "/console/" => asset(INDEX, "text/html; charset=utf-8", policy),
        "/console/console.js" => asset(SCRIPT, "text/javascript; charset=utf-8", policy),
        "/console/console.css" => asset(STYLE, "text/css; charset=utf-8", policy),
        "/console/api/stats" => stats(&req, ctx).await,
        _ => error(StatusCode::NOT_FOUND, &OpError::bad_request("Not found")),
    }
}

async fn stats(req: &Request<Incoming>, ctx: &ConnContext) -> Response<Body> {
    let api = &ctx.api;
    if !api
        .may_connect(Caller {
            headers: &AuthHeaders::from_http(req.headers()),
            source_ip: Some(ctx.peer.ip()),
            http: Some(HttpRequestParts {
                method: req.method().as_str(),
                path: req.uri().path(),
                query: req.uri().query().unwrap_or_default(),
                body: &[],
            }),
        })
        .await
    {
        return error(StatusCode::UNAUTHORIZED, &OpError::unauthorized());
    }
    let t = api.metrics.totals();
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": api.started.elapsed().as_secs(),
        "engine": api.hub.engine.name(),
        "namespaces": api.config.namespaces.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        "connections": t.connections,
        "subscriptions": t.subscriptions,
        "publishRequests": t.publish_requests,
        "eventsIn": t.events_in,
        "eventsDelivered": t.events_delivered,
    });
    let mut r = json_response(StatusCode::OK, body.to_string());
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::csp;

    #[test]
    fn websocket_connections_only_to_the_same_host() {
        let p = csp(Some("127.0.0.1:8080"));
        let p = p.to_str().unwrap();
        assert!(p.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(!p.contains(" ws: ") && !p.contains(" wss:;"));
        // A host header that could smuggle directives gets the strict policy.
        let p = csp(Some("evil.example; connect-src *"));
        assert!(p.to_str().unwrap().contains("connect-src 'self';"));
        assert!(csp(None).to_str().unwrap().contains("connect-src 'self';"));
    }
}
