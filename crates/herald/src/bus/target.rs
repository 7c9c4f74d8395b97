//! Where a rule sends an event. A target's `Arn` says which kind:
//!
//! * `arn:aws:lambda:<region>:<account>:function:<name>`: a Herald function,
//!   invoked with the event and waited for; a function error is a failed
//!   delivery, retried under the target's `RetryPolicy` from the durable
//!   retry table (AWS hands the event to Lambda's in-memory asynchronous
//!   queue instead; Herald's way, nothing acknowledged is held only in
//!   memory);
//! * `channel:/namespace/path` or `channel:<apiId>/namespace/path`: an
//!   Event API channel (the events Herald's ESM targets use); a segment
//!   written as a JSONPath (`channel:/orders/$.detail.region`) takes its
//!   value from the event;
//! * `arn:aws:events:<region>:<account>:event-bus/<name>`: another bus on
//!   this server (the event as it is, into that bus's log);
//! * `arn:aws:nats:<region>:<account>:subject/<subject>`: a NATS subject,
//!   reached through the `[[event_sources]]` entry matching its ARN (core
//!   NATS publish, then a flush: the delivery counts once the server has
//!   the message; subscribers that are not there miss it, as with any core
//!   NATS publish: bind the subject to a JetStream stream to keep them);
//! * `arn:aws:sqs:<region>:<account>:<queue>`: an SQS queue, reached
//!   through the `[[event_sources]]` entry matching its ARN (FIFO queues
//!   take `SqsParameters.MessageGroupId`, and the event's id deduplicates).
//!
//! Dead-letter targets (`DeadLetterConfig.Arn`): an SQS queue (the event,
//! as AWS sends it), a channel or `file:///path` (a record with the event,
//! the error and the rule and target ARNs).

use super::input::JsonPath;
use crate::api::Registry;
use crate::esm::config::EventSourceFile;
use crate::esm::destination::Destination;
use crate::esm::target::ChannelTarget;
use crate::functions::{Functions, InvokeError};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

const CHANNEL: &str = crate::esm::spec::CHANNEL_PREFIX;

/// Is `arn` a target Herald delivers to (its form; whether a queue is
/// reachable is checked with the server's configuration)?
pub fn check_arn(arn: &str) -> Result<(), String> {
    if let Some(rest) = arn.strip_prefix(CHANNEL) {
        return DynamicChannel::parse(rest).map(|_| ());
    }
    if arn.starts_with("arn:aws:lambda:") && arn.contains(":function:") {
        return Ok(());
    }
    if arn.starts_with("arn:aws:events:")
        && (arn.contains(":event-bus/") || arn.contains(":api-destination/"))
    {
        return Ok(());
    }
    if arn.starts_with("arn:aws:sqs:") {
        return Ok(());
    }
    if arn.starts_with("arn:aws:states:") && arn.contains(":stateMachine:") {
        return Ok(());
    }
    if let Some((_, subject)) = arn.split_once(":subject/") {
        if arn.starts_with("arn:aws:nats:")
            && !subject.is_empty()
            && !subject.contains([' ', '*', '>'])
        {
            return Ok(());
        }
    }
    Err(format!(
        "Herald does not deliver to the target {arn}: use a function ARN, channel:/namespace/path, an event bus ARN, an API destination ARN, an SQS queue ARN, a state machine ARN or arn:aws:nats:<region>:<account>:subject/<subject>"
    ))
}

/// Is `arn` a dead-letter target Herald writes to?
pub fn check_dead_letter(arn: &str) -> Result<(), String> {
    if let Some(rest) = arn.strip_prefix(CHANNEL) {
        return crate::esm::spec::check_channel(rest);
    }
    if arn.starts_with("arn:aws:sqs:") {
        return Ok(());
    }
    if let Some(path) = arn.strip_prefix("file://") {
        if path.starts_with('/') {
            return Ok(());
        }
    }
    Err(format!(
        "Herald does not dead-letter to {arn}: use an SQS queue ARN, channel:/namespace/path or file:///absolute/path"
    ))
}

