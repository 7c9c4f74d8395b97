//! `[store]`: where the control plane keeps what it creates. SQLite in a data
//! directory for one node (the default), PostgreSQL for a cluster, where every
//! node reads and writes one database and follows the others' changes.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "herald-data";

/// How often a PostgreSQL node re-reads everything, so a missed notification
/// cannot leave it stale for longer.
const DEFAULT_RECONCILE_SECS: u64 = 30;

/// `[store]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// `sqlite` (default) or `postgres`.
    pub backend: Option<String>,
    /// SQLite: the data directory (`herald.db` inside); default `./herald-data`.
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL: the connection URL (`postgres://user:password@host:5432/db`).
    pub url: Option<String>,
    /// PostgreSQL: seconds between full re-reads of the store (default 30).
    pub reconcile_secs: Option<u64>,
}

/// Which store, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// In memory: gone when the process ends (tests).
    Memory,
    /// `herald.db` in this directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by the nodes of a cluster.
    Postgres { url: String },
}

/// The store's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Full re-read period (PostgreSQL).
    pub reconcile: Duration,
}

impl StoreConfig {
    /// In memory, for tests.
    pub fn memory() -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::Memory,
            reconcile: Duration::from_secs(DEFAULT_RECONCILE_SECS),
        }
    }

    /// Resolve `[store]` with the command line's `--data` and `--store-url`.
    pub fn resolve(
        file: &StoreFile,
        data_dir: Option<PathBuf>,
        url: Option<String>,
    ) -> Result<StoreConfig, String> {
        let backend = match (file.backend.as_deref(), &url) {
            (_, Some(_)) | (Some("postgres"), None) => "postgres",
            (None | Some("sqlite"), None) => "sqlite",
            (Some(other), None) => {
                return Err(format!(
                    "[store] backend '{other}' is not supported: use \"sqlite\" or \"postgres\""
                ))
            }
        };
        let reconcile = match file.reconcile_secs {
            Some(0) => return Err("[store] reconcile_secs must be at least 1".into()),
            Some(s) => Duration::from_secs(s),
            None => Duration::from_secs(DEFAULT_RECONCILE_SECS),
        };
        let backend = if backend == "postgres" {
            if data_dir.is_some() || file.data_dir.is_some() {
                return Err(
                    "the PostgreSQL store has no data directory: drop --data / [store] data_dir"
                        .into(),
                );
            }
            let url = url.or(file.url.clone()).ok_or(
                "[store] backend = \"postgres\" needs url = \"postgres://user@host:5432/db\" (or --store-url)",
            )?;
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return Err(format!(
                    "the store URL must start with postgres:// (got '{}')",
                    redact_url(&url)
                ));
            }
            StoreBackend::Postgres { url }
        } else {
            if file.url.is_some() {
                return Err("[store] url needs backend = \"postgres\"".into());
            }
            StoreBackend::Sqlite(
                data_dir
                    .or(file.data_dir.clone())
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            )
        };
        Ok(StoreConfig { backend, reconcile })
    }
}

/// A connection URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_by_default_postgres_by_url() {
        let file = StoreFile::default();
        let c = StoreConfig::resolve(&file, None, None).unwrap();
        assert_eq!(c.backend, StoreBackend::Sqlite(DEFAULT_DATA_DIR.into()));
        let url = "postgres://u:pw@db:5432/herald".to_string();
        let c = StoreConfig::resolve(&file, None, Some(url.clone())).unwrap();
        assert_eq!(c.backend, StoreBackend::Postgres { url });
        let pg = StoreFile {
            backend: Some("postgres".into()),
            ..Default::default()
        };
        let e = StoreConfig::resolve(&pg, None, None).unwrap_err();
        assert!(e.contains("needs url"), "{e}");
        let e =
            StoreConfig::resolve(&pg, Some("d".into()), Some("postgres://x/y".into())).unwrap_err();
        assert!(e.contains("no data directory"), "{e}");
        let e = StoreConfig::resolve(&file, None, Some("mysql://x/y".into())).unwrap_err();
        assert!(e.contains("postgres://"), "{e}");
        let odd = StoreFile {
            backend: Some("etcd".into()),
            ..Default::default()
        };
        assert!(StoreConfig::resolve(&odd, None, None).is_err());
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact_url("postgres://herald:s3cret@db:5432/herald"),
            "postgres://herald:***@db:5432/herald"
        );
        for plain in ["postgres://db:5432/herald", "postgres://herald@db/herald"] {
            assert_eq!(redact_url(plain), plain);
        }
    }
}
