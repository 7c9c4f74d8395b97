//! A mapping as Lambda's `CreateEventSourceMapping` defines it: the fields,
//! their ranges and defaults per source type, and the validation errors,
//! checked once when the mapping is created or updated (never while it
//! runs). The configuration file's `[[event_source_mappings]]` go through the
//! same parser: their snake_case keys are turned into Lambda's names first.

use super::source::SourceKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Lambda's limits.
pub const MAX_BATCH_SIZE: u64 = 10_000;
pub const MAX_WINDOW_SECS: u64 = 300;
pub const MAX_FILTERS: usize = 5;
pub const MAX_PATTERN_CHARS: usize = 4096;
pub const MAX_RECORD_AGE_SECS: i64 = 604_800;
pub const MIN_RECORD_AGE_SECS: i64 = 60;
pub const MAX_RETRIES: i64 = 10_000;
/// The prefix of a channel target or destination: `channel:/ns/path` on the
/// configuration file's API, `channel:<apiId>/ns/path` on a created one.
pub const CHANNEL_PREFIX: &str = "channel:";

/// A validated mapping, as stored (JSON) and run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingSpec {
    pub uuid: String,
    /// A function's name or ARN as given, or a channel target.
    pub function: String,
    pub source_arn: String,
    pub enabled: bool,
    pub batch_size: u64,
    pub window_secs: u64,
    /// `FilterCriteria` patterns (ORed), each already checked.
    pub filters: Vec<String>,
    pub starting_position: Option<String>,
    /// Epoch seconds.
    pub starting_position_timestamp: Option<f64>,
    /// `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
    pub report_item_failures: bool,
    pub bisect: bool,
    /// −1: until the record expires.
    pub max_retries: i64,
    /// −1: no limit.
    pub max_record_age_secs: i64,
    pub parallelization_factor: u64,
    pub max_concurrency: Option<u64>,
    /// `DestinationConfig.OnFailure.Destination`.
    pub on_failure: Option<String>,
    /// `MetricsConfig: {Metrics: ["EventCount"]}`.
    pub metrics: bool,
    /// Amazon MQ's `Queues` (one queue).
    pub queues: Vec<String>,
    /// Epoch seconds.
    pub last_modified: f64,
    /// Declared in the configuration file (the API does not change it).
    #[serde(skip)]
    pub from_file: bool,
}

fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn integer(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match field(body, name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be an integer")),
    }
}

fn boolean(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match field(body, name) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("{name} must be a boolean")),
    }
}

fn string(body: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// Lambda's message for a value outside its range.
fn range(name: &str, value: i64, min: i64, max: i64) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must have value {}",
            lower_first(name),
            if value < min {
                format!("greater than or equal to {min}")
            } else {
                format!("less than or equal to {max}")
            }
        ));
    }
    Ok(())
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Members Herald accepts without acting on them (it has no such concept).
const IGNORED: &[&str] = &[
    "Tags",
    "TumblingWindowInSeconds",
    "KMSKeyArn",
    "SourceAccessConfigurations",
    "Topics",
    "DocumentDBEventSourceConfig",
];

const KNOWN: &[&str] = &[
    "UUID",
    "FunctionName",
    "EventSourceArn",
    "Enabled",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FilterCriteria",
    "StartingPosition",
    "StartingPositionTimestamp",
    "FunctionResponseTypes",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "ParallelizationFactor",
    "ScalingConfig",
    "DestinationConfig",
    "MetricsConfig",
    "Queues",
];

