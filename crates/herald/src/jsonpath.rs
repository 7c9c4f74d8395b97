//! JSONPath as AWS services read it: Step Functions' paths (`InputPath`,
//! `Parameters`' `.$` values, `ResultSelector`, `OutputPath`, `ItemsPath`,
//! Choice `Variable`) and, in its simple form, EventBridge's `InputPath`.
//!
//! Supported: `$`, `.field` and `['field']`, `[n]` (negative from the end),
//! `[*]` and `.*`, `[a,b]` (indexes or quoted names), slices
//! `[start:end:step]`, recursive descent `..field`, and filters
//! `[?(@.field op value)]` with `==`, `!=`, `<`, `<=`, `>`, `>=` (and
//! `[?(@.field)]`: the field exists). A path with none of the multi-value
//! steps is *definite* and selects at most one value; an indefinite one
//! selects a list, as Jayway's JSONPath (which AWS uses) does.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Union(Vec<Key>),
    Slice(Option<i64>, Option<i64>, i64),
    Descend(String),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Field(String),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    field: Vec<String>,
    /// `None`: the field exists.
    test: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn name_end(b: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < b.len() && b[end] != b'.' && b[end] != b'[' {
        end += 1;
    }
    end
}

fn index(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| format!("[{s}] is neither an index nor a quoted name"))
}

fn quoted(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("{text}: a path starts with $"))?;
        let b = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' if b.get(i + 1) == Some(&b'.') => {
                    let end = name_end(b, i + 2);
                    if end == i + 2 {
                        return Err(format!("{text}: '..' needs a field name"));
                    }
                    steps.push(Step::Descend(rest[i + 2..end].to_string()));
                    i = end;
                }
                b'.' => {
                    let end = name_end(b, i + 1);
                    match &rest[i + 1..end] {
                        "" => return Err(format!("{text}: an empty field name")),
                        "*" => steps.push(Step::Wildcard),
                        name => steps.push(Step::Field(name.to_string())),
                    }
                    i = end;
                }
                b'[' => {
                    let close = closing(rest, i).ok_or_else(|| format!("{text}: an unclosed ["))?;
                    let inner = rest[i + 1..close].trim();
                    steps.push(bracket(inner).map_err(|e| format!("{text}: {e}"))?);
                    i = close + 1;
                }
                _ => return Err(format!("{text}: unexpected {:?}", &rest[i..])),
            }
        }
        Ok(JsonPath {
            text: text.to_string(),
            steps,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// A definite path selects one value at most (no wildcard, union,
    /// slice, descent or filter).
    pub fn is_definite(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s, Step::Field(_) | Step::Index(_)))
    }

    /// A definite path's steps as field names and indexes only, with no
    /// negative index (what `ResultPath` may be).
    pub fn is_simple(&self) -> bool {
        self.steps.iter().all(|s| match s {
            Step::Field(_) => true,
            Step::Index(n) => *n >= 0,
            _ => false,
        })
    }

    /// What a definite path selects, borrowed (`None`: nothing, or the
    /// path is not definite).
    pub fn select_ref<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.steps.iter().try_fold(v, |v, step| match step {
            Step::Field(f) => v.get(f.as_str()),
            Step::Index(i) => v.as_array().and_then(|a| at(a, *i)),
            _ => None,
        })
    }

    /// What the path selects: the value (definite), or the list of matches
    /// (indefinite; empty when none). `None`: a definite path found nothing.
    pub fn select(&self, v: &Value) -> Option<Value> {
        let mut current: Vec<&Value> = vec![v];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in current {
                apply(step, v, &mut next);
            }
            current = next;
        }
        if self.is_definite() {
            current.first().map(|v| (*v).clone())
        } else {
            Some(Value::Array(current.into_iter().cloned().collect()))
        }
    }

    /// Set the value at a simple path in `target`, creating objects on the
    /// way (`ResultPath`). Fails where the path crosses a non-object.
    pub fn set(&self, target: &mut Value, value: Value) -> Result<(), String> {
        if self.steps.is_empty() {
            *target = value;
            return Ok(());
        }
        let mut at = target;
        let last = self.steps.len() - 1;
        for (n, step) in self.steps.iter().enumerate() {
            match step {
                Step::Field(f) => {
                    if at.is_null() {
                        *at = Value::Object(Default::default());
                    }
                    let o = at.as_object_mut().ok_or_else(|| {
                        format!(
                            "{}: the path crosses a value that is not an object",
                            self.text
                        )
                    })?;
                    if n == last {
                        o.insert(f.clone(), value);
                        return Ok(());
                    }
                    at = o.entry(f.clone()).or_insert(Value::Null);
                }
                Step::Index(i) => {
                    let a = at.as_array_mut().ok_or_else(|| {
                        format!(
                            "{}: the path crosses a value that is not an array",
                            self.text
                        )
                    })?;
                    let i = usize::try_from(*i)
                        .ok()
                        .filter(|i| *i < a.len())
                        .ok_or_else(|| format!("{}: index out of range", self.text))?;
                    if n == last {
                        a[i] = value;
                        return Ok(());
                    }
                    at = &mut a[i];
                }
                _ => return Err(format!("{}: not a simple path", self.text)),
            }
        }
        Ok(())
    }
}

