//! The `herald` command line: `serve`, `publish`, `subscribe`.

mod client;
mod pattern;
mod serve;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Self-hosted AWS AppSync Events compatible real-time event server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Event API (HTTP publish at /event, WebSocket at /event/realtime).
    Serve(ServeArgs),
    /// Publish events over HTTP and print the result.
    Publish(PublishArgs),
    /// Subscribe over WebSocket and print one JSON event per line.
    Subscribe(SubscribeArgs),
    /// Load-test an AppSync Events endpoint (fanout, channels, connect, http-publish).
    Bench(crate::bench::BenchArgs),
    /// Event patterns (EventBridge's content filtering).
    #[command(subcommand)]
    Pattern(PatternCommand),
}

#[derive(Debug, Subcommand)]
pub enum PatternCommand {
    /// Test a pattern against an event: prints `match` (exit 0), `no match`
    /// (exit 1), or why the pattern or event is invalid (exit 2).
    Test {
        /// The pattern: JSON text, or @FILE.
        pattern: String,
        /// The event: JSON text, or @FILE.
        event: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys mirror AppSync's EventConfig/ChannelNamespace).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT with an IP address or a host name
    /// [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", value_parser = crate::config::resolve_listen)]
    pub listen: Option<SocketAddr>,
    /// Address of the admin listener (AWS's management APIs), HOST:PORT
    /// [default: the public address with the next port, 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR", value_parser = crate::config::resolve_listen)]
    pub admin_listen: Option<SocketAddr>,
    /// Data directory of the control plane's store [default: ./herald-data].
    #[arg(long = "data", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the control plane in PostgreSQL instead (a cluster's nodes share
    /// one database): postgres://user:password@host:5432/db.
    #[arg(
        long,
        value_name = "URL",
        env = "HERALD_STORE_URL",
        conflicts_with = "data_dir"
    )]
    pub store_url: Option<String>,
    /// An API key to accept (repeatable); one is generated and printed if none is configured.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// A channel namespace to serve (repeatable) [default: default].
    #[arg(long = "namespace", value_name = "NAME")]
    pub namespaces: Vec<String>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate for localhost/127.0.0.1, kept in
    /// DIR/cert.pem (trust that file in clients) and DIR/key.pem.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Serve the web console at /console (default: on without --config, off with it).
    #[arg(long, overrides_with = "no_console")]
    pub console: bool,
    /// Do not serve the web console.
    #[arg(long)]
    pub no_console: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The HTTP endpoint of the Event API (`/event` may be omitted).
    #[arg(
        long,
        env = "HERALD_ENDPOINT",
        default_value = "http://127.0.0.1:8080/event"
    )]
    pub endpoint: String,
    /// API key.
    #[arg(long, env = "HERALD_API_KEY", value_name = "KEY")]
    pub api_key: String,
    /// Extra CA certificate (PEM) to trust, e.g. the server's --tls-self-signed cert.pem.
    #[arg(long, env = "HERALD_CA_CERT", value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Channel, e.g. /default/chat.
    pub channel: String,
    /// Events: each argument is sent as JSON if it parses as JSON, else as a JSON
    /// string. `-` reads events from standard input, one per line.
    #[arg(num_args = 0.., required_unless_present = "file")]
    pub events: Vec<String>,
    /// Read events from this file, one per line (blank lines skipped). More than
    /// five events are published in requests of five, in order.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Channel or wildcard, e.g. /default/chat or /default/*.
    pub channel: String,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime")
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Pattern(PatternCommand::Test { pattern, event }) => {
            return pattern::test(&pattern, &event)
        }
        Command::Serve(args) => runtime().block_on(serve::serve(args)),
        Command::Publish(args) => runtime().block_on(client::publish(args)),
        Command::Subscribe(args) => runtime().block_on(client::subscribe(args)),
        Command::Bench(args) => runtime().block_on(crate::bench::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}
