//! One JavaScript function loaded in its own QuickJS runtime: the prelude,
//! then the package's modules, with the top level of the entry module run
//! once ("init", as Lambda's init phase). Invocations reuse the runtime and
//! start from that initialized state, which is Herald's answer to SnapStart:
//! no per-invocation compile or init.
//!
//! An invocation that times out or exhausts memory breaks the runtime: the
//! caller drops it and the next invocation loads a fresh one.

use super::code::{resolve, Package};
use crate::js::{describe, limited_runtime, set_global};
use rquickjs::loader::{BuiltinLoader, Resolver};
use rquickjs::{Context, Ctx, Function, Module, Promise, Runtime};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PRELUDE: &str = include_str!("prelude.js");

/// What a loaded function needs besides its package.
#[derive(Debug, Clone)]
pub struct JsSetup {
    pub name: String,
    pub package: Arc<Package>,
    /// `Environment.Variables`.
    pub env: HashMap<String, String>,
    pub memory_bytes: usize,
    /// Time allowed for init (the module's top level).
    pub init_timeout: Duration,
    /// `fetch`, when the function opted in.
    pub fetch: Option<super::fetch::FetchHost>,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JsResult {
    /// The handler's value, as JSON text.
    Ok(String),
    /// A function error (`{errorType, errorMessage, trace}`), Lambda's
    /// `Unhandled`. `broken`: the runtime must not be reused.
    Error { error: Value, broken: bool },
}

impl JsResult {
    fn error(error_type: &str, message: impl Into<String>, broken: bool) -> JsResult {
        JsResult::Error {
            error: serde_json::json!({"errorType": error_type, "errorMessage": message.into(), "trace": []}),
            broken,
        }
    }
}

/// Resolves imports inside the package only.
struct PackageResolver {
    files: Arc<Package>,
}

impl Resolver for PackageResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        resolve(&self.files.files, base, name)
            .ok_or_else(|| rquickjs::Error::new_resolving(base, name))
    }
}

pub struct JsFunction {
    _runtime: Runtime,
    context: Context,
    deadline: Rc<Cell<Option<Instant>>>,
    /// The request id `console` lines carry.
    request_id: Rc<RefCell<String>>,
    /// How long init took.
    pub init: Duration,
}

/// A thrown error in Lambda's terms: timeouts and memory exhaustion by their
/// Lambda names.
fn classify(message: String, timed_out: bool, limit: Duration) -> JsResult {
    if timed_out {
        return JsResult::error(
            "Sandbox.Timedout",
            format!("Task timed out after {:.2} seconds", limit.as_secs_f64()),
            true,
        );
    }
    if message.contains("out of memory") {
        return JsResult::error("Runtime.OutOfMemory", "Runtime exited: out of memory", true);
    }
    JsResult::error("Runtime.ExitError", message, true)
}

