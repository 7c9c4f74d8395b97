//! `[[functions]]`: functions declared in the configuration file (Lambda's
//! `CreateFunction` fields in snake_case), and `[function_pool]`, the worker
//! threads that run JavaScript functions. A declared function is read (its
//! code loaded and checked) when the server starts; the Lambda API lists and
//! invokes it but does not change it (change the file).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One `[[functions]]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FunctionFile {
    pub name: String,
    /// `nodejs22.x`, `herald-js` (JavaScript, the default), or any runtime
    /// for an HTTP function (with `url`).
    pub runtime: Option<String>,
    /// `file.export` (default `index.handler`).
    pub handler: Option<String>,
    /// The module's source, inline.
    pub code: Option<String>,
    /// A `.mjs`/`.js` module or a `.zip` package.
    pub code_file: Option<PathBuf>,
    /// An HTTP function's URL.
    pub url: Option<String>,
    pub description: Option<String>,
    /// Default 3 (Lambda's).
    pub timeout_secs: Option<u64>,
    /// Default 128.
    pub memory_mb: Option<u32>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub reserved_concurrency: Option<u32>,
}

/// `[function_pool]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionPoolFile {
    /// Worker threads running JavaScript functions (default 2).
    pub workers: Option<usize>,
    /// Invocations that may wait for a worker before new ones are refused
    /// with `TooManyRequestsException` (default 1024).
    pub queue: Option<usize>,
    /// A PEM file of CA certificates HTTP functions (and `fetch`) trust, on
    /// top of the web's roots.
    pub http_ca_file: Option<PathBuf>,
}

impl FunctionFile {
    /// Check what can be checked without reading files.
    pub fn check(&self) -> Result<(), String> {
        crate::functions::check_name(&self.name).map_err(|e| format!("[[functions]]: {e}"))?;
        let sources = [
            self.code.is_some(),
            self.code_file.is_some(),
            self.url.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(format!(
                "function '{}': give exactly one of code, code_file or url",
                self.name
            ));
        }
        Ok(())
    }
}
