//! Reading channel history for clients: a subscription's `since` (what to
//! recover, and the positions `subscribe_success` reports) and the history
//! read API's pages. The streams themselves are the hub's
//! ([`crate::hub::history`]).

use crate::hub::history::{ClusterHistory, Position, Read};
use crate::hub::{EngineError, HistorySettings, Hub, MemoryHistory};
use herald_core::error::{ErrorType, OpError};
use herald_core::ChannelPattern;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A subscription's `since`, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Since {
    /// A subscription to one channel: from this position.
    Channel(Position),
    /// A wildcard: from these positions, by channel; channels not listed
    /// (the client saw none of their events) from their first event.
    Channels(BTreeMap<String, Position>),
}

fn position(v: &Value, what: &str) -> Result<Position, OpError> {
    let bad = || {
        OpError::bad_request(format!(
            "{what} must be {{\"offset\": <non-negative integer>, \"epoch\": <string>}}"
        ))
    };
    let offset = v.get("offset").and_then(Value::as_u64).ok_or_else(bad)?;
    let epoch = v.get("epoch").and_then(Value::as_str).ok_or_else(bad)?;
    Ok(Position {
        offset,
        epoch: epoch.into(),
    })
}

impl Since {
    /// Read the `since` of a subscription to `pattern`.
    pub fn parse(pattern: &ChannelPattern, since: &Map<String, Value>) -> Result<Since, OpError> {
        match pattern {
            ChannelPattern::Exact(_) => Ok(Since::Channel(position(
                &Value::Object(since.clone()),
                "'since'",
            )?)),
            ChannelPattern::Prefix(_) => {
                let Some(Value::Object(channels)) = since.get("channels") else {
                    return Err(OpError::bad_request(
                        "'since' of a wildcard subscription must be {\"channels\": {<channel>: {\"offset\", \"epoch\"}}}",
                    ));
                };
                let mut out = BTreeMap::new();
                for (path, p) in channels {
                    let channel = herald_core::Channel::parse(path).map_err(|_| {
                        OpError::bad_request(format!("'since': '{path}' is not a channel"))
                    })?;
                    if !pattern.matches(&channel) {
                        return Err(OpError::bad_request(format!(
                            "'since': channel {path} is not under {pattern}"
                        )));
                    }
                    out.insert(
                        channel.path().to_string(),
                        position(p, &format!("'since' of {path}"))?,
                    );
                }
                Ok(Since::Channels(out))
            }
        }
    }
}

/// Where a hub keeps history: this node's memory, or the engine's broker.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    Memory(&'a MemoryHistory),
    Cluster(&'a dyn ClusterHistory),
}

