//! The WebSocket frame decoder on arbitrary client bytes, fed in arbitrary
//! pieces: it never panics, never yields more than it was given, and once it
//! fails it keeps failing with the same error.
#![no_main]

use herald_core::websocket::{Decoder, Incoming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, Vec<u8>, Vec<u8>)| {
    let (max, cuts, bytes) = input;
    // Small limits reach the too-big paths; zero is not a configuration.
    let max = (max as usize).clamp(1, 1 << 16);
    let mut decoder = Decoder::new(max);
    let mut rest = &bytes[..];
    let mut cuts = cuts.iter();
    let mut failed = None;
    while !rest.is_empty() {
        let n = cuts
            .next()
            .map_or(rest.len(), |c| (*c as usize).clamp(1, rest.len()));
        let (piece, after) = rest.split_at(n);
        rest = after;
        match decoder.feed(piece) {
            Ok(()) => assert!(failed.is_none(), "a failed decoder fed again"),
            Err(e) => {
                if let Some(before) = &failed {
                    assert_eq!(before, &e, "a failed decoder keeps its error");
                }
                assert_eq!(decoder.failed(), Some(&e));
                failed = Some(e);
            }
        }
        while let Some(m) = decoder.next_message() {
            if let Incoming::Text(t) = &m {
                assert!(t.len() <= max, "a message over the limit came out");
            }
        }
    }
});
