//! The bus's part of the configuration file:
//!
//! * `[event_bus]`: where a cluster keeps the event log. One node keeps it
//!   in `events.db` beside the store and needs no settings; nodes sharing a
//!   PostgreSQL store share the engine's stream instead (see
//!   [`super::log`]).
//! * `[[event_buses]]` and `[[event_rules]]`: buses and rules declared in
//!   the file, with `CreateEventBus`'s and `PutRule`'s fields in snake_case
//!   (a rule's `targets` as `PutTargets` takes them). They are checked at
//!   start as the API checks them, live beside what the API created, and
//!   the API does not change them (`ManagedRuleException`): the file is
//!   where they change.

use super::schedule::Schedule;
use super::spec::{check_name, BusSpec, RuleSpec, TargetSpec, DEFAULT_BUS, MAX_TARGETS_PER_RULE};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// What declared rules show as `ManagedBy`.
pub const MANAGED_BY: &str = "herald.config";

/// `[event_bus]` as written in the file, and as used (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBusFile {
    /// The JetStream stream holding the cluster's events and retries
    /// (default `HERALD_BUS`); archives get streams named after it. Two
    /// clusters on one NATS server need two names.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// How long a node may hold an event without settling it before
    /// JetStream hands it to another node (default 30 s). A node that dies
    /// delays its events by this much; a node alive but slow keeps them
    /// (it reports progress every third of it).
    #[serde(default = "default_ack_wait")]
    pub ack_wait_secs: u64,
    /// Replicas of the stream on a NATS cluster (1 to 5, default 1).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

fn default_stream() -> String {
    "HERALD_BUS".into()
}

fn default_ack_wait() -> u64 {
    30
}

fn default_replicas() -> usize {
    1
}

impl Default for EventBusFile {
    fn default() -> Self {
        EventBusFile {
            stream: default_stream(),
            ack_wait_secs: default_ack_wait(),
            replicas: default_replicas(),
        }
    }
}

impl EventBusFile {
    pub fn check(&self) -> Result<(), String> {
        let s = &self.stream;
        if s.is_empty()
            || s.len() > 32
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "[event_bus] stream {s:?}: 1 to 32 letters, digits, '_' or '-'"
            ));
        }
        if !(1..=3600).contains(&self.ack_wait_secs) {
            return Err("[event_bus] ack_wait_secs: 1 to 3600".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err("[event_bus] replicas: 1 to 5".into());
        }
        Ok(())
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_secs)
    }
}

/// Buses and rules the file declares, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    pub buses: Vec<BusSpec>,
    pub rules: Vec<RuleSpec>,
}

/// Maps whose keys are the user's (not field names): left as written.
const USER_KEYS: &[&str] = &["InputPathsMap", "HeaderParameters", "QueryStringParameters"];

/// A file table as the API's request: `event_pattern` → `EventPattern`.
fn api_names(v: &toml::Value, convert: bool) -> Value {
    match v {
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| {
                    let name = if convert {
                        k.split('_')
                            .map(|w| {
                                let mut c = w.chars();
                                c.next()
                                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                                    .unwrap_or_default()
                            })
                            .collect()
                    } else {
                        k.clone()
                    };
                    let inner = convert && !USER_KEYS.contains(&name.as_str());
                    (name, api_names(v, inner))
                })
                .collect::<Map<String, Value>>(),
        ),
        toml::Value::Array(a) => Value::Array(a.iter().map(|v| api_names(v, convert)).collect()),
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
    }
}

fn text<'a>(o: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, String> {
    match o.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

fn known(o: &Map<String, Value>, fields: &[&str]) -> Result<(), String> {
    match o.keys().find(|k| !fields.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown field {k}")),
        None => Ok(()),
    }
}

