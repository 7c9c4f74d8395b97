//! A state machine's definition (the Amazon States Language), checked once
//! when it is created: every problem is a diagnostic with AWS's code, a
//! message naming the state and field, and its location
//! (`/States/<name>/<field>`), so `CreateStateMachine` refuses with
//! `InvalidDefinition` and `ValidateStateMachineDefinition` lists them.
//!
//! A checked definition keeps each state's JSON as written (the
//! interpreter reads its fields) plus what the checks parsed: transitions,
//! retriers, catchers, branches.

use super::intrinsics;
use super::schema::{allowed, kind_of};
use crate::jsonpath::JsonPath;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The query language of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    JsonPath,
    Jsonata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    /// `JitterStrategy: FULL`.
    pub full_jitter: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    /// The catcher's JSON (`ResultPath`, `Output`, `Assign`).
    pub body: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    pub lang: Lang,
    /// The state's JSON as written.
    pub body: Map<String, Value>,
    pub next: Option<String>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// `Parallel`'s branches, or `Map`'s item processor (one).
    pub branches: Vec<Definition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub start_at: String,
    pub states: Arc<BTreeMap<String, State>>,
    pub lang: Lang,
    pub timeout_seconds: Option<u64>,
}

/// One problem: AWS's code, the message, where.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub message: String,
    pub location: String,
}

impl Diagnostic {
    /// As `CreateStateMachine`'s `InvalidDefinition` message puts it.
    pub fn to_message(&self) -> String {
        format!(
            "Invalid State Machine Definition: '{}: {} at {}'",
            self.code, self.message, self.location
        )
    }
}

struct Checker {
    out: Vec<Diagnostic>,
}

impl Checker {
    fn err(&mut self, code: &'static str, message: impl Into<String>, location: impl Into<String>) {
        self.out.push(Diagnostic {
            code,
            message: message.into(),
            location: location.into(),
        });
    }

    fn schema(&mut self, message: impl Into<String>, location: impl Into<String>) {
        self.err("SCHEMA_VALIDATION_FAILED", message, location);
    }

    fn lang(&mut self, v: Option<&Value>, outer: Lang, at: &str) -> Lang {
        match v {
            None => outer,
            Some(Value::String(s)) if s == "JSONata" => Lang::Jsonata,
            Some(Value::String(s)) if s == "JSONPath" => {
                if outer == Lang::Jsonata {
                    self.schema(
                        "A state cannot use JSONPath when the state machine uses JSONata",
                        format!("{at}/QueryLanguage"),
                    );
                }
                Lang::JsonPath
            }
            Some(_) => {
                self.schema(
                    "QueryLanguage must be JSONPath or JSONata",
                    format!("{at}/QueryLanguage"),
                );
                outer
            }
        }
    }

