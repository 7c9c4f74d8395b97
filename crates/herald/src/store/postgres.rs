//! The PostgreSQL store: one database shared by the nodes of a cluster
//! (`[store] backend = "postgres"`, `url = ...`, or `--store-url`).
//!
//! Every write is one statement (so one transaction, without holding a
//! connection for a multi-statement transaction), committed before the admin
//! API answers. Triggers on the tables send `NOTIFY herald_changes` with the
//! API's id in the writing transaction, so a notification goes out exactly
//! when a change commits, whoever made it (a node, or an operator's SQL);
//! [`Postgres::follow`] listens on a connection of its own.
//!
//! Queries share one pipelined connection, re-opened on the next call after
//! it breaks (a restarted database costs the calls in flight, which get a
//! store error, and nothing else). Schema migrations run at start under an
//! advisory lock, so nodes starting together migrate once.

mod bus;
mod esm;
mod workflow;

use super::{Changes, StoredApi, StoredFunction, StoredKey, StoredNamespace};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

/// The notification channel.
const CHANNEL: &str = "herald_changes";

/// Migrations, in order; `herald_schema.version` says how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the resources of the control plane, and the notifications.
    "CREATE TABLE apis (
        api_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner_contact TEXT,
        event_config TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE api_keys (
        api_id TEXT NOT NULL,
        id TEXT NOT NULL,
        description TEXT,
        expires BIGINT NOT NULL,
        deletes BIGINT NOT NULL,
        created BIGINT NOT NULL,
        PRIMARY KEY (api_id, id)
    );
    CREATE TABLE channel_namespaces (
        api_id TEXT NOT NULL,
        name TEXT NOT NULL,
        publish_auth_modes TEXT NOT NULL,
        subscribe_auth_modes TEXT NOT NULL,
        code_handlers TEXT,
        created BIGINT NOT NULL,
        last_modified BIGINT NOT NULL,
        PRIMARY KEY (api_id, name)
    );
    CREATE TABLE tags (
        arn TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (arn, key)
    );
    CREATE FUNCTION herald_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('herald_changes', OLD.api_id);
        ELSE
            PERFORM pg_notify('herald_changes', NEW.api_id);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER apis_changed AFTER INSERT OR UPDATE OR DELETE ON apis
        FOR EACH ROW EXECUTE FUNCTION herald_notify();
    CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
        FOR EACH ROW EXECUTE FUNCTION herald_notify();
    CREATE TRIGGER channel_namespaces_changed AFTER INSERT OR UPDATE OR DELETE ON channel_namespaces
        FOR EACH ROW EXECUTE FUNCTION herald_notify();",
    // 2: functions, notified as `fn/<name>`.
    "CREATE TABLE functions (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        code BYTEA NOT NULL
    );
    CREATE FUNCTION herald_notify_function() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('herald_changes', 'fn/' || OLD.name);
        ELSE
            PERFORM pg_notify('herald_changes', 'fn/' || NEW.name);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER functions_changed AFTER INSERT OR UPDATE OR DELETE ON functions
        FOR EACH ROW EXECUTE FUNCTION herald_notify_function();",
    // 3: AppSync data sources, and namespaces' handlerConfigs.
    "CREATE TABLE data_sources (
        api_id TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (api_id, name)
    );
    CREATE TRIGGER data_sources_changed AFTER INSERT OR UPDATE OR DELETE ON data_sources
        FOR EACH ROW EXECUTE FUNCTION herald_notify();
    ALTER TABLE channel_namespaces ADD COLUMN handler_configs TEXT;",
    // 4: event source mappings, notified as `esm/<uuid>`.
    "CREATE TABLE event_source_mappings (
        uuid TEXT PRIMARY KEY,
        spec TEXT NOT NULL
    );
    CREATE FUNCTION herald_notify_mapping() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('herald_changes', 'esm/' || OLD.uuid);
        ELSE
            PERFORM pg_notify('herald_changes', 'esm/' || NEW.uuid);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER event_source_mappings_changed AFTER INSERT OR UPDATE OR DELETE ON event_source_mappings
        FOR EACH ROW EXECUTE FUNCTION herald_notify_mapping();",
    // 5: stream checkpoints (Kinesis) and which node runs a mapping.
    "CREATE TABLE esm_checkpoints (
        uuid TEXT NOT NULL,
        shard TEXT NOT NULL,
        sequence TEXT NOT NULL,
        PRIMARY KEY (uuid, shard)
    );
    CREATE TABLE esm_leases (
        uuid TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    );",
    // 6: event buses and their rules, notified as `bus/<bus name>`.
    "CREATE TABLE event_buses (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL
    );
    CREATE TABLE event_rules (
        bus TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (bus, name)
    );
    CREATE FUNCTION herald_notify_bus() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('herald_changes', 'bus/' || OLD.name);
        ELSE
            PERFORM pg_notify('herald_changes', 'bus/' || NEW.name);
        END IF;
        RETURN NULL;
    END $$;
    CREATE FUNCTION herald_notify_rule() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('herald_changes', 'bus/' || OLD.bus);
        ELSE
            PERFORM pg_notify('herald_changes', 'bus/' || NEW.bus);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER event_buses_changed AFTER INSERT OR UPDATE OR DELETE ON event_buses
        FOR EACH ROW EXECUTE FUNCTION herald_notify_bus();
    CREATE TRIGGER event_rules_changed AFTER INSERT OR UPDATE OR DELETE ON event_rules
        FOR EACH ROW EXECUTE FUNCTION herald_notify_rule();",
    // 7: the event bus's other resources, notified as `bus/<kind>`.
    "CREATE TABLE bus_resources (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    );
    CREATE FUNCTION herald_notify_bus_resource() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('herald_changes', 'bus/' || OLD.kind);
        ELSE
            PERFORM pg_notify('herald_changes', 'bus/' || NEW.kind);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER bus_resources_changed AFTER INSERT OR UPDATE OR DELETE ON bus_resources
        FOR EACH ROW EXECUTE FUNCTION herald_notify_bus_resource();",
    // 8: standard workflow executions, each journal record as JSON (no
    // notifications: a node reads them when it starts).
    "CREATE TABLE workflow_executions (
        arn TEXT PRIMARY KEY,
        machine TEXT NOT NULL,
        status TEXT NOT NULL,
        record TEXT NOT NULL
    );",
    // 9: their history events, appended as they happen.
    "CREATE TABLE workflow_history (
        arn TEXT NOT NULL,
        id BIGINT NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (arn, id)
    );",
];

