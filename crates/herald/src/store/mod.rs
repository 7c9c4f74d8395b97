//! The store: what the control plane creates, kept so a restart loses
//! nothing that was acknowledged.
//!
//! One SQLite database, `herald.db` in the data directory (`--data DIR`,
//! `./herald-data` by default), in WAL mode with `synchronous = FULL`: a
//! change is on disk when the admin API answers. Schema migrations are
//! numbered and applied in order at start, each in its own transaction, and
//! the database records the version it reached. (PostgreSQL for clusters is
//! the next step; this module is the one place that will learn it.)
//!
//! SQLite calls block, so callers run them on the blocking pool
//! ([`Store::run`]); the connection's lock is only held inside such a call,
//! never across an `.await`.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The migrations, in order; the database's `user_version` says how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: API keys created through the admin API.
    "CREATE TABLE api_keys (
        api_id TEXT NOT NULL,
        id TEXT NOT NULL,
        description TEXT,
        expires INTEGER NOT NULL,
        deletes INTEGER NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (api_id, id)
    );",
    // 2: channel namespaces created through the admin API.
    "CREATE TABLE channel_namespaces (
        api_id TEXT NOT NULL,
        name TEXT NOT NULL,
        publish_auth_modes TEXT NOT NULL,
        subscribe_auth_modes TEXT NOT NULL,
        code_handlers TEXT,
        created INTEGER NOT NULL,
        last_modified INTEGER NOT NULL,
        PRIMARY KEY (api_id, name)
    );",
    // 3: tags by resource ARN.
    "CREATE TABLE tags (
        arn TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (arn, key)
    );",
    // 4: APIs created through the admin API.
    "CREATE TABLE apis (
        api_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner_contact TEXT,
        event_config TEXT NOT NULL,
        created REAL NOT NULL
    );",
];

/// An API as stored: AppSync's `CreateApi` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredApi {
    pub api_id: String,
    pub name: String,
    pub owner_contact: Option<String>,
    /// `eventConfig` as AWS's JSON.
    pub event_config: serde_json::Value,
    /// Epoch seconds.
    pub created: f64,
}

/// A channel namespace as stored: auth modes as AppSync's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNamespace {
    pub name: String,
    pub publish_auth_modes: Vec<String>,
    pub subscribe_auth_modes: Vec<String>,
    pub code_handlers: Option<String>,
}

/// An API key as stored (AppSync's `ApiKey`; times in epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    pub description: Option<String>,
    pub expires: i64,
    pub deletes: i64,
}

/// The database, shared by everything that changes resources.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Open (creating it and the directory if needed) `herald.db` in `dir`, or
    /// an in-memory database when `dir` is `None` (tests).
    pub fn open(dir: Option<&Path>) -> Result<Store, String> {
        let conn = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("cannot create the data directory {}: {e}", dir.display())
                })?;
                let path = dir.join("herald.db");
                let conn = Connection::open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                // Before anything that locks: several processes may open one
                // data directory at once (nodes starting together, tests).
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(|e| format!("{}: cannot enable WAL: {e}", path.display()))?;
                conn
            }
            None => Connection::open_in_memory().map_err(|e| e.to_string())?,
        };
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| e.to_string())?;
        let mut store = Store {
            conn: Arc::new(Mutex::new(conn)),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Apply the pending migrations. The version is read and the migrations
    /// applied in one write transaction (`BEGIN IMMEDIATE`), so when several
    /// processes start on one data directory, one migrates and the others
    /// wait for it and find nothing left to do.
    fn migrate(&mut self) -> Result<(), String> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| format!("cannot lock the store for its migrations: {e}"))?;
        let version = tx
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())? as usize;
        if version > MIGRATIONS.len() {
            return Err(format!(
                "the data directory's schema is version {version}, newer than this Herald's {}: use a newer Herald",
                MIGRATIONS.len()
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)
                .and_then(|()| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .map_err(|e| format!("schema migration {} failed: {e}", i + 1))?;
        }
        tx.commit()
            .map_err(|e| format!("schema migrations failed: {e}"))
    }

    /// Run `f` with the connection on the blocking pool.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().unwrap()))
            .await
            .map_err(|e| format!("the store task failed: {e}"))?
            .map_err(|e| format!("the store failed: {e}"))
    }

    /// The stored keys of an API (synchronously: used at start).
    pub fn api_keys(&self, api_id: &str) -> Result<Vec<StoredKey>, String> {
        list_keys(&self.conn.lock().unwrap(), api_id).map_err(|e| e.to_string())
    }

    pub async fn insert_key(&self, api_id: &str, key: StoredKey) -> Result<(), String> {
        let api_id = api_id.to_string();
        self.run(move |c| {
            c.execute(
                "INSERT INTO api_keys (api_id, id, description, expires, deletes, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, unixepoch())",
                params![api_id, key.id, key.description, key.expires, key.deletes],
            )
            .map(|_| ())
        })
        .await
    }

    /// Change a key; `false` when there is no such key.
    pub async fn update_key(&self, api_id: &str, key: StoredKey) -> Result<bool, String> {
        let api_id = api_id.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE api_keys SET description = ?3, expires = ?4, deletes = ?5
                 WHERE api_id = ?1 AND id = ?2",
                params![api_id, key.id, key.description, key.expires, key.deletes],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// Delete a key; `false` when there was no such key.
    pub async fn delete_key(&self, api_id: &str, id: &str) -> Result<bool, String> {
        let (api_id, id) = (api_id.to_string(), id.to_string());
        self.run(move |c| {
            c.execute(
                "DELETE FROM api_keys WHERE api_id = ?1 AND id = ?2",
                params![api_id, id],
            )
            .map(|n| n > 0)
        })
        .await
    }

    pub async fn get_key(&self, api_id: &str, id: &str) -> Result<Option<StoredKey>, String> {
        let (api_id, id) = (api_id.to_string(), id.to_string());
        self.run(move |c| {
            c.query_row(
                "SELECT id, description, expires, deletes FROM api_keys WHERE api_id = ?1 AND id = ?2",
                params![api_id, id],
                row_key,
            )
            .optional()
        })
        .await
    }
}

