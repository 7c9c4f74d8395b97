//! Functions: one model for everything in Herald that ends in "invoke a
//! function" (namespace handlers, and later event source mappings, rules and
//! workflows), managed through Lambda's API on the admin listener or
//! declared in the configuration file.
//!
//! Two kinds behind one invoke path ([`Functions::invoke`]):
//! - **JavaScript**, run in-process in QuickJS ([`js`]) on a pool of worker
//!   threads ([`pool`]) that keep each function initialized, so a warm
//!   invocation costs a call, not a start;
//! - **HTTP**: a URL Herald POSTs the event to ([`http`]), for any language.
//!
//! Limits, as Lambda's: a timeout per function (default 3 s), a memory limit
//! (JavaScript), and reserved concurrency: an invocation past it is refused
//! at once with `TooManyRequestsException`, never queued. A function that
//! loops, throws, exhausts memory or answers garbage fails that invocation
//! only.

mod asynchronous;
pub mod code;
mod declared;
pub mod fetch;
mod http;
pub mod js;
pub mod pool;
mod stored;

pub use asynchronous::EventInvokeConfig;
pub use code::Package;
pub use pool::PoolSettings;

use crate::http_client::HttpClient;
use bytes::Bytes;
use pool::{JsCode, JsPool, Refused};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// The `Environment` variable that makes a function an HTTP function.
pub const URL_VARIABLE: &str = "HERALD_FUNCTION_URL";
/// Lambda's bounds.
pub const MAX_TIMEOUT_SECS: u64 = 900;
pub const MIN_MEMORY_MB: u32 = 128;
pub const MAX_MEMORY_MB: u32 = 10_240;
/// Lambda's synchronous payload limit (6 MB), and the asynchronous one (1 MB).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
/// Functions one server keeps (bounds the metrics' `function` label).
pub const MAX_FUNCTIONS: usize = 1000;
/// Asynchronous invocations waiting or retrying at once; past this, `Event`
/// invocations are refused with `TooManyRequestsException`.
pub const MAX_ASYNC_PENDING: usize = 10_000;

/// A function as configured: Lambda's `FunctionConfiguration` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub name: String,
    pub runtime: String,
    /// `file.export` (JavaScript).
    pub handler: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub role: String,
    pub timeout_secs: u64,
    pub memory_mb: u32,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub reserved_concurrency: Option<u32>,
    /// Base64 SHA-256 of the package, and its size, as Lambda reports them.
    pub code_sha256: String,
    pub code_size: u64,
    /// Lambda's `EventInvokeConfig`: retries, event age and destinations of
    /// asynchronous invocations.
    #[serde(default)]
    pub event_invoke: Option<EventInvokeConfig>,
    /// ISO 8601, Lambda's format.
    pub last_modified: String,
    pub revision_id: String,
}

impl FunctionSpec {
    /// The URL of an HTTP function.
    pub fn url(&self) -> Option<&str> {
        self.environment.get(URL_VARIABLE).map(String::as_str)
    }

    /// Check the fields as Lambda does; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!(
                "Timeout must be from 1 to {MAX_TIMEOUT_SECS} seconds (got {})",
                self.timeout_secs
            ));
        }
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return Err(format!(
                "MemorySize must be from {MIN_MEMORY_MB} to {MAX_MEMORY_MB} MB (got {})",
                self.memory_mb
            ));
        }
        match self.url() {
            Some(url) => {
                crate::http_client::Url::parse(url)
                    .map_err(|e| format!("Environment.Variables.{URL_VARIABLE}: {e}"))?;
            }
            None if is_js_runtime(&self.runtime) => {}
            None => {
                return Err(format!(
                    "Runtime {} runs as an HTTP function: set Environment.Variables.{URL_VARIABLE} to its URL (JavaScript runs in-process with nodejs* or herald-js)",
                    self.runtime
                ))
            }
        }
        Ok(())
    }
}

/// Lambda's function name rule.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "FunctionName '{name}' is invalid: 1-64 letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

/// Runtimes Herald runs in-process.
pub fn is_js_runtime(runtime: &str) -> bool {
    runtime.starts_with("nodejs") || runtime == "herald-js"
}

