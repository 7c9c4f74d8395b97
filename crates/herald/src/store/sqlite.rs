//! The SQLite store: one node's `herald.db` in the data directory (`--data
//! DIR`, `./herald-data` by default), in WAL mode with `synchronous = FULL`:
//! a change is on disk when the admin API answers. Schema migrations are
//! numbered and applied in order at start, in one write transaction, and the
//! database records the version it reached (`user_version`).
//!
//! SQLite calls block, so they run on the blocking pool ([`Sqlite::run`]);
//! the connection's lock is only held inside such a call, never across an
//! `.await`.

mod bus;
mod esm;
mod workflow;

use super::{StoredApi, StoredFunction, StoredKey, StoredNamespace};
use rusqlite::{params, Connection};
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
    // 5: functions created through the Lambda API: the spec as JSON, the
    // deployment package as uploaded.
    "CREATE TABLE functions (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        code BLOB NOT NULL
    );",
    // 6: AppSync data sources (AWS's JSON shape), and namespaces' handlerConfigs.
    "CREATE TABLE data_sources (
        api_id TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (api_id, name)
    );
    ALTER TABLE channel_namespaces ADD COLUMN handler_configs TEXT;",
    // 7: event source mappings created through the Lambda API (spec as JSON).
    "CREATE TABLE event_source_mappings (
        uuid TEXT PRIMARY KEY,
        spec TEXT NOT NULL
    );",
    // 8: stream checkpoints (Kinesis) and which node runs a mapping.
    "CREATE TABLE esm_checkpoints (
        uuid TEXT NOT NULL,
        shard TEXT NOT NULL,
        sequence TEXT NOT NULL,
        PRIMARY KEY (uuid, shard)
    );
    CREATE TABLE esm_leases (
        uuid TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires REAL NOT NULL
    );",
    // 9: event buses and their rules (each rule's spec, targets included,
    // as JSON: the bus module's `BusSpec` and `RuleSpec`).
    "CREATE TABLE event_buses (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL
    );
    CREATE TABLE event_rules (
        bus TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (bus, name)
    );",
    // 10: the event bus's other resources (connections, API destinations,
    // archives, replays), by kind, each spec as JSON.
    "CREATE TABLE bus_resources (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    );",
    // 11: standard workflow executions, each journal record as JSON.
    "CREATE TABLE workflow_executions (
        arn TEXT PRIMARY KEY,
        machine TEXT NOT NULL,
        status TEXT NOT NULL,
        record TEXT NOT NULL
    );",
    // 12: their history events, appended as they happen.
    "CREATE TABLE workflow_history (
        arn TEXT NOT NULL,
        id INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (arn, id)
    );",
];

/// The database.
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
}

impl Sqlite {
    /// Open (creating it and the directory if needed) `herald.db` in `dir`, or
    /// an in-memory database when `dir` is `None` (tests).
    pub fn open(dir: Option<&Path>) -> Result<Sqlite, String> {
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
                // Switching to WAL takes an exclusive lock, and SQLite does
                // not always wait for it (no busy handler on this path): a
                // process opening the directory while another migrates gets
                // "database is locked" at once. Try again for up to 10 s.
                let mut tries = 0;
                loop {
                    match conn.pragma_update(None, "journal_mode", "WAL") {
                        Ok(()) => break,
                        Err(e) if tries < 200 && e.to_string().contains("locked") => {
                            tries += 1;
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                        Err(e) => {
                            return Err(format!("{}: cannot enable WAL: {e}", path.display()))
                        }
                    }
                }
                conn
            }
            None => Connection::open_in_memory().map_err(|e| e.to_string())?,
        };
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| e.to_string())?;
        let mut store = Sqlite {
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
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().unwrap()))
            .await
            .map_err(|e| format!("the store task failed: {e}"))?
            .map_err(|e| format!("the store failed: {e}"))
    }

    /// The stored keys of an API.
    pub async fn api_keys(&self, api_id: &str) -> Result<Vec<StoredKey>, String> {
        let api_id = api_id.to_string();
        self.run(move |c| list_keys(c, &api_id)).await
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
}

