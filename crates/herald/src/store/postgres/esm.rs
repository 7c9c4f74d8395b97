//! Event source mappings, their stream checkpoints and their leases.

use super::super::StoredMapping;
use super::Postgres;

impl Postgres {
    pub async fn mappings(&self) -> Result<Vec<StoredMapping>, String> {
        let rows = self
            .query(
                "SELECT uuid, spec FROM event_source_mappings ORDER BY uuid",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredMapping {
                uuid: r.get(0),
                spec: r.get(1),
            })
            .collect())
    }

    pub async fn put_mapping(&self, m: StoredMapping) -> Result<(), String> {
        self.execute(
            "INSERT INTO event_source_mappings (uuid, spec) VALUES ($1, $2)
                 ON CONFLICT (uuid) DO UPDATE SET spec = excluded.spec",
            &[&m.uuid, &m.spec],
        )
        .await
        .map(|_| ())
    }

    /// The mapping, its checkpoints and its lease.
    pub async fn delete_mapping(&self, uuid: &str) -> Result<bool, String> {
        self.execute("DELETE FROM esm_checkpoints WHERE uuid = $1", &[&uuid])
            .await?;
        self.execute("DELETE FROM esm_leases WHERE uuid = $1", &[&uuid])
            .await?;
        self.execute(
            "DELETE FROM event_source_mappings WHERE uuid = $1",
            &[&uuid],
        )
        .await
        .map(|n| n > 0)
    }

    pub async fn checkpoint(&self, uuid: &str, shard: &str) -> Result<Option<String>, String> {
        let rows = self
            .query(
                "SELECT sequence FROM esm_checkpoints WHERE uuid = $1 AND shard = $2",
                &[&uuid, &shard],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    pub async fn put_checkpoint(&self, uuid: &str, shard: &str, seq: &str) -> Result<(), String> {
        self.execute(
            "INSERT INTO esm_checkpoints (uuid, shard, sequence) VALUES ($1, $2, $3)
                 ON CONFLICT (uuid, shard) DO UPDATE SET sequence = excluded.sequence",
            &[&uuid, &shard, &seq],
        )
        .await
        .map(|_| ())
    }

    pub async fn lease(&self, uuid: &str, owner: &str, now: f64, ttl: f64) -> Result<bool, String> {
        let expires = now + ttl;
        let rows = self
            .query(
                "INSERT INTO esm_leases (uuid, owner, expires) VALUES ($1, $2, $3)
                 ON CONFLICT (uuid) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
                 WHERE esm_leases.owner = excluded.owner OR esm_leases.expires < $4
                 RETURNING owner",
                &[&uuid, &owner, &expires, &now],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
