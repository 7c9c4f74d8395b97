//! Event patterns: any text is a pattern or a validation error; and for a
//! pattern and an event, the compiled many-pattern matcher (from a tree and
//! straight from JSON text) agrees with the one-pattern evaluator.
#![no_main]

use herald_pattern::{Matcher, Pattern, Scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (pattern, event) = input;
    let Ok(p) = Pattern::parse(pattern) else {
        return;
    };
    let Ok(event) = serde_json::from_str::<serde_json::Value>(event) else {
        return;
    };
    let expected = p.matches(&event);
    let mut m = Matcher::new();
    m.add(1u8, &p);
    assert_eq!(
        m.matches(&event),
        if expected { vec![1] } else { vec![] },
        "tree"
    );
    // The text as the parser reads it: one value per key.
    let text = serde_json::to_vec(&event).expect("a value serializes");
    let mut out = Vec::new();
    m.matches_json_into(&text, &mut Scratch::default(), &mut out)
        .expect("valid JSON");
    assert_eq!(out, if expected { vec![1] } else { vec![] }, "text");
    assert!(m.remove(&1));
    assert!(m.matches(&event).is_empty());
});
