//! Channel paths and subscription patterns: parsing never panics, a parsed
//! path round-trips, and a pattern made of a channel's own path matches it.
#![no_main]

use herald_core::channel::{Channel, ChannelPattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (a, b) = input;
    let channel = Channel::parse(a);
    let pattern = ChannelPattern::parse(b);
    if let Ok(c) = &channel {
        assert_eq!(
            Channel::parse(c.path()).as_ref().map(Channel::path),
            Ok(c.path())
        );
        let _ = c.prefix(c.depth());
        let own = ChannelPattern::parse(c.path()).expect("a channel's path is a pattern");
        assert!(own.matches(c), "{} does not match itself", c.path());
    }
    if let (Ok(c), Ok(p)) = (&channel, &pattern) {
        let _ = p.matches(c);
    }
});
