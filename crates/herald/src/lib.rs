//! Herald: a self-hosted, AWS AppSync Events wire-compatible real-time event
//! server.
//!
//! Layout: [`config`] (the TOML file and flags), [`admin`] (the admin
//! listener: AWS's management APIs), [`store`] (what the control plane
//! creates), [`functions`] (Lambda-compatible functions), [`handlers`]
//! (namespace handlers), [`auth`] (auth modes),
//! [`hub`] (subscriptions, outbound queues, the distribution engine), [`api`]
//! (the operations shared by HTTP and WebSocket), [`server`] (listener, TLS,
//! HTTP and WebSocket fronts, shutdown) and [`cli`] (the `herald` commands). The
//! wire format itself lives in the I/O-free `herald-core` crate.

// The request handlers' futures nest the outbound HTTP client's (reqwest's)
// deep types; computing their layouts needs more than the default 128 levels.
#![recursion_limit = "256"]

pub mod admin;
pub mod api;
pub mod auth;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod config;
pub mod esm;
pub mod faults;
pub mod functions;
pub mod handlers;
pub mod http_client;
pub mod hub;
pub mod js;
pub mod jsonata;
pub mod jsonpath;
pub mod metrics;
pub mod resp;
pub mod server;
pub mod store;
pub mod workflow;

/// A random (v4) UUID from the thread-local RNG: request ids and event
/// identifiers need uniqueness, not a `getrandom` system call each.
pub fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}
