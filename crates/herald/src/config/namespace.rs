//! Channel namespaces as the file writes them (AppSync's `ChannelNamespace`),
//! their handler settings, and the data sources DIRECT handlers call.

use super::{modes, valid_namespace_name, AuthMode, AuthType, NamespaceConfig};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// AppSync's `ChannelNamespace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceFile {
    pub name: String,
    pub publish_auth_modes: Option<Vec<AuthMode>>,
    pub subscribe_auth_modes: Option<Vec<AuthMode>>,
    /// The handler module's source (AppSync's `codeHandlers`).
    pub code_handlers: Option<String>,
    /// Herald: read `code_handlers` from this file instead.
    pub code_handlers_file: Option<PathBuf>,
    pub handler_configs: Option<HandlerConfigsFile>,
    pub tags: Option<toml::Table>,
    /// Herald: `{ size, ttl_secs }`, keep each channel's recent events.
    pub history: Option<crate::hub::history::HistoryFile>,
}

/// `[[data_sources]]`: a Lambda-style function reached over HTTP, for DIRECT
/// handlers (AppSync's `AWS_LAMBDA` data source; Herald calls an endpoint).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceFile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The function's HTTP(S) URL; it receives the handler payload as a JSON POST.
    pub endpoint: Option<String>,
    /// AppSync's `lambdaConfig`: a Herald function (its name or ARN), run
    /// in-process with no HTTP hop.
    pub lambda_config: Option<LambdaConfigFile>,
    pub timeout_ms: Option<u64>,
}

/// A data source's `lambda_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfigFile {
    pub lambda_function_arn: String,
}

/// `handler_configs` (AppSync's `HandlerConfigs`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfigsFile {
    pub on_publish: Option<HandlerConfigFile>,
    pub on_subscribe: Option<HandlerConfigFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfigFile {
    /// `CODE` or `DIRECT`.
    pub behavior: String,
    pub integration: IntegrationFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationFile {
    pub data_source_name: String,
    pub lambda_config: Option<LambdaInvokeFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaInvokeFile {
    /// `REQUEST_RESPONSE` (default) or `EVENT`.
    pub invoke_type: Option<String>,
}

/// What a DIRECT handler calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectTarget {
    /// A function reached over HTTP.
    Url(String),
    /// A Herald function (by name), run in-process.
    Function(String),
    /// A state machine (by ARN): the handler starts an execution (a Herald
    /// extension: `lambda_function_arn` names the machine).
    StateMachine(String),
}

impl DirectTarget {
    /// What a data source's `lambdaFunctionArn` names: a state machine
    /// (by its ARN) or a Herald function (by name or ARN).
    pub fn of(lambda_function_arn: &str) -> DirectTarget {
        if crate::workflow::is_state_machine(lambda_function_arn) {
            DirectTarget::StateMachine(lambda_function_arn.to_string())
        } else {
            DirectTarget::Function(
                crate::functions::Functions::name_of(lambda_function_arn).to_string(),
            )
        }
    }
}

/// A resolved DIRECT handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectConfig {
    pub target: DirectTarget,
    pub event: bool,
    pub timeout: Duration,
}

/// Checks a list of auth modes against the API's providers (`what` names it).
pub(super) type ModeCheck<'a> = dyn Fn(&str, &[AuthType]) -> Result<(), String> + 'a;