impl MappingSpec {
    /// `CreateEventSourceMapping` (with `existing` `None`) or
    /// `UpdateEventSourceMapping` (members absent keep their value; the
    /// source and starting position cannot change). `uuid` names a new
    /// mapping.
    pub fn from_request(
        body: &Map<String, Value>,
        existing: Option<&MappingSpec>,
        uuid: String,
    ) -> Result<MappingSpec, String> {
        for k in body.keys() {
            if !KNOWN.contains(&k.as_str()) && !IGNORED.contains(&k.as_str()) {
                return Err(format!("Unknown parameter: {k}"));
            }
        }
        let source_arn = match existing {
            Some(e) => {
                for fixed in ["EventSourceArn", "StartingPosition", "StartingPositionTimestamp"] {
                    if field(body, fixed).is_some() {
                        return Err(format!("{fixed} cannot be changed by an update"));
                    }
                }
                e.source_arn.clone()
            }
            None => string(body, "EventSourceArn")?.ok_or_else(|| {
                "1 validation error detected: Value null at 'eventSourceArn' failed to satisfy constraint: Member must not be null".to_string()
            })?,
        };
        let kind = SourceKind::of_arn(&source_arn)?;
        let stream = kind.is_stream();
        let function = match (string(body, "FunctionName")?, existing) {
            (Some(f), _) => f,
            (None, Some(e)) => e.function.clone(),
            (None, None) => return Err(
                "1 validation error detected: Value null at 'functionName' failed to satisfy constraint: Member must not be null".into(),
            ),
        };
        let long_ok =
            function.starts_with(CHANNEL_PREFIX) || function.starts_with("arn:aws:states:");
        if function.is_empty() || function.len() > 140 && !long_ok {
            return Err("FunctionName must have length between 1 and 140".into());
        }
        if let Some(path) = function.strip_prefix(CHANNEL_PREFIX) {
            check_channel(path)?;
        }
        let old = |f: fn(&MappingSpec) -> i64, default: i64| existing.map_or(default, f);
        let default_batch = if kind == SourceKind::Sqs { 10 } else { 100 };
        let batch_size = integer(body, "BatchSize")?
            .unwrap_or_else(|| old(|e| e.batch_size as i64, default_batch));
        range("BatchSize", batch_size, 1, MAX_BATCH_SIZE as i64)?;
        let window = integer(body, "MaximumBatchingWindowInSeconds")?
            .unwrap_or_else(|| old(|e| e.window_secs as i64, 0));
        range(
            "MaximumBatchingWindowInSeconds",
            window,
            0,
            MAX_WINDOW_SECS as i64,
        )?;
        if kind == SourceKind::Sqs && source_arn.ends_with(".fifo") && batch_size > 10 {
            return Err("Batch size for SQS FIFO queues must be less than or equal to 10".into());
        }
        if kind == SourceKind::Sqs && batch_size > 10 && window == 0 {
            return Err("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10".into());
        }
        let filters = match field(body, "FilterCriteria") {
            None => existing.map(|e| e.filters.clone()).unwrap_or_default(),
            Some(fc) => filters(fc)?,
        };
        let (starting_position, starting_position_timestamp) = match existing {
            Some(e) => (e.starting_position.clone(), e.starting_position_timestamp),
            None => {
                let p = string(body, "StartingPosition")?;
                let ts = match field(body, "StartingPositionTimestamp") {
                    None => None,
                    Some(v) => Some(
                        v.as_f64()
                            .ok_or("StartingPositionTimestamp must be a timestamp")?,
                    ),
                };
                match (&p, stream) {
                    (None, true) => {
                        return Err(format!(
                            "StartingPosition is required for {} event sources",
                            kind.name()
                        ))
                    }
                    (Some(_), false) => {
                        return Err(format!(
                            "StartingPosition is not valid for {} event sources",
                            kind.name()
                        ))
                    }
                    _ => {}
                }
                match (p.as_deref(), ts) {
                    (Some("AT_TIMESTAMP"), None) => {
                        return Err("StartingPositionTimestamp is required when StartingPosition is AT_TIMESTAMP".into())
                    }
                    (Some("AT_TIMESTAMP"), Some(t)) if t > now_secs() => {
                        return Err("StartingPositionTimestamp cannot be in the future".into())
                    }
                    (Some("AT_TIMESTAMP"), Some(_)) => {}
                    (Some(_), Some(_)) | (None, Some(_)) => {
                        return Err("StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP".into())
                    }
                    (Some("TRIM_HORIZON" | "LATEST"), None) | (None, None) => {}
                    (Some(other), _) => {
                        return Err(format!(
                            "1 validation error detected: Value '{other}' at 'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
                        ))
                    }
                }
                (p, ts)
            }
        };
        let report_item_failures = match field(body, "FunctionResponseTypes") {
            None => existing.is_some_and(|e| e.report_item_failures),
            Some(Value::Array(types)) => {
                for t in types {
                    if t.as_str() != Some("ReportBatchItemFailures") {
                        return Err(format!(
                            "1 validation error detected: Value '[{}]' at 'functionResponseTypes' failed to satisfy constraint: Member must satisfy enum value set: [ReportBatchItemFailures]",
                            t.as_str().unwrap_or_default()
                        ));
                    }
                }
                !types.is_empty()
            }
            Some(_) => return Err("FunctionResponseTypes must be a list".into()),
        };
        let stream_only = |name: &str| -> Result<(), String> {
            if !stream && field(body, name).is_some() {
                return Err(format!(
                    "Unsupported MaximumRetryAttempts, MaximumRecordAgeInSeconds, BisectBatchOnFunctionError, ParallelizationFactor or DestinationConfig parameter for {} event sources: {name}",
                    kind.name()
                ));
            }
            Ok(())
        };
        for name in [
            "BisectBatchOnFunctionError",
            "MaximumRetryAttempts",
            "MaximumRecordAgeInSeconds",
            "ParallelizationFactor",
            "DestinationConfig",
        ] {
            stream_only(name)?;
        }
        let bisect = boolean(body, "BisectBatchOnFunctionError")?
            .unwrap_or_else(|| existing.is_some_and(|e| e.bisect));
        let max_retries =
            integer(body, "MaximumRetryAttempts")?.unwrap_or_else(|| old(|e| e.max_retries, -1));
        range("MaximumRetryAttempts", max_retries, -1, MAX_RETRIES)?;
        let max_record_age_secs = integer(body, "MaximumRecordAgeInSeconds")?
            .unwrap_or_else(|| old(|e| e.max_record_age_secs, -1));
        range(
            "MaximumRecordAgeInSeconds",
            max_record_age_secs,
            -1,
            MAX_RECORD_AGE_SECS,
        )?;
        if (0..MIN_RECORD_AGE_SECS).contains(&max_record_age_secs) {
            return Err(format!(
                "MaximumRecordAgeInSeconds must be -1 or between {MIN_RECORD_AGE_SECS} and {MAX_RECORD_AGE_SECS}"
            ));
        }
        let parallelization_factor = integer(body, "ParallelizationFactor")?
            .unwrap_or_else(|| old(|e| e.parallelization_factor as i64, 1));
        range("ParallelizationFactor", parallelization_factor, 1, 10)?;
        let max_concurrency = match field(body, "ScalingConfig") {
            None => existing.and_then(|e| e.max_concurrency),
            Some(Value::Object(sc)) => match integer(sc, "MaximumConcurrency")? {
                None => None,
                Some(n) => {
                    if kind != SourceKind::Sqs {
                        return Err(format!(
                            "ScalingConfig is only supported for SQS event sources, not {}",
                            kind.name()
                        ));
                    }
                    range("ScalingConfig.MaximumConcurrency", n, 2, 1000)?;
                    Some(n as u64)
                }
            },
            Some(_) => return Err("ScalingConfig must be an object".into()),
        };
        let on_failure = match field(body, "DestinationConfig") {
            None => existing.and_then(|e| e.on_failure.clone()),
            Some(dc) => {
                let d = dc
                    .pointer("/OnFailure/Destination")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if d.is_empty() {
                    None
                } else {
                    super::destination::check(d)?;
                    Some(d.to_string())
                }
            }
        };
        let metrics = match field(body, "MetricsConfig") {
            None => existing.is_some_and(|e| e.metrics),
            Some(mc) => match mc.get("Metrics") {
                None | Some(Value::Null) => false,
                Some(Value::Array(m)) => {
                    for x in m {
                        if !matches!(x.as_str(), Some("EventCount") | Some("ErrorCount")) {
                            return Err(format!(
                                "1 validation error detected: Value '{x}' at 'metricsConfig.metrics' failed to satisfy constraint: Member must satisfy enum value set: [EventCount, ErrorCount]"
                            ));
                        }
                    }
                    !m.is_empty()
                }
                Some(_) => return Err("MetricsConfig.Metrics must be a list".into()),
            },
        };
        let queues = match field(body, "Queues") {
            None => existing.map(|e| e.queues.clone()).unwrap_or_default(),
            Some(Value::Array(q)) => q
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or("Queues must be strings")
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("Queues must be a list".into()),
        };
        if kind == SourceKind::RabbitMq && queues.len() != 1 {
            return Err("Queues must name exactly one queue for Amazon MQ event sources".into());
        }
        let enabled =
            boolean(body, "Enabled")?.unwrap_or_else(|| existing.is_none_or(|e| e.enabled));
        Ok(MappingSpec {
            uuid: existing.map_or(uuid, |e| e.uuid.clone()),
            function,
            source_arn,
            enabled,
            batch_size: batch_size as u64,
            window_secs: window as u64,
            filters,
            starting_position,
            starting_position_timestamp,
            report_item_failures,
            bisect,
            max_retries,
            max_record_age_secs,
            parallelization_factor: parallelization_factor as u64,
            max_concurrency,
            on_failure,
            metrics,
            queues,
            last_modified: now_secs(),
            from_file: existing.is_some_and(|e| e.from_file),
        })
    }

