//! JSONPath-mode `Choice` rules: `Variable` with one comparison
//! (`StringEquals`, `NumericLessThanPath`, `IsPresent`, ...), or `And`,
//! `Or`, `Not`. Parsed when the state machine is created; evaluated with the
//! caller resolving paths (`$.x`, `$$.Execution.Id`, `$var`).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test {
        variable: String,
        op: String,
        /// The operand, or the path holding it (`...Path` operators).
        operand: Value,
        by_path: bool,
    },
}

const OPS: &[&str] = &[
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "StringLessThanEquals",
    "StringGreaterThanEquals",
    "StringMatches",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanEquals",
    "NumericGreaterThanEquals",
    "BooleanEquals",
    "TimestampEquals",
    "TimestampLessThan",
    "TimestampGreaterThan",
    "TimestampLessThanEquals",
    "TimestampGreaterThanEquals",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

impl Rule {
    pub fn parse(v: &Value) -> Result<Rule, String> {
        let o = v.as_object().ok_or("A choice rule must be an object")?;
        for (k, f) in [
            ("And", Rule::And as fn(Vec<Rule>) -> Rule),
            ("Or", Rule::Or),
        ] {
            if let Some(list) = o.get(k) {
                let list = list
                    .as_array()
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| format!("'{k}' must be a non-empty list of rules"))?;
                return Ok(f(list.iter().map(Rule::parse).collect::<Result<_, _>>()?));
            }
        }
        if let Some(r) = o.get("Not") {
            return Ok(Rule::Not(Box::new(Rule::parse(r)?)));
        }
        let variable = o
            .get("Variable")
            .and_then(Value::as_str)
            .ok_or("A choice rule needs 'Variable' (or And, Or, Not)")?
            .to_string();
        let ops: Vec<(&String, &Value)> = o
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "Variable" | "Next" | "Comment" | "Assign"))
            .collect();
        let [(op, operand)] = ops.as_slice() else {
            return Err("A choice rule needs exactly one comparison".into());
        };
        let (base, by_path) = match op.strip_suffix("Path") {
            Some(b) if OPS.contains(&b) && !b.starts_with("Is") => (b, true),
            _ => (op.as_str(), false),
        };
        if !OPS.contains(&base) {
            return Err(format!("'{op}' is not a choice comparison"));
        }
        if by_path && operand.as_str().is_none() {
            return Err(format!("'{op}' must be a path"));
        }
        let kind_ok = by_path
            || match base {
                b if b.starts_with("String") || b.starts_with("Timestamp") => operand.is_string(),
                b if b.starts_with("Numeric") => operand.is_number(),
                _ => operand.is_boolean(),
            };
        if !kind_ok {
            return Err(format!("'{op}' has an operand of the wrong type"));
        }
        Ok(Rule::Test {
            variable,
            op: base.to_string(),
            operand: (*operand).clone(),
            by_path,
        })
    }

    /// Whether the rule holds; `resolve` gives a path's value (`None`:
    /// not present).
    pub fn holds(&self, resolve: &dyn Fn(&str) -> Option<Value>) -> bool {
        match self {
            Rule::And(l) => l.iter().all(|r| r.holds(resolve)),
            Rule::Or(l) => l.iter().any(|r| r.holds(resolve)),
            Rule::Not(r) => !r.holds(resolve),
            Rule::Test {
                variable,
                op,
                operand,
                by_path,
            } => {
                let value = resolve(variable);
                let want = operand.as_bool().unwrap_or(false);
                match op.as_str() {
                    "IsPresent" => return value.is_some() == want,
                    "IsNull" => return value.as_ref().is_some_and(Value::is_null) == want,
                    "IsNumeric" => return value.as_ref().is_some_and(Value::is_number) == want,
                    "IsString" => return value.as_ref().is_some_and(Value::is_string) == want,
                    "IsBoolean" => return value.as_ref().is_some_and(Value::is_boolean) == want,
                    "IsTimestamp" => {
                        return value
                            .as_ref()
                            .and_then(Value::as_str)
                            .and_then(timestamp)
                            .is_some()
                            == want
                    }
                    _ => {}
                }
                let Some(value) = value else { return false };
                let operand = if *by_path {
                    match operand.as_str().and_then(resolve) {
                        Some(v) => v,
                        None => return false,
                    }
                } else {
                    operand.clone()
                };
                compare(op, &value, &operand)
            }
        }
    }
}

