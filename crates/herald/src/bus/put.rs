//! `PutEvents`: each entry checked as EventBridge checks it (a bad entry
//! fails alone, with AWS's `ErrorCode` and `ErrorMessage`), the good ones
//! turned into EventBridge's event and appended to the log together; the
//! answer comes once they are durable.

use super::log::NewEvent;
use super::spec::bus_name;
use super::EventBuses;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Entries per request.
pub const MAX_ENTRIES: usize = 10;
/// The request size limit, counted as EventBridge counts an entry: its
/// `Source`, `DetailType`, `Detail` and `Resources` in UTF-8 bytes, plus 14
/// for a `Time`.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Why the whole request was refused.
#[derive(Debug)]
pub enum PutError {
    /// AWS's `ValidationException`.
    Invalid(String),
    /// The log could not take the events.
    Log(String),
}

/// The size EventBridge counts for an entry.
pub fn entry_size(e: &Value) -> usize {
    let s = |k: &str| e.get(k).and_then(Value::as_str).map_or(0, str::len);
    let resources: usize = e.get("Resources").and_then(Value::as_array).map_or(0, |r| {
        r.iter().filter_map(Value::as_str).map(str::len).sum()
    });
    s("Source")
        + s("DetailType")
        + s("Detail")
        + resources
        + if e.get("Time").is_some() { 14 } else { 0 }
}

/// An entry's `Time`: epoch seconds (how botocore sends a timestamp);
/// `None` when absent or unreadable (then: now).
fn entry_time(e: &Value) -> Option<f64> {
    match e.get("Time")? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    }
}

