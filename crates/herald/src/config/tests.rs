//! The configuration's resolution: defaults, overrides and refusals.
use super::*;

#[test]
fn no_file_gives_default_namespace_and_generated_key() {
    let c = ApiConfig::resolve(ConfigFile::default(), Overrides::default()).unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.namespaces.len(), 1);
    assert_eq!(c.namespaces[0].name, "default");
    assert!(c.generated_api_key);
    assert!(c.api_keys[0].id.starts_with("da2-"));
    assert_eq!(c.api_keys[0].id.len(), 30);
    assert_eq!(c.tls, TlsSetting::None);
}

#[test]
fn file_and_flags() {
    let file = ConfigFile::parse(
        r#"
        name = "chat"
        [server]
        listen = "127.0.0.1:9000"
        [event_config]
        auth_providers = [{ auth_type = "API_KEY" }]
        connection_auth_modes = [{ auth_type = "API_KEY" }]
        [[api_keys]]
        id = "da2-fromfile000000000000000000"
        expires = 1700000000
        [[channel_namespaces]]
        name = "chat"
        [limits]
        max_subscriptions_per_connection = 500
        "#,
    )
    .unwrap();
    let c = ApiConfig::resolve(
        file,
        Overrides {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            namespaces: vec!["chat".into(), "extra".into()],
            api_keys: vec!["cli-key-123".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9001);
    assert_eq!(
        c.namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["chat", "extra"]
    );
    assert_eq!(c.api_keys.len(), 2);
    assert!(!c.generated_api_key);
    assert_eq!(c.limits.max_subscriptions_per_connection, 500);
}

#[test]
fn listen_takes_host_names() {
    assert_eq!(resolve_listen("localhost:9002").unwrap().port(), 9002);
    assert!(resolve_listen("localhost:9002").unwrap().ip().is_loopback());
    assert_eq!(
        resolve_listen("127.0.0.1:80").unwrap(),
        "127.0.0.1:80".parse().unwrap()
    );
    assert!(resolve_listen("localhost")
        .unwrap_err()
        .contains("HOST:PORT"));
    let file = ConfigFile::parse("[server]\nlisten = \"localhost:9003\"").unwrap();
    let c = ApiConfig::resolve(file, Overrides::default()).unwrap();
    assert_eq!(c.listen.port(), 9003);
}

#[test]
fn refusals_are_clear() {
    let err = |text: &str| {
        ApiConfig::resolve(ConfigFile::parse(text).unwrap(), Overrides::default()).unwrap_err()
    };
    assert!(err("[[channel_namespaces]]\nname = \"-bad\"").contains("invalid"));
    assert!(
        err("[[channel_namespaces]]\nname = \"a\"\n[[channel_namespaces]]\nname = \"a\"")
            .contains("twice")
    );
    assert!(
        err("[event_config]\nauth_providers = [{ auth_type = \"AWS_IAM\" }]")
            .contains("iam_credentials")
    );
    assert!(
        err("[event_config]\nauth_providers = [{ auth_type = \"OPENID_CONNECT\" }]")
            .contains("needs open_id_connect_config")
    );
    assert!(err("[event_config]\nauth_providers = [{ auth_type = \"AWS_LAMBDA\", lambda_authorizer_config = { authorizer_uri = \"http://x\", identity_validation_expression = \"(\" } }]")
        .contains("identity_validation_expression"));
    assert!(ConfigFile::parse("bogus = 1").is_err());
    assert!(err(
        "[[channel_namespaces]]\nname = \"a\"\nhandler_configs = { on_publish = { behavior = \"DIRECT\", integration = { data_source_name = \"x\" } } }"
    )
    .contains("no data source named 'x'"));
    assert!(err("[event_config]\nconnection_auth_modes = []").contains("empty"));
    assert!(err("account_id = \"12345\"").contains("12 digits"));
    assert!(err("api_id = \"no/slash\"").contains("api_id"));
}

#[test]
fn base_domain_is_a_dns_name_with_an_optional_port() {
    let resolve = |d: &str| {
        ApiConfig::resolve(
            ConfigFile::parse(&format!("[server]\nbase_domain = \"{d}\"")).unwrap(),
            Overrides::default(),
        )
        .map(|c| c.base_domain.unwrap())
    };
    assert_eq!(
        resolve("Events.Example.com.").unwrap(),
        "events.example.com"
    );
    assert_eq!(resolve("localtest.me:8080").unwrap(), "localtest.me:8080");
    for bad in [
        "",
        "bad domain",
        "-x.com",
        "x..com",
        "x.com:port",
        "x.com:99999",
    ] {
        let e = resolve(bad).unwrap_err();
        assert!(e.contains("base_domain"), "{bad}: {e}");
    }
}

#[test]
fn a_data_source_may_name_a_state_machine() {
    let arn = "arn:aws:states:us-east-1:123456789012:stateMachine:judge";
    let file = ConfigFile::parse(&format!(
        r#"
        [[data_sources]]
        name = "judge"
        type = "AWS_LAMBDA"
        lambda_config = {{ lambda_function_arn = "{arn}" }}
        [[channel_namespaces]]
        name = "judged"
        handler_configs = {{ on_publish = {{ behavior = "DIRECT", integration = {{ data_source_name = "judge", lambda_config = {{ invoke_type = "EVENT" }} }} }} }}
        "#
    ))
    .unwrap();
    let c = ApiConfig::resolve(file, Overrides::default()).unwrap();
    let direct = c.namespaces[0].direct_on_publish.as_ref().unwrap();
    assert_eq!(direct.target, DirectTarget::StateMachine(arn.into()));
    assert!(direct.event);
}
