//! `Task` states: the call (through [`super::Tasks`]), its timeout, its
//! task token, and the history events AWS records for it.

use super::super::data::{runtime, Scope};
use super::super::definition::{Lang, State};
use super::super::Failure;
use super::{Runner, MAX_WAIT_SECS};
use serde_json::{json, Value};
use std::time::Duration;

impl Runner {
    pub(super) async fn task(
        &self,
        state: &State,
        scope: &Scope<'_>,
        args: Value,
        context: &Value,
    ) -> Result<Value, Failure> {
        let b = &state.body;
        let resource = match b.get("Resource") {
            Some(Value::String(r)) if state.lang == Lang::Jsonata => {
                match scope.jsonata(&Value::String(r.clone()), "Resource")? {
                    Value::String(s) => s,
                    other => return Err(runtime(format!("Resource: {other} is not an ARN"))),
                }
            }
            Some(Value::String(r)) => r.clone(),
            _ => return Err(runtime("Resource must be a string")),
        };
        let number = |field: &str| -> Result<Option<f64>, Failure> {
            Ok(match (b.get(field), b.get(&format!("{field}Path"))) {
                (Some(v), _) if state.lang == Lang::Jsonata => scope.jsonata(v, field)?.as_f64(),
                (Some(v), _) => v.as_f64(),
                (None, Some(Value::String(p))) => scope.require(p, scope.input, field)?.as_f64(),
                _ => None,
            })
        };
        let timeout = number("TimeoutSeconds")?.unwrap_or(99_999_999.0);
        let heartbeat = number("HeartbeatSeconds")?;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(timeout) || heartbeat.is_some_and(|h| !positive(h)) {
            return Err(runtime(
                "TimeoutSeconds and HeartbeatSeconds must be positive numbers of seconds",
            ));
        }
        let (base, wait_token) = match resource.strip_suffix(".waitForTaskToken") {
            Some(base) => (base.to_string(), true),
            None => (resource.trim_end_matches(".sync").to_string(), false),
        };
        let (resource_type, short) = resource_names(&base);
        self.history.push(
            "TaskScheduled",
            "taskScheduledEventDetails",
            json!({"resourceType": resource_type, "resource": short, "region": region_of(context),
                   "parameters": args.to_string(), "timeoutInSeconds": timeout as u64}),
        );
        self.history.push(
            "TaskStarted",
            "taskStartedEventDetails",
            json!({"resourceType": resource_type, "resource": short}),
        );
        let call = async {
            if wait_token {
                let token = context
                    .pointer("/Task/Token")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| runtime("no task token"))?;
                let waiting = self.tokens.register(&token);
                self.tasks.call(&base, args).await?;
                self.tokens.wait(waiting, heartbeat).await
            } else {
                self.tasks.call(&base, args).await
            }
        };
        let outcome =
            match tokio::time::timeout(Duration::from_secs_f64(timeout.min(MAX_WAIT_SECS)), call)
                .await
            {
                Ok(r) => r,
                Err(_) => Err(Failure::new("States.Timeout", "Task timed out.")),
            };
        match &outcome {
            Ok(v) => self.history.push(
                "TaskSucceeded",
                "taskSucceededEventDetails",
                json!({"resourceType": resource_type, "resource": short, "output": v.to_string()}),
            ),
            Err(f) if f.error == "States.Timeout" => self.history.push(
                "TaskTimedOut",
                "taskTimedOutEventDetails",
                json!({"resourceType": resource_type, "resource": short, "error": f.error, "cause": f.cause}),
            ),
            Err(f) => self.history.push(
                "TaskFailed",
                "taskFailedEventDetails",
                json!({"resourceType": resource_type, "resource": short, "error": f.error, "cause": f.cause}),
            ),
        };
        outcome
    }
}

/// History's `resourceType` and `resource`: `lambda` and `invoke` for
/// `arn:aws:states:::lambda:invoke`, `lambda` and the ARN for a function.
fn resource_names(arn: &str) -> (String, String) {
    if let Some(rest) = arn.strip_prefix("arn:aws:states:::") {
        let (t, r) = rest.split_once(':').unwrap_or((rest, ""));
        return (t.to_string(), r.to_string());
    }
    let service = arn.split(':').nth(2).unwrap_or_default();
    (service.to_string(), arn.to_string())
}

fn region_of(context: &Value) -> String {
    context
        .pointer("/StateMachine/Id")
        .and_then(Value::as_str)
        .and_then(|a| a.split(':').nth(3))
        .unwrap_or_default()
        .to_string()
}
