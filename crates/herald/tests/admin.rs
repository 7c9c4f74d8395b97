//! The admin listener: AWS's management APIs, signed with SigV4 (AWS's own
//! signer, `aws-sigv4`), with AWS's shapes and exceptions; the AppSync reads
//! over the configured API, then a client publishing and subscribing on the
//! endpoints `GetApi` returned with a key `ListApiKeys` returned.

mod common;

use common::aws::*;
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

async fn server() -> (TestServer, SocketAddr) {
    let server = start_with_toml(&format!(
        r#"
        name = "chat"
        api_id = "chatapi0000000000000000000"
        account_id = "123456789012"
        aws_region = "eu-west-1"
        [[iam_credentials]]
        access_key_id = "{ADMIN_KEY}"
        secret_access_key = "{ADMIN_SECRET}"
        principal = "arn:aws:iam::123456789012:user/ops"
        allow = [{{ actions = ["admin"] }}]
        [[iam_credentials]]
        access_key_id = "{USER_KEY}"
        secret_access_key = "{USER_SECRET}"
        principal = "arn:aws:iam::123456789012:user/app"
        allow = [{{ actions = ["*"] }}]
        [[api_keys]]
        id = "{KEY}"
        description = "web"
        [[channel_namespaces]]
        name = "default"
        [[channel_namespaces]]
        name = "chat"
        subscribe_auth_modes = [{{ auth_type = "API_KEY" }}]
        "#
    ))
    .await;
    let admin = server
        .running
        .as_ref()
        .unwrap()
        .admin_addr
        .expect("the admin listener is on by default");
    (server, admin)
}

