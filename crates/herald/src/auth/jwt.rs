//! `AMAZON_COGNITO_USER_POOLS` and `OPENID_CONNECT`: JWTs in `Authorization`.
//!
//! Verification is done here with `ring`, so the accepted algorithms are exactly
//! the ones listed: RS256/384/512 and PS256/384/512 for RSA keys, ES256/ES384 for
//! EC keys, EdDSA for Ed25519 keys. The algorithm must fit the key's type (and the
//! key's own `alg` when it names one); `none` and the HMAC algorithms are refused,
//! which rules out algorithm confusion.
//!
//! Keys come from the provider's JWKS (OIDC discovery of the issuer, a configured
//! URL, or a file), fetched on first use and cached. A token whose `kid` is not in
//! the cache triggers one refetch (key rotation), at most once per
//! [`UNKNOWN_KID_REFETCH`] per provider, so a flood of made-up `kid`s cannot turn
//! into a flood of fetches.

use super::identity::{Identity, JwtIdentity};
use crate::config::{AuthType, CognitoConfig, OidcConfig};
use crate::http_client::HttpClient;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use regex_lite::Regex;
use ring::signature;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Clock skew tolerated on `exp`, `nbf` and the TTL checks.
const LEEWAY_SECS: i64 = 30;
/// Minimum time between refetches caused by an unknown `kid`.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// After a JWKS fetch failed, requests needing it are refused with that
/// failure for this long instead of each fetching again: with the issuer
/// down or hanging, tokens are answered at once (fail closed) rather than one
/// fetch timeout after another behind the fetch lock, and the issuer is not
/// hammered. The first request after it tries again.
pub const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        alg: Option<String>,
    },
    Ec {
        curve: &'static str,
        point: Vec<u8>,
        alg: Option<String>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
enum JwksSource {
    Url(String),
    File(PathBuf),
    /// Discover `jwks_uri` from `<issuer>/.well-known/openid-configuration`.
    Discovery(String),
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Key>,
    /// Keys without a `kid` (tried in turn when the token has no `kid`).
    anonymous: Vec<Key>,
    loaded: bool,
    last_unknown_kid_refetch: Option<Instant>,
    /// The last failed fetch: when, and why (see [`FAILED_FETCH_BACKOFF`]).
    last_failure: Option<(Instant, String)>,
}

/// One Cognito user pool or OIDC issuer.
pub struct JwtProvider {
    pub auth_type: AuthType,
    pub issuer: String,
    client_id: Option<Regex>,
    iat_ttl: Option<Duration>,
    auth_ttl: Option<Duration>,
    source: JwksSource,
    keys: RwLock<KeySet>,
    /// Serializes fetches so concurrent requests do not fetch in parallel.
    fetching: tokio::sync::Mutex<()>,
    http: HttpClient,
}

fn anchored(re: &str) -> Regex {
    Regex::new(&format!("^(?:{re})$")).expect("validated at load")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn b64(field: &str, v: Option<&Value>) -> Result<Vec<u8>, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or(format!("JWK has no '{field}'"))?;
    B64.decode(s.trim_end_matches('='))
        .map_err(|_| format!("JWK '{field}' is not base64url"))
}

fn parse_jwk(jwk: &Value) -> Result<Option<(Option<String>, Key)>, String> {
    if jwk
        .get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return Ok(None);
    }
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_string);
    let alg = jwk.get("alg").and_then(Value::as_str).map(str::to_string);
    let key = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => Key::Rsa {
            n: b64("n", jwk.get("n"))?,
            e: b64("e", jwk.get("e"))?,
            alg,
        },
        Some("EC") => {
            let curve = match jwk.get("crv").and_then(Value::as_str) {
                Some("P-256") => "P-256",
                Some("P-384") => "P-384",
                _ => return Ok(None),
            };
            let mut point = vec![4u8];
            point.extend(b64("x", jwk.get("x"))?);
            point.extend(b64("y", jwk.get("y"))?);
            Key::Ec { curve, point, alg }
        }
        Some("OKP") if jwk.get("crv").and_then(Value::as_str) == Some("Ed25519") => Key::Ed25519 {
            x: b64("x", jwk.get("x"))?,
        },
        _ => return Ok(None),
    };
    Ok(Some((kid, key)))
}

/// Verify `sig` over `msg` with `key` under the token's `alg`.
fn verify(key: &Key, alg: &str, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    let fits = |key_alg: &Option<String>| key_alg.as_deref().is_none_or(|a| a == alg);
    let ok = match (key, alg) {
        (Key::Rsa { n, e, alg: ka }, "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512")
            if fits(ka) =>
        {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            signature::RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok()
        }
        (
            Key::Ec {
                curve: "P-256",
                point,
                alg: ka,
            },
            "ES256",
        ) if fits(ka) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        (
            Key::Ec {
                curve: "P-384",
                point,
                alg: ka,
            },
            "ES384",
        ) if fits(ka) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(msg, sig)
                .is_ok()
        }
        (Key::Ed25519 { x }, "EdDSA") => signature::UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(msg, sig)
            .is_ok(),
        _ => return Err(format!("algorithm {alg} does not fit the key")),
    };
    if ok {
        Ok(())
    } else {
        Err("bad signature".into())
    }
}

