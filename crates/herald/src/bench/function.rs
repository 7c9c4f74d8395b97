//! The `function` scenario: a JavaScript function's cold start with and
//! without Herald's pre-initialization, the warm invocation's overhead, and
//! invocations per second through the whole invoke path (registry, worker
//! pool, QuickJS), without the network.
//!
//! - **cold, no pre-init**: a new runtime loads the package, runs init (the
//!   module's top level) and the first invocation, as a Lambda without
//!   SnapStart does for a new execution environment;
//! - **first invoke after deploy**: the function is deployed (which warms it
//!   on the workers), then invoked once, through [`Functions::invoke`];
//! - **warm**: one more invocation of a loaded function, on the engine alone
//!   and through [`Functions::invoke`] (the difference is Herald's overhead:
//!   queue, worker hand-off, answer).

use crate::functions::js::{JsFunction, JsSetup};
use crate::functions::{now_iso, sha256_base64, FunctionSpec, Functions, Package, PoolSettings};
use bytes::Bytes;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A module of about `kb` KB: a lookup table and a handler that uses it.
fn module(kb: usize) -> String {
    let mut table = String::from("const table = {\n");
    let mut i = 0;
    while table.len() < kb * 1024 {
        table.push_str(&format!(
            "  k{i}: {{ id: {i}, label: 'entry number {i}', weight: {} }},\n",
            i * 7 % 13
        ));
        i += 1;
    }
    table.push_str("};\n");
    format!(
        "{table}let inits = Object.keys(table).length;\n\
         export const handler = async (event, context) => ({{ ok: true, n: event.n, entry: table['k' + (event.n % {i})].label, inits }});\n"
    )
}

fn q(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

pub async fn function_scenario(
    code: Option<std::path::PathBuf>,
    kb: usize,
    loads: usize,
    calls: usize,
    concurrency: usize,
    duration: Duration,
) -> Result<serde_json::Value, String> {
    let source = match &code {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => module(kb),
    };
    let package = Arc::new(Package::single("index.mjs", &source, "index.handler")?);
    let setup = JsSetup {
        name: "bench".into(),
        package: package.clone(),
        env: HashMap::new(),
        memory_bytes: 128 << 20,
        init_timeout: Duration::from_secs(10),
        fetch: None,
    };
    let event = r#"{"n": 7}"#;
    let ctx = json!({"export": "handler", "handler": "index.handler", "functionName": "bench",
        "deadlineMs": 0, "awsRequestId": "bench"})
    .to_string();
    let timeout = Duration::from_secs(10);

    // Cold, without pre-initialization.
    let mut cold = Vec::with_capacity(loads);
    let mut init = Vec::with_capacity(loads);
    for _ in 0..loads.max(1) {
        let t = Instant::now();
        let f = JsFunction::load(&setup).map_err(|e| e.to_string())?;
        init.push(f.init);
        f.invoke(event, &ctx, "bench", timeout);
        cold.push(t.elapsed());
    }
    // Warm, on the engine alone.
    let f = JsFunction::load(&setup).map_err(|e| e.to_string())?;
    let mut engine = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        f.invoke(event, &ctx, "bench", timeout);
        engine.push(t.elapsed());
    }
    drop(f);

    // Through the registry and the worker pool.
    let functions = Arc::new(Functions::new(
        PoolSettings {
            workers: 1,
            queue: 4096,
        },
        crate::http_client::HttpClient::new(None)?,
        "us-east-1",
        "123456789012",
        Arc::new(crate::faults::Faults::default()),
    )?);
    let spec = |name: &str| FunctionSpec {
        name: name.to_string(),
        runtime: "herald-js".into(),
        handler: "index.handler".into(),
        description: String::new(),
        role: String::new(),
        timeout_secs: 10,
        memory_mb: 128,
        environment: BTreeMap::new(),
        reserved_concurrency: None,
        event_invoke: None,
        code_sha256: sha256_base64(source.as_bytes()),
        code_size: source.len() as u64,
        last_modified: now_iso(),
        revision_id: String::new(),
    };
    let payload = Bytes::from_static(b"{\"n\": 7}");
    let mut first = Vec::with_capacity(loads);
    for i in 0..loads.max(1) {
        let name = format!("bench{i}");
        let f = functions.prepare(spec(&name), Some((*package).clone()), None, false)?;
        functions.install(f).await;
        let t = Instant::now();
        let r = functions
            .invoke(&name, payload.clone(), None)
            .await
            .map_err(|e| format!("{e:?}"))?;
        first.push(t.elapsed());
        if r.function_error {
            return Err(String::from_utf8_lossy(&r.payload).into_owned());
        }
        functions.remove(&name);
    }
    let f = functions.prepare(spec("warm"), Some((*package).clone()), None, false)?;
    functions.install(f).await;
    let mut through = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        functions
            .invoke("warm", payload.clone(), None)
            .await
            .map_err(|e| format!("{e:?}"))?;
        through.push(t.elapsed());
    }
    // Invocations per second with `concurrency` callers.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let functions = functions.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < duration {
                if functions
                    .invoke("warm", payload.clone(), None)
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(|e| e.to_string())?;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let engine_p50 = q(&mut engine, 0.5);
    let through_p50 = q(&mut through, 0.5);
    Ok(json!({
        "scenario": "function",
        "module_bytes": source.len(),
        "cold_no_preinit_us": {"p50": q(&mut cold, 0.5), "p90": q(&mut cold, 0.9), "max": q(&mut cold, 1.0)},
        "init_us_p50": q(&mut init, 0.5),
        "first_invoke_after_deploy_us": {"p50": q(&mut first, 0.5), "p90": q(&mut first, 0.9), "max": q(&mut first, 1.0)},
        "warm_engine_us": {"p50": engine_p50, "p99": q(&mut engine, 0.99)},
        "warm_invoke_us": {"p50": through_p50, "p99": q(&mut through, 0.99)},
        "invoke_overhead_us_p50": through_p50 - engine_p50,
        "invocations_per_s": rate,
        "concurrency": concurrency,
        "workers": 1,
    }))
}
