//! EventBridge event patterns, once for all of Herald: Lambda's
//! `FilterCriteria`, EventBridge rules and `TestEventPattern`, and filtered
//! subscriptions all use this crate and nothing else.
//!
//! * [`Pattern::parse`] validates a pattern when it is created, with an
//!   `InvalidEventPatternException`-style message naming the offending field or
//!   operator; a pattern that parsed never fails at match time.
//! * [`Pattern::matches`] evaluates one pattern against one event by walking
//!   the event for each field the pattern names: the plain reference
//!   evaluator, used where there are few patterns (a subscription's filter, a
//!   mapping's five filters).
//! * [`Matcher`] holds many patterns and answers "which of them match this
//!   event" at a cost that grows with the event's size and with the conditions
//!   it satisfies, not with the number of patterns: an index per field path
//!   (hash tables for exact and case-insensitive values, tries for prefixes and
//!   suffixes) counts, per pattern alternative, how many of its conditions the
//!   event satisfied. Patterns are added and removed while it is in use.
//!
//! I/O-free, no async, no dependency on the server: only `serde_json`.
//!
//! # Semantics (as AWS documents them; where AWS is silent, as aws/event-ruler does)
//!
//! * A pattern mirrors the event's nesting; every leaf is a non-empty array of
//!   allowed values or operator objects. Fields are ANDed, a leaf's values ORed,
//!   fields the pattern does not name are ignored.
//! * An array in the event matches when any element matches; arrays are
//!   "crushed": objects inside an array are values of the parent's path.
//!   (Event Ruler's array-consistency rule, that two fields must match from the
//!   same array element, is not applied: a documented deviation.)
//! * Numbers compare by value everywhere (`300`, `300.0` and `3e2` are equal),
//!   as AWS's `TestEventPattern` answers (its guides still describe string
//!   comparison for exact matches).
//! * `exists: true` matches a path with at least one leaf value (null
//!   included); a path ending at an object or an empty array has none, so
//!   `exists: false` matches it. `anything-but` never matches a missing field.

mod compile;
mod error;
mod event;
mod index;
mod matcher;
mod stream;
mod test;
mod wildcard;

pub use compile::{Limits, Pattern};
pub use error::PatternError;
pub use matcher::{Matcher, Scratch};
