//! What a state reads and writes: the JSONPath fields (`InputPath`,
//! `Parameters`, `ResultSelector`, `ResultPath`, `OutputPath`, `.$` keys and
//! intrinsics) and the JSONata ones (`{% ... %}` with `$states`), and the
//! workflow variables `Assign` sets.
//!
//! **Variables** follow AWS's rules: the states of one machine share a
//! scope; a `Parallel` branch or `Map` iteration reads the variables
//! outside it but assigns only its own (they leave through its output, not
//! as variables). An `Assign` is evaluated whole before any of it is
//! stored: it sees the state's input and result and the variables as they
//! were when the state began, not the values it is assigning.

use super::definition::{jsonata_text, variable_path, Lang};
use super::intrinsics;
use super::Failure;
use crate::jsonpath::JsonPath;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Largest total size of the variables one `Assign` sets (AWS: 256 KiB).
pub const MAX_ASSIGN_BYTES: usize = 256 * 1024;

/// The variables a state sees: its machine's own, and (read-only) those
/// of the machines around it.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub own: Map<String, Value>,
    pub outer: Arc<Map<String, Value>>,
}

impl Vars {
    /// The scope of a branch or iteration inside this one.
    pub fn inner(&self) -> Vars {
        let mut outer = (*self.outer).clone();
        for (k, v) in &self.own {
            outer.insert(k.clone(), v.clone());
        }
        Vars {
            own: Map::new(),
            outer: Arc::new(outer),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.own.get(name).or_else(|| self.outer.get(name))
    }

    fn all(&self) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = self
            .outer
            .iter()
            .filter(|(k, _)| !self.own.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.extend(self.own.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// What `$states` holds for a JSONata expression, and `$$` for a path.
pub struct Scope<'a> {
    pub input: &'a Value,
    pub result: Option<&'a Value>,
    pub error_output: Option<&'a Value>,
    pub context: &'a Value,
    pub vars: &'a Vars,
}

pub fn runtime(message: impl Into<String>) -> Failure {
    Failure::new("States.Runtime", message)
}

fn query_failed(message: impl Into<String>) -> Failure {
    Failure::new("States.QueryEvaluationError", message)
}

impl Scope<'_> {
    /// A JSONPath-mode path: `$...` against `data`, `$$...` against the
    /// context, `$name...` a variable.
    pub fn path(&self, path: &str, data: &Value) -> Result<Option<Value>, Failure> {
        if let Some(rest) = path.strip_prefix("$$") {
            let jp = JsonPath::parse(&format!("${rest}")).map_err(runtime)?;
            return Ok(jp.select(self.context));
        }
        if variable_path(path) {
            let body = &path[1..];
            let end = body.find(['.', '[']).unwrap_or(body.len());
            let Some(v) = self.vars.get(&body[..end]) else {
                return Ok(None);
            };
            let jp = JsonPath::parse(&format!("${}", &body[end..])).map_err(runtime)?;
            return Ok(jp.select(v));
        }
        let jp = JsonPath::parse(path).map_err(runtime)?;
        Ok(jp.select(data))
    }

    /// A path that must find something (else `States.Runtime`, as AWS).
    pub fn require(&self, path: &str, data: &Value, field: &str) -> Result<Value, Failure> {
        self.path(path, data)?.ok_or_else(|| {
            runtime(format!(
                "An error occurred while executing the state. The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{data}'"
            ))
        })
    }

    /// A payload template: `key.$` values are paths or intrinsic calls,
    /// other values are kept, objects and arrays are walked.
    pub fn template(&self, t: &Value, data: &Value, field: &str) -> Result<Value, Failure> {
        Ok(match t {
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, v) in o {
                    match k.strip_suffix(".$") {
                        Some(name) => {
                            let text = v.as_str().unwrap_or_default();
                            let value = if intrinsics::is_call(text) {
                                let e = intrinsics::parse(text)
                                    .map_err(|e| Failure::new("States.IntrinsicFailure", e))?;
                                intrinsics::eval(&e, &|p| {
                                    self.require(p, data, field).map_err(|f| f.cause)
                                })
                                .map_err(|e| Failure::new("States.IntrinsicFailure", e))?
                            } else {
                                self.require(text, data, field)?
                            };
                            out.insert(name.to_string(), value);
                        }
                        None => {
                            out.insert(k.clone(), self.template(v, data, field)?);
                        }
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|v| self.template(v, data, field))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Evaluate a JSONata template: a string `{% expr %}` is the
    /// expression's value, other strings are themselves, objects and arrays
    /// are walked.
    pub fn jsonata(&self, t: &Value, field: &str) -> Result<Value, Failure> {
        Ok(match t {
            Value::String(s) => match jsonata_text(s) {
                Some(expr) => {
                    let e = crate::jsonata::Expression::checked(expr);
                    let mut states = Map::new();
                    states.insert("input".into(), self.input.clone());
                    if let Some(r) = self.result {
                        states.insert("result".into(), r.clone());
                    }
                    if let Some(e) = self.error_output {
                        states.insert("errorOutput".into(), e.clone());
                    }
                    states.insert("context".into(), self.context.clone());
                    let mut bindings = self.vars.all();
                    bindings.push(("states".into(), Value::Object(states)));
                    let refs: Vec<(&str, Value)> = bindings
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.clone()))
                        .collect();
                    e.evaluate_with(self.input, &refs, intrinsics::JSONATA_FUNCTIONS)
                        .map_err(|e| query_failed(format!("{field}: {e}")))?
                        .unwrap_or(Value::Null)
                }
                None => Value::String(s.clone()),
            },
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, v) in o {
                    out.insert(k.clone(), self.jsonata(v, field)?);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|v| self.jsonata(v, field))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }

    /// `Assign`: every value evaluated first (JSONPath: `$` is `data`),
    /// then stored.
    pub fn assign(
        &self,
        lang: Lang,
        assign: Option<&Value>,
        data: &Value,
    ) -> Result<Map<String, Value>, Failure> {
        let Some(assign) = assign else {
            return Ok(Map::new());
        };
        let v = match lang {
            Lang::JsonPath => self.template(assign, data, "Assign")?,
            Lang::Jsonata => self.jsonata(assign, "Assign")?,
        };
        let Value::Object(out) = v else {
            return Err(runtime("Assign must be an object"));
        };
        let size: usize = out.iter().map(|(k, v)| k.len() + v.to_string().len()).sum();
        if size > MAX_ASSIGN_BYTES {
            return Err(Failure::new(
                "States.Runtime",
                format!("The variables assigned by this state exceed the limit of {MAX_ASSIGN_BYTES} bytes"),
            ));
        }
        Ok(out)
    }
}

/// `InputPath` / `OutputPath`: absent is `$`, null is `{}`.
pub fn filter(
    scope: &Scope,
    body: &Map<String, Value>,
    field: &str,
    data: &Value,
) -> Result<Value, Failure> {
    match body.get(field) {
        None => Ok(data.clone()),
        Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::String(p)) => scope.require(p, data, field),
        Some(_) => Err(runtime(format!("{field} must be a path"))),
    }
}

/// `ResultPath`: where the result goes in the raw input (absent: it
/// replaces it; null: it is dropped).
pub fn result_path(
    body: &Map<String, Value>,
    input: &Value,
    result: Value,
) -> Result<Value, Failure> {
    match body.get("ResultPath") {
        None => Ok(result),
        Some(Value::Null) => Ok(input.clone()),
        Some(Value::String(p)) => {
            let jp = JsonPath::parse(p).map_err(runtime)?;
            let mut out = input.clone();
            jp.set(&mut out, result).map_err(|e| {
                Failure::new(
                    "States.ResultPathMatchFailure",
                    format!("Unable to apply ResultPath '{p}' to the input: {e}"),
                )
            })?;
            Ok(out)
        }
        Some(_) => Err(runtime("ResultPath must be a path")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_templates_and_variables() {
        let mut vars = Vars::default();
        vars.own.insert("limit".into(), json!(7));
        let context = json!({"Execution": {"Id": "e-1"}});
        let input = json!({"a": {"b": 1}, "list": [1, 2]});
        let scope = Scope {
            input: &input,
            result: None,
            error_output: None,
            context: &context,
            vars: &vars,
        };
        let t = json!({"x.$": "$.a.b", "id.$": "$$.Execution.Id", "lim.$": "$limit",
            "n.$": "States.ArrayLength($.list)", "keep": {"deep.$": "$.list[1]"}});
        assert_eq!(
            scope.template(&t, &input, "Parameters").unwrap(),
            json!({"x": 1, "id": "e-1", "lim": 7, "n": 2, "keep": {"deep": 2}})
        );
        let f = scope
            .template(&json!({"x.$": "$.nope"}), &input, "Parameters")
            .unwrap_err();
        assert_eq!(f.error, "States.Runtime");
        assert!(f.cause.contains("'$.nope'"), "{}", f.cause);
        assert_eq!(
            scope
                .jsonata(
                    &json!({"sum": "{% $sum($states.input.list) + $limit %}", "lit": "x"}),
                    "Output"
                )
                .unwrap(),
            json!({"sum": 10, "lit": "x"})
        );
        assert_eq!(
            result_path(
                &json!({"ResultPath": "$.r"}).as_object().unwrap().clone(),
                &input,
                json!(5)
            )
            .unwrap(),
            json!({"a": {"b": 1}, "list": [1, 2], "r": 5})
        );
    }

    #[test]
    fn inner_scopes_read_outer_variables_and_keep_their_own() {
        let mut top = Vars::default();
        top.own.insert("x".into(), json!(1));
        let mut inner = top.inner();
        inner.own.insert("y".into(), json!(2));
        assert_eq!(inner.get("x"), Some(&json!(1)));
        assert_eq!(top.get("y"), None);
    }
}
