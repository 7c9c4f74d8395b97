//! The `workflows` scenario: the workflow engine in this process, on a
//! SQLite store in a temporary directory (`synchronous` as the store runs
//! it), timed at its own API (no HTTP, no SigV4: what the engine costs).
//!
//! 1. **Express**: `--concurrency` callers run executions of a five-state
//!    JSONata machine (`Pass` with `Assign`, `Choice` on a `Condition`,
//!    `Pass` with an `Output` expression, `Pass`, `Succeed`) end to end
//!    (`StartSyncExecution`'s path) for `--duration` seconds:
//!    executions/s, and each execution's p50/p99.
//! 2. **Standard**: the same callers run a standard machine of five JSONPath
//!    states; every transition is journaled in the store before the state
//!    runs (the durable path): transitions/s and per-transition p50/p99.
//! 3. **The store's floor**: the same callers write what a transition
//!    writes (a journal record and two history events, in one transaction)
//!    under new keys, five per key as a run writes, to the same store by a
//!    plain loop, as fast as it takes them: what the durable path costs at
//!    the least.

use super::delivery::pct;
use super::subscribe::new_hist;
use crate::workflow::{MachineSpec, Workflows, MACHINE};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STATES: u64 = 5;

fn express() -> Value {
    json!({"QueryLanguage": "JSONata", "StartAt": "Setup", "States": {
        "Setup": {"Type": "Pass", "Assign": {"rate": "{% $states.input.rate %}"}, "Next": "Big?"},
        "Big?": {"Type": "Choice", "Choices": [
            {"Condition": "{% $states.input.n * $rate > 100 %}", "Next": "Price"}], "Default": "Price"},
        "Price": {"Type": "Pass", "Output": "{% {'total': $states.input.n * $rate, 'id': $states.input.id} %}", "Next": "Tag"},
        "Tag": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"}}})
}

fn standard() -> Value {
    json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Parameters": {"n.$": "$.n", "id.$": "$.id"}, "Next": "B"},
        "B": {"Type": "Pass", "ResultPath": "$.b", "Result": {"x": 1}, "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "D"}], "Default": "D"},
        "D": {"Type": "Pass", "OutputPath": "$.b", "Next": "E"},
        "E": {"Type": "Succeed"}}})
}

async fn machine(
    w: &Workflows,
    name: &str,
    kind: &str,
    definition: Value,
) -> Result<String, String> {
    let spec = MachineSpec {
        name: name.into(),
        state_machine_arn: w.machine_arn(name),
        definition: definition.to_string(),
        role_arn: "arn:aws:iam::000000000000:role/bench".into(),
        kind: kind.into(),
        creation_date: crate::esm::spec::now_secs(),
        update_date: None,
    };
    w.store()
        .put_bus_resource(
            MACHINE,
            name,
            serde_json::to_string(&spec).map_err(|e| e.to_string())?,
        )
        .await?;
    let problems = w.reload().await?;
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(spec.state_machine_arn)
}

/// Run executions of `arn` from `callers` tasks for `duration`: count, and
/// each execution's time.
async fn drive(
    w: &Arc<Workflows>,
    arn: &str,
    callers: usize,
    duration: Duration,
) -> Result<(u64, f64, Histogram<u64>, u64), String> {
    let stop = Instant::now() + duration;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(new_hist()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (w, arn, done, failed, hist) = (
            w.clone(),
            arn.to_string(),
            done.clone(),
            failed.clone(),
            hist.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop {
                i += 1;
                let t = Instant::now();
                let input = json!({"n": i % 20, "rate": 7, "id": format!("{c}-{i}")});
                let e = w.run(&arn, input).await.map_err(|e| format!("{e:?}"))?;
                let _ = hist
                    .lock()
                    .unwrap()
                    .record(t.elapsed().as_micros().max(1) as u64);
                if e.outcome().status == "SUCCEEDED" {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = started.elapsed().as_secs_f64();
    let h = hist.lock().unwrap().clone();
    Ok((
        done.load(Ordering::Relaxed),
        secs,
        h,
        failed.load(Ordering::Relaxed),
    ))
}

pub async fn workflows_scenario(duration: Duration, callers: usize) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("herald-bench-workflows-{}", crate::new_uuid()));
    let store = crate::store::Store::open(&crate::config::StoreConfig {
        backend: crate::config::StoreBackend::Sqlite(dir.clone()),
        reconcile: Duration::from_secs(3600),
    })
    .await?;
    let w = Arc::new(Workflows::new("us-east-1", "000000000000", "bench", store));
    let fast = machine(&w, "express", "EXPRESS", express()).await?;
    let durable = machine(&w, "standard", "STANDARD", standard()).await?;
    let callers = callers.max(1);

    let (n, secs, h, failed_express) = drive(&w, &fast, callers, duration).await?;
    let (m, secs2, h2, failed_standard) = drive(&w, &durable, callers, duration).await?;
    let floor = store_floor(w.store(), callers, duration).await?;
    let _ = std::fs::remove_dir_all(&dir);
    let ms = |h: &Histogram<u64>, q: f64| (pct(h, q) * 100.0).round() / 100.0;
    let per_transition =
        |h: &Histogram<u64>, q: f64| (pct(h, q) / STATES as f64 * 100.0).round() / 100.0;
    Ok(json!({
        "scenario": "workflows",
        "ok": failed_express == 0 && failed_standard == 0 && n > 0 && m > 0,
        "callers": callers,
        "express_executions_per_sec": (n as f64 / secs).round(),
        "express_execution_ms_p50": ms(&h, 0.5),
        "express_execution_ms_p99": ms(&h, 0.99),
        "standard_transitions_per_sec": ((m * STATES) as f64 / secs2).round(),
        "standard_executions_per_sec": (m as f64 / secs2).round(),
        "standard_transition_ms_p50": per_transition(&h2, 0.5),
        "standard_transition_ms_p99": per_transition(&h2, 0.99),
        "store_floor_writes_per_sec": floor.round(),
    }))
}

/// Transition-sized writes by `callers` plain loops: writes/s.
async fn store_floor(
    store: &crate::store::Store,
    callers: usize,
    duration: Duration,
) -> Result<f64, String> {
    // A record as the journal writes it (no history inside), and two
    // history events, as a transition appends.
    let record = json!({"arn": "x", "name": "e", "machine": "m", "input": {"n": 1, "id": "0-1"},
        "start": 0.0, "status": "RUNNING", "node": "bench",
        "at": {"state": "B", "input": {"n": 1, "id": "0-1"}, "vars": {}, "entered": 0.0}})
    .to_string();
    let event = json!({"id": 1, "type": "PassStateEntered",
        "stateEnteredEventDetails": {"name": "A", "input": "{\"n\": 1, \"id\": \"0-1\"}"}})
    .to_string();
    let stop = Instant::now() + duration;
    let started = Instant::now();
    let writes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (store, record, event, writes) =
            (store.clone(), record.clone(), event.clone(), writes.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop {
                i += 1;
                store
                    .put_execution(
                        &format!("floor-{c}-{}", i / 5),
                        "floor",
                        "RUNNING",
                        record.clone(),
                        vec![
                            (2 * i as i64, event.clone()),
                            (2 * i as i64 + 1, event.clone()),
                        ],
                    )
                    .await?;
                writes.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(writes.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