#[tokio::test]
async fn appsync_reads_with_aws_shapes() {
    let (server, admin) = server().await;
    let r = get(admin, "/v2/apis").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let api = &r.body["apis"][0];
    assert_eq!(r.body["apis"].as_array().unwrap().len(), 1);
    assert_eq!(api["apiId"], "chatapi0000000000000000000");
    assert_eq!(api["name"], "chat");
    assert_eq!(
        api["apiArn"],
        "arn:aws:appsync:eu-west-1:123456789012:apis/chatapi0000000000000000000"
    );
    assert_eq!(
        api["eventConfig"]["authProviders"],
        json!([{"authType": "API_KEY"}])
    );
    assert_eq!(
        api["eventConfig"]["connectionAuthModes"],
        json!([{"authType": "API_KEY"}])
    );
    assert!(api["created"].as_f64().unwrap() > 1.7e9);
    assert!(r.body.get("nextToken").is_none());

    let r = get(admin, "/v2/apis/chatapi0000000000000000000").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let dns = r.body["api"]["dns"].clone();
    assert_eq!(dns["HTTP"], server.addr.to_string());
    assert_eq!(dns["REALTIME"], server.addr.to_string());

    let r = get(admin, "/v2/apis/nosuchapi").await;
    assert_eq!(r.status, 404);
    assert_eq!(error_type(&r), "NotFoundException");
    assert!(r.body["message"].as_str().unwrap().contains("nosuchapi"));

    // Namespaces, with pagination.
    let r = get(
        admin,
        "/v2/apis/chatapi0000000000000000000/channelNamespaces?maxResults=1",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["channelNamespaces"][0]["name"], "default");
    let token = r.body["nextToken"].as_str().unwrap().to_string();
    let r = get(
        admin,
        &format!(
            "/v2/apis/chatapi0000000000000000000/channelNamespaces?maxResults=1&nextToken={token}"
        ),
    )
    .await;
    assert_eq!(r.body["channelNamespaces"][0]["name"], "chat");
    assert!(r.body.get("nextToken").is_none());
    let r = get(
        admin,
        "/v2/apis/chatapi0000000000000000000/channelNamespaces?maxResults=99",
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException")
    );
    let r = get(
        admin,
        "/v2/apis/chatapi0000000000000000000/channelNamespaces/chat",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let ns = &r.body["channelNamespace"];
    assert_eq!(ns["subscribeAuthModes"], json!([{"authType": "API_KEY"}]));
    assert_eq!(
        ns["channelNamespaceArn"],
        "arn:aws:appsync:eu-west-1:123456789012:apis/chatapi0000000000000000000/channelNamespace/chat"
    );
    let r = get(
        admin,
        "/v2/apis/chatapi0000000000000000000/channelNamespaces/nope",
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException")
    );

    // Keys, and tags by ARN (signed with the path encoded twice, as SDKs do).
    let r = get(admin, "/v1/apis/chatapi0000000000000000000/apikeys").await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let key = r.body["apiKeys"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["apiKeys"][0]["description"], "web");
    let r = get(
        admin,
        "/v1/tags/arn%3Aaws%3Aappsync%3Aeu-west-1%3A123456789012%3Aapis%2Fchatapi0000000000000000000",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["tags"], json!({}));

    // The endpoint and key the control plane gave work for a real client.
    let http: SocketAddr = dns["HTTP"].as_str().unwrap().parse().unwrap();
    let mut sub = WsClient::connect(http, Auth::Subprotocol(&key)).await;
    sub.init().await;
    sub.subscribe("s", "/chat/room").await;
    let r = http_post(
        http,
        json!({"channel": "/chat/room", "events": ["{\"via\":\"getApi\"}"]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", &key)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(sub.data("s").await["via"], "getApi");

    // The same API by path: /apis/<apiId>/event and /event/realtime.
    let base = "/apis/chatapi0000000000000000000";
    let mut by_path = WsClient::connect_path(http, &format!("{base}/event/realtime"), &key).await;
    by_path.init().await;
    by_path.subscribe("p", "/chat/room").await;
    let r = http_request(
        http,
        "POST",
        &format!("{base}/event"),
        json!({"channel": "/chat/room", "events": ["{\"via\":\"path\"}"]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", &key), ("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(by_path.data("p").await["via"], "path");
    assert_eq!(sub.data("s").await["via"], "path");
    let r = http_request(http, "POST", "/apis/otherapi/event", b"{}".to_vec(), &[]).await;
    assert_eq!(r.status, 404, "{}", r.raw);
}

/// A second API on the same server: its own keys and namespaces (the same
/// names as the first's), its own endpoints by path; nothing crosses. Deleting
/// it closes its connections; the file's API is changed in the file.
#[tokio::test]
async fn several_apis_on_one_server_share_nothing() {
    let (server, admin) = server().await;
    let event_config = json!({"authProviders": [{"authType": "API_KEY"}],
        "connectionAuthModes": [{"authType": "API_KEY"}], "defaultPublishAuthModes": [{"authType": "API_KEY"}],
        "defaultSubscribeAuthModes": [{"authType": "API_KEY"}]});
    let r = post(
        admin,
        "/v2/apis",
        &json!({"name": "second api", "ownerContact": "ops", "eventConfig": event_config}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let id = r.body["api"]["apiId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 26);
    // Clients append /event to dns.HTTP: a created API is reached by path.
    assert_eq!(
        r.body["api"]["dns"]["HTTP"],
        format!("{}/apis/{id}", server.addr)
    );
    assert_eq!(r.body["api"]["name"], "second api");
    assert_eq!(r.body["api"]["ownerContact"], "ops");
    assert_eq!(
        get(admin, "/v2/apis").await.body["apis"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // It starts empty: a namespace and a key are created next.
    let r = get(admin, &format!("/v2/apis/{id}/channelNamespaces")).await;
    assert_eq!(r.body["channelNamespaces"], json!([]));
    let key2 = namespace_and_key(admin, &id, "default").await;

    let base = format!("/apis/{id}");
    let mut sub2 =
        WsClient::connect_path(server.addr, &format!("{base}/event/realtime"), &key2).await;
    sub2.init().await;
    sub2.send(
        json!({"type": "subscribe", "id": "s", "channel": "/default/room",
                     "authorization": {"x-api-key": key2}}),
    )
    .await;
    assert_eq!(sub2.recv().await["type"], "subscribe_success");
    let mut sub1 = server.ws().await;
    sub1.init().await;
    sub1.subscribe("s", "/default/room").await;
    let publish = |path: String, key: String, v: &'static str| async move {
        http_request(
            server.addr,
            "POST",
            &path,
            json!({"channel": "/default/room", "events": [json!({"v": v}).to_string()]})
                .to_string()
                .into_bytes(),
            &[("x-api-key", &key), ("content-type", "application/json")],
        )
        .await
    };
    assert_eq!(
        publish(format!("{base}/event"), key2.clone(), "two")
            .await
            .status,
        200
    );
    assert_eq!(
        publish("/event".into(), KEY.into(), "one").await.status,
        200
    );
    assert_eq!(sub2.data("s").await["v"], "two");
    assert_eq!(
        sub1.data("s").await["v"],
        "one",
        "nothing crossed from the second API"
    );
    // Keys do not cross either.
    assert_eq!(
        publish(format!("{base}/event"), KEY.into(), "x")
            .await
            .status,
        401
    );
    assert_eq!(
        publish("/event".into(), key2.clone(), "x").await.status,
        401
    );
    // Each API counts its own: the second API's metrics at its path.
    let published = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("herald_publish_requests_total{")
                    && l.contains("transport=\"http\"")
                    && l.contains("result=\"ok\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    let second = http_request(server.addr, "GET", &format!("{base}/metrics"), vec![], &[]).await;
    assert_eq!(second.status, 200, "{}", second.raw);
    let first = http_request(server.addr, "GET", "/metrics", vec![], &[]).await;
    assert_eq!(
        published(&second.raw).as_deref(),
        Some("1"),
        "{}",
        second.raw
    );
    assert_eq!(published(&first.raw).as_deref(), Some("1"), "{}", first.raw);
    let r = http_request(server.addr, "GET", "/apis/nosuchapi/metrics", vec![], &[]).await;
    assert_eq!(r.status, 404);

    // The file's API is changed in the file.
    let file_api = "/v2/apis/chatapi0000000000000000000";
    let r = delete(admin, file_api).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException")
    );
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("configuration file"));
    let r = post(admin, file_api, &json!({"name": "renamed"})).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException")
    );

    let r = delete(admin, &format!("/v2/apis/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let (close, _) = sub2.recv_until_close().await;
    let close = close.expect("a close frame");
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1008, "API deleted")
    );
    assert_eq!(
        publish(format!("{base}/event"), key2, "gone").await.status,
        404
    );
    let r = get(admin, &format!("/v2/apis/{id}")).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException")
    );
    assert_eq!(
        publish("/event".into(), KEY.into(), "still").await.status,
        200
    );
}

#[tokio::test]
async fn create_api_input_is_checked() {
    let (_server, admin) = server().await;
    let ok_config = json!({"authProviders": [{"authType": "API_KEY"}]});
    for (body, part) in [
        (json!({"eventConfig": ok_config}), "name is required"),
        (
            json!({"name": "bad/name", "eventConfig": ok_config}),
            "invalid",
        ),
        (json!({"name": "x"}), "eventConfig is required"),
        (
            json!({"name": "x", "eventConfig": {"authProviders": [{"authType": "NOPE"}]}}),
            "eventConfig",
        ),
        (
            json!({"name": "x", "eventConfig": {"authProviders": [{"authType": "API_KEY"}],
            "connectionAuthModes": [{"authType": "AWS_LAMBDA"}]}}),
            "AWS_LAMBDA",
        ),
        (
            json!({"name": "x", "eventConfig": ok_config, "colour": 1}),
            "colour",
        ),
    ] {
        let r = post(admin, "/v2/apis", &body).await;
        assert_eq!(
            (r.status, error_type(&r).as_str()),
            (400, "BadRequestException"),
            "{body}: {}",
            r.raw
        );
        assert!(
            r.body["message"].as_str().unwrap().contains(part),
            "{body}: {}",
            r.raw
        );
    }
}

#[tokio::test]
async fn unsigned_wrongly_signed_stale_and_unauthorized_requests_get_aws_errors() {
    let (_server, admin) = server().await;
    let r = http_request(admin, "GET", "/v2/apis", vec![], &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(error_type(&r), "MissingAuthenticationTokenException");
    assert_eq!(r.body["message"], "Missing Authentication Token");

    let apis = || Call::get("/v2/apis");
    let wrong = Call {
        creds: (ADMIN_KEY, "wrong-secret"),
        ..apis()
    };
    let r = call(admin, wrong).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (403, "InvalidSignatureException"),
        "{}",
        r.raw
    );

    let stale = Call {
        time: SystemTime::now() - Duration::from_secs(900),
        ..apis()
    };
    let r = call(admin, stale).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (403, "InvalidSignatureException")
    );
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("Signature expired"),
        "{}",
        r.raw
    );

    let nobody = Call {
        creds: ("AKIANOBODYNOBODY0000", "x"),
        ..apis()
    };
    let r = call(admin, nobody).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (403, "UnrecognizedClientException")
    );

    // A valid signature from a principal without the admin grant.
    let user = Call {
        creds: (USER_KEY, USER_SECRET),
        ..apis()
    };
    let r = call(admin, user).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (403, "AccessDeniedException")
    );
    assert!(r.body["message"].as_str().unwrap().contains("user/app"));

    // Signed for a service Herald does not serve.
    let r = call(
        admin,
        Call {
            service: "s3",
            ..apis()
        },
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (403, "InvalidSignatureException")
    );
}

#[tokio::test]
async fn unknown_operations_get_aws_errors_not_hangs() {
    let (_server, admin) = server().await;
    let r = call(admin, Call::get("/v2/nothing/here")).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "UnknownOperationException")
    );
    // A JSON 1.1 request (EventBridge's shape) for an operation not served.
    let target = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "AWSEvents.PutPermission"),
    ];
    let r = call(
        admin,
        Call {
            service: "events",
            method: "POST",
            headers: &target,
            body: b"{}",
            ..Call::get("/")
        },
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(r.body["__type"], "UnknownOperationException");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("AWSEvents.PutPermission"));
}

