//! HTTP front: `POST /event` (publish), `GET /event/history` (Herald's
//! history read API), CORS, and routing of `GET /event/realtime` to the
//! WebSocket upgrade.

use super::{console, ws, ConnContext};
use crate::api::{Caller, HttpRequestParts};
use crate::auth::AuthHeaders;
use crate::metrics::Transport;
use bytes::Bytes;
use herald_core::reply::http_error_body;
use herald_core::{ErrorType, OpError};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use std::convert::Infallible;
use tracing::Instrument;

pub type Body = Full<Bytes>;

const CORS_ALLOW_HEADERS: &str = "content-type, x-api-key, authorization, x-amz-date, \
     x-amz-security-token, x-amz-user-agent, x-amz-content-sha256";

/// Route one request. Every log line of the request carries its id, at every
/// level: the span is at INFO, the default level, so its fields are kept
/// whenever any line of the request is.
pub async fn handle(
    req: Request<Incoming>,
    ctx: ConnContext,
) -> Result<Response<Body>, Infallible> {
    let request_id = crate::new_uuid().to_string();
    let span = tracing::info_span!("http", req = %request_id, peer = %ctx.peer);
    route(req, ctx, request_id).instrument(span).await
}

async fn route(
    req: Request<Incoming>,
    ctx: ConnContext,
    request_id: String,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    // Every API is also reachable by path, `/apis/<apiId>/event[/realtime]`
    // (the form clients use behind a shared domain), with its metrics at
    // `/apis/<apiId>/metrics`.
    let by_path = path.strip_prefix("/apis/").map(|rest| {
        let (id, endpoint) = rest.split_once('/').unwrap_or((rest, ""));
        (ctx.apis.get(id), format!("/{endpoint}"))
    });
    let mut ctx = ctx;
    // And by host, `<apiId>.<base_domain>`, when a base domain is configured.
    if let Some(domain) = &ctx.apis.default_api().config.base_domain {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        if let Some(id) = crate::api::registry::api_id_from_host(host, domain) {
            match ctx.apis.get(id) {
                Some(api) => ctx.api = api,
                None => {
                    let r = error(
                        StatusCode::NOT_FOUND,
                        &OpError::bad_request(format!("Not found: no API {id} on this server")),
                    );
                    return Ok(finish(r, &request_id));
                }
            }
        }
    }
    let path = match by_path {
        Some((Some(api), endpoint)) if endpoint.starts_with("/event") || endpoint == "/metrics" => {
            ctx.api = api;
            endpoint
        }
        Some(_) => {
            let r = error(
                StatusCode::NOT_FOUND,
                &OpError::bad_request(
                    "Not found: no API with that id on this server (/apis/<apiId>/event, /apis/<apiId>/metrics)",
                ),
            );
            return Ok(finish(r, &request_id));
        }
        None => path,
    };
    let resp = match (path.as_str(), req.method()) {
        ("/event", &Method::POST) => publish(req, &ctx).await,
        ("/event/history", &Method::GET) => history(req, &ctx).await,
        ("/health", &Method::GET) => json_response(StatusCode::OK, r#"{"status":"ok"}"#.into()),
        ("/ready", &Method::GET) => ready(&ctx),
        ("/metrics", &Method::GET) if ctx.api.config.metrics => {
            let mut r = Response::new(Full::new(Bytes::from(ctx.api.metrics.encode())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
        (p, &Method::GET)
            if ctx.api.config.console && (p == "/console" || p.starts_with("/console/")) =>
        {
            console::serve(req, &ctx).await
        }
        ("/event" | "/event/history", &Method::OPTIONS) => preflight(),
        ("/event", _) => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &OpError::bad_request("Use POST to publish to /event"),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            r
        }
        ("/event/realtime", _) => ws::upgrade(req, ctx),
        _ => error(
            StatusCode::NOT_FOUND,
            &OpError::bad_request(
                "Not found: publish with POST /event, subscribe over WebSocket at /event/realtime",
            ),
        ),
    };
    Ok(finish(resp, &request_id))
}

/// The headers every answer carries: the request id, and CORS on anything but
/// an upgrade.
fn finish(mut resp: Response<Body>, request_id: &str) -> Response<Body> {
    let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(request_id).unwrap(),
    );
    if !upgraded {
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        h.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("x-amzn-ErrorType, x-amzn-RequestId"),
        );
    }
    resp
}

pub fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Ready: not shutting down and the engine can carry publishes.
fn ready(ctx: &ConnContext) -> Response<Body> {
    let engine = ctx.api.hub.engine.name();
    if ctx.draining.load(std::sync::atomic::Ordering::SeqCst) || *ctx.shutdown.borrow() {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"status":"shutting_down","engine":"{engine}"}}"#),
        )
    } else if !ctx.api.hub.engine.is_ready() {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"status":"engine_unavailable","engine":"{engine}"}}"#),
        )
    } else {
        json_response(
            StatusCode::OK,
            format!(r#"{{"status":"ready","engine":"{engine}"}}"#),
        )
    }
}

