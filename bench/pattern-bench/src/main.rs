//! herald-pattern's `Matcher` against the `quamina` crate: 1 KB JSON events
//! (EventBridge-shaped) matched against 100, 10,000 and 100,000 patterns drawn
//! from a mix of operators both support (exact, prefix, suffix,
//! equals-ignore-case, anything-but lists, numeric ranges, exists). One
//! thread, so the figures are per core. Each side parses the event bytes
//! itself. Allocations are counted by a counting global allocator.
//!
//! `cargo run --release -- [SECONDS_PER_CASE]` (default 2); prints a table and
//! one JSON line per case.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SOURCES: u64 = 500;
const TYPES: &[&str] = &[
    "Order Placed",
    "Order Shipped",
    "Payment Failed",
    "User Signed Up",
    "Item Viewed",
];
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-south-1",
];
const STATUS: &[&str] = &["PLACED", "PAID", "SHIPPED", "CANCELLED", "RETURNED"];
const TIERS: &[&str] = &["Gold", "Silver", "Bronze"];

fn event(rng: &mut Rng) -> Vec<u8> {
    let items: Vec<String> = (0..3)
        .map(|i| {
            format!(
                r#"{{"sku":"sku-{}","qty":{},"price":{}.{:02}}}"#,
                rng.below(1000),
                1 + i,
                rng.below(200),
                rng.below(100)
            )
        })
        .collect();
    let coupon = if rng.below(4) == 0 {
        r#","coupon":"SAVE10""#
    } else {
        ""
    };
    let e = format!(
        r#"{{"version":"0","id":"{:016x}-{:08x}","detail-type":"{}","source":"svc-{}","account":"123456789012","time":"2026-11-28T12:00:00Z","region":"{}","resources":["arn:aws:shop:{}:123456789012:order/o-{}"],"detail":{{"orderId":"o-{}","customer":{{"id":"c-{}","tier":"{}","country":"DE","email":"user{}@example.com"}},"amount":{}.{:02},"currency":"EUR","items":[{}],"status":"{}","channel":"web","ip":"10.{}.{}.{}"{},"note":"{}"}}}}"#,
        rng.next(),
        rng.below(1 << 32),
        TYPES[rng.below(5) as usize],
        rng.below(SOURCES),
        REGIONS[rng.below(5) as usize],
        REGIONS[rng.below(5) as usize],
        rng.below(100_000),
        rng.below(100_000),
        rng.below(10_000),
        TIERS[rng.below(3) as usize],
        rng.below(10_000),
        rng.below(1000),
        rng.below(100),
        items.join(","),
        STATUS[rng.below(5) as usize],
        rng.below(256),
        rng.below(256),
        rng.below(256),
        coupon,
        "x".repeat(280)
    );
    e.into_bytes()
}