impl<'a> Backend<'a> {
    pub fn of(hub: &'a Hub) -> Backend<'a> {
        match hub.engine.history() {
            Some(cluster) => Backend::Cluster(cluster),
            None => Backend::Memory(&hub.history),
        }
    }

    async fn recover(
        self,
        channel: &str,
        settings: HistorySettings,
        since: Option<&Position>,
        create: bool,
    ) -> Result<Option<Read>, OpError> {
        match self {
            Backend::Memory(m) => Ok(m.recover(channel, settings, since, create)),
            Backend::Cluster(c) => c
                .recover(channel, settings, since, create)
                .await
                .map_err(unavailable),
        }
    }

    async fn page(
        self,
        channel: &str,
        settings: HistorySettings,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Option<(Read, bool)>, OpError> {
        match self {
            Backend::Memory(m) => Ok(m.page(channel, settings, after, limit)),
            Backend::Cluster(c) => c
                .page(channel, settings, after, limit)
                .await
                .map_err(unavailable),
        }
    }

    async fn matching(self, pattern: &ChannelPattern) -> Result<Vec<Arc<str>>, OpError> {
        match self {
            Backend::Memory(m) => Ok(m.matching(pattern)),
            Backend::Cluster(c) => c.matching(pattern).await.map_err(unavailable),
        }
    }
}

fn unavailable(e: EngineError) -> OpError {
    OpError::new(
        ErrorType::ServiceUnavailable,
        format!("Channel history is unavailable: {}", e.0),
    )
}

/// What a subscription in a namespace with history starts with.
pub struct Recovery {
    /// The streams' reads, each with the events to replay (in order).
    pub reads: Vec<Read>,
    /// `subscribe_success`'s extra members.
    pub success: Map<String, Value>,
    /// Each read's top (channel -> (epoch, offset)): live events held while
    /// recovering are skipped up to it.
    pub tops: HashMap<Arc<str>, (Arc<str>, u64)>,
}

fn shape(read: &Read, recovered: Option<bool>) -> Value {
    let mut v = json!({"offset": read.top.offset, "epoch": &*read.top.epoch});
    if let Some(r) = recovered {
        v["recovered"] = json!(r);
    }
    v
}

/// Read the streams a subscription to `pattern` starts from (see
/// [`crate::hub::gate`] for how the switch to live events stays exact).
pub async fn recover(
    history: Backend<'_>,
    pattern: &ChannelPattern,
    settings: HistorySettings,
    since: Option<&Since>,
) -> Result<Recovery, OpError> {
    let mut reads = Vec::new();
    let mut success = Map::new();
    match pattern {
        ChannelPattern::Exact(c) => {
            let from = match since {
                Some(Since::Channel(p)) => Some(p),
                _ => None,
            };
            if let Some(read) = history.recover(c.path(), settings, from, true).await? {
                if let Value::Object(o) = shape(&read, from.map(|_| read.recovered)) {
                    success = o;
                }
                reads.push(read);
            }
        }
        ChannelPattern::Prefix(_) => {
            let listed = match since {
                Some(Since::Channels(m)) => Some(m),
                _ => None,
            };
            let mut channels = Map::new();
            let mut all = true;
            let mut names: Vec<Arc<str>> = history.matching(pattern).await?;
            if let Some(m) = listed {
                names.extend(m.keys().map(|k| Arc::from(k.as_str())));
                names.sort();
                names.dedup();
            }
            for name in names {
                let read = match listed {
                    None => history.recover(&name, settings, None, false).await?,
                    Some(m) => match m.get(&*name) {
                        Some(p) => history.recover(&name, settings, Some(p), false).await?,
                        // Not seen by the client: from the stream's start.
                        None => match history.recover(&name, settings, None, false).await? {
                            None => None,
                            Some(r) => {
                                let start = Position {
                                    offset: 0,
                                    epoch: r.top.epoch,
                                };
                                history
                                    .recover(&name, settings, Some(&start), false)
                                    .await?
                            }
                        },
                    },
                };
                match read {
                    Some(read) => {
                        all &= read.recovered;
                        channels.insert(
                            name.to_string(),
                            shape(&read, listed.map(|_| read.recovered)),
                        );
                        reads.push(read);
                    }
                    // Listed, but its stream is gone: its history was lost.
                    None => {
                        all = false;
                        channels.insert(name.to_string(), json!({"recovered": false}));
                    }
                }
            }
            success.insert("channels".into(), Value::Object(channels));
            if listed.is_some() {
                success.insert("recovered".into(), json!(all));
            }
        }
    }
    let tops = reads
        .iter()
        .map(|r| (r.channel.clone(), (r.top.epoch.clone(), r.top.offset)))
        .collect();
    Ok(Recovery {
        reads,
        success,
        tops,
    })
}

/// Keep the page's events that `filter` (a subscription filter, as an
/// `onSubscribe` handler sets) accepts.
pub fn filter_page(page: &mut Value, filter: Option<&crate::hub::EventFilter>) {
    if let (Some(filter), Some(Value::Array(events))) = (filter, page.get_mut("events")) {
        events.retain(|e| {
            let payload = e["event"]
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok());
            filter.accepts(payload.as_ref())
        });
    }
}

/// Most events one history page returns.
pub const MAX_PAGE: usize = 1000;

/// A page request's `limit` (default 100) and `nextToken`, checked.
pub fn page_request(
    limit: Option<&str>,
    next_token: Option<&str>,
) -> Result<(usize, Option<u64>), OpError> {
    let limit = match limit.map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(OpError::bad_request(format!(
                "limit must be an integer from 1 to {MAX_PAGE}"
            )))
        }
    };
    let after = match next_token.map(str::parse::<u64>) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return Err(OpError::bad_request(
                "nextToken is not one this server gave",
            ))
        }
    };
    Ok((limit, after))
}

