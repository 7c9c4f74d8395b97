//! `herald serve`.

use super::{LogFormat, ServeArgs};
use crate::config::{ApiConfig, ConfigFile, Overrides};
use crate::server::Server;
use tracing_subscriber::EnvFilter;

/// The tracing filter for an AppSync log level. `ALL` traces Herald itself but
/// keeps libraries at `info`.
fn appsync_level_filter(level: &str) -> &'static str {
    match level {
        "NONE" => "off",
        "ERROR" => "error",
        "INFO" => "info",
        "DEBUG" => "herald=debug,info",
        _ => "herald=trace,info",
    }
}

/// Logs go to stderr. `HERALD_LOG` (or `RUST_LOG`) takes an env-filter directive
/// and wins over the config file's `event_config.log_config.log_level`.
pub fn init_logging(format: LogFormat, appsync_level: Option<&str>) {
    let default = appsync_level.map(appsync_level_filter).unwrap_or("info");
    let filter = EnvFilter::try_from_env("HERALD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal, never into a file or a pipe.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // try_init: a second call (tests running serve twice in-process) is harmless.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// SIGINT and SIGTERM, registered when this is made: it is made before the
/// banner says "Ready", so a signal sent right after that is never met by
/// the default action (which would kill the process without its shutdown).
struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> Result<ShutdownSignals, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen =
                |kind, name| signal(kind).map_err(|e| format!("cannot listen for {name}: {e}"));
            Ok(ShutdownSignals {
                term: listen(SignalKind::terminate(), "SIGTERM")?,
                int: listen(SignalKind::interrupt(), "SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// The next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn serve(args: ServeArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let overrides = Overrides {
        listen: args.listen,
        admin_listen: args.admin_listen,
        data_dir: args.data_dir,
        store_url: args.store_url,
        // The development mode prints admin credentials the AWS CLI can use.
        generate_admin_credentials: args.config.is_none(),
        api_keys: args.api_keys,
        namespaces: args.namespaces,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_self_signed: args.tls_self_signed,
        // The console is on in the no-config development mode, off with a file.
        console: if args.no_console {
            Some(false)
        } else if args.console || args.config.is_none() {
            Some(true)
        } else {
            None
        },
    };
    let config = ApiConfig::resolve(file, overrides.clone())?;
    init_logging(args.log_format, config.log_level.as_deref());
    let generated_key = config
        .generated_api_key
        .then(|| config.api_keys[0].id.clone());
    let namespaces: Vec<String> = config.namespaces.iter().map(|n| n.name.clone()).collect();
    let generated_admin = config.generated_admin.clone();
    let region = config.aws_region.clone();
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let (http, ws) = if server.is_tls() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    // The banner goes to stdout so scripts can read it; logs go to stderr.
    println!("Herald listening on {addr}");
    println!("  publish:   {http}://{addr}/event");
    println!("  subscribe: {ws}://{addr}/event/realtime");
    println!("  namespaces: {}", namespaces.join(", "));
    if let Some(cert) = &server.self_signed_cert {
        println!("  TLS certificate to trust: {}", cert.display());
    }
    if server.api().config.console {
        println!("  console:   {http}://{addr}/console");
    }
    if let Some(key) = generated_key {
        println!("  API key (generated): {key}");
    }
    if let Some(admin) = server.admin_addr() {
        println!(
            "  admin:     http://{admin} (AWS APIs, SigV4; aws ... --endpoint-url http://{admin})"
        );
    }
    if let Some((id, secret)) = &generated_admin {
        println!("  admin credentials (generated), for the AWS CLI and SDKs:");
        println!("    export AWS_ACCESS_KEY_ID={id}");
        println!("    export AWS_SECRET_ACCESS_KEY={secret}");
        println!("    export AWS_REGION={region}");
        // Version 1 of the AWS CLI reads only this one.
        println!("    export AWS_DEFAULT_REGION={region}");
    }
    // Every signal is listened for before "Ready" is printed.
    let mut shutdown = ShutdownSignals::register()?;
    #[cfg(unix)]
    if let Some(path) = args.config.clone() {
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
        tokio::spawn(reload_on_sighup(hup, path, overrides, server.api()));
    }
    println!("Ready (Ctrl-C stops)");
    tracing::info!(%addr, tls = server.is_tls(), "listening");
    // The first signal starts the shutdown (with its drain period); a second
    // one cuts the drain short.
    let signals = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let counted = signals.clone();
    tokio::spawn(async move {
        loop {
            shutdown.recv().await;
            counted.add_permits(1);
        }
    });
    let next_signal = || {
        let signals = signals.clone();
        async move {
            if let Ok(p) = signals.acquire().await {
                p.forget();
            }
        }
    };
    server.run_with_drain(next_signal(), next_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP re-reads the config file and hot-reloads namespaces' handler code
/// (other settings need a restart). Code that does not load is refused and the
/// namespace keeps its previous code; connections are not touched.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    path: std::path::PathBuf,
    overrides: Overrides,
    api: std::sync::Arc<crate::api::EventApi>,
) {
    {
        while hup.recv().await.is_some() {
            let config =
                ConfigFile::load(&path).and_then(|f| ApiConfig::resolve(f, overrides.clone()));
            match config {
                Err(e) => {
                    tracing::error!(error = %e, "reload refused: the configuration is invalid; nothing changed")
                }
                Ok(config) => {
                    // Loading code runs JavaScript: keep it off the async workers.
                    let api = api.clone();
                    let Ok(refused) =
                        tokio::task::spawn_blocking(move || api.reload_handlers(&config)).await
                    else {
                        continue;
                    };
                    for e in &refused {
                        tracing::error!(error = %e, "reload refused for a namespace; it keeps its previous handler code");
                    }
                    tracing::info!(refused = refused.len(), "handler code reloaded");
                }
            }
        }
    }
}
