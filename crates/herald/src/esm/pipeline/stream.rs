//! Streams (Kinesis, NATS JetStream, Redis Streams): records in order,
//! retried as a batch (bisected when asked) until success, the retry limit
//! or the record age, then the on-failure destination; the checkpoint moves
//! only over records whose outcome is final. `ParallelizationFactor` runs
//! several lanes of one polled batch together, each lane in key order.

use super::super::response::{reported_failures, Malformed};
use super::super::source::{Record, Source};
use super::super::target::Invocation;
use super::{now_ms, tokens, Condition, Last, Pipeline, RETRY_FIRST, RETRY_MAX};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;

/// A lane of a stream batch: its batches go in order, one at a time.
struct Lane {
    /// Batches still to invoke: records, retries spent, the last ending.
    work: VecDeque<(Vec<Record>, i64, Last)>,
    /// The next retry's delay.
    delay: Duration,
    /// Not invoked again before this (a retry's backoff).
    due: tokio::time::Instant,
}

/// Split a polled batch into `factor` lanes by record key (records without
/// one share the first lane), each lane's records cut into batches of at
/// most `batch_size`, order kept within a lane.
fn lanes(records: Vec<Record>, factor: usize, batch_size: usize) -> Vec<Lane> {
    let factor = factor.max(1);
    let mut split: Vec<Vec<Record>> = (0..factor).map(|_| Vec::new()).collect();
    for r in records {
        let i = match (&r.group, factor) {
            (Some(key), f) if f > 1 => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                (h.finish() % f as u64) as usize
            }
            _ => 0,
        };
        split[i].push(r);
    }
    let now = tokio::time::Instant::now();
    split
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|mut records| {
            let mut work = VecDeque::new();
            while !records.is_empty() {
                let rest = records.split_off(records.len().min(batch_size.max(1)));
                work.push_back((std::mem::replace(&mut records, rest), 0, Last::None));
            }
            Lane {
                work,
                delay: RETRY_FIRST,
                due: now,
            }
        })
        .collect()
}

impl Pipeline {
    /// Streams: retry in order (bisecting when asked) until success, the
    /// retry limit or the record age; then the destination, and move on.
    /// With `ParallelizationFactor` the records are split into lanes by
    /// their key (a record's `group`: Kinesis's partition key, a JetStream
    /// subject), each lane's batches in order, the lanes' batches invoked
    /// together; the batch is done when every lane is.
    pub(super) async fn stream_batch<S: Source>(
        &self,
        source: &mut S,
        batch: Vec<Record>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut lanes = lanes(
            batch,
            self.spec.parallelization_factor as usize,
            self.spec.batch_size as usize,
        );
        let mut renew = self.renewals();
        loop {
            if *stop.borrow() {
                return false;
            }
            // What each lane whose time has come invokes next (records past
            // their age go first, to the destination).
            let now = tokio::time::Instant::now();
            let mut round: Vec<(usize, Vec<Record>, i64, Last)> = Vec::new();
            for (i, lane) in lanes.iter_mut().enumerate() {
                if lane.due > now {
                    continue;
                }
                while let Some((mut records, attempts, last)) = lane.work.pop_front() {
                    let old = self.too_old(&mut records);
                    if !old.is_empty() {
                        self.give_up(source, &old, Condition::RecordAgeExceeded, attempts, last)
                            .await;
                    }
                    if !records.is_empty() {
                        round.push((i, records, attempts, last));
                        break;
                    }
                }
            }
            if round.is_empty() {
                // Every lane is done, or waits for its retry.
                let Some(due) = lanes
                    .iter()
                    .filter(|l| !l.work.is_empty())
                    .map(|l| l.due)
                    .min()
                else {
                    return true;
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = renew.tick() => {
                        let mut held: Vec<String> = lanes.iter().flat_map(|l| l.work.iter().flat_map(|w| tokens(&w.0))).collect();
                        held.extend(self.ahead.tokens());
                        let _ = source.renew(held).await;
                    }
                    _ = stop.changed() => return false,
                }
                continue;
            }
            let batches: Vec<&[Record]> = round.iter().map(|r| r.1.as_slice()).collect();
            let outcomes = self.invoke_all(source, &batches).await;
            for ((i, records, attempts, last), outcome) in round.into_iter().zip(outcomes) {
                self.settle(source, &mut lanes[i], (records, attempts, last), outcome)
                    .await;
            }
        }
    }

    /// The records at the front past `MaximumRecordAgeInSeconds`, taken out
    /// (older records come first in a stream).
    fn too_old(&self, records: &mut Vec<Record>) -> Vec<Record> {
        if self.spec.max_record_age_secs < 0 {
            return Vec::new();
        }
        let limit = self.spec.max_record_age_secs as u64 * 1000;
        let now = now_ms();
        let split = records
            .iter()
            .position(|r| now.saturating_sub(r.arrived_ms) <= limit)
            .unwrap_or(records.len());
        records.drain(..split).collect()
    }

