//! TLS with rustls (ring): certificate files, or a generated self-signed
//! certificate for local development.
//!
//! Amplify turns an `http://` endpoint into a `wss://` real-time URL, so a local
//! Amplify app needs TLS; `--tls-self-signed DIR` makes that one flag.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key found", path.display()))
}

/// Build a server config from PEM files.
pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key do not fit: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Use `DIR/cert.pem` and `DIR/key.pem`, generating them first if either is
/// missing: a self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
/// Reusing an existing pair keeps clients that already trust it working across
/// restarts. Returns the config and the certificate's path.
pub fn self_signed(dir: &Path) -> Result<(Arc<ServerConfig>, PathBuf), String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !(cert_path.exists() && key_path.exists()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
        std::fs::write(&cert_path, generated.cert.pem())
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
        write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
        tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    }
    Ok((from_files(&cert_path, &key_path)?, cert_path))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