/// A token split and decoded, not yet verified.
pub struct Parsed {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

/// Split a compact JWS. `None` when it is not shaped like a JWT at all.
pub fn parse(token: &str) -> Option<Parsed> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&B64.decode(p).ok()?).ok()?;
    if !claims.is_object() {
        return None;
    }
    Some(Parsed {
        alg: header.get("alg")?.as_str()?.to_string(),
        kid: header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string),
        claims,
        signing_input: format!("{h}.{p}"),
        signature: B64.decode(s).ok()?,
    })
}

impl JwtProvider {
    pub fn cognito(c: &CognitoConfig, http: HttpClient) -> JwtProvider {
        let issuer = c.issuer.clone().unwrap_or_else(|| {
            format!(
                "https://cognito-idp.{}.amazonaws.com/{}",
                c.aws_region, c.user_pool_id
            )
        });
        let source = match (&c.jwks_url, &c.jwks_file) {
            (Some(u), _) => JwksSource::Url(u.clone()),
            (None, Some(f)) => JwksSource::File(f.clone()),
            (None, None) => JwksSource::Url(format!("{issuer}/.well-known/jwks.json")),
        };
        JwtProvider {
            auth_type: AuthType::AmazonCognitoUserPools,
            client_id: c.app_id_client_regex.as_deref().map(anchored),
            iat_ttl: None,
            auth_ttl: None,
            issuer,
            source,
            keys: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
            http,
        }
    }

