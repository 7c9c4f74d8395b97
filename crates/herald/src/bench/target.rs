//! Where the load goes: endpoints (loopback unless allowed), source addresses,
//! and the clock every event carries.

use super::Common;
use crate::http_client::Url;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[derive(Clone)]
pub struct Endpoint {
    pub url: Url,
    pub addr: SocketAddr,
}

pub fn endpoints(common: &Common) -> Result<Vec<Endpoint>, String> {
    common
        .endpoints
        .iter()
        .map(|e| {
            let url = Url::parse(e)?;
            if url.tls {
                return Err(
                    "herald bench speaks plain HTTP/WebSocket; put TLS aside for benchmarks".into(),
                );
            }
            let addr = (url.host.as_str(), url.port)
                .to_socket_addrs()
                .map_err(|e| format!("{}: {e}", url.authority))?
                .next()
                .ok_or(format!("{}: no address", url.authority))?;
            if !addr.ip().is_loopback() && !common.allow_remote {
                return Err(format!(
                    "{} is not on loopback; pass --allow-remote to load it",
                    url.authority
                ));
            }
            Ok(Endpoint { url, addr })
        })
        .collect()
}

pub fn source_ip(common: &Common, i: usize, target: SocketAddr) -> Option<IpAddr> {
    (target.ip().is_loopback() && target.is_ipv4() && common.source_ips > 1).then(|| {
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % common.source_ips as usize) as u8,
        ))
    })
}