/// A channel whose path may take segments from the event.
#[derive(Debug, Clone)]
struct DynamicChannel {
    api_id: Option<String>,
    /// Each segment: fixed, or a path into the event.
    segments: Vec<Result<String, JsonPath>>,
}

impl DynamicChannel {
    /// `rest` after `channel:`.
    fn parse(rest: &str) -> Result<DynamicChannel, String> {
        let slash = rest.find('/').ok_or_else(|| {
            format!("channel target {CHANNEL}{rest}: expected channel:/namespace/path")
        })?;
        let mut segments = Vec::new();
        let mut fixed = String::new();
        for s in rest[slash + 1..].split('/') {
            if s.starts_with('$') {
                let p = JsonPath::parse(s)
                    .map_err(|e| format!("channel target {CHANNEL}{rest}: {s}: {e}"))?;
                segments.push(Err(p));
                fixed.push_str("/x");
            } else {
                segments.push(Ok(s.to_string()));
                fixed.push('/');
                fixed.push_str(s);
            }
        }
        herald_core::channel::Channel::parse(&fixed)
            .map_err(|e| format!("channel target {CHANNEL}{rest}: {}", e.message))?;
        Ok(DynamicChannel {
            api_id: (slash > 0).then(|| rest[..slash].to_string()),
            segments,
        })
    }

    /// The channel for `event`.
    fn resolve(&self, event: &Value) -> Result<ChannelTarget, String> {
        let mut path = String::new();
        for s in &self.segments {
            path.push('/');
            match s {
                Ok(fixed) => path.push_str(fixed),
                Err(p) => match p.select(event) {
                    Some(Value::String(v)) => path.push_str(v),
                    Some(v @ Value::Number(_)) => path.push_str(&v.to_string()),
                    _ => return Err(
                        "a channel path segment taken from the event is missing or not a string"
                            .into(),
                    ),
                },
            }
        }
        herald_core::channel::Channel::parse(&path)
            .map_err(|e| format!("channel {path}: {}", e.message))?;
        Ok(ChannelTarget {
            api_id: self.api_id.clone(),
            path,
        })
    }
}

/// What deliveries need from the server.
pub struct Parts {
    pub apis: Arc<Registry>,
    pub functions: Arc<Functions>,
    pub sources: Vec<EventSourceFile>,
    /// API destinations' OAuth tokens and rate limits.
    pub calls: super::api_destination::Calls,
    /// NATS connections by URL, opened on first use and shared.
    pub nats: std::sync::Mutex<std::collections::HashMap<String, async_nats::Client>>,
    /// The state machines, for `arn:aws:states:...:stateMachine:` targets
    /// (weak: the workflows' tasks hold these parts).
    pub workflows: std::sync::OnceLock<std::sync::Weak<crate::workflow::Workflows>>,
}

impl Parts {
    pub fn new(
        apis: Arc<Registry>,
        functions: Arc<Functions>,
        sources: Vec<EventSourceFile>,
    ) -> Parts {
        Parts {
            apis,
            functions,
            sources,
            calls: Default::default(),
            nats: Default::default(),
            workflows: Default::default(),
        }
    }

    /// The NATS connection for `source` (the lock is never held across the
    /// connect).
    async fn nats(&self, source: &EventSourceFile) -> Result<async_nats::Client, String> {
        if let Some(c) = self.nats.lock().unwrap().get(&source.url) {
            return Ok(c.clone());
        }
        let mut options = async_nats::ConnectOptions::new();
        if let (Some(u), Some(p)) = (&source.username, &source.password) {
            options = options.user_and_password(u.clone(), p.clone());
        }
        let client = options
            .connect(source.url.as_str())
            .await
            .map_err(|e| format!("NATS {}: {e}", crate::esm::sources::redact(&source.url)))?;
        self.nats
            .lock()
            .unwrap()
            .insert(source.url.clone(), client.clone());
        Ok(client)
    }
}

