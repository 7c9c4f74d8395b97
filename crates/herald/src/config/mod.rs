//! Configuration: the TOML file, whose keys mirror AppSync's `EventConfig` and
//! `ChannelNamespace` fields in snake_case, plus Herald's own `[server]` and
//! `[limits]` tables. `docs/configuration.md` is the reference.
//!
//! Loading is two steps: [`ConfigFile`] is what the file says (every field
//! optional), [`ApiConfig::resolve`] applies defaults and command-line overrides and
//! checks consistency, so the server only ever sees a valid configuration.

mod admin;
mod auth;
mod derived;
mod engine;
mod function;
mod namespace;
mod server;
mod store;
#[cfg(test)]
mod tests;

pub use admin::{generate_credentials, AdminFile};
pub use auth::{
    AuthMode, AuthProviderFile, AuthType, CognitoConfig, IamCredential, IamGrant, LambdaConfig,
    OidcConfig, ProviderConfig,
};
pub use engine::{EngineSetting, NatsConfig, RedisConfig};
pub use function::{FunctionFile, FunctionPoolFile};
pub use namespace::{
    DataSourceFile, DirectConfig, DirectTarget, HandlerConfigFile, HandlerConfigsFile,
    IntegrationFile, LambdaConfigFile, LambdaInvokeFile, NamespaceFile,
};
use server::check_base_domain;
pub use server::{resolve_listen, ServerFile, TlsSetting, DEFAULT_LISTEN};
pub use store::{redact_url, StoreBackend, StoreConfig, StoreFile, DEFAULT_DATA_DIR};

use auth::all_namespaces;
use engine::{default_nats_url, default_redis_url};

use herald_core::channel::MAX_SEGMENT_LEN;
use herald_core::Limits;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// An API key, as AppSync's `ApiKey`: `expires` in epoch seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    pub id: String,
    pub description: Option<String>,
    pub expires: Option<i64>,
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
    #[serde(default)]
    pub functions: Vec<FunctionFile>,
    #[serde(default)]
    pub function_pool: FunctionPoolFile,
    /// `[[event_sources]]`: brokers behind event source ARNs.
    #[serde(default)]
    pub event_sources: Vec<crate::esm::config::EventSourceFile>,
    /// `[[event_source_mappings]]`: Lambda's fields in snake_case.
    #[serde(default)]
    pub event_source_mappings: Vec<toml::Value>,
    /// `[event_bus]`: the cluster's event log.
    #[serde(default)]
    pub event_bus: crate::bus::config::EventBusFile,
    /// `[[event_buses]]`: `CreateEventBus`'s fields in snake_case.
    #[serde(default)]
    pub event_buses: Vec<toml::Value>,
    /// `[[event_rules]]`: `PutRule`'s fields and `targets` in snake_case.
    #[serde(default)]
    pub event_rules: Vec<toml::Value>,
    /// `[history]`: what channel history may keep in all.
    #[serde(default)]
    pub history: crate::hub::history::HistoryLimitsFile,
    /// `[fault_injection]`: whether the FIS API is served.
    #[serde(default)]
    pub fault_injection: crate::faults::FaultInjectionFile,
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
    /// `--store-url URL`: the PostgreSQL store.
    pub store_url: Option<String>,
    /// The development mode: generate admin credentials when none exist.
    pub generate_admin_credentials: bool,
    pub api_keys: Vec<String>,
    pub namespaces: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: Option<PathBuf>,
    pub console: Option<bool>,
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
    /// AppSync's `handlerConfigs` as the admin API received them (what
    /// `GetChannelNamespace` shows); the file's namespaces have none here.
    pub handler_configs: Option<serde_json::Value>,
    /// Herald: keep each channel's recent events (see `hub::history`).
    pub history: Option<crate::hub::HistorySettings>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub name: String,
    /// The name in broker subjects and channels: the name for the file's API
    /// (nodes of a cluster share it by name), the id for created APIs.
    pub wire_name: String,
    /// AppSync's `ownerContact`.
    pub owner_contact: Option<String>,
    /// AppSync's `apiId`: 26 lowercase letters and digits unless configured.
    pub api_id: String,
    /// The 12-digit account id.
    pub account_id: String,
    pub listen: SocketAddr,
    pub tls: TlsSetting,
    pub shutdown_grace: Duration,
    /// The drain period before the listener closes on shutdown.
    pub drain: Duration,
    /// `[server] header_read_timeout_ms`: how long the public listener waits
    /// for a request's head (slow or silent clients are closed after it).
    pub header_read_timeout: Duration,
    /// The admin listener's address; `None` when it is off.
    pub admin_listen: Option<SocketAddr>,
    /// Where the control plane keeps what it creates.
    pub store: StoreConfig,
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
    /// `[history]`, resolved.
    pub history: crate::hub::history::HistoryLimits,
    /// Serve the web console.
    pub console: bool,
    /// Serve `/metrics`.
    pub metrics: bool,
    /// `[server] base_domain`, lowercase.
    pub base_domain: Option<String>,
    /// `[[functions]]`, checked; their code is read at start.
    pub functions: Vec<FunctionFile>,
    /// `[function_pool]`.
    pub function_pool: crate::functions::PoolSettings,
    /// `[[event_sources]]`, checked.
    pub event_sources: Vec<crate::esm::config::EventSourceFile>,
    /// `[[event_source_mappings]]`, validated as the Lambda API validates.
    pub event_source_mappings: Vec<crate::esm::spec::MappingSpec>,
    /// `[event_bus]`, checked.
    pub event_bus: crate::bus::config::EventBusFile,
    /// `[[event_buses]]` and `[[event_rules]]`, checked as the API checks them.
    pub declared_buses: crate::bus::config::Declared,
    /// `[function_pool] http_ca_file`.
    pub function_ca_file: Option<PathBuf>,
    /// AppSync log level (`NONE`, `ERROR`, `INFO`, `DEBUG`, `ALL`), if configured.
    pub log_level: Option<String>,
    pub handlers: crate::handlers::HandlerSettings,
    /// Whether fault injection experiments may run (`[fault_injection]
    /// enabled`; on by default only in the development mode).
    pub fault_injection: bool,
    /// `[[fault_injection.experiment_templates]]`, checked.
    pub fault_templates: Vec<crate::faults::settings::DeclaredTemplate>,
}

