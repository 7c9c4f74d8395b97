//! The conformance tables: `data/matches.json` (pattern, event, expected) with
//! the examples of AWS's EventBridge and Lambda filtering documentation and edge
//! cases for every operator, and `data/invalid.json` (patterns that must be
//! refused, with a part of the message). Each case runs through the reference
//! evaluator and through a many-pattern [`Matcher`] holding every pattern of
//! the table at once.

use herald_pattern::{Matcher, Pattern};
use serde_json::Value;

/// Every case of the tables `data/<prefix>*.json`.
fn table(prefix: &str) -> Vec<Value> {
    let dir = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut cases = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".json")
        })
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let list: Vec<Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cases.extend(list);
    }
    cases
}

fn pattern_of(case: &Value) -> Result<Pattern, String> {
    let text = case["pattern"].to_string();
    Pattern::parse(&text).map_err(|e| format!("refused: {}: {e}", case["name"]))
}

#[test]
fn every_documented_and_edge_case_matches_as_expected() {
    let cases = table("matches");
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut matcher = Matcher::new();
    let patterns: Vec<Option<Pattern>> = cases
        .iter()
        .map(|case| pattern_of(case).map_err(|e| failures.push(e)).ok())
        .collect();
    for (i, p) in patterns.iter().enumerate() {
        if let Some(p) = p {
            matcher.add(i, p);
        }
    }
    let mut scratch = matcher.scratch();
    for (i, case) in cases.iter().enumerate() {
        let Some(pattern) = &patterns[i] else {
            continue;
        };
        let mut expected = case["matches"].as_bool().expect("matches is a boolean");
        // A documented deviation from AWS: Herald answers the opposite, and
        // this table says so (flip the flag when the deviation is removed).
        if case.get("herald_deviation").is_some() {
            expected = !expected;
        }
        let event = &case["event"];
        if pattern.matches(event) != expected {
            failures.push(format!("evaluator: {} (expected {expected})", case["name"]));
        }
        // The matcher holds every pattern: this event must select this case's
        // pattern exactly when the evaluator does.
        let mut out = Vec::new();
        matcher.matches_into(event, &mut scratch, &mut out);
        if out.contains(&i) != expected {
            failures.push(format!("matcher: {} (expected {expected})", case["name"]));
        }
        let mut from_text = Vec::new();
        matcher
            .matches_json_into(event.to_string().as_bytes(), &mut scratch, &mut from_text)
            .unwrap();
        from_text.sort();
        out.sort();
        if from_text != out {
            failures.push(format!("matcher from JSON text: {}", case["name"]));
        }
        // And it agrees with the evaluator on every other pattern too.
        for (j, other) in patterns.iter().enumerate() {
            let Some(other) = other else { continue };
            if out.contains(&j) != other.matches(event) {
                failures.push(format!(
                    "matcher and evaluator disagree: pattern of {} on the event of {}",
                    cases[j]["name"], case["name"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_invalid_pattern_is_refused_naming_the_offender() {
    let cases = table("invalid");
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let text = match case.get("pattern_text") {
            Some(Value::String(t)) => t.clone(),
            _ => case["pattern"].to_string(),
        };
        let want = case["error_contains"].as_str().unwrap();
        match Pattern::parse(&text) {
            Ok(_) => failures.push(format!("accepted: {} ({text})", case["name"])),
            Err(e) if !e.to_string().contains(want) => failures.push(format!(
                "{}: the message does not name '{want}': {e}",
                case["name"]
            )),
            Err(e) => assert!(e
                .to_string()
                .starts_with("Event pattern is not valid. Reason: ")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn limits_on_size_and_alternatives() {
    let long = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(5000));
    assert!(Pattern::parse(&long)
        .unwrap_err()
        .to_string()
        .contains("limit is 4096"));
    // Each field below holds an $or of two: 8 fields make 256 alternatives
    // (the limit), 9 make 512 (refused).
    let fields = |n: usize| {
        let f: Vec<String> = (0..n)
            .map(|i| format!(r#""f{i}": {{"$or": [{{"x": [1]}}, {{"y": [2]}}]}}"#))
            .collect();
        format!("{{{}}}", f.join(","))
    };
    assert!(Pattern::parse(&fields(8)).is_ok());
    let err = Pattern::parse(&fields(9)).unwrap_err().to_string();
    assert!(err.contains("$or") && err.contains("256"), "{err}");
}
