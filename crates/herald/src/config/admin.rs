//! `[admin]`: the admin listener, where Herald serves AWS's management APIs
//! (the AppSync control plane today), signed with SigV4 by credentials that
//! hold the `admin` grant.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[admin]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// `HOST:PORT`; default: the public listener's address with the next port
    /// (`127.0.0.1:8081` next to the default `127.0.0.1:8080`; a free port
    /// when the public one is 0).
    pub listen: Option<String>,
    /// `false` turns the admin listener off.
    pub enabled: Option<bool>,
}

/// Where the admin listener goes: `None` when it is off.
pub fn admin_addr(
    file: &AdminFile,
    flag: Option<SocketAddr>,
    public: SocketAddr,
) -> Result<Option<SocketAddr>, String> {
    if file.enabled == Some(false) && flag.is_none() {
        return Ok(None);
    }
    if let Some(addr) = flag {
        return Ok(Some(addr));
    }
    if let Some(text) = &file.listen {
        return super::resolve_listen(text)
            .map(Some)
            .map_err(|e| format!("[admin] listen: {e}"));
    }
    let port = match public.port() {
        0 => 0,
        p => p
            .checked_add(1)
            .ok_or("the public port is 65535: set [admin] listen")?,
    };
    Ok(Some(SocketAddr::new(public.ip(), port)))
}

/// Credentials for the development mode: an access key id (`AKIA` and 16
/// letters and digits, AWS's shape) and a 40-character secret.
pub fn generate_credentials() -> (String, String) {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (
        format!("AKIA{}", super::random_text(UPPER, 16)),
        super::random_text(SECRET, 40),
    )
}
