//! Configuration: the TOML file, whose keys mirror AppSync's `EventConfig` and
//! `ChannelNamespace` fields in snake_case, plus Herald's own `[server]` and
//! `[limits]` tables. `docs/configuration.md` is the reference.
//!
//! Loading is two steps: [`ConfigFile`] is what the file says (every field
//! optional), [`ApiConfig::resolve`] applies defaults and command-line overrides and
//! checks consistency, so the server only ever sees a valid configuration.

mod admin;

pub use admin::{generate_credentials, AdminFile};

use herald_core::channel::MAX_SEGMENT_LEN;
use herald_core::Limits;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

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

fn all_namespaces() -> Vec<String> {
    vec!["*".into()]
}

/// `[nats]`: the NATS engine's connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// One URL or several, comma-separated (`nats://`, `tls://`).
    #[serde(default = "default_nats_url")]
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// Extra CA certificate (PEM) for the server's TLS certificate.
    pub tls_ca: Option<PathBuf>,
    pub tls_required: Option<bool>,
}

fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".into()
}

/// `[redis]`: the Redis engine's connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    #[serde(default = "default_redis_url")]
    pub url: String,
}

fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}

/// Which distribution engine connects the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineSetting {
    Memory,
    Nats(NatsConfig),
    Redis(RedisConfig),
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfigFile {
    pub log_level: Option<String>,
    pub cloud_watch_logs_role_arn: Option<String>,
}

/// AppSync's `EventConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfigFile {
    #[serde(default)]
    pub auth_providers: Vec<AuthProviderFile>,
    pub connection_auth_modes: Option<Vec<AuthMode>>,
    pub default_publish_auth_modes: Option<Vec<AuthMode>>,
    pub default_subscribe_auth_modes: Option<Vec<AuthMode>>,
    pub log_config: Option<LogConfigFile>,
}

/// AppSync's `ChannelNamespace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceFile {
    pub name: String,
    pub publish_auth_modes: Option<Vec<AuthMode>>,
    pub subscribe_auth_modes: Option<Vec<AuthMode>>,
    /// The handler module's source (AppSync's `codeHandlers`).
    pub code_handlers: Option<String>,
    /// Herald: read `code_handlers` from this file instead.
    pub code_handlers_file: Option<PathBuf>,
    pub handler_configs: Option<HandlerConfigsFile>,
    pub tags: Option<toml::Table>,
}

/// An API key, as AppSync's `ApiKey`: `expires` in epoch seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    pub id: String,
    pub description: Option<String>,
    pub expires: Option<i64>,
}

/// `HOST:PORT` as a socket address: an IP address as it is, a host name
/// (`localhost:9002`) resolved, its first IPv4 address preferred.
pub fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot use '{text}' as a listen address (HOST:PORT): {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

/// `[store]`: where the control plane keeps what it creates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// The data directory (`herald.db` inside); default `./herald-data`.
    pub data_dir: Option<PathBuf>,
}

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "herald-data";

/// Herald's listener settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// `HOST:PORT`, an IP address or a host name.
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: Option<PathBuf>,
    /// How long shutdown waits for in-flight work, in milliseconds.
    pub shutdown_grace_ms: Option<u64>,
    /// How long `/ready` answers 503 before the listener closes on shutdown,
    /// so load balancers stop sending new clients first (default 2000).
    pub drain_ms: Option<u64>,
    /// Serve the web console at `/console` (default: off with a config file).
    pub console: Option<bool>,
    /// Serve Prometheus metrics at `/metrics` (default: on).
    pub metrics: Option<bool>,
}

