//! The many-pattern matcher agrees with the one-pattern-at-a-time evaluator on
//! random patterns and events, before and after patterns are removed.

use herald_pattern::{Matcher, Pattern};
use serde_json::{json, Value};

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FIELDS: &[&str] = &["a", "b", "c"];
const STRINGS: &[&str] = &[
    "",
    "x",
    "xy",
    "Xy",
    "yx",
    "abc",
    "10.0.0.7",
    "2001:db8::1",
    "a*b",
    "ÄÖ",
];
const NUMBERS: &[f64] = &[0.0, 1.0, 1.5, 300.0, -2.0, 1e9];

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0..=3 => json!(rng.pick(STRINGS)),
        4 | 5 => {
            let n = *rng.pick(NUMBERS);
            if n.fract() == 0.0 && rng.below(2) == 0 {
                json!(n as i64)
            } else {
                json!(n)
            }
        }
        6 => json!(rng.below(2) == 0),
        _ => Value::Null,
    }
}

fn event(rng: &mut Rng, depth: usize) -> Value {
    let mut obj = serde_json::Map::new();
    for f in FIELDS {
        if rng.below(3) == 0 {
            continue;
        }
        let v = match rng.below(6) {
            0 if depth < 2 => event(rng, depth + 1),
            1 => Value::Array((0..rng.below(3)).map(|_| scalar(rng)).collect()),
            2 if depth < 2 => json!([event(rng, depth + 1), scalar(rng)]),
            _ => scalar(rng),
        };
        obj.insert(f.to_string(), v);
    }
    Value::Object(obj)
}

fn test(rng: &mut Rng) -> Value {
    let s = || STRINGS;
    match rng.below(16) {
        0..=3 => scalar(rng),
        4 => json!({"prefix": rng.pick(s())}),
        5 => json!({"suffix": {"equals-ignore-case": rng.pick(s())}}),
        6 => json!({"equals-ignore-case": rng.pick(s())}),
        7 => json!({"wildcard": rng.pick(&["*", "x*", "*y", "a*c", "*b*"])}),
        8 => json!({"anything-but": rng.pick(s())}),
        9 => json!({"anything-but": [rng.pick(NUMBERS), rng.pick(NUMBERS)]}),
        10 => json!({"anything-but": {"prefix": rng.pick(&["x", "a", "1"])}}),
        11 => json!({"numeric": [">=", rng.pick(NUMBERS), "<", 1e10]}),
        12 => json!({"numeric": ["=", rng.pick(NUMBERS)]}),
        13 => json!({"exists": rng.below(2) == 0}),
        14 => json!({"cidr": rng.pick(&["10.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"])}),
        _ => json!({"prefix": {"equals-ignore-case": rng.pick(s())}}),
    }
}

fn pattern(rng: &mut Rng, depth: usize) -> Value {
    let mut obj = serde_json::Map::new();
    let n = 1 + rng.below(2);
    for _ in 0..n {
        let f = rng.pick(FIELDS).to_string();
        let v = if depth < 1 && rng.below(4) == 0 {
            pattern(rng, depth + 1)
        } else {
            Value::Array((0..1 + rng.below(2)).map(|_| test(rng)).collect())
        };
        obj.insert(f, v);
    }
    if depth == 0 && rng.below(5) == 0 {
        obj.insert("$or".into(), json!([pattern(rng, 1), pattern(rng, 1)]));
    }
    Value::Object(obj)
}

#[test]
fn matcher_agrees_with_the_evaluator() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut patterns = Vec::new();
        while patterns.len() < 150 {
            if let Ok(p) = Pattern::from_value(&pattern(&mut rng, 0)) {
                patterns.push(p);
            }
        }
        let mut matcher = Matcher::new();
        for (i, p) in patterns.iter().enumerate() {
            matcher.add(i, p);
        }
        let mut scratch = matcher.scratch();
        let mut matched = 0usize;
        let mut check = |matcher: &Matcher<usize>,
                         scratch: &mut _,
                         live: &dyn Fn(usize) -> bool,
                         rng: &mut Rng| {
            for _ in 0..300 {
                let e = event(rng, 0);
                let mut got = Vec::new();
                matcher.matches_into(&e, scratch, &mut got);
                got.sort();
                let want: Vec<usize> = (0..patterns.len())
                    .filter(|i| live(*i) && patterns[*i].matches(&e))
                    .collect();
                assert_eq!(got, want, "seed {seed}, event {e}");
                // Straight from the JSON text: the same answer.
                let mut from_text = Vec::new();
                matcher
                    .matches_json_into(e.to_string().as_bytes(), scratch, &mut from_text)
                    .unwrap();
                from_text.sort();
                assert_eq!(from_text, want, "seed {seed}, event text {e}");
                matched += got.len();
            }
        };
        check(&matcher, &mut scratch, &|_| true, &mut rng);
        // Remove every other pattern (enough to trigger a rebuild), then again.
        for i in (0..patterns.len()).step_by(2) {
            assert!(matcher.remove(&i));
        }
        assert!(!matcher.remove(&0));
        check(&matcher, &mut scratch, &|i| i % 2 == 1, &mut rng);
        // The random mix must exercise both answers, not only "no match".
        let pairs = 300 * 150 + 300 * 75;
        assert!(
            matched > pairs / 50 && matched < pairs / 2,
            "seed {seed}: {matched} of {pairs} matched"
        );
    }
}
