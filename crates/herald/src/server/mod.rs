//! The network front: one listener (optionally TLS) serving `POST /event` and the
//! WebSocket endpoint `/event/realtime`, with graceful shutdown.
//!
//! Shutdown follows mini-redis: a `watch` channel tells every connection task to
//! stop, and each task holds a clone of an `mpsc::Sender` that it drops when it is
//! done, so the server knows when all have finished (or the grace period ends).
//! Before that, a drain period (`[server] drain_ms`) lets load balancers notice:
//! `/ready` answers 503 `shutting_down` while the listener still accepts and
//! serves as usual.

mod console;
mod http;
pub mod tls;
mod ws;
mod ws_socket;

use crate::api::{EventApi, Registry};
use crate::config::{ApiConfig, TlsSetting};
use crate::hub::Hub;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// What every connection task gets.
#[derive(Clone)]
pub struct ConnContext {
    /// The API this connection's requests go to (the default one, unless a
    /// request names another by path).
    pub api: Arc<EventApi>,
    /// Every API this server runs.
    pub apis: Arc<Registry>,
    pub peer: SocketAddr,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// `true` from the shutdown signal on, through the drain period.
    pub draining: Arc<AtomicBool>,
    /// Dropped when the task ends; shutdown waits for all of them.
    pub _done: mpsc::Sender<()>,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    admin: Option<crate::admin::AdminServer>,
    apis: Arc<Registry>,
    mappings: Arc<crate::esm::Mappings>,
    buses: Arc<crate::bus::EventBuses>,
    workflows: Arc<crate::workflow::Workflows>,
    /// Kept for the bus's deliveries (channel, queue targets).
    event_sources: Vec<crate::esm::config::EventSourceFile>,
    tls: Option<TlsAcceptor>,
    api: Arc<EventApi>,
    /// The certificate clients should trust, in self-signed mode.
    pub self_signed_cert: Option<PathBuf>,
}

