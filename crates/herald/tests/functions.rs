//! Functions declared in the configuration file, and a namespace's DIRECT
//! handler backed by one, run in-process (no HTTP hop), with the same
//! payload and answers as a DIRECT handler over HTTP.

mod common;

use common::*;
use serde_json::{json, Value};

/// The same function as the HTTP one in `handlers.rs`, in JavaScript:
/// uppercases `message`, fails events with `bad`, rejects subscriptions to
/// `/d/closed`, throws on `/d/throws`.
const UPPER: &str = r#"
export const handler = async (ctx) => {
  const path = ctx.info.channel.path;
  if (path === '/d/throws') throw new Error('the function broke');
  if (ctx.info.operation === 'SUBSCRIBE') return path === '/d/closed' ? { error: 'closed for now' } : null;
  return {
    events: ctx.events.map((e) => e.payload.bad !== undefined
      ? { id: e.id, error: 'bad' }
      : { id: e.id, payload: { message: String(e.payload.message).toUpperCase(), keys: Object.keys(ctx).sort().join(',') } }),
  };
};
"#;

fn config(invoke_type: &str) -> String {
    format!(
        r#"
[[api_keys]]
id = "{KEY}"
[[functions]]
name = "upper"
code = '''{UPPER}'''
[[data_sources]]
name = "fn"
type = "AWS_LAMBDA"
lambda_config = {{ lambda_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:upper" }}
[[channel_namespaces]]
name = "d"
handler_configs = {{ on_publish = {{ behavior = "DIRECT", integration = {{ data_source_name = "fn", lambda_config = {{ invoke_type = "{invoke_type}" }} }} }}, on_subscribe = {{ behavior = "DIRECT", integration = {{ data_source_name = "fn" }} }} }}
"#
    )
}

#[tokio::test]
async fn a_direct_handler_backed_by_an_in_process_function() {
    let server = start_with_toml(&config("REQUEST_RESPONSE")).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("s", "/d/room").await;
    let r = publish(
        &server,
        "/d/room",
        &[json!({"message": "hi"}), json!({"bad": 1})],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["failed"][0]["index"], 1);
    let got = c.data("s").await;
    assert_eq!(got["message"], "HI");
    // AppSync's direct Lambda payload, as over HTTP.
    assert_eq!(
        got["keys"],
        "error,events,identity,info,outErrors,prev,request,result,stash"
    );
    c.send(json!({"type": "subscribe", "id": "x", "channel": "/d/closed"}))
        .await;
    assert_ws_error(
        &c.recv().await,
        "subscribe_error",
        Some("x"),
        "ForbiddenException",
        "closed for now",
    );
    // A function error rejects the publish, naming the error.
    let r = publish(&server, "/d/throws", &[json!(1)]).await;
    assert_http_error(&r, 403, "ForbiddenException", "the function broke");
}

#[tokio::test]
async fn event_mode_runs_the_function_without_waiting() {
    let server = start_with_toml(&config("EVENT")).await;
    let mut c = server.ws().await;
    c.init().await;
    c.subscribe("s", "/d/room").await;
    let r = publish(&server, "/d/room", &[json!({"message": "as is"})]).await;
    assert_eq!(r.status, 200);
    assert_eq!(c.data("s").await, json!({"message": "as is"}));
}

#[tokio::test]
async fn declared_functions_are_checked_at_start() {
    for (toml, part) in [
        (
            "[[functions]]\nname = \"f\"\ncode = \"export const handler = (;\"\n",
            "Runtime.UserCodeSyntaxError",
        ),
        (
            "[[functions]]\nname = \"f\"\ncode = \"export const handler = 1;\"\nurl = \"http://x\"\n",
            "exactly one of code, code_file or url",
        ),
        (
            "[[data_sources]]\nname = \"d\"\ntype = \"AWS_LAMBDA\"\nlambda_config = { lambda_function_arn = \"nosuch\" }\n",
            "no [[functions]] entry declares",
        ),
        (
            "[[functions]]\nname = \"f\"\ncode_file = \"/nonexistent/f.zip\"\n",
            "cannot read /nonexistent/f.zip",
        ),
    ] {
        let file = herald::config::ConfigFile::parse(toml).unwrap();
        let err = match herald::config::ApiConfig::resolve(file, Default::default()) {
            Err(e) => e,
            Ok(mut config) => {
                config.listen = "127.0.0.1:0".parse().unwrap();
                config.admin_listen = None;
                config.store = herald::config::StoreConfig::memory();
                herald::server::Server::bind(config).await.err().expect("refused")
            }
        };
        assert!(err.contains(part), "{toml}: {err}");
    }
}

/// An HTTP function behind TLS with a private CA: refused until
/// `[function_pool] http_ca_file` trusts the CA, then reached.
#[tokio::test]
async fn http_functions_trust_the_configured_ca() {
    let dir = temp_dir("function-ca");
    let mut tls_config = herald::config::ApiConfig::resolve(
        herald::config::ConfigFile::default(),
        herald::config::Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            tls_self_signed: Some(dir.clone()),
            api_keys: vec![KEY.into()],
            ..Default::default()
        },
    )
    .unwrap();
    tls_config.drain = std::time::Duration::ZERO;
    tls_config.admin_listen = None;
    let endpoint = start_config(tls_config).await;
    let url = format!("https://localhost:{}/event", endpoint.addr.port());
    let ca = dir.join("cert.pem");
    for (trust, expect) in [(false, "TLS with"), (true, "HTTP 4")] {
        let pool = if trust {
            format!("[function_pool]\nhttp_ca_file = \"{}\"\n", ca.display())
        } else {
            String::new()
        };
        let server = start_with_toml(&format!(
            "[[api_keys]]\nid = \"{KEY}\"\n[[functions]]\nname = \"remote\"\nurl = \"{url}\"\n{pool}"
        ))
        .await;
        let functions = server.running.as_ref().unwrap().api.functions.clone();
        let r = functions
            .invoke("remote", bytes::Bytes::from_static(b"{}"), None)
            .await
            .unwrap();
        assert!(r.function_error);
        let error: Value = serde_json::from_slice(&r.payload).unwrap();
        let message = error["errorMessage"].as_str().unwrap();
        // Untrusted: the handshake fails. Trusted: Herald's publish endpoint
        // answers (401 or 400: no key, no channel), so TLS worked.
        assert!(message.contains(expect), "trust {trust}: {error}");
    }
}
