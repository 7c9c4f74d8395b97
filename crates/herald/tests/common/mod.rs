//! Test helpers: an in-process server on a free port, a raw WebSocket client
//! (tokio-tungstenite) and a raw HTTP/1.1 client (hyper). Every wait is bounded
//! and awaits an event; nothing sleeps to synchronize.

#![allow(dead_code)]

pub mod aws;
pub mod esm;
pub mod pg;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald::config::ApiConfig;
use herald::server::{RunningServer, Server};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "da2-testkey0000000000000000000";
/// Longest any single expected frame may take to arrive before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub running: Option<RunningServer>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_config(ApiConfig::for_tests(KEY)).await
    }

    pub async fn with_config(config: ApiConfig) -> TestServer {
        let server = Server::bind(config).await.expect("server binds");
        let running = server.spawn();
        TestServer {
            addr: running.addr,
            running: Some(running),
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub async fn shutdown(&mut self) {
        self.running.take().unwrap().shutdown().await;
    }

    pub async fn ws(&self) -> WsClient {
        WsClient::connect(self.addr, Auth::Subprotocol(KEY)).await
    }

    pub async fn post(&self, body: Value) -> HttpResponse {
        http_post(
            self.addr,
            body.to_string().into_bytes(),
            &[("x-api-key", KEY)],
        )
        .await
    }
}

/// How a WebSocket client presents its credentials.
pub enum Auth<'a> {
    /// `header-<base64url JSON>` subprotocol, as Amplify does.
    Subprotocol(&'a str),
    /// Plain upgrade headers and only the protocol name, as the Swift SDK does.
    UpgradeHeaders(&'a str),
    None,
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct WsClient {
    pub ws: Ws,
    pub protocol: Option<String>,
}

pub fn auth_header_subprotocol(host: &str, key: &str) -> String {
    let json = json!({"host": host, "x-api-key": key}).to_string();
    format!(
        "header-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    )
}

impl WsClient {
    pub async fn connect(addr: SocketAddr, auth: Auth<'_>) -> WsClient {
        let mut req = format!("ws://{addr}/event/realtime")
            .into_client_request()
            .unwrap();
        let protocols = match auth {
            Auth::Subprotocol(key) => format!(
                "aws-appsync-event-ws, {}",
                auth_header_subprotocol(&addr.to_string(), key)
            ),
            Auth::UpgradeHeaders(key) => {
                req.headers_mut().insert("x-api-key", key.parse().unwrap());
                "aws-appsync-event-ws".to_string()
            }
            Auth::None => "aws-appsync-event-ws".to_string(),
        };
        req.headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        Self::open(req).await
    }

    async fn open(req: tokio_tungstenite::tungstenite::handshake::client::Request) -> WsClient {
        let (ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("WebSocket connects");
        let protocol = resp
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string());
        WsClient { ws, protocol }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// The next text frame as JSON, skipping `ka`.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the socket is open")
                .expect("the frame is readable");
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("frames are JSON");
                    if v["type"] != "ka" {
                        return v;
                    }
                }
                Message::Close(c) => panic!("unexpected close: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next frame including `ka`s, or the close frame.
    pub async fn recv_any(&mut self) -> Result<Value, Option<CloseFrame>> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame arrives in time");
            match msg {
                None => return Err(None),
                Some(Err(_)) => return Err(None),
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(c))) => return Err(c),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Read frames until the server closes; returns the close frame and the
    /// non-`ka` text frames that came before it.
    pub async fn recv_until_close(&mut self) -> (Option<CloseFrame>, Vec<Value>) {
        let mut frames = Vec::new();
        loop {
            match self.recv_any().await {
                Ok(v) if v["type"] == "ka" => {}
                Ok(v) => frames.push(v),
                Err(c) => return (c, frames),
            }
        }
    }

    pub async fn init(&mut self) -> Value {
        self.send(json!({"type": "connection_init"})).await;
        let ack = self.recv().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        ack
    }

    /// Subscribe and wait for `subscribe_success`.
    pub async fn subscribe(&mut self, id: &str, channel: &str) {
        self.send(json!({"type": "subscribe", "id": id, "channel": channel,
                         "authorization": {"x-api-key": KEY}}))
            .await;
        let r = self.recv().await;
        assert_eq!(r["type"], "subscribe_success", "{r}");
        assert_eq!(r["id"], id);
    }

    /// Expect a `data` frame for `sub` and return its parsed event.
    pub async fn data(&mut self, sub: &str) -> Value {
        let r = self.recv().await;
        assert_eq!(r["type"], "data", "{r}");
        assert_eq!(r["id"], sub, "{r}");
        let text = r["event"].as_str().expect("event is a JSON string");
        serde_json::from_str(text).expect("event string holds JSON")
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
    pub raw: String,
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let raw = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    HttpResponse {
        status,
        headers,
        body,
        raw,
    }
}

/// Publish `events` (each as its JSON text) to `channel` over HTTP.
pub async fn publish(server: &TestServer, channel: &str, events: &[Value]) -> HttpResponse {
    let events: Vec<String> = events.iter().map(Value::to_string).collect();
    server
        .post(json!({"channel": channel, "events": events}))
        .await
}

pub async fn http_post(addr: SocketAddr, body: Vec<u8>, headers: &[(&str, &str)]) -> HttpResponse {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    http_request(addr, "POST", "/event", body, &h).await
}

/// Assert an HTTP error response: status, `x-amzn-ErrorType`, `errors` body.
pub fn assert_http_error(r: &HttpResponse, status: u16, error_type: &str, message_part: &str) {
    assert_eq!(r.status, status, "{}", r.raw);
    assert_eq!(r.headers["x-amzn-errortype"], error_type, "{}", r.raw);
    assert_eq!(r.body["errors"][0]["errorType"], error_type, "{}", r.raw);
    let msg = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(message_part),
        "{msg:?} should contain {message_part:?}"
    );
}

/// Assert a WebSocket error frame.
pub fn assert_ws_error(
    v: &Value,
    ty: &str,
    id: Option<&str>,
    error_type: &str,
    message_part: &str,
) {
    assert_eq!(v["type"], ty, "{v}");
    match id {
        Some(id) => assert_eq!(v["id"], id, "{v}"),
        None => assert!(v.get("id").is_none(), "{v}"),
    }
    assert_eq!(v["errors"][0]["errorType"], error_type, "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(message_part),
        "{msg:?} should contain {message_part:?}"
    );
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "herald-test-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A request seen by a [`TinyServer`].
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// What a [`TinyServer`] handler answers: status, body, and a delay first.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn json(v: Value) -> Answer {
        Answer {
            status: 200,
            body: v.to_string(),
            delay: Duration::ZERO,
        }
    }
}

/// A small real HTTP server for the services Herald calls out to (an OIDC
/// issuer, a Lambda-style authorizer). Records every request.
pub struct TinyServer {
    pub addr: SocketAddr,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TinyServer {
    pub async fn start<F>(handler: F) -> TinyServer
    where
        F: Fn(&SeenRequest) -> Answer + Send + Sync + 'static,
    {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let handler = std::sync::Arc::new(handler);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let seen = seen.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                            let r = SeenRequest { method, path, body };
                            let answer = handler(&r);
                            seen.lock().unwrap().push(r);
                            if !answer.delay.is_zero() {
                                tokio::time::sleep(answer.delay).await;
                            }
                            let mut resp =
                                hyper::Response::new(Full::new(Bytes::from(answer.body)));
                            *resp.status_mut() =
                                hyper::StatusCode::from_u16(answer.status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        TinyServer { addr, seen, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// Start a server from a TOML configuration (listening on a free port).
pub async fn start_with_toml(toml: &str) -> TestServer {
    let file = herald::config::ConfigFile::parse(toml).expect("test config parses");
    let config = herald::config::ApiConfig::resolve(
        file,
        herald::config::Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .expect("test config is valid");
    start_config(config).await
}

/// Start a server from a configuration, its store in memory (tests must not
/// share a data directory).
pub async fn start_config(mut config: herald::config::ApiConfig) -> TestServer {
    config.store = herald::config::StoreConfig::memory();
    TestServer::with_config(config).await
}

impl WsClient {
    /// Connect with an API key to the WebSocket endpoint at `path`.
    pub async fn connect_path(addr: SocketAddr, path: &str, key: &str) -> WsClient {
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            format!(
                "aws-appsync-event-ws, {}",
                auth_header_subprotocol(&addr.to_string(), key)
            )
            .parse()
            .unwrap(),
        );
        Self::open(req).await
    }

    /// Connect with an arbitrary auth object in the `header-` subprotocol.
    pub async fn connect_with_auth(addr: SocketAddr, auth: &Value) -> WsClient {
        Self::connect_with_auth_at(addr, "/event/realtime", auth).await
    }

    /// The same, at the WebSocket endpoint `path`.
    pub async fn connect_with_auth_at(addr: SocketAddr, path: &str, auth: &Value) -> WsClient {
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(auth.to_string());
        req.headers_mut().insert(
            "sec-websocket-protocol",
            format!("aws-appsync-event-ws, header-{header}")
                .parse()
                .unwrap(),
        );
        Self::open(req).await
    }
}

/// A TCP proxy that holds every byte going *to* `upstream` for `delay` (order
/// kept) and passes the answers straight back: a slow link between a node and
/// its broker, which makes "written to the socket" and "processed by the
/// server" far apart in time.
pub struct DelayProxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DelayProxy {
    pub async fn start(upstream: SocketAddr, delay: Duration) -> DelayProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                // Bounded by the test's traffic: a few protocol messages.
                let (held_tx, mut held_rx) =
                    tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
                conns.spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    while let Ok(n) = client_rx.read(&mut buf).await {
                        if n == 0
                            || held_tx
                                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                                .is_err()
                        {
                            break;
                        }
                    }
                });
                conns.spawn(async move {
                    while let Some((due, bytes)) = held_rx.recv().await {
                        tokio::time::sleep_until(due).await;
                        if server_tx.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                });
                conns.spawn(async move {
                    let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                });
            }
        });
        DelayProxy { addr, task }
    }
}

/// A `herald serve` process, killed when dropped (a failing test leaves
/// none behind).
pub struct Process(pub std::process::Child);

impl Process {
    /// `kill -9`, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `herald serve --listen 127.0.0.1:0 --config <config> <args>`, once its
/// banner says `Ready`; with the admin address the banner names, if any.
pub fn serve_process(
    config: &std::path::Path,
    args: &[&std::ffi::OsStr],
) -> (Process, Option<SocketAddr>) {
    let (process, _, admin) = serve_process_at(config, args);
    (process, admin)
}

/// As [`serve_process`], with the public listener's address too.
pub fn serve_process_at(
    config: &std::path::Path,
    args: &[&std::ffi::OsStr],
) -> (Process, SocketAddr, Option<SocketAddr>) {
    serve_process_under(&[], config, args)
}

/// As [`serve_process_at`], started through `launcher` (a command and its
/// arguments that end by running the rest: `prlimit ... --`, say).
pub fn serve_process_under(
    launcher: &[&str],
    config: &std::path::Path,
    args: &[&std::ffi::OsStr],
) -> (Process, SocketAddr, Option<SocketAddr>) {
    use std::io::BufRead;
    let bin = env!("CARGO_BIN_EXE_herald");
    let mut command = match launcher.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .args(args)
        .env("HERALD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut admin, mut public) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("Herald listening on ") {
            public = Some(a.trim().parse().unwrap());
        }
        if let Some(a) = line.trim().strip_prefix("admin:") {
            let url = a.split_whitespace().next().unwrap();
            admin = Some(url.trim_start_matches("http://").parse().unwrap());
        }
        if line.starts_with("Ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (
        Process(child),
        public.expect("the banner names the listener"),
        admin,
    )
}
