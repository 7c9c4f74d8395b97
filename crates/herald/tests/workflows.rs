//! Durable standard executions: Herald killed with `kill -9` while an
//! execution waits between two tasks resumes it after the restart; the
//! execution completes, the task that had answered is not run again, and
//! the `Wait` waits only what was left.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

fn config() -> String {
    format!(
        r#"
        account_id = "123456789012"
        aws_region = "eu-west-1"
        [[iam_credentials]]
        access_key_id = "{ADMIN_KEY}"
        secret_access_key = "{ADMIN_SECRET}"
        principal = "arn:aws:iam::123456789012:user/ops"
        allow = [{{ actions = ["admin"] }}]
        [[api_keys]]
        id = "{KEY}"
        [[channel_namespaces]]
        name = "default"
        [admin]
        listen = "127.0.0.1:0"
        "#
    )
}

/// An HTTP receiver counting calls by path.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    s.lock().unwrap().push(req.uri().path().to_string());
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            bytes::Bytes::from_static(b"{\"ok\": true}"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn until(admin: SocketAddr, op: &str, body: Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = states(admin, op, body.clone()).await;
        if r.status == 200 && done(&r.body) {
            return r.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{op}: {}", r.raw);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_standard_execution_resumes_after_kill_9() {
    let (recv, seen) = receiver().await;
    let dir = temp_dir("workflow-kill9");
    let path = dir.join("herald.toml");
    std::fs::write(&path, config()).unwrap();
    let data = [std::ffi::OsStr::new("--data"), dir.as_os_str()];
    let (mut first, admin) = serve_process(&path, &data);
    let admin = admin.unwrap();
    let call = |p: &str| {
        json!({"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
               "Parameters": {"ApiEndpoint": format!("http://{recv}{p}"), "Method": "POST",
                              "RequestBody": {"step": p}}})
    };
    let mut first_task = call("/first");
    first_task["Next"] = json!("Pause");
    first_task["ResultPath"] = json!("$.first");
    let mut second_task = call("/second");
    second_task["End"] = json!(true);
    second_task["ResultSelector"] = json!({"ok.$": "$.ResponseBody.ok"});
    let definition = json!({"StartAt": "First", "States": {
        "First": first_task,
        "Pause": {"Type": "Wait", "Seconds": 2, "Next": "Second"},
        "Second": second_task}});
    let m = states_ok(
        admin,
        "CreateStateMachine",
        json!({"name": "durable", "definition": definition.to_string(),
               "roleArn": "arn:aws:iam::123456789012:role/r"}),
    )
    .await;
    let e = states_ok(
        admin,
        "StartExecution",
        json!({"stateMachineArn": m["stateMachineArn"], "name": "run-1", "input": "{\"order\": 7}"}),
    )
    .await;
    let arn = e["executionArn"].clone();
    // Journaled at the Wait (its entry is recorded after the journal).
    until(
        admin,
        "GetExecutionHistory",
        json!({"executionArn": arn}),
        |h| {
            h["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["type"] == "WaitStateEntered"))
        },
    )
    .await;
    first.kill();
    assert_eq!(*seen.lock().unwrap(), vec!["/first".to_string()]);

    let (_second, admin) = serve_process(&path, &data);
    let admin = admin.unwrap();
    let d = until(
        admin,
        "DescribeExecution",
        json!({"executionArn": arn}),
        |d| d["status"] != "RUNNING",
    )
    .await;
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    let output: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"ok": true}));
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["/first".to_string(), "/second".to_string()],
        "the first task ran once, the second once"
    );
    // The history goes on from before the restart.
    let h = states_ok(admin, "GetExecutionHistory", json!({"executionArn": arn})).await;
    let types: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"ExecutionStarted"));
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
    assert_eq!(types.iter().filter(|t| **t == "TaskSucceeded").count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two nodes on one PostgreSQL store: a machine made on one runs on the
/// other, and a standard execution started on one is described, with its
/// history, by the other (its journal is in the shared store).
#[tokio::test]
async fn nodes_sharing_a_store_share_machines_and_executions() {
    let db = common::pg::Database::create("workflows").await;
    let toml = format!(
        "{}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\n",
        config(),
        db.url
    );
    let node = || async {
        let mut c = herald::config::ApiConfig::resolve(
            herald::config::ConfigFile::parse(&toml).unwrap(),
            herald::config::Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        c.drain = std::time::Duration::ZERO;
        let s = TestServer::with_config(c).await;
        let admin = s.running.as_ref().unwrap().admin_addr.unwrap();
        (s, admin)
    };
    let (a, admin_a) = node().await;
    let (b, admin_b) = node().await;
    let definition = json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Output": "{% $states.input.n + 1 %}", "End": true}}});
    let m = states_ok(
        admin_a,
        "CreateStateMachine",
        json!({"name": "shared", "definition": definition.to_string(),
               "roleArn": "arn:aws:iam::123456789012:role/r"}),
    )
    .await;
    // The other node follows the store's notification.
    until(
        admin_b,
        "DescribeStateMachine",
        json!({"stateMachineArn": m["stateMachineArn"]}),
        |d| d["name"] == "shared",
    )
    .await;
    let e = states_ok(
        admin_b,
        "StartExecution",
        json!({"stateMachineArn": m["stateMachineArn"], "input": "{\"n\": 41}"}),
    )
    .await;
    let d = until(
        admin_a,
        "DescribeExecution",
        json!({"executionArn": e["executionArn"]}),
        |d| d["status"] == "SUCCEEDED",
    )
    .await;
    assert_eq!(d["output"], "42");
    let h = states_ok(
        admin_a,
        "GetExecutionHistory",
        json!({"executionArn": e["executionArn"]}),
    )
    .await;
    assert_eq!(h["events"][0]["type"], "ExecutionStarted");
    // And lists it among the machine's executions.
    let l = states_ok(
        admin_a,
        "ListExecutions",
        json!({"stateMachineArn": m["stateMachineArn"]}),
    )
    .await;
    assert_eq!(l["executions"][0]["executionArn"], e["executionArn"], "{l}");
    // Deleting the machine deletes its finished executions from the store.
    states_ok(
        admin_a,
        "DeleteStateMachine",
        json!({"stateMachineArn": m["stateMachineArn"]}),
    )
    .await;
    let r = states(
        admin_a,
        "DescribeExecution",
        json!({"executionArn": e["executionArn"]}),
    )
    .await;
    assert_eq!(r.body["__type"], "ExecutionDoesNotExist", "{}", r.raw);
    drop((a, b));
    db.drop_it().await;
}

/// An event source mapping whose `function_name` is a state machine's ARN
/// starts an execution per batch, with Lambda's event (`Records`) as input.
#[tokio::test]
async fn an_event_source_mapping_starts_executions() {
    let key = common::esm::unique("sfn-esm");
    let machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:from-stream";
    let toml = format!(
        r#"{}
        [[event_sources]]
        arn = "arn:aws:redis:eu-west-1:123456789012:stream/*"
        url = "redis://127.0.0.1:6379"
        ack_wait_secs = 2
        [[event_source_mappings]]
        event_source_arn = "arn:aws:redis:eu-west-1:123456789012:stream/{key}"
        function_name = "{machine}"
        starting_position = "TRIM_HORIZON"
        batch_size = 10
        "#,
        config()
    );
    let server = start_with_toml(&toml).await;
    let admin = server.running.as_ref().unwrap().admin_addr.unwrap();
    let definition = json!({"QueryLanguage": "JSONata", "StartAt": "Count", "States": {
        "Count": {"Type": "Pass", "Output": "{% $count($states.input.Records) %}", "End": true}}});
    states_ok(
        admin,
        "CreateStateMachine",
        json!({"name": "from-stream", "definition": definition.to_string(),
               "roleArn": "arn:aws:iam::123456789012:role/r"}),
    )
    .await;
    let mut r = common::esm::redis().await;
    for i in 0..3 {
        common::esm::xadd(&mut r, &key, "*", &[("n", i.to_string())]).await;
    }
    // Every record reaches an execution (in one batch or several).
    let mut counted = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while counted < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the records did not all reach an execution"
        );
        let l = states_ok(admin, "ListExecutions", json!({"stateMachineArn": machine})).await;
        counted = 0;
        for e in l["executions"].as_array().unwrap() {
            let d = states_ok(
                admin,
                "DescribeExecution",
                json!({"executionArn": e["executionArn"]}),
            )
            .await;
            if d["status"] == "SUCCEEDED" {
                counted += d["output"].as_str().unwrap().parse::<u64>().unwrap();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(counted, 3);
}
