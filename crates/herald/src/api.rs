//! The Event API: the operations every front end (HTTP, WebSocket) shares.
//!
//! Each operation runs the same checks in the same order, so HTTP and WebSocket
//! answer alike: channel syntax, namespace exists, authorization for the
//! namespace's modes, then the request's own limits. Metrics are counted here,
//! once per operation, whatever the transport.

use crate::auth::{AuthHeaders, AuthRequest, Authorizer, Identity, Operation, Signed};
use crate::config::{ApiConfig, AuthType, NamespaceConfig};
use crate::hub::{Batch, Hub};
use crate::metrics::{Metrics, Transport};
use herald_core::event::{validate_events, EncodedEvent};
use herald_core::reply::{Accepted, PublishResult};
use herald_core::{Channel, ChannelPattern, ErrorType, Limits, OpError};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Who is asking, and with what evidence.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub headers: &'a AuthHeaders,
    pub source_ip: Option<IpAddr>,
    /// The real HTTP request, for SigV4 over HTTP (`None` on WebSocket, where
    /// the signed request is rebuilt from the operation).
    pub http: Option<HttpRequestParts<'a>>,
}

/// What SigV4 needs of an HTTP request besides its headers.
#[derive(Clone, Copy)]
pub struct HttpRequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// One Event API instance.
pub struct EventApi {
    pub config: ApiConfig,
    namespaces: HashMap<String, NamespaceConfig>,
    auth: Authorizer,
    pub hub: Hub,
    pub metrics: Metrics,
    pub started: Instant,
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
            metrics: {
                let mut m = Metrics::new(config.namespaces.iter().map(|n| n.name.as_str()));
                m.register_engine(&hub.engine_metrics);
                m
            },
            config,
            hub,
            started: Instant::now(),
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

    /// Authorize and count; the denial reason goes to the log only.
    async fn authorize(
        &self,
        modes: &[AuthType],
        req: AuthRequest<'_>,
    ) -> Result<Identity, OpError> {
        let op = req.op.as_str();
        match self.auth.authorize(modes, &req).await {
            Ok(identity) => {
                self.metrics.auth(identity.auth_type().as_str(), op, true);
                Ok(identity)
            }
            Err(d) => {
                self.metrics.auth(d.mode, op, false);
                tracing::info!(operation = op, channel = req.channel, reason = %d.reason, "authorization denied");
                Err(OpError::unauthorized())
            }
        }
    }

    fn signed<'a>(caller: &Caller<'a>, ws: Signed<'a>) -> Signed<'a> {
        match caller.http {
            Some(h) => Signed::Http {
                method: h.method,
                path: h.path,
                query: h.query,
                body: h.body,
            },
            None => ws,
        }
    }

    /// Whether `caller` would be allowed to connect; for the console's stats,
    /// not counted in the auth metrics.
    pub async fn may_connect(&self, caller: Caller<'_>) -> bool {
        let req = AuthRequest {
            op: Operation::Connect,
            headers: caller.headers,
            namespace: None,
            channel: None,
            signed: Self::signed(&caller, Signed::Connect),
            source_ip: caller.source_ip,
        };
        self.auth
            .authorize(&self.config.connection_auth_modes, &req)
            .await
            .is_ok()
    }

    /// Authorize a WebSocket connection.
    pub async fn authorize_connect(&self, caller: Caller<'_>) -> Result<Identity, OpError> {
        let req = AuthRequest {
            op: Operation::Connect,
            headers: caller.headers,
            namespace: None,
            channel: None,
            signed: Signed::Connect,
            source_ip: caller.source_ip,
        };
        self.authorize(&self.config.connection_auth_modes, req)
            .await
    }

    /// Authorize a subscription; returns its parsed pattern.
    pub async fn authorize_subscribe(
        &self,
        channel: &str,
        caller: Caller<'_>,
    ) -> Result<(ChannelPattern, Identity), OpError> {
        let mut namespace = None;
        let result = async {
            let pattern = ChannelPattern::parse(channel)?;
            namespace = Some(pattern.namespace().to_string());
            let ns = self.namespace(pattern.namespace())?;
            let req = AuthRequest {
                op: Operation::Subscribe,
                headers: caller.headers,
                namespace: Some(pattern.namespace()),
                channel: Some(channel),
                signed: Self::signed(&caller, Signed::Subscribe { channel }),
                source_ip: caller.source_ip,
            };
            let identity = self.authorize(&ns.subscribe_auth_modes, req).await?;
            Ok((pattern, identity))
        }
        .await;
        self.metrics
            .subscribe_request(namespace.as_deref(), result.as_ref().map(|_| ()));
        result
    }

    /// Publish `events` (the raw `events` field) to `channel`.
    pub async fn publish(
        &self,
        transport: Transport,
        channel: &str,
        events: Option<Value>,
        caller: Caller<'_>,
    ) -> Result<PublishResult, OpError> {
        let offered = match &events {
            Some(Value::Array(a)) => a.len() as u64,
            _ => 1,
        };
        let mut namespace = None;
        let result = self
            .publish_inner(channel, events, caller, &mut namespace)
            .await;
        let accepted = result.as_ref().map_or(0, |r| r.successful.len());
        self.metrics.publish_request(
            transport,
            namespace.as_deref(),
            accepted,
            result.as_ref().map(|_| ()),
        );
        match result.as_ref().map_err(|e| e.kind) {
            Err(ErrorType::Unauthorized) => self.metrics.dropped("auth", offered),
            Err(ErrorType::PayloadTooLarge) => self.metrics.dropped("size", offered),
            _ => {}
        }
        result
    }

    async fn publish_inner(
        &self,
        channel: &str,
        events: Option<Value>,
        caller: Caller<'_>,
        namespace: &mut Option<String>,
    ) -> Result<PublishResult, OpError> {
        let raw_channel = channel;
        let channel = Channel::parse(channel)?;
        *namespace = Some(channel.namespace().to_string());
        let ns = self.namespace(channel.namespace())?;
        let req = AuthRequest {
            op: Operation::Publish,
            headers: caller.headers,
            namespace: Some(channel.namespace()),
            channel: Some(raw_channel),
            signed: Self::signed(
                &caller,
                Signed::Publish {
                    channel: raw_channel,
                    events: events.as_ref(),
                },
            ),
            source_ip: caller.source_ip,
        };
        self.authorize(&ns.publish_auth_modes, req).await?;
        let texts = validate_events(events, self.limits())?;
        let mut result = PublishResult::default();
        let mut encoded = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            encoded.push(EncodedEvent::encode(text));
            result.successful.push(Accepted {
                identifier: crate::new_uuid().to_string(),
                index,
            });
        }
        let batch = Batch {
            channel,
            events: encoded,
            published_at: Instant::now(),
        };
        let (delivery, remote) = self.hub.publish(&batch).await;
        self.metrics
            .delivered(batch.channel.namespace(), delivery.queued, delivery.dropped);
        if let Err(e) = remote {
            tracing::error!(engine = self.hub.engine.name(), error = %e.0, "publish did not reach other nodes");
            return Err(OpError::new(
                ErrorType::ServiceUnavailable,
                "The distribution engine is unavailable: the events reached subscribers on this node only",
            ));
        }
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