/// `[limits]`: every field optional; AppSync's defaults otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_events_per_publish: Option<usize>,
    pub max_event_bytes: Option<usize>,
    pub max_request_bytes: Option<usize>,
    pub max_subscriptions_per_connection: Option<usize>,
    pub max_publish_per_second_per_connection: Option<u32>,
    pub max_connection_duration_secs: Option<u64>,
    pub keepalive_interval_secs: Option<u64>,
    pub connection_timeout_ms: Option<u64>,
    /// Frames a connection's outbound queue holds before it counts as a slow consumer.
    pub outbound_queue_frames: Option<usize>,
    /// Bytes a connection's outbound queue holds before it counts as a slow consumer.
    pub outbound_queue_bytes: Option<usize>,
}

/// The config file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub name: Option<String>,
    /// The API's id (AppSync's `apiId`, as in its endpoints and ARNs); default:
    /// derived from `name`, so every node of a cluster and every restart agree.
    pub api_id: Option<String>,
    /// The 12-digit account id the API belongs to (Lambda authorizer requests,
    /// ARNs); default `000000000000`.
    pub account_id: Option<String>,
    /// `memory` (default), `nats` or `redis`.
    pub engine: Option<String>,
    /// This node's id in a cluster (default: random). Must differ between nodes.
    pub node_id: Option<String>,
    pub nats: Option<NatsConfig>,
    pub redis: Option<RedisConfig>,
    /// The region in SigV4 credential scopes (default `us-east-1`).
    pub aws_region: Option<String>,
    #[serde(default)]
    pub iam_credentials: Vec<IamCredential>,
    pub owner_contact: Option<String>,
    pub tags: Option<toml::Table>,
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub admin: AdminFile,
    #[serde(default)]
    pub store: StoreFile,
    #[serde(default)]
    pub event_config: EventConfigFile,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyFile>,
    #[serde(default)]
    pub channel_namespaces: Vec<NamespaceFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub handlers: HandlersFile,
    #[serde(default)]
    pub data_sources: Vec<DataSourceFile>,
}

/// `[[data_sources]]`: a Lambda-style function reached over HTTP, for DIRECT
/// handlers (AppSync's `AWS_LAMBDA` data source; Herald calls an endpoint).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceFile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The function's HTTP(S) URL; it receives the handler payload as a JSON POST.
    pub endpoint: String,
    pub timeout_ms: Option<u64>,
}

/// `handler_configs` (AppSync's `HandlerConfigs`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfigsFile {
    pub on_publish: Option<HandlerConfigFile>,
    pub on_subscribe: Option<HandlerConfigFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfigFile {
    /// `CODE` or `DIRECT`.
    pub behavior: String,
    pub integration: IntegrationFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationFile {
    pub data_source_name: String,
    pub lambda_config: Option<LambdaInvokeFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaInvokeFile {
    /// `REQUEST_RESPONSE` (default) or `EVENT`.
    pub invoke_type: Option<String>,
}

/// A resolved DIRECT handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectConfig {
    pub endpoint: String,
    pub event: bool,
    pub timeout: Duration,
}

/// `[handlers]`: limits for JavaScript handlers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlersFile {
    /// Wall time per invocation (AppSync: 30 s).
    pub timeout_ms: Option<u64>,
    /// Memory per JavaScript runtime.
    pub memory_limit_mb: Option<usize>,
    /// Worker threads running handlers.
    pub workers: Option<usize>,
    /// Invocations that may wait for a worker before new ones are refused.
    pub queue: Option<usize>,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// Command-line settings that override (scalars) or extend (lists) the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// `--data DIR`.
    pub data_dir: Option<PathBuf>,
    /// The development mode: generate admin credentials when none exist.
    pub generate_admin_credentials: bool,
    pub api_keys: Vec<String>,
    pub namespaces: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: Option<PathBuf>,
    pub console: Option<bool>,
}

/// How the listener does TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    None,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Generate (or reuse) a self-signed certificate in this directory.
    SelfSigned(PathBuf),
}

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub description: Option<String>,
    pub expires: Option<i64>,
}

