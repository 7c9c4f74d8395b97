//! Matching straight from JSON text: a serde visitor that walks the event as
//! the parser reads it, hands leaves on named paths to the matcher, and lets
//! the parser skip every other subtree without building anything.

use crate::matcher::{Matcher, Recorded};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;

pub(crate) struct Walker<'m, 'r, 'de, K> {
    pub matcher: &'m Matcher<K>,
    pub records: &'r mut Vec<(u32, Recorded<'de>)>,
    /// The current node of the matcher's field trie.
    pub node: u32,
}

impl<'de, K: Clone + Eq + Hash> Walker<'_, '_, 'de, K> {
    fn leaf(&mut self, leaf: Recorded<'de>) {
        if let Some(path) = self.matcher.path_at(self.node) {
            self.records.push((path, leaf));
        }
    }
}

impl<'de, K: Clone + Eq + Hash> DeserializeSeed<'de> for &mut Walker<'_, '_, 'de, K> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: Clone + Eq + Hash> Visitor<'de> for &mut Walker<'_, '_, 'de, K> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON event")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.leaf(Recorded::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.leaf(Recorded::Num(Number::from(v)));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.leaf(Recorded::Num(Number::from(v)));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        if let Some(n) = Number::from_f64(v) {
            self.leaf(Recorded::Num(n));
        }
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.leaf(Recorded::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        // Only on paths a condition names is an escaped string copied.
        if self.matcher.path_at(self.node).is_some() {
            self.leaf(Recorded::Str(Cow::Owned(v.to_string())));
        }
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.leaf(Recorded::Null);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key)? {
            match self.matcher.field(self.node, &key) {
                Some(child) => {
                    let parent = std::mem::replace(&mut self.node, child);
                    map.next_value_seed(&mut *self)?;
                    self.node = parent;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}