/// Now, in epoch seconds, in SQL.
const NOW: &str = "extract(epoch from now())::bigint";

pub struct Postgres {
    config: Config,
    /// The URL without its password, for messages.
    shown: String,
    /// The shared connection; `None` or closed: open a new one on next use.
    client: Mutex<Option<Arc<Client>>>,
}

fn error(e: tokio_postgres::Error) -> String {
    e.to_string()
}

impl Postgres {
    /// Connect and apply the pending migrations.
    pub async fn connect(url: &str) -> Result<Postgres, String> {
        let shown = crate::config::redact_url(url);
        let mut config: Config = url
            .parse()
            .map_err(|e| format!("the store URL {shown} is invalid: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("herald");
        let pg = Postgres {
            config,
            shown,
            client: Mutex::new(None),
        };
        let mut client = pg
            .open()
            .await
            .map_err(|e| format!("cannot connect to the store at {}: {e}", pg.shown))?;
        migrate(&mut client)
            .await
            .map_err(|e| format!("the store at {}: {e}", pg.shown))?;
        *pg.client.lock().unwrap() = Some(Arc::new(client));
        Ok(pg)
    }

    /// A new connection, driven by a task of its own until it closes.
    async fn open(&self) -> Result<Client, String> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(error)?;
        let shown = self.shown.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(store = %shown, error = %e, "store connection lost");
            }
        });
        Ok(client)
    }

    /// The shared connection, re-opened if it broke.
    async fn client(&self) -> Result<Arc<Client>, String> {
        if let Some(c) = self.client.lock().unwrap().as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let client = Arc::new(
            self.open()
                .await
                .map_err(|e| format!("cannot reach the store at {}: {e}", self.shown))?,
        );
        *self.client.lock().unwrap() = Some(client.clone());
        Ok(client)
    }

    /// One statement on the shared connection.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, String> {
        self.client()
            .await?
            .execute(sql, params)
            .await
            .map_err(error)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, String> {
        self.client().await?.query(sql, params).await.map_err(error)
    }

    async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<tokio_postgres::Row, String> {
        self.client()
            .await?
            .query_one(sql, params)
            .await
            .map_err(error)
    }

    /// Listen for the changes every node writes, until aborted; reconnect
    /// (backing off up to 10 s) when the connection is lost.
    pub fn follow(&self, changes: Arc<Changes>) -> tokio::task::JoinHandle<()> {
        let config = self.config.clone();
        let shown = self.shown.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                let mut listening = false;
                let e = listen(&config, &changes, &mut listening).await;
                if listening {
                    delay = Duration::from_millis(100);
                }
                tracing::warn!(store = %shown, error = %e, retry_ms = delay.as_millis() as u64,
                    "store notifications lost; reconnecting (changes are re-read in full then)");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        })
    }
}

