//! Which fields each state type takes, by query language (AWS's schema
//! for the Amazon States Language): what [`super::definition`] refuses by
//! name.

use super::definition::{Kind, Lang};

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage", "Assign"];
const PATHS: &[&str] = &["InputPath", "OutputPath"];
const TRANSITION: &[&str] = &["Next", "End"];

/// The fields each state type may have, by query language (AWS's schema).
pub fn allowed(kind: Kind, lang: Lang) -> Vec<&'static str> {
    let mut f: Vec<&str> = COMMON.to_vec();
    let jp = lang == Lang::JsonPath;
    let ja = lang == Lang::Jsonata;
    let add = |f: &mut Vec<&'static str>, cond: bool, names: &[&'static str]| {
        if cond {
            f.extend_from_slice(names);
        }
    };
    match kind {
        Kind::Pass => {
            f.extend_from_slice(TRANSITION);
            add(&mut f, jp, PATHS);
            add(&mut f, jp, &["Parameters", "Result", "ResultPath"]);
            add(&mut f, ja, &["Output"]);
        }
        Kind::Task => {
            f.extend_from_slice(TRANSITION);
            f.extend_from_slice(&[
                "Resource",
                "Retry",
                "Catch",
                "TimeoutSeconds",
                "HeartbeatSeconds",
                "Credentials",
            ]);
            add(&mut f, jp, PATHS);
            add(
                &mut f,
                jp,
                &[
                    "Parameters",
                    "ResultPath",
                    "ResultSelector",
                    "TimeoutSecondsPath",
                    "HeartbeatSecondsPath",
                ],
            );
            add(&mut f, ja, &["Arguments", "Output"]);
        }
        Kind::Choice => {
            f.extend_from_slice(&["Choices", "Default"]);
            add(&mut f, jp, PATHS);
            add(&mut f, ja, &["Output"]);
        }
        Kind::Wait => {
            f.extend_from_slice(TRANSITION);
            f.extend_from_slice(&["Seconds", "Timestamp"]);
            add(&mut f, jp, PATHS);
            add(&mut f, jp, &["SecondsPath", "TimestampPath"]);
            add(&mut f, ja, &["Output"]);
        }
        Kind::Succeed => {
            add(&mut f, jp, PATHS);
            add(&mut f, ja, &["Output"]);
        }
        Kind::Fail => {
            f.retain(|n| *n != "Assign");
            f.extend_from_slice(&["Error", "Cause"]);
            add(&mut f, jp, &["ErrorPath", "CausePath"]);
        }
        Kind::Parallel => {
            f.extend_from_slice(TRANSITION);
            f.extend_from_slice(&["Branches", "Retry", "Catch"]);
            add(&mut f, jp, PATHS);
            add(&mut f, jp, &["Parameters", "ResultPath", "ResultSelector"]);
            add(&mut f, ja, &["Arguments", "Output"]);
        }
        Kind::Map => {
            f.extend_from_slice(TRANSITION);
            f.extend_from_slice(&[
                "ItemProcessor",
                "Iterator",
                "ItemSelector",
                "MaxConcurrency",
                "ToleratedFailurePercentage",
                "ToleratedFailureCount",
                "Retry",
                "Catch",
                "Label",
            ]);
            add(&mut f, jp, PATHS);
            add(
                &mut f,
                jp,
                &["ItemsPath", "Parameters", "ResultPath", "ResultSelector"],
            );
            add(&mut f, ja, &["Items", "Output"]);
        }
    }
    f
}

pub fn kind_of(t: &str) -> Option<Kind> {
    Some(match t {
        "Pass" => Kind::Pass,
        "Task" => Kind::Task,
        "Choice" => Kind::Choice,
        "Wait" => Kind::Wait,
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail,
        "Parallel" => Kind::Parallel,
        "Map" => Kind::Map,
        _ => return None,
    })
}