    /// One stream invocation's outcome: acknowledge what is done, and put
    /// back on the lane (bisected, or after a delay) what is retried, or
    /// give it up.
    async fn settle<S: Source>(
        &self,
        source: &mut S,
        lane: &mut Lane,
        (mut records, attempts, before): (Vec<Record>, i64, Last),
        outcome: Invocation,
    ) {
        // The index of the first record to retry, and whether the whole
        // batch failed (bisectable).
        let (first_failed, last) = match outcome {
            Invocation::Returned(payload) if self.spec.report_item_failures => {
                let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
                match reported_failures(&payload, &ids) {
                    Ok(f) if f.is_empty() => (None, Last::None),
                    Ok(f) => (f.into_iter().min(), Last::PartialFailure),
                    Err(Malformed) => (Some(0), Last::FunctionError),
                }
            }
            Invocation::Returned(_) => (None, Last::None),
            Invocation::FunctionError(_) => (Some(0), Last::FunctionError),
            Invocation::NotRun(why) => {
                // Not the function's failure: no retry is spent.
                tracing::warn!(mapping = %self.spec.uuid, error = %why, "invoking failed; retrying");
                self.status.set(if why.starts_with("Function not found") {
                    "PROBLEM: Function not found"
                } else {
                    "PROBLEM: Function call failed"
                });
                self.counts.failed_invoke(records.len());
                self.later(source, lane, &records).await;
                lane.work.push_front((records, attempts, before));
                return;
            }
        };
        let Some(first) = first_failed else {
            self.status.set("OK");
            self.ack(source, &records, true).await;
            lane.delay = RETRY_FIRST;
            return;
        };
        self.status.set("PROBLEM: Function call failed");
        self.counts.failed_invoke(records.len());
        let mut rest = records.split_off(first);
        self.ack(source, &records, true).await;
        if last == Last::FunctionError && self.spec.bisect && rest.len() > 1 {
            // Bisect: each half on its own, without spending a retry.
            let second = rest.split_off(rest.len() / 2);
            lane.work.push_front((second, attempts, last));
            lane.work.push_front((rest, attempts, last));
            return;
        }
        let next = attempts + 1;
        if self.spec.max_retries >= 0 && next > self.spec.max_retries {
            self.give_up(source, &rest, Condition::RetryAttemptsExhausted, next, last)
                .await;
            return;
        }
        self.later(source, lane, &rest).await;
        lane.work.push_front((rest, next, last));
    }

    /// A lane's retry waits (doubling from `RETRY_FIRST` to `RETRY_MAX`),
    /// keeping the claim on the records meanwhile.
    async fn later<S: Source>(&self, source: &mut S, lane: &mut Lane, records: &[Record]) {
        let mut held = tokens(records);
        held.extend(self.ahead.tokens());
        let _ = source.renew(held).await;
        lane.due = tokio::time::Instant::now() + lane.delay;
        lane.delay = (lane.delay * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize, key: Option<&str>) -> Record {
        Record {
            id: n.to_string(),
            token: n.to_string(),
            group: key.map(str::to_string),
            arrived_ms: 0,
            event: crate::esm::source::raw(&serde_json::json!({})),
            filter_view: serde_json::Value::Null,
            data: serde_json::Value::Null,
            size: 0,
        }
    }

    fn ids(lane: &Lane) -> Vec<Vec<String>> {
        lane.work
            .iter()
            .map(|(b, _, _)| b.iter().map(|r| r.id.clone()).collect())
            .collect()
    }

    #[test]
    fn a_key_keeps_one_lane_and_its_order() {
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let records: Vec<Record> = (0..40).map(|n| record(n, Some(keys[n % 8]))).collect();
        let lanes = lanes(records, 3, 4);
        assert!(lanes.len() > 1 && lanes.len() <= 3, "{} lanes", lanes.len());
        let mut seen = 0;
        for lane in &lanes {
            let flat: Vec<usize> = ids(lane)
                .concat()
                .iter()
                .map(|i| i.parse().unwrap())
                .collect();
            assert!(flat.windows(2).all(|w| w[0] < w[1]), "in order: {flat:?}");
            assert!(
                ids(lane).iter().all(|b| b.len() <= 4),
                "batches of 4 at most"
            );
            // Every record of a key is in this lane.
            for n in &flat {
                let key = n % 8;
                let mine = flat.iter().filter(|m| *m % 8 == key).count();
                assert_eq!(mine, 5, "key {key} whole in one lane");
            }
            seen += flat.len();
        }
        assert_eq!(seen, 40);
    }

    #[test]
    fn one_lane_without_a_factor_or_a_key() {
        let records = (0..10).map(|n| record(n, Some("k"))).collect();
        let one = lanes(records, 1, 100);
        assert_eq!(one.len(), 1);
        assert_eq!(ids(&one[0]).len(), 1, "one batch");
        let records = (0..10).map(|n| record(n, None)).collect();
        assert_eq!(lanes(records, 4, 100).len(), 1, "no key: the first lane");
    }
}