/// A read API page: `{"channel", "epoch", "offset", "events": [{"offset",
/// "event", "timestamp"}], "nextToken"?}`; `after` continues a previous
/// page (its `nextToken`). An unknown channel reads as empty.
pub async fn page(
    history: Backend<'_>,
    channel: &str,
    settings: HistorySettings,
    after: Option<u64>,
    limit: usize,
) -> Result<Value, OpError> {
    let Some((read, more)) = history.page(channel, settings, after, limit).await? else {
        return Ok(json!({"channel": channel, "offset": 0, "epoch": null, "events": []}));
    };
    let events: Vec<Value> = read
        .entries
        .iter()
        .map(|e| {
            let text: String = serde_json::from_str(&e.literal).unwrap_or_default();
            json!({"offset": e.offset, "event": text, "timestamp": e.at_ms})
        })
        .collect();
    let mut v = json!({
        "channel": channel,
        "epoch": &*read.top.epoch,
        "offset": read.top.offset,
        "events": events,
    });
    if after.is_some() && !read.recovered {
        // Events between `after` and the first one here are no longer kept.
        v["gap"] = json!(true);
    }
    if more {
        if let Some(last) = read.entries.last() {
            v["nextToken"] = json!(last.offset.to_string());
        }
    }
    Ok(v)
}