    /// A JSONPath-mode path field.
    fn path(&mut self, o: &Map<String, Value>, field: &str, at: &str, simple: bool) {
        match o.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(p)) => match JsonPath::parse(p) {
                Ok(jp) if simple && !jp.is_simple() => self.schema(
                    format!("The value for the field '{field}' must be a valid reference path"),
                    format!("{at}/{field}"),
                ),
                Ok(_) => {}
                Err(e) if p.starts_with("$$") || variable_path(p) => {
                    let _ = e;
                }
                Err(e) => self.schema(
                    format!("The value for the field '{field}' must be a valid JSONPath: {e}"),
                    format!("{at}/{field}"),
                ),
            },
            Some(_) => self.schema(
                format!("The value for the field '{field}' must be a STRING"),
                format!("{at}/{field}"),
            ),
        }
    }

    /// A payload template (`Parameters`, `ResultSelector`, `ItemSelector`):
    /// every `.$` key holds a path or an intrinsic call.
    fn template(&mut self, v: &Value, at: &str) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let here = format!("{at}/{k}");
                    if k.ends_with(".$") {
                        match v.as_str() {
                            Some(s) if intrinsics::is_call(s) => {
                                if let Err(e) = intrinsics::parse(s) {
                                    self.schema(
                                        format!("The value for the field '{k}' must be a valid intrinsic function call: {e}"),
                                        here,
                                    );
                                }
                            }
                            Some(s) if s.starts_with("$$") || variable_path(s) => {}
                            Some(s) => {
                                if let Err(e) = JsonPath::parse(s) {
                                    self.schema(
                                        format!("The value for the field '{k}' must be a valid JSONPath: {e}"),
                                        here,
                                    );
                                }
                            }
                            None => self.schema(
                                format!("The value for the field '{k}' must be a STRING that contains a JSONPath or an intrinsic function"),
                                here,
                            ),
                        }
                    } else {
                        self.template(v, &here);
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.template(v, &format!("{at}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// JSONata mode: every `{% ... %}` string parses.
    fn jsonata(&mut self, v: &Value, at: &str) {
        match v {
            Value::String(s) => {
                if let Some(expr) = jsonata_text(s) {
                    if let Err(e) = crate::jsonata::Expression::parse(expr) {
                        self.schema(format!("The JSONata expression is not valid: {e}"), at);
                    }
                }
            }
            Value::Object(o) => {
                for (k, v) in o {
                    self.jsonata(v, &format!("{at}/{k}"));
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.jsonata(v, &format!("{at}[{i}]"));
                }
            }
            _ => {}
        }
    }

    fn errors_list(&mut self, v: Option<&Value>, at: &str) -> Vec<String> {
        let list: Vec<String> = v
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if list.is_empty() {
            self.schema(
                "The field 'ErrorEquals' is required and must be a non-empty list of strings",
                format!("{at}/ErrorEquals"),
            );
        }
        if list.iter().any(|e| e == "States.ALL") && list.len() > 1 {
            self.schema(
                "States.ALL must appear alone in ErrorEquals",
                format!("{at}/ErrorEquals"),
            );
        }
        list
    }

    fn retry(&mut self, v: Option<&Value>, at: &str) -> Vec<Retrier> {
        let mut out = Vec::new();
        let Some(v) = v else { return out };
        let Some(list) = v.as_array() else {
            self.schema("The field 'Retry' must be a list", format!("{at}/Retry"));
            return out;
        };
        for (i, r) in list.iter().enumerate() {
            let here = format!("{at}/Retry[{i}]");
            let o = r.as_object().cloned().unwrap_or_default();
            let num = |k: &str| o.get(k).and_then(Value::as_f64);
            let retrier = Retrier {
                error_equals: self.errors_list(o.get("ErrorEquals"), &here),
                interval_seconds: num("IntervalSeconds").unwrap_or(1.0),
                max_attempts: num("MaxAttempts").unwrap_or(3.0).max(0.0) as u32,
                backoff_rate: num("BackoffRate").unwrap_or(2.0),
                max_delay_seconds: num("MaxDelaySeconds"),
                full_jitter: o.get("JitterStrategy").and_then(Value::as_str) == Some("FULL"),
            };
            if retrier.interval_seconds < 1.0 || retrier.backoff_rate < 1.0 {
                self.schema(
                    "IntervalSeconds must be at least 1 and BackoffRate at least 1.0",
                    here,
                );
            }
            out.push(retrier);
        }
        out
    }

    fn catch(&mut self, v: Option<&Value>, at: &str, names: &BTreeSet<String>) -> Vec<Catcher> {
        let mut out = Vec::new();
        let Some(v) = v else { return out };
        let Some(list) = v.as_array() else {
            self.schema("The field 'Catch' must be a list", format!("{at}/Catch"));
            return out;
        };
        for (i, c) in list.iter().enumerate() {
            let here = format!("{at}/Catch[{i}]");
            let o = c.as_object().cloned().unwrap_or_default();
            let error_equals = self.errors_list(o.get("ErrorEquals"), &here);
            let next = o.get("Next").and_then(Value::as_str).unwrap_or_default();
            if !names.contains(next) {
                self.err(
                    "MISSING_TRANSITION_TARGET",
                    format!("Missing 'Next' target: {next}"),
                    format!("{here}/Next"),
                );
            }
            self.path(&o, "ResultPath", &here, true);
            out.push(Catcher {
                error_equals,
                next: next.to_string(),
                body: o,
            });
        }
        out
    }

    fn machine(&mut self, v: &Value, outer: Lang, at: &str) -> Option<Definition> {
        let Some(o) = v.as_object() else {
            self.schema("A state machine must be a JSON object", at);
            return None;
        };
        let lang = self.lang(o.get("QueryLanguage"), outer, at);
        let start_at = match o.get("StartAt").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => {
                self.schema("The field 'StartAt' is required", format!("{at}/StartAt"));
                String::new()
            }
        };
        let Some(states) = o.get("States").and_then(Value::as_object) else {
            self.schema("The field 'States' is required", format!("{at}/States"));
            return None;
        };
        let names: BTreeSet<String> = states.keys().cloned().collect();
        if !start_at.is_empty() && !names.contains(&start_at) {
            self.err(
                "MISSING_TRANSITION_TARGET",
                format!("Missing 'Next' target: {start_at}"),
                format!("{at}/StartAt"),
            );
        }
        let mut parsed = BTreeMap::new();
        let mut terminal = false;
        for (name, s) in states {
            let here = format!("{at}/States/{name}");
            if name.is_empty() || name.chars().count() > 80 {
                self.err(
                    "INVALID_STATE_NAME",
                    "A state name must be 1 to 80 characters",
                    &here,
                );
            }
            if let Some(state) = self.state(name, s, lang, &here, &names) {
                terminal |= state.next.is_none() && state.kind != Kind::Choice;
                parsed.insert(name.clone(), state);
            }
        }
        if !terminal && !parsed.is_empty() {
            self.err(
                "MISSING_END_STATE",
                "The workflow does not have a terminal state",
                format!("{at}/States"),
            );
        }
        // Every state is reachable from StartAt.
        let mut seen = BTreeSet::new();
        let mut todo = vec![start_at.clone()];
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(s) = parsed.get(&n) {
                todo.extend(s.next.clone());
                todo.extend(s.catch.iter().map(|c| c.next.clone()));
                if s.kind == Kind::Choice {
                    for c in s
                        .body
                        .get("Choices")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        todo.extend(c.get("Next").and_then(Value::as_str).map(str::to_string));
                    }
                    todo.extend(
                        s.body
                            .get("Default")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    );
                }
            }
        }
        for name in parsed.keys() {
            if !seen.contains(name) {
                self.schema(
                    format!("State '{name}' is not reachable"),
                    format!("{at}/States/{name}"),
                );
            }
        }
        let timeout_seconds = o.get("TimeoutSeconds").and_then(Value::as_u64);
        Some(Definition {
            start_at,
            states: Arc::new(parsed),
            lang,
            timeout_seconds,
        })
    }

    fn state(
        &mut self,
        name: &str,
        v: &Value,
        outer: Lang,
        at: &str,
        names: &BTreeSet<String>,
    ) -> Option<State> {
        let Some(o) = v.as_object() else {
            self.schema(format!("State '{name}' must be an object"), at);
            return None;
        };
        let Some(kind) = o.get("Type").and_then(Value::as_str).and_then(kind_of) else {
            self.schema(
                "The field 'Type' must be one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map",
                format!("{at}/Type"),
            );
            return None;
        };
        let lang = self.lang(o.get("QueryLanguage"), outer, at);
        let fields = allowed(kind, lang);
        for k in o.keys() {
            if !fields.contains(&k.as_str()) {
                let why = if allowed(kind, Lang::JsonPath).contains(&k.as_str())
                    || allowed(kind, Lang::Jsonata).contains(&k.as_str())
                {
                    match lang {
                        Lang::Jsonata => " when the QueryLanguage is JSONata",
                        Lang::JsonPath => " when the QueryLanguage is JSONPath",
                    }
                } else {
                    ""
                };
                self.schema(
                    format!("The field \"{k}\" is not supported by Step Functions{why}"),
                    format!("{at}/{k}"),
                );
            }
        }
        // Transitions.
        let next = o.get("Next").and_then(Value::as_str).map(str::to_string);
        let end = o.get("End").and_then(Value::as_bool).unwrap_or(false);
        let transitions = fields.contains(&"Next");
        if transitions {
            match (&next, end) {
                (Some(_), true) => self.schema(
                    "A state cannot have both 'Next' and 'End'",
                    format!("{at}/Next"),
                ),
                (None, false) => self.schema("The field 'Next' or 'End' is required", at),
                _ => {}
            }
            if let Some(n) = &next {
                if !names.contains(n) {
                    self.err(
                        "MISSING_TRANSITION_TARGET",
                        format!("Missing 'Next' target: {n}"),
                        format!("{at}/Next"),
                    );
                }
            }
        }
        match lang {
            Lang::JsonPath => {
                self.path(o, "InputPath", at, false);
                self.path(o, "OutputPath", at, false);
                self.path(o, "ResultPath", at, true);
                self.path(o, "ItemsPath", at, false);
                for t in ["Parameters", "ResultSelector", "ItemSelector"] {
                    if let Some(v) = o.get(t) {
                        self.template(v, &format!("{at}/{t}"));
                    }
                }
                if let Some(v) = o.get("Assign") {
                    self.template(v, &format!("{at}/Assign"));
                }
            }
            Lang::Jsonata => {
                let fields: Map<String, Value> = o
                    .iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "Branches" | "ItemProcessor" | "Iterator" | "Choices"
                        )
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.jsonata(&Value::Object(fields), at);
            }
        }
        let retry = self.retry(o.get("Retry"), at);
        let catch = self.catch(o.get("Catch"), at, names);
        let mut branches = Vec::new();
        match kind {
            Kind::Task => {
                for f in ["TimeoutSeconds", "HeartbeatSeconds"] {
                    match o.get(f) {
                        None => {}
                        Some(v) if v.as_u64().is_some_and(|n| n > 0) => {}
                        Some(Value::String(s))
                            if lang == Lang::Jsonata && jsonata_text(s).is_some() => {}
                        Some(_) => self.schema(
                            format!("The field '{f}' must be a positive integer"),
                            format!("{at}/{f}"),
                        ),
                    }
                }
                self.resource(o, lang, at);
            }
            Kind::Fail => {
                for f in ["ErrorPath", "CausePath"] {
                    if let Some(Value::String(p)) = o.get(f) {
                        let bad = if intrinsics::is_call(p) {
                            intrinsics::parse(p).err()
                        } else if p.starts_with("$$") || variable_path(p) {
                            None
                        } else {
                            JsonPath::parse(p).err()
                        };
                        if let Some(e) = bad {
                            self.schema(
                                format!("The value for the field '{f}' must be a valid path or intrinsic function: {e}"),
                                format!("{at}/{f}"),
                            );
                        }
                    }
                }
            }
            Kind::Choice => self.choices(o, lang, at, names),
            Kind::Wait => {
                let n = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                    .iter()
                    .filter(|k| o.contains_key(**k))
                    .count();
                if n != 1 {
                    self.schema(
                        "A Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath",
                        at,
                    );
                }
            }
            Kind::Parallel => {
                let list = o.get("Branches").and_then(Value::as_array);
                if list.is_none_or(|l| l.is_empty()) {
                    self.schema("The field 'Branches' is required", format!("{at}/Branches"));
                }
                for (i, b) in list.into_iter().flatten().enumerate() {
                    if let Some(d) = self.machine(b, lang, &format!("{at}/Branches[{i}]")) {
                        branches.push(d);
                    }
                }
            }
            Kind::Map => {
                let (field, p) = match (o.get("ItemProcessor"), o.get("Iterator")) {
                    (Some(p), _) => ("ItemProcessor", Some(p)),
                    (None, Some(p)) => ("Iterator", Some(p)),
                    _ => ("ItemProcessor", None),
                };
                match p {
                    Some(p) => {
                        if let Some(d) = self.machine(p, lang, &format!("{at}/{field}")) {
                            branches.push(d);
                        }
                    }
                    None => self.schema(
                        "The field 'ItemProcessor' is required",
                        format!("{at}/ItemProcessor"),
                    ),
                }
            }
            Kind::Pass | Kind::Succeed => {}
        }
        Some(State {
            name: name.to_string(),
            kind,
            lang,
            body: o.clone(),
            next,
            retry,
            catch,
            branches,
        })
    }

    fn resource(&mut self, o: &Map<String, Value>, lang: Lang, at: &str) {
        match o.get("Resource") {
            Some(Value::String(r)) if r.starts_with("arn:") => {}
            Some(Value::String(r)) if lang == Lang::Jsonata && jsonata_text(r).is_some() => {}
            _ => self.err(
                "INVALID_RESOURCE",
                "The field 'Resource' must be an ARN",
                format!("{at}/Resource"),
            ),
        }
    }

    fn choices(&mut self, o: &Map<String, Value>, lang: Lang, at: &str, names: &BTreeSet<String>) {
        let Some(list) = o
            .get("Choices")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            self.schema(
                "The field 'Choices' is required and must be a non-empty list",
                format!("{at}/Choices"),
            );
            return;
        };
        for (i, c) in list.iter().enumerate() {
            let here = format!("{at}/Choices[{i}]");
            match c.get("Next").and_then(Value::as_str) {
                Some(n) if names.contains(n) => {}
                Some(n) => self.err(
                    "MISSING_TRANSITION_TARGET",
                    format!("Missing 'Next' target: {n}"),
                    format!("{here}/Next"),
                ),
                None => self.schema("The field 'Next' is required", format!("{here}/Next")),
            }
            match lang {
                Lang::Jsonata => match c.get("Condition") {
                    Some(v) => self.jsonata(v, &format!("{here}/Condition")),
                    None => self.schema(
                        "The field 'Condition' is required",
                        format!("{here}/Condition"),
                    ),
                },
                Lang::JsonPath => {
                    if let Err(e) = super::choice::Rule::parse(c) {
                        self.schema(e, here);
                    }
                }
            }
        }
        if let Some(d) = o.get("Default").and_then(Value::as_str) {
            if !names.contains(d) {
                self.err(
                    "MISSING_TRANSITION_TARGET",
                    format!("Missing 'Next' target: {d}"),
                    format!("{at}/Default"),
                );
            }
        }
    }
}

