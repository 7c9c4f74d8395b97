//! A connection's subscriptions: `subscribe` (authorized, filtered, and in a
//! namespace with history positioned and recovered), `unsubscribe`; and
//! `history` (Herald's extension: a page of a channel's history, with the
//! authorization of a subscription to it).

use super::{ActiveSub, Connection};
use crate::api::history::Since;
use crate::api::Caller;
use crate::hub::history::StreamTag;
use crate::hub::outbox::SharedEvents;
use crate::hub::{Gate, Outbound, Subscriber};
use herald_core::frame::ErrorFrame;
use herald_core::reply;
use herald_core::{ErrorType, OpError};
use std::sync::Arc;
use std::time::Instant;

impl Connection {
    pub(super) async fn subscribe(
        &mut self,
        id: String,
        channel: &str,
        authorization: Option<serde_json::Map<String, serde_json::Value>>,
        filter: Option<serde_json::Map<String, serde_json::Value>>,
        since: Option<serde_json::Map<String, serde_json::Value>>,
    ) {
        let fail = |e: OpError| reply::error_frame(ErrorFrame::Subscribe, Some(&id), &e);
        if self.subs.iter().any(|(sub_id, _)| **sub_id == *id) {
            let e = OpError::new(
                ErrorType::DuplicatedOperation,
                format!("Subscription id '{id}' is already in use on this connection"),
            );
            return self.send(fail(e));
        }
        let max = self.api.limits().max_subscriptions_per_connection;
        if self.subs.len() >= max {
            let e = OpError::new(
                ErrorType::MaxSubscriptionsReached,
                format!("A connection can hold at most {max} subscriptions"),
            );
            return self.send(fail(e));
        }
        let headers = self.evidence(authorization);
        let sub = match self
            .api
            .authorize_subscribe(
                channel,
                filter.as_ref(),
                Caller {
                    headers: &headers,
                    source_ip: Some(self.ctx.peer.ip()),
                    http: None,
                },
            )
            .await
        {
            Ok(ok) => ok,
            Err(e) => return self.send(fail(e)),
        };
        let since = match since.map(|s| Since::parse(&sub.pattern, &s)).transpose() {
            Ok(since) => since,
            Err(e) => return self.send(fail(e)),
        };
        let sub_id: Arc<str> = id.into();
        let crate::api::Subscription {
            pattern,
            identity,
            filter,
            history,
        } = sub;
        let gate = history.map(|_| Arc::new(Gate::new(self.api.config.outbound_queue_frames)));
        let subscriber = Subscriber {
            outbox: self.outbox.clone(),
            sub_id: sub_id.clone(),
            filter,
            gate: gate.clone(),
        };
        let outbox = &self.outbox;
        let unpositioned = gate.is_none();
        let key = self
            .api
            .hub
            .subscribe(&pattern, subscriber, || {
                if unpositioned {
                    let frame = match &since {
                        // `since` in a namespace without history: nothing to
                        // recover from, and the client must know.
                        Some(_) => reply::subscribe_success_with(
                            &sub_id,
                            serde_json::Map::from_iter([("recovered".into(), false.into())]),
                        ),
                        None => reply::subscribe_success(&sub_id),
                    };
                    outbox.push(Outbound::Frame(frame));
                }
            })
            .await;
        if let (Some(gate), Some(settings)) = (gate, history) {
            if let Err(e) = self
                .recover(&sub_id, &pattern, settings, since.as_ref(), &gate)
                .await
            {
                // The history could not be read (the broker is down): no
                // subscription rather than one with an unknown position.
                self.api.hub.unsubscribe(&pattern, key);
                return self.send(reply::error_frame(ErrorFrame::Subscribe, Some(&sub_id), &e));
            }
        }
        self.api.metrics.subscriptions.inc();
        tracing::debug!(sub = %sub_id, pattern = %pattern, "subscribed");
        self.subs.push((
            sub_id,
            ActiveSub {
                key,
                pattern,
                identity,
            },
        ));
    }

