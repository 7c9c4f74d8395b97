//! The Event API: the operations every front end (HTTP, WebSocket) shares.
//!
//! Each operation runs the same checks in the same order, so HTTP and WebSocket
//! answer alike: channel syntax, namespace exists, authorization for the
//! namespace's modes, then the request's own limits. Metrics are counted here,
//! once per operation, whatever the transport.

mod connections;
mod data_sources;
mod handlers;
pub mod history;
mod namespaces;
mod reconcile;
pub mod registry;

pub use reconcile::follow;
pub use registry::Registry;

use crate::auth::{AuthHeaders, AuthRequest, Authorizer, Identity, Operation, Signed};
use crate::config::{ApiConfig, AuthType, NamespaceConfig};
use crate::handlers::{Failure, HandlerPool, Kind, Outcome};
use crate::http_client::HttpClient;
use crate::hub::{Batch, EventFilter, Hub};
use crate::metrics::{Metrics, Transport};
use herald_core::error::UNAUTHORIZED_MESSAGE;
use herald_core::event::{validate_events, EncodedEvent};
use herald_core::reply::{Accepted, PublishResult, Rejected};
use herald_core::{Channel, ChannelPattern, ErrorType, Limits, OpError};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
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

/// An authorized subscription, ready for the hub.
pub struct Subscription {
    pub pattern: ChannelPattern,
    pub identity: Identity,
    pub filter: Option<Arc<EventFilter>>,
    /// The namespace's history, if it keeps one.
    pub history: Option<crate::hub::HistorySettings>,
}

/// A subscription filter, validated as an event pattern (Lambda's limit of
/// 4,096 characters).
fn event_pattern(v: &Value) -> Result<herald_pattern::Pattern, herald_pattern::PatternError> {
    herald_pattern::Pattern::parse(&v.to_string())
}

/// What `UpdateApi` changes while the API serves: AppSync's `name`,
/// `ownerContact` and `eventConfig` (auth providers and modes, log level),
/// and the authorizer built from them. Swapped whole, so an operation sees
/// one version from start to end; connections stay open and their next
/// operation uses the new one.
pub struct Live {
    /// The API's configuration as it is now. Read `name`, `owner_contact`,
    /// the auth providers and modes and the log level here, never from
    /// [`EventApi::config`], which keeps them as they were at start.
    pub config: ApiConfig,
    /// A created API as stored (`None` for the configuration file's).
    pub stored: Option<crate::store::StoredApi>,
    auth: Authorizer,
}

/// One Event API instance.
pub struct EventApi {
    /// The configuration the API started with; see [`Live`] for what changes.
    pub config: ApiConfig,
    live: std::sync::RwLock<Arc<Live>>,
    /// The API's keys, shared by every version of [`Live`].
    keys: Arc<crate::auth::ApiKeyStore>,
    /// Where the control plane keeps what it creates.
    pub store: crate::store::Store,
    /// Open WebSocket connections by the API key they connected with, so a
    /// deleted key ends them. Entries of closed connections are dropped when
    /// their key is deleted or the connection ends.
    key_connections: std::sync::Mutex<HashMap<String, Vec<std::sync::Weak<crate::hub::Outbox>>>>,
    /// Every open WebSocket connection, so deleting the API ends them.
    connections: std::sync::Mutex<Vec<std::sync::Weak<crate::hub::Outbox>>>,
    /// The namespaces: the file's, and those the admin API creates.
    namespaces: std::sync::RwLock<namespaces::Namespaces>,
    /// Data sources created through the admin API, by name (AppSync's shape).
    data_sources: std::sync::RwLock<std::collections::BTreeMap<String, Value>>,
    pub hub: Hub,
    pub metrics: Metrics,
    pub started: Instant,
    /// When the API was created (epoch seconds): the server's start for the
    /// file's API, the `CreateApi` call for the others.
    pub created: f64,
    handlers: Option<HandlerPool>,
    /// For DIRECT handlers.
    http: HttpClient,
    /// The server's functions (a DIRECT handler's data source may be one).
    pub functions: Arc<crate::functions::Functions>,
    /// The server's state machines (a DIRECT handler's data source may name
    /// one), shared by every API and set once the server has them.
    pub workflows: crate::workflow::WorkflowsSlot,
}

/// `arn:aws:appsync:<region>:<account>:apis/<apiId>`.
pub fn api_arn(config: &ApiConfig) -> String {
    format!(
        "arn:aws:appsync:{}:{}:apis/{}",
        config.aws_region, config.account_id, config.api_id
    )
}

