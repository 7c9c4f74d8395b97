//! Event source mapping test helpers: an HTTP function the test serves and
//! answers, the server configuration naming the brokers, and the mapping's
//! metrics read from `/metrics`.

use super::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub const REGION_ACCOUNT: &str = "us-east-1:000000000000";

pub type Policy = Arc<dyn Fn(&Value, usize) -> (u16, String) + Send + Sync>;

/// A function over HTTP: every event it receives goes to `calls`; `policy`
/// (the event and the call's number) chooses the answer.
pub struct FnServer {
    pub addr: SocketAddr,
    pub calls: mpsc::Receiver<Value>,
}

pub async fn fn_server(policy: Policy) -> FnServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, calls) = mpsc::channel(10_000);
    let count = Arc::new(Mutex::new(0usize));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (tx, policy, count) = (tx.clone(), policy.clone(), count.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (tx, policy, count) = (tx.clone(), policy.clone(), count.clone());
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let event: Value = serde_json::from_slice(&body).unwrap();
                        let n = {
                            let mut c = count.lock().unwrap();
                            *c += 1;
                            *c
                        };
                        let (status, answer) = policy(&event, n);
                        let _ = tx.send(event).await;
                        if status == 0 {
                            // Never answer (a function that hangs).
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(bytes::Bytes::from(answer)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    FnServer { addr, calls }
}

impl FnServer {
    /// The next batch Herald sent (bounded wait).
    /// The next event Herald sent, whole (bounded wait).
    pub async fn event(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("the function was invoked in time")
            .unwrap()
    }

    pub async fn batch(&mut self) -> Vec<Value> {
        let event = tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("the function was invoked in time")
            .unwrap();
        event["Records"].as_array().unwrap().clone()
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// The server's configuration: an HTTP function `sink`, the brokers, one
/// namespace `esm`, and `mapping` (TOML of one `[[event_source_mappings]]`).
pub fn config(function: SocketAddr, mapping: &str) -> String {
    let sqs = sqs_addr();
    format!(
        r#"
[[api_keys]]
id = "{KEY}"
[[channel_namespaces]]
name = "esm"
[[functions]]
name = "sink"
runtime = "provided.al2023"
url = "http://{function}/"
timeout_secs = 10
[[event_sources]]
arn = "arn:aws:redis:{REGION_ACCOUNT}:stream/*"
url = "redis://127.0.0.1:6379"
ack_wait_secs = 2
[[event_sources]]
arn = "arn:aws:sqs:{REGION_ACCOUNT}:*"
url = "http://{sqs}"
access_key_id = "testing"
secret_access_key = "testing"
[[event_sources]]
arn = "arn:aws:kinesis:{REGION_ACCOUNT}:stream/*"
url = "http://{sqs}"
access_key_id = "testing"
secret_access_key = "testing"
ack_wait_secs = 2
[[event_sources]]
arn = "arn:aws:s3:::*"
url = "http://{sqs}"
access_key_id = "testing"
secret_access_key = "testing"
[[event_sources]]
arn = "arn:aws:mq:{REGION_ACCOUNT}:broker:*"
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
max_deliveries = 3
[[event_sources]]
arn = "arn:aws:nats:{REGION_ACCOUNT}:stream/*"
url = "nats://127.0.0.1:4222"
ack_wait_secs = 2
[[event_source_mappings]]
{mapping}
"#
    )
}

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis runs on 127.0.0.1:6379 (scripts/setup starts it)")
}

pub async fn xadd(
    r: &mut redis::aio::MultiplexedConnection,
    key: &str,
    id: &str,
    fields: &[(&str, String)],
) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg(id);
    for (k, v) in fields {
        cmd.arg(*k).arg(v);
    }
    let _: String = cmd.query_async(r).await.unwrap();
}

/// The mapping's metric `name`, from `/metrics`.
pub async fn metric(server: &TestServer, name: &str, uuid: &str) -> u64 {
    let text = http_request(server.addr, "GET", "/metrics", vec![], &[])
        .await
        .raw;
    let prefix = format!("herald_{name}{{mapping=\"{uuid}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// Wait (bounded) until the mapping's metrics equal `want`.
pub async fn metrics_reach(server: &TestServer, uuid: &str, want: &[(&str, u64)]) {
    let mut last = HashMap::new();
    for _ in 0..500 {
        let mut all = true;
        for (name, v) in want {
            let got = metric(server, name, uuid).await;
            last.insert(*name, got);
            all &= got == *v;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("metrics never reached {want:?}; last {last:?}");
}

pub fn ok() -> (u16, String) {
    (200, "{}".into())
}

/// The SQS stand-in (`moto_server`, started by `scripts/setup`).
pub fn sqs_addr() -> SocketAddr {
    std::env::var("HERALD_TEST_SQS")
        .unwrap_or_else(|_| "127.0.0.1:5000".into())
        .parse()
        .expect("HERALD_TEST_SQS is host:port")
}

/// One SQS call (JSON protocol); panics on an error answer.
pub async fn sqs(op: &str, body: Value) -> Value {
    let target = format!("AmazonSQS.{op}");
    let r = http_request(
        sqs_addr(),
        "POST",
        "/",
        body.to_string().into_bytes(),
        &[
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", &target),
            ("authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "SQS {op}: {}", r.raw);
    r.body
}

/// A new queue (1 s visibility timeout) and its URL.
pub async fn queue(name: &str, attributes: Value) -> String {
    let mut a = serde_json::json!({"VisibilityTimeout": "1"});
    a.as_object_mut()
        .unwrap()
        .extend(attributes.as_object().unwrap().clone());
    sqs(
        "CreateQueue",
        serde_json::json!({"QueueName": name, "Attributes": a}),
    )
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One Kinesis call (JSON 1.1, on the same moto_server); panics on an error.
pub async fn kinesis(op: &str, body: Value) -> Value {
    let target = format!("Kinesis_20131202.{op}");
    let r = http_request(
        sqs_addr(),
        "POST",
        "/",
        body.to_string().into_bytes(),
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &target),
            ("authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "Kinesis {op}: {}", r.raw);
    r.body
}

/// A `herald serve` process (killed when dropped).
pub struct Node {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn node(config_text: &str, node_id: &str) -> Node {
    node_in(&temp_dir("esm-node"), config_text, node_id)
}

/// [`node`] with its data directory (its SQLite store) in `dir`: nodes
/// started in turn on one directory share the store.
pub fn node_in(dir: &std::path::Path, config_text: &str, node_id: &str) -> Node {
    use std::io::BufRead;
    let path = dir.join("herald.toml");
    std::fs::write(&path, format!("node_id = \"{node_id}\"\n{config_text}")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ])
        .args(["--data", dir.to_str().unwrap()])
        .env("HERALD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("Herald listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .parse()
        .unwrap();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Node { child, addr }
}

impl Node {
    /// A handle on the node's public listener for [`metrics_reach`].
    pub fn server(&self) -> TestServer {
        TestServer {
            addr: self.addr,
            running: None,
        }
    }
}

/// An SQS record's body, decoded.
pub fn sqs_body(record: &Value) -> Value {
    serde_json::from_str(record["body"].as_str().unwrap()).unwrap()
}

/// The TOML of an SQS mapping to `sink`, metrics on.
pub fn sqs_mapping(uuid: &str, queue: &str, extra: &str) -> String {
    format!(
        r#"uuid = "{uuid}"
event_source_arn = "arn:aws:sqs:{REGION_ACCOUNT}:{queue}"
function_name = "sink"
metrics_config = {{ metrics = ["EventCount"] }}
{extra}"#
    )
}
