//! One QuickJS runtime with one namespace's handler module loaded: created once
//! (per worker thread and namespace) and reused for every invocation, so an
//! invocation starts from compiled, initialized code ("fast start").

use crate::js::{describe, limited_runtime, set_global};
use rquickjs::loader::{BuiltinLoader, BuiltinResolver};
use rquickjs::{Context, Function, Module, Runtime};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const PRELUDE: &str = include_str!("prelude.js");
const UTILS_MODULE: &str =
    "export const util = globalThis.util; export const runtime = globalThis.runtime; export const extensions = globalThis.extensions; export default { util: globalThis.util, runtime: globalThis.runtime, extensions: globalThis.extensions };";
const MAIN_MODULE: &str = "import * as h from 'handler'; globalThis.__herald_handlers = h;";

/// Limits applied to every runtime.
#[derive(Debug, Clone, Copy)]
pub struct JsLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

/// A loaded handler module.
pub struct JsInstance {
    _runtime: Runtime,
    context: Context,
    deadline: Rc<Cell<Option<Instant>>>,
}

/// How an invocation ended, in JS's own words (JSON text from `__herald_invoke`).
pub enum JsOutcome {
    Answer(String),
    /// Timed out, out of memory, or the engine failed: the instance should be
    /// replaced.
    Broken(String),
}

/// A ULID: 48 bits of milliseconds and 80 random bits, Crockford base32.
fn ulid() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let value: u128 = (ms << 80) | (rand::random::<u128>() & ((1u128 << 80) - 1));
    (0..26)
        .map(|i| ALPHABET[((value >> (125 - i * 5)) & 0x1f) as usize] as char)
        .collect()
}

impl JsInstance {
    /// Load `source` for `namespace`: the prelude, then the module. Errors are
    /// ready for the user (syntax errors with their line).
    pub fn load(namespace: &str, source: &str, limits: JsLimits) -> Result<JsInstance, String> {
        let (runtime, deadline) = limited_runtime(limits.memory_bytes)?;
        runtime.set_loader(
            BuiltinResolver::default()
                .with_module("@aws-appsync/utils")
                .with_module("handler"),
            BuiltinLoader::default()
                .with_module("@aws-appsync/utils", UTILS_MODULE)
                .with_module("handler", source),
        );
        let context = Context::full(&runtime).map_err(|e| e.to_string())?;
        let ns = namespace.to_string();
        deadline.set(Some(Instant::now() + limits.timeout));
        let loaded = context.with(|ctx| -> Result<(), String> {
            let g = ctx.globals();
            let set = |name: &str, f| set_global(&g, name, f);
            let ns_log = ns.clone();
            set(
                "__herald_log",
                Function::new(ctx.clone(), move |level: String, msg: String| {
                    let msg: String = msg.chars().take(8192).collect();
                    match level.as_str() {
                        "error" => tracing::error!(namespace = %ns_log, "handler: {msg}"),
                        "warn" => tracing::warn!(namespace = %ns_log, "handler: {msg}"),
                        "debug" => tracing::debug!(namespace = %ns_log, "handler: {msg}"),
                        _ => tracing::info!(namespace = %ns_log, "handler: {msg}"),
                    }
                }),
            )?;
            set(
                "__herald_uuid",
                Function::new(ctx.clone(), || crate::new_uuid().to_string()),
            )?;
            set("__herald_ulid", Function::new(ctx.clone(), ulid))?;
            set(
                "__herald_b64",
                Function::new(ctx.clone(), |s: String, encode: bool| {
                    use base64::Engine as _;
                    let b = base64::engine::general_purpose::STANDARD;
                    if encode {
                        b.encode(s.as_bytes())
                    } else {
                        b.decode(s.trim().as_bytes())
                            .map(|v| String::from_utf8_lossy(&v).into_owned())
                            .unwrap_or_default()
                    }
                }),
            )?;
            ctx.eval::<(), _>(PRELUDE).map_err(|e| describe(&ctx, e))?;
            let promise = Module::evaluate(ctx.clone(), "main", MAIN_MODULE)
                .map_err(|e| describe(&ctx, e))?;
            promise.finish::<()>().map_err(|e| describe(&ctx, e))?;
            Ok(())
        });
        deadline.set(None);
        loaded?;
        Ok(JsInstance {
            _runtime: runtime,
            context,
            deadline,
        })
    }

    /// Whether the module exports `name` as a function.
    pub fn exports(&self, name: &str) -> bool {
        self.context.with(|ctx| {
            let h: rquickjs::Result<rquickjs::Object> = ctx.globals().get("__herald_handlers");
            h.ok()
                .and_then(|h| h.get::<_, rquickjs::Value>(name).ok())
                .is_some_and(|v| v.is_function())
        })
    }

    /// Call export `name` with the context (JSON text) within the time limit.
    pub fn invoke(&self, name: &str, ctx_json: &str, timeout: Duration) -> JsOutcome {
        let deadline = Instant::now() + timeout;
        self.deadline.set(Some(deadline));
        let out = self.context.with(|ctx| -> Result<String, String> {
            let f: Function = ctx
                .globals()
                .get("__herald_invoke")
                .map_err(|e| e.to_string())?;
            f.call::<_, String>((name, ctx_json))
                .map_err(|e| describe(&ctx, e))
        });
        self.deadline.set(None);
        match out {
            Ok(s) => JsOutcome::Answer(s),
            Err(_) if Instant::now() > deadline => JsOutcome::Broken(format!(
                "the handler ran longer than {} ms",
                timeout.as_millis()
            )),
            Err(e) => JsOutcome::Broken(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_26_crockford_chars_and_sort_by_time() {
        let a = ulid();
        std::thread::sleep(Duration::from_millis(2));
        let b = ulid();
        assert_eq!(a.len(), 26);
        assert!(a
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
        assert!(a[..10] < b[..10]);
    }
}
