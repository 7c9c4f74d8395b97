//! Parsing and validating a pattern into alternatives of conditions, and the
//! reference evaluator.
//!
//! A pattern compiles to its disjunctive normal form: `$or` (at any depth) is
//! multiplied out, so a [`Pattern`] is a list of alternatives, each a list of
//! conditions on one field path, ANDed. Every check happens here, so matching
//! cannot fail.

use crate::error::PatternError;
use crate::event::values_at;
use crate::test::{Cidr, Cmp, Excluded, Literal, Test};
use crate::wildcard::Wildcard;
use serde_json::{Map, Value};

/// Bounds on what a pattern may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Characters of the pattern's text (EventBridge: 2,048 by default, 4,096
    /// adjustable; Lambda filters: 4,096).
    pub max_len: usize,
    /// Nesting depth of objects.
    pub max_depth: usize,
    /// Alternatives after `$or` is multiplied out.
    pub max_alternatives: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_len: 4096,
            max_depth: 32,
            max_alternatives: 256,
        }
    }
}

/// A validated pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub(crate) alternatives: Vec<Alternative>,
}

/// Conditions that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Alternative {
    pub conditions: Vec<Condition>,
}

/// A leaf of the pattern: the values at `path` must pass one of `tests`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub path: Vec<String>,
    pub tests: Vec<Test>,
}

impl Condition {
    /// Whether the condition holds given the leaf values at its path.
    pub fn holds(&self, values: &[crate::test::Leaf<'_>]) -> bool {
        self.tests.iter().any(|t| match t {
            Test::Exists(want) => *want != values.is_empty(),
            t => values.iter().any(|v| t.accepts(*v)),
        })
    }
}

impl Pattern {
    /// Parse and validate a pattern's JSON text with the default [`Limits`].
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        Pattern::parse_with(text, Limits::default())
    }

    pub fn parse_with(text: &str, limits: Limits) -> Result<Pattern, PatternError> {
        let len = text.chars().count();
        if len > limits.max_len {
            return Err(PatternError(format!(
                "the pattern is {len} characters; the limit is {}",
                limits.max_len
            )));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| PatternError(format!("the pattern is not valid JSON: {e}")))?;
        Pattern::from_value_with(&value, limits)
    }

    /// Validate a pattern already parsed as JSON (its size is not checked).
    pub fn from_value(value: &Value) -> Result<Pattern, PatternError> {
        Pattern::from_value_with(value, Limits::default())
    }

    pub fn from_value_with(value: &Value, limits: Limits) -> Result<Pattern, PatternError> {
        let Value::Object(obj) = value else {
            return Err(PatternError("the pattern must be a JSON object".into()));
        };
        let alternatives = object(obj, &mut Vec::new(), &limits)?;
        Ok(Pattern { alternatives })
    }

    /// Whether `event` matches: the reference evaluator, walking the event
    /// for each condition's path.
    pub fn matches(&self, event: &Value) -> bool {
        self.alternatives.iter().any(|alt| {
            alt.conditions
                .iter()
                .all(|c| c.holds(&values_at(event, &c.path)))
        })
    }

    /// Every field path the pattern names.
    pub fn paths(&self) -> impl Iterator<Item = &[String]> {
        self.alternatives
            .iter()
            .flat_map(|a| a.conditions.iter().map(|c| c.path.as_slice()))
    }
}

/// An object of the pattern at `path`: its alternatives.
fn object(
    obj: &Map<String, Value>,
    path: &mut Vec<String>,
    limits: &Limits,
) -> Result<Vec<Alternative>, PatternError> {
    if path.len() >= limits.max_depth {
        return Err(PatternError::at(
            path,
            format!("the pattern nests deeper than {} levels", limits.max_depth),
        ));
    }
    if obj.is_empty() {
        return Err(PatternError::at(path, "an empty object matches nothing"));
    }
    // Leaves of this object, then one list of alternatives per nested object
    // or `$or`; the result is their product.
    let mut leaves = Vec::new();
    let mut factors: Vec<Vec<Alternative>> = Vec::new();
    for (key, value) in obj {
        if key == "$or" {
            let Value::Array(items) = value else {
                return Err(PatternError::at(path, "$or must be an array of objects"));
            };
            if items.len() < 2 {
                return Err(PatternError::at(
                    path,
                    "$or needs at least two alternatives",
                ));
            }
            let mut alts = Vec::new();
            for item in items {
                let Value::Object(o) = item else {
                    return Err(PatternError::at(
                        path,
                        "each alternative of $or must be an object",
                    ));
                };
                if o.is_empty() {
                    return Err(PatternError::at(
                        path,
                        "an alternative of $or is an empty object",
                    ));
                }
                alts.extend(object(o, path, limits)?);
            }
            factors.push(alts);
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Object(o) => factors.push(object(o, path, limits)?),
            Value::Array(items) => leaves.push(Condition {
                path: path.clone(),
                tests: leaf(items, path)?,
            }),
            _ => {
                let e = PatternError::at(
                    path,
                    "a match value must be an array (for example [\"value\"]) or an object",
                );
                path.pop();
                return Err(e);
            }
        }
        path.pop();
    }
    let mut result = vec![Alternative { conditions: leaves }];
    for factor in factors {
        let mut next = Vec::with_capacity(result.len() * factor.len());
        for a in &result {
            for b in &factor {
                let mut conditions = a.conditions.clone();
                conditions.extend(b.conditions.iter().cloned());
                next.push(Alternative { conditions });
            }
        }
        if next.len() > limits.max_alternatives {
            return Err(PatternError::at(
                path,
                format!(
                    "$or combinations expand to more than {} alternatives",
                    limits.max_alternatives
                ),
            ));
        }
        result = next;
    }
    Ok(result)
}