impl EventApi {
    /// Build the API; namespaces' handler code is loaded (and checked) here.
    /// What the admin API created is applied by [`Registry::reconcile`].
    pub fn new(
        config: ApiConfig,
        mut hub: Hub,
        store: crate::store::Store,
        functions: Arc<crate::functions::Functions>,
        workflows: crate::workflow::WorkflowsSlot,
    ) -> Result<EventApi, String> {
        hub.set_faults(functions.faults().clone(), api_arn(&config));
        let code: HashMap<String, String> = config
            .namespaces
            .iter()
            .filter_map(|n| Some((n.name.clone(), n.code_handlers.clone()?)))
            .collect();
        // Always a pool, so a reload can add handlers to a namespace.
        let handlers = Some(HandlerPool::start(code, config.handlers)?);
        // The process's one outbound client (the functions' registry holds it).
        let http = functions.http().clone();
        let auth = Authorizer::new(&config, http.clone());
        let keys = auth.api_keys().clone();
        Ok(EventApi {
            live: std::sync::RwLock::new(Arc::new(Live {
                config: config.clone(),
                stored: None,
                auth,
            })),
            keys,
            functions,
            workflows,
            store,
            key_connections: Default::default(),
            connections: Default::default(),
            handlers,
            http,
            namespaces: std::sync::RwLock::new(namespaces::Namespaces::new(&config.namespaces)),
            data_sources: Default::default(),
            metrics: {
                let mut m = Metrics::new(config.namespaces.iter().map(|n| n.name.as_str()));
                m.register_engine(&hub.engine_metrics);
                m
            },
            config,
            hub,
            started: Instant::now(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64().floor())
                .unwrap_or(0.0),
        })
    }

    /// Build a created API (`CreateApi`, or one stored earlier) on top of the
    /// server's configuration `base`: its own hub, auth, handlers.
    pub async fn create(
        base: &ApiConfig,
        stored: &crate::store::StoredApi,
        store: crate::store::Store,
        functions: Arc<crate::functions::Functions>,
        workflows: crate::workflow::WorkflowsSlot,
    ) -> Result<Arc<EventApi>, String> {
        let config = ApiConfig::derived(
            base,
            &stored.api_id,
            &stored.name,
            stored.owner_contact.clone(),
            &stored.event_config,
        )?;
        let hub = Hub::from_config(&config).await?;
        let mut api = EventApi::new(config.clone(), hub, store, functions, workflows)?;
        api.created = stored.created;
        api.set_live(config, stored.clone());
        Ok(Arc::new(api))
    }

