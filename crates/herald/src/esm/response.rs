//! Lambda's partial batch response (`ReportBatchItemFailures`): which
//! items the function reported failed, with Lambda's rules for what counts
//! as a success (empty or null lists and responses) and what fails the
//! whole batch (empty, null, unknown or misnamed identifiers, anything that
//! is not an `EventResponse`).

use serde_json::Value;

/// A partial batch response Lambda treats as a whole-batch failure (empty,
/// null or unknown identifier, wrong key, not an `EventResponse`).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Lambda's partial batch response: the indexes of the reported items, or
/// `Err` when the response is malformed (the whole batch failed).
pub fn reported_failures(payload: &[u8], ids: &[&str]) -> Result<Vec<usize>, Malformed> {
    let text = std::str::from_utf8(payload).map_err(|_| Malformed)?.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text).map_err(|_| Malformed)?;
    let list = match &v {
        Value::Null => return Ok(Vec::new()),
        Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(l)) => l,
            Some(_) => return Err(Malformed),
        },
        _ => return Err(Malformed),
    };
    let mut out = Vec::new();
    for item in list {
        let id = match item.get("itemIdentifier") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => return Err(Malformed),
        };
        let i = ids.iter().position(|x| *x == id).ok_or(Malformed)?;
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_responses_follow_lambdas_rules() {
        let ids = ["a", "b", "c"];
        for ok in [
            "",
            "null",
            "{}",
            "{\"batchItemFailures\": []}",
            "{\"batchItemFailures\": null}",
        ] {
            assert_eq!(reported_failures(ok.as_bytes(), &ids), Ok(vec![]), "{ok}");
        }
        assert_eq!(
            reported_failures(
                br#"{"batchItemFailures":[{"itemIdentifier":"c"},{"itemIdentifier":"b"}]}"#,
                &ids
            ),
            Ok(vec![2, 1])
        );
        for bad in [
            "not json",
            "\"done\"",
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemId":"a"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
            r#"{"batchItemFailures":"a"}"#,
        ] {
            assert_eq!(
                reported_failures(bad.as_bytes(), &ids),
                Err(Malformed),
                "{bad}"
            );
        }
    }
}
