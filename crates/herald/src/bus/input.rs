//! What a target receives: the whole event, a constant `Input`, the part
//! an `InputPath` selects, or an `InputTransformer`'s template filled with
//! values from the event, with EventBridge's quoting rules:
//!
//! * a placeholder `<name>` takes the value `InputPathsMap[name]` selects,
//!   or one of EventBridge's variables (`<aws.events.rule-arn>`,
//!   `<aws.events.rule-name>`, `<aws.events.event.ingestion-time>`,
//!   `<aws.events.event>` and `<aws.events.event.json>`, the event itself);
//! * a string value is inserted as its characters, JSON-escaped (so
//!   `"<name>"` in a JSON template stays a valid JSON string, and a string
//!   template reads naturally); any other value as its JSON text; a path
//!   that selects nothing gives an empty string inside quotes and `null`
//!   elsewhere;
//! * `<` not followed by a known name is kept as written.
//!
//! Beyond EventBridge, a template that is exactly `{% <expression> %}` is a
//! JSONata expression ([`crate::jsonata`]): `$` is the event, and the
//! `InputPathsMap` values, `$event`, `$rule`, `$ruleArn` and
//! `$ingestionTime` are variables. Its result, as JSON, is the input (an
//! undefined result is `null`).

use super::spec::InputTransformer;
use serde_json::Value;

/// The JSONPath subset EventBridge accepts in `InputPath` and
/// `InputPathsMap`: `$`, then `.field` or `['field']` steps and `[n]`
/// indexes: the simple paths of Herald's one JSONPath ([`crate::jsonpath`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(crate::jsonpath::JsonPath);

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let p = crate::jsonpath::JsonPath::parse(text)?;
        if !p.is_simple() {
            return Err(format!(
                "{text}: EventBridge takes only field names and indexes in a path"
            ));
        }
        Ok(JsonPath(p))
    }

    /// What the path selects, if anything.
    pub fn select<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.0.select_ref(v)
    }
}

/// `InputTransformer`'s limits and syntax, checked at `PutTargets`.
pub fn check_transformer(t: &InputTransformer) -> Result<(), String> {
    if t.input_template.chars().count() > super::spec::MAX_INPUT_CHARS {
        return Err(format!(
            "InputTemplate must be at most {} characters",
            super::spec::MAX_INPUT_CHARS
        ));
    }
    if let Some(expr) = jsonata_of(t) {
        crate::jsonata::Expression::parse(expr)
            .map_err(|e| format!("InputTransformer: the JSONata expression is not valid: {e}"))?;
    }
    let map = t.input_paths_map.clone().unwrap_or_default();
    if map.len() > 100 {
        return Err("InputPathsMap can have at most 100 entries".into());
    }
    for (k, path) in &map {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "InputTransformer: the key {k:?} of InputPathsMap is not valid: use [A-Za-z0-9_-]"
            ));
        }
        if k.starts_with("aws.") {
            return Err(format!(
                "InputTransformer: {k} is reserved (keys starting with aws. are EventBridge's)"
            ));
        }
        JsonPath::parse(path)
            .map_err(|e| format!("InputTransformer: the path {path} of {k} is not valid: {e}"))?;
    }
    Ok(())
}

/// The JSONata expression of a `{% ... %}` template.
pub fn jsonata_of(t: &InputTransformer) -> Option<&str> {
    t.input_template
        .trim()
        .strip_prefix("{%")?
        .strip_suffix("%}")
        .map(str::trim)
}

/// Evaluate a `{% ... %}` template (see the module's notes).
pub fn transform_jsonata(
    expr: &str,
    t: &InputTransformer,
    event: &Value,
    cx: &Context,
) -> Result<String, String> {
    // Checked at PutTargets; evaluating parses it (once).
    let e = crate::jsonata::Expression::checked(expr);
    let mut vars: Vec<(&str, Value)> = vec![
        ("event", event.clone()),
        ("rule", Value::String(cx.rule_name.into())),
        ("ruleArn", Value::String(cx.rule_arn.into())),
        ("ingestionTime", Value::String(cx.ingestion_time.into())),
    ];
    if let Some(map) = &t.input_paths_map {
        for (name, path) in map {
            let v = JsonPath::parse(path)
                .ok()
                .and_then(|p| p.select(event).cloned())
                .unwrap_or(Value::Null);
            vars.push((name.as_str(), v));
        }
    }
    Ok(e.evaluate(event, &vars)?.unwrap_or(Value::Null).to_string())
}

/// What the rule and event give the template besides the event's fields.
pub struct Context<'a> {
    pub rule_arn: &'a str,
    pub rule_name: &'a str,
    /// RFC 3339, when the bus accepted the event.
    pub ingestion_time: &'a str,
}

