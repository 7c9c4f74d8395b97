//! The WebSocket connections an API tracks so that changes made through the
//! admin API reach them: a deleted key closes the connections made with it,
//! a deleted API closes all of its own. Weak references: tracking never
//! keeps a closed connection alive.

use super::EventApi;
use std::sync::Arc;

impl EventApi {
    /// Remember that the connection behind `outbox` authenticated with `key`.
    pub fn track_key_connection(&self, key: &str, outbox: &Arc<crate::hub::Outbox>) {
        let mut map = self.key_connections.lock().unwrap();
        let list = map.entry(key.to_string()).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(outbox));
    }

    /// End every connection that authenticated with `key` (it was deleted):
    /// each closes with 1008 "API key deleted". Returns how many.
    pub fn revoke_key_connections(&self, key: &str) -> usize {
        let list = self
            .key_connections
            .lock()
            .unwrap()
            .remove(key)
            .unwrap_or_default();
        list.iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|outbox| outbox.revoke(crate::hub::Revoked::KeyDeleted))
            .count()
    }

    /// Remember an open WebSocket connection (dropped entries are pruned as
    /// new ones come).
    pub fn track_connection(&self, outbox: &Arc<crate::hub::Outbox>) {
        let mut list = self.connections.lock().unwrap();
        if list.len() >= 64 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(outbox));
    }

    /// A fault injection experiment closes `percentage` of the open
    /// connections, each chosen independently (1001). Returns how many.
    pub fn close_connections_share(&self, percentage: f64) -> usize {
        let list: Vec<_> = self.connections.lock().unwrap().clone();
        list.iter()
            .filter_map(std::sync::Weak::upgrade)
            .filter(|_| percentage >= 100.0 || rand::random::<f64>() * 100.0 < percentage)
            .map(|outbox| outbox.revoke(crate::hub::Revoked::FaultInjected))
            .count()
    }

    /// The API was deleted: end every connection (1008 "API deleted").
    pub fn revoke_all_connections(&self) -> usize {
        let list = std::mem::take(&mut *self.connections.lock().unwrap());
        list.iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|outbox| outbox.revoke(crate::hub::Revoked::ApiDeleted))
            .count()
    }
}