/// One target, ready to deliver.
pub enum Target {
    Function(String),
    Channel(DynamicChannelTarget),
    Bus(String),
    /// An API destination, by name (called by the dispatcher, which holds
    /// the destinations and connections).
    Api(String),
    Sqs(Destination),
    /// A NATS subject and the server's entry.
    Nats(String, EventSourceFile),
    /// A state machine: each event starts an execution with it as input.
    StateMachine(String),
}

/// A channel target (opaque outside this module).
pub struct DynamicChannelTarget(DynamicChannel);

/// Why a delivery failed.
pub struct Failed {
    pub message: String,
    /// AWS's dead-letter `ERROR_CODE` for it.
    pub code: &'static str,
    /// `false`: trying again cannot help (an API destination's 4xx); the
    /// event goes to the dead-letter target at once.
    pub retryable: bool,
}

impl Target {
    /// Build the target for `arn` (checked at `PutTargets`); `Err` when it
    /// cannot be reached here (an SQS queue with no `[[event_sources]]` entry).
    pub fn new(arn: &str, parts: &Parts) -> Result<Target, String> {
        if let Some(rest) = arn.strip_prefix(CHANNEL) {
            return Ok(Target::Channel(DynamicChannelTarget(
                DynamicChannel::parse(rest)?,
            )));
        }
        if arn.starts_with("arn:aws:lambda:") {
            return Ok(Target::Function(arn.to_string()));
        }
        if let Some((_, name)) = arn.split_once(":event-bus/") {
            return Ok(Target::Bus(name.to_string()));
        }
        if let Some((_, rest)) = arn.split_once(":api-destination/") {
            let name = rest.split('/').next().unwrap_or_default();
            return Ok(Target::Api(name.to_string()));
        }
        if arn.starts_with("arn:aws:sqs:") {
            return dead_letter(arn, parts).map(Target::Sqs);
        }
        if arn.starts_with("arn:aws:states:") && arn.contains(":stateMachine:") {
            return Ok(Target::StateMachine(arn.to_string()));
        }
        if let Some((_, subject)) = arn.split_once(":subject/") {
            let source = crate::esm::config::find(&parts.sources, arn).ok_or_else(|| {
                format!(
                    "No [[event_sources]] entry in the configuration maps {arn} to a NATS server"
                )
            })?;
            return Ok(Target::Nats(subject.to_string(), source.clone()));
        }
        Err(format!("Herald does not deliver to the target {arn}"))
    }

    /// Deliver `payload` (the target's input for `event`). Bus and API
    /// destination targets are the caller's (it holds the log and the
    /// destinations).
    pub async fn deliver(
        &self,
        parts: &Parts,
        payload: String,
        event: &Value,
        sqs_group: Option<&str>,
    ) -> Result<(), Failed> {
        let failed = |code, message: String| Failed {
            message,
            code,
            retryable: true,
        };
        match self {
            Target::Function(arn) => {
                let body = json_text(payload);
                match parts.functions.invoke_built(arn, Bytes::from(body)).await {
                    Ok(i) if i.function_error => Err(failed(
                        "SDK_CLIENT_ERROR",
                        format!(
                            "the function failed: {}",
                            String::from_utf8_lossy(&i.payload)
                        ),
                    )),
                    Ok(_) => Ok(()),
                    Err(InvokeError::NotFound(n)) => Err(failed(
                        "RESOURCE_NOT_FOUND",
                        format!("Function not found: {n}"),
                    )),
                    Err(InvokeError::TooManyRequests(why)) => {
                        Err(failed("THROTTLING", format!("throttled: {why}")))
                    }
                    Err(e) => Err(failed("SDK_CLIENT_ERROR", format!("{e:?}"))),
                }
            }
            Target::Channel(DynamicChannelTarget(c)) => {
                let channel = c
                    .resolve(event)
                    .map_err(|e| failed("SDK_CLIENT_ERROR", e))?;
                channel
                    .publish(&parts.apis, vec![json_text(payload)])
                    .await
                    .map_err(|e| failed("SDK_CLIENT_ERROR", e))
            }
            Target::Sqs(d) => {
                let id = event.get("id").and_then(Value::as_str).unwrap_or_default();
                d.deliver_text(payload, sqs_group.map(|g| (g, id)))
                    .await
                    .map_err(|e| failed("SDK_CLIENT_ERROR", e))
            }
            Target::Nats(subject, source) => {
                let client = parts
                    .nats(source)
                    .await
                    .map_err(|e| failed("SDK_CLIENT_ERROR", e))?;
                client
                    .publish(subject.clone(), payload.into())
                    .await
                    .map_err(|e| failed("SDK_CLIENT_ERROR", format!("NATS publish: {e}")))?;
                client
                    .flush()
                    .await
                    .map_err(|e| failed("SDK_CLIENT_ERROR", format!("NATS flush: {e}")))
            }
            Target::StateMachine(arn) => {
                let workflows = parts
                    .workflows
                    .get()
                    .and_then(std::sync::Weak::upgrade)
                    .ok_or_else(|| {
                        failed("SDK_CLIENT_ERROR", "workflows are not running".into())
                    })?;
                let input: Value = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
                workflows
                    .start(arn, None, input)
                    .map(|_| ())
                    .map_err(|e| match e {
                        crate::workflow::StartError::NoMachine(m) => failed(
                            "RESOURCE_NOT_FOUND",
                            format!("State Machine Does Not Exist: '{m}'"),
                        ),
                        other => failed("SDK_CLIENT_ERROR", format!("{other:?}")),
                    })
            }
            Target::Bus(_) | Target::Api(_) => Ok(()),
        }
    }
}