/// A page of `channel`'s history for `caller` (`limit` and `nextToken` as
/// received), authorized as a subscription to the channel: its auth modes,
/// and its `onSubscribe` handler, whose filter applies to the page.
pub async fn read_page(
    api: &super::EventApi,
    caller: super::Caller<'_>,
    channel: &str,
    limit: Option<&str>,
    next_token: Option<&str>,
) -> Result<serde_json::Value, OpError> {
    let (limit, after) = crate::api::history::page_request(limit, next_token)?;
    let parsed = herald_core::Channel::parse(channel)?;
    let sub = api.authorize_subscribe(parsed.path(), None, caller).await?;
    let Some(settings) = sub.history else {
        return Err(OpError::bad_request(format!(
            "Namespace {} keeps no history",
            parsed.namespace()
        )));
    };
    let backend = crate::api::history::Backend::of(&api.hub);
    let mut page =
        crate::api::history::page(backend, parsed.path(), settings, after, limit).await?;
    crate::api::history::filter_page(&mut page, sub.filter.as_deref());
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::history::HistoryLimits;
    use std::time::Duration;

    #[test]
    fn since_is_checked_against_the_pattern() {
        let exact = ChannelPattern::parse("/ns/a").unwrap();
        let wild = ChannelPattern::parse("/ns/*").unwrap();
        let obj = |t: &str| serde_json::from_str::<Map<String, Value>>(t).unwrap();
        assert_eq!(
            Since::parse(&exact, &obj(r#"{"offset":3,"epoch":"e"}"#)).unwrap(),
            Since::Channel(Position {
                offset: 3,
                epoch: "e".into()
            })
        );
        for (pattern, bad, says) in [
            (&exact, r#"{"offset":-1,"epoch":"e"}"#, "non-negative"),
            (&exact, r#"{"offset":1}"#, "epoch"),
            (&wild, r#"{"offset":1,"epoch":"e"}"#, "channels"),
            (
                &wild,
                r#"{"channels":{"/other/a":{"offset":1,"epoch":"e"}}}"#,
                "not under",
            ),
            (
                &wild,
                r#"{"channels":{"/ns/a":{"offset":"1","epoch":"e"}}}"#,
                "/ns/a",
            ),
        ] {
            let e = Since::parse(pattern, &obj(bad)).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
    }

    /// The switch from history to live, with events published at each
    /// step: after the insert (held, and also in the read), after the read
    /// (held, not in the read), after the gate opens (live).
    #[tokio::test]
    async fn the_switch_has_no_gap_and_no_duplicate() {
        use crate::hub::outbox::{Outbound, Outbox};
        use crate::hub::{Batch, Gate, Hub, Subscriber};
        use herald_core::event::EncodedEvent;
        let hub = Hub::memory();
        let set = HistorySettings {
            size: 100,
            ttl: Duration::from_secs(60),
        };
        let channel = herald_core::Channel::parse("/ns/a").unwrap();
        let publish = |n: u64| {
            let batch = Batch {
                channel: channel.clone(),
                events: vec![EncodedEvent::encode(&n.to_string())],
                published_at: std::time::Instant::now(),
            };
            let hub = &hub;
            async move {
                let _ = hub.publish(&batch, Some(set)).await;
            }
        };
        for n in 1..=3 {
            publish(n).await;
        }
        let epoch = hub
            .history
            .recover("/ns/a", set, None, false)
            .unwrap()
            .top
            .epoch;
        let outbox = Arc::new(Outbox::new(1000, 1 << 20));
        let gate = Arc::new(Gate::new(1000));
        let pattern = ChannelPattern::parse("/ns/a").unwrap();
        let sub = Subscriber {
            outbox: outbox.clone(),
            sub_id: "s".into(),
            filter: None,
            gate: Some(gate.clone()),
        };
        hub.subscribe(&pattern, sub, || {}).await;
        publish(4).await; // held, and in the read
        let since = Since::Channel(Position { offset: 1, epoch });
        let plan = recover(Backend::Memory(&hub.history), &pattern, set, Some(&since))
            .await
            .unwrap();
        publish(5).await; // held, after the read
        let mut offsets: Vec<u64> = plan.reads[0].entries.iter().map(|e| e.offset).collect();
        assert!(gate.open(&outbox, &plan.tops));
        publish(6).await; // live
        let mut out = Vec::new();
        outbox.drain_into(&mut out);
        for item in out {
            if let Outbound::Data { events, .. } = item {
                offsets.extend(events.stream.as_ref().unwrap().offsets.iter());
            }
        }
        assert_eq!(offsets, [2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn wildcard_recovery_per_channel() {
        let h = MemoryHistory::new(HistoryLimits::default());
        let set = HistorySettings {
            size: 3,
            ttl: Duration::from_secs(60),
        };
        let lit = |s: &str| -> Arc<str> { format!("\"{s}\"").into() };
        let a = h.append("/ns/a", set, &[lit("a1"), lit("a2")], |t| t.epoch);
        let b = h.append("/ns/b", set, &[lit("b1")], |t| t.epoch);
        // Subscribed fresh: every channel's position.
        let wild = ChannelPattern::parse("/ns/*").unwrap();
        let r = recover(Backend::Memory(&h), &wild, set, None)
            .await
            .unwrap();
        assert!(r.reads.iter().all(|r| r.entries.is_empty()));
        assert_eq!(r.success["channels"]["/ns/a"]["offset"], 2);
        assert!(r.success.get("recovered").is_none());
        // Then, while away: a3 on /ns/a, a new channel /ns/c.
        h.append("/ns/a", set, &[lit("a3")], |_| ());
        h.append("/ns/c", set, &[lit("c1"), lit("c2")], |_| ());
        let since = Since::Channels(BTreeMap::from([
            (
                "/ns/a".to_string(),
                Position {
                    offset: 2,
                    epoch: a.clone(),
                },
            ),
            (
                "/ns/b".to_string(),
                Position {
                    offset: 1,
                    epoch: b.clone(),
                },
            ),
        ]));
        let r = recover(Backend::Memory(&h), &wild, set, Some(&since))
            .await
            .unwrap();
        let replayed: Vec<(String, u64)> = r
            .reads
            .iter()
            .flat_map(|read| {
                read.entries
                    .iter()
                    .map(|e| (read.channel.to_string(), e.offset))
            })
            .collect();
        assert_eq!(
            replayed,
            [
                ("/ns/a".into(), 3),
                ("/ns/c".into(), 1),
                ("/ns/c".into(), 2)
            ]
        );
        assert_eq!(r.success["recovered"], true);
        // /ns/a trimmed past the position: that channel, and so the whole, is not recovered.
        h.append("/ns/a", set, &[lit("a4"), lit("a5"), lit("a6")], |_| ());
        let r = recover(Backend::Memory(&h), &wild, set, Some(&since))
            .await
            .unwrap();
        assert_eq!(r.success["recovered"], false);
        assert_eq!(r.success["channels"]["/ns/a"]["recovered"], false);
        assert_eq!(r.success["channels"]["/ns/b"]["recovered"], true);
    }
}
