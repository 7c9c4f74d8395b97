//! The configuration file: any text is a configuration, or refused with a
//! message; a file that parses resolves (defaults, validation) without a
//! panic.
#![no_main]

use herald::config::{ApiConfig, ConfigFile, Overrides};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Files the configuration names are read whole: a device that never
    // ends is the operator's own choice, not a parsing bug.
    if text.contains("/dev/") || text.contains("/proc/") || text.contains("/sys/") {
        return;
    }
    if let Ok(file) = ConfigFile::parse(text) {
        let _ = ApiConfig::resolve(file, Overrides::default());
    }
});