fn literal(v: &Value) -> Option<Literal> {
    Some(match v {
        Value::String(s) => Literal::Str(s.clone()),
        Value::Number(n) => Literal::Num(n.as_f64()?),
        Value::Bool(b) => Literal::Bool(*b),
        Value::Null => Literal::Null,
        _ => return None,
    })
}

/// A leaf's array of values and operators.
fn leaf(items: &[Value], path: &[String]) -> Result<Vec<Test>, PatternError> {
    if items.is_empty() {
        return Err(PatternError::at(path, "the array of match values is empty"));
    }
    items
        .iter()
        .map(|item| match item {
            Value::Object(op) => operator(op, path),
            Value::Array(_) => Err(PatternError::at(
                path,
                "a match value cannot be an array inside an array",
            )),
            v => Ok(Test::Exact(literal(v).expect("a scalar"))),
        })
        .collect()
}

fn string<'a>(v: &'a Value, path: &[String], op: &str) -> Result<&'a str, PatternError> {
    v.as_str()
        .ok_or_else(|| PatternError::at(path, format!("{op} takes a string")))
}

/// `{"prefix": "x"}` or `{"prefix": {"equals-ignore-case": "x"}}`.
fn affix(v: &Value, path: &[String], op: &str) -> Result<(String, bool), PatternError> {
    match v {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Object(o) if o.len() == 1 && o.contains_key("equals-ignore-case") => {
            let s = string(
                &o["equals-ignore-case"],
                path,
                &format!("{op} equals-ignore-case"),
            )?;
            Ok((s.to_lowercase(), true))
        }
        _ => Err(PatternError::at(
            path,
            format!("{op} takes a string or {{\"equals-ignore-case\": string}}"),
        )),
    }
}

fn operator(op: &Map<String, Value>, path: &[String]) -> Result<Test, PatternError> {
    if op.len() != 1 {
        return Err(PatternError::at(
            path,
            "an operator object must have exactly one key (prefix, suffix, equals-ignore-case, \
             wildcard, anything-but, numeric, exists, cidr)",
        ));
    }
    let (name, v) = op.iter().next().unwrap();
    Ok(match name.as_str() {
        "prefix" => {
            let (text, ignore_case) = affix(v, path, "prefix")?;
            Test::Prefix { text, ignore_case }
        }
        "suffix" => {
            let (text, ignore_case) = affix(v, path, "suffix")?;
            Test::Suffix { text, ignore_case }
        }
        "equals-ignore-case" => {
            Test::EqualsIgnoreCase(string(v, path, "equals-ignore-case")?.to_lowercase())
        }
        "wildcard" => Test::Wildcard(
            Wildcard::parse(string(v, path, "wildcard")?)
                .map_err(|e| PatternError::at(path, format!("wildcard {e}")))?,
        ),
        "exists" => match v {
            Value::Bool(b) => Test::Exists(*b),
            _ => return Err(PatternError::at(path, "exists takes true or false")),
        },
        "cidr" => Test::Cidr(cidr(string(v, path, "cidr")?).ok_or_else(|| {
            PatternError::at(
                path,
                format!("cidr '{v}' is not an IPv4 or IPv6 network with fewer mask bits than the address (a.b.c.d/n, n < 32; for one address use an exact string)"),
            )
        })?),
        "numeric" => Test::Numeric(numeric(v, path)?),
        "anything-but" => Test::AnythingBut(anything_but(v, path)?),
        other => {
            return Err(PatternError::at(
                path,
                format!("unrecognized match type '{other}'"),
            ))
        }
    })
}

/// A network with fewer mask bits than the address has (as Event Ruler: a
/// single address is matched with an exact string instead).
fn cidr(text: &str) -> Option<Cidr> {
    let (ip, bits) = text.split_once('/')?;
    let net: std::net::IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    (bits < max).then_some(Cidr { net, bits })
}

