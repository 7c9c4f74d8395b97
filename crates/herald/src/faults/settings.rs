//! `[fault_injection]` in the configuration file: the switch, and experiment
//! templates declared as `CreateExperimentTemplate` takes them (in
//! snake_case), each with the `id` to start it by and, optionally, `start =
//! true` to start it when the server starts.

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultInjectionFile {
    /// Serve the FIS API (experiments that delay or fail invocations, drop
    /// engine traffic, close connections). Default: off with a configuration
    /// file (production), on in the development mode (no file).
    pub enabled: Option<bool>,
    /// `[[fault_injection.experiment_templates]]`.
    #[serde(default)]
    pub experiment_templates: Vec<toml::Value>,
}

/// A template from the file, checked as the API checks one.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredTemplate {
    pub id: String,
    /// Start it when the server starts.
    pub start: bool,
    /// The template, in the API's shape (its `id` and `arn` set).
    pub template: Value,
}

fn camel(key: &str) -> String {
    let mut out = String::new();
    for (i, word) in key.split('_').enumerate() {
        let mut c = word.chars();
        if let Some(first) = c.next() {
            if i == 0 {
                out.push(first);
            } else {
                out.extend(first.to_uppercase());
            }
            out.extend(c);
        }
    }
    out
}

fn json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The table's keys in camelCase, except those under `verbatim` keys (user
/// names: targets' and actions' names, parameters, tags).
fn api_shape(v: &toml::Value, verbatim: &[&str]) -> Value {
    match v {
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| {
                    let key = camel(k);
                    let inner = if verbatim.contains(&key.as_str()) {
                        json(v)
                    } else {
                        api_shape(v, verbatim)
                    };
                    (key, inner)
                })
                .collect::<Map<_, _>>(),
        ),
        toml::Value::Array(a) => Value::Array(a.iter().map(|v| api_shape(v, verbatim)).collect()),
        other => json(other),
    }
}

/// Check the file's templates; `enabled` must be on to declare any.
pub fn declared(
    file: &FaultInjectionFile,
    enabled: bool,
    region: &str,
    account: &str,
) -> Result<Vec<DeclaredTemplate>, String> {
    if !enabled && !file.experiment_templates.is_empty() {
        return Err(
            "[[fault_injection.experiment_templates]] need [fault_injection] enabled = true".into(),
        );
    }
    let mut out: Vec<DeclaredTemplate> = Vec::new();
    for t in &file.experiment_templates {
        let table = t
            .as_table()
            .ok_or("[[fault_injection.experiment_templates]] entries are tables")?;
        let id = table
            .get("id")
            .and_then(toml::Value::as_str)
            .ok_or("[[fault_injection.experiment_templates]]: id is required")?
            .to_string();
        let fail = |e: String| format!("[[fault_injection.experiment_templates]] {id}: {e}");
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_whitespace) {
            return Err(fail("id must be 1-64 characters without spaces".into()));
        }
        if out.iter().any(|d| d.id == id) {
            return Err(fail("declared twice".into()));
        }
        let start = match table.get("start") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| fail("start is true or false".into()))?,
        };
        // Targets and actions are maps of the user's names; what is inside
        // each is the API's (snake_case here), but parameters, an action's
        // targets and tags are user keys.
        let mut body = Map::new();
        for (k, v) in table {
            if k == "id" || k == "start" {
                continue;
            }
            let key = camel(k);
            let value = match key.as_str() {
                "targets" | "actions" => match v.as_table() {
                    Some(named) => Value::Object(
                        named
                            .iter()
                            .map(|(name, inner)| {
                                (
                                    name.clone(),
                                    api_shape(inner, &["parameters", "targets", "tags"]),
                                )
                            })
                            .collect(),
                    ),
                    None => json(v),
                },
                "tags" => json(v),
                _ => api_shape(v, &["tags"]),
            };
            body.insert(key, value);
        }
        let mut template =
            super::experiments::template_from_request(&Value::Object(body), region, account)
                .map_err(|e| fail(e.message))?;
        template["id"] = Value::String(id.clone());
        template["arn"] = Value::String(format!(
            "arn:aws:fis:{region}:{account}:experiment-template/{id}"
        ));
        out.push(DeclaredTemplate {
            id,
            start,
            template,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_from_the_file_are_checked_as_the_api_checks_them() {
        let file: FaultInjectionFile = toml::from_str(
            r#"
            enabled = true
            [[experiment_templates]]
            id = "slow-orders"
            start = true
            description = "orders are slow"
            role_arn = "arn:aws:iam::123456789012:role/fis"
            stop_conditions = [{ source = "none" }]
            targets = { Orders = { resource_type = "aws:lambda:function", selection_mode = "ALL", resource_arns = ["arn:aws:lambda:us-east-1:123456789012:function:orders"] } }
            actions = { slow = { action_id = "aws:lambda:invocation-add-delay", parameters = { duration = "PT5M", startupDelayMilliseconds = "500" }, targets = { Functions = "Orders" } } }
            "#,
        )
        .unwrap();
        let d = declared(&file, true, "us-east-1", "123456789012").unwrap();
        assert_eq!((d[0].id.as_str(), d[0].start), ("slow-orders", true));
        let t = &d[0].template;
        assert_eq!(t["id"], "slow-orders");
        assert_eq!(
            t["targets"]["Orders"]["resourceType"],
            "aws:lambda:function"
        );
        assert_eq!(
            t["actions"]["slow"]["parameters"]["startupDelayMilliseconds"],
            "500"
        );
        assert_eq!(t["actions"]["slow"]["targets"]["Functions"], "Orders");
        assert!(declared(&file, false, "us-east-1", "123456789012")
            .unwrap_err()
            .contains("enabled = true"));

        let bad: FaultInjectionFile = toml::from_str(
            r#"
            enabled = true
            [[experiment_templates]]
            id = "bad"
            description = "x"
            role_arn = "r"
            stop_conditions = [{ source = "none" }]
            actions = { a = { action_id = "aws:lambda:invocation-error", parameters = {} } }
            "#,
        )
        .unwrap();
        let e = declared(&bad, true, "us-east-1", "123456789012").unwrap_err();
        assert!(e.contains("bad") && e.contains("duration"), "{e}");
    }
}