fn pattern(rng: &mut Rng) -> String {
    let src = rng.below(SOURCES);
    match rng.below(10) {
        0..=3 => format!(
            r#"{{"source":["svc-{src}"],"detail-type":["{}"]}}"#,
            TYPES[rng.below(5) as usize]
        ),
        4 => format!(
            r#"{{"source":["svc-{src}"],"detail":{{"customer":{{"id":[{{"prefix":"c-{}"}}]}}}}}}"#,
            rng.below(100)
        ),
        5 => {
            let lo = rng.below(900);
            format!(
                r#"{{"source":["svc-{src}"],"detail":{{"amount":[{{"numeric":[">",{lo},"<=",{}]}}]}}}}"#,
                lo + 100
            )
        }
        6 => format!(
            r#"{{"source":["svc-{src}"],"detail":{{"status":[{{"anything-but":["CANCELLED","RETURNED"]}}]}}}}"#
        ),
        7 => format!(r#"{{"source":["svc-{src}"],"detail":{{"coupon":[{{"exists":true}}]}}}}"#),
        8 => format!(
            r#"{{"source":["svc-{src}"],"detail":{{"customer":{{"tier":[{{"equals-ignore-case":"{}"}}]}}}}}}"#,
            TIERS[rng.below(3) as usize].to_uppercase()
        ),
        _ => format!(
            r#"{{"region":["{}"],"detail":{{"customer":{{"email":[{{"suffix":"{}@example.com"}}]}}}}}}"#,
            REGIONS[rng.below(5) as usize],
            rng.below(1000)
        ),
    }
}

struct Run {
    events_per_sec: f64,
    allocs_per_event: f64,
    matches: u64,
}

fn measure(seconds: f64, events: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> usize) -> Run {
    // Warm up, then run whole passes over the events until the time is up.
    for e in events.iter().take(200) {
        f(e);
    }
    let started = Instant::now();
    let allocs = ALLOCS.load(Ordering::Relaxed);
    let (mut n, mut matches) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        for e in events {
            matches += f(e) as u64;
        }
        n += events.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    Run {
        events_per_sec: n as f64 / secs,
        allocs_per_event: (ALLOCS.load(Ordering::Relaxed) - allocs) as f64 / n as f64,
        matches: matches * events.len() as u64 / n.max(1),
    }
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events: Vec<Vec<u8>> = (0..2000).map(|_| event(&mut rng)).collect();
    let avg = events.iter().map(Vec::len).sum::<usize>() / events.len();
    println!(
        "events: {} distinct, {avg} bytes on average; {seconds} s per case, one thread",
        events.len()
    );
    println!(
        "{:>8} | {:>14} {:>10} | {:>14} {:>10} | {:>6} | matches/pass h/q",
        "patterns", "herald ev/s", "allocs/ev", "quamina ev/s", "allocs/ev", "ratio"
    );
    for n in [100usize, 10_000, 100_000] {
        let patterns: Vec<String> = (0..n).map(|_| pattern(&mut rng)).collect();
        let t = Instant::now();
        let mut herald = herald_pattern::Matcher::new();
        for (i, p) in patterns.iter().enumerate() {
            herald.add(
                i,
                &herald_pattern::Pattern::parse(p).expect("a valid pattern"),
            );
        }
        let herald_build = t.elapsed();
        let t = Instant::now();
        let mut quamina = quamina::Quamina::<usize>::new();
        for (i, p) in patterns.iter().enumerate() {
            quamina
                .add_pattern(i, p)
                .expect("quamina takes the pattern");
        }
        let quamina_ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            quamina.matches_for_event(&events[0]).is_ok()
        }))
        .unwrap_or(false);
        let quamina_build = t.elapsed();

        let mut scratch = herald.scratch();
        let mut out = Vec::new();
        let h = measure(seconds, &events, |bytes| {
            out.clear();
            herald
                .matches_json_into(bytes, &mut scratch, &mut out)
                .unwrap();
            out.len()
        });
        // Through a tree (serde_json::Value) first: what a caller that already
        // holds the event parsed pays.
        let mut out2 = Vec::new();
        let tree = measure(seconds / 2.0, &events, |bytes| {
            let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            out2.clear();
            herald.matches_into(&v, &mut scratch, &mut out2);
            out2.len()
        });
        // quamina 0.7.0 panics on some pattern sets; report that rather than die.
        let q = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            measure(seconds, &events, |bytes| {
                quamina.matches_for_event(bytes).unwrap().len()
            })
        }))
        .ok();
        let q = q.unwrap_or(Run {
            events_per_sec: 0.0,
            allocs_per_event: 0.0,
            matches: 0,
        });
        if quamina_ok && q.events_per_sec > 0.0 {
            println!(
                "{n:>8} | {:>14.0} {:>10.1} | {:>14.0} {:>10.1} | {:>5.2}x | {}/{}",
                h.events_per_sec,
                h.allocs_per_event,
                q.events_per_sec,
                q.allocs_per_event,
                h.events_per_sec / q.events_per_sec,
                h.matches,
                q.matches
            );
        } else {
            println!(
                "{n:>8} | {:>14.0} {:>10.1} | {:>25} | {:>6} | {}/-",
                h.events_per_sec, h.allocs_per_event, "quamina panicked", "-", h.matches
            );
        }
        println!(
            "{{\"patterns\":{n},\"herald_events_per_sec\":{:.0},\"herald_allocs_per_event\":{:.2},\"herald_via_tree_events_per_sec\":{:.0},\"herald_build_ms\":{},\"quamina_ok\":{},\"quamina_events_per_sec\":{:.0},\"quamina_allocs_per_event\":{:.2},\"quamina_build_ms\":{},\"matches_per_pass_herald\":{},\"matches_per_pass_quamina\":{}}}",
            h.events_per_sec, h.allocs_per_event, tree.events_per_sec, herald_build.as_millis(), quamina_ok && q.events_per_sec > 0.0,
            q.events_per_sec, q.allocs_per_event, quamina_build.as_millis(), h.matches, q.matches
        );
    }
}