impl JsFunction {
    /// Load and initialize. Errors are Lambda's init errors
    /// (`Runtime.UserCodeSyntaxError`, `Runtime.ImportModuleError`, ...), as
    /// the `{errorType, errorMessage}` value.
    pub fn load(setup: &JsSetup) -> Result<JsFunction, Value> {
        let fail = |t: &str, m: String| serde_json::json!({"errorType": t, "errorMessage": m, "trace": []});
        let started = Instant::now();
        let (runtime, deadline) =
            limited_runtime(setup.memory_bytes).map_err(|e| fail("Runtime.ExitError", e))?;
        let mut loader = BuiltinLoader::default();
        for (path, source) in &setup.package.files {
            loader.add_module(path.clone(), source.clone());
        }
        loader.add_module(
            "__herald_main",
            format!(
                "import * as m from './{}'; globalThis.__herald_module = m;",
                setup.package.entry.replace('\'', "\\'")
            ),
        );
        runtime.set_loader(
            MainOrPackage {
                inner: PackageResolver {
                    files: setup.package.clone(),
                },
            },
            loader,
        );
        let context =
            Context::full(&runtime).map_err(|e| fail("Runtime.ExitError", e.to_string()))?;
        let request_id: Rc<RefCell<String>> = Rc::new(RefCell::new(String::new()));
        let env = serde_json::to_string(&setup.env).expect("strings serialize");
        deadline.set(Some(started + setup.init_timeout));
        let loaded = context.with(|ctx| -> Result<(), Value> {
            let g = ctx.globals();
            let name = setup.name.clone();
            let rid = request_id.clone();
            set_global(
                &g,
                "__herald_log",
                Function::new(ctx.clone(), move |level: String, msg: String| {
                    let msg: String = msg.chars().take(8192).collect();
                    let req = rid.borrow();
                    match level.as_str() {
                        "error" => tracing::error!(function = %name, request = %req, "{msg}"),
                        "warn" => tracing::warn!(function = %name, request = %req, "{msg}"),
                        "debug" => tracing::debug!(function = %name, request = %req, "{msg}"),
                        _ => tracing::info!(function = %name, request = %req, "{msg}"),
                    }
                }),
            )
            .map_err(|e| fail("Runtime.ExitError", e))?;
            if let Some(host) = setup.fetch.clone() {
                set_global(
                    &g,
                    "__herald_fetch",
                    Function::new(
                        ctx.clone(),
                        move |url: String, method: String, headers: String, body: String| {
                            host.fetch(&url, &method, &headers, body)
                        },
                    ),
                )
                .map_err(|e| fail("Runtime.ExitError", e))?;
            }
            g.set("__herald_env", env)
                .map_err(|e| fail("Runtime.ExitError", e.to_string()))?;
            ctx.eval::<(), _>(PRELUDE)
                .map_err(|e| fail("Runtime.ExitError", describe(&ctx, e)))?;
            let init = Module::import(&ctx, "__herald_main").and_then(|p| p.finish::<()>());
            init.map_err(|e| {
                let msg = describe(&ctx, e);
                let kind = if msg.starts_with("SyntaxError") {
                    "Runtime.UserCodeSyntaxError"
                } else if msg.contains("could not load module") || msg.contains("resolving") {
                    "Runtime.ImportModuleError"
                } else if msg.contains("out of memory") {
                    "Runtime.OutOfMemory"
                } else if msg.contains("interrupted") {
                    "Sandbox.Timedout"
                } else {
                    "Runtime.UnhandledInitError"
                };
                fail(kind, msg)
            })
        });
        deadline.set(None);
        loaded?;
        Ok(JsFunction {
            _runtime: runtime,
            context,
            deadline,
            request_id,
            init: started.elapsed(),
        })
    }

    /// Run the handler on `event` (JSON text) with `context` (JSON text: the
    /// fields the prelude turns into Lambda's context) within `timeout`.
    pub fn invoke(
        &self,
        event: &str,
        context: &str,
        request_id: &str,
        timeout: Duration,
    ) -> JsResult {
        *self.request_id.borrow_mut() = request_id.to_string();
        let deadline = Instant::now() + timeout;
        self.deadline.set(Some(deadline));
        let out = self.context.with(|ctx| -> Result<String, String> {
            let f: Function = ctx
                .globals()
                .get("__herald_invoke")
                .map_err(|e| e.to_string())?;
            let p: Promise = f.call((event, context)).map_err(|e| describe(&ctx, e))?;
            p.finish::<String>().map_err(|e| match e {
                rquickjs::Error::WouldBlock => "WouldBlock".to_string(),
                e => describe(&ctx, e),
            })
        });
        self.deadline.set(None);
        self.request_id.borrow_mut().clear();
        match out {
            Ok(json) => match serde_json::from_str::<Value>(&json) {
                Ok(mut v) => match v.get_mut("error") {
                    Some(e) => JsResult::Error {
                        // Memory ran out: the runtime is not trusted again.
                        broken: e["errorType"] == "Runtime.OutOfMemory",
                        error: e.take(),
                    },
                    None => JsResult::Ok(v.get("ok").map(Value::to_string).unwrap_or("null".into())),
                },
                Err(_) => JsResult::error("Runtime.MarshalError", "the answer is not JSON", false),
            },
            // A job that was interrupted leaves its promise pending.
            Err(w) if w == "WouldBlock" && Instant::now() > deadline => {
                classify(w, true, timeout)
            }
            Err(w) if w == "WouldBlock" => JsResult::error(
                "Runtime.ExitError",
                "The handler's promise never settled: it waits for something that cannot happen here, or failed beyond recovery (out of memory)",
                true,
            ),
            Err(e) => classify(e, Instant::now() > deadline, timeout),
        }
    }
}

/// The main shim by its own name, everything else inside the package.
struct MainOrPackage {
    inner: PackageResolver,
}

