//! Herald's one JSONata engine (the event bus's transformations now, Step
//! Functions' JSONata states next), on the `jsonata-core` crate, which
//! passes the official JSONata test suite (1,686 of 1,686 cases of
//! jsonata-js 2.2).
//!
//! An expression is parsed once, when the resource that holds it is
//! created, so a syntax error is refused there with JSONata's message. Each
//! evaluation is bounded: at most [`TIMEOUT_MS`] of work and a stack depth
//! of [`MAX_DEPTH`], and a panic inside the engine is caught and reported as
//! an error: an expression can fail its own evaluation, never the server.

use jsonata_core::evaluator::{Context, Evaluator, EvaluatorOptions};
use jsonata_core::value::JValue;
use serde_json::Value;

/// The longest an evaluation may run.
pub const TIMEOUT_MS: u64 = 100;
/// The deepest an evaluation may nest.
pub const MAX_DEPTH: usize = 500;

/// A checked JSONata expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    text: String,
}

impl Expression {
    /// Parse `text`; the error is JSONata's (with its code, such as `S0202`).
    pub fn parse(text: &str) -> Result<Expression, String> {
        jsonata_core::parser::parse(text).map_err(|e| format!("{e}"))?;
        Ok(Expression {
            text: text.to_string(),
        })
    }

    /// An expression already checked with [`Expression::parse`] (stored
    /// with its resource), taken as it is: it is parsed once, when
    /// evaluated.
    pub fn checked(text: &str) -> Expression {
        Expression {
            text: text.to_string(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluate against `input` (`$`) with `variables` bound (`$name`).
    /// `Ok(None)`: the result is undefined (JSONata's "nothing").
    pub fn evaluate(
        &self,
        input: &Value,
        variables: &[(&str, Value)],
    ) -> Result<Option<Value>, String> {
        self.evaluate_with(input, variables, &[])
    }

    /// [`Expression::evaluate`] with host functions callable as
    /// `$name(...)` (Step Functions adds `$partition`, `$hash`, ...).
    pub fn evaluate_with(
        &self,
        input: &Value,
        variables: &[(&str, Value)],
        functions: &[(&'static str, HostFunction)],
    ) -> Result<Option<Value>, String> {
        let text = self.text.clone();
        let input = input.clone();
        let variables: Vec<(String, Value)> = variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let functions = functions.to_vec();
        std::panic::catch_unwind(move || {
            let ast = jsonata_core::parser::parse(&text).map_err(|e| format!("{e}"))?;
            let mut context = Context::new();
            for (name, value) in variables {
                context.bind(name, JValue::from(value));
            }
            let options = EvaluatorOptions {
                timeout_ms: Some(TIMEOUT_MS),
                max_stack_depth: Some(MAX_DEPTH),
                ..Default::default()
            };
            let mut evaluator = Evaluator::with_options(context, options);
            for (name, f) in functions {
                evaluator
                    .register_fn(name, move |args: &[JValue]| {
                        let args: Vec<Value> = args
                            .iter()
                            .map(|a| {
                                a.to_json_string()
                                    .ok()
                                    .and_then(|t| serde_json::from_str(&t).ok())
                                    .unwrap_or(Value::Null)
                            })
                            .collect();
                        f(&args)
                            .map(JValue::from)
                            .map_err(jsonata_core::evaluator::EvaluatorError::EvaluationError)
                    })
                    .map_err(|e| e.to_string())?;
            }
            let result = evaluator
                .evaluate(&ast, &JValue::from(input))
                .map_err(|e| e.to_string())?;
            if result.is_undefined() {
                return Ok(None);
            }
            let text = result.to_json_string().map_err(|e| e.to_string())?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|_| Err("the JSONata engine failed on this expression".into()))
    }
}

/// A host function: JSON arguments in, a JSON value or an error out.
pub type HostFunction = fn(&[Value]) -> Result<Value, String>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expressions and what they give for one event, as a table.
    #[test]
    fn a_table_of_expressions() {
        let event = json!({"id": "e1", "source": "shop", "detail": {"order": "o-1", "items": [
            {"sku": "a", "price": 2.5, "qty": 2}, {"sku": "b", "price": 10, "qty": 1}]}});
        let vars = [("rule", json!("big")), ("region", json!("eu"))];
        let table: &[(&str, Value)] = &[
            ("detail.order", json!("o-1")),
            ("$sum(detail.items.(price * qty))", json!(15)),
            ("detail.items[price > 5].sku", json!("b")),
            ("detail.items.sku", json!(["a", "b"])),
            (
                r#"{"order": detail.order, "rule": $rule, "region": $uppercase($region)}"#,
                json!({"order": "o-1", "rule": "big", "region": "EU"}),
            ),
            ("$count(detail.items) > 1 ? 'many' : 'one'", json!("many")),
            (r#"$join(detail.items.sku, ",")"#, json!("a,b")),
            ("$map(detail.items, function($i) { $i.qty })", json!([2, 1])),
            ("$string(detail.items[0].price)", json!("2.5")),
            (r#"$replace(source, /sh(o)p/, "st$1re")"#, json!("store")),
            ("$exists(detail.missing)", json!(false)),
        ];
        for (expr, want) in table {
            let e = Expression::parse(expr).unwrap_or_else(|err| panic!("{expr}: {err}"));
            assert_eq!(
                e.evaluate(&event, &vars).unwrap().as_ref(),
                Some(want),
                "{expr}"
            );
        }
        assert_eq!(
            Expression::parse("detail.missing")
                .unwrap()
                .evaluate(&event, &vars),
            Ok(None)
        );
    }

    #[test]
    fn errors_are_reported_never_raised() {
        let e = Expression::parse("detail.(").unwrap_err();
        assert!(!e.is_empty());
        let e = Expression::parse("$number('x')").unwrap();
        assert!(e.evaluate(&json!({}), &[]).is_err());
        // Unbounded recursion stops at the depth limit.
        let e = Expression::parse("($f := function($n) { $f($n + 1) }; $f(0))").unwrap();
        assert!(e.evaluate(&json!({}), &[]).is_err());
    }
}