/// Epoch nanoseconds of an RFC 3339 timestamp.
fn timestamp(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

fn compare(op: &str, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let order: Option<Ordering> = if op.starts_with("String") {
        match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) if op == "StringMatches" => return glob(y, x),
            (Some(x), Some(y)) => Some(x.cmp(y)),
            _ => None,
        }
    } else if op.starts_with("Numeric") {
        a.as_f64()
            .zip(b.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
    } else if op.starts_with("Timestamp") {
        a.as_str()
            .and_then(timestamp)
            .zip(b.as_str().and_then(timestamp))
            .map(|(x, y)| x.cmp(&y))
    } else {
        return a.as_bool().is_some() && a == b;
    };
    let Some(o) = order else { return false };
    match op {
        x if x.ends_with("LessThanEquals") => o != Ordering::Greater,
        x if x.ends_with("GreaterThanEquals") => o != Ordering::Less,
        x if x.ends_with("LessThan") => o == Ordering::Less,
        x if x.ends_with("GreaterThan") => o == Ordering::Greater,
        _ => o == Ordering::Equal,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are
/// literal.
fn glob(pattern: &str, s: &str) -> bool {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => parts.last_mut().unwrap().extend(chars.next()),
            '*' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    let (first, rest) = parts.split_first().expect("one part at least");
    let Some(mut s) = s.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return s.is_empty();
    };
    for p in middle {
        match s.find(p.as_str()) {
            Some(i) => s = &s[i + p.len()..],
            None => return false,
        }
    }
    s.len() >= last.len() && s.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_of_rules() {
        let input = json!({"n": 5, "s": "log-2026.txt", "b": true, "t": "2026-01-02T00:00:00Z",
                           "limit": 10, "nil": null});
        let resolve = |p: &str| crate::jsonpath::JsonPath::parse(p).ok()?.select(&input);
        let table = [
            (json!({"Variable": "$.n", "NumericGreaterThan": 3}), true),
            (
                json!({"Variable": "$.n", "NumericLessThanPath": "$.limit"}),
                true,
            ),
            (json!({"Variable": "$.n", "NumericEquals": 5}), true),
            (
                json!({"Variable": "$.s", "StringMatches": "log-*.txt"}),
                true,
            ),
            (
                json!({"Variable": "$.s", "StringMatches": "log-*.csv"}),
                false,
            ),
            (json!({"Variable": "$.s", "StringLessThan": "m"}), true),
            (json!({"Variable": "$.b", "BooleanEquals": true}), true),
            (
                json!({"Variable": "$.t", "TimestampGreaterThan": "2025-12-31T23:59:59Z"}),
                true,
            ),
            (json!({"Variable": "$.missing", "IsPresent": false}), true),
            (json!({"Variable": "$.nil", "IsNull": true}), true),
            (json!({"Variable": "$.n", "IsNumeric": true}), true),
            (json!({"Variable": "$.missing", "StringEquals": "x"}), false),
            (
                json!({"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Not": {"Variable": "$.b", "BooleanEquals": false}}]}),
                true,
            ),
            (
                json!({"Or": [{"Variable": "$.n", "NumericGreaterThan": 9}, {"Variable": "$.s", "IsString": false}]}),
                false,
            ),
        ];
        for (rule, want) in table {
            let r = Rule::parse(&rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(r.holds(&resolve), want, "{rule}");
        }
    }

    #[test]
    fn bad_rules_are_refused() {
        for rule in [
            json!({"Variable": "$.n"}),
            json!({"Variable": "$.n", "NumericEquals": "5"}),
            json!({"Variable": "$.n", "Frobnicate": 1}),
            json!({"And": []}),
            json!({"Variable": "$.n", "NumericEquals": 1, "StringEquals": "x"}),
        ] {
            assert!(Rule::parse(&rule).is_err(), "{rule}");
        }
    }
}