impl Store {
    /// The stored namespaces of an API (synchronously: used at start).
    pub fn namespaces(&self, api_id: &str) -> Result<Vec<StoredNamespace>, String> {
        let c = self.conn.lock().unwrap();
        let mut stmt = c
            .prepare(
                "SELECT name, publish_auth_modes, subscribe_auth_modes, code_handlers
                 FROM channel_namespaces WHERE api_id = ?1 ORDER BY created, name",
            )
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![api_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get(3)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for row in rows {
            let (name, publish, subscribe, code_handlers) = row.map_err(|e| e.to_string())?;
            let modes = |t: &str| serde_json::from_str::<Vec<String>>(t).map_err(|e| e.to_string());
            out.push(StoredNamespace {
                name,
                publish_auth_modes: modes(&publish)?,
                subscribe_auth_modes: modes(&subscribe)?,
                code_handlers,
            });
        }
        Ok(out)
    }

    /// Insert or replace a namespace (`created` is kept on replace).
    pub async fn put_namespace(&self, api_id: &str, ns: StoredNamespace) -> Result<(), String> {
        let api_id = api_id.to_string();
        let publish = serde_json::to_string(&ns.publish_auth_modes).unwrap();
        let subscribe = serde_json::to_string(&ns.subscribe_auth_modes).unwrap();
        self.run(move |c| {
            c.execute(
                "INSERT INTO channel_namespaces
                   (api_id, name, publish_auth_modes, subscribe_auth_modes, code_handlers, created, last_modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, unixepoch(), unixepoch())
                 ON CONFLICT (api_id, name) DO UPDATE SET
                   publish_auth_modes = excluded.publish_auth_modes,
                   subscribe_auth_modes = excluded.subscribe_auth_modes,
                   code_handlers = excluded.code_handlers,
                   last_modified = unixepoch()",
                params![api_id, ns.name, publish, subscribe, ns.code_handlers],
            )
            .map(|_| ())
        })
        .await
    }

    /// Delete a namespace; `false` when there was none.
    pub async fn delete_namespace(&self, api_id: &str, name: &str) -> Result<bool, String> {
        let (api_id, name) = (api_id.to_string(), name.to_string());
        self.run(move |c| {
            c.execute(
                "DELETE FROM channel_namespaces WHERE api_id = ?1 AND name = ?2",
                params![api_id, name],
            )
            .map(|n| n > 0)
        })
        .await
    }
}

impl Store {
    /// A resource's tags.
    pub async fn tags(
        &self,
        arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        let arn = arn.to_string();
        self.run(move |c| {
            let mut stmt = c.prepare("SELECT key, value FROM tags WHERE arn = ?1")?;
            let rows = stmt.query_map(params![arn], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// Add or replace tags; `limit` is checked against the result inside the
    /// same transaction (`Ok(false)`: over the limit, nothing changed).
    pub async fn put_tags(
        &self,
        arn: &str,
        tags: Vec<(String, String)>,
        limit: usize,
    ) -> Result<bool, String> {
        let arn = arn.to_string();
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            for (k, v) in &tags {
                tx.execute(
                    "INSERT INTO tags (arn, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value",
                    params![arn, k, v],
                )?;
            }
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM tags WHERE arn = ?1",
                params![arn],
                |r| r.get(0),
            )?;
            if n as usize > limit {
                return Ok(false); // dropped: rolled back
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// Remove tags by key (absent keys are no error); with `None`, all of them.
    pub async fn remove_tags(&self, arn: &str, keys: Option<Vec<String>>) -> Result<(), String> {
        let arn = arn.to_string();
        self.run(move |c| {
            match keys {
                None => {
                    c.execute("DELETE FROM tags WHERE arn = ?1", params![arn])?;
                }
                Some(keys) => {
                    for k in keys {
                        c.execute(
                            "DELETE FROM tags WHERE arn = ?1 AND key = ?2",
                            params![arn, k],
                        )?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

impl Store {
    /// The created APIs, oldest first (synchronously: used at start).
    pub fn apis(&self) -> Result<Vec<StoredApi>, String> {
        let c = self.conn.lock().unwrap();
        let mut stmt = c
            .prepare("SELECT api_id, name, owner_contact, event_config, created FROM apis ORDER BY created, api_id")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for row in rows {
            let (api_id, name, owner_contact, event_config, created) =
                row.map_err(|e| e.to_string())?;
            out.push(StoredApi {
                api_id,
                name,
                owner_contact,
                event_config: serde_json::from_str(&event_config).map_err(|e| e.to_string())?,
                created,
            });
        }
        Ok(out)
    }

    pub async fn insert_api(&self, api: StoredApi) -> Result<(), String> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO apis (api_id, name, owner_contact, event_config, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![api.api_id, api.name, api.owner_contact, api.event_config.to_string(), api.created],
            )
            .map(|_| ())
        })
        .await
    }

    /// Delete an API and everything it owns (keys, namespaces, tags), in one
    /// transaction; `false` when there was no such API.
    pub async fn delete_api(&self, api_id: &str, arn: &str) -> Result<bool, String> {
        let (api_id, arn) = (api_id.to_string(), arn.to_string());
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            let n = tx.execute("DELETE FROM apis WHERE api_id = ?1", params![api_id])?;
            tx.execute("DELETE FROM api_keys WHERE api_id = ?1", params![api_id])?;
            tx.execute(
                "DELETE FROM channel_namespaces WHERE api_id = ?1",
                params![api_id],
            )?;
            tx.execute(
                "DELETE FROM tags WHERE arn = ?1 OR arn LIKE ?2",
                params![arn, format!("{arn}/%")],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }
}

fn row_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(StoredKey {
        id: r.get(0)?,
        description: r.get(1)?,
        expires: r.get(2)?,
        deletes: r.get(3)?,
    })
}

fn list_keys(c: &Connection, api_id: &str) -> rusqlite::Result<Vec<StoredKey>> {
    let mut stmt = c.prepare(
        "SELECT id, description, expires, deletes FROM api_keys WHERE api_id = ?1 ORDER BY created, id",
    )?;
    let rows = stmt.query_map(params![api_id], row_key)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_survive_a_reopen_and_migrations_run_once() {
        let dir = std::env::temp_dir().join(format!("herald-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = |id: &str| StoredKey {
            id: id.into(),
            description: Some("d".into()),
            expires: 2_000_000_000,
            deletes: 2_005_184_000,
        };
        {
            let s = Store::open(Some(&dir)).unwrap();
            s.insert_key("api", key("k1")).await.unwrap();
            s.insert_key("api", key("k2")).await.unwrap();
            s.insert_key("other", key("k3")).await.unwrap();
            assert!(
                s.insert_key("api", key("k1")).await.is_err(),
                "ids are unique per API"
            );
            assert!(s.delete_key("api", "k2").await.unwrap());
            assert!(!s.delete_key("api", "k2").await.unwrap());
        }
        let s = Store::open(Some(&dir)).unwrap();
        let keys = s.api_keys("api").unwrap();
        assert_eq!(keys, vec![key("k1")]);
        let mut changed = key("k1");
        changed.description = None;
        assert!(s.update_key("api", changed.clone()).await.unwrap());
        assert_eq!(s.get_key("api", "k1").await.unwrap(), Some(changed));
        assert_eq!(s.get_key("api", "zz").await.unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Processes (here threads) opening one new data directory at once: one
    /// migrates, the others wait and find the schema in place.
    #[test]
    fn concurrent_opens_migrate_once() {
        let dir = std::env::temp_dir().join(format!("herald-store-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opened: Vec<Result<Store, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Store::open(Some(&dir))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &opened {
            assert!(o.is_ok(), "{:?}", o.as_ref().err());
        }
        assert_eq!(opened[0].as_ref().unwrap().api_keys("x").unwrap(), vec![]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