/// One listening connection: `LISTEN`, then everything is marked changed
/// (what was sent before is lost to this node), then each notification marks
/// its API. Returns why it ended.
async fn listen(config: &Config, changes: &Arc<Changes>, listening: &mut bool) -> String {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    let driver = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => changes.api(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "the connection closed".to_string(),
            }
        }
    };
    let subscribe = async {
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return e.to_string();
        }
        *listening = true;
        changes.all();
        std::future::pending().await
    };
    tokio::select! {
        why = driver => why,
        why = subscribe => why,
    }
}

/// Apply the pending migrations in one transaction, under an advisory lock
/// that makes concurrent starts wait for the first.
async fn migrate(client: &mut Client) -> Result<(), String> {
    let fail = |e: tokio_postgres::Error| format!("schema migrations failed: {e}");
    let tx = client.transaction().await.map_err(fail)?;
    // The key is "herald" in ASCII.
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(114101114097108100);
         CREATE TABLE IF NOT EXISTS herald_schema (version INTEGER NOT NULL);",
    )
    .await
    .map_err(fail)?;
    let version: i32 = match tx
        .query_opt("SELECT version FROM herald_schema", &[])
        .await
        .map_err(fail)?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO herald_schema (version) VALUES (0)", &[])
                .await
                .map_err(fail)?;
            0
        }
    };
    let version = version as usize;
    if version > MIGRATIONS.len() {
        return Err(format!(
            "the schema is version {version}, newer than this Herald's {}: use a newer Herald",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("schema migration {} failed: {e}", i + 1))?;
        tx.execute(
            "UPDATE herald_schema SET version = $1",
            &[&((i + 1) as i32)],
        )
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

impl Postgres {
    pub async fn apis(&self) -> Result<Vec<StoredApi>, String> {
        let rows = self
            .query(
                "SELECT api_id, name, owner_contact, event_config, created
                 FROM apis ORDER BY created, api_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                StoredApi::from_columns(r.get(0), r.get(1), r.get(2), r.get::<_, &str>(3), r.get(4))
            })
            .collect()
    }

    pub async fn insert_api(&self, api: StoredApi) -> Result<(), String> {
        self.execute(
            "INSERT INTO apis (api_id, name, owner_contact, event_config, created)
                 VALUES ($1, $2, $3, $4, $5)",
            &[
                &api.api_id,
                &api.name,
                &api.owner_contact,
                &api.event_config.to_string(),
                &api.created,
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn update_api(&self, api: StoredApi) -> Result<bool, String> {
        self.execute(
            "UPDATE apis SET name = $2, owner_contact = $3, event_config = $4 WHERE api_id = $1",
            &[
                &api.api_id,
                &api.name,
                &api.owner_contact,
                &api.event_config.to_string(),
            ],
        )
        .await
        .map(|n| n > 0)
    }

    pub async fn delete_api(&self, api_id: &str, arn: &str) -> Result<bool, String> {
        // Data-modifying WITH clauses all run, in the statement's one
        // transaction, whether or not the final SELECT reads them.
        let row = self
            .query_one(
                "WITH a AS (DELETE FROM apis WHERE api_id = $1 RETURNING 1),
                      k AS (DELETE FROM api_keys WHERE api_id = $1),
                      d AS (DELETE FROM data_sources WHERE api_id = $1),
                      n AS (DELETE FROM channel_namespaces WHERE api_id = $1),
                      t AS (DELETE FROM tags WHERE arn = $2 OR starts_with(arn, $3))
                 SELECT count(*) FROM a",
                &[&api_id, &arn, &format!("{arn}/")],
            )
            .await?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    pub async fn api_keys(&self, api_id: &str) -> Result<Vec<StoredKey>, String> {
        let rows = self
            .query(
                "SELECT id, description, expires, deletes FROM api_keys
                 WHERE api_id = $1 ORDER BY created, id",
                &[&api_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredKey {
                id: r.get(0),
                description: r.get(1),
                expires: r.get(2),
                deletes: r.get(3),
            })
            .collect())
    }

    pub async fn insert_key(&self, api_id: &str, key: StoredKey) -> Result<(), String> {
        self.execute(
            &format!(
                "INSERT INTO api_keys (api_id, id, description, expires, deletes, created)
                     VALUES ($1, $2, $3, $4, $5, {NOW})"
            ),
            &[
                &api_id,
                &key.id,
                &key.description,
                &key.expires,
                &key.deletes,
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn update_key(&self, api_id: &str, key: StoredKey) -> Result<bool, String> {
        self.execute(
            "UPDATE api_keys SET description = $3, expires = $4, deletes = $5
                 WHERE api_id = $1 AND id = $2",
            &[
                &api_id,
                &key.id,
                &key.description,
                &key.expires,
                &key.deletes,
            ],
        )
        .await
        .map(|n| n > 0)
    }

    pub async fn delete_key(&self, api_id: &str, id: &str) -> Result<bool, String> {
        self.execute(
            "DELETE FROM api_keys WHERE api_id = $1 AND id = $2",
            &[&api_id, &id],
        )
        .await
        .map(|n| n > 0)
    }

    pub async fn namespaces(&self, api_id: &str) -> Result<Vec<StoredNamespace>, String> {
        let rows = self.query(
                "SELECT name, publish_auth_modes, subscribe_auth_modes, code_handlers, handler_configs
                 FROM channel_namespaces WHERE api_id = $1 ORDER BY created, name",
                &[&api_id],
            )
            .await
            ?;
        rows.iter()
            .map(|r| {
                StoredNamespace::from_columns(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
            })
            .collect()
    }

    pub async fn put_namespace(&self, api_id: &str, ns: StoredNamespace) -> Result<(), String> {
        let (publish, subscribe) = ns.mode_columns();
        self.execute(
                &format!(
                    "INSERT INTO channel_namespaces
                       (api_id, name, publish_auth_modes, subscribe_auth_modes, code_handlers, handler_configs, created, last_modified)
                     VALUES ($1, $2, $3, $4, $5, $6, {NOW}, {NOW})
                     ON CONFLICT (api_id, name) DO UPDATE SET
                       publish_auth_modes = excluded.publish_auth_modes,
                       subscribe_auth_modes = excluded.subscribe_auth_modes,
                       code_handlers = excluded.code_handlers,
                       handler_configs = excluded.handler_configs,
                       last_modified = excluded.last_modified"
                ),
                &[&api_id, &ns.name, &publish, &subscribe, &ns.code_handlers, &ns.handler_configs],
            )
            .await
            .map(|_| ())
    }

    pub async fn delete_namespace(&self, api_id: &str, name: &str) -> Result<bool, String> {
        self.execute(
            "DELETE FROM channel_namespaces WHERE api_id = $1 AND name = $2",
            &[&api_id, &name],
        )
        .await
        .map(|n| n > 0)
    }

    pub async fn tags(
        &self,
        arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        let rows = self
            .query("SELECT key, value FROM tags WHERE arn = $1", &[&arn])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn put_tags(
        &self,
        arn: &str,
        tags: Vec<(String, String)>,
        limit: usize,
    ) -> Result<bool, String> {
        let (keys, values): (Vec<String>, Vec<String>) = tags.into_iter().unzip();
        // The count and the insert in one statement: over the limit, nothing
        // is inserted.
        let row = self.query_one(
                "WITH incoming AS (SELECT * FROM unnest($2::text[], $3::text[]) AS u(key, value)),
                      total AS (SELECT count(*) AS n FROM
                                  (SELECT key FROM tags WHERE arn = $1 UNION SELECT key FROM incoming) s),
                      ins AS (INSERT INTO tags (arn, key, value)
                                SELECT $1, key, value FROM incoming WHERE (SELECT n FROM total) <= $4
                              ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value)
                 SELECT (SELECT n FROM total) <= $4",
                &[&arn, &keys, &values, &(limit as i64)],
            )
            .await
            ?;
        Ok(row.get(0))
    }

    pub async fn remove_tags(&self, arn: &str, keys: Option<Vec<String>>) -> Result<(), String> {
        let client = self.client().await?;
        match keys {
            None => client
                .execute("DELETE FROM tags WHERE arn = $1", &[&arn])
                .await
                .map_err(error)?,
            Some(keys) => client
                .execute(
                    "DELETE FROM tags WHERE arn = $1 AND key = ANY($2)",
                    &[&arn, &keys],
                )
                .await
                .map_err(error)?,
        };
        Ok(())
    }
}

impl Postgres {
    pub async fn functions(&self) -> Result<Vec<StoredFunction>, String> {
        let rows = self
            .query("SELECT name, spec, code FROM functions ORDER BY name", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredFunction {
                name: r.get(0),
                spec: r.get(1),
                code: r.get(2),
            })
            .collect())
    }

    pub async fn put_function(&self, f: StoredFunction) -> Result<(), String> {
        self.execute(
            "INSERT INTO functions (name, spec, code) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, code = excluded.code",
            &[&f.name, &f.spec, &f.code],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_function(&self, name: &str) -> Result<bool, String> {
        self.execute("DELETE FROM functions WHERE name = $1", &[&name])
            .await
            .map(|n| n > 0)
    }
}

impl Postgres {
    pub async fn data_sources(&self, api_id: &str) -> Result<Vec<(String, String)>, String> {
        let rows = self
            .query(
                "SELECT name, spec FROM data_sources WHERE api_id = $1 ORDER BY name",
                &[&api_id],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn put_data_source(
        &self,
        api_id: &str,
        name: &str,
        spec: String,
    ) -> Result<(), String> {
        self.execute(
            "INSERT INTO data_sources (api_id, name, spec) VALUES ($1, $2, $3)
                 ON CONFLICT (api_id, name) DO UPDATE SET spec = excluded.spec",
            &[&api_id, &name, &spec],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_data_source(&self, api_id: &str, name: &str) -> Result<bool, String> {
        self.execute(
            "DELETE FROM data_sources WHERE api_id = $1 AND name = $2",
            &[&api_id, &name],
        )
        .await
        .map(|n| n > 0)
    }
}
