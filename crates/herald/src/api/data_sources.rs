//! An API's data sources (AppSync's `CreateDataSource`), and the
//! `handlerConfigs` of namespaces created through the admin API, which name
//! them. A data source is `AWS_LAMBDA` with `lambdaConfig.lambdaFunctionArn`
//! naming a Herald function: a DIRECT handler that uses it runs that
//! function in-process. (Or, a Herald extension, naming a state machine: the
//! handler starts an execution.)

use super::EventApi;
use crate::config::{DirectConfig, DirectTarget};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a DIRECT handler waits for its function (AppSync's handler limit).
const DIRECT_TIMEOUT: Duration = Duration::from_secs(30);

impl EventApi {
    /// The data sources, by name (AppSync's JSON shape).
    pub fn data_sources(&self) -> BTreeMap<String, Value> {
        self.data_sources.read().unwrap().clone()
    }

    pub fn data_source(&self, name: &str) -> Option<Value> {
        self.data_sources.read().unwrap().get(name).cloned()
    }

    pub fn put_data_source(&self, name: &str, shape: Value) {
        self.data_sources
            .write()
            .unwrap()
            .insert(name.to_string(), shape);
    }

    pub fn remove_data_source(&self, name: &str) -> Option<Value> {
        self.data_sources.write().unwrap().remove(name)
    }

    /// The namespaces whose handlers use data source `name`.
    pub fn data_source_users(&self, name: &str) -> Vec<String> {
        self.namespace_list()
            .iter()
            .filter(|ns| {
                ns.handler_configs.as_ref().is_some_and(|h| {
                    ["onPublish", "onSubscribe"]
                        .iter()
                        .any(|k| h[*k]["integration"]["dataSourceName"] == name)
                })
            })
            .map(|ns| ns.name.clone())
            .collect()
    }

    /// AppSync's `handlerConfigs` as DIRECT handlers (`onPublish`,
    /// `onSubscribe`), checked against this API's data sources. `CODE`
    /// means the namespace's `codeHandlers` (no DIRECT handler).
    pub fn resolve_handler_configs(
        &self,
        configs: &Value,
    ) -> Result<(Option<DirectConfig>, Option<DirectConfig>), String> {
        let Value::Object(obj) = configs else {
            return Err("handlerConfigs must be an object".into());
        };
        if let Some(other) = obj
            .keys()
            .find(|k| *k != "onPublish" && *k != "onSubscribe")
        {
            return Err(format!("handlerConfigs: unknown member {other}"));
        }
        let one = |key: &str| -> Result<Option<DirectConfig>, String> {
            let Some(h) = obj.get(key).filter(|h| !h.is_null()) else {
                return Ok(None);
            };
            match h["behavior"].as_str() {
                Some("CODE") => return Ok(None),
                Some("DIRECT") => {}
                _ => {
                    return Err(format!(
                        "handlerConfigs.{key}.behavior must be CODE or DIRECT"
                    ))
                }
            }
            let integration = &h["integration"];
            let name = integration["dataSourceName"].as_str().ok_or_else(|| {
                format!("handlerConfigs.{key}.integration.dataSourceName is required")
            })?;
            let source = self
                .data_source(name)
                .ok_or_else(|| format!("Data source {name} not found."))?;
            let function = source["lambdaConfig"]["lambdaFunctionArn"]
                .as_str()
                .ok_or_else(|| format!("Data source {name} is not an AWS_LAMBDA data source"))?;
            let event = match integration["lambdaConfig"]["invokeType"].as_str() {
                None | Some("REQUEST_RESPONSE") => false,
                Some("EVENT") => true,
                Some(other) => {
                    return Err(format!(
                        "handlerConfigs.{key}: invokeType {other} is not REQUEST_RESPONSE or EVENT"
                    ))
                }
            };
            Ok(Some(DirectConfig {
                target: DirectTarget::of(function),
                event,
                timeout: DIRECT_TIMEOUT,
            }))
        };
        Ok((one("onPublish")?, one("onSubscribe")?))
    }
}
