//! Reading an event's leaf values by field path (the reference evaluator's
//! walk), with arrays "crushed": an array's elements are values of the
//! array's own path, and the fields of objects inside an array continue that
//! path. (The matcher walks by its trie of field names instead.)

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