    pub fn oidc(c: &OidcConfig, http: HttpClient) -> JwtProvider {
        let issuer = c.issuer.trim_end_matches('/').to_string();
        let source = match (&c.jwks_url, &c.jwks_file) {
            (Some(u), _) => JwksSource::Url(u.clone()),
            (None, Some(f)) => JwksSource::File(f.clone()),
            (None, None) => JwksSource::Discovery(issuer.clone()),
        };
        JwtProvider {
            auth_type: AuthType::OpenidConnect,
            // AppSync compares `iss` exactly with the configured issuer.
            issuer: c.issuer.clone(),
            client_id: c.client_id.as_deref().map(anchored),
            iat_ttl: c.iat_ttl.map(Duration::from_millis),
            auth_ttl: c.auth_ttl.map(Duration::from_millis),
            source,
            keys: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
            http,
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let resp = self
            .http
            .request(
                hyper::Method::GET,
                url,
                &[("accept", "application/json")],
                Default::default(),
                FETCH_TIMEOUT,
            )
            .await?;
        if !resp.status.is_success() {
            return Err(format!("{url} answered HTTP {}", resp.status));
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    async fn fetch_jwks(&self) -> Result<Value, String> {
        match &self.source {
            JwksSource::Url(u) => self.get_json(u).await,
            JwksSource::File(f) => {
                let text = tokio::fs::read_to_string(f)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", f.display()))
            }
            JwksSource::Discovery(issuer) => {
                let doc = self
                    .get_json(&format!("{issuer}/.well-known/openid-configuration"))
                    .await?;
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?;
                self.get_json(uri).await
            }
        }
    }

    /// Fetch the keys and replace the cache; a failure is remembered for
    /// [`FAILED_FETCH_BACKOFF`], and answered without fetching meanwhile.
    async fn reload(&self) -> Result<(), String> {
        if let Some((at, why)) = &self.keys.read().unwrap().last_failure {
            if at.elapsed() < FAILED_FETCH_BACKOFF {
                return Err(format!("{why} (retried after {FAILED_FETCH_BACKOFF:?})"));
            }
        }
        let result = self.load().await;
        if let Err(e) = &result {
            tracing::warn!(issuer = %self.issuer, error = %e, "cannot load the issuer's keys; tokens are refused");
            self.keys.write().unwrap().last_failure = Some((Instant::now(), e.clone()));
        }
        result
    }

    async fn load(&self) -> Result<(), String> {
        let jwks = self.fetch_jwks().await?;
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no 'keys' array")?;
        let mut set = KeySet::default();
        for jwk in list {
            match parse_jwk(jwk) {
                Ok(Some((Some(kid), key))) => {
                    set.keys.insert(kid, key);
                }
                Ok(Some((None, key))) => set.anonymous.push(key),
                Ok(None) => {}
                Err(e) => tracing::warn!(issuer = %self.issuer, error = %e, "skipping a bad JWK"),
            }
        }
        set.loaded = true;
        let mut keys = self.keys.write().unwrap();
        set.last_unknown_kid_refetch = keys.last_unknown_kid_refetch;
        *keys = set;
        Ok(())
    }

    fn lookup(&self, kid: Option<&str>) -> (bool, Vec<Key>) {
        let keys = self.keys.read().unwrap();
        let found = match kid {
            Some(k) => keys.keys.get(k).cloned().into_iter().collect(),
            None => keys
                .anonymous
                .iter()
                .cloned()
                .chain(keys.keys.values().cloned())
                .collect(),
        };
        (keys.loaded, found)
    }

    /// Keys for `kid`, loading or refreshing the JWKS when needed.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<Key>, String> {
        let (loaded, found) = self.lookup(kid);
        if !found.is_empty() {
            return Ok(found);
        }
        let _guard = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let (loaded_now, found) = self.lookup(kid);
        if !found.is_empty() {
            return Ok(found);
        }
        if !loaded && !loaded_now {
            self.reload().await?;
        } else {
            let allowed = {
                let mut keys = self.keys.write().unwrap();
                let ok = keys
                    .last_unknown_kid_refetch
                    .is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFETCH);
                if ok {
                    keys.last_unknown_kid_refetch = Some(Instant::now());
                }
                ok
            };
            if !allowed {
                return Err(format!(
                    "unknown key id {} (refetch rate limited)",
                    kid_text(kid)
                ));
            }
            self.reload().await?;
        }
        let (_, found) = self.lookup(kid);
        if found.is_empty() {
            return Err(format!(
                "no key with id {} in the issuer's JWKS",
                kid_text(kid)
            ));
        }
        Ok(found)
    }

    /// Verify a token that claims this provider's issuer.
    pub async fn verify(
        &self,
        token: Parsed,
        source_ip: Option<String>,
    ) -> Result<Identity, String> {
        if token.alg == "none" || token.alg.starts_with("HS") {
            return Err(format!("algorithm {} is not accepted", token.alg));
        }
        let keys = self.keys_for(token.kid.as_deref()).await?;
        let msg = token.signing_input.as_bytes();
        let mut last = String::from("no usable key");
        if !keys
            .iter()
            .any(|k| match verify(k, &token.alg, msg, &token.signature) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            })
        {
            return Err(last);
        }
        self.check_claims(&token.claims)?;
        let c = &token.claims;
        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Identity::Jwt(Box::new(JwtIdentity {
            auth_type: self.auth_type,
            sub: s("sub"),
            issuer: self.issuer.clone(),
            username: s("cognito:username")
                .or_else(|| s("username"))
                .or_else(|| s("sub")),
            groups: c.get("cognito:groups").and_then(Value::as_array).map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            }),
            claims: token.claims.clone(),
            source_ip: source_ip.into_iter().collect(),
        })))
    }

    fn check_claims(&self, c: &Value) -> Result<(), String> {
        let now = now_secs();
        let num = |k: &str| c.get(k).and_then(Value::as_i64);
        if c.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("issuer mismatch".into());
        }
        let exp = num("exp").ok_or("the token has no exp")?;
        if now > exp + LEEWAY_SECS {
            return Err("token expired".into());
        }
        if num("nbf").is_some_and(|nbf| now + LEEWAY_SECS < nbf) {
            return Err("token not yet valid (nbf)".into());
        }
        if let Some(ttl) = self.iat_ttl {
            let iat = num("iat").ok_or("the token has no iat (iat_ttl is set)")?;
            if (now - iat) * 1000 > ttl.as_millis() as i64 + LEEWAY_SECS * 1000 {
                return Err("token older than iat_ttl".into());
            }
        }
        if let Some(ttl) = self.auth_ttl {
            let at = num("auth_time").ok_or("the token has no auth_time (auth_ttl is set)")?;
            if (now - at) * 1000 > ttl.as_millis() as i64 + LEEWAY_SECS * 1000 {
                return Err("authentication older than auth_ttl".into());
            }
        }
        let mut client_ids: Vec<&str> = Vec::new();
        if self.auth_type == AuthType::AmazonCognitoUserPools {
            match c.get("token_use").and_then(Value::as_str) {
                Some("id") => client_ids.extend(c.get("aud").and_then(Value::as_str)),
                Some("access") => client_ids.extend(c.get("client_id").and_then(Value::as_str)),
                _ => return Err("token_use is neither id nor access".into()),
            }
        } else {
            match c.get("aud") {
                Some(Value::String(a)) => client_ids.push(a),
                Some(Value::Array(a)) => client_ids.extend(a.iter().filter_map(Value::as_str)),
                _ => {}
            }
            client_ids.extend(c.get("azp").and_then(Value::as_str));
            client_ids.extend(c.get("client_id").and_then(Value::as_str));
        }
        if let Some(re) = &self.client_id {
            if !client_ids.iter().any(|id| re.is_match(id)) {
                return Err("client id does not match".into());
            }
        }
        Ok(())
    }
}

/// A token's key id for people: `'abc'`, or `(none)` when the token has none.
fn kid_text(kid: Option<&str>) -> String {
    match kid {
        Some(k) => format!("'{k}'"),
        None => "(none)".into(),
    }
}