impl EventBuses {
    /// Put `entries` (the request's `Entries`); AWS's answer.
    pub async fn put_events(&self, entries: &[Value]) -> Result<Value, PutError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(PutError::Invalid(format!(
                "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and {MAX_ENTRIES}"
            )));
        }
        if entries.iter().map(entry_size).sum::<usize>() > MAX_REQUEST_BYTES {
            return Err(PutError::Invalid(
                "Total size of the entries in the request is over the limit.".into(),
            ));
        }
        let view = self.view();
        let now = crate::esm::spec::now_secs();
        let mut answers: Vec<Value> = Vec::with_capacity(entries.len());
        let mut events = Vec::with_capacity(entries.len());
        for e in entries {
            let fail =
                |code: &str, message: String| json!({"ErrorCode": code, "ErrorMessage": message});
            let text = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let Some(source) = text("Source") else {
                answers.push(fail(
                    "InvalidArgument",
                    "Parameter Source is not valid. Reason: Source is a required argument.".into(),
                ));
                continue;
            };
            let Some(detail_type) = text("DetailType") else {
                answers.push(fail(
                    "InvalidArgument",
                    "Parameter DetailType is not valid. Reason: DetailType is a required argument."
                        .into(),
                ));
                continue;
            };
            let Some(detail) = text("Detail") else {
                answers.push(fail(
                    "InvalidArgument",
                    "Parameter Detail is not valid. Reason: Detail is a required argument.".into(),
                ));
                continue;
            };
            let detail = match RawValue::from_string(detail.trim().to_string()) {
                Ok(d) if d.get().starts_with('{') => d,
                _ => {
                    answers.push(fail("MalformedDetail", "Detail is malformed.".into()));
                    continue;
                }
            };
            if source.starts_with("aws.") {
                answers.push(fail(
                    "NotAuthorizedForSourceException",
                    "Not authorized for the source.".into(),
                ));
                continue;
            }
            let bus = bus_name(e.get("EventBusName").and_then(Value::as_str));
            if !view.buses.contains_key(&bus) {
                answers.push(fail(
                    "ResourceNotFoundException",
                    format!("Event bus {bus} does not exist."),
                ));
                continue;
            }
            let resources: Vec<&str> = e
                .get("Resources")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let id = crate::new_uuid().to_string();
            let s = |v: &str| Value::String(v.to_string()).to_string();
            let event = format!(
                r#"{{"version":"0","id":"{id}","detail-type":{},"source":{},"account":"{}","time":"{}","region":"{}","resources":{},"detail":{}}}"#,
                s(detail_type),
                s(source),
                self.account,
                super::event_time(entry_time(e).unwrap_or(now)),
                self.region,
                serde_json::to_string(&resources).expect("strings serialize"),
                detail.get(),
            );
            events.push(NewEvent {
                bus,
                rule: None,
                event,
                received: now,
            });
            answers.push(json!({"EventId": id}));
        }
        let failed = answers
            .iter()
            .filter(|a| a.get("ErrorCode").is_some())
            .count();
        if !events.is_empty() {
            self.log.append(events).await.map_err(PutError::Log)?;
        }
        Ok(json!({"FailedEntryCount": failed, "Entries": answers}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buses() -> EventBuses {
        EventBuses::new(
            "us-east-1",
            "123456789012",
            crate::store::Store::memory(),
            super::super::log::Log::local(None).unwrap(),
        )
    }

    #[tokio::test]
    async fn entries_fail_alone_with_aws_codes() {
        let b = buses();
        b.reload().await.unwrap();
        let ok = json!({"Source": "shop", "DetailType": "Order", "Detail": "{\"b\": 1, \"a\": 2}", "Resources": ["r1"], "Time": 1_000_000_000});
        let r = b
            .put_events(&[
                ok.clone(),
                json!({"DetailType": "x", "Detail": "{}"}),
                json!({"Source": "s", "Detail": "{}"}),
                json!({"Source": "s", "DetailType": "x"}),
                json!({"Source": "s", "DetailType": "x", "Detail": "[1]"}),
                json!({"Source": "s", "DetailType": "x", "Detail": "{"}),
                json!({"Source": "aws.ec2", "DetailType": "x", "Detail": "{}"}),
                json!({"Source": "s", "DetailType": "x", "Detail": "{}", "EventBusName": "nope"}),
            ])
            .await
            .unwrap();
        assert_eq!(r["FailedEntryCount"], 7);
        let codes: Vec<&str> = r["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["ErrorCode"].as_str().unwrap_or("ok"))
            .collect();
        assert_eq!(
            codes,
            [
                "ok",
                "InvalidArgument",
                "InvalidArgument",
                "InvalidArgument",
                "MalformedDetail",
                "MalformedDetail",
                "NotAuthorizedForSourceException",
                "ResourceNotFoundException"
            ]
        );
        let logged = b.log.reader().next(10).await;
        let logged: Vec<_> = logged.into_iter().map(|(e, _)| e).collect();
        assert_eq!(logged.len(), 1);
        let e: Value = serde_json::from_str(&logged[0].event).unwrap();
        assert_eq!(e["id"], r["Entries"][0]["EventId"]);
        assert_eq!(e["time"], "2001-09-09T01:46:40Z");
        assert_eq!(e["detail"], json!({"a": 2, "b": 1}));
        assert_eq!(e["resources"], json!(["r1"]));
        assert!(
            logged[0].event.contains(r#""detail":{"b": 1, "a": 2}"#),
            "the detail's own text is kept"
        );
    }

    #[tokio::test]
    async fn whole_request_limits() {
        let b = buses();
        b.reload().await.unwrap();
        let e = json!({"Source": "s", "DetailType": "x", "Detail": "{}"});
        assert!(matches!(
            b.put_events(&vec![e.clone(); 11]).await,
            Err(PutError::Invalid(_))
        ));
        assert!(matches!(b.put_events(&[]).await, Err(PutError::Invalid(_))));
        let big = json!({"Source": "s", "DetailType": "x", "Detail": format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_REQUEST_BYTES))});
        match b.put_events(&[big]).await {
            Err(PutError::Invalid(m)) => assert_eq!(
                m,
                "Total size of the entries in the request is over the limit."
            ),
            other => panic!("{other:?}"),
        }
    }
}