    pub fn kind(&self) -> SourceKind {
        SourceKind::of_arn(&self.source_arn).expect("checked when the mapping was made")
    }

    /// A channel target's path, when the target is a channel.
    pub fn channel_target(&self) -> Option<&str> {
        self.function.strip_prefix(CHANNEL_PREFIX)
    }

    /// Whether records need their decoded data (for filters or a channel
    /// target); without, sources skip decoding it.
    pub fn needs_view(&self) -> bool {
        !self.filters.is_empty() || self.channel_target().is_some()
    }

    /// The mapping's ARN.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!(
            "arn:aws:lambda:{region}:{account}:event-source-mapping:{}",
            self.uuid
        )
    }

    /// Lambda's `EventSourceMappingConfiguration`.
    pub fn to_aws(&self, function_arn: &str, state: &str, last_result: &str, arn: &str) -> Value {
        let mut v = json!({
            "UUID": self.uuid,
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.window_secs,
            "EventSourceArn": self.source_arn,
            "FunctionArn": function_arn,
            "LastModified": self.last_modified,
            "LastProcessingResult": last_result,
            "State": state,
            "StateTransitionReason": "USER_INITIATED",
            "EventSourceMappingArn": arn,
        });
        if !self.filters.is_empty() {
            v["FilterCriteria"] = json!({"Filters": self.filters.iter().map(|p| json!({"Pattern": p})).collect::<Vec<_>>()});
        }
        if let Some(p) = &self.starting_position {
            v["StartingPosition"] = json!(p);
        }
        if let Some(t) = self.starting_position_timestamp {
            v["StartingPositionTimestamp"] = json!(t);
        }
        if self.report_item_failures {
            v["FunctionResponseTypes"] = json!(["ReportBatchItemFailures"]);
        } else {
            v["FunctionResponseTypes"] = json!([]);
        }
        if self.kind().is_stream() {
            v["ParallelizationFactor"] = json!(self.parallelization_factor);
            v["BisectBatchOnFunctionError"] = json!(self.bisect);
            v["MaximumRetryAttempts"] = json!(self.max_retries);
            v["MaximumRecordAgeInSeconds"] = json!(self.max_record_age_secs);
            v["DestinationConfig"] = json!({"OnSuccess": {}, "OnFailure": self.on_failure.as_ref().map_or(json!({}), |d| json!({"Destination": d}))});
        }
        if let Some(c) = self.max_concurrency {
            v["ScalingConfig"] = json!({"MaximumConcurrency": c});
        }
        if self.metrics {
            v["MetricsConfig"] = json!({"Metrics": ["EventCount"]});
        }
        if !self.queues.is_empty() {
            v["Queues"] = json!(self.queues);
        }
        v
    }
}

