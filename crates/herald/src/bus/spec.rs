//! Buses, rules and targets as EventBridge's API defines them: their fields
//! (serialized with AWS's names, so the stored JSON and the API's answers
//! are one shape), limits and validation messages, checked when a resource
//! is created or changed, never while events flow.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The bus every account has; it cannot be created or deleted.
pub const DEFAULT_BUS: &str = "default";
/// EventBridge's limits.
pub const MAX_TARGETS_PER_RULE: usize = 5;
pub const MAX_PATTERN_CHARS: usize = 4096;
pub const MAX_INPUT_CHARS: usize = 8192;
pub const MAX_RETRY_ATTEMPTS: u32 = 185;
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 185;
pub const MIN_EVENT_AGE_SECS: u32 = 60;
pub const MAX_EVENT_AGE_SECS: u32 = 86_400;
/// Rules per bus (EventBridge's default quota is 300).
pub const MAX_RULES_PER_BUS: usize = 300;
/// Custom buses per server (EventBridge's default quota is 100).
pub const MAX_BUSES: usize = 100;

/// A bus as stored and described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BusSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Epoch seconds.
    pub creation_time: f64,
    pub last_modified_time: f64,
}

/// A rule as stored, its targets included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleSpec {
    pub name: String,
    pub event_bus_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
    /// `ENABLED` or `DISABLED` (or `ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`,
    /// which Herald treats as enabled).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
    /// Who manages the rule (`herald.config`: the configuration file); the
    /// API does not change such a rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

impl RuleSpec {
    pub fn enabled(&self) -> bool {
        self.state != "DISABLED"
    }
}

/// A target as `PutTargets` takes it (the fields Herald acts on; the
/// others are refused when given, so nothing is silently ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetSpec {
    pub id: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_transformer: Option<InputTransformer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<DeadLetterConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs_parameters: Option<SqsParameters>,
    /// An API destination's `PathParameterValues`, `HeaderParameters`,
    /// `QueryStringParameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_parameters: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InputTransformer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_paths_map: Option<BTreeMap<String, String>>,
    pub input_template: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_event_age_in_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SqsParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group_id: Option<String>,
}

impl TargetSpec {
    /// Retries after the first attempt.
    pub fn max_retries(&self) -> u32 {
        self.retry_policy
            .as_ref()
            .and_then(|r| r.maximum_retry_attempts)
            .unwrap_or(DEFAULT_RETRY_ATTEMPTS)
    }

    /// How long an event may be retried, in seconds.
    pub fn max_age_secs(&self) -> u32 {
        self.retry_policy
            .as_ref()
            .and_then(|r| r.maximum_event_age_in_seconds)
            .unwrap_or(MAX_EVENT_AGE_SECS)
    }

    pub fn dead_letter(&self) -> Option<&str> {
        self.dead_letter_config.as_ref()?.arn.as_deref()
    }

    /// A target from one entry of `PutTargets`'s `Targets`: AWS's field
    /// checks, in AWS's words where AWS has them.
    pub fn from_request(v: &Value) -> Result<TargetSpec, String> {
        let o = v.as_object().ok_or("Each target must be an object")?;
        const KNOWN: &[&str] = &[
            "Id",
            "Arn",
            "RoleArn",
            "Input",
            "InputPath",
            "InputTransformer",
            "RetryPolicy",
            "DeadLetterConfig",
            "SqsParameters",
            "HttpParameters",
        ];
        if let Some(other) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "Herald does not support the target parameter {other}"
            ));
        }
        let t: TargetSpec =
            serde_json::from_value(v.clone()).map_err(|e| format!("Target is not valid: {e}"))?;
        check_name(&t.id, "id", 64)?;
        if t.arn.is_empty() || t.arn.len() > 1600 {
            return Err(
                "1 validation error detected: Value at 'targets.1.member.arn' failed to satisfy constraint: Member must have length between 1 and 1600".into(),
            );
        }
        let given = [
            t.input.is_some(),
            t.input_path.is_some(),
            t.input_transformer.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(
                "Only one of Input, InputPath, or InputTransformer must be provided.".into(),
            );
        }
        if let Some(input) = &t.input {
            if input.chars().count() > MAX_INPUT_CHARS {
                return Err(format!(
                    "Input must be at most {MAX_INPUT_CHARS} characters"
                ));
            }
            serde_json::from_str::<Value>(input)
                .map_err(|_| format!("Input is not valid JSON text: {input}"))?;
        }
        if let Some(path) = &t.input_path {
            super::input::JsonPath::parse(path)
                .map_err(|e| format!("InputPath {path} is not valid: {e}"))?;
        }
        if let Some(tr) = &t.input_transformer {
            super::input::check_transformer(tr)?;
        }
        if let Some(r) = &t.retry_policy {
            if r.maximum_retry_attempts
                .is_some_and(|n| n > MAX_RETRY_ATTEMPTS)
            {
                return Err(format!(
                    "1 validation error detected: Value at 'targets.1.member.retryPolicy.maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to {MAX_RETRY_ATTEMPTS}"
                ));
            }
            if r.maximum_event_age_in_seconds
                .is_some_and(|s| !(MIN_EVENT_AGE_SECS..=MAX_EVENT_AGE_SECS).contains(&s))
            {
                return Err(format!(
                    "1 validation error detected: Value at 'targets.1.member.retryPolicy.maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value between {MIN_EVENT_AGE_SECS} and {MAX_EVENT_AGE_SECS}"
                ));
            }
        }
        super::target::check_arn(&t.arn)?;
        if let Some(d) = t.dead_letter() {
            super::target::check_dead_letter(d)?;
        }
        Ok(t)
    }
}

