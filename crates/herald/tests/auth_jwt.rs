//! OPENID_CONNECT and AMAZON_COGNITO_USER_POOLS: real JWTs signed with keys made
//! in the test, served by a local issuer (OIDC discovery + JWKS).

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use common::*;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

struct TestKey {
    kid: String,
    signer: Signer,
}

impl TestKey {
    fn es256(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        TestKey {
            kid: kid.into(),
            signer: Signer::Es256(pair),
        }
    }

    /// RSA keys come from openssl (ring cannot generate them).
    fn rs256(kid: &str) -> TestKey {
        // PKCS#1 DER, which ring reads.
        let out = std::process::Command::new("sh")
            .args(["-c", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl rsa -outform DER -traditional"])
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pair = RsaKeyPair::from_der(&out.stdout).unwrap();
        TestKey {
            kid: kid.into(),
            signer: Signer::Rs256(pair),
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Es256(p) => {
                let point = p.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                       "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
            }
            Signer::Rs256(p) => {
                let c: ring::rsa::PublicKeyComponents<Vec<u8>> = p.public().into();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                       "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let alg = match self.signer {
            Signer::Es256(_) => "ES256",
            Signer::Rs256(_) => "RS256",
        };
        let header = json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Es256(p) => p.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Rs256(p) => {
                let mut sig = vec![0; p.public().modulus_len()];
                p.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
        };
        format!("{input}.{}", B64.encode(sig))
    }
}

/// A local OIDC issuer: discovery document and JWKS, which a test can rotate.
struct Issuer {
    server: TinyServer,
    jwks: Arc<Mutex<Value>>,
    /// While set, every request is answered 503 (the issuer is down).
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Issuer {
    async fn start(keys: &[&TestKey]) -> Issuer {
        let jwks = Arc::new(Mutex::new(
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
        ));
        let base = Arc::new(Mutex::new(String::new()));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (j, b, d) = (jwks.clone(), base.clone(), down.clone());
        let server = TinyServer::start(move |r| match r.path.as_str() {
            _ if d.load(std::sync::atomic::Ordering::SeqCst) => Answer {
                status: 503,
                body: String::new(),
                delay: Default::default(),
            },
            "/.well-known/openid-configuration" => {
                let base = b.lock().unwrap().clone();
                Answer::json(json!({"issuer": base, "jwks_uri": format!("{base}/keys")}))
            }
            "/keys" => Answer::json(j.lock().unwrap().clone()),
            _ => Answer {
                status: 404,
                body: String::new(),
                delay: Default::default(),
            },
        })
        .await;
        *base.lock().unwrap() = server.url("");
        Issuer { server, jwks, down }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn url(&self) -> String {
        self.server.url("")
    }

    fn set_keys(&self, keys: &[&TestKey]) {
        *self.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }

    fn key_fetches(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path == "/keys")
            .count()
    }
}

fn claims(iss: &str, extra: Value) -> Value {
    let mut c =
        json!({"iss": iss, "sub": "user-1", "aud": "web-app", "iat": now(), "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn publish_with(server: &TestServer, authorization: &str) -> u16 {
    http_post(
        server.addr,
        json!({"channel": "/default/a", "events": ["1"]})
            .to_string()
            .into_bytes(),
        &[("authorization", authorization)],
    )
    .await
    .status
}

async fn oidc_server(issuer: &str, extra: &str) -> TestServer {
    start_with_toml(&format!(
        r#"
        [event_config]
        auth_providers = [
          {{ auth_type = "API_KEY" }},
          {{ auth_type = "OPENID_CONNECT", open_id_connect_config = {{ issuer = "{issuer}", client_id = "web-.*" {extra} }} }},
        ]
        [[api_keys]]
        id = "{KEY}"
        "#
    ))
    .await
}

/// The issuer down (discovery and JWKS answer 503): tokens are refused at
/// once (fail closed) and not each with its own fetch, API keys go on
/// working, and once the issuer is back tokens are accepted with no restart.
#[tokio::test]
async fn an_issuer_down_refuses_tokens_and_its_return_needs_no_restart() {
    let key = TestKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    issuer.set_down(true);
    let iss = issuer.url();
    let server = oidc_server(&iss, "").await;
    let token = key.sign(&claims(&iss, json!({})));
    assert_eq!(publish_with(&server, &token).await, 401);
    let fetched = issuer.server.requests().len();
    assert!(fetched >= 1, "the issuer was asked");
    for _ in 0..5 {
        assert_eq!(publish_with(&server, &token).await, 401);
    }
    // Within the backoff the failure is answered without asking again (one
    // more fetch is allowed, should the backoff have passed meanwhile).
    assert!(issuer.server.requests().len() <= fetched + 1);
    assert_eq!(
        publish(&server, "/default/a", &[json!(1)]).await.status,
        200
    );
    issuer.set_down(false);
    // Accepted once the backoff has passed: the real answer, asked until it
    // changes (no event tells the test when the backoff ends).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while publish_with(&server, &token).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "tokens accepted again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn oidc_tokens_valid_and_invalid() {
    let key = TestKey::es256("k1");
    let rsa = TestKey::rs256("r1");
    let issuer = Issuer::start(&[&key, &rsa]).await;
    let iss = issuer.url();
    let server = oidc_server(&iss, "").await;

    let valid = key.sign(&claims(&iss, json!({})));
    assert_eq!(publish_with(&server, &valid).await, 200);
    assert_eq!(
        publish_with(&server, &format!("Bearer {valid}")).await,
        200,
        "Bearer prefix"
    );
    assert_eq!(
        publish_with(&server, &rsa.sign(&claims(&iss, json!({})))).await,
        200,
        "RS256"
    );

    let cases = [
        (
            "expired",
            key.sign(&claims(&iss, json!({"exp": now() - 120}))),
        ),
        (
            "not yet valid",
            key.sign(&claims(&iss, json!({"nbf": now() + 600}))),
        ),
        ("no exp", {
            let mut c = claims(&iss, json!({}));
            c.as_object_mut().unwrap().remove("exp");
            key.sign(&c)
        }),
        (
            "wrong issuer",
            key.sign(&claims("http://evil.example", json!({}))),
        ),
        (
            "issuer with a trailing slash",
            key.sign(&claims(&format!("{iss}/"), json!({}))),
        ),
        (
            "wrong audience",
            key.sign(&claims(&iss, json!({"aud": "other-app"}))),
        ),
        (
            "audience only a prefix match",
            key.sign(&claims(&iss, json!({"aud": "xweb-app"}))),
        ),
        ("bad signature", {
            let t = key.sign(&claims(&iss, json!({})));
            let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
            parts[1] = B64.encode(claims(&iss, json!({"sub": "admin"})).to_string());
            parts.join(".")
        }),
        ("alg none", {
            let h = B64.encode(json!({"alg": "none", "kid": "k1"}).to_string());
            format!("{h}.{}.", B64.encode(claims(&iss, json!({})).to_string()))
        }),
        (
            "HS256 with the public key as secret (algorithm confusion)",
            {
                let h = B64.encode(json!({"alg": "HS256", "kid": "r1"}).to_string());
                let p = B64.encode(claims(&iss, json!({})).to_string());
                let input = format!("{h}.{p}");
                let secret = rsa.jwk()["n"].as_str().unwrap().to_string();
                let tag = ring::hmac::sign(
                    &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
                    input.as_bytes(),
                );
                format!("{input}.{}", B64.encode(tag.as_ref()))
            },
        ),
        ("RS256 header on an EC key", {
            let t = key.sign(&claims(&iss, json!({})));
            let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
            parts[0] = B64.encode(json!({"alg": "RS256", "kid": "k1"}).to_string());
            parts.join(".")
        }),
        ("not a JWT", "just-a-token".to_string()),
    ];
    for (what, token) in cases {
        assert_eq!(publish_with(&server, &token).await, 401, "{what}");
    }

    // Key rotation: a token signed by a new key triggers one refetch of the JWKS.
    let fetches = issuer.key_fetches();
    let rotated = TestKey::es256("k2");
    issuer.set_keys(&[&rotated]);
    assert_eq!(
        publish_with(&server, &rotated.sign(&claims(&iss, json!({})))).await,
        200
    );
    assert_eq!(issuer.key_fetches(), fetches + 1);
    // The old key is gone from the cache after the refetch.
    assert_eq!(publish_with(&server, &valid).await, 401);
    // Unknown kids do not cause a fetch each (rate limited).
    let stranger = TestKey::es256("k3");
    for _ in 0..5 {
        assert_eq!(
            publish_with(&server, &stranger.sign(&claims(&iss, json!({})))).await,
            401
        );
    }
    assert!(
        issuer.key_fetches() <= fetches + 2,
        "refetches are rate limited"
    );
}

#[tokio::test]
async fn oidc_ttls_in_milliseconds() {
    let key = TestKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    let iss = issuer.url();
    let server = oidc_server(&iss, ", iat_ttl = 3600000, auth_ttl = 3600000").await;
    let fresh = claims(&iss, json!({"auth_time": now()}));
    assert_eq!(publish_with(&server, &key.sign(&fresh)).await, 200);
    let old_iat = claims(&iss, json!({"auth_time": now(), "iat": now() - 7200}));
    assert_eq!(publish_with(&server, &key.sign(&old_iat)).await, 401);
    let old_auth = claims(&iss, json!({"auth_time": now() - 7200}));
    assert_eq!(publish_with(&server, &key.sign(&old_auth)).await, 401);
    let no_auth_time = claims(&iss, json!({}));
    assert_eq!(publish_with(&server, &key.sign(&no_auth_time)).await, 401);
}

#[tokio::test]
async fn oidc_over_websocket_and_mixed_modes_on_one_connection() {
    let key = TestKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    let iss = issuer.url();
    let server = oidc_server(&iss, "").await;
    let token = key.sign(&claims(&iss, json!({})));

    // Connect with a JWT, subscribe once with the JWT and once with the API key.
    let mut c = WsClient::connect_with_auth(
        server.addr,
        &json!({"host": server.host(), "Authorization": token}),
    )
    .await;
    c.init().await;
    c.send(json!({"type": "subscribe", "id": "jwt", "channel": "/default/a", "authorization": {"Authorization": token}})).await;
    assert_eq!(c.recv().await["type"], "subscribe_success");
    c.send(json!({"type": "subscribe", "id": "key", "channel": "/default/b", "authorization": {"x-api-key": KEY}})).await;
    assert_eq!(c.recv().await["type"], "subscribe_success");
    let expired = key.sign(&claims(&iss, json!({"exp": now() - 300})));
    c.send(json!({"type": "subscribe", "id": "old", "channel": "/default/c", "authorization": {"Authorization": expired}})).await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("old"),
        "UnauthorizedException",
        "not authorized",
    );
    c.send(json!({"type": "publish", "id": "p", "channel": "/default/a", "events": ["{\"x\":1}"], "authorization": {"Authorization": token}})).await;
    let mut types = vec![];
    for _ in 0..2 {
        types.push(c.recv().await["type"].as_str().unwrap().to_string());
    }
    types.sort();
    assert_eq!(types, ["data", "publish_success"]);

    // A bad JWT at connect gets connection_error.
    let mut bad = WsClient::connect_with_auth(
        server.addr,
        &json!({"host": server.host(), "Authorization": expired}),
    )
    .await;
    bad.send(json!({"type": "connection_init"})).await;
    let (_, frames) = bad.recv_until_close().await;
    assert_eq!(frames[0]["type"], "connection_error");
}

#[tokio::test]
async fn cognito_id_and_access_tokens() {
    let key = TestKey::es256("c1");
    let issuer = Issuer::start(&[&key]).await;
    let pool_issuer = format!("{}/us-east-1_TestPool", issuer.url());
    let server = start_with_toml(&format!(
        r#"
        [event_config]
        auth_providers = [{{ auth_type = "AMAZON_COGNITO_USER_POOLS", cognito_config = {{ user_pool_id = "us-east-1_TestPool", aws_region = "us-east-1", app_id_client_regex = "client-[0-9]+", issuer = "{pool_issuer}", jwks_url = "{}" }} }}]
        "#,
        issuer.server.url("/keys")
    ))
    .await;
    let base = |extra: Value| {
        let mut c = json!({"iss": pool_issuer, "sub": "u-1", "cognito:username": "alice", "iat": now(), "exp": now() + 600, "cognito:groups": ["admins"]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        key.sign(&c)
    };
    let id_token = base(json!({"token_use": "id", "aud": "client-42"}));
    let access_token = base(json!({"token_use": "access", "client_id": "client-42"}));
    assert_eq!(publish_with(&server, &id_token).await, 200);
    assert_eq!(publish_with(&server, &access_token).await, 200);
    for (what, token) in [
        (
            "wrong client",
            base(json!({"token_use": "access", "client_id": "other"})),
        ),
        (
            "access token with only aud",
            base(json!({"token_use": "access", "aud": "client-42"})),
        ),
        ("no token_use", base(json!({"aud": "client-42"}))),
    ] {
        assert_eq!(publish_with(&server, &token).await, 401, "{what}");
    }
    // API keys are not a mode of this API.
    let r = server
        .post(json!({"channel": "/default/a", "events": ["1"]}))
        .await;
    assert_eq!(r.status, 401);
}