/// `$name` or `$name.path`: a workflow variable (not `$`, `$.` or `$$`).
pub fn variable_path(p: &str) -> bool {
    p.strip_prefix('$')
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

/// The expression inside `{% ... %}`, if `s` is one.
pub fn jsonata_text(s: &str) -> Option<&str> {
    s.trim()
        .strip_prefix("{%")
        .and_then(|r| r.strip_suffix("%}"))
        .map(str::trim)
}

/// Check a definition's text: the definition, or every problem found.
pub fn parse(text: &str) -> Result<Definition, Vec<Diagnostic>> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        vec![Diagnostic {
            code: "INVALID_JSON_DESCRIPTION",
            message: format!("The definition is not valid JSON: {e}"),
            location: "/".into(),
        }]
    })?;
    let mut c = Checker { out: Vec::new() };
    let top = v.as_object().cloned().unwrap_or_default();
    for k in top.keys() {
        if ![
            "Comment",
            "StartAt",
            "States",
            "TimeoutSeconds",
            "Version",
            "QueryLanguage",
        ]
        .contains(&k.as_str())
        {
            c.schema(
                format!("The field \"{k}\" is not supported by Step Functions"),
                format!("/{k}"),
            );
        }
    }
    let d = c.machine(&v, Lang::JsonPath, "");
    match d {
        Some(d) if c.out.is_empty() => Ok(d),
        _ => Err(c.out),
    }
}

