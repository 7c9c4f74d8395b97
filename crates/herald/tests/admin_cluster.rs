//! The control plane on a cluster: three nodes sharing one PostgreSQL
//! database (a fresh one per test, on the server at 127.0.0.1:5432). A change
//! made through one node's admin API reaches the others through PostgreSQL's
//! notifications within a second; a change that sends none (written with
//! triggers off) is caught by the periodic full re-read; a restart of every
//! node keeps every resource.

mod common;

use common::aws::*;
use common::pg::Database;
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const API: &str = "chatapi0000000000000000000";
const KEYS: &str = "/v1/apis/chatapi0000000000000000000/apikeys";

/// A node of the cluster on `db`, re-reading everything every `reconcile_secs`.
async fn node(db: &Database, reconcile_secs: u64) -> TestServer {
    let toml = format!(
        "name = \"chat\"\napi_id = \"{API}\"\naws_region = \"eu-west-1\"\n\
         [[iam_credentials]]\naccess_key_id = \"{ADMIN_KEY}\"\nsecret_access_key = \"{ADMIN_SECRET}\"\n\
         principal = \"ops\"\nallow = [{{ actions = [\"admin\"] }}]\n\
         [[api_keys]]\nid = \"{KEY}\"\n[[channel_namespaces]]\nname = \"default\"\n\
         [[event_sources]]\narn = \"arn:aws:redis:eu-west-1:000000000000:stream/*\"\nurl = \"redis://127.0.0.1:6379\"\n\
         [store]\nbackend = \"postgres\"\nurl = \"{}\"\nreconcile_secs = {reconcile_secs}\n",
        db.url
    );
    let mut config = herald::config::ApiConfig::resolve(
        herald::config::ConfigFile::parse(&toml).unwrap(),
        herald::config::Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    config.drain = Duration::ZERO;
    TestServer::with_config(config).await
}

fn admin(node: &TestServer) -> SocketAddr {
    node.running.as_ref().unwrap().admin_addr.unwrap()
}

/// How long until `check` holds, polling every 10 ms; fails past `bound`.
async fn within<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn publish_to(addr: SocketAddr, channel: &str, key: &str) -> u16 {
    http_post(
        addr,
        json!({"channel": channel, "events": ["1"]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", key)],
    )
    .await
    .status
}

const BOUND: Duration = Duration::from_secs(1);

/// Keys, namespaces and APIs created or deleted on one node reach the others
/// within a second (notifications only: the full re-read is an hour away),
/// and a restart of every node keeps them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_postgres_store() {
    let db = Database::create("cluster").await;
    let mut nodes = [
        node(&db, 3600).await,
        node(&db, 3600).await,
        node(&db, 3600).await,
    ];
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // A key created on A works on C.
    let r = post(admin(a), KEYS, &json!({"description": "shared"})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let key = r.body["apiKey"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        publish_to(a.addr, "/default/x", &key).await,
        200,
        "at once on A"
    );
    let took = within(BOUND, "key created on A works on C", || async {
        publish_to(c.addr, "/default/x", &key).await == 200
    })
    .await;
    eprintln!("key created on A works on C after {took:?}");
    within(BOUND, "B lists the key created on A", || async {
        get(admin(b), KEYS).await.raw.contains(&key)
    })
    .await;

    // A WebSocket on C made with the key; the key deleted on B: A refuses it,
    // and C closes the connection.
    let mut ws = WsClient::connect(c.addr, Auth::Subprotocol(&key)).await;
    ws.init().await;
    let r = delete(admin(b), &format!("{KEYS}/{key}")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    within(BOUND, "key deleted on B is refused on A", || async {
        publish_to(a.addr, "/default/x", &key).await == 401
    })
    .await;
    let (close, _) = ws.recv_until_close().await;
    let close = close.expect("a close frame");
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1008, "API key deleted")
    );

    // A namespace created on C serves on A; deleted on A, C refuses it.
    let namespaces = format!("/v2/apis/{API}/channelNamespaces");
    let r = post(admin(c), &namespaces, &json!({"name": "rooms"})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    within(BOUND, "namespace created on C serves on A", || async {
        publish_to(a.addr, "/rooms/1", KEY).await == 200
    })
    .await;
    // An API created on B serves on C at its path, with its own key.
    let r = post(
        admin(b),
        "/v2/apis",
        &json!({"name": "second", "eventConfig": {"authProviders": [{"authType": "API_KEY"}]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let second = r.body["api"]["apiId"].as_str().unwrap().to_string();
    let second_key = namespace_and_key(admin(b), &second, "n").await;
    let publish_second = |addr: SocketAddr| {
        let (second, key) = (second.clone(), second_key.clone());
        async move {
            http_request(
                addr,
                "POST",
                &format!("/apis/{second}/event"),
                json!({"channel": "/n/1", "events": ["1"]})
                    .to_string()
                    .into_bytes(),
                &[("x-api-key", &key), ("content-type", "application/json")],
            )
            .await
            .status
        }
    };
    within(BOUND, "API created on B serves on C", || async {
        publish_second(c.addr).await == 200
    })
    .await;
    assert_eq!(
        publish_to(c.addr, "/default/x", &second_key).await,
        401,
        "the second API's key is not the first API's"
    );
    // Updated on C, A serves the new settings.
    let r = post(
        admin(c),
        &format!("/v2/apis/{second}"),
        &json!({"name": "renamed"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    within(BOUND, "API updated on C is renamed on A", || async {
        get(admin(a), &format!("/v2/apis/{second}")).await.body["api"]["name"] == "renamed"
    })
    .await;

    // A function created on B can be invoked on C, and is gone from C
    // once deleted on A.
    let lambda = |method: &'static str, path: &'static str, body: &'static str| Call {
        service: "lambda",
        method,
        headers: &[("content-type", "application/json")],
        body: body.as_bytes(),
        ..Call::get(path)
    };
    let r = call(
        admin(b),
        lambda(
            "POST",
            "/2015-03-31/functions",
            r#"{"FunctionName": "shared", "Runtime": "python3.13", "Role": "r", "Handler": "app.handler", "Code": {}, "Environment": {"Variables": {"HERALD_FUNCTION_URL": "http://127.0.0.1:9/"}}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    for node in [a, c] {
        within(BOUND, "function created on B exists on A and C", || async {
            call(
                admin(node),
                lambda("GET", "/2015-03-31/functions/shared", ""),
            )
            .await
            .status
                == 200
        })
        .await;
    }
    let dry_run = Call {
        headers: &[("x-amz-invocation-type", "DryRun")],
        ..lambda("POST", "/2015-03-31/functions/shared/invocations", "{}")
    };
    assert_eq!(call(admin(c), dry_run).await.status, 204);

    // An event source mapping created on B runs on A and C; disabled on C,
    // deleted on A, everywhere.
    let stream = format!("cluster-esm-{}", uuid::Uuid::new_v4().simple());
    let r = call(
        admin(b),
        lambda(
            "POST",
            "/2015-03-31/event-source-mappings/",
            // The helper takes 'static text; a test may leak two strings.
            Box::leak(format!(r#"{{"FunctionName": "shared", "StartingPosition": "LATEST", "EventSourceArn": "arn:aws:redis:eu-west-1:000000000000:stream/{stream}"}}"#).into_boxed_str()),
        ),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.raw);
    let uuid = r.body["UUID"].as_str().unwrap().to_string();
    let path: &'static str =
        Box::leak(format!("/2015-03-31/event-source-mappings/{uuid}").into_boxed_str());
    for node in [a, c] {
        within(BOUND, "mapping created on B exists on A and C", || async {
            call(admin(node), lambda("GET", path, "")).await.status == 200
        })
        .await;
    }
    let r = call(admin(c), lambda("PUT", path, r#"{"Enabled": false}"#)).await;
    assert_eq!(r.body["State"], "Disabling", "{}", r.raw);
    within(BOUND, "mapping disabled on C is disabled on A", || async {
        call(admin(a), lambda("GET", path, "")).await.body["State"] == "Disabled"
    })
    .await;
    assert_eq!(call(admin(a), lambda("DELETE", path, "")).await.status, 202);
    for node in [b, c] {
        within(
            BOUND,
            "mapping deleted on A is gone from B and C",
            || async { call(admin(node), lambda("GET", path, "")).await.status == 404 },
        )
        .await;
    }
    let r = call(
        admin(a),
        lambda("DELETE", "/2015-03-31/functions/shared", ""),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.raw);
    within(BOUND, "function deleted on A is gone from C", || async {
        call(admin(c), lambda("GET", "/2015-03-31/functions/shared", ""))
            .await
            .status
            == 404
    })
    .await;

    // Every node restarts; everything is still there, on every node.
    for n in nodes.iter_mut() {
        n.shutdown().await;
    }
    let nodes = [
        node(&db, 3600).await,
        node(&db, 3600).await,
        node(&db, 3600).await,
    ];
    for n in &nodes {
        assert_eq!(publish_to(n.addr, "/rooms/1", KEY).await, 200);
        assert_eq!(publish_second(n.addr).await, 200);
        assert_eq!(
            publish_to(n.addr, "/default/x", &key).await,
            401,
            "deleted stays deleted"
        );
    }
    // Deleting the API on one node ends it on the others.
    let r = delete(admin(&nodes[2]), &format!("/v2/apis/{second}")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    within(BOUND, "API deleted on C is gone on A", || async {
        publish_second(nodes[0].addr).await == 404
    })
    .await;
    for mut n in nodes {
        n.shutdown().await;
    }
    db.drop_it().await;
}

/// A change that sends no notification (written with the triggers off, as a
/// lost notification would look) still reaches a node at its next full
/// re-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_notification_is_caught_by_the_full_reread() {
    let db = Database::create("reconcile").await;
    let mut a = node(&db, 1).await;
    let sql = db.client().await;
    // The node is listening, and has applied what it read when it started
    // to: a notified change (a key created the usual way) has arrived.
    let r = post(admin(&a), KEYS, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    sql.batch_execute(&format!(
        "INSERT INTO api_keys (api_id, id, description, expires, deletes, created)
         VALUES ('{API}', 'da2-notifiednotifiednotified0', NULL, 4000000000, 4005184000, 0)"
    ))
    .await
    .unwrap();
    within(BOUND, "a notified key works", || async {
        publish_to(a.addr, "/default/x", "da2-notifiednotifiednotified0").await == 200
    })
    .await;
    sql.batch_execute(&format!(
        "SET session_replication_role = replica;
         INSERT INTO api_keys (api_id, id, description, expires, deletes, created)
         VALUES ('{API}', 'da2-quietquietquietquietquiet', NULL, 4000000000, 4005184000, 0);"
    ))
    .await
    .unwrap();
    // Within two periods of the re-read (one second each).
    within(
        Duration::from_secs(3),
        "a key written without notice works",
        || async { publish_to(a.addr, "/default/x", "da2-quietquietquietquietquiet").await == 200 },
    )
    .await;
    a.shutdown().await;
    drop(sql);
    db.drop_it().await;
}
