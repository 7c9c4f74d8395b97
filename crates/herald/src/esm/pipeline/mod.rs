//! The one pipeline every mapping runs, over any [`Source`]: poll, filter,
//! batch, invoke, then acknowledge, release, retry or send to the on-failure
//! destination according to the source's [`Semantics`] (Lambda's rules, see
//! the reference table in `docs/event-source-mappings.md`).
//!
//! One batch is in flight per poller (queues) or per lane (streams with
//! `ParallelizationFactor`, else one) on each node; records are
//! acknowledged only after their outcome is final, so a stop (update,
//! delete, shutdown) between invoke and acknowledgement leaves them to be
//! delivered again: at least once.

mod queue;
mod stream;

use super::destination::Destination;
use super::metrics::Counts;
use super::source::{Record, Semantics, Source, SourceKind};
use super::spec::MappingSpec;
use super::target::{Invocation, Target};
use herald_pattern::Pattern;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Lambda's synchronous invoke limit: a batch is cut so its event stays
/// below it.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024 - 4096;
/// Longest a poll waits for a first record before the loop looks at `stop`.
const POLL_WAIT: Duration = Duration::from_secs(1);
/// Retries of a failed batch (streams) start at this delay and double...
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// ...up to this.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Attempts to deliver to the on-failure destination before the records
/// count as dropped.
const DESTINATION_ATTEMPTS: u32 = 3;

/// What `GetEventSourceMapping` shows of a running mapping.
pub struct Status {
    last_result: Mutex<&'static str>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            last_result: Mutex::new("No records processed"),
        }
    }
}

impl Status {
    pub fn last_result(&self) -> &'static str {
        *self.last_result.lock().unwrap()
    }

    fn set(&self, r: &'static str) {
        *self.last_result.lock().unwrap() = r;
    }
}

pub struct Pipeline {
    pub spec: Arc<MappingSpec>,
    pub kind: SourceKind,
    pub target: Target,
    pub filters: Vec<Pattern>,
    pub destination: Option<Destination>,
    pub counts: Counts,
    pub status: Arc<Status>,
    /// How often a held record's claim is renewed while it is processed.
    pub renew_every: Duration,
    /// Called with each batch just before it is invoked (`herald bench esm`
    /// measures append-to-invoke latency with it).
    pub observer: Option<Observer>,
    /// The next batch, read while the current one was invoked.
    pub ahead: Ahead,
    /// Queues: the mapping's poller count, which follows the backlog.
    pub scale: Option<Arc<super::scale::Scale>>,
}

/// Records read ahead: while a full batch is invoked, the next one is
/// polled (without waiting), so reading and decoding overlap the function
/// instead of following it. At most one batch; it keeps its claim renewed
/// while the current batch is retried, and is the next batch processed, so
/// order holds.
#[derive(Default)]
pub struct Ahead(Mutex<Vec<Record>>);

impl Ahead {
    fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }

    fn put(&self, records: Vec<Record>) {
        self.0.lock().unwrap().extend(records);
    }

    fn tokens(&self) -> Vec<String> {
        tokens(&self.0.lock().unwrap())
    }
}

/// See [`Pipeline::observer`].
pub type Observer = Arc<dyn Fn(&[Record]) + Send + Sync>;

