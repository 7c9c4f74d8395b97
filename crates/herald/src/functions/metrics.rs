//! Function metrics, registered in the server's one registry (the
//! configuration file's API serves them at `/metrics`). The `function` label
//! takes only existing functions' names ([`super::MAX_FUNCTIONS`] at most);
//! a deleted function's series are removed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    function: String,
    /// `ok` or `error` (a function error).
    result: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 900.0,
    ])
}

#[derive(Clone)]
pub struct FunctionMetrics {
    invocations: Family<ResultLabels, Counter>,
    throttles: Family<FunctionLabels, Counter>,
    async_failures: Family<FunctionLabels, Counter>,
    concurrent: Family<FunctionLabels, Gauge>,
    duration: Family<FunctionLabels, Histogram, fn() -> Histogram>,
}

impl Default for FunctionMetrics {
    fn default() -> Self {
        FunctionMetrics {
            invocations: Family::default(),
            throttles: Family::default(),
            async_failures: Family::default(),
            concurrent: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        }
    }
}

/// One running invocation, counted in `herald_function_concurrent_executions`
/// until dropped.
pub struct Running(Gauge);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn labels(name: &str) -> FunctionLabels {
    FunctionLabels {
        function: name.to_string(),
    }
}

impl FunctionMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "function_invocations",
            "Function invocations, by function and result (error: a function error)",
            self.invocations.clone(),
        );
        r.register(
            "function_throttles",
            "Invocations refused for concurrency (reserved, or the worker queue full)",
            self.throttles.clone(),
        );
        r.register(
            "function_async_failures",
            "Asynchronous invocations that failed every attempt",
            self.async_failures.clone(),
        );
        r.register(
            "function_concurrent_executions",
            "Invocations running now",
            self.concurrent.clone(),
        );
        r.register_with_unit(
            "function_duration",
            "Invocation duration (cold starts include init)",
            Unit::Seconds,
            self.duration.clone(),
        );
    }

    /// A new function: its series start at zero.
    pub fn add(&self, name: &str) {
        let _ = self.concurrent.get_or_create(&labels(name));
    }

    pub fn remove(&self, name: &str) {
        let l = labels(name);
        self.throttles.remove(&l);
        self.async_failures.remove(&l);
        self.concurrent.remove(&l);
        self.duration.remove(&l);
        for result in ["ok", "error"] {
            self.invocations.remove(&ResultLabels {
                function: name.to_string(),
                result,
            });
        }
    }

    pub fn running(&self, name: &str) -> Running {
        let g = self.concurrent.get_or_create(&labels(name)).clone();
        g.inc();
        Running(g)
    }

    pub fn invoked(&self, name: &str, error: bool, seconds: f64) {
        self.invocations
            .get_or_create(&ResultLabels {
                function: name.to_string(),
                result: if error { "error" } else { "ok" },
            })
            .inc();
        self.duration.get_or_create(&labels(name)).observe(seconds);
    }

    pub fn throttled(&self, name: &str) {
        self.throttles.get_or_create(&labels(name)).inc();
    }

    pub fn async_failed(&self, name: &str) {
        self.async_failures.get_or_create(&labels(name)).inc();
    }
}