pub(super) fn modes(list: &Option<Vec<AuthMode>>) -> Option<Vec<AuthType>> {
    list.as_ref()
        .map(|l| l.iter().map(|m| m.auth_type).collect())
}

pub fn valid_namespace_name(name: &str) -> bool {
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
    format!("da2-{}", random_text(LOWER_ALNUM, 26))
}

/// Lowercase letters and digits: AppSync's ids and key tails.
pub const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters drawn from `alphabet` (ASCII) by the thread's RNG.
pub fn random_text(alphabet: &[u8], len: usize) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

impl ApiConfig {
    /// Apply defaults and overrides to a file and check the result.
    pub fn resolve(file: ConfigFile, over: Overrides) -> Result<ApiConfig, String> {
        let ev = &file.event_config;
        let (providers, resolved) = auth::resolve_providers(ev)?;
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
            match (&d.endpoint, &d.lambda_config) {
                (Some(e), None) if e.starts_with("http://") || e.starts_with("https://") => {}
                (Some(_), None) => {
                    return Err(format!(
                        "data source '{}': endpoint must be an http(s) URL",
                        d.name
                    ))
                }
                // A state machine is created through the admin API: it is
                // looked up when the handler runs.
                (None, Some(l)) if crate::workflow::is_state_machine(&l.lambda_function_arn) => {}
                (None, Some(l)) => {
                    let name = crate::functions::Functions::name_of(&l.lambda_function_arn);
                    if !file.functions.iter().any(|f| f.name == name) {
                        return Err(format!(
                            "data source '{}': lambda_config names '{name}', which no [[functions]] entry declares",
                            d.name
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "data source '{}': give either endpoint (a URL) or lambda_config.lambda_function_arn (a function)",
                        d.name
                    ))
                }
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

        let namespaces = namespace::resolve_namespaces(
            &file,
            &over.namespaces,
            &default_publish,
            &default_subscribe,
            &check,
        )?;

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
        let fault_injection = file
            .fault_injection
            .enabled
            .unwrap_or(over.generate_admin_credentials);
        let region = file
            .aws_region
            .clone()
            .unwrap_or_else(|| "us-east-1".into());
        let fault_templates = crate::faults::settings::declared(
            &file.fault_injection,
            fault_injection,
            &region,
            &account_id,
        )?;
        Ok(ApiConfig {
            wire_name: name.clone(),
            owner_contact: file.owner_contact.clone(),
            name,
            api_id,
            account_id,
            admin_listen,
            store: StoreConfig::resolve(
                &file.store,
                over.data_dir.clone(),
                over.store_url.clone(),
            )?,
            generated_admin,
            listen,
            tls,
            shutdown_grace: Duration::from_millis(file.server.shutdown_grace_ms.unwrap_or(10_000)),
            drain: Duration::from_millis(file.server.drain_ms.unwrap_or(2_000)),
            header_read_timeout: Duration::from_millis(
                file.server.header_read_timeout_ms.unwrap_or(30_000).max(1),
            ),
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
            history: crate::hub::history::HistoryLimits::resolve(&file.history)?,
            fault_injection,
            fault_templates,
            console: over.console.or(file.server.console).unwrap_or(false),
            metrics: file.server.metrics.unwrap_or(true),
            functions: {
                let mut seen = std::collections::HashSet::new();
                for f in &file.functions {
                    f.check()?;
                    if !seen.insert(f.name.as_str()) {
                        return Err(format!("function '{}' is declared twice", f.name));
                    }
                }
                file.functions.clone()
            },
            function_ca_file: file.function_pool.http_ca_file.clone(),
            event_sources: {
                for s in &file.event_sources {
                    s.check()?;
                }
                file.event_sources.clone()
            },
            event_source_mappings: crate::esm::from_file(&file.event_source_mappings)?,
            event_bus: {
                file.event_bus.check()?;
                file.event_bus.clone()
            },
            declared_buses: crate::bus::config::declared(&file.event_buses, &file.event_rules)?,
            function_pool: crate::functions::PoolSettings {
                workers: file.function_pool.workers.unwrap_or(2).max(1),
                queue: file.function_pool.queue.unwrap_or(1024).max(1),
            },
            base_domain: match &file.server.base_domain {
                None => None,
                Some(d) => Some(check_base_domain(d)?),
            },
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
        config.store = StoreConfig::memory();
        config
    }
}