impl Resolver for MainOrPackage {
    fn resolve<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        if name == "__herald_main" {
            return Ok(name.to_string());
        }
        let base = if base == "__herald_main" { "" } else { base };
        self.inner.resolve(ctx, base, name, attributes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(source: &str) -> JsSetup {
        JsSetup {
            name: "f".into(),
            package: Arc::new(Package::single("index.mjs", source, "index.handler").unwrap()),
            env: HashMap::from([("GREETING".to_string(), "hi".to_string())]),
            memory_bytes: 32 << 20,
            init_timeout: Duration::from_secs(5),
            fetch: None,
        }
    }

    fn ctx() -> String {
        serde_json::json!({"export": "handler", "handler": "index.handler", "functionName": "f",
            "deadlineMs": 0, "awsRequestId": "r1"})
        .to_string()
    }

    #[test]
    fn sync_async_and_callback_handlers_answer() {
        for src in [
            "export const handler = (e) => ({n: e.n + 1, env: process.env.GREETING});",
            "export const handler = async (e) => { await null; return {n: e.n + 1, env: process.env.GREETING}; };",
            "export const handler = (e, c, cb) => cb(null, {n: e.n + 1, env: process.env.GREETING});",
            "exports.handler = async (e) => ({n: e.n + 1, env: process.env.GREETING});",
        ] {
            let file = if src.starts_with("exports") { "index.js" } else { "index.mjs" };
            let s = JsSetup {
                package: Arc::new(Package::single(file, src, "index.handler").unwrap()),
                ..setup("")
            };
            let f = JsFunction::load(&s).unwrap();
            let r = f.invoke(r#"{"n": 1}"#, &ctx(), "r1", Duration::from_secs(1));
            // The function's own key order, as Lambda returns it.
            assert_eq!(r, JsResult::Ok(r#"{"n":2,"env":"hi"}"#.into()), "{src}");
        }
    }

    #[test]
    fn init_runs_once_and_state_is_kept() {
        let f = JsFunction::load(&setup(
            "let inits = 0; inits++; let calls = 0; export const handler = () => ({inits, calls: ++calls});",
        ))
        .unwrap();
        f.invoke("null", &ctx(), "r", Duration::from_secs(1));
        let r = f.invoke("null", &ctx(), "r", Duration::from_secs(1));
        assert_eq!(r, JsResult::Ok(r#"{"inits":1,"calls":2}"#.into()));
    }

    #[test]
    fn errors_have_lambdas_shape() {
        let f = JsFunction::load(&setup(
            "export const handler = (e) => { if (e === 1) throw new TypeError('bad'); if (e === 2) throw 'str'; if (e === 3) { for(;;){} } if (e === 5) return (async () => { await null; for(;;){} })(); };",
        ))
        .unwrap();
        let error = |e: &str| match f.invoke(e, &ctx(), "r", Duration::from_millis(200)) {
            JsResult::Error { error, broken } => (
                error["errorType"].as_str().unwrap().to_string(),
                broken,
                error,
            ),
            other => panic!("{other:?}"),
        };
        let (t, broken, e) = error("1");
        assert_eq!((t.as_str(), broken), ("TypeError", false));
        assert_eq!(e["errorMessage"], "bad");
        assert_eq!(error("2").0, "string");
        assert_eq!(error("3").0, "Sandbox.Timedout");
        assert_eq!(error("5").0, "Sandbox.Timedout", "after an await too");
        let garbage =
            JsFunction::load(&setup("export const handler = () => ({ n: 10n });")).unwrap();
        match garbage.invoke("null", &ctx(), "r", Duration::from_secs(1)) {
            JsResult::Error { error, broken } => {
                assert_eq!(error["errorType"], "Runtime.MarshalError");
                assert!(!broken, "an answer JSON cannot carry breaks nothing");
            }
            other => panic!("{other:?}"),
        }
        let f = JsFunction::load(&setup(
            "export const handler = () => { const a = []; for(;;) a.push(new Array(1e5).fill(1)); };",
        ))
        .unwrap();
        match f.invoke("null", &ctx(), "r", Duration::from_secs(10)) {
            JsResult::Error { error, broken } => {
                assert_eq!(error["errorType"], "Runtime.OutOfMemory");
                assert!(broken);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn init_errors_are_lambdas() {
        let kind = |src: &str| JsFunction::load(&setup(src)).err().unwrap()["errorType"].clone();
        assert_eq!(
            kind("export const handler = (;"),
            "Runtime.UserCodeSyntaxError"
        );
        assert_eq!(
            kind("import x from './missing.mjs'; export const handler = x;"),
            "Runtime.ImportModuleError"
        );
        assert_eq!(
            kind("throw new Error('init failed');"),
            "Runtime.UnhandledInitError"
        );
        let f = JsFunction::load(&setup("export const other = 1;")).unwrap();
        match f.invoke("null", &ctx(), "r", Duration::from_secs(1)) {
            JsResult::Error { error, .. } => {
                assert_eq!(error["errorType"], "Runtime.HandlerNotFound")
            }
            other => panic!("{other:?}"),
        }
    }
}
