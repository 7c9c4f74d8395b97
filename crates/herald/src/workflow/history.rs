//! An execution's history as `GetExecutionHistory` returns it: numbered
//! events, each with AWS's type name and its details under AWS's key
//! (`stateEnteredEventDetails`, ...).
//!
//! Bounded: past [`MAX_EVENTS`] (AWS's own limit per execution) further
//! events are not recorded; the execution's result never depends on its
//! history.

use serde_json::{json, Value};
use std::sync::Mutex;

/// Events kept per execution.
pub const MAX_EVENTS: usize = 25_000;

#[derive(Default)]
pub struct History {
    events: Mutex<Vec<Value>>,
    /// How many of them the journal has stored.
    saved: Mutex<usize>,
}

impl History {
    /// Record an event; `key` names its details (empty: none).
    pub fn push(&self, kind: &str, key: &str, details: Value) {
        let mut events = self.events.lock().unwrap();
        let id = events.len() as u64 + 1;
        if events.len() >= MAX_EVENTS {
            return;
        }
        let mut e = json!({
            "id": id,
            "previousEventId": id - 1,
            "timestamp": crate::esm::spec::now_secs(),
            "type": kind,
        });
        if !key.is_empty() && !details.is_null() {
            e[key] = details;
        }
        events.push(e);
    }

    /// A history read back from an execution's journal.
    pub fn restore(events: Vec<Value>) -> History {
        let saved = events.len();
        History {
            events: Mutex::new(events),
            saved: Mutex::new(saved),
        }
    }

    /// The events the journal has not stored yet: (id, JSON), and the
    /// count to [`History::saved_up_to`] once they are stored.
    pub fn unsaved(&self) -> (Vec<(i64, String)>, usize) {
        let events = self.events.lock().unwrap();
        let from = *self.saved.lock().unwrap();
        let new = events[from.min(events.len())..]
            .iter()
            .map(|e| (e["id"].as_i64().unwrap_or_default(), e.to_string()))
            .collect();
        (new, events.len())
    }

    pub fn saved_up_to(&self, n: usize) {
        let mut saved = self.saved.lock().unwrap();
        *saved = (*saved).max(n);
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