/// A resolved namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    pub name: String,
    pub publish_auth_modes: Vec<AuthType>,
    pub subscribe_auth_modes: Vec<AuthType>,
    /// JavaScript handler source, if any.
    pub code_handlers: Option<String>,
    /// DIRECT handlers.
    pub direct_on_publish: Option<DirectConfig>,
    pub direct_on_subscribe: Option<DirectConfig>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub name: String,
    /// AppSync's `apiId`: 26 lowercase letters and digits unless configured.
    pub api_id: String,
    /// The 12-digit account id.
    pub account_id: String,
    pub listen: SocketAddr,
    pub tls: TlsSetting,
    pub shutdown_grace: Duration,
    /// The drain period before the listener closes on shutdown.
    pub drain: Duration,
    /// The admin listener's address; `None` when it is off.
    pub admin_listen: Option<SocketAddr>,
    /// The store's directory; `None` keeps it in memory (tests).
    pub data_dir: Option<PathBuf>,
    /// Admin credentials generated for the development mode (access key id,
    /// secret), to print.
    pub generated_admin: Option<(String, String)>,
    pub auth_providers: Vec<AuthType>,
    pub engine: EngineSetting,
    pub node_id: String,
    /// Each provider with its settings.
    pub providers: Vec<ProviderConfig>,
    pub aws_region: String,
    pub iam_credentials: Vec<IamCredential>,
    pub connection_auth_modes: Vec<AuthType>,
    /// `event_config.default_publish_auth_modes` (namespaces hold their own).
    pub default_publish_auth_modes: Vec<AuthType>,
    pub default_subscribe_auth_modes: Vec<AuthType>,
    pub api_keys: Vec<ApiKey>,
    /// Whether the API key was generated because none was configured.
    pub generated_api_key: bool,
    pub namespaces: Vec<NamespaceConfig>,
    pub limits: Limits,
    pub outbound_queue_frames: usize,
    pub outbound_queue_bytes: usize,
    /// Serve the web console.
    pub console: bool,
    /// Serve `/metrics`.
    pub metrics: bool,
    /// AppSync log level (`NONE`, `ERROR`, `INFO`, `DEBUG`, `ALL`), if configured.
    pub log_level: Option<String>,
    pub handlers: crate::handlers::HandlerSettings,
}

fn modes(list: &Option<Vec<AuthMode>>) -> Option<Vec<AuthType>> {
    list.as_ref()
        .map(|l| l.iter().map(|m| m.auth_type).collect())
}

fn valid_namespace_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_SEGMENT_LEN
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The default API id for an API name: 26 lowercase letters and digits (the
/// shape of AppSync's ids), stable for a name.
pub fn derived_api_id(name: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::with_capacity(26);
    for &b in digest.as_ref() {
        bits = (bits << 8) | u32::from(b);
        n += 8;
        while n >= 5 && out.len() < 26 {
            n -= 5;
            out.push(ALPHABET[((bits >> n) & 31) as usize] as char);
        }
    }
    out
}

/// Default account id, as local AWS emulators use.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// A new API key in AppSync's shape: `da2-` and 26 lowercase letters and digits.
pub fn generate_api_key() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..26)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("da2-{tail}")
}

