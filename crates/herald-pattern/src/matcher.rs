//! Many patterns, one pass over the event.
//!
//! Every pattern alternative is a list of conditions on field paths, all of
//! which must hold. The matcher files each alternative in a **trie of exact
//! values**: its conditions that name one exact value (`"source":
//! ["shop"]`), in a fixed order of paths, are the edges from the root, so
//! alternatives that share `source = shop` share that node, and those that
//! also share `detail-type = Order Placed` share the next. At the node where
//! its chain ends, an alternative is filed under its best remaining lookup
//! condition (several exact values, `equals-ignore-case`, a prefix or a
//! suffix: hash tables and byte tries per path), or, with none, listed to be
//! checked whenever the node is reached.
//!
//! Matching walks the event once, skipping every field no pattern names, and
//! records the leaf values on named paths. It then descends the trie only
//! along edges whose value the event has, consults the lookup indexes of the
//! nodes it reaches, and checks the remaining conditions of the alternatives
//! found there against the recorded values. So the cost is the event's size
//! plus the nodes and alternatives consistent with it: a pattern about another
//! source, type or value is never touched, however many there are (as in
//! aws/event-ruler and quamina, which build one automaton over sorted fields).
//! Alternatives with no exact or lookup condition at all (only `numeric`,
//! `anything-but`, `exists`, `wildcard` or `cidr`) sit at the root and are
//! checked for every event: rare in practice, and linear in their number.
//!
//! Adding a pattern extends the trie; removing one marks its alternatives
//! dead, and everything is rebuilt once the dead outnumber the living. The
//! matcher is a plain value: share it behind a lock or swap copies.

use crate::compile::{Condition, Pattern};

use crate::index::{anchor_rank, leaf_hash, literal_hash, FxMap, PathIndex};
use crate::test::{Leaf, Literal, Test};
use serde_json::Number;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Per-thread working memory for matching, reused across events so the
/// steady state allocates little.
#[derive(Debug, Default)]
pub struct Scratch {
    generation: u32,
    alt_seen: Vec<u32>,
    slot_seen: Vec<u32>,
    node_seen: Vec<u32>,
    candidates: Vec<usize>,
    stack: Vec<usize>,
    hashes: Vec<u64>,
    lower: String,
    number: String,
}

/// A leaf value recorded during the walk, with its path.
#[derive(Debug)]
pub(crate) enum Recorded<'a> {
    Str(Cow<'a, str>),
    Num(Number),
    Bool(bool),
    Null,
}

impl Recorded<'_> {
    fn leaf(&self) -> Leaf<'_> {
        match self {
            Recorded::Str(s) => Leaf::Str(s),
            Recorded::Num(n) => Leaf::Num(n),
            Recorded::Bool(b) => Leaf::Bool(*b),
            Recorded::Null => Leaf::Null,
        }
    }
}

#[derive(Debug, Clone)]
struct AltInfo {
    slot: usize,
    /// Conditions checked once the alternative is a candidate: (path id,
    /// condition). The anchor is not among them.
    verify: Vec<(u32, Condition)>,
    dead: bool,
}

/// A node of the trie of field names.
#[derive(Debug, Clone, Default)]
struct FieldNode {
    children: FxMap<Box<str>, u32>,
    /// The condition path that ends here.
    path: Option<u32>,
}

/// A node of the trie of exact values.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Edge hash -> (the edge's path and literal, for collisions; child node).
    children: FxMap<u64, Vec<(u32, Literal, usize)>>,
    /// Alternatives whose chain ends here, filed by a lookup condition.
    anchors: Vec<(u32, PathIndex)>,
    /// Alternatives whose chain ends here with no lookup condition left.
    here: Vec<usize>,
}

/// A set of patterns, each under a key (several patterns may share one: they
/// are ORed), answering which keys an event matches.
#[derive(Debug, Clone)]
pub struct Matcher<K> {
    slots: Vec<Option<K>>,
    slot_of: HashMap<K, usize>,
    /// The patterns by slot, for rebuilding.
    patterns: HashMap<usize, Vec<Pattern>>,
    alts: Vec<AltInfo>,
    /// The field paths conditions name, as a trie of field names: node 0 is
    /// the event's root; an event field costs one lookup of its own name in
    /// its parent's children, never a hash of the whole path.
    fields: Vec<FieldNode>,
    /// Number of distinct condition paths (path ids are 0..this).
    paths: u32,
    /// The trie; node 0 is the root.
    nodes: Vec<Node>,

    dead: usize,
}

