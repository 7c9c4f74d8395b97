//! Auth evidence as a case-insensitive header map, from wherever a client puts it:
//! the `header-<base64url JSON>` subprotocol, plain upgrade headers (Swift SDK),
//! a message's `authorization` object, or HTTP request headers.

use base64::Engine as _;
use serde_json::{Map, Value};

/// Headers never kept: they carry nothing an auth mode needs.
const SKIPPED_HEADERS: &[&str] = &["cookie", "sec-websocket-key", "sec-websocket-protocol"];

/// Headers with lowercase names, in the order first seen.
///
/// Every WebSocket connection keeps its connect-time headers for as long as it
/// lives (operations without their own `authorization` are checked against
/// them), so they are packed: all names and values back to back in one string,
/// plus one offset pair per header. Two allocations per connection instead of
/// two per header; a handful of headers makes the linear lookup the fast one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthHeaders {
    text: String,
    /// Per header: where its name ends and where its value ends in `text`; the
    /// name starts where the previous value ended.
    ends: Vec<(u32, u32)>,
}

impl AuthHeaders {
    /// The value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// All headers, lowercase names.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (n, v) = (name_end as usize, value_end as usize);
            let entry = (&self.text[start..n], &self.text[n..v]);
            start = v;
            entry
        })
    }

    /// Add a header unless one of that name is there already.
    pub fn insert_if_absent(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        if self.get(&name).is_some() {
            return;
        }
        // Headers reach us from bounded HTTP heads and frames; a u32 offset
        // cannot overflow before the frame-size limit refuses them.
        self.text.push_str(&name);
        let name_end = self.text.len() as u32;
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len() as u32));
    }

    /// Give back spare capacity: for a copy that is kept.
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// From a JSON object (subprotocol or message `authorization`). Non-string
    /// values are ignored.
    pub fn from_json(obj: &Map<String, Value>) -> AuthHeaders {
        let mut h = AuthHeaders::default();
        for (k, v) in obj {
            if let Value::String(s) = v {
                h.insert_if_absent(k, s);
            }
        }
        h
    }

    /// From HTTP request headers (all of them but cookies: a SigV4 signature may
    /// cover any header).
    pub fn from_http(headers: &hyper::HeaderMap) -> AuthHeaders {
        let mut h = AuthHeaders::default();
        h.merge_http(headers);
        h
    }

    /// Add HTTP headers that are not already present.
    pub fn merge_http(&mut self, headers: &hyper::HeaderMap) {
        for (name, value) in headers {
            if SKIPPED_HEADERS.contains(&name.as_str()) {
                continue;
            }
            if let Ok(v) = value.to_str() {
                self.insert_if_absent(name.as_str(), v);
            }
        }
    }

    /// Decode the base64url JSON of a `header-...` subprotocol (or a `?header=`
    /// query parameter). Padding and the standard alphabet are tolerated.
    pub fn from_base64_json(encoded: &str) -> Result<AuthHeaders, String> {
        let cleaned: String = encoded
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cleaned.as_bytes())
            .map_err(|e| format!("auth header is not base64url: {e}"))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(obj)) => Ok(AuthHeaders::from_json(&obj)),
            Ok(_) => Err("auth header is not a JSON object".into()),
            Err(e) => Err(format!("auth header is not JSON: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_first_wins() {
        let obj = serde_json::json!({"X-Api-Key": "k1", "host": "h", "n": 1});
        let mut h = AuthHeaders::from_json(obj.as_object().unwrap());
        assert_eq!(h.get("x-api-key"), Some("k1"));
        h.insert_if_absent("X-API-KEY", "k2");
        assert_eq!(h.get("x-api-key"), Some("k1"));
        assert_eq!(h.get("n"), None);
        h.insert_if_absent("Host", "example.com");
        h.shrink_to_fit();
        let all: Vec<_> = h.iter().collect();
        assert_eq!(all, [("x-api-key", "k1"), ("host", "h")]);
        let mut h2 = AuthHeaders::default();
        h2.insert_if_absent("a", "");
        h2.insert_if_absent("", "v");
        h2.insert_if_absent("b", "2");
        assert_eq!(
            h2.iter().collect::<Vec<_>>(),
            [("a", ""), ("", "v"), ("b", "2")]
        );
        assert_eq!(h2.get("b"), Some("2"));
    }

    #[test]
    fn base64url_subprotocol() {
        let json = r#"{"host":"127.0.0.1:8080","x-api-key":"da2-abc???>>>"}"#;
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let h = AuthHeaders::from_base64_json(&enc).unwrap();
        assert_eq!(h.get("x-api-key"), Some("da2-abc???>>>"));
        let padded = base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(AuthHeaders::from_base64_json(&padded).unwrap(), h);
        assert!(AuthHeaders::from_base64_json("!!!").is_err());
    }
}
