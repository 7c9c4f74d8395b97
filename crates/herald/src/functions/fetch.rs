//! The opt-in `fetch` of JavaScript functions. A function has no network
//! access unless its `Environment.Variables.HERALD_FETCH_ALLOW` lists URL
//! prefixes (comma-separated, such as `https://api.example.com/`); then
//! `fetch(url, {method, headers, body})` reaches URLs under them, through
//! Herald's outbound client (keep-alive, the system's web roots), and
//! nothing else. The call blocks the function's worker until the answer or
//! the function's timeout; bodies are text (UTF-8, lossy).

use crate::http_client::HttpClient;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The variable that turns `fetch` on.
pub const ALLOW_VARIABLE: &str = "HERALD_FETCH_ALLOW";

/// What a function's `fetch` may reach, and how.
#[derive(Clone)]
pub struct FetchHost {
    pub allow: Vec<String>,
    pub http: HttpClient,
    pub handle: tokio::runtime::Handle,
    pub timeout: Duration,
}

impl std::fmt::Debug for FetchHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchHost")
            .field("allow", &self.allow)
            .finish()
    }
}

/// The allowed prefixes of `HERALD_FETCH_ALLOW`, if set.
pub fn allowed(env: &BTreeMap<String, String>) -> Option<Vec<String>> {
    let list: Vec<String> = env
        .get(ALLOW_VARIABLE)?
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Whether `url` is under `prefix`: a prefix without a trailing `/` ends
/// at a path boundary (`https://api.example.com` does not admit
/// `https://api.example.com.evil.net/`).
fn under(url: &str, prefix: &str) -> bool {
    match url.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#']),
    }
}

impl FetchHost {
    /// One request, answered as JSON text for the prelude:
    /// `{status, headers, body}` or `{error}`.
    pub fn fetch(&self, url: &str, method: &str, headers: &str, body: String) -> String {
        if !self.allow.iter().any(|p| under(url, p)) {
            return json!({"error": format!("{url} is not under {ALLOW_VARIABLE}")}).to_string();
        }
        let Ok(method) = hyper::Method::from_bytes(method.as_bytes()) else {
            return json!({"error": format!("{method} is not an HTTP method")}).to_string();
        };
        let headers: BTreeMap<String, String> = serde_json::from_str(headers).unwrap_or_default();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answer = self.handle.block_on(self.http.request(
            method,
            url,
            &pairs,
            Bytes::from(body),
            self.timeout,
        ));
        match answer {
            Ok(r) => {
                let headers: BTreeMap<String, Value> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                        )
                    })
                    .collect();
                json!({"status": r.status.as_u16(), "headers": headers,
                       "body": String::from_utf8_lossy(&r.body)})
                .to_string()
            }
            Err(e) => json!({"error": e}).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::under;

    #[test]
    fn prefixes_end_at_path_boundaries() {
        assert!(under(
            "https://api.example.com/v1",
            "https://api.example.com"
        ));
        assert!(under("https://api.example.com", "https://api.example.com"));
        assert!(under(
            "https://api.example.com/v1/x",
            "https://api.example.com/v1/"
        ));
        assert!(!under(
            "https://api.example.com.evil.net/",
            "https://api.example.com"
        ));
        assert!(!under(
            "https://api.example.com:8443/",
            "https://api.example.com"
        ));
        assert!(!under("http://other/", "https://api.example.com/"));
    }
}
