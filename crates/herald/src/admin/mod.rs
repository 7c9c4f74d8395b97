//! The admin listener: AWS's management APIs on one address, the way
//! LocalStack's edge port serves them, so the AWS CLI, SDKs and Terraform work
//! with `--endpoint-url` pointed at it.
//!
//! Every request must be signed with SigV4 (services `appsync`, `lambda`,
//! `events`, `states`, `fis`, in the configured region) by a credential of
//! `[[iam_credentials]]` holding the `admin` grant; the development mode
//! generates one and prints it. Then the request is dispatched by protocol:
//! `X-Amz-Target` names a JSON 1.x operation ([`events`]: EventBridge;
//! Step Functions later), anything else is a
//! REST-JSON path ([`appsync`], [`lambda`]).
//! Whatever matches no operation gets AWS's `UnknownOperationException`, never
//! a hang or an HTML page.
//!
//! The listener is separate from the public one so it can stay on loopback or
//! a private network; it speaks plain HTTP (put a TLS proxy in front of it to
//! reach it across a network).

mod appsync;
pub(crate) mod aws;
mod events;
mod fis;
mod lambda;
mod states;

use crate::api::{EventApi, Registry};
use crate::auth::sigv4::{IamVerifier, SigError};
use crate::auth::{AuthHeaders, Signed};
use aws::{AwsError, Body};
use http_body_util::{BodyExt, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

/// The SigV4 services whose APIs the admin listener serves.
const SERVICES: &[&str] = &["appsync", "lambda", "events", "states", "fis"];
/// Largest request body (Lambda's zip uploads will need this much).
const MAX_BODY: usize = 70 << 20;

/// What fault injection experiments act on in this server (for those the
/// configuration file starts).
pub fn fault_host(apis: Arc<Registry>) -> Arc<dyn crate::faults::experiments::Host> {
    Arc::new(fis::ServerHost { apis })
}

/// What every admin request sees.
pub struct AdminState {
    pub apis: Arc<Registry>,
    pub mappings: Arc<crate::esm::Mappings>,
    pub buses: Arc<crate::bus::EventBuses>,
    pub workflows: Arc<crate::workflow::Workflows>,
    verifier: IamVerifier,
    /// The public listener, for the endpoints `GetApi` returns.
    public: SocketAddr,
}

/// One API, as the operations on it see it.
pub struct Scope {
    pub api: Arc<EventApi>,
    /// Where clients reach this API: `host:port` of the public listener, and
    /// `/apis/<apiId>` after it for a created API (`GetApi`'s `dns`).
    public: String,
    /// When the API was created (epoch seconds).
    pub created: f64,
}

impl Scope {
    fn public_authority(&self) -> String {
        self.public.clone()
    }
}

impl AdminState {
    /// The API with this id, or AppSync's `NotFoundException`.
    fn scope(&self, id: &str) -> Result<Scope, AwsError> {
        let api = self
            .apis
            .get(id)
            .ok_or_else(|| AwsError::not_found(format!("GraphQL API {id} not found.")))?;
        Ok(self.scope_of(api))
    }

    fn scope_of(&self, api: Arc<EventApi>) -> Scope {
        let ip = self.public.ip();
        let host = if ip.is_unspecified() {
            "127.0.0.1".to_string()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        // Clients append `/event` to `dns.HTTP`: with a base domain every
        // API by host; otherwise the file's API at the root, created ones
        // by path.
        let public = match &self.apis.default_api().config.base_domain {
            Some(domain) => format!("{}.{domain}", api.config.api_id),
            None if Arc::ptr_eq(&api, self.apis.default_api()) => {
                format!("{host}:{}", self.public.port())
            }
            None => format!("{host}:{}/apis/{}", self.public.port(), api.config.api_id),
        };
        Scope {
            created: api.created,
            api,
            public,
        }
    }
}

/// A bound admin listener.
pub struct AdminServer {
    listener: TcpListener,
    state: Arc<AdminState>,
}

impl AdminServer {
    pub async fn bind(
        addr: SocketAddr,
        apis: Arc<Registry>,
        mappings: Arc<crate::esm::Mappings>,
        buses: Arc<crate::bus::EventBuses>,
        workflows: Arc<crate::workflow::Workflows>,
        public: SocketAddr,
    ) -> Result<AdminServer, String> {
        let api = apis.default_api().clone();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))?;
        let config = &api.config;
        let verifier = IamVerifier::new(&config.aws_region, &config.iam_credentials, "");
        if !config.iam_credentials.iter().any(|c| {
            c.allow
                .iter()
                .any(|g| g.actions.iter().any(|a| a == "admin"))
        }) {
            tracing::warn!(
                "the admin listener is on, but no [[iam_credentials]] entry has the admin grant: every admin request will be refused"
            );
        }
        Ok(AdminServer {
            listener,
            state: Arc::new(AdminState {
                apis,
                mappings,
                buses,
                workflows,
                verifier,
                public,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serve until `shutdown` turns true; requests in flight then finish.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((tcp, peer)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let state = self.state.clone();
                    let mut stop = shutdown.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(req, state.clone(), peer));
                        let conn = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(30))
                            .serve_connection(TokioIo::new(tcp), svc);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = crate::server::shutdown_requested(&mut stop) => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
                _ = crate::server::shutdown_requested(&mut shutdown) => return,
            }
        }
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<AdminState>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let request_id = crate::new_uuid().to_string();
    let span = tracing::info_span!("admin", req = %request_id, peer = %peer);
    let mut resp = serve(req, &state).instrument(span).await;
    resp.headers_mut().insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_str(&request_id).unwrap(),
    );
    Ok(resp)
}

async fn serve(req: Request<hyper::body::Incoming>, state: &AdminState) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let http_headers = req.headers().clone();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = AuthHeaders::from_http(req.headers());
    // API keys travel in paths (`/v1/apis/{apiId}/apikeys/{id}`): never log them.
    let shown = loggable_path(&path);
    // JSON 1.x requests name their operation and protocol in headers.
    let target = headers.get("x-amz-target").map(str::to_string);
    let json_type = match headers.get("content-type") {
        Some(t) if t.starts_with("application/x-amz-json-1.0") => "application/x-amz-json-1.0",
        _ => "application/x-amz-json-1.1",
    };
    let answer = |e: AwsError| match target {
        Some(_) => e.json(json_type),
        None => e.rest(),
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return answer(AwsError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!("The request body is larger than {MAX_BODY} bytes"),
            ))
        }
    };
    let signed = Signed::Http {
        method: method.as_str(),
        path: &path,
        query: &query,
        body: &body,
    };
    if let Err(e) = authorize(state, &headers, &signed) {
        tracing::info!(%method, path = %shown, reason = %e.message, "admin request refused");
        return answer(e);
    }
    let result = match &target {
        Some(t) => match (
            t.strip_prefix(events::PREFIX),
            t.strip_prefix(states::PREFIX),
        ) {
            (Some(op), _) => events::route(state, op, &body).await,
            (_, Some(op)) => states::route(state, op, &body).await,
            _ => None,
        }
        .unwrap_or_else(|| {
            Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                format!("Herald does not serve the operation {t} (yet)"),
            ))
        }),
        None => match appsync::route(state, &method, &path, &query, &body).await {
            Some(r) => Some(r),
            None => match fis::route(state, &method, &path, &query, &body).await {
                Some(r) => Some(r),
                None => lambda::route(state, &method, &path, &query, &http_headers, &body).await,
            },
        }
        .unwrap_or_else(|| {
            Err(AwsError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                format!("No operation matches {method} {shown}"),
            ))
        }),
    };
    match result {
        Ok(r) => {
            tracing::debug!(%method, path = %shown, "admin request");
            r
        }
        Err(e) => {
            tracing::info!(%method, path = %shown, error = e.kind, message = %e.message, "admin request failed");
            answer(e)
        }
    }
}

