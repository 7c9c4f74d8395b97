//! Authorization: which auth modes a request may use, and checking the evidence it
//! carries against them.
//!
//! The configuration model is AppSync's: the API has auth providers; connect,
//! publish and subscribe each have a list of allowed modes (publish and subscribe
//! overridable per namespace). The evidence a request carries picks the mode:
//!
//! 1. an `x-api-key` header: `API_KEY`;
//! 2. an `Authorization` starting with `AWS4-HMAC-SHA256`: `AWS_IAM`;
//! 3. another `Authorization` (optionally `Bearer `) shaped like a JWT whose `iss`
//!    is a configured Cognito user pool or OIDC issuer: that provider;
//! 4. any other `Authorization`: `AWS_LAMBDA`.
//!
//! A request whose evidence points to a mode that is not allowed for the operation
//! is denied (there is no falling through to another mode). Clients learn only
//! AppSync's fixed message; the reason goes to the log.

mod api_key;
mod headers;
mod identity;
pub mod jwt;
mod lambda;
pub mod sigv4;

pub use api_key::{ApiKeyStore, KeyEntry};
pub use headers::AuthHeaders;
pub use identity::{IamIdentity, Identity, JwtIdentity};

use crate::config::{ApiConfig, AuthType, ProviderConfig};
use crate::http_client::HttpClient;
use jwt::JwtProvider;
use lambda::LambdaAuthorizer;
use sigv4::IamVerifier;
use std::net::IpAddr;

/// The operation being authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// What a SigV4 signature covers.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// A real HTTP request.
    Http {
        method: &'a str,
        path: &'a str,
        query: &'a str,
        body: &'a [u8],
    },
    /// WebSocket connect: `POST /event` with body `{}`.
    Connect,
    /// WebSocket subscribe: body `{"channel": <as sent>}`.
    Subscribe { channel: &'a str },
    /// WebSocket publish: body `{"channel": ..., "events": [...]}`.
    Publish {
        channel: &'a str,
        events: Option<&'a serde_json::Value>,
    },
}

/// One authorization question.
pub struct AuthRequest<'a> {
    pub op: Operation,
    pub headers: &'a AuthHeaders,
    /// The namespace of the channel (none for connect).
    pub namespace: Option<&'a str>,
    /// The channel as the client sent it (none for connect).
    pub channel: Option<&'a str>,
    pub signed: Signed<'a>,
    pub source_ip: Option<IpAddr>,
}

/// A refusal, with the reason for the log (never sent to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The mode the evidence pointed to (`NONE` when there was none), for metrics.
    pub mode: &'static str,
    pub reason: String,
}

/// Checks requests against the configured providers.
pub struct Authorizer {
    /// Shared with the authorizer an `UpdateApi` builds next.
    api_keys: std::sync::Arc<ApiKeyStore>,
    jwt: Vec<JwtProvider>,
    lambda: Option<LambdaAuthorizer>,
    iam: Option<IamVerifier>,
}

impl Authorizer {
    /// The API's keys (the admin API changes them live).
    pub fn api_keys(&self) -> &std::sync::Arc<ApiKeyStore> {
        &self.api_keys
    }

    /// An authorizer for `config`'s providers; OIDC discovery, JWKS and the
    /// Lambda authorizer go out through `http`, the process's one client.
    pub fn new(config: &ApiConfig, http: HttpClient) -> Authorizer {
        Self::with_keys(
            config,
            std::sync::Arc::new(ApiKeyStore::new(&config.api_keys)),
            http,
        )
    }

    /// An authorizer for `config`'s providers that checks API keys in `api_keys`.
    pub fn with_keys(
        config: &ApiConfig,
        api_keys: std::sync::Arc<ApiKeyStore>,
        http: HttpClient,
    ) -> Authorizer {
        let mut jwt = Vec::new();
        let mut lambda = None;
        let mut iam = None;
        for p in &config.providers {
            match p {
                ProviderConfig::ApiKey => {}
                ProviderConfig::Iam => {
                    iam = Some(IamVerifier::new(
                        &config.aws_region,
                        &config.iam_credentials,
                        &config.api_id,
                    ))
                }
                ProviderConfig::Cognito(c) => jwt.push(JwtProvider::cognito(c, http.clone())),
                ProviderConfig::Oidc(c) => jwt.push(JwtProvider::oidc(c, http.clone())),
                ProviderConfig::Lambda(c) => {
                    lambda = Some(LambdaAuthorizer::new(
                        c,
                        &config.api_id,
                        &config.account_id,
                        http.clone(),
                    ))
                }
            }
        }
        Authorizer {
            api_keys,
            jwt,
            lambda,
            iam,
        }
    }

    /// Authorize `req` under one of the `allowed` modes.
    pub async fn authorize(
        &self,
        allowed: &[AuthType],
        req: &AuthRequest<'_>,
    ) -> Result<Identity, Denied> {
        let op = req.op.as_str();
        let deny = |mode: AuthType, reason: String| Denied {
            mode: mode.as_str(),
            reason: format!("{op}: {reason}"),
        };
        let must_allow = |mode: AuthType| {
            if allowed.contains(&mode) {
                Ok(())
            } else {
                Err(deny(
                    mode,
                    format!("{} is not an allowed auth mode here", mode.as_str()),
                ))
            }
        };
        if let Some(key) = req.headers.get("x-api-key") {
            must_allow(AuthType::ApiKey)?;
            return self
                .api_keys
                .check(key)
                .map(|()| Identity::ApiKey)
                .map_err(|why| deny(AuthType::ApiKey, why.to_string()));
        }
        let Some(authorization) = req.headers.get("authorization").filter(|a| !a.is_empty()) else {
            return Err(Denied {
                mode: "NONE",
                reason: format!(
                    "{op}: the request carries no credentials (allowed: {})",
                    allowed
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        if authorization.starts_with("AWS4-HMAC-SHA256") {
            must_allow(AuthType::AwsIam)?;
            let iam = self
                .iam
                .as_ref()
                .ok_or_else(|| deny(AuthType::AwsIam, "AWS_IAM is not configured".into()))?;
            return iam.verify(req).map_err(|why| deny(AuthType::AwsIam, why));
        }
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .unwrap_or(authorization)
            .trim();
        if let Some(parsed) = jwt::parse(token) {
            let iss = parsed
                .claims
                .get("iss")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            if let Some(provider) = self.jwt.iter().find(|p| p.issuer == iss) {
                must_allow(provider.auth_type)?;
                return provider
                    .verify(parsed, req.source_ip.map(|ip| ip.to_string()))
                    .await
                    .map_err(|why| deny(provider.auth_type, why));
            }
        }
        if let Some(lambda) = self
            .lambda
            .as_ref()
            .filter(|_| allowed.contains(&AuthType::AwsLambda))
        {
            return lambda
                .authorize(authorization, req)
                .await
                .map(|handler_context| Identity::Lambda { handler_context })
                .map_err(|why| deny(AuthType::AwsLambda, why));
        }
        let mode = if self.jwt.is_empty() {
            AuthType::AwsLambda
        } else {
            AuthType::OpenidConnect
        };
        Err(deny(
            mode,
            "the Authorization token matches no allowed provider (not a JWT of a configured issuer, and no Lambda authorizer allowed)".into(),
        ))
    }
}
