//! `herald bench`: a load generator for any AppSync Events endpoint (Herald or
//! AWS) over the real protocol, with API key auth.
//!
//! Scenarios: `fanout` (S subscribers on one channel), `channels` (C channels x k
//! subscribers at a fixed rate), `connect` (N connections with one subscription
//! each, as fast as possible), `http-publish` (publish rate over HTTP), and
//! `recovery` (a subscriber that missed N events gets them back from channel
//! history), and in-process ones: `handler`, `function`, `esm`, `bus` (the
//! event bus with its durable log), `direct` (publishes through a DIRECT
//! handler calling a function over HTTP), `soak` (an hour of mixed traffic
//! sampled for growth). With
//! several `--endpoint`s, subscribers and publishers spread over them (the
//! cross-node variant). Every event carries its publish time, so subscribers
//! measure publish-to-deliver latency (HdrHistogram). Given `--server-pid`, the
//! report adds the server's RSS and CPU time. Runs are bounded in time and refuse
//! non-loopback endpoints unless `--allow-remote`.

mod bus;
mod connect;
mod delivery;
mod direct;
mod esm;
mod function;
mod handler;
mod proc;
mod publish;
mod rawws;
mod recovery;
mod soak;
mod subscribe;
mod target;
mod workflows;

use bus::bus_scenario;
use clap::{Args, Subcommand};
use connect::{connect_scenario, http_publish_scenario};
use delivery::delivery_scenario;
use esm::esm_scenario;
use function::function_scenario;
use handler::handler_scenario;
use publish::Plan;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// HTTP endpoint(s) of the API (repeat for several nodes).
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:8080/event")]
    pub endpoints: Vec<String>,
    #[arg(long, env = "HERALD_API_KEY")]
    pub api_key: String,
    /// Server process id(s), for RSS and CPU figures (Linux /proc).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// How long the measured phase runs, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Spread client connections over this many source addresses 127.0.0.1..N.
    #[arg(long, default_value_t = 8)]
    pub source_ips: u8,
    /// Allow endpoints that are not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// The namespace to use.
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// S subscribers on one channel, P HTTP publishers at a fixed or max rate.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        /// Events per second in total; 0 = as fast as possible.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Event size in bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Events per publish request (1-5).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Publish over WebSocket instead of HTTP.
        #[arg(long)]
        ws_publishers: bool,
        /// With --ws-publishers: publish requests in flight per connection
        /// (pipelined; an HTTP/1.1 publisher always has one, so add publishers).
        #[arg(long, default_value_t = 1)]
        window: usize,
    },
    /// C channels x k subscribers, a fixed total publish rate.
    Channels {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        channels: usize,
        #[arg(long, default_value_t = 5)]
        per_channel: usize,
        #[arg(long, default_value_t = 20000)]
        rate: u64,
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Events per publish request (1-5), all to the same channel.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Publish over WebSocket instead of HTTP.
        #[arg(long)]
        ws_publishers: bool,
        /// With --ws-publishers: publish requests in flight per connection
        /// (pipelined; an HTTP/1.1 publisher always has one, so add publishers).
        #[arg(long, default_value_t = 1)]
        window: usize,
    },
    /// A subscriber that missed N events gets them back with `since`
    /// (the namespace must keep history of at least N events).
    Recovery {
        #[command(flatten)]
        common: Common,
        /// Events missed per round.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// HTTP publishers filling the history.
        #[arg(long, default_value_t = 8)]
        publishers: usize,
    },
    /// N connections with one subscription each, as fast as possible.
    Connect {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 5000)]
        connections: usize,
        /// Handshakes in flight.
        #[arg(long, default_value_t = 100)]
        in_flight: usize,
        /// Seconds to hold the connections idle before measuring RSS.
        #[arg(long, default_value_t = 2)]
        hold: u64,
    },
    /// Handler engine timings: cold start (load + first call) and warm calls of
    /// an `onPublish` handler, without the network.
    Handler {
        /// Handler source file (default: the AWS docs' transform example).
        #[arg(long)]
        code: Option<std::path::PathBuf>,
        /// Events per invocation.
        #[arg(long, default_value_t = 5)]
        events: usize,
        #[arg(long, default_value_t = 20)]
        loads: usize,
        #[arg(long, default_value_t = 20000)]
        calls: usize,
    },
    /// Function timings: cold start with and without pre-initialization,
    /// warm invocation overhead, and invocations/s, without the network.
    Function {
        /// Module source (default: a generated module of --kb KB).
        #[arg(long)]
        code: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 10)]
        kb: usize,
        #[arg(long, default_value_t = 20)]
        loads: usize,
        #[arg(long, default_value_t = 20000)]
        calls: usize,
        /// Callers for the invocations/s phase.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds of the invocations/s phase.
        #[arg(long, default_value_t = 5)]
        duration: u64,
    },
    /// An event source mapping next to the broker's own consumer: records/s
    /// (batch 100, a trivial JavaScript function) and append-to-invoke
    /// latency at a fixed rate. Needs the broker (Redis or NATS JetStream).
    Esm {
        /// `redis` or `jetstream`.
        #[arg(long, default_value = "redis")]
        source: String,
        /// The broker's URL (default: 127.0.0.1 and its usual port).
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        #[arg(long, default_value_t = 100)]
        batch: u64,
        /// Record size in bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Records per second in the live phase.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Seconds of the live phase.
        #[arg(long, default_value_t = 5)]
        duration: u64,
    },
    /// The workflow engine: express executions per second of a five-state
    /// JSONata machine, and durable (journaled) transitions per second.
    Workflows {
        /// Seconds of each phase.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Concurrent callers.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// The event bus, durable log on: PutEvents accepted per second, and
    /// PutEvents-to-target latency at a fixed rate, with many rules.
    Bus {
        /// Rules (varied patterns), each with a channel target.
        #[arg(long, default_value_t = 100)]
        rules: usize,
        /// Events per second in the latency phase.
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        /// Seconds of each phase.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Concurrent PutEvents senders in the throughput phase.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Entries per PutEvents (1-10).
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// The event log: `local` (SQLite), or a cluster node's shared log,
        /// `nats` (JetStream) or `redis` (Redis Streams).
        #[arg(long, default_value = "local")]
        log: String,
        /// The PostgreSQL server a cluster node's store goes on (a database
        /// is created for the run and dropped after).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        store_url: String,
    },
    /// Publish over HTTP through a DIRECT onPublish handler whose function (an
    /// echo server) is called over HTTP, or HTTPS with `--tls`; all in this
    /// process.
    Direct {
        #[arg(long, default_value_t = 16)]
        publishers: usize,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        payload: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Call the function over HTTPS (a self-signed certificate).
        #[arg(long)]
        tls: bool,
    },
    /// Mixed traffic for a long time (connect/disconnect churn, publishes
    /// with API keys and SigV4, JavaScript handlers) against Herald in this
    /// process; RSS, file descriptors and tasks sampled to show they stay flat.
    Soak {
        /// Seconds to run (one hour by default).
        #[arg(long, default_value_t = 3600)]
        duration: u64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10)]
        sample: u64,
        #[arg(long, default_value_t = 200)]
        subscribers: usize,
        /// HTTP publishes per second.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        /// Short-lived WebSocket connections opened per second.
        #[arg(long, default_value_t = 20)]
        churn: u64,
    },
    /// Publish over HTTP (keep-alive) as fast as possible.
    HttpPublish {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 8)]
        publishers: usize,
        #[arg(long, default_value_t = 5)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        payload: usize,
    },
}