/// Check `[[event_buses]]` and `[[event_rules]]` as `CreateEventBus`,
/// `PutRule` and `PutTargets` check them.
pub fn declared(buses: &[toml::Value], rules: &[toml::Value]) -> Result<Declared, String> {
    let now = crate::esm::spec::now_secs();
    let mut out = Declared::default();
    for t in buses {
        let v = api_names(t, true);
        let o = v.as_object().ok_or("[[event_buses]] entries are tables")?;
        let name = text(o, "Name")?.ok_or("[[event_buses]]: name is required")?;
        let fail = |e: String| format!("[[event_buses]] {name}: {e}");
        known(o, &["Name", "Description"]).map_err(fail)?;
        check_name(name, "name", 256).map_err(fail)?;
        if name == DEFAULT_BUS || out.buses.iter().any(|b: &BusSpec| b.name == name) {
            return Err(fail(
                "declared twice (the default bus always exists)".into(),
            ));
        }
        out.buses.push(BusSpec {
            name: name.to_string(),
            description: text(o, "Description").map_err(fail)?.map(str::to_string),
            creation_time: now,
            last_modified_time: now,
        });
    }
    for t in rules {
        let v = api_names(t, true);
        let o = v.as_object().ok_or("[[event_rules]] entries are tables")?;
        let name = text(o, "Name")?.ok_or("[[event_rules]]: name is required")?;
        let bus = text(o, "EventBusName")?.unwrap_or(DEFAULT_BUS).to_string();
        let fail = |e: String| format!("[[event_rules]] {bus}/{name}: {e}");
        known(
            o,
            &[
                "Name",
                "EventBusName",
                "EventPattern",
                "ScheduleExpression",
                "State",
                "Description",
                "RoleArn",
                "Targets",
            ],
        )
        .map_err(fail)?;
        check_name(name, "name", 64).map_err(fail)?;
        if bus != DEFAULT_BUS && !out.buses.iter().any(|b| b.name == bus) {
            return Err(fail(format!(
                "event bus {bus} is not declared in [[event_buses]]"
            )));
        }
        let pattern = text(o, "EventPattern").map_err(fail)?;
        let schedule = text(o, "ScheduleExpression").map_err(fail)?;
        if pattern.is_none() && schedule.is_none() {
            return Err(fail(
                "event_pattern or schedule_expression is required".into(),
            ));
        }
        if let Some(p) = pattern {
            herald_pattern::Pattern::parse(p).map_err(|e| fail(e.to_string()))?;
        }
        if let Some(s) = schedule {
            if bus != DEFAULT_BUS {
                return Err(fail(
                    "schedule_expression is supported only on the default event bus".into(),
                ));
            }
            Schedule::parse(s).map_err(fail)?;
        }
        let state = text(o, "State").map_err(fail)?.unwrap_or("ENABLED");
        if !["ENABLED", "DISABLED"].contains(&state) {
            return Err(fail(format!("state {state:?}: ENABLED or DISABLED")));
        }
        let mut targets: Vec<TargetSpec> = Vec::new();
        for t in o
            .get("Targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let spec = TargetSpec::from_request(t).map_err(fail)?;
            if targets.iter().any(|o| o.id == spec.id) {
                return Err(fail(format!("two targets with id {}", spec.id)));
            }
            targets.push(spec);
        }
        if targets.len() > MAX_TARGETS_PER_RULE {
            return Err(fail(format!(
                "at most {MAX_TARGETS_PER_RULE} targets per rule"
            )));
        }
        if out
            .rules
            .iter()
            .any(|r| r.name == name && r.event_bus_name == bus)
        {
            return Err(fail("declared twice".into()));
        }
        out.rules.push(RuleSpec {
            name: name.to_string(),
            event_bus_name: bus.clone(),
            event_pattern: pattern.map(str::to_string),
            schedule_expression: schedule.map(str::to_string),
            state: state.to_string(),
            description: text(o, "Description").map_err(fail)?.map(str::to_string),
            role_arn: text(o, "RoleArn").map_err(fail)?.map(str::to_string),
            targets,
            managed_by: Some(MANAGED_BY.to_string()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::EventBusFile;

    fn declared(text: &str) -> Result<super::Declared, String> {
        let t: toml::Table = toml::from_str(text).unwrap();
        let list = |k: &str| {
            t.get(k)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        super::declared(&list("event_buses"), &list("event_rules"))
    }

    #[test]
    fn declared_rules_read_as_the_api_reads_them() {
        let d = declared(
            r#"
            [[event_buses]]
            name = "orders"
            [[event_rules]]
            name = "big"
            event_bus_name = "orders"
            event_pattern = '{"detail": {"amount": [{"numeric": [">", 100]}]}}'
            [[event_rules.targets]]
            id = "fn"
            arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
            retry_policy = { maximum_retry_attempts = 3 }
            input_transformer = { input_paths_map = { order_id = "$.detail.id" }, input_template = '{"id": <order_id>}' }
            "#,
        )
        .unwrap();
        assert_eq!(d.buses[0].name, "orders");
        let r = &d.rules[0];
        assert_eq!(r.managed_by.as_deref(), Some(super::MANAGED_BY));
        let t = &r.targets[0];
        assert_eq!(t.max_retries(), 3);
        let map = serde_json::to_value(t.input_transformer.as_ref().unwrap()).unwrap();
        assert_eq!(map["InputPathsMap"]["order_id"], "$.detail.id");
    }

    #[test]
    fn declared_rules_are_refused_as_the_api_refuses_them() {
        for (text, want) in [
            (
                "[[event_rules]]\nname = \"r\"",
                "event_pattern or schedule_expression",
            ),
            (
                "[[event_rules]]\nname = \"r\"\nevent_pattern = '{\"a\": 1}'",
                "a",
            ),
            (
                "[[event_rules]]\nname = \"r\"\nevent_bus_name = \"x\"\nevent_pattern = '{}'",
                "not declared",
            ),
            (
                "[[event_rules]]\nname = \"r\"\nschedule_expression = \"rate(1 minutes)\"",
                "ScheduleExpression",
            ),
            (
                "[[event_rules]]\nname = \"r\"\nevent_pattern = '{}'\ncolour = 1",
                "unknown field Colour",
            ),
            ("[[event_buses]]\nname = \"default\"", "declared twice"),
        ] {
            let e = declared(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(EventBusFile::default().check().is_ok());
        let bad = |f: fn(&mut EventBusFile)| {
            let mut s = EventBusFile::default();
            f(&mut s);
            s.check().unwrap_err()
        };
        assert!(bad(|s| s.stream = "a.b".into()).contains("stream"));
        assert!(bad(|s| s.ack_wait_secs = 0).contains("ack_wait_secs"));
        assert!(bad(|s| s.replicas = 7).contains("replicas"));
    }
}