/// A bus or rule name: 1 to `max` of `[.\-_A-Za-z0-9]` (buses also allow `/`).
pub fn check_name(name: &str, field: &str, max: usize) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/');
    if name.is_empty() || name.len() > max {
        return Err(format!(
            "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: Member must have length between 1 and {max}"
        ));
    }
    if !name.chars().all(ok_char) || (field != "name" && name.contains('/')) {
        return Err(format!(
            "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+"
        ));
    }
    Ok(())
}

/// A bus named by name or ARN (`arn:aws:events:<region>:<account>:event-bus/<name>`).
pub fn bus_name(name_or_arn: Option<&str>) -> String {
    match name_or_arn {
        None | Some("") => DEFAULT_BUS.to_string(),
        Some(s) => match s.split_once(":event-bus/") {
            Some((_, name)) if s.starts_with("arn:") => name.to_string(),
            _ => s.to_string(),
        },
    }
}

/// An optional string parameter.
pub fn opt_string(req: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_are_checked_as_aws_checks_them() {
        let ok = TargetSpec::from_request(
            &json!({"Id": "t1", "Arn": "channel:/default/orders", "InputPath": "$.detail"}),
        )
        .unwrap();
        assert_eq!(ok.max_retries(), 185);
        let e = TargetSpec::from_request(&json!({"Id": "t1", "Arn": "channel:/default/x", "Input": "{}", "InputPath": "$.detail"})).unwrap_err();
        assert_eq!(
            e,
            "Only one of Input, InputPath, or InputTransformer must be provided."
        );
        let e = TargetSpec::from_request(&json!({"Id": "t 1", "Arn": "channel:/default/x"}))
            .unwrap_err();
        assert!(e.contains("regular expression"), "{e}");
        let e = TargetSpec::from_request(
            &json!({"Id": "t", "Arn": "channel:/default/x", "EcsParameters": {}}),
        )
        .unwrap_err();
        assert!(e.contains("EcsParameters"), "{e}");
        let e = TargetSpec::from_request(&json!({"Id": "t", "Arn": "channel:/default/x", "RetryPolicy": {"MaximumEventAgeInSeconds": 10}})).unwrap_err();
        assert!(e.contains("maximumEventAgeInSeconds"), "{e}");
        let e = TargetSpec::from_request(
            &json!({"Id": "t", "Arn": "channel:/default/x", "Input": "{"}),
        )
        .unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn buses_by_name_or_arn() {
        assert_eq!(bus_name(None), "default");
        assert_eq!(bus_name(Some("orders")), "orders");
        assert_eq!(
            bus_name(Some(
                "arn:aws:events:us-east-1:123456789012:event-bus/orders"
            )),
            "orders"
        );
        assert!(check_name("a.b-c_d", "name", 64).is_ok());
        assert!(check_name("a b", "name", 64).is_err());
        assert!(check_name(&"a".repeat(65), "name", 64).is_err());
    }
}
