//! The subscription index: which subscribers a publish to a channel reaches.
//!
//! Two hash maps, one for exact channels and one for wildcard prefixes. A channel
//! has at most 5 segments, so a publish to `/a/b/c` costs one exact lookup
//! (`/a/b/c`) and one prefix lookup per proper prefix (`/a/b`, `/a`): at most 5
//! hash lookups, whatever the number of unrelated subscriptions. This is what
//! nats-server's sublist achieves with a trie and a match cache; with a depth
//! bound of 5 the plain maps get there without either.
//!
//! The index is generic over the subscriber value and knows nothing of sockets;
//! the hub wraps it in a lock.

use crate::channel::{Channel, ChannelPattern};
use std::collections::HashMap;

/// A unique key per subscription, chosen by the caller (used for removal).
pub type SubKey = u64;

/// Subscribers by pattern.
#[derive(Debug)]
pub struct SubscriptionIndex<T> {
    exact: HashMap<Box<str>, Vec<(SubKey, T)>>,
    prefix: HashMap<Box<str>, Vec<(SubKey, T)>>,
    len: usize,
}

impl<T> Default for SubscriptionIndex<T> {
    fn default() -> Self {
        SubscriptionIndex {
            exact: HashMap::new(),
            prefix: HashMap::new(),
            len: 0,
        }
    }
}

impl<T> SubscriptionIndex<T> {
    pub fn new() -> Self {
        Self::default()
    }

    fn map_for(&mut self, pattern: &ChannelPattern) -> &mut HashMap<Box<str>, Vec<(SubKey, T)>> {
        match pattern {
            ChannelPattern::Exact(_) => &mut self.exact,
            ChannelPattern::Prefix(_) => &mut self.prefix,
        }
    }

    /// Add a subscriber. Keys must be unique; the index does not check.
    pub fn insert(&mut self, pattern: &ChannelPattern, key: SubKey, value: T) {
        let path = pattern.channel().path();
        let map = self.map_for(pattern);
        match map.get_mut(path) {
            Some(list) => list.push((key, value)),
            None => {
                map.insert(path.into(), vec![(key, value)]);
            }
        }
        self.len += 1;
    }

    /// Remove a subscriber; returns its value if it was there. Empty entries are
    /// dropped so the maps do not grow with channels nobody listens to any more.
    pub fn remove(&mut self, pattern: &ChannelPattern, key: SubKey) -> Option<T> {
        let path = pattern.channel().path();
        let map = self.map_for(pattern);
        let list = map.get_mut(path)?;
        let pos = list.iter().position(|(k, _)| *k == key)?;
        let (_, value) = list.swap_remove(pos);
        if list.is_empty() {
            map.remove(path);
        }
        self.len -= 1;
        Some(value)
    }

    /// Call `f` for every subscriber a publish to `channel` reaches.
    pub fn for_each_match(&self, channel: &Channel, mut f: impl FnMut(SubKey, &T)) {
        if let Some(list) = self.exact.get(channel.path()) {
            list.iter().for_each(|(k, v)| f(*k, v));
        }
        if self.prefix.is_empty() {
            return;
        }
        for n in 1..channel.depth() {
            if let Some(list) = self.prefix.get(channel.prefix(n)) {
                list.iter().for_each(|(k, v)| f(*k, v));
            }
        }
    }

    /// Remove every subscription in namespace `ns` (exact channels and
    /// wildcard prefixes alike): each as (pattern path, is a wildcard, key,
    /// value).
    pub fn drain_namespace(&mut self, ns: &str) -> Vec<(String, bool, SubKey, T)> {
        let in_ns = |path: &str| {
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(ns))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let mut out = Vec::new();
        for (map, wildcard) in [(&mut self.exact, false), (&mut self.prefix, true)] {
            let paths: Vec<Box<str>> = map.keys().filter(|p| in_ns(p)).cloned().collect();
            for path in paths {
                for (key, value) in map.remove(&path).unwrap_or_default() {
                    out.push((path.to_string(), wildcard, key, value));
                }
            }
        }
        self.len -= out.len();
        out
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of distinct exact channels and wildcard prefixes with subscribers.
    pub fn pattern_count(&self) -> usize {
        self.exact.len() + self.prefix.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(idx: &SubscriptionIndex<&'static str>, ch: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        idx.for_each_match(&Channel::parse(ch).unwrap(), |_, v| out.push(*v));
        out.sort();
        out
    }

    #[test]
    fn exact_and_prefix() {
        let mut idx = SubscriptionIndex::new();
        let p = |s| ChannelPattern::parse(s).unwrap();
        idx.insert(&p("/ns/a"), 1, "exact-a");
        idx.insert(&p("/ns/*"), 2, "ns-star");
        idx.insert(&p("/ns/a/*"), 3, "a-star");
        idx.insert(&p("/other/*"), 4, "other");
        idx.insert(&p("/ns/ab"), 5, "exact-ab");
        assert_eq!(matches(&idx, "/ns/a"), ["exact-a", "ns-star"]);
        assert_eq!(matches(&idx, "/ns/a/b/c"), ["a-star", "ns-star"]);
        assert_eq!(matches(&idx, "/ns/ab/c"), ["ns-star"]);
        assert_eq!(matches(&idx, "/ns"), Vec::<&str>::new());
        assert_eq!(idx.len(), 5);
        assert_eq!(idx.remove(&p("/ns/*"), 2), Some("ns-star"));
        assert_eq!(idx.remove(&p("/ns/*"), 2), None);
        assert_eq!(matches(&idx, "/ns/a"), ["exact-a"]);
        assert_eq!(idx.remove(&p("/ns/a"), 1), Some("exact-a"));
        assert_eq!(idx.pattern_count(), 3);
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn drain_a_namespace() {
        let mut idx = SubscriptionIndex::new();
        let p = |s| ChannelPattern::parse(s).unwrap();
        idx.insert(&p("/ns/a"), 1, "a");
        idx.insert(&p("/ns/*"), 2, "star");
        idx.insert(&p("/nsx/a"), 3, "other");
        let mut gone: Vec<(String, bool, SubKey, &str)> = idx.drain_namespace("ns");
        gone.sort_by_key(|g| g.2);
        assert_eq!(
            gone,
            vec![
                ("/ns/a".into(), false, 1, "a"),
                ("/ns".into(), true, 2, "star")
            ]
        );
        assert_eq!(idx.len(), 1);
        assert_eq!(matches(&idx, "/nsx/a"), ["other"]);
    }

    #[test]
    fn many_unrelated_subscriptions_do_not_match() {
        let mut idx = SubscriptionIndex::new();
        for i in 0..10_000u64 {
            let pat = ChannelPattern::parse(&format!("/ns/c{i}")).unwrap();
            idx.insert(&pat, i, "x");
        }
        let mut n = 0;
        idx.for_each_match(&Channel::parse("/ns/c42").unwrap(), |k, _| {
            assert_eq!(k, 42);
            n += 1;
        });
        assert_eq!(n, 1);
    }
}