/// The `]` closing the `[` at `open`, skipping quoted text and nested
/// brackets (filters hold `[`s of their own).
fn closing(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in s[open..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
        return filter(f.trim()).map(Step::Filter);
    }
    if inner.contains(':') && quoted(inner).is_none() {
        let parts: Vec<&str> = inner.split(':').collect();
        if parts.len() > 3 {
            return Err(format!("[{inner}]: a slice is [start:end:step]"));
        }
        let num = |s: &str| -> Result<Option<i64>, String> {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                index(s).map(Some)
            }
        };
        let step = match parts.get(2) {
            Some(s) => num(s)?.unwrap_or(1),
            None => 1,
        };
        if step <= 0 {
            return Err(format!("[{inner}]: the slice's step must be positive"));
        }
        return Ok(Step::Slice(num(parts[0])?, num(parts[1])?, step));
    }
    if inner.contains(',') {
        let keys = inner
            .split(',')
            .map(|k| match quoted(k) {
                Some(q) => Ok(Key::Field(q.to_string())),
                None => index(k).map(Key::Index),
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Step::Union(keys));
    }
    match quoted(inner) {
        Some(q) => Ok(Step::Field(q.to_string())),
        None => index(inner).map(Step::Index),
    }
}

fn filter(f: &str) -> Result<Filter, String> {
    let field_of = |s: &str| -> Result<Vec<String>, String> {
        let s = s.trim();
        let rest = s
            .strip_prefix('@')
            .ok_or_else(|| format!("filter {f}: the left side starts with @"))?;
        Ok(rest
            .split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect())
    };
    for (text, op) in [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if let Some((l, r)) = f.split_once(text) {
            let r = r.trim();
            let value = match quoted(r) {
                Some(q) => Value::String(q.to_string()),
                None => serde_json::from_str(r)
                    .map_err(|_| format!("filter {f}: {r} is not a value"))?,
            };
            return Ok(Filter {
                field: field_of(l)?,
                test: Some((op, value)),
            });
        }
    }
    Ok(Filter {
        field: field_of(f)?,
        test: None,
    })
}

fn at(a: &[Value], i: i64) -> Option<&Value> {
    let i = if i < 0 { a.len() as i64 + i } else { i };
    usize::try_from(i).ok().and_then(|i| a.get(i))
}