/// A dead-letter target (or an SQS target: the same writer).
pub fn dead_letter(arn: &str, parts: &Parts) -> Result<Destination, String> {
    if arn.starts_with("arn:aws:sqs:") && crate::esm::config::find(&parts.sources, arn).is_none() {
        return Err(format!(
            "No [[event_sources]] entry in the configuration maps {arn} to an endpoint"
        ));
    }
    Destination::new(
        arn,
        parts.apis.clone(),
        parts.functions.http(),
        &parts.sources,
        "events",
    )
    .ok_or_else(|| format!("Herald does not dead-letter to {arn}"))
}

/// `text` if it is JSON, else that text as a JSON string (a function's
/// payload and a channel's event must be JSON; an input template need not
/// produce it).
fn json_text(text: String) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
        text
    } else {
        Value::String(text).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arns_are_checked() {
        assert!(check_arn("channel:/default/orders").is_ok());
        assert!(check_arn("channel:/default/$.detail.kind").is_ok());
        assert!(check_arn("channel:/default/bad path").is_err());
        assert!(check_arn("arn:aws:lambda:us-east-1:123456789012:function:f").is_ok());
        assert!(check_arn("arn:aws:events:us-east-1:123456789012:event-bus/b").is_ok());
        assert!(check_arn("arn:aws:sqs:us-east-1:123456789012:q").is_ok());
        assert!(check_arn("arn:aws:ecs:us-east-1:123456789012:cluster/c").is_err());
        assert!(check_arn("arn:aws:nats:us-east-1:123456789012:subject/orders.new").is_ok());
        assert!(check_arn("arn:aws:nats:us-east-1:123456789012:subject/orders.*").is_err());
        assert!(check_dead_letter("file:///tmp/dlq").is_ok());
        assert!(check_dead_letter("file://relative").is_err());
    }

    #[test]
    fn channel_segments_come_from_the_event() {
        let c = DynamicChannel::parse("/default/orders/$.detail.region").unwrap();
        let t = c.resolve(&json!({"detail": {"region": "eu"}})).unwrap();
        assert_eq!(t.path, "/default/orders/eu");
        assert!(c.resolve(&json!({"detail": {}})).is_err());
        assert!(c.resolve(&json!({"detail": {"region": "a b"}})).is_err());
    }

    #[test]
    fn payloads_are_json() {
        assert_eq!(json_text("{\"a\":1}".into()), "{\"a\":1}");
        assert_eq!(json_text("plain words".into()), "\"plain words\"");
    }
}