/// A request path for the log: an API key in it is cut off.
fn loggable_path(path: &str) -> String {
    match path.find("/apikeys/") {
        Some(i) => format!("{}…", &path[..i + "/apikeys/".len()]),
        None => path.to_string(),
    }
}

/// A valid signature from a credential with the `admin` grant, or AWS's
/// error for what is wrong.
fn authorize(
    state: &AdminState,
    headers: &AuthHeaders,
    signed: &Signed<'_>,
) -> Result<(), AwsError> {
    let forbidden = |kind, message: &str| AwsError::new(StatusCode::FORBIDDEN, kind, message);
    let cred = state
        .verifier
        .authenticate(headers, signed, SERVICES)
        .map_err(|e| match e {
            SigError::Unsigned => forbidden(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            SigError::Malformed(why) => forbidden(
                "IncompleteSignatureException",
                &format!("The request signature is malformed: {why}"),
            ),
            SigError::UnknownKey => forbidden(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            SigError::Expired(why) => forbidden(
                "InvalidSignatureException",
                &format!("Signature expired: {why}"),
            ),
            SigError::Scope(why) | SigError::Signature(why) => forbidden(
                "InvalidSignatureException",
                &format!(
                    "The request signature we calculated does not match the signature you provided ({why})"
                ),
            ),
        })?;
    if cred
        .allow
        .iter()
        .any(|g| g.actions.iter().any(|a| a == "admin"))
    {
        Ok(())
    } else {
        Err(forbidden(
            "AccessDeniedException",
            &format!(
                "User: {} is not authorized to use the admin API (it needs the admin grant)",
                cred.principal
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_keys_in_paths_are_not_logged() {
        assert_eq!(
            super::loggable_path("/v1/apis/abc/apikeys/da2-secretsecretsecret0000000"),
            "/v1/apis/abc/apikeys/…"
        );
        assert_eq!(super::loggable_path("/v2/apis/abc"), "/v2/apis/abc");
    }
}
