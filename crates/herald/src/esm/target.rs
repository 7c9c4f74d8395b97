//! Where a mapping's batches go: a Herald function (through the one
//! invoker, [`crate::functions::Functions::invoke`]) or an Event API channel
//! (`channel:/ns/path`: each record's data becomes one event, so a queue or
//! stream feeds WebSocket clients with no code).

use super::spec::CHANNEL_PREFIX;
use crate::api::Registry;
use crate::functions::{Functions, InvokeError};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// A channel on one of the server's APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTarget {
    /// `None`: the configuration file's API.
    pub api_id: Option<String>,
    pub path: String,
}

impl ChannelTarget {
    /// `channel:/ns/path` or `channel:<apiId>/ns/path` (checked at create).
    pub fn parse(reference: &str) -> Option<ChannelTarget> {
        let rest = reference.strip_prefix(CHANNEL_PREFIX)?;
        let slash = rest.find('/')?;
        Some(ChannelTarget {
            api_id: (slash > 0).then(|| rest[..slash].to_string()),
            path: rest[slash..].to_string(),
        })
    }

    /// Publish `events` (JSON texts) in order.
    pub async fn publish(&self, apis: &Registry, events: Vec<String>) -> Result<(), String> {
        let api = match &self.api_id {
            None => apis.default_api().clone(),
            Some(id) => apis
                .get(id)
                .ok_or_else(|| format!("no API {id} for channel {}", self.path))?,
        };
        let r = api
            .publish_system(&self.path, events)
            .await
            .map_err(|e| format!("publishing to {}: {}", self.path, e.message))?;
        match r.failed.first() {
            None => Ok(()),
            Some(f) => Err(format!(
                "publishing to {}: {} events refused by onPublish ({})",
                self.path,
                r.failed.len(),
                f.message
            )),
        }
    }
}

/// How an invocation ended.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// The function returned (its response, for partial batch responses).
    Returned(Bytes),
    /// The function ran and failed (`Unhandled`): its error payload.
    FunctionError(Bytes),
    /// It did not run: throttled, not found, Herald's own trouble. Lambda
    /// retries these until the records expire, without spending
    /// `MaximumRetryAttempts`.
    NotRun(String),
}

pub use crate::workflow::{is_state_machine, WorkflowsSlot};

pub enum Target {
    Function {
        functions: Arc<Functions>,
        name: String,
    },
    Channel {
        apis: Arc<Registry>,
        channel: ChannelTarget,
    },
    /// Each batch (Lambda's event) starts an execution.
    StateMachine {
        workflows: WorkflowsSlot,
        arn: String,
    },
}

impl Target {
    pub fn new(
        reference: &str,
        functions: Arc<Functions>,
        apis: Arc<Registry>,
        workflows: WorkflowsSlot,
    ) -> Target {
        if is_state_machine(reference) {
            return Target::StateMachine {
                workflows,
                arn: reference.to_string(),
            };
        }
        match ChannelTarget::parse(reference) {
            Some(channel) => Target::Channel { apis, channel },
            None => Target::Function {
                functions,
                name: reference.to_string(),
            },
        }
    }

    /// `FunctionArn` in the mapping's description.
    pub fn arn(reference: &str, functions: &Functions) -> String {
        if reference.starts_with(CHANNEL_PREFIX) || is_state_machine(reference) {
            reference.to_string()
        } else {
            functions.arn(Functions::name_of(reference))
        }
    }

    pub fn function_arn(&self) -> String {
        match self {
            Target::Function { functions, name } => Self::arn(name, functions),
            Target::Channel { channel, .. } => format!(
                "{CHANNEL_PREFIX}{}{}",
                channel.api_id.as_deref().unwrap_or_default(),
                channel.path
            ),
            Target::StateMachine { arn, .. } => arn.clone(),
        }
    }

    /// Send one batch: `event` to a function, or `data` (each record's) to
    /// the channel.
    pub async fn invoke(&self, event: Vec<u8>, data: &[&Value]) -> Invocation {
        match self {
            Target::Function { functions, name } => {
                match functions.invoke_built(name, Bytes::from(event)).await {
                    Ok(i) if i.function_error => Invocation::FunctionError(i.payload),
                    Ok(i) => Invocation::Returned(i.payload),
                    Err(e) => Invocation::NotRun(match e {
                        InvokeError::NotFound(n) => format!("Function not found: {n}"),
                        InvokeError::TooManyRequests(why) => format!("throttled: {why}"),
                        InvokeError::InvalidContent(m) => m,
                        InvokeError::TooLarge(max) => {
                            format!("the batch is larger than the {max}-byte invoke limit")
                        }
                        InvokeError::Service(m) => m,
                    }),
                }
            }
            Target::Channel { apis, channel } => {
                let texts = data.iter().map(|d| d.to_string()).collect();
                match channel.publish(apis, texts).await {
                    Ok(()) => Invocation::Returned(Bytes::new()),
                    Err(e) => Invocation::NotRun(e),
                }
            }
            Target::StateMachine { workflows, arn } => {
                let Some(w) = crate::workflow::running(workflows) else {
                    return Invocation::NotRun("workflows are not running yet".into());
                };
                let input: Value = serde_json::from_slice(&event).unwrap_or(Value::Null);
                match w.start(arn, None, input) {
                    Ok(_) => Invocation::Returned(Bytes::new()),
                    Err(e) => Invocation::NotRun(match e {
                        crate::workflow::StartError::NoMachine(m) => {
                            format!("State Machine Does Not Exist: '{m}'")
                        }
                        other => format!("{other:?}"),
                    }),
                }
            }
        }
    }
}