impl<K: Clone + Eq + Hash> Default for Matcher<K> {
    fn default() -> Self {
        Matcher {
            slots: Vec::new(),
            slot_of: HashMap::new(),
            patterns: HashMap::new(),
            alts: Vec::new(),
            fields: vec![FieldNode::default()],
            paths: 0,
            nodes: vec![Node::default()],
            dead: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> Matcher<K> {
    pub fn new() -> Matcher<K> {
        Matcher::default()
    }

    /// Number of keys with at least one pattern.
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// Add `pattern` under `key` (ORed with the key's other patterns).
    pub fn add(&mut self, key: K, pattern: &Pattern) {
        let slot = match self.slot_of.get(&key) {
            Some(s) => *s,
            None => {
                let s = self.slots.len();
                self.slots.push(Some(key.clone()));
                self.slot_of.insert(key, s);
                s
            }
        };
        self.patterns.entry(slot).or_default().push(pattern.clone());
        self.index(slot, pattern);
    }

    /// Remove every pattern of `key`; whether there were any.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(slot) = self.slot_of.remove(key) else {
            return false;
        };
        self.slots[slot] = None;
        self.patterns.remove(&slot);
        for alt in self.alts.iter_mut().filter(|a| a.slot == slot && !a.dead) {
            alt.dead = true;
            self.dead += 1;
        }
        if self.dead > 64 && self.dead * 2 > self.alts.len() {
            self.rebuild();
        }
        true
    }

    fn rebuild(&mut self) {
        let patterns: Vec<(K, Vec<Pattern>)> = self
            .patterns
            .drain()
            .map(|(slot, p)| (self.slots[slot].clone().expect("a live slot"), p))
            .collect();
        *self = Matcher::default();
        for (key, list) in patterns {
            for p in &list {
                self.add(key.clone(), p);
            }
        }
    }

    fn path_id(&mut self, path: &[String]) -> u32 {
        let mut node = 0usize;
        for name in path {
            node = match self.fields[node].children.get(name.as_str()) {
                Some(&child) => child as usize,
                None => {
                    let child = self.fields.len();
                    self.fields.push(FieldNode::default());
                    self.fields[node]
                        .children
                        .insert(name.as_str().into(), child as u32);
                    child
                }
            };
        }
        *self.fields[node].path.get_or_insert_with(|| {
            self.paths += 1;
            self.paths - 1
        })
    }

    fn index(&mut self, slot: usize, pattern: &Pattern) {
        for alt in &pattern.alternatives {
            let alt_id = self.alts.len();
            let conds: Vec<(u32, &Condition)> = alt
                .conditions
                .iter()
                .map(|c| (self.path_id(&c.path), c))
                .collect();
            // The chain: conditions naming exactly one exact value, by path id.
            let mut chain: Vec<(u32, &Literal, usize)> = conds
                .iter()
                .enumerate()
                .filter_map(|(i, (path, c))| match c.tests.as_slice() {
                    [Test::Exact(lit)] => Some((*path, lit, i)),
                    _ => None,
                })
                .collect();
            chain.sort_by_key(|(path, _, i)| (*path, *i));
            let mut node = 0usize;
            for (path, lit, _) in &chain {
                let h = literal_hash(*path, lit);
                let existing = self.nodes[node]
                    .children
                    .get(&h)
                    .and_then(|v| v.iter().find(|(p, l, _)| p == path && l == *lit))
                    .map(|(_, _, child)| *child);
                node = match existing {
                    Some(child) => child,
                    None => {
                        let child = self.nodes.len();
                        self.nodes.push(Node::default());
                        self.nodes[node].children.entry(h).or_default().push((
                            *path,
                            (*lit).clone(),
                            child,
                        ));
                        child
                    }
                };
            }
            let in_chain: HashSet<usize> = chain.iter().map(|(_, _, i)| *i).collect();
            // Filed at the chain's end under its best lookup condition.
            let anchor = conds
                .iter()
                .enumerate()
                .filter(|(i, _)| !in_chain.contains(i))
                .filter_map(|(i, (_, c))| anchor_rank(c).map(|r| (r, i)))
                .min()
                .map(|(_, i)| i);
            let verify = conds
                .iter()
                .enumerate()
                .filter(|(i, _)| !in_chain.contains(i) && Some(*i) != anchor)
                .map(|(_, (path, c))| (*path, (*c).clone()))
                .collect();
            match anchor {
                None => self.nodes[node].here.push(alt_id),
                Some(i) => {
                    let (path, cond) = conds[i];
                    let anchors = &mut self.nodes[node].anchors;
                    let at = match anchors.iter().position(|(p, _)| *p == path) {
                        Some(at) => at,
                        None => {
                            anchors.push((path, PathIndex::default()));
                            anchors.len() - 1
                        }
                    };
                    let idx = &mut anchors[at].1;
                    for test in &cond.tests {
                        match test {
                            Test::Exact(Literal::Str(s)) => {
                                idx.exact_str.entry(s.clone()).or_default().push(alt_id)
                            }
                            Test::Exact(Literal::Num(n)) => {
                                let mut key = String::new();
                                crate::test::number_key(*n, &mut key);
                                idx.exact_num.entry(key).or_default().push(alt_id)
                            }
                            Test::Exact(Literal::Bool(b)) => {
                                idx.exact_bool[usize::from(*b)].push(alt_id)
                            }
                            Test::Exact(Literal::Null) => idx.exact_null.push(alt_id),
                            Test::EqualsIgnoreCase(s) => {
                                idx.equals_ic.entry(s.clone()).or_default().push(alt_id)
                            }
                            Test::Prefix { text, ignore_case } => {
                                let trie = if *ignore_case {
                                    &mut idx.prefix_ic
                                } else {
                                    &mut idx.prefix
                                };
                                trie.insert(text.bytes(), alt_id);
                            }
                            Test::Suffix { text, ignore_case } => {
                                let trie = if *ignore_case {
                                    &mut idx.suffix_ic
                                } else {
                                    &mut idx.suffix
                                };
                                trie.insert(text.bytes().rev(), alt_id);
                            }
                            _ => unreachable!("anchors hold only lookup tests"),
                        }
                    }
                }
            }
            self.alts.push(AltInfo {
                slot,
                verify,
                dead: false,
            });
        }
    }

    /// A [`Scratch`] for this matcher (any scratch works; it grows as needed).
    pub fn scratch(&self) -> Scratch {
        Scratch::default()
    }

    /// Start a pass: a fresh generation of stamps, sized for this matcher.
    fn begin(&self, s: &mut Scratch) {
        s.generation = s.generation.wrapping_add(1);
        if s.generation == 0 {
            // Wrapped: forget every old stamp.
            s.alt_seen.iter_mut().for_each(|x| *x = 0);
            s.slot_seen.iter_mut().for_each(|x| *x = 0);
            s.node_seen.iter_mut().for_each(|x| *x = 0);
            s.generation = 1;
        }
        s.alt_seen.resize(self.alts.len(), 0);
        s.slot_seen.resize(self.slots.len(), 0);
        s.node_seen.resize(self.nodes.len(), 0);
        s.candidates.clear();
    }

    /// Alternative `a` may match: its remaining conditions get checked.
    fn candidate(s: &mut Scratch, a: usize) {
        if s.alt_seen[a] != s.generation {
            s.alt_seen[a] = s.generation;
            s.candidates.push(a);
        }
    }

    /// One leaf value: look it up in a node's index for its path.
    fn lookup(s: &mut Scratch, idx: &PathIndex, leaf: Leaf<'_>) {
        let all =
            |alts: &[usize], s: &mut Scratch| alts.iter().for_each(|a| Self::candidate(s, *a));
        match leaf {
            Leaf::Str(text) => {
                if let Some(alts) = idx.exact_str.get(text) {
                    all(alts, s);
                }
                if !idx.prefix.is_empty() {
                    idx.prefix
                        .each_prefix(text.bytes(), &mut |a| Self::candidate(s, a));
                }
                if !idx.suffix.is_empty() {
                    idx.suffix
                        .each_prefix(text.bytes().rev(), &mut |a| Self::candidate(s, a));
                }
                if idx.needs_lowercase() {
                    let mut lower = std::mem::take(&mut s.lower);
                    lower.clear();
                    lower.extend(text.chars().flat_map(char::to_lowercase));
                    if let Some(alts) = idx.equals_ic.get(lower.as_str()) {
                        all(alts, s);
                    }
                    idx.prefix_ic
                        .each_prefix(lower.bytes(), &mut |a| Self::candidate(s, a));
                    idx.suffix_ic
                        .each_prefix(lower.bytes().rev(), &mut |a| Self::candidate(s, a));
                    s.lower = lower;
                }
            }
            Leaf::Num(n) => {
                if !idx.exact_num.is_empty() {
                    let mut key = std::mem::take(&mut s.number);
                    crate::test::number_key(n.as_f64().unwrap_or(f64::NAN), &mut key);
                    if let Some(alts) = idx.exact_num.get(key.as_str()) {
                        all(alts, s);
                    }
                    s.number = key;
                }
            }
            Leaf::Bool(b) => all(&idx.exact_bool[usize::from(b)], s),
            Leaf::Null => all(&idx.exact_null, s),
        }
    }

    /// The field trie's node for `name` under `node`, if a condition's path
    /// goes there.
    pub(crate) fn field(&self, node: u32, name: &str) -> Option<u32> {
        self.fields[node as usize].children.get(name).copied()
    }

    /// The condition path ending at field node `node`, if any.
    pub(crate) fn path_at(&self, node: u32) -> Option<u32> {
        self.fields[node as usize].path
    }

    /// End a pass: descend the trie along the event's values, collect
    /// candidates from the nodes reached, verify them against the recorded
    /// values; the keys of the alternatives that hold, each once.
    fn finish(&self, s: &mut Scratch, records: &mut [(u32, Recorded<'_>)], out: &mut Vec<K>) {
        records.sort_by_key(|(path, _)| *path);
        let mut hashes = std::mem::take(&mut s.hashes);
        hashes.clear();
        for (path, v) in records.iter() {
            hashes.push(leaf_hash(*path, v.leaf(), &mut s.number));
        }
        let values = |path: u32| {
            let start = records.partition_point(|(p, _)| *p < path);
            let end = records.partition_point(|(p, _)| *p <= path);
            (start, &records[start..end])
        };
        let generation = s.generation;
        s.stack.clear();
        s.stack.push(0);
        while let Some(n) = s.stack.pop() {
            if s.node_seen[n] == generation {
                continue;
            }
            s.node_seen[n] = generation;
            let node = &self.nodes[n];
            for a in &node.here {
                Self::candidate(s, *a);
            }
            for (path, idx) in &node.anchors {
                for (_, v) in values(*path).1 {
                    Self::lookup(s, idx, v.leaf());
                }
            }
            if node.children.is_empty() {
                continue;
            }
            for (i, h) in hashes.iter().enumerate() {
                if let Some(edges) = node.children.get(h) {
                    let (path, v) = &records[i];
                    for (p, lit, child) in edges {
                        if p == path && lit.equals(v.leaf()) {
                            s.stack.push(*child);
                        }
                    }
                }
            }
        }
        s.hashes = hashes;
        for i in 0..s.candidates.len() {
            let a = s.candidates[i];
            let info = &self.alts[a];
            if info.dead || s.slot_seen[info.slot] == generation {
                continue;
            }
            let holds = info.verify.iter().all(|(path, cond)| {
                let vals = values(*path).1;
                cond.tests.iter().any(|t| match t {
                    Test::Exists(want) => *want != vals.is_empty(),
                    t => vals.iter().any(|(_, v)| t.accepts(v.leaf())),
                })
            });
            if holds {
                s.slot_seen[info.slot] = generation;
                out.push(
                    self.slots[info.slot]
                        .clone()
                        .expect("a live alternative's key"),
                );
            }
        }
    }

    /// The keys whose patterns `event` matches, each once, into `out`.
    pub fn matches_into(&self, event: &serde_json::Value, scratch: &mut Scratch, out: &mut Vec<K>) {
        self.begin(scratch);
        let mut records = Vec::with_capacity(16);
        self.walk_value(event, 0, &mut records);
        self.finish(scratch, &mut records, out);
    }

    /// As [`Matcher::matches_into`], straight from the event's JSON text:
    /// the event is never built as a tree, fields no pattern names are
    /// skipped by the parser, and strings without escapes are not copied.
    /// The fast path for events that arrive as bytes.
    pub fn matches_json_into(
        &self,
        json: &[u8],
        scratch: &mut Scratch,
        out: &mut Vec<K>,
    ) -> Result<(), serde_json::Error> {
        use serde::de::DeserializeSeed;
        self.begin(scratch);
        let mut records = Vec::with_capacity(16);
        let mut de = serde_json::Deserializer::from_slice(json);
        crate::stream::Walker {
            matcher: self,
            records: &mut records,
            node: 0,
        }
        .deserialize(&mut de)?;
        de.end()?;
        self.finish(scratch, &mut records, out);
        Ok(())
    }

    /// Record the leaves of `v` (at field node `node`) on the paths
    /// conditions name; arrays are crushed into their parent's path.
    fn walk_value<'a>(
        &self,
        v: &'a serde_json::Value,
        node: u32,
        records: &mut Vec<(u32, Recorded<'a>)>,
    ) {
        use serde_json::Value;
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.walk_value(i, node, records)),
            Value::Object(o) => {
                for (k, child) in o {
                    if let Some(next) = self.field(node, k) {
                        self.walk_value(child, next, records);
                    }
                }
            }
            scalar => {
                if let (Some(path), Some(leaf)) = (self.path_at(node), Leaf::of(scalar)) {
                    let rec = match leaf {
                        Leaf::Str(s) => Recorded::Str(Cow::Borrowed(s)),
                        Leaf::Num(n) => Recorded::Num(n.clone()),
                        Leaf::Bool(b) => Recorded::Bool(b),
                        Leaf::Null => Recorded::Null,
                    };
                    records.push((path, rec));
                }
            }
        }
    }

    /// The keys whose patterns `event` matches (allocates a scratch; use
    /// [`Matcher::matches_into`] on a hot path).
    pub fn matches(&self, event: &serde_json::Value) -> Vec<K> {
        let mut out = Vec::new();
        self.matches_into(event, &mut Scratch::default(), &mut out);
        out
    }
}
