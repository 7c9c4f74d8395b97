//! Event source mapping metrics, Lambda's ESM metrics on `/metrics`: opt-in
//! per mapping (`MetricsConfig: {Metrics: ["EventCount"]}`), labelled by the
//! mapping's UUID (bounded: one label value per mapping with metrics on,
//! removed when the mapping is deleted or turns them off).
//!
//! The counts add up: every polled record is filtered out or put in a batch,
//! and each record's final outcome is exactly one of processed (and
//! acknowledged), delivered to the on-failure destination, or dropped.
//! `herald_esm_invoked_events_total` counts every attempt, so retries make it
//! exceed the polled count, as Lambda's `InvokedEventCount` does.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MappingLabels {
    mapping: String,
}

/// The metric families, registered once.
#[derive(Clone, Default)]
pub struct EsmMetrics {
    polled: Family<MappingLabels, Counter>,
    filtered_out: Family<MappingLabels, Counter>,
    invoked: Family<MappingLabels, Counter>,
    failed_invoke: Family<MappingLabels, Counter>,
    dropped: Family<MappingLabels, Counter>,
    on_failure_delivered: Family<MappingLabels, Counter>,
    destination_failures: Family<MappingLabels, Counter>,
    processed: Family<MappingLabels, Counter>,
    deleted: Family<MappingLabels, Counter>,
    offset_lag: Family<MappingLabels, Gauge>,
    pollers: Family<MappingLabels, Gauge>,
}

/// One mapping's counters; all no-ops when its metrics are off.
#[derive(Clone, Default)]
pub struct Counts {
    on: Option<Series>,
}

#[derive(Clone)]
struct Series {
    polled: Counter,
    filtered_out: Counter,
    invoked: Counter,
    failed_invoke: Counter,
    dropped: Counter,
    on_failure_delivered: Counter,
    destination_failures: Counter,
    processed: Counter,
    deleted: Counter,
    offset_lag: Gauge,
    pollers: Gauge,
}

impl EsmMetrics {
    pub fn register(&self, r: &mut Registry) {
        let families: [(&str, &str, &Family<MappingLabels, Counter>); 9] = [
            ("esm_polled_events", "Records read from the source (Lambda's PolledEventCount)", &self.polled),
            ("esm_filtered_out_events", "Records dropped by FilterCriteria (FilteredOutEventCount)", &self.filtered_out),
            ("esm_invoked_events", "Records sent in an invocation, every attempt (InvokedEventCount)", &self.invoked),
            ("esm_failed_invoke_events", "Records in an invocation that failed or reported item failures (FailedInvokeEventCount)", &self.failed_invoke),
            ("esm_dropped_events", "Records given up on (retries or record age) and not delivered to a destination (DroppedEventCount)", &self.dropped),
            ("esm_on_failure_destination_delivered_events", "Records delivered to the on-failure destination (OnFailureDestinationDeliveredEventCount)", &self.on_failure_delivered),
            ("esm_destination_delivery_failures", "Failed deliveries to the on-failure destination (DestinationDeliveryFailures)", &self.destination_failures),
            ("esm_processed_events", "Records processed successfully and acknowledged to the source", &self.processed),
            ("esm_deleted_events", "Queue messages deleted after processing (DeletedEventCount)", &self.deleted),
        ];
        for (name, help, f) in families {
            r.register(name, help, f.clone());
        }
        r.register(
            "esm_offset_lag",
            "Records in the source not yet processed by the mapping (OffsetLag)",
            self.offset_lag.clone(),
        );
        r.register(
            "esm_pollers",
            "Pollers running for the mapping on this node (queues scale them with the backlog)",
            self.pollers.clone(),
        );
    }

    /// The counters of `uuid` (metrics on) or no-ops (off).
    pub fn counts(&self, uuid: &str, on: bool) -> Counts {
        if !on {
            self.remove(uuid);
            return Counts::default();
        }
        let l = MappingLabels {
            mapping: uuid.to_string(),
        };
        Counts {
            on: Some(Series {
                polled: self.polled.get_or_create(&l).clone(),
                filtered_out: self.filtered_out.get_or_create(&l).clone(),
                invoked: self.invoked.get_or_create(&l).clone(),
                failed_invoke: self.failed_invoke.get_or_create(&l).clone(),
                dropped: self.dropped.get_or_create(&l).clone(),
                on_failure_delivered: self.on_failure_delivered.get_or_create(&l).clone(),
                destination_failures: self.destination_failures.get_or_create(&l).clone(),
                processed: self.processed.get_or_create(&l).clone(),
                deleted: self.deleted.get_or_create(&l).clone(),
                offset_lag: self.offset_lag.get_or_create(&l).clone(),
                pollers: self.pollers.get_or_create(&l).clone(),
            }),
        }
    }

    pub fn remove(&self, uuid: &str) {
        let l = MappingLabels {
            mapping: uuid.to_string(),
        };
        for f in [
            &self.polled,
            &self.filtered_out,
            &self.invoked,
            &self.failed_invoke,
            &self.dropped,
            &self.on_failure_delivered,
            &self.destination_failures,
            &self.processed,
            &self.deleted,
        ] {
            f.remove(&l);
        }
        self.offset_lag.remove(&l);
        self.pollers.remove(&l);
    }
}

macro_rules! counter {
    ($name:ident) => {
        pub fn $name(&self, n: usize) {
            if let Some(s) = &self.on {
                s.$name.inc_by(n as u64);
            }
        }
    };
}

impl Counts {
    counter!(polled);
    counter!(filtered_out);
    counter!(invoked);
    counter!(failed_invoke);
    counter!(dropped);
    counter!(on_failure_delivered);
    counter!(destination_failures);
    counter!(processed);
    counter!(deleted);

    pub fn pollers(&self, n: usize) {
        if let Some(s) = &self.on {
            s.pollers.set(n as i64);
        }
    }

    pub fn offset_lag(&self, lag: u64) {
        if let Some(s) = &self.on {
            s.offset_lag.set(lag as i64);
        }
    }
}
