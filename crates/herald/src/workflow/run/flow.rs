//! `Choice` and `Wait`: where a state machine goes next, and when.

use super::super::data::{runtime, Scope};
use super::super::definition::{Lang, State};
use super::super::Failure;
use super::{Runner, MAX_WAIT_SECS};
use serde_json::Value;
use std::time::Duration;

impl Runner {
    /// The next state, and the matched rule's own `Assign` (AWS lets each
    /// rule assign variables when it is the one taken).
    pub(super) fn choose(
        &self,
        state: &State,
        scope: &Scope,
        data: &Value,
    ) -> Result<(String, Option<Value>), Failure> {
        let choices = state
            .body
            .get("Choices")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in &choices {
            let holds = match state.lang {
                Lang::Jsonata => {
                    let v =
                        scope.jsonata(c.get("Condition").unwrap_or(&Value::Null), "Condition")?;
                    v.as_bool().ok_or_else(|| {
                        Failure::new(
                            "States.QueryEvaluationError",
                            format!("The Condition must evaluate to a boolean, not {v}"),
                        )
                    })?
                }
                Lang::JsonPath => {
                    let rule = super::super::choice::Rule::parse(c).map_err(runtime)?;
                    rule.holds(&|p| scope.path(p, data).ok().flatten())
                }
            };
            if holds {
                let next = c
                    .get("Next")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                return Ok((next, c.get("Assign").cloned()));
            }
        }
        state
            .body
            .get("Default")
            .and_then(Value::as_str)
            .map(|d| (d.to_string(), None))
            .ok_or_else(|| {
                Failure::new(
                    "States.NoChoiceMatched",
                    format!(
                        "No Choice matched and no Default is specified in state {}",
                        state.name
                    ),
                )
            })
    }

    /// Wait until `entered` plus the state's seconds (or its timestamp):
    /// a state resumed after a restart waits only what is left.
    pub(super) async fn wait(
        &self,
        state: &State,
        scope: &Scope<'_>,
        data: &Value,
        entered: f64,
    ) -> Result<(), Failure> {
        let b = &state.body;
        let value = |field: &str| -> Result<Option<Value>, Failure> {
            Ok(match b.get(field) {
                None => None,
                Some(v) if state.lang == Lang::Jsonata => Some(scope.jsonata(v, field)?),
                Some(v) if field.ends_with("Path") => {
                    Some(scope.require(v.as_str().unwrap_or("$"), data, field)?)
                }
                Some(v) => Some(v.clone()),
            })
        };
        let secs = if let Some(s) = value("Seconds")?.or(value("SecondsPath")?) {
            let s = s
                .as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| runtime(format!("Wait: {s} is not a number of seconds")))?;
            (entered + s - crate::esm::spec::now_secs()).max(0.0)
        } else if let Some(t) = value("Timestamp")?.or(value("TimestampPath")?) {
            let at = t
                .as_str()
                .and_then(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .ok_or_else(|| runtime(format!("Wait: {t} is not an RFC 3339 timestamp")))?;
            (at.unix_timestamp_nanos() as f64 / 1e9 - crate::esm::spec::now_secs()).max(0.0)
        } else {
            0.0
        };
        if !self.no_wait {
            tokio::time::sleep(Duration::from_secs_f64(secs.min(MAX_WAIT_SECS))).await;
        }
        Ok(())
    }
}