/// Now in Lambda's `LastModified` format (`2024-01-02T03:04:05.000+0000`).
pub fn now_iso() -> String {
    let (date, time) = now_parts();
    format!("{date}T{time}+0000")
}

/// Now as RFC 3339 in UTC with milliseconds (`2024-01-02T03:04:05.000Z`).
pub fn now_rfc3339() -> String {
    let (date, time) = now_parts();
    format!("{date}T{time}Z")
}

/// Epoch milliseconds as RFC 3339 in UTC (`2024-01-02T03:04:05.000Z`).
pub fn iso_millis(ms: u64) -> String {
    let (date, time) = parts(Duration::from_millis(ms));
    format!("{date}T{time}Z")
}

/// Today's date and the time of day with milliseconds, in UTC.
fn now_parts() -> (String, String) {
    parts(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn parts(d: Duration) -> (String, String) {
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            d.subsec_millis()
        ),
    )
}

/// The package's SHA-256, base64 (Lambda's `CodeSha256`).
pub fn sha256_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

enum Body {
    Js(Arc<JsCode>),
    Http(String),
}

/// A function ready to invoke.
pub struct Function {
    pub spec: FunctionSpec,
    /// Defined in the configuration file (the API does not change it).
    pub from_file: bool,
    /// The deployment package as uploaded (a zip), for the store.
    pub zip: Option<Bytes>,
    body: Body,
    /// Reserved concurrency: invocations past it are refused.
    slots: Option<Arc<Semaphore>>,
}

impl Function {
    pub fn is_http(&self) -> bool {
        matches!(self.body, Body::Http(_))
    }
}

/// Why an invocation did not run: Lambda's exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    NotFound(String),
    /// Reserved or pool concurrency exhausted; the reason is Lambda's.
    TooManyRequests(&'static str),
    /// The payload is not JSON.
    InvalidContent(String),
    TooLarge(usize),
    /// Herald could not run it (its workers stopped).
    Service(String),
}

/// A finished invocation.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub payload: Bytes,
    /// Lambda's `X-Amz-Function-Error: Unhandled`.
    pub function_error: bool,
    pub request_id: String,
    pub duration: Duration,
    /// Init time when this invocation was a cold start.
    pub init: Option<Duration>,
}

/// Every function the server runs.
pub struct Functions {
    map: RwLock<HashMap<String, Arc<Function>>>,
    pool: JsPool,
    http: HttpClient,
    next_version: AtomicU64,
    region: String,
    account: String,
    pub metrics: metrics::FunctionMetrics,
    pub(crate) async_pending: Arc<Semaphore>,
    /// For `fetch`, which runs on the worker threads.
    handle: tokio::runtime::Handle,
    /// The server's fault injection experiments (they act on invocations).
    faults: Arc<crate::faults::Faults>,
}

pub mod metrics;

impl Functions {
    pub fn new(
        settings: PoolSettings,
        http: HttpClient,
        region: &str,
        account: &str,
        faults: Arc<crate::faults::Faults>,
    ) -> Result<Functions, String> {
        Ok(Functions {
            faults,
            map: RwLock::new(HashMap::new()),
            pool: JsPool::start(settings)?,
            http,
            next_version: AtomicU64::new(1),
            region: region.to_string(),
            account: account.to_string(),
            metrics: metrics::FunctionMetrics::default(),
            async_pending: Arc::new(Semaphore::new(MAX_ASYNC_PENDING)),
            handle: tokio::runtime::Handle::try_current()
                .map_err(|_| "functions need the async runtime".to_string())?,
        })
    }

