//! Reading an event's leaf values by field path, with arrays "crushed": an
//! array's elements are values of the array's own path, and the fields of
//! objects inside an array continue that path.

use crate::test::Leaf;
use serde_json::Value;

/// The leaf values at `path` (the reference evaluator's walk).
pub fn values_at<'a>(event: &'a Value, path: &[String]) -> Vec<Leaf<'a>> {
    let mut out = Vec::new();
    collect(event, path, &mut out);
    out
}

fn collect<'a>(v: &'a Value, path: &[String], out: &mut Vec<Leaf<'a>>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, path, out)),
        Value::Object(o) => {
            if let Some((first, rest)) = path.split_first() {
                if let Some(child) = o.get(first) {
                    collect(child, rest, out);
                }
            }
        }
        scalar => {
            if path.is_empty() {
                out.extend(Leaf::of(scalar));
            }
        }
    }
}

/// The separator of path keys: a field name may hold `.`, never NUL in
/// practice (and a NUL in a name only risks a false match across two names
/// that differ exactly there).
pub const SEP: char = '\0';

/// Join a path into a key.
pub fn key(path: &[String]) -> String {
    path.join(&SEP.to_string())
}

/// Call `f(path_key, leaf)` for every leaf of `event` whose path `wanted`
/// accepts. `wanted(prefix_key)` is asked before descending into an object
/// field, so subtrees no pattern names are skipped.
pub fn walk<'a>(
    event: &'a Value,
    wanted: &impl Fn(&str) -> bool,
    f: &mut impl FnMut(&str, Leaf<'a>),
) {
    let mut path = String::new();
    walk_in(event, &mut path, wanted, f);
}

fn walk_in<'a>(
    v: &'a Value,
    path: &mut String,
    wanted: &impl Fn(&str) -> bool,
    f: &mut impl FnMut(&str, Leaf<'a>),
) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk_in(i, path, wanted, f)),
        Value::Object(o) => {
            let len = path.len();
            for (k, child) in o {
                if len > 0 {
                    path.push(SEP);
                }
                path.push_str(k);
                if wanted(path) {
                    walk_in(child, path, wanted, f);
                }
                path.truncate(len);
            }
        }
        scalar => {
            if !path.is_empty() {
                if let Some(leaf) = Leaf::of(scalar) {
                    f(path, leaf);
                }
            }
        }
    }
}
