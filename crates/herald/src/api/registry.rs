//! The Event APIs one server runs: the configuration file's (the default,
//! also at `/event`) and those created through the admin API, each with its
//! own namespaces, keys, auth, handlers and hub, so nothing crosses between
//! them. Looked up per request by id: by path (`/apis/<apiId>/...`), or by
//! host (`<apiId>.<base_domain>`) when a base domain is configured.

use super::EventApi;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub struct Registry {
    default: Arc<EventApi>,
    /// Created APIs by id. Read per request, written on create and delete;
    /// never held across an `.await`.
    created: RwLock<HashMap<String, Arc<EventApi>>>,
}

impl Registry {
    pub fn new(default: Arc<EventApi>) -> Registry {
        Registry {
            default,
            created: RwLock::new(HashMap::new()),
        }
    }

    /// The configuration file's API.
    pub fn default_api(&self) -> &Arc<EventApi> {
        &self.default
    }

    /// The API with this id.
    pub fn get(&self, id: &str) -> Option<Arc<EventApi>> {
        if id == self.default.config.api_id {
            return Some(self.default.clone());
        }
        self.created.read().unwrap().get(id).cloned()
    }

    /// Every API: the default first, then the created ones by creation time.
    pub fn all(&self) -> Vec<Arc<EventApi>> {
        let mut created: Vec<Arc<EventApi>> =
            self.created.read().unwrap().values().cloned().collect();
        created.sort_by(|a, b| {
            a.created
                .partial_cmp(&b.created)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.config.api_id.cmp(&b.config.api_id))
        });
        std::iter::once(self.default.clone())
            .chain(created)
            .collect()
    }

    pub fn insert(&self, api: Arc<EventApi>) {
        self.created
            .write()
            .unwrap()
            .insert(api.config.api_id.clone(), api);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<EventApi>> {
        self.created.write().unwrap().remove(id)
    }
}

/// The API id a `Host` header names under `base_domain` (`<apiId>.<domain>`;
/// ports are ignored on both), if it does.
pub fn api_id_from_host<'a>(host: &'a str, base_domain: &str) -> Option<&'a str> {
    let strip_port = |h: &'a str| -> &'a str {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        }
    };
    let host = strip_port(host).trim_end_matches('.');
    let domain = match base_domain.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => base_domain,
    };
    let id = host.get(..host.len().checked_sub(domain.len() + 1)?)?;
    let rest = &host[id.len()..];
    (rest.starts_with('.')
        && rest[1..].eq_ignore_ascii_case(domain)
        && !id.is_empty()
        && !id.contains('.'))
    .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::api_id_from_host;

    #[test]
    fn hosts_name_apis_under_the_base_domain() {
        let d = "events.example.com";
        assert_eq!(
            api_id_from_host("abc123.events.example.com", d),
            Some("abc123")
        );
        assert_eq!(
            api_id_from_host("abc123.Events.Example.com:8443", d),
            Some("abc123")
        );
        assert_eq!(
            api_id_from_host("abc123.events.example.com", "events.example.com:8443"),
            Some("abc123")
        );
        assert_eq!(api_id_from_host("events.example.com", d), None);
        assert_eq!(api_id_from_host("a.b.events.example.com", d), None);
        assert_eq!(api_id_from_host("abc123.other.com", d), None);
        assert_eq!(api_id_from_host("abc123xevents.example.com", d), None);
        assert_eq!(api_id_from_host("127.0.0.1:8080", d), None);
    }
}
