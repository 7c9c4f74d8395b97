//! Authorization: which auth modes a request may use, and checking the evidence it
//! carries against them.
//!
//! The configuration model is AppSync's: the API has auth providers; connect,
//! publish and subscribe each have a list of allowed modes (publish and subscribe
//! overridable per namespace). A request's evidence (an `x-api-key` header, an
//! `Authorization` header, a SigV4 signature) picks the mode among the allowed
//! ones. This version implements `API_KEY`; the other modes plug in here.
//!
//! Clients learn only the fixed AppSync message; the reason goes to the log.

mod api_key;
mod headers;

pub use api_key::ApiKeyStore;
pub use headers::AuthHeaders;

use crate::config::{ApiConfig, AuthType};

/// The operation being authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Connect,
    Subscribe,
    Publish,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "EVENT_CONNECT",
            Operation::Subscribe => "EVENT_SUBSCRIBE",
            Operation::Publish => "EVENT_PUBLISH",
        }
    }
}

/// Who made a request: AppSync's `ctx.identity`, kept on the connection and each
/// subscription for handlers to read. `null` for API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Authorized by an API key (`ctx.identity` is `null`).
    ApiKey,
}

impl Identity {
    pub fn auth_type(&self) -> AuthType {
        match self {
            Identity::ApiKey => AuthType::ApiKey,
        }
    }
}

/// A refusal, with the reason for the log (never sent to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The mode the evidence pointed to (`NONE` when there was none), for metrics.
    pub mode: &'static str,
    pub reason: String,
}

impl Denied {
    fn new(mode: &'static str, reason: impl Into<String>) -> Self {
        Denied {
            mode,
            reason: reason.into(),
        }
    }
}

/// Checks requests against the configured providers.
#[derive(Debug)]
pub struct Authorizer {
    api_keys: ApiKeyStore,
}

impl Authorizer {
    pub fn new(config: &ApiConfig) -> Authorizer {
        Authorizer {
            api_keys: ApiKeyStore::new(&config.api_keys),
        }
    }

    /// Authorize `op` under one of `allowed` modes with the evidence in `headers`.
    ///
    /// Async because later modes call out (JWKS, an authorizer endpoint).
    pub async fn authorize(
        &self,
        op: Operation,
        allowed: &[AuthType],
        headers: &AuthHeaders,
    ) -> Result<Identity, Denied> {
        if let Some(key) = headers.get("x-api-key") {
            if !allowed.contains(&AuthType::ApiKey) {
                return Err(Denied::new(
                    "API_KEY",
                    format!("{}: API_KEY is not an allowed auth mode here", op.as_str()),
                ));
            }
            return self
                .api_keys
                .check(key)
                .map(|()| Identity::ApiKey)
                .map_err(|why| Denied::new("API_KEY", format!("{}: {why}", op.as_str())));
        }
        Err(Denied::new(
            "NONE",
            format!(
                "{}: the request carries no credentials for the allowed modes ({})",
                op.as_str(),
                allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}