impl Sqlite {
    /// The stored namespaces of an API.
    pub async fn namespaces(&self, api_id: &str) -> Result<Vec<StoredNamespace>, String> {
        let api_id = api_id.to_string();
        let rows = self
            .run(move |c| {
                let mut stmt = c.prepare(
                    "SELECT name, publish_auth_modes, subscribe_auth_modes, code_handlers, handler_configs
                     FROM channel_namespaces WHERE api_id = ?1 ORDER BY created, name",
                )?;
                let rows = stmt.query_map(params![api_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<NamespaceRow>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(name, publish, subscribe, code, configs)| {
                StoredNamespace::from_columns(name, &publish, &subscribe, code, configs)
            })
            .collect()
    }

    /// Insert or replace a namespace (`created` is kept on replace).
    pub async fn put_namespace(&self, api_id: &str, ns: StoredNamespace) -> Result<(), String> {
        let api_id = api_id.to_string();
        let (publish, subscribe) = ns.mode_columns();
        self.run(move |c| {
            c.execute(
                "INSERT INTO channel_namespaces
                   (api_id, name, publish_auth_modes, subscribe_auth_modes, code_handlers, handler_configs, created, last_modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch(), unixepoch())
                 ON CONFLICT (api_id, name) DO UPDATE SET
                   publish_auth_modes = excluded.publish_auth_modes,
                   subscribe_auth_modes = excluded.subscribe_auth_modes,
                   code_handlers = excluded.code_handlers,
                   handler_configs = excluded.handler_configs,
                   last_modified = unixepoch()",
                params![api_id, ns.name, publish, subscribe, ns.code_handlers, ns.handler_configs],
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

impl Sqlite {
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

impl Sqlite {
    /// The created APIs, oldest first.
    pub async fn apis(&self) -> Result<Vec<StoredApi>, String> {
        let rows = self
            .run(|c| {
                let mut stmt = c.prepare(
                    "SELECT api_id, name, owner_contact, event_config, created
                     FROM apis ORDER BY created, api_id",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<(String, String, Option<String>, String, f64)>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(api_id, name, owner_contact, event_config, created)| {
                StoredApi::from_columns(api_id, name, owner_contact, &event_config, created)
            })
            .collect()
    }

    /// Change an API's name, contact and event configuration; `false` when
    /// there is no such API.
    pub async fn update_api(&self, api: StoredApi) -> Result<bool, String> {
        self.run(move |c| {
            c.execute(
                "UPDATE apis SET name = ?2, owner_contact = ?3, event_config = ?4 WHERE api_id = ?1",
                params![api.api_id, api.name, api.owner_contact, api.event_config.to_string()],
            )
            .map(|n| n > 0)
        })
        .await
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
                "DELETE FROM data_sources WHERE api_id = ?1",
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

/// name, publish modes, subscribe modes, code, handler configs.
type NamespaceRow = (String, String, String, Option<String>, Option<String>);

impl Sqlite {
    pub async fn data_sources(&self, api_id: &str) -> Result<Vec<(String, String)>, String> {
        let api_id = api_id.to_string();
        self.run(move |c| {
            let mut stmt =
                c.prepare("SELECT name, spec FROM data_sources WHERE api_id = ?1 ORDER BY name")?;
            let rows = stmt.query_map(params![api_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    pub async fn put_data_source(
        &self,
        api_id: &str,
        name: &str,
        spec: String,
    ) -> Result<(), String> {
        let (api_id, name) = (api_id.to_string(), name.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT INTO data_sources (api_id, name, spec) VALUES (?1, ?2, ?3)
                 ON CONFLICT (api_id, name) DO UPDATE SET spec = excluded.spec",
                params![api_id, name, spec],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn delete_data_source(&self, api_id: &str, name: &str) -> Result<bool, String> {
        let (api_id, name) = (api_id.to_string(), name.to_string());
        self.run(move |c| {
            c.execute(
                "DELETE FROM data_sources WHERE api_id = ?1 AND name = ?2",
                params![api_id, name],
            )
            .map(|n| n > 0)
        })
        .await
    }
}

impl Sqlite {
    pub async fn functions(&self) -> Result<Vec<StoredFunction>, String> {
        self.run(|c| {
            let mut stmt = c.prepare("SELECT name, spec, code FROM functions ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredFunction {
                    name: r.get(0)?,
                    spec: r.get(1)?,
                    code: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn put_function(&self, f: StoredFunction) -> Result<(), String> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO functions (name, spec, code) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, code = excluded.code",
                params![f.name, f.spec, f.code],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn delete_function(&self, name: &str) -> Result<bool, String> {
        let name = name.to_string();
        self.run(move |c| {
            c.execute("DELETE FROM functions WHERE name = ?1", params![name])
                .map(|n| n > 0)
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
            let s = Sqlite::open(Some(&dir)).unwrap();
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
        let s = Sqlite::open(Some(&dir)).unwrap();
        let keys = s.api_keys("api").await.unwrap();
        assert_eq!(keys, vec![key("k1")]);
        let mut changed = key("k1");
        changed.description = None;
        assert!(s.update_key("api", changed.clone()).await.unwrap());
        assert_eq!(s.api_keys("api").await.unwrap(), vec![changed]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Processes (here threads) opening one new data directory at once: one
    /// migrates, the others wait and find the schema in place.
    #[test]
    fn concurrent_opens_migrate_once() {
        let dir = std::env::temp_dir().join(format!("herald-store-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opened: Vec<Result<Sqlite, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Sqlite::open(Some(&dir))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &opened {
            assert!(o.is_ok(), "{:?}", o.as_ref().err());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let keys = runtime.block_on(opened[0].as_ref().unwrap().api_keys("x"));
        assert_eq!(keys.unwrap(), vec![]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