impl ApiConfig {
    /// Apply defaults and overrides to a file and check the result.
    pub fn resolve(file: ConfigFile, over: Overrides) -> Result<ApiConfig, String> {
        let ev = &file.event_config;
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
                        regex_lite::Regex::new(re).map_err(|e| format!("cognito_config.app_id_client_regex: {e}"))?;
                    }
                    ProviderConfig::Cognito(c)
                }
                (AuthType::OpenidConnect, (false, true, false)) => {
                    let c = p.open_id_connect_config.clone().unwrap();
                    if let Some(re) = &c.client_id {
                        regex_lite::Regex::new(re).map_err(|e| format!("open_id_connect_config.client_id: {e}"))?;
                    }
                    if !(c.issuer.starts_with("https://") || c.issuer.starts_with("http://")) {
                        return Err(format!("open_id_connect_config.issuer '{}' must be an http(s) URL", c.issuer));
                    }
                    ProviderConfig::Oidc(c)
                }
                (AuthType::AwsLambda, (false, false, true)) => {
                    let c = p.lambda_authorizer_config.clone().unwrap();
                    if let Some(re) = &c.identity_validation_expression {
                        regex_lite::Regex::new(re).map_err(|e| format!("lambda_authorizer_config.identity_validation_expression: {e}"))?;
                    }
                    if !(c.authorizer_uri.starts_with("https://") || c.authorizer_uri.starts_with("http://")) {
                        return Err(format!("lambda_authorizer_config.authorizer_uri '{}' must be an http(s) URL", c.authorizer_uri));
                    }
                    if c.authorizer_result_ttl_in_seconds.is_some_and(|t| t > 3600) {
                        return Err("lambda_authorizer_config.authorizer_result_ttl_in_seconds is at most 3600".into());
                    }
                    ProviderConfig::Lambda(c)
                }
                (AuthType::AmazonCognitoUserPools, _) => return Err("an AMAZON_COGNITO_USER_POOLS provider needs cognito_config (and nothing else)".into()),
                (AuthType::OpenidConnect, _) => return Err("an OPENID_CONNECT provider needs open_id_connect_config (and nothing else)".into()),
                (AuthType::AwsLambda, _) => return Err("an AWS_LAMBDA provider needs lambda_authorizer_config (and nothing else)".into()),
                (_, _) => return Err(stray("cognito_config/open_id_connect_config/lambda_authorizer_config")),
            });
        }
        providers.dedup();
        if providers.contains(&AuthType::AwsIam) && file.iam_credentials.is_empty() {
            return Err(
                "the AWS_IAM auth provider needs at least one [[iam_credentials]] entry".into(),
            );
        }
        for d in &file.data_sources {
            if d.kind != "AWS_LAMBDA" {
                return Err(format!(
                    "data source '{}': type '{}' is not supported (AWS_LAMBDA only)",
                    d.name, d.kind
                ));
            }
            if !(d.endpoint.starts_with("http://") || d.endpoint.starts_with("https://")) {
                return Err(format!(
                    "data source '{}': endpoint must be an http(s) URL",
                    d.name
                ));
            }
        }
        for c in &file.iam_credentials {
            for g in &c.allow {
                for a in &g.actions {
                    if !matches!(
                        a.as_str(),
                        "connect" | "publish" | "subscribe" | "*" | "admin"
                    ) {
                        return Err(format!(
                            "iam_credentials '{}': action '{a}' is not one of connect, publish, subscribe, *, admin",
                            c.access_key_id
                        ));
                    }
                }
            }
        }
        let check = |what: &str, list: &[AuthType]| -> Result<(), String> {
            if list.is_empty() {
                return Err(format!("{what} is empty: list at least one auth mode"));
            }
            for m in list {
                if !providers.contains(m) {
                    return Err(format!(
                        "{what} names {} but event_config.auth_providers has no such provider",
                        m.as_str()
                    ));
                }
            }
            Ok(())
        };
        // As in AppSync's CDK construct: an omitted list allows every provider.
        let connection = modes(&ev.connection_auth_modes).unwrap_or_else(|| providers.clone());
        let default_publish =
            modes(&ev.default_publish_auth_modes).unwrap_or_else(|| providers.clone());
        let default_subscribe =
            modes(&ev.default_subscribe_auth_modes).unwrap_or_else(|| providers.clone());
        check("event_config.connection_auth_modes", &connection)?;
        check("event_config.default_publish_auth_modes", &default_publish)?;
        check(
            "event_config.default_subscribe_auth_modes",
            &default_subscribe,
        )?;
        let log_level = ev.log_config.as_ref().and_then(|l| l.log_level.clone());
        if let Some(level) = log_level.as_deref() {
            if !matches!(level, "NONE" | "ERROR" | "INFO" | "DEBUG" | "ALL") {
                return Err(format!(
                    "event_config.log_config.log_level '{level}' is not one of NONE, ERROR, INFO, DEBUG, ALL"
                ));
            }
        }

        let mut namespaces = Vec::new();
        let mut names = HashSet::new();
        for ns in &file.channel_namespaces {
            if !valid_namespace_name(&ns.name) {
                return Err(format!(
                    "namespace name '{}' is invalid: 1-50 letters, digits or '-', not starting or ending with '-'",
                    ns.name
                ));
            }
            if !names.insert(ns.name.clone()) {
                return Err(format!("namespace '{}' is defined twice", ns.name));
            }
            let direct = |h: &Option<HandlerConfigFile>,
                          which: &str|
             -> Result<Option<DirectConfig>, String> {
                let Some(h) = h else { return Ok(None) };
                let what = format!("namespace '{}' handler_configs.{which}", ns.name);
                if h.behavior != "DIRECT" {
                    return Err(format!(
                        "{what}: behavior '{}' is not supported (DIRECT only; CODE handlers go in code_handlers)",
                        h.behavior
                    ));
                }
                let ds = file
                    .data_sources
                    .iter()
                    .find(|d| d.name == h.integration.data_source_name)
                    .ok_or_else(|| {
                        format!(
                            "{what}: no data source named '{}'",
                            h.integration.data_source_name
                        )
                    })?;
                let event = match h
                    .integration
                    .lambda_config
                    .as_ref()
                    .and_then(|l| l.invoke_type.as_deref())
                {
                    None | Some("REQUEST_RESPONSE") => false,
                    Some("EVENT") => true,
                    Some(other) => {
                        return Err(format!(
                            "{what}: invoke_type '{other}' is not REQUEST_RESPONSE or EVENT"
                        ))
                    }
                };
                Ok(Some(DirectConfig {
                    endpoint: ds.endpoint.clone(),
                    event,
                    timeout: Duration::from_millis(ds.timeout_ms.unwrap_or(30_000)),
                }))
            };
            let hc = ns.handler_configs.clone().unwrap_or_default();
            let direct_on_publish = direct(&hc.on_publish, "on_publish")?;
            let direct_on_subscribe = direct(&hc.on_subscribe, "on_subscribe")?;
            let code_handlers = match (&ns.code_handlers, &ns.code_handlers_file) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "namespace '{}': use code_handlers or code_handlers_file, not both",
                        ns.name
                    ))
                }
                (Some(code), None) => Some(code.clone()),
                (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "namespace '{}': cannot read {}: {e}",
                        ns.name,
                        path.display()
                    )
                })?),
                (None, None) => None,
            };
            if code_handlers.is_some()
                && (direct_on_publish.is_some() || direct_on_subscribe.is_some())
            {
                return Err(format!(
                    "namespace '{}': use code_handlers or DIRECT handler_configs, not both",
                    ns.name
                ));
            }
            let publish = modes(&ns.publish_auth_modes).unwrap_or_else(|| default_publish.clone());
            let subscribe =
                modes(&ns.subscribe_auth_modes).unwrap_or_else(|| default_subscribe.clone());
            check(
                &format!("namespace '{}' publish_auth_modes", ns.name),
                &publish,
            )?;
            check(
                &format!("namespace '{}' subscribe_auth_modes", ns.name),
                &subscribe,
            )?;
            namespaces.push(NamespaceConfig {
                name: ns.name.clone(),
                publish_auth_modes: publish,
                subscribe_auth_modes: subscribe,
                code_handlers,
                direct_on_publish,
                direct_on_subscribe,
            });
        }
        for name in &over.namespaces {
            if !valid_namespace_name(name) {
                return Err(format!(
                    "--namespace '{name}' is not a valid namespace name"
                ));
            }
            if names.insert(name.clone()) {
                namespaces.push(NamespaceConfig {
                    name: name.clone(),
                    publish_auth_modes: default_publish.clone(),
                    subscribe_auth_modes: default_subscribe.clone(),
                    code_handlers: None,
                    direct_on_publish: None,
                    direct_on_subscribe: None,
                });
            }
        }
        if namespaces.is_empty() {
            namespaces.push(NamespaceConfig {
                name: "default".into(),
                publish_auth_modes: default_publish.clone(),
                subscribe_auth_modes: default_subscribe.clone(),
                code_handlers: None,
                direct_on_publish: None,
                direct_on_subscribe: None,
            });
        }

        let mut api_keys: Vec<ApiKey> = file
            .api_keys
            .iter()
            .map(|k| ApiKey {
                id: k.id.clone(),
                description: k.description.clone(),
                expires: k.expires,
            })
            .collect();
        api_keys.extend(over.api_keys.iter().map(|k| ApiKey {
            id: k.clone(),
            description: Some("from the command line".into()),
            expires: None,
        }));
        for k in &api_keys {
            if k.id.len() < 8 || k.id.len() > 256 || !k.id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(
                    "an API key must be 8-256 printable ASCII characters without spaces".into(),
                );
            }
        }
        let mut generated_api_key = false;
        if api_keys.is_empty() && providers.contains(&AuthType::ApiKey) {
            api_keys.push(ApiKey {
                id: generate_api_key(),
                description: Some("generated at startup".into()),
                expires: None,
            });
            generated_api_key = true;
        }

        let tls_cert = over.tls_cert.or(file.server.tls_cert.clone());
        let tls_key = over.tls_key.or(file.server.tls_key.clone());
        let self_signed = over.tls_self_signed.or(file.server.tls_self_signed.clone());
        let tls = match (tls_cert, tls_key, self_signed) {
            (None, None, None) => TlsSetting::None,
            (Some(cert), Some(key), None) => TlsSetting::Files { cert, key },
            (None, None, Some(dir)) => TlsSetting::SelfSigned(dir),
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err("--tls-cert and --tls-key go together".into())
            }
            (Some(_), Some(_), Some(_)) => {
                return Err("use either --tls-cert/--tls-key or --tls-self-signed, not both".into())
            }
        };

        let l = &file.limits;
        let d = Limits::default();
        let limits = Limits {
            max_events_per_publish: l.max_events_per_publish.unwrap_or(d.max_events_per_publish),
            max_event_bytes: l.max_event_bytes.unwrap_or(d.max_event_bytes),
            max_request_bytes: l.max_request_bytes.unwrap_or(d.max_request_bytes),
            max_subscriptions_per_connection: l
                .max_subscriptions_per_connection
                .unwrap_or(d.max_subscriptions_per_connection),
            max_publish_per_second_per_connection: l
                .max_publish_per_second_per_connection
                .unwrap_or(d.max_publish_per_second_per_connection),
            max_connection_duration: l
                .max_connection_duration_secs
                .map(Duration::from_secs)
                .unwrap_or(d.max_connection_duration),
            keepalive_interval: l
                .keepalive_interval_secs
                .map(Duration::from_secs)
                .unwrap_or(d.keepalive_interval),
            connection_timeout: l
                .connection_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(d.connection_timeout),
        };
        if limits.max_events_per_publish == 0
            || limits.max_event_bytes == 0
            || limits.max_request_bytes == 0
            || limits.keepalive_interval.is_zero()
            || limits.max_connection_duration.is_zero()
        {
            return Err("limits must be positive".into());
        }
        if limits.max_events_per_publish > 64 {
            return Err("limits.max_events_per_publish is at most 64".into());
        }

        let name = file.name.clone().unwrap_or_else(|| "herald".into());
        let api_id = file.api_id.clone().unwrap_or_else(|| derived_api_id(&name));
        if api_id.is_empty()
            || api_id.len() > 64
            || !api_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "api_id '{api_id}' is invalid: 1-64 letters and digits"
            ));
        }
        let account_id = file
            .account_id
            .clone()
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.into());
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "account_id '{account_id}' is invalid: an AWS account id is 12 digits"
            ));
        }
        let listen = match (over.listen, &file.server.listen) {
            (Some(addr), _) => addr,
            (None, Some(text)) => {
                resolve_listen(text).map_err(|e| format!("[server] listen: {e}"))?
            }
            (None, None) => DEFAULT_LISTEN.parse().unwrap(),
        };
        let admin_listen = admin::admin_addr(&file.admin, over.admin_listen, listen)?;
        let mut iam_credentials = file.iam_credentials.clone();
        let mut generated_admin = None;
        let has_admin = iam_credentials.iter().any(|c| {
            c.allow
                .iter()
                .any(|g| g.actions.iter().any(|a| a == "admin"))
        });
        if over.generate_admin_credentials && admin_listen.is_some() && !has_admin {
            let (id, secret) = generate_credentials();
            iam_credentials.push(IamCredential {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: None,
                principal: format!("arn:aws:iam::{account_id}:user/herald-admin"),
                account_id: Some(account_id.clone()),
                allow: vec![IamGrant {
                    actions: vec!["admin".into()],
                    namespaces: all_namespaces(),
                }],
            });
            generated_admin = Some((id, secret));
        }
        Ok(ApiConfig {
            name,
            api_id,
            account_id,
            admin_listen,
            data_dir: Some(
                over.data_dir
                    .clone()
                    .or(file.store.data_dir.clone())
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            ),
            generated_admin,
            listen,
            tls,
            shutdown_grace: Duration::from_millis(file.server.shutdown_grace_ms.unwrap_or(10_000)),
            drain: Duration::from_millis(file.server.drain_ms.unwrap_or(2_000)),
            auth_providers: providers,
            engine: match file.engine.as_deref().unwrap_or("memory") {
                "memory" => EngineSetting::Memory,
                "nats" => EngineSetting::Nats(file.nats.clone().unwrap_or(NatsConfig {
                    url: default_nats_url(),
                    user: None,
                    password: None,
                    token: None,
                    tls_ca: None,
                    tls_required: None,
                })),
                "redis" => EngineSetting::Redis(file.redis.clone().unwrap_or(RedisConfig {
                    url: default_redis_url(),
                })),
                other => {
                    return Err(format!(
                        "engine '{other}' is not one of memory, nats, redis"
                    ))
                }
            },
            node_id: file.node_id.clone().unwrap_or_else(|| {
                format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
            }),
            providers: resolved,
            aws_region: file
                .aws_region
                .clone()
                .unwrap_or_else(|| "us-east-1".into()),
            iam_credentials,
            connection_auth_modes: connection,
            default_publish_auth_modes: default_publish,
            default_subscribe_auth_modes: default_subscribe,
            api_keys,
            generated_api_key,
            namespaces,
            limits,
            outbound_queue_frames: l.outbound_queue_frames.unwrap_or(4096).max(16),
            outbound_queue_bytes: l.outbound_queue_bytes.unwrap_or(16 << 20).max(64 * 1024),
            console: over.console.or(file.server.console).unwrap_or(false),
            metrics: file.server.metrics.unwrap_or(true),
            log_level,
            handlers: {
                let d = crate::handlers::HandlerSettings::default();
                let h = &file.handlers;
                crate::handlers::HandlerSettings {
                    timeout: h.timeout_ms.map(Duration::from_millis).unwrap_or(d.timeout),
                    memory_bytes: h.memory_limit_mb.map(|m| m << 20).unwrap_or(d.memory_bytes),
                    workers: h.workers.unwrap_or(d.workers).max(1),
                    queue: h.queue.unwrap_or(d.queue).max(1),
                }
            },
        })
    }

    /// A development configuration: defaults, one namespace `default`, the given
    /// API key. Used by tests.
    pub fn for_tests(api_key: &str) -> ApiConfig {
        let mut config = ApiConfig::resolve(
            ConfigFile::default(),
            Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                api_keys: vec![api_key.to_string()],
                ..Default::default()
            },
        )
        .expect("the test configuration is valid");
        config.drain = Duration::ZERO;
        config.admin_listen = None;
        config.data_dir = None;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_gives_default_namespace_and_generated_key() {
        let c = ApiConfig::resolve(ConfigFile::default(), Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.namespaces.len(), 1);
        assert_eq!(c.namespaces[0].name, "default");
        assert!(c.generated_api_key);
        assert!(c.api_keys[0].id.starts_with("da2-"));
        assert_eq!(c.api_keys[0].id.len(), 30);
        assert_eq!(c.tls, TlsSetting::None);
    }

    #[test]
    fn file_and_flags() {
        let file = ConfigFile::parse(
            r#"
            name = "chat"
            [server]
            listen = "127.0.0.1:9000"
            [event_config]
            auth_providers = [{ auth_type = "API_KEY" }]
            connection_auth_modes = [{ auth_type = "API_KEY" }]
            [[api_keys]]
            id = "da2-fromfile000000000000000000"
            expires = 1700000000
            [[channel_namespaces]]
            name = "chat"
            [limits]
            max_subscriptions_per_connection = 500
            "#,
        )
        .unwrap();
        let c = ApiConfig::resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:9001".parse().unwrap()),
                namespaces: vec!["chat".into(), "extra".into()],
                api_keys: vec!["cli-key-123".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(
            c.namespaces
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>(),
            ["chat", "extra"]
        );
        assert_eq!(c.api_keys.len(), 2);
        assert!(!c.generated_api_key);
        assert_eq!(c.limits.max_subscriptions_per_connection, 500);
    }

    #[test]
    fn listen_takes_host_names() {
        assert_eq!(resolve_listen("localhost:9002").unwrap().port(), 9002);
        assert!(resolve_listen("localhost:9002").unwrap().ip().is_loopback());
        assert_eq!(
            resolve_listen("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert!(resolve_listen("localhost")
            .unwrap_err()
            .contains("HOST:PORT"));
        let file = ConfigFile::parse("[server]\nlisten = \"localhost:9003\"").unwrap();
        let c = ApiConfig::resolve(file, Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 9003);
    }

    #[test]
    fn refusals_are_clear() {
        let err = |text: &str| {
            ApiConfig::resolve(ConfigFile::parse(text).unwrap(), Overrides::default()).unwrap_err()
        };
        assert!(err("[[channel_namespaces]]\nname = \"-bad\"").contains("invalid"));
        assert!(
            err("[[channel_namespaces]]\nname = \"a\"\n[[channel_namespaces]]\nname = \"a\"")
                .contains("twice")
        );
        assert!(
            err("[event_config]\nauth_providers = [{ auth_type = \"AWS_IAM\" }]")
                .contains("iam_credentials")
        );
        assert!(
            err("[event_config]\nauth_providers = [{ auth_type = \"OPENID_CONNECT\" }]")
                .contains("needs open_id_connect_config")
        );
        assert!(err("[event_config]\nauth_providers = [{ auth_type = \"AWS_LAMBDA\", lambda_authorizer_config = { authorizer_uri = \"http://x\", identity_validation_expression = \"(\" } }]")
            .contains("identity_validation_expression"));
        assert!(ConfigFile::parse("bogus = 1").is_err());
        assert!(err(
            "[[channel_namespaces]]\nname = \"a\"\nhandler_configs = { on_publish = { behavior = \"DIRECT\", integration = { data_source_name = \"x\" } } }"
        )
        .contains("no data source named 'x'"));
        assert!(err("[event_config]\nconnection_auth_modes = []").contains("empty"));
        assert!(err("account_id = \"12345\"").contains("12 digits"));
        assert!(err("api_id = \"no/slash\"").contains("api_id"));
    }
}