/// `FilterCriteria`: at most five patterns, each valid and at most 4,096
/// characters.
fn filters(fc: &Value) -> Result<Vec<String>, String> {
    let list = match fc.get("Filters") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(l)) => l,
        Some(_) => return Err("FilterCriteria.Filters must be a list".into()),
    };
    if list.len() > MAX_FILTERS {
        return Err(format!(
            "1 validation error detected: Value at 'filterCriteria.filters' failed to satisfy constraint: Member must have length less than or equal to {MAX_FILTERS}"
        ));
    }
    let mut out = Vec::new();
    for f in list {
        let p = f
            .get("Pattern")
            .and_then(Value::as_str)
            .ok_or("Each filter needs a Pattern string")?;
        if p.chars().count() > MAX_PATTERN_CHARS {
            return Err(format!(
                "1 validation error detected: Value at 'filterCriteria.filters.member.pattern' failed to satisfy constraint: Member must have length less than or equal to {MAX_PATTERN_CHARS}"
            ));
        }
        herald_pattern::Pattern::parse(p)
            .map_err(|e| format!("Invalid filter pattern definition. {e}"))?;
        out.push(p.to_string());
    }
    Ok(out)
}

/// `channel:/ns/path` or `channel:<apiId>/ns/path`.
pub fn check_channel(rest: &str) -> Result<(), String> {
    let path = match rest.find('/') {
        Some(i) => &rest[i..],
        None => return Err(format!("channel target {CHANNEL_PREFIX}{rest}: expected channel:/namespace/path or channel:<apiId>/namespace/path")),
    };
    herald_core::channel::Channel::parse(path)
        .map(|_| ())
        .map_err(|e| format!("channel target {CHANNEL_PREFIX}{rest}: {}", e.message))
}

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> Result<MappingSpec, String> {
        MappingSpec::from_request(v.as_object().unwrap(), None, "u".into())
    }

    const REDIS: &str = "arn:aws:redis:us-east-1:000000000000:stream/orders";

    #[test]
    fn defaults_and_ranges_are_lambdas() {
        let m = create(json!({"EventSourceArn": REDIS, "FunctionName": "f", "StartingPosition": "TRIM_HORIZON"})).unwrap();
        assert_eq!(
            (
                m.batch_size,
                m.window_secs,
                m.max_retries,
                m.max_record_age_secs
            ),
            (100, 0, -1, -1)
        );
        assert!(m.enabled && !m.bisect && !m.report_item_failures);
        let e = create(json!({"EventSourceArn": REDIS, "FunctionName": "f", "StartingPosition": "TRIM_HORIZON", "BatchSize": 10001})).unwrap_err();
        assert!(
            e.contains("'batchSize'") && e.contains("less than or equal to 10000"),
            "{e}"
        );
        let e = create(json!({"EventSourceArn": REDIS, "FunctionName": "f"})).unwrap_err();
        assert!(e.contains("StartingPosition is required"), "{e}");
        let e = create(json!({"EventSourceArn": REDIS, "FunctionName": "f", "StartingPosition": "TRIM_HORIZON", "MaximumRecordAgeInSeconds": 10})).unwrap_err();
        assert!(e.contains("-1 or between 60"), "{e}");
        let e = create(
            json!({"EventSourceArn": REDIS, "FunctionName": "f", "StartingPosition": "SOMETIME"}),
        )
        .unwrap_err();
        assert!(e.contains("enum value set"), "{e}");
        let e = create(
            json!({"EventSourceArn": REDIS, "FunctionName": "f", "StartingPosition": "LATEST",
            "FilterCriteria": {"Filters": [{"Pattern": "{\"data\": \"x\"}"}]}}),
        )
        .unwrap_err();
        assert!(e.starts_with("Invalid filter pattern definition."), "{e}");
    }

    #[test]
    fn queues_refuse_stream_settings_and_need_a_window_past_ten() {
        let sqs = "arn:aws:sqs:us-east-1:000000000000:q";
        let m = create(json!({"EventSourceArn": sqs, "FunctionName": "f"})).unwrap();
        assert_eq!(m.batch_size, 10);
        let e = create(
            json!({"EventSourceArn": sqs, "FunctionName": "f", "BisectBatchOnFunctionError": true}),
        )
        .unwrap_err();
        assert!(e.contains("Unsupported"), "{e}");
        let e = create(json!({"EventSourceArn": sqs, "FunctionName": "f", "BatchSize": 50}))
            .unwrap_err();
        assert!(e.contains("greater than 0"), "{e}");
        let e = create(
            json!({"EventSourceArn": sqs, "FunctionName": "f", "StartingPosition": "LATEST"}),
        )
        .unwrap_err();
        assert!(e.contains("not valid"), "{e}");
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let m = create(json!({"EventSourceArn": REDIS, "FunctionName": "f", "StartingPosition": "LATEST", "BatchSize": 7})).unwrap();
        let u = MappingSpec::from_request(
            json!({"Enabled": false}).as_object().unwrap(),
            Some(&m),
            "other".into(),
        )
        .unwrap();
        assert_eq!((u.uuid.as_str(), u.batch_size, u.enabled), ("u", 7, false));
        let e = MappingSpec::from_request(
            json!({"EventSourceArn": REDIS}).as_object().unwrap(),
            Some(&m),
            "x".into(),
        )
        .unwrap_err();
        assert!(e.contains("cannot be changed"), "{e}");
    }
}