/// A JSON error response with `x-amzn-ErrorType`.
pub fn error(status: StatusCode, e: &OpError) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(http_error_body(e))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        "x-amzn-errortype",
        HeaderValue::from_static(e.kind.as_str()),
    );
    r
}

fn op_error(e: &OpError) -> Response<Body> {
    let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, e)
}

fn preflight() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("86400"));
    r
}

/// `GET /event/history?channel=/ns/a[&limit=N][&nextToken=T]` (Herald's
/// extension): a page of a channel's kept events, oldest first, with the
/// same authorization as a subscription to the channel (its auth modes,
/// and its `onSubscribe` handler, whose filter applies to the page).
async fn history(req: Request<Incoming>, ctx: &ConnContext) -> Response<Body> {
    let api = &ctx.api;
    let query = req.uri().query().unwrap_or_default().to_string();
    let param = |name| crate::admin::aws::query_param(&query, name);
    let Some(channel) = param("channel") else {
        return op_error(&OpError::bad_request(
            "Give the channel: GET /event/history?channel=/namespace/channel",
        ));
    };
    let headers = AuthHeaders::from_http(req.headers());
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let caller = Caller {
        headers: &headers,
        source_ip: Some(ctx.peer.ip()),
        http: Some(HttpRequestParts {
            method: &method,
            path: &path,
            query: &query,
            body: &[],
        }),
    };
    let limit = param("limit");
    let token = param("nextToken");
    let page = match crate::api::history::read_page(
        api,
        caller,
        &channel,
        limit.as_deref(),
        token.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return op_error(&e),
    };
    json_response(StatusCode::OK, page.to_string())
}

async fn publish(req: Request<Incoming>, ctx: &ConnContext) -> Response<Body> {
    let api = &ctx.api;
    let max = api.limits().max_transport_bytes();
    let too_large = || {
        op_error(&OpError::new(
            ErrorType::PayloadTooLarge,
            format!("The request body is larger than {max} bytes"),
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    let headers = AuthHeaders::from_http(req.headers());
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return op_error(&OpError::bad_request(format!(
                "Could not read the request body: {e}"
            )))
        }
    };
    let mut obj = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return op_error(&OpError::bad_request(
                "The body must be a JSON object: {\"channel\": ..., \"events\": [...]}",
            ))
        }
        Err(e) => {
            return op_error(&OpError::bad_request(format!(
                "The body is not valid JSON: {e}"
            )))
        }
    };
    let channel = match obj.remove("channel") {
        Some(Value::String(c)) => c,
        Some(_) => return op_error(&OpError::bad_request("'channel' must be a string")),
        None => return op_error(&OpError::bad_request("The body has no 'channel'")),
    };
    match api
        .publish(
            Transport::Http,
            &channel,
            obj.remove("events"),
            Caller {
                headers: &headers,
                source_ip: Some(ctx.peer.ip()),
                http: Some(HttpRequestParts {
                    method: &method,
                    path: &path,
                    query: &query,
                    body: &body,
                }),
            },
        )
        .await
    {
        Ok(result) => {
            let mut r = Response::new(Full::new(Bytes::from(result.http_body())));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => op_error(&e),
    }
}