    /// The server's one outbound HTTP client (for other subsystems too).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The server's fault injection (for the engines and the FIS API too).
    pub fn faults(&self) -> &Arc<crate::faults::Faults> {
        &self.faults
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account
        )
    }

    /// A function name, from a name, an ARN or a partial ARN
    /// (`123456789012:function:name`), without a `$LATEST` qualifier.
    pub fn name_of(reference: &str) -> &str {
        let r = reference.strip_suffix(":$LATEST").unwrap_or(reference);
        match r.rfind("function:") {
            Some(i) => &r[i + "function:".len()..],
            None => r,
        }
    }

    pub fn get(&self, reference: &str) -> Option<Arc<Function>> {
        self.map
            .read()
            .unwrap()
            .get(Self::name_of(reference))
            .cloned()
    }

    /// Every function, by name.
    pub fn list(&self) -> Vec<Arc<Function>> {
        let mut all: Vec<_> = self.map.read().unwrap().values().cloned().collect();
        all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        all
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Build a function from its spec and code, checking that JavaScript
    /// loads and initializes (a syntax error is refused here, with Lambda's
    /// error type and the message, not at the first invocation). Blocks for
    /// the time of one init: call it off the async threads.
    pub fn prepare(
        &self,
        spec: FunctionSpec,
        package: Option<Package>,
        zip: Option<Bytes>,
        from_file: bool,
    ) -> Result<Arc<Function>, String> {
        spec.check()?;
        let body = match (spec.url(), package) {
            (Some(url), _) => Body::Http(url.to_string()),
            (None, Some(package)) => {
                let setup = js::JsSetup {
                    name: spec.name.clone(),
                    package: Arc::new(package),
                    env: spec.environment.clone().into_iter().collect(),
                    memory_bytes: spec.memory_mb as usize * 1024 * 1024,
                    init_timeout: Duration::from_secs(10),
                    fetch: fetch::allowed(&spec.environment).map(|allow| fetch::FetchHost {
                        allow,
                        http: self.http.clone(),
                        handle: self.handle.clone(),
                        timeout: Duration::from_secs(spec.timeout_secs),
                    }),
                };
                if let Err(e) = js::JsFunction::load(&setup) {
                    return Err(format!(
                        "{}: {}",
                        e["errorType"].as_str().unwrap_or("Runtime.Error"),
                        e["errorMessage"].as_str().unwrap_or_default()
                    ));
                }
                Body::Js(Arc::new(JsCode {
                    version: self.next_version.fetch_add(1, Ordering::Relaxed),
                    setup,
                }))
            }
            (None, None) => return Err("A JavaScript function needs code".into()),
        };
        Ok(Arc::new(Function {
            slots: spec
                .reserved_concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            spec,
            from_file,
            zip,
            body,
        }))
    }

    /// Serve `f` (replacing a function of the same name) once its code is
    /// warmed on the workers: until then the previous version serves.
    pub async fn install(&self, f: Arc<Function>) {
        self.warm(&f).await;
        self.insert(f);
    }

    /// Load and initialize `f`'s code on every worker (see [`pool::JsPool::warm`]).
    pub async fn warm(&self, f: &Function) {
        if let Body::Js(code) = &f.body {
            self.pool.warm(code).await;
        }
    }

    /// Serve `f` now (warm it first: [`Functions::warm`]).
    pub fn insert(&self, f: Arc<Function>) {
        self.metrics.add(&f.spec.name);
        self.map.write().unwrap().insert(f.spec.name.clone(), f);
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Function>> {
        let f = self.map.write().unwrap().remove(name)?;
        self.pool.forget(name);
        self.metrics.remove(name);
        Some(f)
    }

    /// Run a function and wait for its answer (`RequestResponse`).
    pub async fn invoke(
        &self,
        reference: &str,
        payload: Bytes,
        client_context: Option<&str>,
    ) -> Result<Invoked, InvokeError> {
        self.run(reference, payload, client_context, true).await
    }

    /// [`Functions::invoke`] with a payload Herald wrote itself (an event
    /// source mapping's batch): JSON by construction, so it is not parsed
    /// once more to be checked.
    pub async fn invoke_built(
        &self,
        reference: &str,
        payload: Bytes,
    ) -> Result<Invoked, InvokeError> {
        self.run(reference, payload, None, false).await
    }

    async fn run(
        &self,
        reference: &str,
        payload: Bytes,
        client_context: Option<&str>,
        check: bool,
    ) -> Result<Invoked, InvokeError> {
        let f = self
            .get(reference)
            .ok_or_else(|| InvokeError::NotFound(Self::name_of(reference).to_string()))?;
        if payload.len() > MAX_SYNC_PAYLOAD {
            return Err(InvokeError::TooLarge(MAX_SYNC_PAYLOAD));
        }
        let payload = if check {
            checked_json(payload)?
        } else {
            payload
        };
        let _slot = match &f.slots {
            None => None,
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    self.metrics.throttled(&f.spec.name);
                    return Err(InvokeError::TooManyRequests(
                        "ReservedFunctionConcurrentInvocationLimitExceeded",
                    ));
                }
            },
        };
        let name = &f.spec.name;
        let request_id = crate::new_uuid().to_string();
        let timeout = Duration::from_secs(f.spec.timeout_secs);
        let started = Instant::now();
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + timeout.as_millis();
        let arn = self.arn(name);
        let _running = self.metrics.running(name);
        // A running experiment may delay the start, or answer instead.
        let fault = self.faults.on_invoke(&arn);
        if let Some(delay) = fault.delay {
            tokio::time::sleep(delay).await;
        }
        let (answer, init) = match &f.body {
            _ if fault.replace.as_ref().is_some_and(|r| r.prevent_execution) => {
                let r = fault.replace.as_ref().expect("checked");
                ((r.payload.clone(), r.function_error), None)
            }
            Body::Http(url) => {
                let call = http::Call {
                    request_id: &request_id,
                    deadline_ms,
                    arn: &arn,
                    client_context,
                };
                let a = http::invoke(&self.http, url, payload, call, timeout).await;
                ((a.payload, a.error), None)
            }
            Body::Js(code) => {
                let context = serde_json::json!({
                    "export": code.setup.package.export,
                    "handler": f.spec.handler,
                    "functionName": name,
                    "functionVersion": "$LATEST",
                    "invokedFunctionArn": arn,
                    "memoryLimitInMB": f.spec.memory_mb.to_string(),
                    "awsRequestId": request_id,
                    "deadlineMs": deadline_ms as u64,
                    "clientContext": client_context.and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()),
                })
                .to_string();
                let event = String::from_utf8(payload.to_vec())
                    .map_err(|_| InvokeError::InvalidContent("the payload is not UTF-8".into()))?;
                match self
                    .pool
                    .invoke(code.clone(), event, context, request_id.clone(), timeout)
                    .await
                {
                    Ok(ran) => match ran.result {
                        js::JsResult::Ok(json) => ((Bytes::from(json), false), ran.init),
                        js::JsResult::Error { error, .. } => {
                            ((Bytes::from(error.to_string()), true), ran.init)
                        }
                    },
                    Err(Refused::Full) => {
                        self.metrics.throttled(name);
                        return Err(InvokeError::TooManyRequests(
                            "ConcurrentInvocationLimitExceeded",
                        ));
                    }
                    Err(Refused::Stopped) => {
                        return Err(InvokeError::Service("the function workers stopped".into()))
                    }
                }
            }
        };
        let duration = started.elapsed();
        let (payload, function_error) = match fault.replace {
            // Ran, and its answer is replaced.
            Some(r) => (r.payload, r.function_error),
            None => answer,
        };
        self.metrics
            .invoked(name, function_error, duration.as_secs_f64());
        if function_error {
            tracing::info!(function = %name, request = %request_id, "function error");
        }
        Ok(Invoked {
            payload,
            function_error,
            request_id,
            duration,
            init,
        })
    }
}