/// Fill `t`'s template from `event` (see the module's rules).
pub fn transform(t: &InputTransformer, event: &Value, event_text: &str, cx: &Context) -> String {
    let map = t.input_paths_map.as_ref();
    let template = &t.input_template;
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template.as_str();
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|c| c + open) else {
            break;
        };
        let name = &rest[open + 1..close];
        let before = if open == 0 {
            out.ends_with('"')
        } else {
            rest[..open].ends_with('"')
        };
        let quoted = before && rest[close + 1..].starts_with('"');
        let value: Option<Option<Value>> = match name {
            "aws.events.rule-arn" => Some(Some(Value::String(cx.rule_arn.into()))),
            "aws.events.rule-name" => Some(Some(Value::String(cx.rule_name.into()))),
            "aws.events.event.ingestion-time" => {
                Some(Some(Value::String(cx.ingestion_time.into())))
            }
            "aws.events.event" | "aws.events.event.json" => {
                out.push_str(&rest[..open]);
                out.push_str(event_text);
                rest = &rest[close + 1..];
                continue;
            }
            _ => map.and_then(|m| m.get(name)).map(|path| {
                JsonPath::parse(path)
                    .ok()
                    .and_then(|p| p.select(event).cloned())
            }),
        };
        out.push_str(&rest[..open]);
        match value {
            None => out.push_str(&rest[open..=close]),
            Some(Some(Value::String(s))) => {
                let json = Value::String(s).to_string();
                out.push_str(&json[1..json.len() - 1]);
            }
            Some(Some(v)) => out.push_str(&v.to_string()),
            Some(None) if quoted => {}
            Some(None) => out.push_str("null"),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn event() -> Value {
        json!({"id": "e1", "detail-type": "Order", "source": "shop", "detail": {"id": "o-1", "amount": 30, "tags": ["a", "b"], "note": "say \"hi\""}})
    }

    fn transformer(paths: &[(&str, &str)], template: &str) -> InputTransformer {
        InputTransformer {
            input_paths_map: Some(
                paths
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            input_template: template.into(),
        }
    }

    fn run(t: &InputTransformer) -> String {
        let e = event();
        let cx = Context {
            rule_arn: "arn:aws:events:us-east-1:1:rule/r",
            rule_name: "r",
            ingestion_time: "2026-11-29T00:00:00Z",
        };
        transform(t, &e, &e.to_string(), &cx)
    }

    #[test]
    fn paths_select_fields_and_indexes() {
        let e = event();
        let p = JsonPath::parse("$.detail.tags[1]").unwrap();
        assert_eq!(p.select(&e), Some(&json!("b")));
        assert_eq!(
            JsonPath::parse("$['detail-type']").unwrap().select(&e),
            Some(&json!("Order"))
        );
        assert_eq!(JsonPath::parse("$").unwrap().select(&e), Some(&e));
        assert!(JsonPath::parse("detail").is_err());
        assert!(JsonPath::parse("$.a[x]").is_err());
        assert!(JsonPath::parse("$..a").is_err());
    }

    #[test]
    fn templates_follow_eventbridges_quoting() {
        let t = transformer(
            &[
                ("id", "$.detail.id"),
                ("amount", "$.detail.amount"),
                ("tags", "$.detail.tags"),
                ("missing", "$.detail.nope"),
                ("note", "$.detail.note"),
            ],
            r#"{"order": "<id>", "amount": <amount>, "tags": <tags>, "gone": "<missing>", "none": <missing>, "note": "<note>", "rule": "<aws.events.rule-name>", "keep": "<other>"}"#,
        );
        let out: Value = serde_json::from_str(&run(&t)).unwrap();
        assert_eq!(
            out,
            json!({"order": "o-1", "amount": 30, "tags": ["a", "b"], "gone": "", "none": null, "note": "say \"hi\"", "rule": "r", "keep": "<other>"})
        );
        let t = transformer(&[("id", "$.detail.id")], r#""order <id> placed""#);
        assert_eq!(run(&t), r#""order o-1 placed""#);
        let t = transformer(&[], r#"{"whole": <aws.events.event.json>}"#);
        let out: Value = serde_json::from_str(&run(&t)).unwrap();
        assert_eq!(out["whole"], event());
    }

    #[test]
    fn jsonata_templates() {
        let t = transformer(
            &[("id", "$.detail.id")],
            r#"{% {"order": $id, "total": detail.amount * 2, "tags": $join(detail.tags, "+"), "rule": $rule, "source": $event.source} %}"#,
        );
        let e = event();
        let cx = Context {
            rule_arn: "arn:aws:events:us-east-1:1:rule/r",
            rule_name: "r",
            ingestion_time: "2026-11-29T00:00:00Z",
        };
        let expr = jsonata_of(&t).unwrap();
        let out: Value =
            serde_json::from_str(&transform_jsonata(expr, &t, &e, &cx).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"order": "o-1", "total": 60, "tags": "a+b", "rule": "r", "source": "shop"})
        );
        assert!(check_transformer(&transformer(&[], "{% detail.( %}"))
            .unwrap_err()
            .contains("JSONata"));
    }

    #[test]
    fn transformers_are_checked() {
        assert!(check_transformer(&transformer(&[("ok", "$.a")], "<ok>")).is_ok());
        assert!(check_transformer(&transformer(&[("aws.x", "$.a")], "")).is_err());
        assert!(check_transformer(&transformer(&[("bad key", "$.a")], "")).is_err());
        assert!(check_transformer(&transformer(&[("k", "a")], "")).is_err());
    }
}
