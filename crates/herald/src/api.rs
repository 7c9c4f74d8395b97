//! The Event API: the operations every front end (HTTP, WebSocket) shares.
//!
//! Each operation runs the same checks in the same order, so HTTP and WebSocket
//! answer alike: channel syntax, namespace exists, authorization for the
//! namespace's modes, then the request's own limits.

use crate::auth::{AuthHeaders, Authorizer, Denied, Identity, Operation};
use crate::config::{ApiConfig, NamespaceConfig};
use crate::hub::{Batch, Hub};
use herald_core::event::{validate_events, EncodedEvent};
use herald_core::reply::{Accepted, PublishResult};
use herald_core::{Channel, ChannelPattern, ErrorType, Limits, OpError};
use serde_json::Value;
use std::collections::HashMap;

/// One Event API instance.
pub struct EventApi {
    pub config: ApiConfig,
    namespaces: HashMap<String, NamespaceConfig>,
    auth: Authorizer,
    pub hub: Hub,
}

impl EventApi {
    pub fn new(config: ApiConfig, hub: Hub) -> EventApi {
        EventApi {
            namespaces: config
                .namespaces
                .iter()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            auth: Authorizer::new(&config),
            config,
            hub,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    fn namespace(&self, name: &str) -> Result<&NamespaceConfig, OpError> {
        self.namespaces.get(name).ok_or_else(|| {
            OpError::bad_request(format!("Channel namespace '{name}' does not exist"))
        })
    }

    fn denied(op: Operation, channel: &str, d: Denied) -> OpError {
        tracing::info!(operation = op.as_str(), channel, reason = %d.reason, "authorization denied");
        OpError::unauthorized()
    }

    /// Authorize a WebSocket connection.
    pub async fn authorize_connect(&self, headers: &AuthHeaders) -> Result<Identity, OpError> {
        self.auth
            .authorize(
                Operation::Connect,
                &self.config.connection_auth_modes,
                headers,
            )
            .await
            .map_err(|d| Self::denied(Operation::Connect, "", d))
    }

    /// Authorize a subscription; returns its parsed pattern.
    pub async fn authorize_subscribe(
        &self,
        channel: &str,
        headers: &AuthHeaders,
    ) -> Result<(ChannelPattern, Identity), OpError> {
        let pattern = ChannelPattern::parse(channel)?;
        let ns = self.namespace(pattern.namespace())?;
        let identity = self
            .auth
            .authorize(Operation::Subscribe, &ns.subscribe_auth_modes, headers)
            .await
            .map_err(|d| Self::denied(Operation::Subscribe, channel, d))?;
        Ok((pattern, identity))
    }

    /// Publish `events` (the raw `events` field) to `channel`.
    pub async fn publish(
        &self,
        channel: &str,
        events: Option<Value>,
        headers: &AuthHeaders,
    ) -> Result<PublishResult, OpError> {
        let channel = Channel::parse(channel)?;
        let ns = self.namespace(channel.namespace())?;
        self.auth
            .authorize(Operation::Publish, &ns.publish_auth_modes, headers)
            .await
            .map_err(|d| Self::denied(Operation::Publish, channel.path(), d))?;
        let texts = validate_events(events, self.limits())?;
        let mut result = PublishResult::default();
        let mut encoded = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            encoded.push(EncodedEvent::encode(text));
            result.successful.push(Accepted {
                identifier: uuid::Uuid::new_v4().to_string(),
                index,
            });
        }
        let batch = Batch {
            channel,
            events: encoded,
        };
        let delivery = self.hub.engine.publish(&batch).await.map_err(|e| {
            tracing::error!(engine = self.hub.engine.name(), error = %e.0, "publish failed");
            OpError::new(
                ErrorType::InternalFailure,
                "The event could not be delivered: the distribution engine is unavailable",
            )
        })?;
        tracing::debug!(
            channel = batch.channel.path(),
            events = batch.events.len(),
            queued = delivery.queued,
            dropped = delivery.dropped,
            "published"
        );
        Ok(result)
    }
}
