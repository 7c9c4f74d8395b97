//! Filtered subscriptions (a Herald extension): an event reaches a
//! subscription only when its payload matches every pattern the subscription
//! carries (the client's `filter`, and one an `onSubscribe` handler set).
//!
//! Filtering happens at fan-out, on the node that holds the subscription, so
//! an unfiltered subscription pays one branch per publish and nothing else; a
//! publish's events are decoded once, and only when a filtered subscription
//! is among those it reaches.

use herald_core::event::EncodedEvent;
use herald_pattern::Pattern;
use serde_json::Value;

/// The patterns one subscription's events must all match.
#[derive(Debug)]
pub struct EventFilter {
    patterns: Vec<Pattern>,
}

impl EventFilter {
    /// `None` when there is nothing to filter by.
    pub fn new(patterns: Vec<Pattern>) -> Option<EventFilter> {
        (!patterns.is_empty()).then_some(EventFilter { patterns })
    }

    /// Whether an event (its payload, or `None` when the payload is not JSON
    /// a pattern can read) passes.
    pub fn accepts(&self, payload: Option<&Value>) -> bool {
        payload.is_some_and(|p| self.patterns.iter().all(|pat| pat.matches(p)))
    }
}

/// Decode the events of a publish for filtering: each literal is the event's
/// JSON text as a JSON string.
pub fn decode(events: &[EncodedEvent]) -> Vec<Option<Value>> {
    events
        .iter()
        .map(|e| {
            let text: String = serde_json::from_str(&e.literal).ok()?;
            serde_json::from_str(&text).ok()
        })
        .collect()
}