const KEYS: &str = "/v1/apis/chatapi0000000000000000000/apikeys";

/// A created key works at once; a deleted one is refused from the next
/// request on, and the WebSocket connections made with it are closed.
#[tokio::test]
async fn api_keys_are_created_and_deleted_live() {
    let (server, admin) = server().await;
    let r = post(admin, KEYS, &json!({"description": "mobile"})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let created = r.body["apiKey"].clone();
    let key = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("da2-") && key.len() == 30, "{key}");
    assert_eq!(created["description"], "mobile");
    let expires = created["expires"].as_i64().unwrap();
    assert_eq!(expires % 3600, 0, "rounded down to the hour");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now + 7 * 86400 - expires).abs() <= 3600,
        "7 days by default"
    );
    assert_eq!(created["deletes"].as_i64().unwrap(), expires + 60 * 86400);

    assert_eq!(publish_with(server.addr, &key).await, 200);
    let mut ws = WsClient::connect(server.addr, Auth::Subprotocol(&key)).await;
    ws.init().await;
    let listed = get(admin, KEYS).await;
    let ids: Vec<&str> = listed.body["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [KEY, key.as_str()]);

    let r = post(
        admin,
        &format!("{KEYS}/{key}"),
        &json!({"description": "ios"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["apiKey"]["description"], "ios");
    assert_eq!(r.body["apiKey"]["expires"], expires);

    let r = delete(admin, &format!("{KEYS}/{key}")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body, json!({}));
    let (close, _) = ws.recv_until_close().await;
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "API key deleted");
    assert_eq!(publish_with(server.addr, &key).await, 401);
    assert_eq!(
        publish_with(server.addr, KEY).await,
        200,
        "other keys still work"
    );

    let r = delete(admin, &format!("{KEYS}/{key}")).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException")
    );
    // The file's key is changed in the file, not here.
    let r = delete(admin, &format!("{KEYS}/{KEY}")).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException")
    );
    assert!(!r.raw.contains(KEY), "the key is not echoed whole");
}