fn compare(a: &Value, op: Op, b: &Value) -> bool {
    use std::cmp::Ordering;
    let order = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => (a == b).then_some(Ordering::Equal),
    };
    match op {
        Op::Eq => order == Some(Ordering::Equal),
        Op::Ne => order != Some(Ordering::Equal),
        Op::Lt => order == Some(Ordering::Less),
        Op::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order == Some(Ordering::Greater),
        Op::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn children(v: &Value) -> Vec<&Value> {
    match v {
        Value::Object(o) => o.values().collect(),
        Value::Array(a) => a.iter().collect(),
        _ => Vec::new(),
    }
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(f) => out.extend(v.get(f.as_str())),
        Step::Index(i) => out.extend(v.as_array().and_then(|a| at(a, *i))),
        Step::Wildcard => out.extend(children(v)),
        Step::Union(keys) => {
            for k in keys {
                match k {
                    Key::Field(f) => out.extend(v.get(f.as_str())),
                    Key::Index(i) => out.extend(v.as_array().and_then(|a| at(a, *i))),
                }
            }
        }
        Step::Slice(start, end, step) => {
            if let Some(a) = v.as_array() {
                let len = a.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = start.map(norm).unwrap_or(0);
                let e = end.map(norm).unwrap_or(len);
                let mut i = s;
                while i < e {
                    out.push(&a[i as usize]);
                    match i.checked_add(*step) {
                        Some(next) => i = next,
                        None => break,
                    }
                }
            }
        }
        Step::Descend(f) => descend(f, v, out),
        Step::Filter(filter) => {
            for c in children(v) {
                let field = filter.field.iter().try_fold(c, |v, f| v.get(f.as_str()));
                let keep = match (&filter.test, field) {
                    (None, found) => found.is_some(),
                    (Some((op, value)), Some(found)) => compare(found, *op, value),
                    (Some(_), None) => false,
                };
                if keep {
                    out.push(c);
                }
            }
        }
    }
}

fn descend<'a>(f: &str, v: &'a Value, out: &mut Vec<&'a Value>) {
    if let Some(x) = v.get(f) {
        if v.is_object() {
            out.push(x);
        }
    }
    for c in children(v) {
        descend(f, c, out);
    }
}

#[cfg(test)]
mod tests {
    use super::JsonPath;
    use serde_json::{json, Value};

    fn sel(path: &str, v: &Value) -> Option<Value> {
        JsonPath::parse(path).unwrap().select(v)
    }

    #[test]
    fn paths_select_as_jayway_does() {
        let v = json!({"a": {"b": [1, 2, 3, 4]}, "items": [
            {"id": "x", "price": 5, "tags": ["t"]}, {"id": "y", "price": 20}],
            "weird key": 7});
        let table: &[(&str, Option<Value>)] = &[
            ("$", Some(v.clone())),
            ("$.a.b[1]", Some(json!(2))),
            ("$.a.b[-1]", Some(json!(4))),
            ("$['weird key']", Some(json!(7))),
            ("$.missing", None),
            ("$.a.b[1:3]", Some(json!([2, 3]))),
            ("$.a.b[::2]", Some(json!([1, 3]))),
            ("$.a.b[1::9223372036854775807]", Some(json!([2]))),
            ("$.a.b[0,2]", Some(json!([1, 3]))),
            ("$.items[*].id", Some(json!(["x", "y"]))),
            ("$.items.*.id", Some(json!(["x", "y"]))),
            ("$..id", Some(json!(["x", "y"]))),
            ("$.items[?(@.price > 10)].id", Some(json!(["y"]))),
            ("$.items[?(@.id == 'x')].price", Some(json!([5]))),
            ("$.items[?(@.tags)].id", Some(json!(["x"]))),
            (
                "$.items[?(@.price != 5)]",
                Some(json!([{"id": "y", "price": 20}])),
            ),
        ];
        for (path, want) in table {
            assert_eq!(&sel(path, &v), want, "{path}");
        }
    }

    #[test]
    fn bad_paths_are_refused() {
        for p in ["a.b", "$.", "$[", "$[x]", "$..", "$[1:2:0]"] {
            assert!(JsonPath::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn set_creates_objects_on_the_way() {
        let mut v = json!({"a": 1});
        JsonPath::parse("$.r.x")
            .unwrap()
            .set(&mut v, json!(2))
            .unwrap();
        assert_eq!(v, json!({"a": 1, "r": {"x": 2}}));
        JsonPath::parse("$").unwrap().set(&mut v, json!(3)).unwrap();
        assert_eq!(v, json!(3));
        let mut s = json!("text");
        assert!(JsonPath::parse("$.x")
            .unwrap()
            .set(&mut s, json!(1))
            .is_err());
    }
}
