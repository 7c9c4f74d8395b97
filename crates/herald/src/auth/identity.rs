//! Who made a request, in AppSync's `ctx.identity` shapes.

use crate::config::AuthType;
use serde_json::{json, Value};

/// The identity an auth mode establishes; kept on the connection and on each
/// subscription for handlers to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// API key: `ctx.identity` is `null`.
    ApiKey,
    /// Cognito user pools or OpenID Connect. Boxed, like `Iam`: an identity sits
    /// on every connection and subscription, and most are API keys.
    Jwt(Box<JwtIdentity>),
    /// Lambda-style authorizer: its `handlerContext`.
    Lambda { handler_context: Value },
    /// SigV4.
    Iam(Box<IamIdentity>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JwtIdentity {
    pub auth_type: AuthType,
    pub sub: Option<String>,
    pub issuer: String,
    pub username: Option<String>,
    pub claims: Value,
    pub groups: Option<Vec<String>>,
    pub source_ip: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IamIdentity {
    pub account_id: Option<String>,
    pub user_arn: String,
    pub username: String,
    pub access_key_id: String,
    pub source_ip: Vec<String>,
}

impl Identity {
    pub fn auth_type(&self) -> AuthType {
        match self {
            Identity::ApiKey => AuthType::ApiKey,
            Identity::Jwt(j) => j.auth_type,
            Identity::Lambda { .. } => AuthType::AwsLambda,
            Identity::Iam(_) => AuthType::AwsIam,
        }
    }

    /// `ctx.identity` as AppSync handlers see it.
    pub fn to_appsync(&self) -> Value {
        match self {
            Identity::ApiKey => Value::Null,
            Identity::Jwt(j) if j.auth_type == AuthType::AmazonCognitoUserPools => json!({
                "sub": j.sub, "issuer": j.issuer, "username": j.username,
                "claims": j.claims, "sourceIp": j.source_ip,
                "defaultAuthStrategy": "ALLOW", "groups": j.groups,
            }),
            Identity::Jwt(j) => json!({"sub": j.sub, "issuer": j.issuer, "claims": j.claims}),
            Identity::Lambda { handler_context } => json!({"handlerContext": handler_context}),
            Identity::Iam(i) => json!({
                "accountId": i.account_id, "cognitoIdentityPoolId": null,
                "cognitoIdentityId": null, "sourceIp": i.source_ip,
                "username": i.username, "userArn": i.user_arn,
                "cognitoIdentityAuthType": null, "cognitoIdentityAuthProvider": null,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appsync_identity_shapes() {
        assert_eq!(Identity::ApiKey.to_appsync(), Value::Null);
        let jwt = |t| {
            Identity::Jwt(Box::new(JwtIdentity {
                auth_type: t,
                sub: Some("u1".into()),
                issuer: "https://issuer".into(),
                username: Some("alice".into()),
                claims: json!({"sub": "u1"}),
                groups: Some(vec!["admins".into()]),
                source_ip: vec!["127.0.0.1".into()],
            }))
        };
        let cognito = jwt(AuthType::AmazonCognitoUserPools).to_appsync();
        assert_eq!(cognito["username"], "alice");
        assert_eq!(cognito["groups"], json!(["admins"]));
        assert_eq!(cognito["defaultAuthStrategy"], "ALLOW");
        assert_eq!(cognito["sourceIp"], json!(["127.0.0.1"]));
        let oidc = jwt(AuthType::OpenidConnect).to_appsync();
        assert_eq!(
            oidc,
            json!({"sub": "u1", "issuer": "https://issuer", "claims": {"sub": "u1"}})
        );
        let lambda = Identity::Lambda {
            handler_context: json!({"k": 1}),
        }
        .to_appsync();
        assert_eq!(lambda, json!({"handlerContext": {"k": 1}}));
        let iam = Identity::Iam(Box::new(IamIdentity {
            account_id: Some("123".into()),
            user_arn: "arn:aws:iam::123:user/bob".into(),
            username: "bob".into(),
            access_key_id: "AKID".into(),
            source_ip: vec![],
        }))
        .to_appsync();
        assert_eq!(iam["userArn"], "arn:aws:iam::123:user/bob");
        assert_eq!(iam["username"], "bob");
        assert_eq!(iam["cognitoIdentityPoolId"], Value::Null);
    }
}