#[tokio::test]
async fn api_key_input_is_checked_as_appsync_does() {
    let (_server, admin) = server().await;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (body, status, kind) in [
        (
            json!({"expires": now + 3600}),
            400,
            "ApiKeyValidityOutOfBoundsException",
        ),
        (
            json!({"expires": now + 400 * 86400}),
            400,
            "ApiKeyValidityOutOfBoundsException",
        ),
        (json!({"expires": "tomorrow"}), 400, "BadRequestException"),
        (json!({"colour": "blue"}), 400, "BadRequestException"),
        (
            json!({"description": "x".repeat(2000)}),
            400,
            "BadRequestException",
        ),
    ] {
        let r = post(admin, KEYS, &body).await;
        assert_eq!(
            (r.status, error_type(&r).as_str()),
            (status, kind),
            "{body}: {}",
            r.raw
        );
    }
    let r = post(admin, "/v1/apis/nosuchapi/apikeys", &json!({})).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException")
    );
    // 50 keys per API, the file's included.
    for _ in 0..49 {
        assert_eq!(post(admin, KEYS, &json!({})).await.status, 200);
    }
    let r = post(admin, KEYS, &json!({})).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "ApiKeyLimitExceededException")
    );
}

/// A created key and namespace survive a restart: the store keeps them.
#[tokio::test]
async fn created_keys_survive_a_restart() {
    let dir = temp_dir("admin-store");
    let toml = format!(
        "name = \"chat\"\napi_id = \"chatapi0000000000000000000\"\naws_region = \"eu-west-1\"\n\
         [[iam_credentials]]\naccess_key_id = \"{ADMIN_KEY}\"\nsecret_access_key = \"{ADMIN_SECRET}\"\n\
         principal = \"ops\"\nallow = [{{ actions = [\"admin\"] }}]\n[[api_keys]]\nid = \"{KEY}\"\n\
         [[functions]]\nname = \"judge\"\ncode = \"export const handler = async (c) => ({{ events: c.events.map((e) => ({{ id: e.id, error: 'judged' }})) }});\"\n"
    );
    let config = || {
        let mut c = herald::config::ApiConfig::resolve(
            herald::config::ConfigFile::parse(&toml).unwrap(),
            herald::config::Overrides {
                listen: Some("127.0.0.1:0".parse().unwrap()),
                data_dir: Some(dir.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        c.drain = Duration::ZERO;
        c
    };
    let mut first = TestServer::with_config(config()).await;
    let admin = first.running.as_ref().unwrap().admin_addr.unwrap();
    let r = post(admin, KEYS, &json!({"description": "kept"})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let key = r.body["apiKey"]["id"].as_str().unwrap().to_string();
    let r = post(admin, NAMESPACES, &json!({"name": "kept"})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // A data source and a namespace whose DIRECT handler uses it.
    let r = post(
        admin,
        "/v1/apis/chatapi0000000000000000000/datasources",
        &json!({"name": "judge", "type": "AWS_LAMBDA", "lambdaConfig": {"lambdaFunctionArn": "judge"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let direct =
        json!({"onPublish": {"behavior": "DIRECT", "integration": {"dataSourceName": "judge"}}});
    let r = post(
        admin,
        NAMESPACES,
        &json!({"name": "judged", "handlerConfigs": direct}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = post(
        admin,
        "/v2/apis",
        &json!({"name": "kept api", "eventConfig": {"authProviders": [{"authType": "API_KEY"}]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let kept_api = r.body["api"]["apiId"].as_str().unwrap().to_string();
    let r = post(
        admin,
        &format!("/v2/apis/{kept_api}/channelNamespaces"),
        &json!({"name": "k"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    first.shutdown().await;

    let second = TestServer::with_config(config()).await;
    let admin = second.running.as_ref().unwrap().admin_addr.unwrap();
    assert_eq!(publish_with(second.addr, &key).await, 200);
    let listed = get(admin, KEYS).await;
    assert_eq!(listed.body["apiKeys"][1]["id"], key.as_str());
    assert_eq!(listed.body["apiKeys"][1]["description"], "kept");
    // And a created API with its namespace.
    let r = get(admin, &format!("/v2/apis/{kept_api}/channelNamespaces/k")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        get(admin, "/v2/apis").await.body["apis"][1]["name"],
        "kept api"
    );
    // And so does a created namespace.
    let r = get(admin, &format!("{NAMESPACES}/kept")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // And the DIRECT handler, with its data source: every event is judged.
    let r = get(admin, &format!("{NAMESPACES}/judged")).await;
    assert_eq!(r.body["channelNamespace"]["handlerConfigs"], direct);
    let r = http_post(
        second.addr,
        json!({"channel": "/judged/a", "events": ["1"]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(r.body["failed"][0]["errorMessage"], "judged", "{}", r.raw);
    let r = http_post(
        second.addr,
        json!({"channel": "/kept/a", "events": ["1"]})
            .to_string()
            .into_bytes(),
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    std::fs::remove_dir_all(dir).unwrap();
}

const NAMESPACES: &str = "/v2/apis/chatapi0000000000000000000/channelNamespaces";

/// A created namespace serves at once; a changed one runs its new code on the
/// next publish without touching connections; a deleted one refuses new
/// operations and ends its subscriptions with a subscribe_error.
#[tokio::test]
async fn channel_namespaces_are_created_changed_and_deleted_live() {
    let (server, admin) = server().await;
    let upper = "export function onPublish(ctx) { return ctx.events.map((e) => ({ id: e.id, payload: { v: String(e.payload.v).toUpperCase() } })) }";
    let r = post(
        admin,
        NAMESPACES,
        &json!({"name": "live", "publishAuthModes": [{"authType": "API_KEY"}], "codeHandlers": upper}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let ns = &r.body["channelNamespace"];
    assert_eq!(ns["name"], "live");
    assert_eq!(ns["codeHandlers"], upper);
    assert_eq!(
        ns["subscribeAuthModes"],
        json!([{"authType": "API_KEY"}]),
        "the API's defaults"
    );

    let mut sub = server.ws().await;
    sub.init().await;
    sub.subscribe("s", "/live/*").await;
    let publish = |v: &'static str| {
        http_post(
            server.addr,
            json!({"channel": "/live/room", "events": [json!({"v": v}).to_string()]})
                .to_string()
                .into_bytes(),
            &[("x-api-key", KEY)],
        )
    };
    assert_eq!(publish("hello").await.status, 200);
    assert_eq!(sub.data("s").await["v"], "HELLO");

    // New code applies to the next publish; the subscription is untouched.
    let reverse = "export function onPublish(ctx) { return ctx.events.map((e) => ({ id: e.id, payload: { v: String(e.payload.v).split('').reverse().join('') } })) }";
    let r = post(
        admin,
        &format!("{NAMESPACES}/live"),
        &json!({"codeHandlers": reverse}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body["channelNamespace"]["publishAuthModes"],
        json!([{"authType": "API_KEY"}])
    );
    assert_eq!(publish("abc").await.status, 200);
    assert_eq!(sub.data("s").await["v"], "cba");

    let listed = get(admin, NAMESPACES).await;
    let names: Vec<&str> = listed.body["channelNamespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "chat", "live"]);

    let r = delete(admin, &format!("{NAMESPACES}/live")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let ended = sub.recv().await;
    assert_eq!(ended["type"], "subscribe_error", "{ended}");
    assert_eq!(ended["id"], "s");
    assert!(ended["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("'live' was deleted"));
    let r = publish("gone").await;
    assert_http_error(&r, 400, "BadRequestException", "does not exist");
    let r = delete(admin, &format!("{NAMESPACES}/live")).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException")
    );
    let r = delete(admin, &format!("{NAMESPACES}/default")).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException")
    );
    // The connection lives on.
    sub.subscribe("d", "/default/x").await;
}

#[tokio::test]
async fn channel_namespace_input_is_checked() {
    let (_server, admin) = server().await;
    for (body, status, kind, part) in [
        (
            json!({"name": "chat"}),
            409,
            "ConflictException",
            "already exists",
        ),
        (
            json!({"name": "-bad"}),
            400,
            "BadRequestException",
            "invalid",
        ),
        (json!({}), 400, "BadRequestException", "name is required"),
        (
            json!({"name": "x", "publishAuthModes": [{"authType": "AWS_IAM"}]}),
            400,
            "BadRequestException",
            "AWS_IAM",
        ),
        (
            json!({"name": "x", "publishAuthModes": []}),
            400,
            "BadRequestException",
            "empty",
        ),
        (
            json!({"name": "x", "codeHandlers": "export function onPublish( {"}),
            400,
            "BadRequestException",
            "do not load",
        ),
        (
            json!({"name": "x", "colour": 1}),
            400,
            "BadRequestException",
            "colour",
        ),
        (
            json!({"name": "x", "tags": {"aws:a": "b"}}),
            400,
            "BadRequestException",
            "aws:",
        ),
    ] {
        let r = post(admin, NAMESPACES, &body).await;
        assert_eq!(
            (r.status, error_type(&r).as_str()),
            (status, kind),
            "{body}: {}",
            r.raw
        );
        assert!(
            r.body["message"].as_str().unwrap().contains(part),
            "{body}: {}",
            r.raw
        );
    }
    let r = post(admin, &format!("{NAMESPACES}/nope"), &json!({})).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException")
    );
}

#[tokio::test]
async fn tags_are_kept_per_resource() {
    let (_server, admin) = server().await;
    let arn = "arn:aws:appsync:eu-west-1:123456789012:apis/chatapi0000000000000000000";
    let path = |arn: &str| format!("/v1/tags/{}", arn.replace(':', "%3A").replace('/', "%2F"));
    let r = post(
        admin,
        &path(arn),
        &json!({"tags": {"team": "chat", "env": "dev"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = get(admin, &path(arn)).await;
    assert_eq!(r.body["tags"], json!({"team": "chat", "env": "dev"}));
    let r = get(admin, "/v2/apis/chatapi0000000000000000000").await;
    assert_eq!(r.body["api"]["tags"], json!({"team": "chat", "env": "dev"}));
    let r = call(
        admin,
        Call {
            method: "DELETE",
            ..Call::get(&format!("{}?tagKeys=env&tagKeys=nope", path(arn)))
        },
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        get(admin, &path(arn)).await.body["tags"],
        json!({"team": "chat"})
    );

    // A namespace created with tags has them; its ARN is a resource too.
    let r = post(
        admin,
        NAMESPACES,
        &json!({"name": "tagged", "tags": {"a": "1"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["channelNamespace"]["tags"], json!({"a": "1"}));
    let ns_arn = r.body["channelNamespace"]["channelNamespaceArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(admin, &path(&ns_arn)).await.body["tags"],
        json!({"a": "1"})
    );

    for (body, part) in [
        (json!({"tags": {"aws:x": "1"}}), "aws:"),
        (json!({"tags": {}}), "at least one"),
        (json!({"tags": {"k": 1}}), "string value"),
        (json!({"tags": {"k": "v".repeat(300)}}), "256"),
    ] {
        let r = post(admin, &path(arn), &body).await;
        assert_eq!(
            (r.status, error_type(&r).as_str()),
            (400, "BadRequestException"),
            "{body}"
        );
        assert!(
            r.body["message"].as_str().unwrap().contains(part),
            "{body}: {}",
            r.raw
        );
    }
    let many: serde_json::Map<String, serde_json::Value> =
        (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    let r = post(admin, &path(arn), &json!({"tags": many})).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException"),
        "51 tags: {}",
        r.raw
    );
    let r = get(
        admin,
        &path("arn:aws:appsync:eu-west-1:123456789012:apis/other"),
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException")
    );
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_aws_error() {
    let (_server, admin) = server().await;
    // 71 MiB, past the admin listener's 70 MiB: refused before it is read whole.
    let big = vec![b'x'; 71 << 20];
    let r = call(
        admin,
        Call {
            method: "POST",
            body: &big,
            ..Call::get(KEYS)
        },
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.raw);
    assert_eq!(error_type(&r), "RequestEntityTooLargeException");
}

/// `UpdateApi` changes a created API's name, contact and auth settings for
/// the next operation: connections stay open, new connections meet the new
/// connection modes. A change that would strand a namespace's auth mode,
/// bad input, the file's API and an unknown id are refused with AWS's errors.
#[tokio::test]
async fn update_api_applies_to_the_next_operation_without_dropping_connections() {
    let (server, admin) = server().await;
    let api_key_only = json!({"authProviders": [{"authType": "API_KEY"}]});
    let r = post(
        admin,
        "/v2/apis",
        &json!({"name": "before", "ownerContact": "ops", "eventConfig": api_key_only}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let id = r.body["api"]["apiId"].as_str().unwrap().to_string();
    let created = r.body["api"]["created"].clone();
    let key = namespace_and_key(admin, &id, "n").await;
    let realtime = format!("/apis/{id}/event/realtime");
    let mut open = WsClient::connect_path(server.addr, &realtime, &key).await;
    open.init().await;

    // Connections now need IAM; publishing and subscribing still take keys.
    let r = post(
        admin,
        &format!("/v2/apis/{id}"),
        &json!({"name": "after", "eventConfig": {
            "authProviders": [{"authType": "API_KEY"}, {"authType": "AWS_IAM"}],
            "connectionAuthModes": [{"authType": "AWS_IAM"}],
            "defaultPublishAuthModes": [{"authType": "API_KEY"}],
            "defaultSubscribeAuthModes": [{"authType": "API_KEY"}]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["api"]["name"], "after");
    assert_eq!(r.body["api"]["ownerContact"], "ops", "absent: kept");
    assert_eq!(r.body["api"]["created"], created);
    let got = get(admin, &format!("/v2/apis/{id}")).await;
    assert_eq!(got.body["api"]["name"], "after");
    assert_eq!(
        got.body["api"]["eventConfig"]["connectionAuthModes"],
        json!([{"authType": "AWS_IAM"}])
    );
    // The open connection goes on: its next subscribe is served.
    open.send(json!({"type": "subscribe", "id": "s", "channel": "/n/a",
                     "authorization": {"x-api-key": key}}))
        .await;
    assert_eq!(open.recv().await["type"], "subscribe_success");
    // A new connection with the key is refused.
    let mut late = WsClient::connect_path(server.addr, &realtime, &key).await;
    late.send(json!({"type": "connection_init"})).await;
    let (_, frames) = late.recv_until_close().await;
    assert_eq!(frames[0]["type"], "connection_error", "{frames:?}");

    // Dropping API_KEY while namespace n uses it is refused; nothing changes.
    let r = post(
        admin,
        &format!("/v2/apis/{id}"),
        &json!({"name": "after", "eventConfig": {"authProviders": [{"authType": "AWS_IAM"}]}}),
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException"),
        "{}",
        r.raw
    );
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("Channel namespace n uses API_KEY"),
        "{}",
        r.raw
    );
    assert_eq!(
        get(admin, &format!("/v2/apis/{id}")).await.body["api"]["eventConfig"]["authProviders"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for (body, status, error) in [
        (
            json!({"eventConfig": api_key_only}),
            400,
            "BadRequestException",
        ),
        (json!({"name": "bad/name"}), 400, "BadRequestException"),
        (
            json!({"name": "x", "colour": "red"}),
            400,
            "BadRequestException",
        ),
        (
            json!({"name": "x", "eventConfig": {"authProviders": [{"authType": "NOPE"}]}}),
            400,
            "BadRequestException",
        ),
    ] {
        let r = post(admin, &format!("/v2/apis/{id}"), &body).await;
        assert_eq!(
            (r.status, error_type(&r).as_str()),
            (status, error),
            "{body}: {}",
            r.raw
        );
    }
    let r = post(
        admin,
        "/v2/apis/chatapi0000000000000000000",
        &json!({"name": "x"}),
    )
    .await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (400, "BadRequestException"),
        "{}",
        r.raw
    );
    let r = post(admin, "/v2/apis/nosuchapi", &json!({"name": "x"})).await;
    assert_eq!(
        (r.status, error_type(&r).as_str()),
        (404, "NotFoundException"),
        "{}",
        r.raw
    );
}

/// With `[server] base_domain`, every API is reached by host name,
/// `<apiId>.<domain>` (as on AWS), and `GetApi` returns those hosts; the path
/// form keeps working.
#[tokio::test]
async fn apis_by_host_under_a_base_domain() {
    let server = start_with_toml(&format!(
        "name = \"chat\"\napi_id = \"chatapi0000000000000000000\"\naws_region = \"eu-west-1\"\n\
         [server]\nbase_domain = \"Events.Test:8443\"\n\
         [[iam_credentials]]\naccess_key_id = \"{ADMIN_KEY}\"\nsecret_access_key = \"{ADMIN_SECRET}\"\n\
         principal = \"ops\"\nallow = [{{ actions = [\"admin\"] }}]\n[[api_keys]]\nid = \"{KEY}\"\n\
         [[channel_namespaces]]\nname = \"default\"\n"
    ))
    .await;
    let admin = server.running.as_ref().unwrap().admin_addr.unwrap();
    let r = post(
        admin,
        "/v2/apis",
        &json!({"name": "hosted", "eventConfig": {"authProviders": [{"authType": "API_KEY"}]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let id = r.body["api"]["apiId"].as_str().unwrap().to_string();
    let host = format!("{id}.events.test:8443");
    assert_eq!(
        r.body["api"]["dns"],
        json!({"HTTP": host, "REALTIME": host})
    );
    let r = get(admin, "/v2/apis/chatapi0000000000000000000").await;
    assert_eq!(
        r.body["api"]["dns"]["HTTP"],
        "chatapi0000000000000000000.events.test:8443"
    );
    let key = namespace_and_key(admin, &id, "default").await;
    let publish = |host: String, path: &'static str, key: String| async move {
        http_request(
            server.addr,
            "POST",
            path,
            json!({"channel": "/default/a", "events": ["1"]})
                .to_string()
                .into_bytes(),
            &[
                ("host", &host),
                ("x-api-key", &key),
                ("content-type", "application/json"),
            ],
        )
        .await
        .status
    };
    assert_eq!(publish(host.clone(), "/event", key.clone()).await, 200);
    assert_eq!(
        publish(host.clone(), "/event", KEY.into()).await,
        401,
        "the host chose the API"
    );
    assert_eq!(
        publish(
            "chatapi0000000000000000000.events.test".into(),
            "/event",
            KEY.into()
        )
        .await,
        200
    );
    assert_eq!(
        publish("nosuchapi.events.test".into(), "/event", KEY.into()).await,
        404
    );
    assert_eq!(
        publish(server.addr.to_string(), "/event", KEY.into()).await,
        200,
        "any other host: the file's API"
    );
}
