//! `Parallel` branches and `Map` iterations: machines inside a state, run
//! concurrently, each with its own variable scope inside the outer one.

use super::super::data::{runtime, Scope, Vars};
use super::super::definition::{Lang, State};
use super::super::Failure;
use super::{Runner, MAP_DEFAULT_CONCURRENCY};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

impl Runner {
    pub(super) async fn parallel(
        &self,
        state: &State,
        input: Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
        self.history.push("ParallelStateStarted", "", Value::Null);
        let runs = state
            .branches
            .iter()
            .map(|d| self.machine(d, input.clone(), vars.inner(), Map::new()));
        // The first failure fails the state at once: the other branches
        // are dropped where they are (as AWS stops them).
        match futures_util::future::try_join_all(runs).await {
            Ok(out) => {
                self.history.push("ParallelStateSucceeded", "", Value::Null);
                Ok(Value::Array(out))
            }
            Err(f) => {
                self.history.push(
                    "ParallelStateFailed",
                    "executionFailedEventDetails",
                    json!({"error": f.error, "cause": f.cause}),
                );
                Err(f)
            }
        }
    }

    pub(super) async fn map(
        &self,
        state: &State,
        scope: &Scope<'_>,
        args: Value,
        raw: &Value,
        vars: &Vars,
    ) -> Result<Value, Failure> {
        let b = &state.body;
        let items = match state.lang {
            Lang::JsonPath => match b.get("ItemsPath").and_then(Value::as_str) {
                Some(p) => scope.require(p, &args, "ItemsPath")?,
                None => args.clone(),
            },
            Lang::Jsonata => match b.get("Items") {
                Some(i) => scope.jsonata(i, "Items")?,
                None => raw.clone(),
            },
        };
        let Value::Array(items) = items else {
            return Err(runtime(format!(
                "The Map state's items must be an array, not {items}"
            )));
        };
        let concurrency = match b.get("MaxConcurrency").and_then(Value::as_u64) {
            None | Some(0) => MAP_DEFAULT_CONCURRENCY,
            Some(n) => n as usize,
        };
        let tolerated_count = b.get("ToleratedFailureCount").and_then(Value::as_u64);
        let tolerated_pct = b.get("ToleratedFailurePercentage").and_then(Value::as_f64);
        self.history.push(
            "MapStateStarted",
            "mapStateStartedEventDetails",
            json!({"length": items.len()}),
        );
        let processor = state
            .branches
            .first()
            .ok_or_else(|| runtime("the Map state has no ItemProcessor"))?;
        let total = items.len();
        let runs = items.into_iter().enumerate().map(|(index, item)| {
            let mut extra = Map::new();
            extra.insert(
                "Map".into(),
                json!({"Item": {"Index": index, "Value": item}}),
            );
            let context = {
                let mut c = scope.context.clone();
                if let Some(o) = c.as_object_mut() {
                    o.insert("Map".into(), extra["Map"].clone());
                }
                c
            };
            let item_scope = Scope {
                input: scope.input,
                result: None,
                error_output: None,
                context: &context,
                vars: scope.vars,
            };
            let input = match (state.lang, b.get("ItemSelector").or(b.get("Parameters"))) {
                (Lang::JsonPath, Some(sel)) => item_scope.template(sel, &args, "ItemSelector"),
                (Lang::Jsonata, Some(sel)) => item_scope.jsonata(sel, "ItemSelector"),
                (_, None) => Ok(item),
            };
            let inner = vars.inner();
            async move {
                let input = input?;
                self.machine(processor, input, inner, extra).await
            }
        });
        // In order; past the tolerated failures the state fails at once and
        // the iterations still running are dropped.
        let allowed = |failed: usize| {
            tolerated_count.is_some_and(|n| failed as u64 <= n)
                || tolerated_pct.is_some_and(|p| failed as f64 * 100.0 / total.max(1) as f64 <= p)
        };
        let mut stream = futures_util::stream::iter(runs).buffered(concurrency);
        let mut results: Vec<Result<Value, Failure>> = Vec::with_capacity(total);
        let mut failed = 0;
        while let Some(r) = stream.next().await {
            if let Err(f) = &r {
                failed += 1;
                if !allowed(failed) {
                    self.history.push(
                        "MapStateFailed",
                        "executionFailedEventDetails",
                        json!({"error": f.error, "cause": f.cause}),
                    );
                    if tolerated_count.is_some() || tolerated_pct.is_some() {
                        return Err(Failure::new(
                            "States.ExceedToleratedFailureThreshold",
                            format!("more than the tolerated iterations of {total} failed"),
                        ));
                    }
                    return Err(f.clone());
                }
            }
            results.push(r);
        }
        self.history.push("MapStateSucceeded", "", Value::Null);
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|f| json!({"Error": f.error, "Cause": f.cause})))
                .collect(),
        ))
    }
}