/// The payload as JSON text (empty: `{}`), or Lambda's error for it.
pub(crate) fn checked_json(payload: Bytes) -> Result<Bytes, InvokeError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"{}"));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&payload).map_err(|e| {
        InvokeError::InvalidContent(format!("Could not parse request body into json: {e}"))
    })?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_arns_and_dates() {
        assert_eq!(Functions::name_of("f"), "f");
        assert_eq!(
            Functions::name_of("arn:aws:lambda:us-east-1:123456789012:function:f"),
            "f"
        );
        assert_eq!(Functions::name_of("123456789012:function:f:$LATEST"), "f");
        assert!(check_name("ok-name_1").is_ok());
        assert!(check_name("bad name").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        let d = now_iso();
        assert_eq!(d.len(), "2024-01-02T03:04:05.000+0000".len(), "{d}");
        assert!(d.starts_with("20") && d.ends_with("+0000"), "{d}");
    }

    #[test]
    fn payloads_must_be_json() {
        assert_eq!(
            checked_json(Bytes::new()).unwrap(),
            Bytes::from_static(b"{}")
        );
        assert!(checked_json(Bytes::from_static(b"{\"a\":1}")).is_ok());
        assert!(matches!(
            checked_json(Bytes::from_static(b"{nope")),
            Err(InvokeError::InvalidContent(_))
        ));
    }
}
