//! The auth settings: AppSync's auth types and providers as the file writes
//! them, and Herald's `[[iam_credentials]]` (SigV4 principals and grants).

use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

/// An AppSync auth type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthType {
    ApiKey,
    AwsIam,
    AmazonCognitoUserPools,
    OpenidConnect,
    AwsLambda,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::ApiKey => "API_KEY",
            AuthType::AwsIam => "AWS_IAM",
            AuthType::AmazonCognitoUserPools => "AMAZON_COGNITO_USER_POOLS",
            AuthType::OpenidConnect => "OPENID_CONNECT",
            AuthType::AwsLambda => "AWS_LAMBDA",
        }
    }
}

/// `{ auth_type = "API_KEY" }`, as in AppSync's `AuthMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthMode {
    pub auth_type: AuthType,
}

/// An entry of `event_config.auth_providers` (AppSync's `AuthProvider`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthProviderFile {
    pub auth_type: AuthType,
    pub cognito_config: Option<CognitoConfig>,
    pub open_id_connect_config: Option<OidcConfig>,
    pub lambda_authorizer_config: Option<LambdaConfig>,
}

/// AppSync's `CognitoConfig`, plus Herald's optional overrides for
/// Cognito-compatible servers (and tests): `issuer`, `jwks_url`, `jwks_file`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CognitoConfig {
    pub user_pool_id: String,
    pub aws_region: String,
    pub app_id_client_regex: Option<String>,
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
}

/// AppSync's `OpenIDConnectConfig` (TTLs in milliseconds), plus Herald's optional
/// `jwks_url` / `jwks_file` instead of OIDC discovery.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: Option<String>,
    pub iat_ttl: Option<u64>,
    pub auth_ttl: Option<u64>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
}

/// AppSync's `LambdaAuthorizerConfig`; `authorizer_uri` is an HTTP(S) URL that
/// receives the Lambda authorizer request as a JSON POST. `timeout_ms` is Herald's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    pub authorizer_uri: String,
    pub authorizer_result_ttl_in_seconds: Option<u64>,
    pub identity_validation_expression: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// One IAM principal Herald accepts SigV4 signatures from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, requests must carry this `x-amz-security-token`.
    pub session_token: Option<String>,
    /// The principal's ARN or name (`ctx.identity.userArn` / `username`).
    pub principal: String,
    pub account_id: Option<String>,
    /// What the principal may do; nothing when empty.
    #[serde(default)]
    pub allow: Vec<IamGrant>,
}

/// `actions` among `connect`, `publish`, `subscribe` (or `*` for the three) on
/// `namespaces` (names, or `*`): the analogue of
/// `appsync:EventConnect|EventPublish|EventSubscribe`. `admin` (never implied
/// by `*`) allows every management API on the admin listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamGrant {
    pub actions: Vec<String>,
    #[serde(default = "all_namespaces")]
    pub namespaces: Vec<String>,
}

pub(super) fn all_namespaces() -> Vec<String> {
    vec!["*".into()]
}

/// A resolved auth provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderConfig {
    ApiKey,
    Iam,
    Cognito(CognitoConfig),
    Oidc(OidcConfig),
    Lambda(LambdaConfig),
}

/// The providers `event_config` names (API_KEY alone when it names none),
/// each checked: the auth types in order, and each with its settings.
pub(super) fn resolve_providers(
    ev: &super::EventConfigFile,
) -> Result<(Vec<AuthType>, Vec<ProviderConfig>), String> {
    let mut providers: Vec<AuthType> = ev.auth_providers.iter().map(|p| p.auth_type).collect();
    if providers.is_empty() {
        providers.push(AuthType::ApiKey);
    }
    let mut seen = HashSet::new();
    let mut resolved = Vec::new();
    if ev.auth_providers.is_empty() {
        resolved.push(ProviderConfig::ApiKey);
    }
    for p in &ev.auth_providers {
        let single = matches!(
            p.auth_type,
            AuthType::AwsLambda | AuthType::ApiKey | AuthType::AwsIam
        );
        if single && !seen.insert(p.auth_type) {
            return Err(format!(
                "only one {} auth provider is allowed per API",
                p.auth_type.as_str()
            ));
        }
        let stray = |what: &str| {
            format!(
                "auth provider {}: {what} does not belong to this auth type",
                p.auth_type.as_str()
            )
        };
        let has = (
            p.cognito_config.is_some(),
            p.open_id_connect_config.is_some(),
            p.lambda_authorizer_config.is_some(),
        );
        resolved.push(match (p.auth_type, has) {
            (AuthType::ApiKey, (false, false, false)) => ProviderConfig::ApiKey,
            (AuthType::AwsIam, (false, false, false)) => ProviderConfig::Iam,
            (AuthType::AmazonCognitoUserPools, (true, false, false)) => {
                let c = p.cognito_config.clone().unwrap();
                if let Some(re) = &c.app_id_client_regex {
                    regex_lite::Regex::new(re)
                        .map_err(|e| format!("cognito_config.app_id_client_regex: {e}"))?;
                }
                ProviderConfig::Cognito(c)
            }
            (AuthType::OpenidConnect, (false, true, false)) => {
                let c = p.open_id_connect_config.clone().unwrap();
                if let Some(re) = &c.client_id {
                    regex_lite::Regex::new(re)
                        .map_err(|e| format!("open_id_connect_config.client_id: {e}"))?;
                }
                if !(c.issuer.starts_with("https://") || c.issuer.starts_with("http://")) {
                    return Err(format!(
                        "open_id_connect_config.issuer '{}' must be an http(s) URL",
                        c.issuer
                    ));
                }
                ProviderConfig::Oidc(c)
            }
            (AuthType::AwsLambda, (false, false, true)) => {
                let c = p.lambda_authorizer_config.clone().unwrap();
                if let Some(re) = &c.identity_validation_expression {
                    regex_lite::Regex::new(re).map_err(|e| {
                        format!("lambda_authorizer_config.identity_validation_expression: {e}")
                    })?;
                }
                if !(c.authorizer_uri.starts_with("https://")
                    || c.authorizer_uri.starts_with("http://"))
                {
                    return Err(format!(
                        "lambda_authorizer_config.authorizer_uri '{}' must be an http(s) URL",
                        c.authorizer_uri
                    ));
                }
                if c.authorizer_result_ttl_in_seconds.is_some_and(|t| t > 3600) {
                    return Err(
                        "lambda_authorizer_config.authorizer_result_ttl_in_seconds is at most 3600"
                            .into(),
                    );
                }
                ProviderConfig::Lambda(c)
            }
            (AuthType::AmazonCognitoUserPools, _) => {
                return Err(
                    "an AMAZON_COGNITO_USER_POOLS provider needs cognito_config (and nothing else)"
                        .into(),
                )
            }
            (AuthType::OpenidConnect, _) => {
                return Err(
                    "an OPENID_CONNECT provider needs open_id_connect_config (and nothing else)"
                        .into(),
                )
            }
            (AuthType::AwsLambda, _) => {
                return Err(
                    "an AWS_LAMBDA provider needs lambda_authorizer_config (and nothing else)"
                        .into(),
                )
            }
            (_, _) => {
                return Err(stray(
                    "cognito_config/open_id_connect_config/lambda_authorizer_config",
                ))
            }
        });
    }
    providers.dedup();
    Ok((providers, resolved))
}
