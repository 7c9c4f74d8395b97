//! The admin listener's request parsing, end to end: a Herald server runs in
//! this process (memory store, admin listener on loopback), and each input
//! becomes one signed request (an `X-Amz-Target` operation or a REST path,
//! and a body) sent to it over HTTP. Whatever the body, the answer is an
//! AWS-shaped response: a panic in a handler shows as a connection that
//! closed without one, and an internal error as a 500, and both fail here.
#![no_main]

use herald::auth::sigv4::{sign, uri_encode};
use libfuzzer_sys::{arbitrary, fuzz_target};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, arbitrary::Arbitrary)]
enum Route<'a> {
    /// A JSON 1.x operation: a known target, or any.
    Target { known: u8, other: &'a str },
    /// A REST path: a known prefix and any segments after it.
    Rest {
        method: u8,
        prefix: u8,
        segments: Vec<&'a str>,
        query: &'a str,
    },
}

#[derive(Debug, arbitrary::Arbitrary)]
struct Input<'a> {
    route: Route<'a>,
    body: &'a [u8],
}

const KEY: &str = "AKIDFUZZADMIN";
const SECRET: &str = "fuzz-admin-secret";

const TARGETS: &[&str] = &[
    "AWSEvents.PutRule",
    "AWSEvents.PutTargets",
    "AWSEvents.PutEvents",
    "AWSEvents.CreateEventBus",
    "AWSEvents.TestEventPattern",
    "AWSEvents.DescribeRule",
    "AWSEvents.ListRules",
    "AWSEvents.CreateConnection",
    "AWSEvents.CreateApiDestination",
    "AWSEvents.CreateArchive",
    "AWSEvents.StartReplay",
    "AWSEvents.DeleteRule",
    "AWSEvents.RemoveTargets",
    "AWSEvents.TagResource",
    "AWSStepFunctions.CreateStateMachine",
    "AWSStepFunctions.ValidateStateMachineDefinition",
    "AWSStepFunctions.TestState",
    "AWSStepFunctions.StartExecution",
    "AWSStepFunctions.StartSyncExecution",
    "AWSStepFunctions.DescribeExecution",
    "AWSStepFunctions.ListExecutions",
    "AWSStepFunctions.SendTaskSuccess",
    "AWSStepFunctions.GetExecutionHistory",
    "AWSStepFunctions.UpdateStateMachine",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];
const PREFIXES: &[&[&str]] = &[
    &["v1", "apis"],
    &["v2", "apis"],
    &["v1", "tags"],
    &["2015-03-31", "functions"],
    &["2015-03-31", "event-source-mappings"],
    &["2014-11-13", "functions"],
    &["2019-09-25", "functions"],
    &[],
];

struct Admin {
    runtime: tokio::runtime::Runtime,
    http: herald::http_client::HttpClient,
    base: String,
    authority: String,
}

fn admin() -> &'static Admin {
    static ADMIN: OnceLock<Admin> = OnceLock::new();
    ADMIN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let text = format!(
            "[[iam_credentials]]\naccess_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\nprincipal = \"arn:aws:iam::123456789012:user/fuzz\"\nallow = [{{ actions = [\"admin\"] }}]\n[[api_keys]]\nid = \"da2-fuzz\"\n[[channel_namespaces]]\nname = \"default\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        );
        let addr = runtime.block_on(async {
            let file = herald::config::ConfigFile::parse(&text).expect("the configuration");
            let mut config = herald::config::ApiConfig::resolve(
                file,
                herald::config::Overrides {
                    listen: Some("127.0.0.1:0".parse().expect("an address")),
                    ..Default::default()
                },
            )
            .expect("the configuration resolves");
            config.store = herald::config::StoreConfig::memory();
            let server = herald::server::Server::bind(config).await.expect("the server binds");
            let admin = server.admin_addr().expect("an admin listener");
            std::mem::forget(server.spawn());
            admin
        });
        Admin {
            runtime,
            http: herald::http_client::HttpClient::new(None).expect("a client"),
            base: format!("http://{addr}"),
            authority: addr.to_string(),
        }
    })
}

fuzz_target!(|input: Input<'_>| {
    let a = admin();
    let (method, path, query, target) = match &input.route {
        Route::Target { known, other } => {
            let t = if (*known as usize) < TARGETS.len() * 2 {
                TARGETS[*known as usize % TARGETS.len()].to_string()
            } else {
                other.to_string()
            };
            if t.bytes().any(|b| !(b' '..=b'~').contains(&b)) {
                return;
            }
            ("POST", "/".to_string(), String::new(), Some(t))
        }
        Route::Rest {
            method,
            prefix,
            segments,
            query,
        } => {
            let mut parts: Vec<String> = PREFIXES[*prefix as usize % PREFIXES.len()]
                .iter()
                .map(|s| s.to_string())
                .collect();
            parts.extend(segments.iter().take(6).map(|s| uri_encode(s)));
            let q: String = query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            (
                METHODS[*method as usize % METHODS.len()],
                format!("/{}", parts.join("/")),
                q,
                None,
            )
        }
    };
    // SDKs sign each path segment encoded once more.
    let canonical_path: String = path
        .split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/");
    let content_type = if target.is_some() {
        "application/x-amz-json-1.1"
    } else {
        "application/json"
    };
    let mut to_sign: Vec<(&str, &str)> =
        vec![("host", &a.authority), ("content-type", content_type)];
    if let Some(t) = &target {
        to_sign.push(("x-amz-target", t));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    // The query is left out of what is signed: such requests are refused
    // (403) before any route, which is an answer too.
    let added = sign(
        KEY,
        SECRET,
        "us-east-1",
        "appsync",
        method,
        &canonical_path,
        &to_sign,
        input.body,
        now,
    );
    let mut headers: Vec<(&str, &str)> =
        to_sign.into_iter().filter(|(k, _)| *k != "host").collect();
    headers.extend(added.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let url = if query.is_empty() {
        format!("{}{path}", a.base)
    } else {
        format!("{}{path}?{query}", a.base)
    };
    let answer = a.runtime.block_on(a.http.request(
        method.parse().expect("a method"),
        &url,
        &headers,
        input.body.to_vec().into(),
        Duration::from_secs(30),
    ));
    match answer {
        Ok(r) => assert!(
            r.status.as_u16() != 500,
            "500 for {method} {path} {target:?}: {}",
            String::from_utf8_lossy(&r.body)
        ),
        Err(e) => panic!("no answer to {method} {path} {target:?}: {e}"),
    }
});
