//! Running a namespace's handlers (code in QuickJS, or DIRECT: a function over
//! HTTP or in-process) for the operations, counted in the metrics.

use super::EventApi;
use crate::auth::{AuthHeaders, Identity};
use crate::config::{ApiConfig, NamespaceConfig};
use crate::handlers::{DirectHandler, Failure, InvokeType, Kind, Outcome, Target};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Instant;

impl EventApi {
    /// Hot-reload the namespaces' handler code from `config` (same namespaces;
    /// see [`HandlerPool::reload`]). Returns the refusals.
    pub fn reload_handlers(&self, config: &ApiConfig) -> Vec<String> {
        let code: HashMap<String, String> = config
            .namespaces
            .iter()
            .filter(|n| self.namespace(&n.name).is_ok())
            .filter_map(|n| Some((n.name.clone(), n.code_handlers.clone()?)))
            .collect();
        match &self.handlers {
            Some(pool) => pool.reload(code),
            None => Vec::new(),
        }
    }

    /// Whether `ns` has a handler of this kind (code or DIRECT).
    pub(super) fn has_handler(&self, ns: &NamespaceConfig, kind: Kind) -> bool {
        let direct = match kind {
            Kind::OnPublish => ns.direct_on_publish.is_some(),
            Kind::OnSubscribe => ns.direct_on_subscribe.is_some(),
        };
        direct || self.handlers.as_ref().is_some_and(|p| p.has(&ns.name))
    }

    /// Run a namespace's handler (DIRECT or code), counting it. `Absent` when
    /// there is none.
    pub(super) async fn run_handler(
        &self,
        ns: &NamespaceConfig,
        kind: Kind,
        ctx: &Value,
    ) -> Result<Outcome, Failure> {
        let direct = match kind {
            Kind::OnPublish => ns.direct_on_publish.as_ref(),
            Kind::OnSubscribe => ns.direct_on_subscribe.as_ref(),
        };
        let started = Instant::now();
        let code = self.handlers.as_ref().filter(|p| p.has(&ns.name));
        // A running experiment may delay the handler, or fail it.
        let faults = self.functions.faults();
        let fault = match (direct, code) {
            // No handler, or no experiment: nothing to build the ARN for.
            (None, None) => Default::default(),
            _ if faults.idle() => Default::default(),
            _ => faults.on_invoke(&self.namespace_arn(&ns.name)),
        };
        if let Some(delay) = fault.delay {
            tokio::time::sleep(delay).await;
        }
        let injected = || Outcome::Error {
            message: "The handler failed by a fault injection experiment".into(),
            error_type: Some("FaultInjectionError".into()),
        };
        let result = match (direct, code) {
            _ if fault.replace.as_ref().is_some_and(|r| r.prevent_execution) => Ok(injected()),
            (Some(d), _) => {
                let handler = DirectHandler {
                    target: match &d.target {
                        crate::config::DirectTarget::Url(url) => Target::Url(url.clone()),
                        crate::config::DirectTarget::Function(name) => Target::Function {
                            functions: self.functions.clone(),
                            name: name.clone(),
                        },
                        crate::config::DirectTarget::StateMachine(arn) => Target::StateMachine {
                            workflows: self.workflows.clone(),
                            arn: arn.clone(),
                        },
                    },
                    invoke_type: if d.event {
                        InvokeType::Event
                    } else {
                        InvokeType::RequestResponse
                    },
                    timeout: d.timeout,
                    http: self.http.clone(),
                };
                handler.invoke(&ns.name, kind, ctx).await
            }
            (None, Some(pool)) => pool.invoke(&ns.name, kind, ctx).await.result,
            (None, None) => return Ok(Outcome::Absent),
        };
        let result = match (fault.replace, result) {
            // Ran, and its answer is replaced.
            (Some(_), Ok(_)) => Ok(injected()),
            (_, result) => result,
        };
        let label = match &result {
            Ok(Outcome::Absent) if direct.is_none() => return result,
            Ok(Outcome::Absent | Outcome::Returned(_) | Outcome::SubscriptionFilter(_)) => "ok",
            Ok(Outcome::Error { .. }) => "error",
            Ok(Outcome::Unauthorized) => "unauthorized",
            Err(Failure(why)) => {
                tracing::warn!(namespace = %ns.name, handler = kind.export(), error = %why, "handler failed");
                "failure"
            }
        };
        self.metrics.handler(
            &ns.name,
            kind.export(),
            label,
            started.elapsed().as_secs_f64(),
        );
        result
    }

    /// AppSync's handler `ctx` (the fields Herald fills; `channel`,
    /// `channelNamespace` and `operation` are copied to the top level in JS).
    pub(super) fn handler_ctx(
        identity: &Identity,
        headers: &AuthHeaders,
        path: &str,
        namespace: &str,
        operation: &str,
        events: Value,
    ) -> Value {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(k, _)| *k != "cookie")
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        serde_json::json!({
            "identity": identity.to_appsync(),
            "request": {"headers": headers, "domainName": null},
            "info": {
                "channel": {"path": path, "segments": path.trim_start_matches('/').split('/').collect::<Vec<_>>()},
                "channelNamespace": {"name": namespace},
                "operation": operation,
            },
            "events": events,
            "stash": {},
            "prev": null,
            "outErrors": [],
            "result": null,
            "error": null,
        })
    }
}
