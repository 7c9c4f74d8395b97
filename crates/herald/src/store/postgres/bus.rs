//! Event buses and their rules.

use super::super::{StoredBus, StoredRule};
use super::Postgres;

impl Postgres {
    pub async fn buses(&self) -> Result<Vec<StoredBus>, String> {
        let rows = self
            .query("SELECT name, spec FROM event_buses ORDER BY name", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredBus {
                name: r.get(0),
                spec: r.get(1),
            })
            .collect())
    }

    pub async fn put_bus(&self, b: StoredBus) -> Result<(), String> {
        self.execute(
            "INSERT INTO event_buses (name, spec) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
            &[&b.name, &b.spec],
        )
        .await
        .map(|_| ())
    }

    /// The bus and its rules, in one statement (one transaction).
    pub async fn delete_bus(&self, name: &str) -> Result<bool, String> {
        let row = self
            .query_one(
                "WITH b AS (DELETE FROM event_buses WHERE name = $1 RETURNING 1),
                      r AS (DELETE FROM event_rules WHERE bus = $1)
                 SELECT count(*) FROM b",
                &[&name],
            )
            .await?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    pub async fn rules(&self) -> Result<Vec<StoredRule>, String> {
        let rows = self
            .query(
                "SELECT bus, name, spec FROM event_rules ORDER BY bus, name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredRule {
                bus: r.get(0),
                name: r.get(1),
                spec: r.get(2),
            })
            .collect())
    }

    pub async fn put_rule(&self, rule: StoredRule) -> Result<(), String> {
        self.execute(
            "INSERT INTO event_rules (bus, name, spec) VALUES ($1, $2, $3)
                 ON CONFLICT (bus, name) DO UPDATE SET spec = excluded.spec",
            &[&rule.bus, &rule.name, &rule.spec],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_rule(&self, bus: &str, name: &str) -> Result<bool, String> {
        self.execute(
            "DELETE FROM event_rules WHERE bus = $1 AND name = $2",
            &[&bus, &name],
        )
        .await
        .map(|n| n > 0)
    }

    pub async fn bus_resources(&self, kind: &str) -> Result<Vec<(String, String)>, String> {
        let rows = self
            .query(
                "SELECT name, spec FROM bus_resources WHERE kind = $1 ORDER BY name",
                &[&kind],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn put_bus_resource(
        &self,
        kind: &str,
        name: &str,
        spec: String,
    ) -> Result<(), String> {
        self.execute(
            "INSERT INTO bus_resources (kind, name, spec) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec",
            &[&kind, &name, &spec],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_bus_resource(&self, kind: &str, name: &str) -> Result<bool, String> {
        self.execute(
            "DELETE FROM bus_resources WHERE kind = $1 AND name = $2",
            &[&kind, &name],
        )
        .await
        .map(|n| n > 0)
    }
}
