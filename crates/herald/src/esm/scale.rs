//! Queue pollers that follow the backlog, as Lambda's SQS pollers do: a
//! mapping starts with a few, adds more while polls come back full, up to
//! `ScalingConfig.MaximumConcurrency`, and lets idle ones go.
//!
//! * Start: `min(INITIAL, maximum)` pollers (Lambda starts with five).
//! * Up: every `TICK`, if any poll since the last tick returned at least
//!   half a batch (a backlog: SQS may return fewer messages than asked
//!   even when more wait), up to `STEP` more pollers start (Lambda adds up to 300 a
//!   minute; this is the same rate).
//! * Down: a poller whose polls come back empty `IDLE_POLLS` times in a row
//!   stops, while more than the initial number run.
//!
//! Only counters are shared; the supervisor in `esm::mod` starts pollers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Pollers a queue mapping starts with.
pub const INITIAL: usize = 5;
/// How often the supervisor looks at the polls.
pub const TICK: Duration = Duration::from_secs(1);
/// Pollers added per tick at most (300 a minute).
pub const STEP: usize = 5;
/// Empty polls in a row (about a second each) before an extra poller stops.
pub const IDLE_POLLS: u32 = 10;

pub struct Scale {
    running: AtomicUsize,
    full: AtomicUsize,
    floor: usize,
    maximum: usize,
}

impl Scale {
    pub fn new(maximum: usize) -> Scale {
        let maximum = maximum.max(1);
        Scale {
            running: AtomicUsize::new(0),
            full: AtomicUsize::new(0),
            floor: INITIAL.min(maximum),
            maximum,
        }
    }

    /// Pollers to start now: the initial ones.
    pub fn initial(&self) -> usize {
        self.floor
    }

    /// `n` pollers started.
    pub fn started(&self, n: usize) {
        self.running.fetch_add(n, Ordering::Relaxed);
    }

    /// A poller's poll: `full` when it returned at least half a batch
    /// (there is a backlog).
    pub fn polled(&self, full: bool) {
        if full {
            self.full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many pollers to add now (and counts them as running): some while
    /// polls came back full since the last call, none otherwise.
    pub fn grow(&self) -> usize {
        if self.full.swap(0, Ordering::Relaxed) == 0 {
            return 0;
        }
        let running = self.running.load(Ordering::Relaxed);
        let add = self.maximum.saturating_sub(running).min(STEP);
        self.running.fetch_add(add, Ordering::Relaxed);
        add
    }

    /// An idle poller asks to stop: `true` (and it is no longer counted)
    /// while more than the initial number run.
    pub fn retire(&self) -> bool {
        self.running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                (r > self.floor).then(|| r - 1)
            })
            .is_ok()
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_full_polls_to_the_maximum_and_shrinks_to_the_start() {
        let s = Scale::new(12);
        s.started(s.initial());
        assert_eq!(s.running(), 5);
        assert_eq!(s.grow(), 0, "no backlog, no growth");
        s.polled(false);
        assert_eq!(s.grow(), 0, "an empty poll is no backlog");
        s.polled(true);
        assert_eq!(s.grow(), 5);
        s.polled(true);
        assert_eq!(s.grow(), 2, "up to the maximum");
        s.polled(true);
        assert_eq!(s.grow(), 0, "at the maximum");
        assert_eq!(s.running(), 12);
        let retired = (0..20).filter(|_| s.retire()).count();
        assert_eq!(retired, 7, "idle pollers stop down to the initial five");
        assert_eq!(s.running(), 5);
    }

    #[test]
    fn a_small_maximum_is_the_start() {
        let s = Scale::new(2);
        assert_eq!(s.initial(), 2);
    }
}