fn numeric(v: &Value, path: &[String]) -> Result<Vec<(Cmp, f64)>, PatternError> {
    let bad = |why: &str| PatternError::at(path, format!("numeric {why}"));
    let Value::Array(items) = v else {
        return Err(bad("takes an array such as [\">\", 0, \"<=\", 5]"));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(bad("takes one or two (operator, number) pairs"));
    }
    let mut bounds = Vec::new();
    for pair in items.chunks(2) {
        let cmp = match pair[0].as_str() {
            Some("=") => Cmp::Eq,
            Some("<") => Cmp::Lt,
            Some("<=") => Cmp::Le,
            Some(">") => Cmp::Gt,
            Some(">=") => Cmp::Ge,
            _ => {
                return Err(bad(&format!(
                    "operator {} is not one of =, <, <=, >, >=",
                    pair[0]
                )))
            }
        };
        let n = pair[1].as_f64().filter(|n| n.is_finite()).ok_or_else(|| {
            bad(&format!(
                "{} must be followed by a number, not {}",
                pair[0], pair[1]
            ))
        })?;
        bounds.push((cmp, n));
    }
    match bounds.as_slice() {
        [_] => {}
        [(lo, a), (hi, b)]
            if matches!(lo, Cmp::Gt | Cmp::Ge) && matches!(hi, Cmp::Lt | Cmp::Le) =>
        {
            if a >= b {
                return Err(bad(&format!(
                    "range is empty: the lower bound {a} is not below the upper bound {b}"
                )));
            }
        }
        _ => {
            return Err(bad(
                "range must be a lower bound (> or >=) followed by an upper bound (< or <=)",
            ))
        }
    }
    Ok(bounds)
}

fn anything_but(v: &Value, path: &[String]) -> Result<Excluded, PatternError> {
    let bad = |why: String| PatternError::at(path, format!("anything-but {why}"));
    Ok(match v {
        Value::String(_) | Value::Number(_) => Excluded::Values(vec![literal(v).unwrap()]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(bad("takes a non-empty list".into()));
            }
            let strings = items.iter().all(Value::is_string);
            let numbers = items.iter().all(Value::is_number);
            if !strings && !numbers {
                return Err(bad(
                    "takes a list of strings or a list of numbers, not a mix".into(),
                ));
            }
            Excluded::Values(items.iter().map(|i| literal(i).unwrap()).collect())
        }
        Value::Object(o) if o.len() == 1 => {
            let (name, inner) = o.iter().next().unwrap();
            // A string, or a non-empty list of strings.
            let texts = |op: &str| -> Result<Vec<String>, PatternError> {
                let list: Vec<String> = match inner {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items)
                        if !items.is_empty() && items.iter().all(Value::is_string) =>
                    {
                        items
                            .iter()
                            .map(|i| i.as_str().unwrap().to_string())
                            .collect()
                    }
                    _ => {
                        return Err(bad(format!(
                            "{op} takes a string or a non-empty list of strings"
                        )))
                    }
                };
                if op != "wildcard" && list.iter().any(String::is_empty) {
                    return Err(bad(format!(
                        "{op} does not take an empty string (null prefix/suffix not allowed)"
                    )));
                }
                Ok(list)
            };
            match name.as_str() {
                "prefix" => Excluded::Prefix(texts("prefix")?),
                "suffix" => Excluded::Suffix(texts("suffix")?),
                "wildcard" => Excluded::Wildcard(
                    texts("wildcard")?
                        .iter()
                        .map(|w| Wildcard::parse(w).map_err(|e| bad(format!("wildcard {e}"))))
                        .collect::<Result<_, _>>()?,
                ),
                "equals-ignore-case" => match inner {
                    Value::String(s) => Excluded::IgnoreCase(vec![s.to_lowercase()]),
                    Value::Array(items)
                        if !items.is_empty() && items.iter().all(Value::is_string) =>
                    {
                        Excluded::IgnoreCase(
                            items
                                .iter()
                                .map(|i| i.as_str().unwrap().to_lowercase())
                                .collect(),
                        )
                    }
                    _ => {
                        return Err(bad(
                            "equals-ignore-case takes a string or a non-empty list of strings"
                                .into(),
                        ))
                    }
                },
                other => {
                    return Err(bad(format!(
                        "does not take '{other}' (prefix, suffix, wildcard or equals-ignore-case)"
                    )))
                }
            }
        }
        _ => {
            return Err(bad(
                "takes a string, a number, a list of either, or one of prefix, suffix, wildcard, \
                 equals-ignore-case"
                    .into(),
            ))
        }
    })
}