/// Herald in this process for an in-process scenario: `config_text`
/// resolved, on a free loopback port, with a memory store, no admin listener
/// and no drain period on shutdown.
async fn in_process(config_text: &str) -> Result<crate::server::Server, String> {
    let file = crate::config::ConfigFile::parse(config_text)?;
    let mut config = crate::config::ApiConfig::resolve(
        file,
        crate::config::Overrides {
            listen: Some("127.0.0.1:0".parse().expect("an address")),
            ..Default::default()
        },
    )?;
    config.admin_listen = None;
    config.store = crate::config::StoreConfig::memory();
    config.drain = std::time::Duration::ZERO;
    crate::server::Server::bind(config).await
}

/// What went wrong in a failed run, for the error line.
fn failure_reason(report: &serde_json::Value) -> String {
    let n = |k: &str| {
        report
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let mut parts = Vec::new();
    for (key, what) in [
        ("publish_errors", "publish requests failed"),
        ("errors", "publish requests failed"),
        (
            "failed_events",
            "events were in failed publishes (not delivered)",
        ),
        ("lost", "deliveries were lost"),
        (
            "subscribers_cut_off",
            "subscribers were disconnected before the end",
        ),
        ("failed", "connections failed"),
    ] {
        if n(key) > 0 {
            parts.push(format!("{} {what}", n(key)));
        }
    }
    format!("the run FAILED: {}", parts.join(", "))
}

fn summary(report: &serde_json::Value) {
    let get = |k: &str| report.get(k).cloned().unwrap_or(serde_json::Value::Null);
    println!("scenario: {}", get("scenario"));
    for (k, v) in report.as_object().unwrap() {
        if k != "scenario" {
            println!("  {k}: {v}");
        }
    }
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let report = match args.scenario {
        Scenario::Handler {
            code,
            events,
            loads,
            calls,
        } => handler_scenario(code, events, loads, calls)?,
        Scenario::Function {
            code,
            kb,
            loads,
            calls,
            concurrency,
            duration,
        } => {
            function_scenario(
                code,
                kb,
                loads,
                calls,
                concurrency,
                std::time::Duration::from_secs(duration),
            )
            .await?
        }
        Scenario::Esm {
            source,
            url,
            records,
            batch,
            payload,
            rate,
            duration,
        } => {
            esm_scenario(
                source,
                url,
                records,
                batch,
                payload,
                rate,
                std::time::Duration::from_secs(duration),
            )
            .await?
        }
        Scenario::Workflows {
            duration,
            concurrency,
        } => {
            workflows::workflows_scenario(std::time::Duration::from_secs(duration), concurrency)
                .await?
        }
        Scenario::Bus {
            rules,
            rate,
            duration,
            clients,
            batch,
            log,
            store_url,
        } => {
            bus_scenario(
                rules,
                rate,
                std::time::Duration::from_secs(duration),
                clients,
                batch,
                &log,
                &store_url,
            )
            .await?
        }
        Scenario::Fanout {
            common,
            subscribers,
            publishers,
            rate,
            payload,
            batch,
            ws_publishers,
            window,
        } => {
            let ch = format!("/{}/fanout", common.namespace);
            delivery_scenario(
                "fanout",
                &common,
                subscribers,
                Plan {
                    publishers,
                    ws: ws_publishers,
                    window: window.max(1),
                    channels: Arc::new(vec![ch]),
                    rate,
                    batch: batch.clamp(1, 5),
                    payload,
                },
            )
            .await?
        }
        Scenario::Channels {
            common,
            channels,
            per_channel,
            rate,
            publishers,
            payload,
            batch,
            ws_publishers,
            window,
        } => {
            let chs = (0..channels)
                .map(|i| format!("/{}/ch{i}", common.namespace))
                .collect();
            delivery_scenario(
                "channels",
                &common,
                per_channel,
                Plan {
                    publishers,
                    ws: ws_publishers,
                    window: window.max(1),
                    channels: Arc::new(chs),
                    rate,
                    batch: batch.clamp(1, 5),
                    payload,
                },
            )
            .await?
        }
        Scenario::Connect {
            common,
            connections,
            in_flight,
            hold,
        } => connect_scenario(&common, connections, in_flight, hold).await?,
        Scenario::Recovery {
            common,
            events,
            rounds,
            publishers,
        } => recovery::recovery_scenario(&common, events, rounds, publishers).await?,
        Scenario::Direct {
            publishers,
            batch,
            payload,
            duration,
            tls,
        } => direct::direct_scenario(publishers, batch.clamp(1, 5), payload, duration, tls).await?,
        Scenario::Soak {
            duration,
            sample,
            subscribers,
            rate,
            churn,
        } => {
            soak::soak_scenario(
                std::time::Duration::from_secs(duration),
                std::time::Duration::from_secs(sample.max(1)),
                subscribers,
                rate,
                churn,
            )
            .await?
        }
        Scenario::HttpPublish {
            common,
            publishers,
            batch,
            payload,
        } => http_publish_scenario(&common, publishers, batch.clamp(1, 5), payload).await?,
    };
    summary(&report);
    println!("{report}");
    // A run that lost or failed anything says so in its exit code.
    match report.get("ok") {
        Some(serde_json::Value::Bool(false)) => Err(failure_reason(&report)),
        _ => Ok(()),
    }
}
