//! The actions an experiment may take (`ListActions`, `GetAction`), their
//! parameters as FIS names them, and their validation at
//! `CreateExperimentTemplate` (never when the experiment runs).

use std::time::Duration;

/// One parameter of an action.
pub struct Param {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
}

/// One action of the catalogue.
pub struct ActionSpec {
    pub id: &'static str,
    pub description: &'static str,
    /// The key of the action's `targets` map, and the resource type it names.
    pub target: Option<(&'static str, &'static str)>,
    pub params: &'static [Param],
}

pub const FUNCTION: &str = "aws:lambda:function";
pub const API: &str = "herald:appsync:api";
pub const NAMESPACE: &str = "herald:appsync:channel-namespace";

const DURATION: Param = Param {
    name: "duration",
    description: "How long the action lasts, ISO 8601 (PT30S, PT5M, PT1H; at most PT12H)",
    required: true,
};
const INVOCATION_PERCENTAGE: Param = Param {
    name: "invocationPercentage",
    description: "The percentage of invocations acted on (1-100, default 100)",
    required: false,
};
const PREVENT_EXECUTION: Param = Param {
    name: "preventExecution",
    description:
        "Whether the function is not run at all (true, the default) or run and its answer replaced",
    required: false,
};
const STARTUP_DELAY: Param = Param {
    name: "startupDelayMilliseconds",
    description: "The delay, 0-900000 milliseconds (default 1000)",
    required: false,
};
const PERCENTAGE: Param = Param {
    name: "percentage",
    description: "The percentage acted on (1-100, default 100)",
    required: false,
};

pub const CATALOGUE: &[ActionSpec] = &[
    ActionSpec {
        id: "aws:lambda:invocation-add-delay",
        description: "Delay the start of a percentage of the target functions' invocations",
        target: Some(("Functions", FUNCTION)),
        params: &[
            DURATION,
            INVOCATION_PERCENTAGE,
            STARTUP_DELAY,
        ],
    },
    ActionSpec {
        id: "aws:lambda:invocation-error",
        description: "Fail a percentage of the target functions' invocations with a function error",
        target: Some(("Functions", FUNCTION)),
        params: &[DURATION, INVOCATION_PERCENTAGE, PREVENT_EXECUTION],
    },
    ActionSpec {
        id: "aws:lambda:invocation-http-integration-response",
        description: "Answer a percentage of the target functions' invocations with an HTTP integration response of the given status",
        target: Some(("Functions", FUNCTION)),
        params: &[
            DURATION,
            INVOCATION_PERCENTAGE,
            PREVENT_EXECUTION,
            Param {
                name: "statusCode",
                description: "The response's HTTP status, 100-599",
                required: true,
            },
            Param {
                name: "contentTypeHeader",
                description: "The response's Content-Type (default text/plain)",
                required: false,
            },
        ],
    },
    ActionSpec {
        id: "herald:appsync:handler-add-delay",
        description: "Delay a percentage of the target channel namespaces' handler invocations (onPublish, onSubscribe; code or DIRECT)",
        target: Some(("ChannelNamespaces", NAMESPACE)),
        params: &[
            DURATION,
            INVOCATION_PERCENTAGE,
            STARTUP_DELAY,
        ],
    },
    ActionSpec {
        id: "herald:appsync:handler-error",
        description: "Fail a percentage of the target channel namespaces' handler invocations, as util.error does",
        target: Some(("ChannelNamespaces", NAMESPACE)),
        params: &[DURATION, INVOCATION_PERCENTAGE, PREVENT_EXECUTION],
    },
    ActionSpec {
        id: "herald:engine:drop-messages",
        description: "Do not hand a percentage of the target APIs' publishes to the engine (other nodes miss them)",
        target: Some(("Apis", API)),
        params: &[DURATION, PERCENTAGE],
    },
    ActionSpec {
        id: "herald:engine:delay-messages",
        description: "Delay a percentage of the target APIs' publishes before the engine gets them",
        target: Some(("Apis", API)),
        params: &[
            DURATION,
            PERCENTAGE,
            Param {
                name: "delayMilliseconds",
                description: "The delay, 0-60000 milliseconds",
                required: true,
            },
        ],
    },
    ActionSpec {
        id: "herald:appsync:close-connections",
        description: "Close a percentage of the target APIs' WebSocket connections when the action starts (close code 1001)",
        target: Some(("Apis", API)),
        params: &[PERCENTAGE],
    },
    ActionSpec {
        id: "aws:fis:wait",
        description: "Wait for the given duration",
        target: None,
        params: &[DURATION],
    },
];