/// Why the pipeline gave up on a batch (Lambda's `condition`).
#[derive(Clone, Copy)]
enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// The last invocation's ending, for the on-failure record.
#[derive(Clone, Copy, PartialEq)]
enum Last {
    None,
    FunctionError,
    PartialFailure,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn iso(ms: u64) -> String {
    crate::functions::iso_millis(ms)
}

/// Run until `stop` turns true (or its sender is dropped).
pub async fn run<S: Source>(mut source: S, p: Pipeline, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    let mut lag_at = tokio::time::Instant::now();
    // Empty polls in a row (queues: an idle extra poller stops).
    let mut idle = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let polled = tokio::select! {
            b = collect(&mut source, &p) => b,
            _ = stop.changed() => return,
        };
        match polled {
            Err(e) => {
                tracing::warn!(mapping = %p.spec.uuid, error = %e, retry_ms = backoff.as_millis() as u64, "polling the event source failed");
                p.status.set("PROBLEM: Polling the event source failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Ok(records) => {
                backoff = Duration::from_secs(1);
                if let Some(scale) = &p.scale {
                    scale.polled(records.len() * 2 >= p.spec.batch_size as usize);
                    idle = if records.is_empty() { idle + 1 } else { 0 };
                    if idle >= super::scale::IDLE_POLLS && scale.retire() {
                        p.counts.pollers(scale.running());
                        tracing::debug!(mapping = %p.spec.uuid, pollers = scale.running(), "an idle poller stops");
                        return;
                    }
                }
                if !records.is_empty() && !p.process(&mut source, records, &mut stop).await {
                    return;
                }
            }
        }
        if lag_at.elapsed() >= Duration::from_secs(1) {
            lag_at = tokio::time::Instant::now();
            if let Some(lag) = source.lag().await {
                p.counts.offset_lag(lag);
            }
        }
    }
}

/// Up to `BatchSize` records, waiting at most the batching window once the
/// first has come.
async fn collect<S: Source>(source: &mut S, p: &Pipeline) -> Result<Vec<Record>, String> {
    let max = p.poll_max();
    let mut out = p.ahead.take();
    if out.is_empty() {
        out = source.poll(max, POLL_WAIT).await?;
        p.counts.polled(out.len());
    }
    if out.is_empty() || p.spec.window_secs == 0 || out.len() >= max {
        return Ok(out);
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(p.spec.window_secs);
    while out.len() < max {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let more = source.poll(max - out.len(), left).await?;
        p.counts.polled(more.len());
        out.extend(more);
    }
    Ok(out)
}

fn tokens(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.token.clone()).collect()
}

/// Cut `records` so each batch's event stays under the invoke limit (each
/// record's event is JSON text already: its length is known).
fn by_size(records: Vec<Record>) -> Vec<Vec<Record>> {
    if super::source::event_len(&records) <= MAX_EVENT_BYTES {
        return vec![records];
    }
    let mut out = vec![Vec::new()];
    let mut bytes = 0;
    for r in records {
        let size = r.event.get().len() + 1;
        let last = out.last_mut().expect("never empty");
        if !last.is_empty() && bytes + size > MAX_EVENT_BYTES {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("never empty").push(r);
    }
    out
}

impl Pipeline {
    fn matches(&self, r: &Record) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| f.matches(&r.filter_view))
    }

    /// One polled batch to its end. `false`: stopped part way (what was not
    /// acknowledged will be delivered again).
    async fn process<S: Source>(
        &self,
        source: &mut S,
        records: Vec<Record>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let (matched, filtered): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(|r| self.matches(r));
        if !filtered.is_empty() {
            self.counts.filtered_out(filtered.len());
            self.ack(source, &filtered, false).await;
        }
        for batch in by_size(matched) {
            if batch.is_empty() {
                continue;
            }
            let done = match self.kind.semantics() {
                Semantics::Queue => {
                    self.queue_batch(source, batch, stop).await;
                    true
                }
                Semantics::Stream => self.stream_batch(source, batch, stop).await,
            };
            if !done {
                return false;
            }
        }
        true
    }

    /// Acknowledge; `processed`: these were processed (not filtered out or
    /// given up on).
    async fn ack<S: Source>(&self, source: &mut S, records: &[Record], processed: bool) {
        if records.is_empty() {
            return;
        }
        match source.ack(tokens(records)).await {
            Ok(()) => {
                if processed {
                    self.counts.processed(records.len());
                }
                if self.kind.semantics() == Semantics::Queue {
                    self.counts.deleted(records.len());
                }
            }
            // Not acknowledged: the broker hands them out again (at least once).
            Err(e) => {
                tracing::warn!(mapping = %self.spec.uuid, error = %e, records = records.len(), "acknowledging records failed; they will be delivered again")
            }
        }
    }

    /// Ticks every `renew_every`, the first one period from now. (An
    /// `interval`'s immediate first tick is not free: tokio rounds its
    /// deadline up to the timer's next millisecond, so awaiting it cost each
    /// batch up to a millisecond of waiting.)
    fn renewals(&self) -> tokio::time::Interval {
        tokio::time::interval_at(
            tokio::time::Instant::now() + self.renew_every,
            self.renew_every,
        )
    }

    /// Records one poll takes: a batch, or for streams with
    /// `ParallelizationFactor` one batch per lane.
    fn poll_max(&self) -> usize {
        let lanes = match self.kind.semantics() {
            Semantics::Stream => self.spec.parallelization_factor.max(1),
            Semantics::Queue => 1,
        };
        (self.spec.batch_size * lanes) as usize
    }