    /// Start a subscription of a namespace with history (inserted with its
    /// gate closed): `subscribe_success` with its positions, the missed
    /// events, then the held live ones (see [`crate::hub::gate`]). A long
    /// replay goes out in pieces of half the outbound queue, written as it
    /// goes, so it never overflows the queue on its own.
    async fn recover(
        &mut self,
        sub_id: &Arc<str>,
        pattern: &herald_core::ChannelPattern,
        settings: crate::hub::HistorySettings,
        since: Option<&Since>,
        gate: &Gate,
    ) -> Result<(), OpError> {
        let backend = crate::api::history::Backend::of(&self.api.hub);
        let plan = crate::api::history::recover(backend, pattern, settings, since).await?;
        let replayed: usize = plan.reads.iter().map(|r| r.entries.len()).sum();
        self.send(reply::subscribe_success_with(sub_id, plan.success));
        let max_frames = (self.api.config.outbound_queue_frames / 2).max(1);
        let max_bytes = self.api.config.outbound_queue_bytes / 2;
        for read in &plan.reads {
            let mut rest = &read.entries[..];
            while !rest.is_empty() {
                let mut n = 0;
                let mut bytes = 0;
                while n < rest.len()
                    && n < max_frames
                    && (n == 0 || bytes + rest[n].literal.len() <= max_bytes)
                {
                    bytes += rest[n].literal.len();
                    n += 1;
                }
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                let events = SharedEvents::tagged(
                    chunk.iter().map(|e| e.literal.clone()),
                    Some(StreamTag {
                        channel: read.channel.clone(),
                        epoch: read.top.epoch.clone(),
                        offsets: chunk.iter().map(|e| e.offset).collect(),
                    }),
                );
                self.outbox.push(Outbound::Data {
                    sub_id: sub_id.clone(),
                    events: Arc::new(events),
                    published_at: Instant::now(),
                });
                if !rest.is_empty() && self.write_queued().await.is_err() {
                    break; // the socket is gone; the connection loop ends it
                }
            }
        }
        if !gate.open(&self.outbox, &plan.tops) {
            tracing::warn!(sub = %sub_id, "slow consumer: live events overflowed while recovering");
            self.outbox.overflow();
        }
        self.api.metrics.history_replayed(replayed);
        tracing::debug!(sub = %sub_id, replayed, "subscription positioned");
        Ok(())
    }

    pub(super) fn unsubscribe(&mut self, id: &str) {
        let found = self.subs.iter().position(|(sub_id, _)| &**sub_id == id);
        match found.map(|i| self.subs.swap_remove(i).1) {
            Some(sub) => {
                self.api.hub.unsubscribe(&sub.pattern, sub.key);
                self.api.metrics.subscriptions.dec();
                self.send(reply::unsubscribe_success(id));
            }
            None => self.send_error(
                ErrorFrame::Unsubscribe,
                Some(id),
                &OpError::new(
                    ErrorType::UnknownOperation,
                    format!("Unknown operation id {id}"),
                ),
            ),
        }
    }

    /// `{"type":"history","id","channel","limit"?,"nextToken"?}`: the page
    /// `GET /event/history` answers, as `history_result` (or
    /// `history_error`).
    pub(super) async fn history_page(
        &mut self,
        id: &str,
        channel: &str,
        authorization: Option<serde_json::Map<String, serde_json::Value>>,
        limit: Option<u64>,
        next_token: Option<String>,
    ) -> String {
        let headers = self.evidence(authorization).into_owned();
        let caller = Caller {
            headers: &headers,
            source_ip: Some(self.ctx.peer.ip()),
            http: None,
        };
        let limit = limit.map(|l| l.to_string());
        let api = self.api.clone();
        match crate::api::history::read_page(
            &api,
            caller,
            channel,
            limit.as_deref(),
            next_token.as_deref(),
        )
        .await
        {
            Ok(mut page) => {
                page["type"] = "history_result".into();
                page["id"] = id.into();
                page.to_string()
            }
            Err(e) => reply::error_frame(ErrorFrame::History, Some(id), &e),
        }
    }
}
