//! Event source mappings, their stream checkpoints and their leases.

use super::super::StoredMapping;
use super::Sqlite;
use rusqlite::{params, OptionalExtension};

impl Sqlite {
    pub async fn mappings(&self) -> Result<Vec<StoredMapping>, String> {
        self.run(|c| {
            let mut stmt =
                c.prepare("SELECT uuid, spec FROM event_source_mappings ORDER BY uuid")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredMapping {
                    uuid: r.get(0)?,
                    spec: r.get(1)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn put_mapping(&self, m: StoredMapping) -> Result<(), String> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO event_source_mappings (uuid, spec) VALUES (?1, ?2)
                 ON CONFLICT (uuid) DO UPDATE SET spec = excluded.spec",
                params![m.uuid, m.spec],
            )
            .map(|_| ())
        })
        .await
    }

    /// The mapping, its checkpoints and its lease.
    pub async fn delete_mapping(&self, uuid: &str) -> Result<bool, String> {
        let uuid = uuid.to_string();
        self.run(move |c| {
            c.execute("DELETE FROM esm_checkpoints WHERE uuid = ?1", params![uuid])?;
            c.execute("DELETE FROM esm_leases WHERE uuid = ?1", params![uuid])?;
            c.execute(
                "DELETE FROM event_source_mappings WHERE uuid = ?1",
                params![uuid],
            )
            .map(|n| n > 0)
        })
        .await
    }

    pub async fn checkpoint(&self, uuid: &str, shard: &str) -> Result<Option<String>, String> {
        let (uuid, shard) = (uuid.to_string(), shard.to_string());
        self.run(move |c| {
            c.query_row(
                "SELECT sequence FROM esm_checkpoints WHERE uuid = ?1 AND shard = ?2",
                params![uuid, shard],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    pub async fn put_checkpoint(&self, uuid: &str, shard: &str, seq: &str) -> Result<(), String> {
        let (uuid, shard, seq) = (uuid.to_string(), shard.to_string(), seq.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT INTO esm_checkpoints (uuid, shard, sequence) VALUES (?1, ?2, ?3)
                 ON CONFLICT (uuid, shard) DO UPDATE SET sequence = excluded.sequence",
                params![uuid, shard, seq],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn lease(&self, uuid: &str, owner: &str, now: f64, ttl: f64) -> Result<bool, String> {
        let (uuid, owner) = (uuid.to_string(), owner.to_string());
        self.run(move |c| {
            c.query_row(
                "INSERT INTO esm_leases (uuid, owner, expires) VALUES (?1, ?2, ?3)
                 ON CONFLICT (uuid) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
                 WHERE esm_leases.owner = excluded.owner OR esm_leases.expires < ?4
                 RETURNING owner",
                params![uuid, owner, now + ttl, now],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|o| o.is_some())
        })
        .await
    }
}
