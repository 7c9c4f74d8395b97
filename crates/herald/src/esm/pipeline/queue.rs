//! Queues (SQS, Amazon MQ): each message on its own. Successes are
//! deleted; failures go back to the broker, whose redrive policy (or the
//! source's retry limit) handles poison messages; FIFO groups stop at their
//! first failure so order holds within a group.

use super::super::response::reported_failures;
use super::super::source::{Record, Source};
use super::super::target::Invocation;
use super::{tokens, Pipeline};
use tokio::sync::watch;

impl Pipeline {
    /// Queues: successes are deleted, failures go back to the broker (its
    /// redrive policy handles poison messages).
    pub(super) async fn queue_batch<S: Source>(
        &self,
        source: &mut S,
        batch: Vec<Record>,
        _stop: &mut watch::Receiver<bool>,
    ) {
        let outcome = self.invoke_all(source, &[&batch]).await.pop();
        let failed: Vec<usize> = match outcome.expect("one batch, one outcome") {
            Invocation::Returned(payload) if self.spec.report_item_failures => {
                let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
                reported_failures(&payload, &ids).unwrap_or_else(|_| (0..batch.len()).collect())
            }
            Invocation::Returned(_) => Vec::new(),
            Invocation::FunctionError(_) | Invocation::NotRun(_) => (0..batch.len()).collect(),
        };
        if failed.is_empty() {
            self.status.set("OK");
            self.ack(source, &batch, true).await;
            return;
        }
        // FIFO: a group stops at its first failure; its later messages are
        // not deleted, so they come back in order after the failed one.
        let mut failed = failed;
        for i in 0..batch.len() {
            if failed.contains(&i) {
                continue;
            }
            if let Some(g) = &batch[i].group {
                if failed
                    .iter()
                    .any(|&f| f < i && batch[f].group.as_ref() == Some(g))
                {
                    failed.push(i);
                }
            }
        }
        self.status.set("PROBLEM: Function call failed");
        self.counts.failed_invoke(batch.len());
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (i, r) in batch.into_iter().enumerate() {
            if failed.contains(&i) {
                bad.push(r);
            } else {
                good.push(r);
            }
        }
        self.ack(source, &good, true).await;
        if let Err(e) = source.release(tokens(&bad)).await {
            tracing::warn!(mapping = %self.spec.uuid, error = %e, "returning failed messages failed; they come back after the visibility timeout");
        }
    }
}
