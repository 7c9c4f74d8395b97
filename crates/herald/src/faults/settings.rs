//! `[fault_injection]` in the configuration file.

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultInjectionFile {
    /// Serve the FIS API (experiments that delay or fail invocations, drop
    /// engine traffic, close connections). Default: off with a configuration
    /// file (production), on in the development mode (no file).
    pub enabled: Option<bool>,
}