/// The namespaces: the file's, then `--namespace` ones, or `default` when
/// there are none; each with its auth modes (checked by `check`), handler
/// code and DIRECT handlers.
pub(super) fn resolve_namespaces(
    file: &super::ConfigFile,
    extra: &[String],
    default_publish: &[AuthType],
    default_subscribe: &[AuthType],
    check: &ModeCheck<'_>,
) -> Result<Vec<NamespaceConfig>, String> {
    let mut namespaces = Vec::new();
    let mut names = HashSet::new();
    for ns in &file.channel_namespaces {
        if !valid_namespace_name(&ns.name) {
            return Err(format!(
                "namespace name '{}' is invalid: 1-50 letters, digits or '-', not starting or ending with '-'",
                ns.name
            ));
        }
        if !names.insert(ns.name.clone()) {
            return Err(format!("namespace '{}' is defined twice", ns.name));
        }
        let direct = |h: &Option<HandlerConfigFile>,
                      which: &str|
         -> Result<Option<DirectConfig>, String> {
            let Some(h) = h else { return Ok(None) };
            let what = format!("namespace '{}' handler_configs.{which}", ns.name);
            if h.behavior != "DIRECT" {
                return Err(format!(
                    "{what}: behavior '{}' is not supported (DIRECT only; CODE handlers go in code_handlers)",
                    h.behavior
                ));
            }
            let ds = file
                .data_sources
                .iter()
                .find(|d| d.name == h.integration.data_source_name)
                .ok_or_else(|| {
                    format!(
                        "{what}: no data source named '{}'",
                        h.integration.data_source_name
                    )
                })?;
            let event = match h
                .integration
                .lambda_config
                .as_ref()
                .and_then(|l| l.invoke_type.as_deref())
            {
                None | Some("REQUEST_RESPONSE") => false,
                Some("EVENT") => true,
                Some(other) => {
                    return Err(format!(
                        "{what}: invoke_type '{other}' is not REQUEST_RESPONSE or EVENT"
                    ))
                }
            };
            let target = match (&ds.endpoint, &ds.lambda_config) {
                (Some(url), None) => DirectTarget::Url(url.clone()),
                (None, Some(l)) => DirectTarget::of(&l.lambda_function_arn),
                _ => unreachable!("checked with the data sources"),
            };
            Ok(Some(DirectConfig {
                target,
                event,
                timeout: Duration::from_millis(ds.timeout_ms.unwrap_or(30_000)),
            }))
        };
        let hc = ns.handler_configs.clone().unwrap_or_default();
        let direct_on_publish = direct(&hc.on_publish, "on_publish")?;
        let direct_on_subscribe = direct(&hc.on_subscribe, "on_subscribe")?;
        let code_handlers = match (&ns.code_handlers, &ns.code_handlers_file) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "namespace '{}': use code_handlers or code_handlers_file, not both",
                    ns.name
                ))
            }
            (Some(code), None) => Some(code.clone()),
            (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "namespace '{}': cannot read {}: {e}",
                    ns.name,
                    path.display()
                )
            })?),
            (None, None) => None,
        };
        if code_handlers.is_some() && (direct_on_publish.is_some() || direct_on_subscribe.is_some())
        {
            return Err(format!(
                "namespace '{}': use code_handlers or DIRECT handler_configs, not both",
                ns.name
            ));
        }
        let publish = modes(&ns.publish_auth_modes).unwrap_or_else(|| default_publish.to_vec());
        let subscribe =
            modes(&ns.subscribe_auth_modes).unwrap_or_else(|| default_subscribe.to_vec());
        check(
            &format!("namespace '{}' publish_auth_modes", ns.name),
            &publish,
        )?;
        check(
            &format!("namespace '{}' subscribe_auth_modes", ns.name),
            &subscribe,
        )?;
        namespaces.push(NamespaceConfig {
            name: ns.name.clone(),
            publish_auth_modes: publish,
            subscribe_auth_modes: subscribe,
            code_handlers,
            direct_on_publish,
            direct_on_subscribe,
            handler_configs: None,
            history: ns
                .history
                .as_ref()
                .map(|h| crate::hub::HistorySettings::check(h, &format!("namespace '{}'", ns.name)))
                .transpose()?,
        });
    }
    for name in extra {
        if !valid_namespace_name(name) {
            return Err(format!(
                "--namespace '{name}' is not a valid namespace name"
            ));
        }
        if names.insert(name.clone()) {
            namespaces.push(NamespaceConfig {
                name: name.clone(),
                publish_auth_modes: default_publish.to_vec(),
                subscribe_auth_modes: default_subscribe.to_vec(),
                code_handlers: None,
                direct_on_publish: None,
                direct_on_subscribe: None,
                handler_configs: None,
                history: None,
            });
        }
    }
    if namespaces.is_empty() {
        namespaces.push(NamespaceConfig {
            name: "default".into(),
            publish_auth_modes: default_publish.to_vec(),
            subscribe_auth_modes: default_subscribe.to_vec(),
            code_handlers: None,
            direct_on_publish: None,
            direct_on_subscribe: None,
            handler_configs: None,
            history: None,
        });
    }
    Ok(namespaces)
}
