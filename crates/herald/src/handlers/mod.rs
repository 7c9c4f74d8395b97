//! Namespace handlers: `onPublish` / `onSubscribe` written in JavaScript (AppSync's
//! `code_handlers`), run in embedded QuickJS.
//!
//! Each namespace's code is checked when the server starts (a syntax error stops
//! it with the message and line). Invocations run on a small pool of worker
//! threads; each worker keeps one loaded runtime per namespace and reuses it, so
//! an invocation starts from compiled, initialized code. Every invocation has a
//! wall-time limit (enforced with QuickJS's interrupt handler) and every runtime
//! a memory limit; a handler that loops, exhausts memory or throws fails that one
//! request with a clear error, its runtime is replaced, and nothing else is
//! affected. Handler code has no file or network access: QuickJS offers none and
//! Herald adds none.
//!
//! The job queue is bounded: when it is full (handlers slower than the request
//! rate), requests fail at once with a clear error instead of waiting.

mod direct;
mod runtime;

pub use direct::{DirectHandler, InvokeType, Target};

use runtime::{JsInstance, JsLimits, JsOutcome};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// AppSync's limit on handler code.
pub const MAX_CODE_CHARS: usize = 32_768;

/// Which handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OnPublish,
    OnSubscribe,
}

impl Kind {
    pub fn export(self) -> &'static str {
        match self {
            Kind::OnPublish => "onPublish",
            Kind::OnSubscribe => "onSubscribe",
        }
    }
}

/// What a handler said.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The namespace has no such handler: default behaviour.
    Absent,
    /// The handler returned this value (`null` for nothing).
    Returned(Value),
    /// `util.error(message, errorType)`.
    Error {
        message: String,
        error_type: Option<String>,
    },
    /// `util.unauthorized()`.
    Unauthorized,
    /// `onSubscribe` called `extensions.setSubscriptionFilter(pattern)` (and
    /// returned normally).
    SubscriptionFilter(Value),
}

/// Why a handler could not answer (for that request only).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure(pub String);

/// Handler limits and pool size.
#[derive(Debug, Clone, Copy)]
pub struct HandlerSettings {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub workers: usize,
    pub queue: usize,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        HandlerSettings {
            timeout: Duration::from_secs(30),
            memory_bytes: 64 << 20,
            workers: 2,
            queue: 1024,
        }
    }
}

/// One namespace's code, as loaded; `version` changes with every reload.
struct Code {
    namespace: Arc<str>,
    source: Arc<str>,
    version: u64,
}

struct Job {
    code: Arc<Code>,
    kind: Kind,
    ctx_json: String,
    reply: oneshot::Sender<Result<Outcome, Failure>>,
}

/// Timings and counts for metrics.
pub struct Invocation {
    pub result: Result<Outcome, Failure>,
    pub duration: Duration,
}

/// The handler worker pool.
pub struct HandlerPool {
    jobs: mpsc::SyncSender<Job>,
    /// Namespace -> its current code. A std `RwLock`: read per invocation,
    /// written only on reload, never held across an `.await`.
    code: RwLock<HashMap<String, Arc<Code>>>,
    next_version: AtomicU64,
    settings: HandlerSettings,
}

/// Check that `source` loads as a handler module for `ns` (for callers that
/// must know before they commit to a change).
pub fn check_code(ns: &str, source: &str, settings: &HandlerSettings) -> Result<(), String> {
    check(ns, source, settings)
}

/// Check that `source` loads as a handler module for `ns`.
fn check(ns: &str, source: &str, settings: &HandlerSettings) -> Result<(), String> {
    if source.chars().count() > MAX_CODE_CHARS {
        return Err(format!(
            "namespace '{ns}': code_handlers is longer than {MAX_CODE_CHARS} characters"
        ));
    }
    let limits = JsLimits {
        timeout: settings.timeout.min(Duration::from_secs(10)),
        memory_bytes: settings.memory_bytes,
    };
    let instance = JsInstance::load(ns, source, limits)
        .map_err(|e| format!("namespace '{ns}': code_handlers do not load: {e}"))?;
    if !instance.exports("onPublish") && !instance.exports("onSubscribe") {
        return Err(format!(
            "namespace '{ns}': code_handlers export neither onPublish nor onSubscribe"
        ));
    }
    Ok(())
}

