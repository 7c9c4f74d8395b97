//! What changed in the store since a node last looked: a set of API ids, or
//! "everything" (after a lost notification connection, or when too many ids
//! piled up). The listener adds to it without waiting; the node's reconcile
//! task takes it whole. It coalesces instead of queueing, so it is bounded by
//! [`MAX_IDS`] whatever the rate of changes, and nothing is dropped: past the
//! bound it becomes "everything".

use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::Notify;

/// Distinct ids kept before the set turns into "everything".
const MAX_IDS: usize = 1024;

/// What a reconcile must re-read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// Everything (the API ids then do not matter).
    pub all: bool,
    /// These APIs.
    pub apis: HashSet<String>,
}

/// Changes noticed and not yet taken.
#[derive(Debug, Default)]
pub struct Changes {
    pending: Mutex<ChangeSet>,
    wake: Notify,
}

impl Changes {
    /// The API `id` changed.
    pub fn api(&self, id: &str) {
        {
            let mut p = self.pending.lock().unwrap();
            if !p.all {
                if p.apis.len() >= MAX_IDS {
                    p.all = true;
                    p.apis.clear();
                } else {
                    p.apis.insert(id.to_string());
                }
            }
        }
        self.wake.notify_one();
    }

    /// Anything may have changed.
    pub fn all(&self) {
        {
            let mut p = self.pending.lock().unwrap();
            p.all = true;
            p.apis.clear();
        }
        self.wake.notify_one();
    }

    /// Wait for changes and take them.
    pub async fn next(&self) -> ChangeSet {
        loop {
            {
                let mut p = self.pending.lock().unwrap();
                if p.all || !p.apis.is_empty() {
                    return std::mem::take(&mut *p);
                }
            }
            // `notify_one` keeps a permit when nobody waits, so a change made
            // between the check above and this wait is not missed.
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_coalesce_and_overflow_into_everything() {
        let c = Changes::default();
        c.api("a");
        c.api("b");
        c.api("a");
        let got = c.next().await;
        assert!(!got.all);
        assert_eq!(got.apis.len(), 2);
        for i in 0..=MAX_IDS {
            c.api(&i.to_string());
        }
        let got = c.next().await;
        assert!(got.all && got.apis.is_empty());
        c.api("x");
        c.all();
        assert_eq!(
            c.next().await,
            ChangeSet {
                all: true,
                apis: HashSet::new()
            }
        );
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_a_change() {
        let c = std::sync::Arc::new(Changes::default());
        let reader = tokio::spawn({
            let c = c.clone();
            async move { c.next().await }
        });
        tokio::task::yield_now().await;
        c.api("z");
        let got = reader.await.unwrap();
        assert!(got.apis.contains("z"));
    }
}