    /// What the API is now (see [`Live`]).
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap().clone()
    }

    /// Serve a created API's new settings (`UpdateApi`, here or on another
    /// node): `config` is derived from `stored`. Keys, namespaces,
    /// connections and subscriptions stay as they are.
    pub fn set_live(&self, config: ApiConfig, stored: crate::store::StoredApi) {
        let auth = Authorizer::with_keys(&config, self.keys.clone(), self.http.clone());
        *self.live.write().unwrap() = Arc::new(Live {
            config,
            stored: Some(stored),
            auth,
        });
    }

    /// The API's keys (the admin API changes them live).
    pub fn api_keys(&self) -> &crate::auth::ApiKeyStore {
        &self.keys
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    fn namespace(&self, name: &str) -> Result<Arc<NamespaceConfig>, OpError> {
        self.namespaces.read().unwrap().get(name).ok_or_else(|| {
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
        match self.live().auth.authorize(modes, &req).await {
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
        let live = self.live();
        live.auth
            .authorize(&live.config.connection_auth_modes, &req)
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
        let modes = self.live().config.connection_auth_modes.clone();
        self.authorize(&modes, req).await
    }

    /// Authorize a subscription; returns its parsed channel pattern, the
    /// identity, and its event filter: the client's `filter` (Herald's
    /// extension) and the one an `onSubscribe` handler set with
    /// `extensions.setSubscriptionFilter`, both of which events must match.
    pub async fn authorize_subscribe(
        &self,
        channel: &str,
        filter: Option<&serde_json::Map<String, Value>>,
        caller: Caller<'_>,
    ) -> Result<Subscription, OpError> {
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
            let mut patterns = Vec::new();
            if let Some(f) = filter {
                patterns.push(
                    event_pattern(&Value::Object(f.clone()))
                        .map_err(|e| OpError::bad_request(format!("Invalid filter: {e}")))?,
                );
            }
            if self.has_handler(&ns, Kind::OnSubscribe) {
                let path = pattern.to_string();
                let ctx = Self::handler_ctx(
                    &identity,
                    caller.headers,
                    &path,
                    &ns.name,
                    "SUBSCRIBE",
                    Value::Null,
                );
                match self.run_handler(&ns, Kind::OnSubscribe, &ctx).await {
                    Ok(Outcome::Absent | Outcome::Returned(_)) => {}
                    Ok(Outcome::SubscriptionFilter(f)) => {
                        patterns.push(event_pattern(&f).map_err(|e| {
                            tracing::warn!(namespace = %ns.name, error = %e, "onSubscribe set an invalid filter");
                            OpError::new(
                                ErrorType::InternalFailure,
                                format!("The onSubscribe handler set an invalid filter: {e}"),
                            )
                        })?);
                    }
                    Ok(Outcome::Error { message, .. }) => {
                        return Err(OpError::new(ErrorType::Forbidden, message))
                    }
                    Ok(Outcome::Unauthorized) => {
                        return Err(OpError::new(
                            ErrorType::SubscriptionUnauthorized,
                            UNAUTHORIZED_MESSAGE,
                        ))
                    }
                    Err(Failure(why)) => {
                        return Err(OpError::new(
                            ErrorType::InternalFailure,
                            format!("The onSubscribe handler failed: {why}"),
                        ))
                    }
                }
            }
            Ok(Subscription {
                pattern,
                identity,
                filter: EventFilter::new(patterns).map(Arc::new),
                history: ns.history,
            })
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
        let identity = self.authorize(&ns.publish_auth_modes, req).await?;
        let texts = validate_events(events, self.limits())?;
        self.deliver(&ns, &identity, caller.headers, channel, texts)
            .await
    }

    /// Publish events on Herald's own behalf (event source mappings' channel
    /// targets and destinations): no auth mode applies, everything else
    /// does (the namespace must exist, the limits, `onPublish`). Each text is
    /// one event (JSON); more than a request's limit go out in several
    /// batches, in order.
    pub async fn publish_system(
        &self,
        channel: &str,
        texts: Vec<String>,
    ) -> Result<PublishResult, OpError> {
        let parsed = Channel::parse(channel)?;
        let ns = self.namespace(parsed.namespace())?;
        let identity = Identity::Iam(Box::new(crate::auth::IamIdentity {
            account_id: Some(self.config.account_id.clone()),
            user_arn: format!("arn:aws:iam::{}:role/herald", self.config.account_id),
            username: "herald".into(),
            access_key_id: String::new(),
            source_ip: Vec::new(),
        }));
        let headers = AuthHeaders::default();
        let mut result = PublishResult::default();
        let per = self.limits().max_events_per_publish.max(1);
        for (n, chunk) in texts.chunks(per).enumerate() {
            let events = Value::Array(chunk.iter().map(|t| Value::String(t.clone())).collect());
            let texts = validate_events(Some(events), self.limits())?;
            let r = self
                .deliver(&ns, &identity, &headers, parsed.clone(), texts)
                .await?;
            self.metrics.publish_request(
                Transport::Http,
                Some(parsed.namespace()),
                r.successful.len(),
                Ok(()),
            );
            let offset = n * per;
            result
                .successful
                .extend(r.successful.into_iter().map(|mut a| {
                    a.index += offset;
                    a
                }));
            result.failed.extend(r.failed.into_iter().map(|mut f| {
                f.index += offset;
                f
            }));
        }
        Ok(result)
    }

    /// Validated events, by an authorized caller: `onPublish`, then out.
    async fn deliver(
        &self,
        ns: &NamespaceConfig,
        identity: &Identity,
        headers: &AuthHeaders,
        channel: Channel,
        texts: Vec<String>,
    ) -> Result<PublishResult, OpError> {
        let ids: Vec<String> = texts
            .iter()
            .map(|_| crate::new_uuid().to_string())
            .collect();
        let (send, failed) = self
            .on_publish(ns, identity, headers, &channel, &ids, texts)
            .await?;
        let mut result = PublishResult::default();
        for (index, identifier) in ids.iter().enumerate() {
            if !failed.iter().any(|r: &Rejected| r.index == index) {
                result.successful.push(Accepted {
                    identifier: identifier.clone(),
                    index,
                });
            }
        }
        result.failed = failed;
        if send.is_empty() {
            return Ok(result);
        }
        let encoded: Vec<EncodedEvent> =
            send.iter().map(|text| EncodedEvent::encode(text)).collect();
        let batch = Batch {
            channel,
            events: encoded,
            published_at: Instant::now(),
        };
        let (delivery, remote) = self.hub.publish(&batch, ns.history).await;
        self.metrics.delivered(batch.channel.namespace(), &delivery);
        if let Err(e) = remote {
            tracing::error!(engine = self.hub.engine.name(), error = %e.0, "publish did not reach other nodes");
            // With the broker's history nothing is delivered before the
            // broker has the events (see `hub::history::cluster`).
            let message = if ns.history.is_some() && self.hub.engine.history().is_some() {
                "The distribution engine is unavailable: the events were not published"
            } else {
                "The distribution engine is unavailable: the events reached subscribers on this node only"
            };
            return Err(OpError::new(ErrorType::ServiceUnavailable, message));
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

    /// Apply the namespace's `onPublish` to validated events: the texts to
    /// broadcast, in the handler's order, and the events it failed.
    async fn on_publish(
        &self,
        ns: &NamespaceConfig,
        identity: &Identity,
        headers: &AuthHeaders,
        channel: &Channel,
        ids: &[String],
        texts: Vec<String>,
    ) -> Result<(Vec<String>, Vec<Rejected>), OpError> {
        if !self.has_handler(ns, Kind::OnPublish) {
            return Ok((texts, Vec::new()));
        }
        let events: Vec<Value> = ids
            .iter()
            .zip(&texts)
            .map(|(id, text)| {
                let payload: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                serde_json::json!({"id": id, "payload": payload})
            })
            .collect();
        let ctx = Self::handler_ctx(
            identity,
            headers,
            channel.path(),
            &ns.name,
            "PUBLISH",
            Value::Array(events),
        );
        let returned = match self.run_handler(ns, Kind::OnPublish, &ctx).await {
            Ok(Outcome::Absent) => return Ok((texts, Vec::new())),
            Ok(Outcome::Returned(v)) => v,
            Ok(Outcome::SubscriptionFilter(_)) => {
                return Err(OpError::new(
                    ErrorType::InternalFailure,
                    "The onPublish handler called extensions.setSubscriptionFilter, which only onSubscribe may call",
                ))
            }
            Ok(Outcome::Error { message, .. }) => {
                return Err(OpError::new(ErrorType::Forbidden, message))
            }
            Ok(Outcome::Unauthorized) => return Err(OpError::unauthorized()),
            Err(Failure(why)) => {
                return Err(OpError::new(
                    ErrorType::InternalFailure,
                    format!("The onPublish handler failed: {why}"),
                ))
            }
        };
        let bad = |why: String| {
            tracing::warn!(namespace = %ns.name, error = %why, "onPublish returned an invalid result");
            OpError::new(
                ErrorType::InternalFailure,
                format!("The onPublish handler returned an invalid result: {why}"),
            )
        };
        let items = match returned {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            other => {
                return Err(bad(format!(
                    "expected an array of {{id, payload}} or null, got {other}"
                )))
            }
        };
        let mut seen = vec![false; ids.len()];
        let mut send = Vec::with_capacity(items.len());
        let mut failed = Vec::new();
        for item in items {
            if item.is_null() {
                continue;
            }
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("an entry has no string id".into()))?;
            let index = ids
                .iter()
                .position(|i| i == id)
                .ok_or_else(|| bad(format!("unknown event id '{id}'")))?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(bad(format!("event id '{id}' is returned twice")));
            }
            if let Some(err) = item.get("error").filter(|e| !e.is_null()) {
                let message = err
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| err.to_string());
                failed.push(Rejected {
                    identifier: id.to_string(),
                    index,
                    code: 400,
                    message,
                });
                continue;
            }
            let payload = item
                .get("payload")
                .ok_or_else(|| bad(format!("the entry for '{id}' has no payload")))?;
            let text = payload.to_string();
            if text.len() > self.limits().max_event_bytes {
                failed.push(Rejected {
                    identifier: id.to_string(),
                    index,
                    code: 413,
                    message: format!(
                        "The event is {} bytes after onPublish; the limit is {} bytes",
                        text.len(),
                        self.limits().max_event_bytes
                    ),
                });
                continue;
            }
            send.push(text);
        }
        let not_sent = ids.len() - send.len();
        if not_sent > 0 {
            self.metrics.dropped("handler", not_sent as u64);
        }
        Ok((send, failed))
    }
}