impl HandlerPool {
    /// Check every namespace's code and start the workers. `code` maps namespace
    /// names to their handler source (it may be empty: code can come with a reload).
    pub fn start(
        code: HashMap<String, String>,
        settings: HandlerSettings,
    ) -> Result<HandlerPool, String> {
        for (ns, source) in &code {
            check(ns, source, &settings)?;
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(settings.queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..settings.workers.max(1) {
            let rx = rx.clone();
            let limits = JsLimits {
                timeout: settings.timeout,
                memory_bytes: settings.memory_bytes,
            };
            std::thread::Builder::new()
                .name(format!("herald-handlers-{i}"))
                .spawn(move || worker(rx, limits))
                .map_err(|e| e.to_string())?;
        }
        let pool = HandlerPool {
            jobs: tx,
            code: RwLock::new(HashMap::new()),
            next_version: AtomicU64::new(1),
            settings,
        };
        pool.install(code);
        Ok(pool)
    }

    fn install(&self, code: HashMap<String, String>) {
        let mut map = self.code.write().unwrap();
        for (ns, source) in code {
            let version = self.next_version.fetch_add(1, Ordering::Relaxed);
            map.insert(
                ns.clone(),
                Arc::new(Code {
                    namespace: ns.into(),
                    source: source.into(),
                    version,
                }),
            );
        }
    }

    /// Replace the handler code (hot reload): each namespace's new code is
    /// checked first; code that does not load is refused and that namespace keeps
    /// its previous code. Namespaces missing from `code` lose their handlers.
    /// Connections and subscriptions are untouched; workers load the new code on
    /// their next invocation. Returns one message per refused namespace.
    pub fn reload(&self, code: HashMap<String, String>) -> Vec<String> {
        let current = self.code.read().unwrap().clone();
        let mut next: HashMap<String, Arc<Code>> = HashMap::new();
        let mut errors = Vec::new();
        for (ns, source) in code {
            match current.get(&ns) {
                Some(c) if *c.source == *source => {
                    next.insert(ns, c.clone());
                }
                old => match check(&ns, &source, &self.settings) {
                    Ok(()) => {
                        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
                        let code = Code {
                            namespace: ns.as_str().into(),
                            source: source.into(),
                            version,
                        };
                        next.insert(ns, Arc::new(code));
                    }
                    Err(e) => {
                        errors.push(e);
                        if let Some(c) = old {
                            next.insert(ns, c.clone());
                        }
                    }
                },
            }
        }
        *self.code.write().unwrap() = next;
        errors
    }

    /// Set (or with `None` remove) one namespace's code, leaving the others
    /// alone: new code is checked first and refused code changes nothing.
    pub fn set(&self, namespace: &str, source: Option<&str>) -> Result<(), String> {
        let Some(source) = source else {
            self.code.write().unwrap().remove(namespace);
            return Ok(());
        };
        if self
            .code
            .read()
            .unwrap()
            .get(namespace)
            .is_some_and(|c| *c.source == *source)
        {
            return Ok(());
        }
        check(namespace, source, &self.settings)?;
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        self.code.write().unwrap().insert(
            namespace.to_string(),
            Arc::new(Code {
                namespace: namespace.into(),
                source: source.into(),
                version,
            }),
        );
        Ok(())
    }

    /// Whether `namespace` has code handlers.
    pub fn has(&self, namespace: &str) -> bool {
        self.code.read().unwrap().contains_key(namespace)
    }

    /// Run a handler. `Absent` when the namespace has no code or no such export.
    pub async fn invoke(&self, namespace: &str, kind: Kind, ctx: &Value) -> Invocation {
        let started = Instant::now();
        let Some(code) = self.code.read().unwrap().get(namespace).cloned() else {
            return Invocation {
                result: Ok(Outcome::Absent),
                duration: Duration::ZERO,
            };
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            code,
            kind,
            ctx_json: ctx.to_string(),
            reply,
        };
        let result = match self.jobs.try_send(job) {
            Err(mpsc::TrySendError::Full(_)) => Err(Failure(
                "too many handler invocations are waiting; try again".into(),
            )),
            Err(mpsc::TrySendError::Disconnected(_)) => {
                Err(Failure("the handler workers stopped".into()))
            }
            Ok(()) => {
                match tokio::time::timeout(self.settings.timeout + Duration::from_secs(5), answer)
                    .await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err(Failure("the handler worker stopped".into())),
                    Err(_) => Err(Failure("the handler did not answer in time".into())),
                }
            }
        };
        Invocation {
            result,
            duration: started.elapsed(),
        }
    }
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>, limits: JsLimits) {
    // Namespace -> (code version, loaded runtime).
    let mut instances: HashMap<Arc<str>, (u64, JsInstance)> = HashMap::new();
    loop {
        let job = match rx.lock().unwrap().recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if job.reply.is_closed() {
            continue;
        }
        let ns = job.code.namespace.clone();
        let current = instances
            .get(&ns)
            .is_some_and(|(v, _)| *v == job.code.version);
        if !current {
            instances.remove(&ns);
            match JsInstance::load(&ns, &job.code.source, limits) {
                Ok(i) => {
                    instances.insert(ns.clone(), (job.code.version, i));
                }
                Err(e) => {
                    let _ = job
                        .reply
                        .send(Err(Failure(format!("the handler code does not load: {e}"))));
                    continue;
                }
            }
        }
        let (_, instance) = &instances[&ns];
        let result = match instance.invoke(job.kind.export(), &job.ctx_json, limits.timeout) {
            JsOutcome::Answer(json) => parse_answer(&json),
            JsOutcome::Broken(why) => {
                // A runtime that was interrupted or ran out of memory is not reused.
                instances.remove(&ns);
                Err(Failure(why))
            }
        };
        let _ = job.reply.send(result);
    }
}

/// Timings for `herald bench handler`: `loads` cold starts (a fresh runtime
/// loading `code`, then its first invocation) and `calls` warm invocations of
/// `onPublish` on one loaded runtime, each with `ctx`.
pub fn measure(
    code: &str,
    ctx: &Value,
    loads: usize,
    calls: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let limits = JsLimits {
        timeout: Duration::from_secs(30),
        memory_bytes: 64 << 20,
    };
    let ctx_json = ctx.to_string();
    let mut cold = Vec::with_capacity(loads);
    for _ in 0..loads.max(1) {
        let t = Instant::now();
        let instance = JsInstance::load("bench", code, limits)?;
        if let JsOutcome::Broken(e) = instance.invoke("onPublish", &ctx_json, limits.timeout) {
            return Err(e);
        }
        cold.push(t.elapsed());
    }
    let instance = JsInstance::load("bench", code, limits)?;
    let mut warm = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        match instance.invoke("onPublish", &ctx_json, limits.timeout) {
            JsOutcome::Answer(a) => parse_answer(&a).map_err(|f| f.0)?,
            JsOutcome::Broken(e) => return Err(e),
        };
        warm.push(t.elapsed());
    }
    Ok((cold, warm))
}

fn parse_answer(json: &str) -> Result<Outcome, Failure> {
    let v: Value = serde_json::from_str(json)
        .map_err(|_| Failure("the handler's answer is not JSON".into()))?;
    if v.get("missing").is_some() {
        return Ok(Outcome::Absent);
    }
    if let Some(filter) = v.get("filter") {
        return Ok(Outcome::SubscriptionFilter(filter.clone()));
    }
    if let Some(ok) = v.get("ok") {
        return Ok(Outcome::Returned(ok.clone()));
    }
    match v.get("reject").and_then(Value::as_str) {
        Some("unauthorized") => return Ok(Outcome::Unauthorized),
        Some(_) => {
            return Ok(Outcome::Error {
                message: v["message"].as_str().unwrap_or_default().to_string(),
                error_type: v["errorType"].as_str().map(str::to_string),
            })
        }
        None => {}
    }
    Err(Failure(
        v["thrown"]
            .as_str()
            .unwrap_or("the handler failed")
            .to_string(),
    ))
}