pub fn find(id: &str) -> Option<&'static ActionSpec> {
    CATALOGUE.iter().find(|a| a.id == id)
}

/// An ISO 8601 duration as FIS takes it: `PT` then hours, minutes, seconds
/// (`PT1H30M`, `PT90S`, `PT0.5S`), up to 12 hours.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("Invalid duration '{text}': use ISO 8601, such as PT30S, PT5M or PT1H");
    let rest = text.strip_prefix("PT").ok_or_else(bad)?;
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0f64;
    let mut number = String::new();
    let mut last_unit = 0;
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let unit = match c {
                    'H' => 1,
                    'M' => 2,
                    _ => 3,
                };
                if unit <= last_unit || number.is_empty() {
                    return Err(bad());
                }
                last_unit = unit;
                let n: f64 = number.parse().map_err(|_| bad())?;
                total += n * [0.0, 3600.0, 60.0, 1.0][unit];
                number.clear();
            }
            _ => return Err(bad()),
        }
    }
    if !number.is_empty() {
        return Err(bad());
    }
    if total > 12.0 * 3600.0 {
        return Err(format!("Invalid duration '{text}': at most PT12H"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// A number parameter within `lo..=hi`, or its default.
pub fn number(
    params: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    lo: f64,
    hi: f64,
    default: Option<f64>,
) -> Result<f64, String> {
    match params.get(name).and_then(|v| v.as_str()) {
        None => default.ok_or(format!("The parameter {name} is required")),
        Some(s) => match s.trim().parse::<f64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!(
                "Invalid value '{s}' for the parameter {name}: a number from {lo} to {hi}"
            )),
        },
    }
}

pub fn boolean(
    params: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    default: bool,
) -> Result<bool, String> {
    match params.get(name).and_then(|v| v.as_str()) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(s) => Err(format!(
            "Invalid value '{s}' for the parameter {name}: true or false"
        )),
    }
}

/// Check an action's parameters (strings, as FIS takes them): unknown
/// ones, missing required ones, and each value.
pub fn validate(
    spec: &ActionSpec,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    for (k, v) in params {
        if !spec.params.iter().any(|p| p.name == k) {
            return Err(format!(
                "The parameter {k} is not a parameter of the action {}",
                spec.id
            ));
        }
        if !v.is_string() {
            return Err(format!("The parameter {k} must be a string"));
        }
    }
    for p in spec.params.iter().filter(|p| p.required) {
        if !params.contains_key(p.name) {
            return Err(format!(
                "The action {} requires the parameter {}",
                spec.id, p.name
            ));
        }
    }
    if let Some(d) = params.get("duration").and_then(|v| v.as_str()) {
        parse_duration(d)?;
    }
    number(params, "invocationPercentage", 1.0, 100.0, Some(100.0))?;
    number(params, "percentage", 1.0, 100.0, Some(100.0))?;
    number(
        params,
        "startupDelayMilliseconds",
        0.0,
        900_000.0,
        Some(1000.0),
    )?;
    number(params, "delayMilliseconds", 0.0, 60_000.0, Some(0.0))?;
    number(params, "statusCode", 100.0, 599.0, Some(200.0))?;
    boolean(params, "preventExecution", true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT30S").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_duration("PT1H30M").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("PT0.5S").unwrap(),
            Duration::from_millis(500)
        );
        for bad in ["30S", "PT", "PT5", "PT1S1M", "PTXS", "PT13H", "P1D"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parameters_are_checked_against_the_action() {
        let error = find("aws:lambda:invocation-error").unwrap();
        let ok =
            json!({"duration": "PT1M", "invocationPercentage": "50", "preventExecution": "false"});
        assert!(validate(error, ok.as_object().unwrap()).is_ok());
        for (params, says) in [
            (json!({}), "requires the parameter duration"),
            (
                json!({"duration": "PT1M", "invocationPercentage": "0"}),
                "invocationPercentage",
            ),
            (
                json!({"duration": "PT1M", "preventExecution": "yes"}),
                "true or false",
            ),
            (
                json!({"duration": "PT1M", "statusCode": "500"}),
                "not a parameter",
            ),
            (json!({"duration": 60}), "must be a string"),
        ] {
            let e = validate(error, params.as_object().unwrap()).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let http = find("aws:lambda:invocation-http-integration-response").unwrap();
        let e = validate(
            http,
            json!({"duration": "PT1M", "statusCode": "700"})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("statusCode"), "{e}");
    }
}