/// A server running in the background (used by tests and embedders).
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The admin listener's address, when it is on.
    pub admin_addr: Option<SocketAddr>,
    pub api: Arc<EventApi>,
    pub buses: Arc<crate::bus::EventBuses>,
    pub workflows: Arc<crate::workflow::Workflows>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Shut down gracefully and wait until it has.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Server {
    /// Bind the listener and prepare TLS; errors are ready for the user.
    pub async fn bind(config: ApiConfig) -> Result<Server, String> {
        let (tls, self_signed_cert) = match &config.tls {
            TlsSetting::None => (None, None),
            TlsSetting::Files { cert, key } => (Some(tls::from_files(cert, key)?), None),
            TlsSetting::SelfSigned(dir) => {
                let (cfg, path) = tls::self_signed(dir)?;
                (Some(cfg), Some(path))
            }
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        // One process-wide crypto provider for every rustls user (listener,
        // outbound HTTP, NATS and Redis TLS).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let public = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listener's address: {e}"))?;
        let admin_listen = config.admin_listen;
        let store = crate::store::Store::open(&config.store).await?;
        let functions = Arc::new(crate::functions::Functions::new(
            config.function_pool,
            crate::http_client::HttpClient::new(config.function_ca_file.as_deref())?,
            &config.aws_region,
            &config.account_id,
            Arc::new(crate::faults::Faults::new(config.fault_injection)),
        )?);
        for decl in config.functions.clone() {
            let f = functions.clone();
            let declared = tokio::task::spawn_blocking(move || f.declared(&decl))
                .await
                .map_err(|e| format!("loading a function failed: {e}"))??;
            functions.install(declared).await;
        }
        let hub = Hub::from_config(&config).await?;
        let file_mappings = config.event_source_mappings.clone();
        let event_sources = config.event_sources.clone();
        let log = crate::bus::open_log(&config).await?;
        let buses = Arc::new(crate::bus::EventBuses::new(
            &config.aws_region,
            &config.account_id,
            store.clone(),
            log,
        ));
        buses.declare(config.declared_buses.clone());
        let workflows_slot = crate::workflow::WorkflowsSlot::default();
        let mut api = EventApi::new(
            config,
            hub,
            store.clone(),
            functions.clone(),
            workflows_slot.clone(),
        )?;
        functions.metrics.register(api.metrics.registry_mut());
        functions.faults().register(api.metrics.registry_mut());
        let esm_metrics = crate::esm::metrics::EsmMetrics::default();
        esm_metrics.register(api.metrics.registry_mut());
        let api = Arc::new(api);
        let apis = Arc::new(Registry::new(api.clone()));
        // What the admin API created earlier. Stored code that no longer
        // loads stops the start: nothing is dropped silently.
        let everything = crate::store::ChangeSet {
            all: true,
            ..Default::default()
        };
        let mut problems = apis.reconcile(&store, &everything).await?;
        problems.extend(functions.reconcile(&store).await?);
        // Event source mappings start once what they invoke is in place.
        let mappings_sources = event_sources.clone();
        let mappings = Arc::new(crate::esm::Mappings::new(
            functions.clone(),
            apis.clone(),
            event_sources,
            esm_metrics,
            store.clone(),
        ));
        for m in file_mappings {
            if let Err(crate::esm::CheckError::Invalid(e) | crate::esm::CheckError::NotFound(e)) =
                mappings.check_runnable(&m)
            {
                problems.push(format!("[[event_source_mappings]] {}: {e}", m.uuid));
            }
            mappings.apply(m);
        }
        problems.extend(mappings.reconcile(&store).await?);
        problems.extend(buses.reload().await?);
        let workflows = Arc::new(crate::workflow::Workflows::new(
            &api.config.aws_region,
            &api.config.account_id,
            &api.config.node_id,
            store.clone(),
        ));
        problems.extend(workflows.reload().await?);
        mappings.set_workflows(&workflows);
        let _ = workflows_slot.set(Arc::downgrade(&workflows));
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        // Experiment templates from the file; those marked `start` act from
        // now on.
        for d in api.config.fault_templates.clone() {
            let faults = functions.faults();
            faults
                .experiments
                .create_template(d.template)
                .map_err(|e| e.message)?;
            if d.start {
                let host = crate::admin::fault_host(apis.clone());
                let (region, account) = (&api.config.aws_region, &api.config.account_id);
                crate::faults::experiments::start(faults, host, &d.id, None, region, account)
                    .await
                    .map_err(|e| format!("experiment template {}: {}", d.id, e.message))?;
            }
        }
        let admin = match admin_listen {
            Some(addr) => Some(
                crate::admin::AdminServer::bind(
                    addr,
                    apis.clone(),
                    mappings.clone(),
                    buses.clone(),
                    workflows.clone(),
                    public,
                )
                .await?,
            ),
            None => None,
        };
        Ok(Server {
            listener,
            admin,
            apis,
            mappings,
            buses,
            workflows,
            event_sources: mappings_sources,
            tls: tls.map(TlsAcceptor::from),
            api,
            self_signed_cert,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The admin listener's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr())
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn api(&self) -> Arc<EventApi> {
        self.api.clone()
    }

    /// The event buses this server holds.
    pub fn buses(&self) -> Arc<crate::bus::EventBuses> {
        self.buses.clone()
    }

    /// The event source mappings this server runs.
    pub fn mappings(&self) -> Arc<crate::esm::Mappings> {
        self.mappings.clone()
    }

    /// Run in the background until [`RunningServer::shutdown`].
    pub fn spawn(self) -> RunningServer {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = self.local_addr();
        let admin_addr = self.admin_addr();
        let api = self.api.clone();
        let buses = self.buses.clone();
        let workflows = self.workflows.clone();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        RunningServer {
            addr,
            admin_addr,
            api,
            buses,
            workflows,
            stop: Some(stop),
            task,
        }
    }

    /// Serve until `stop` completes, then shut down gracefully (see
    /// [`Server::run_with_drain`]; nothing cuts the drain short).
    pub async fn run(self, stop: impl Future<Output = ()>) {
        self.run_with_drain(stop, std::future::pending()).await
    }

    /// Serve until `stop` completes, then shut down gracefully: drain (`/ready`
    /// answers 503 while everything else is served as usual) for the configured
    /// period or until `hurry` completes, stop accepting, let in-flight HTTP
    /// requests and WebSocket messages finish, close every WebSocket with 1001
    /// (going away), and wait for the connection tasks up to the grace period.
    pub async fn run_with_drain(
        mut self,
        stop: impl Future<Output = ()>,
        hurry: impl Future<Output = ()>,
    ) {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        if let Some(admin) = self.admin.take() {
            tokio::spawn(admin.run(shutdown_rx.clone()));
        }
        // On a shared store, other nodes' changes.
        tokio::spawn(crate::api::follow(
            self.apis.clone(),
            vec![
                self.mappings.clone() as Arc<dyn crate::store::Reconciler>,
                self.buses.clone() as Arc<dyn crate::store::Reconciler>,
                self.workflows.clone() as Arc<dyn crate::store::Reconciler>,
            ],
            self.api.store.clone(),
            self.api.config.store.reconcile,
            shutdown_rx.clone(),
        ));
        let parts = crate::bus::target::Parts::new(
            self.apis.clone(),
            self.api.functions.clone(),
            std::mem::take(&mut self.event_sources),
        );
        let _ = parts.workflows.set(Arc::downgrade(&self.workflows));
        self.buses
            .start(parts, self.api.config.node_id.clone(), shutdown_rx.clone());
        if let Some(parts) = self.buses.parts() {
            self.workflows
                .set_tasks(Arc::new(crate::workflow::tasks::HeraldTasks {
                    parts: parts.clone(),
                    buses: self.buses.clone(),
                }));
        }
        // Standard executions that were running: a single node's store
        // holds only its own; on a shared store each node resumes those it
        // ran (with a stable `node_id`).
        let single = !matches!(
            self.api.config.store.backend,
            crate::config::StoreBackend::Postgres { .. }
        );
        match self.workflows.resume(single).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(executions = n, "resumed standard workflow executions"),
            Err(e) => tracing::error!(error = %e, "reading the stored workflow executions failed"),
        }
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let draining = Arc::new(AtomicBool::new(false));
        let grace = self.api.config.shutdown_grace;
        let drain = self.api.config.drain;
        let accept = |accepted: std::io::Result<(TcpStream, SocketAddr)>| {
            let ctx = ConnContext {
                api: self.api.clone(),
                apis: self.apis.clone(),
                peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                shutdown: shutdown_rx.clone(),
                draining: draining.clone(),
                _done: done_tx.clone(),
            };
            let tls = self.tls.clone();
            async move {
                match accepted {
                    Ok((tcp, peer)) => {
                        tokio::spawn(serve_connection(tcp, tls, ConnContext { peer, ..ctx }));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        tokio::pin!(stop, hurry);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => accept(accepted).await,
                _ = &mut stop => break,
            }
        }
        draining.store(true, Ordering::SeqCst);
        if !drain.is_zero() {
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "shutting down: draining (/ready answers 503, still serving)"
            );
            let until = tokio::time::sleep(drain);
            tokio::pin!(until);
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => accept(accepted).await,
                    _ = &mut until => break,
                    _ = &mut hurry => break,
                }
            }
        }
        drop(self.listener);
        self.mappings.stop_all();
        tracing::info!("shutting down: closing connections");
        let _ = shutdown_tx.send(true);
        drop(done_tx);
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            tracing::warn!(
                ?grace,
                "shutdown grace period over; dropping the remaining connections"
            );
        }
    }
}

async fn serve_connection(tcp: TcpStream, tls: Option<TlsAcceptor>, ctx: ConnContext) {
    let _ = tcp.set_nodelay(true);
    match tls {
        None => serve_http(TokioIo::new(tcp), ctx).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_http(TokioIo::new(stream), ctx).await,
                Ok(Err(e)) => tracing::debug!(peer = %ctx.peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %ctx.peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<I>(io: TokioIo<I>, ctx: ConnContext)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = ctx.shutdown.clone();
    let svc_ctx = ctx.clone();
    let header_read_timeout = ctx.api.config.header_read_timeout;
    let svc = service_fn(move |req| http::handle(req, svc_ctx.clone()));
    // The timer runs from the connection's start: one that sends nothing is
    // closed after it, so silent connections cannot pile up.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(peer = %ctx.peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = shutdown_requested(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once the server is shutting down.
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