    /// Invoke each batch (together: one per lane), renewing the records'
    /// claim while the function runs.
    async fn invoke_all<S: Source>(
        &self,
        source: &mut S,
        batches: &[&[Record]],
    ) -> Vec<Invocation> {
        let mut calls = Vec::with_capacity(batches.len());
        for records in batches {
            let event = source.event(records);
            let data: Vec<&Value> = records.iter().map(|r| &r.data).collect();
            self.counts.invoked(records.len());
            if let Some(o) = &self.observer {
                o(records);
            }
            calls.push(async move { self.target.invoke(event, &data).await });
        }
        let call = futures_util::future::join_all(calls);
        tokio::pin!(call);
        // A full poll: there is likely more; read it while this runs.
        let polled: usize = batches.iter().map(|b| b.len()).sum();
        if polled >= self.spec.batch_size as usize && self.ahead.is_empty() {
            let mut done = None;
            {
                let next = source.poll(self.poll_max(), Duration::ZERO);
                tokio::pin!(next);
                loop {
                    tokio::select! {
                        r = &mut call, if done.is_none() => done = Some(r),
                        n = &mut next => {
                            match n {
                                Ok(more) => {
                                    self.counts.polled(more.len());
                                    self.ahead.put(more);
                                }
                                // The next collect polls again.
                                Err(e) => tracing::debug!(mapping = %self.spec.uuid, error = %e, "reading ahead failed"),
                            }
                            break;
                        }
                    }
                }
            }
            if let Some(r) = done {
                return r;
            }
        }
        let mut renew = self.renewals();
        loop {
            tokio::select! {
                done = &mut call => return done,
                _ = renew.tick() => {
                    let held = batches.iter().flat_map(|b| tokens(b)).collect();
                    if let Err(e) = source.renew(held).await {
                        tracing::warn!(mapping = %self.spec.uuid, error = %e, "renewing the claim on records failed");
                    }
                }
            }
        }
    }

    /// Records given up on: to the on-failure destination (or dropped,
    /// counted and logged), then acknowledged so the stream moves on.
    async fn give_up<S: Source>(
        &self,
        source: &mut S,
        records: &[Record],
        condition: Condition,
        invokes: i64,
        last: Last,
    ) {
        let condition = match condition {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        };
        let record = self.failure_record(records, condition, invokes, last);
        let delivered = match &self.destination {
            None => false,
            Some(d) => {
                let mut ok = false;
                for attempt in 0..DESTINATION_ATTEMPTS {
                    match d.deliver(&record).await {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(mapping = %self.spec.uuid, error = %e, attempt, "delivering to the on-failure destination failed");
                            self.counts.destination_failures(1);
                            tokio::time::sleep(RETRY_FIRST * 2u32.pow(attempt)).await;
                        }
                    }
                }
                ok
            }
        };
        if delivered {
            self.counts.on_failure_delivered(records.len());
        } else {
            self.counts.dropped(records.len());
            tracing::error!(
                mapping = %self.spec.uuid,
                condition,
                records = records.len(),
                first = %records.first().map(|r| r.id.as_str()).unwrap_or_default(),
                last = %records.last().map(|r| r.id.as_str()).unwrap_or_default(),
                "records dropped: no on-failure destination took them"
            );
        }
        self.ack(source, records, false).await;
    }

    /// Lambda's invocation record for a stream batch given up on, with the
    /// records (`payload`, as AWS's S3 destinations carry them).
    fn failure_record(
        &self,
        records: &[Record],
        condition: &str,
        invokes: i64,
        last: Last,
    ) -> Value {
        let first = records.first();
        let last_r = records.last();
        let event =
            String::from_utf8(super::source::records_event(records)).expect("JSON text is UTF-8");
        json!({
            "requestContext": {
                "requestId": crate::new_uuid().to_string(),
                "functionArn": self.target.function_arn(),
                "condition": condition,
                "approximateInvokeCount": invokes,
            },
            "responseContext": match last {
                Last::None => json!({"statusCode": 200, "executedVersion": "$LATEST"}),
                Last::FunctionError => json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}),
                Last::PartialFailure => json!({"statusCode": 200, "executedVersion": "$LATEST"}),
            },
            "version": "1.0",
            "timestamp": iso(now_ms()),
            self.kind.batch_info_key(): {
                "shardId": SourceKind::resource(&self.spec.source_arn),
                "startSequenceNumber": first.map(|r| r.id.as_str()),
                "endSequenceNumber": last_r.map(|r| r.id.as_str()),
                "approximateArrivalOfFirstRecord": first.map(|r| iso(r.arrived_ms)),
                "approximateArrivalOfLastRecord": last_r.map(|r| iso(r.arrived_ms)),
                "batchSize": records.len(),
                "streamArn": self.spec.source_arn,
            },
            "payload": event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: usize) -> Record {
        let data = "x".repeat(bytes);
        Record {
            id: String::new(),
            token: String::new(),
            group: None,
            arrived_ms: 0,
            event: super::super::source::raw(&json!({ "body": data })),
            filter_view: Value::Null,
            data: Value::Null,
            size: bytes,
        }
    }

    #[test]
    fn batches_are_cut_below_the_invoke_limit() {
        // Small records: one batch.
        assert_eq!(by_size((0..100).map(|_| record(100)).collect()).len(), 1);
        // Four 2 MB records: two per batch.
        let cut = by_size((0..4).map(|_| record(2 << 20)).collect());
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    }
}
