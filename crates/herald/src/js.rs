//! What the two users of embedded QuickJS share, namespace handlers
//! ([`crate::handlers`]) and functions ([`crate::functions`]): a runtime with
//! a memory limit and a wall-time deadline, and errors in the words a user
//! can act on.

use rquickjs::{Ctx, Function, Runtime};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

/// When a running call is interrupted: set before a call, cleared after.
pub type Deadline = Rc<Cell<Option<Instant>>>;

/// A runtime limited to `memory_bytes`, interrupted once the returned
/// deadline (set around each call) has passed.
pub fn limited_runtime(memory_bytes: usize) -> Result<(Runtime, Deadline), String> {
    let runtime = Runtime::new().map_err(|e| e.to_string())?;
    runtime.set_memory_limit(memory_bytes);
    runtime.set_max_stack_size(512 * 1024);
    let deadline: Deadline = Rc::new(Cell::new(None));
    let d = deadline.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || {
        d.get().is_some_and(|t| Instant::now() > t)
    })));
    Ok((runtime, deadline))
}

/// An engine error as a message: a thrown exception as `Name: message (first
/// stack line)`.
pub fn describe(ctx: &Ctx<'_>, e: rquickjs::Error) -> String {
    if let rquickjs::Error::Exception = e {
        let v = ctx.catch();
        if let Some(ex) = v.as_exception() {
            let name: String = ex.get("name").unwrap_or_else(|_| "Error".to_string());
            let msg = format!("{name}: {}", ex.message().unwrap_or_default());
            let line = ex
                .stack()
                .and_then(|s| s.lines().next().map(str::trim).map(str::to_string));
            return match line {
                Some(l) if !l.is_empty() => format!("{msg} ({l})"),
                _ => msg,
            };
        }
        return format!("{v:?}");
    }
    e.to_string()
}

/// Set a global function.
pub fn set_global<'js>(
    g: &rquickjs::Object<'js>,
    name: &str,
    f: rquickjs::Result<Function<'js>>,
) -> Result<(), String> {
    g.set(name, f.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}
