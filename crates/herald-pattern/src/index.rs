//! The lookup structures of the matcher: a fast hasher for short keys, byte
//! tries for prefixes and suffixes, the per-path index of lookup conditions,
//! and the hashes of exact (path, value) edges.

use crate::compile::Condition;
use crate::test::{Leaf, Literal, Test};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's): field names and paths are short, attacker-chosen only
/// by pattern authors, and looked up once per event field, where SipHash's
/// cost shows.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(v))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

#[derive(Debug, Clone, Default)]
pub(crate) struct Trie {
    /// Node 0 is the root. Children sorted by byte.
    next: Vec<Vec<(u8, u32)>>,
    ends: Vec<Vec<usize>>,
}

impl Trie {
    pub(crate) fn insert(&mut self, bytes: impl Iterator<Item = u8>, alt: usize) {
        if self.next.is_empty() {
            self.next.push(Vec::new());
            self.ends.push(Vec::new());
        }
        let mut node = 0usize;
        for b in bytes {
            node = match self.next[node].binary_search_by_key(&b, |(k, _)| *k) {
                Ok(i) => self.next[node][i].1 as usize,
                Err(i) => {
                    let id = self.next.len();
                    self.next.push(Vec::new());
                    self.ends.push(Vec::new());
                    self.next[node].insert(i, (b, id as u32));
                    id
                }
            };
        }
        self.ends[node].push(alt);
    }

    /// Every entry whose text is a prefix of `bytes`.
    pub(crate) fn each_prefix(&self, bytes: impl Iterator<Item = u8>, f: &mut impl FnMut(usize)) {
        if self.next.is_empty() {
            return;
        }
        let mut node = 0usize;
        self.ends[0].iter().for_each(|a| f(*a));
        for b in bytes {
            match self.next[node].binary_search_by_key(&b, |(k, _)| *k) {
                Ok(i) => node = self.next[node][i].1 as usize,
                Err(_) => return,
            }
            self.ends[node].iter().for_each(|a| f(*a));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next.is_empty()
    }
}

/// The anchors on one field path, by alternative id.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathIndex {
    pub(crate) exact_str: FxMap<String, Vec<usize>>,
    pub(crate) exact_num: FxMap<String, Vec<usize>>,
    pub(crate) exact_bool: [Vec<usize>; 2],
    pub(crate) exact_null: Vec<usize>,
    pub(crate) equals_ic: FxMap<String, Vec<usize>>,
    pub(crate) prefix: Trie,
    pub(crate) prefix_ic: Trie,
    pub(crate) suffix: Trie,
    pub(crate) suffix_ic: Trie,
}

impl PathIndex {
    pub(crate) fn needs_lowercase(&self) -> bool {
        !self.equals_ic.is_empty() || !self.prefix_ic.is_empty() || !self.suffix_ic.is_empty()
    }
}

/// How good a condition is as an anchor (lower is better); `None` when some
/// value could satisfy it without being found by a lookup.
pub(crate) fn anchor_rank(c: &Condition) -> Option<u8> {
    let mut rank = 0;
    for t in &c.tests {
        rank = rank.max(match t {
            Test::Exact(_) => 0,
            Test::EqualsIgnoreCase(_) => 1,
            Test::Prefix { .. } | Test::Suffix { .. } => 2,
            _ => return None,
        });
    }
    Some(rank)
}

/// The hash of an exact (path, value) edge, eight bytes at a time (Fx).
fn edge_hash(path: u32, tag: u8, bytes: &[u8]) -> u64 {
    let mut h = Fx(u64::from(path) << 8 | u64::from(tag));
    h.write(bytes);
    h.write_u64(bytes.len() as u64);
    h.finish()
}

/// The edge hash of a literal in a pattern and of a leaf in an event agree.
pub(crate) fn literal_hash(path: u32, lit: &Literal) -> u64 {
    match lit {
        Literal::Str(s) => edge_hash(path, b's', s.as_bytes()),
        Literal::Num(n) => {
            let mut text = String::new();
            crate::test::number_key(*n, &mut text);
            edge_hash(path, b'n', text.as_bytes())
        }
        Literal::Bool(b) => edge_hash(path, b'b', &[u8::from(*b)]),
        Literal::Null => edge_hash(path, b'z', &[]),
    }
}

pub(crate) fn leaf_hash(path: u32, leaf: Leaf<'_>, number: &mut String) -> u64 {
    match leaf {
        Leaf::Str(s) => edge_hash(path, b's', s.as_bytes()),
        Leaf::Num(n) => {
            crate::test::number_key(n.as_f64().unwrap_or(f64::NAN), number);
            edge_hash(path, b'n', number.as_bytes())
        }
        Leaf::Bool(b) => edge_hash(path, b'b', &[u8::from(b)]),
        Leaf::Null => edge_hash(path, b'z', &[]),
    }
}
