//! The configuration of an API created through the admin API: AppSync's
//! `CreateApi` fields (`name`, `eventConfig` in AWS's JSON shape) on top of
//! the server's own settings (region, account, engine, store, limits,
//! handlers, IAM principals). It goes through the same resolution and checks
//! as the configuration file, so both answer alike.

use super::{AdminFile, ApiConfig, ConfigFile, EngineSetting, EventConfigFile, Overrides};
use serde_json::{Map, Value};

/// AWS's camelCase member names as the file's snake_case keys.
fn snake(name: &str) -> String {
    match name {
        "openIDConnectConfig" => return "open_id_connect_config".into(),
        "iatTTL" => return "iat_ttl".into(),
        "authTTL" => return "auth_ttl".into(),
        _ => {}
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn snake_keys(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (snake(k), snake_keys(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(snake_keys).collect()),
        other => other.clone(),
    }
}

impl ApiConfig {
    /// A created API's configuration: `event_config` is AppSync's
    /// `EventConfig` as JSON. It starts with no namespaces and no keys (as
    /// on AWS), and its broker subjects use its id, never its name (names
    /// need not be unique).
    pub fn derived(
        base: &ApiConfig,
        api_id: &str,
        name: &str,
        owner_contact: Option<String>,
        event_config: &Value,
    ) -> Result<ApiConfig, String> {
        let event_config: EventConfigFile = serde_json::from_value(snake_keys(event_config))
            .map_err(|e| format!("eventConfig: {e}"))?;
        let (engine, nats, redis) = match &base.engine {
            EngineSetting::Memory => (None, None, None),
            EngineSetting::Nats(c) => (Some("nats".to_string()), Some(c.clone()), None),
            EngineSetting::Redis(c) => (Some("redis".to_string()), None, Some(c.clone())),
        };
        let file = ConfigFile {
            name: Some(name.to_string()),
            api_id: Some(api_id.to_string()),
            account_id: Some(base.account_id.clone()),
            aws_region: Some(base.aws_region.clone()),
            iam_credentials: base.iam_credentials.clone(),
            owner_contact,
            engine,
            nats,
            redis,
            node_id: Some(base.node_id.clone()),
            event_config,
            admin: AdminFile {
                enabled: Some(false),
                listen: None,
            },
            ..Default::default()
        };
        let mut config = ApiConfig::resolve(
            file,
            Overrides {
                listen: Some(base.listen),
                ..Default::default()
            },
        )?;
        if config.generated_api_key {
            config.api_keys.clear();
            config.generated_api_key = false;
        }
        config.namespaces.clear();
        config.wire_name = api_id.to_string();
        config.limits = base.limits.clone();
        config.handlers = base.handlers;
        config.outbound_queue_frames = base.outbound_queue_frames;
        config.outbound_queue_bytes = base.outbound_queue_bytes;
        config.store = base.store.clone();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aws_shapes_resolve_like_the_file() {
        let base = ApiConfig::for_tests("da2-base000000000000000000000");
        let c = ApiConfig::derived(
            &base,
            "newapi",
            "second",
            None,
            &json!({"authProviders": [{"authType": "API_KEY"}, {"authType": "OPENID_CONNECT",
                      "openIDConnectConfig": {"issuer": "https://issuer.example", "iatTTL": 1000}}],
                    "connectionAuthModes": [{"authType": "API_KEY"}],
                    "defaultPublishAuthModes": [{"authType": "API_KEY"}],
                    "defaultSubscribeAuthModes": [{"authType": "OPENID_CONNECT"}]}),
        )
        .unwrap();
        assert_eq!(
            (c.api_id.as_str(), c.name.as_str(), c.wire_name.as_str()),
            ("newapi", "second", "newapi")
        );
        assert!(c.namespaces.is_empty() && c.api_keys.is_empty());
        assert_eq!(c.providers.len(), 2);
        let err = ApiConfig::derived(
            &base,
            "x",
            "y",
            None,
            &json!({"authProviders": [{"authType": "API_KEY"}], "connectionAuthModes": [{"authType": "AWS_LAMBDA"}]}),
        )
        .unwrap_err();
        assert!(err.contains("AWS_LAMBDA"), "{err}");
        assert!(
            ApiConfig::derived(&base, "x", "y", None, &json!({"bogus": 1}))
                .unwrap_err()
                .contains("eventConfig")
        );
    }
}