/// Check one state (`TestState`): the state as a one-state machine whose
/// transitions may point anywhere.
pub fn parse_state(text: &str) -> Result<State, Vec<Diagnostic>> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        vec![Diagnostic {
            code: "INVALID_JSON_DESCRIPTION",
            message: format!("The definition is not valid JSON: {e}"),
            location: "/".into(),
        }]
    })?;
    let mut names = BTreeSet::new();
    let mut collect = |n: Option<&Value>| {
        if let Some(n) = n.and_then(Value::as_str) {
            names.insert(n.to_string());
        }
    };
    collect(v.get("Next"));
    collect(v.get("Default"));
    for c in v
        .get("Choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect(c.get("Next"));
    }
    for c in v
        .get("Catch")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect(c.get("Next"));
    }
    let mut c = Checker { out: Vec::new() };
    let s = c.state("TestState", &v, Lang::JsonPath, "/State", &names);
    match s {
        Some(s) if c.out.is_empty() => Ok(s),
        _ => Err(c.out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(Diagnostic::to_message).collect(),
        }
    }

    #[test]
    fn good_definitions_pass() {
        for text in [
            r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}"#,
            r#"{"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": "{% $states.input.x %}", "Next": "B"}, "B": {"Type": "Succeed"}}}"#,
            r#"{"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "D"}], "Default": "D"}, "D": {"Type": "Succeed"}}}"#,
            r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}}]}}}"#,
            r#"{"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemsPath": "$.items", "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "End": true}}}}}}"#,
            r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"Payload.$": "States.Format('{}', $.a)"}, "Retry": [{"ErrorEquals": ["States.ALL"]}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "End": true}, "F": {"Type": "Fail", "Error": "E"}}}"#,
        ] {
            assert_eq!(problems(text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn bad_definitions_name_the_state_and_field() {
        let table = [
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}"#, "MISSING_TRANSITION_TARGET: Missing 'Next' target: Nope at /States/A/Next"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Pass"}}}"#, "The field 'Next' or 'End' is required at /States/A"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Colour": 1}}}"#, "The field \"Colour\" is not supported by Step Functions at /States/A/Colour"),
            (r#"{"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "InputPath": "$.x"}}}"#, "not supported by Step Functions when the QueryLanguage is JSONata at /States/A/InputPath"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "End": true, "Resource": "lambda"}}}"#, "INVALID_RESOURCE"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Parameters": {"x.$": "States.Nope()"}}}}"#, "at /States/A/Parameters/x.$"),
            (r#"{"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Output": "{% $$ + %}"}}}"#, "The JSONata expression is not valid"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "B": {"Type": "Pass", "End": true}}}"#, "State 'B' is not reachable"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "A"}}}"#, "MISSING_END_STATE"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Wait", "End": true}}}"#, "exactly one of Seconds"),
            ("{", "INVALID_JSON_DESCRIPTION"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:lambda:x", "TimeoutSeconds": -1, "End": true}}}"#, "'TimeoutSeconds' must be a positive integer at /States/A/TimeoutSeconds"),
            (r#"{"StartAt": "A", "States": {"A": {"Type": "Fail", "ErrorPath": "States.Nope()"}}}"#, "at /States/A/ErrorPath"),
        ];
        for (text, want) in table {
            let p = problems(text);
            assert!(p.iter().any(|m| m.contains(want)), "{text}: {p:?}");
        }
    }
}
