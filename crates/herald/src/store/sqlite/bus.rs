//! Event buses and their rules.

use super::super::{StoredBus, StoredRule};
use super::Sqlite;
use rusqlite::params;

impl Sqlite {
    pub async fn buses(&self) -> Result<Vec<StoredBus>, String> {
        self.run(|c| {
            let mut stmt = c.prepare("SELECT name, spec FROM event_buses ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredBus {
                    name: r.get(0)?,
                    spec: r.get(1)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn put_bus(&self, b: StoredBus) -> Result<(), String> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO event_buses (name, spec) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                params![b.name, b.spec],
            )
            .map(|_| ())
        })
        .await
    }

    /// The bus and its rules, in one transaction.
    pub async fn delete_bus(&self, name: &str) -> Result<bool, String> {
        let name = name.to_string();
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            tx.execute("DELETE FROM event_rules WHERE bus = ?1", params![name])?;
            let n = tx.execute("DELETE FROM event_buses WHERE name = ?1", params![name])?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn rules(&self) -> Result<Vec<StoredRule>, String> {
        self.run(|c| {
            let mut stmt =
                c.prepare("SELECT bus, name, spec FROM event_rules ORDER BY bus, name")?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredRule {
                    bus: r.get(0)?,
                    name: r.get(1)?,
                    spec: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn put_rule(&self, rule: StoredRule) -> Result<(), String> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO event_rules (bus, name, spec) VALUES (?1, ?2, ?3)
                 ON CONFLICT (bus, name) DO UPDATE SET spec = excluded.spec",
                params![rule.bus, rule.name, rule.spec],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn delete_rule(&self, bus: &str, name: &str) -> Result<bool, String> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.run(move |c| {
            c.execute(
                "DELETE FROM event_rules WHERE bus = ?1 AND name = ?2",
                params![bus, name],
            )
            .map(|n| n > 0)
        })
        .await
    }

    pub async fn bus_resources(&self, kind: &str) -> Result<Vec<(String, String)>, String> {
        let kind = kind.to_string();
        self.run(move |c| {
            let mut stmt =
                c.prepare("SELECT name, spec FROM bus_resources WHERE kind = ?1 ORDER BY name")?;
            let rows = stmt.query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    pub async fn put_bus_resource(
        &self,
        kind: &str,
        name: &str,
        spec: String,
    ) -> Result<(), String> {
        let (kind, name) = (kind.to_string(), name.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT INTO bus_resources (kind, name, spec) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec",
                params![kind, name, spec],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn delete_bus_resource(&self, kind: &str, name: &str) -> Result<bool, String> {
        let (kind, name) = (kind.to_string(), name.to_string());
        self.run(move |c| {
            c.execute(
                "DELETE FROM bus_resources WHERE kind = ?1 AND name = ?2",
                params![kind, name],
            )
            .map(|n| n > 0)
        })
        .await
    }
}
