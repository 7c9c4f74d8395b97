//! Standard workflow executions' journal records.

use super::Sqlite;
use rusqlite::params;

impl Sqlite {
    /// The record and the history events new since the last write, in
    /// one transaction.
    pub async fn put_execution(
        &self,
        arn: &str,
        machine: &str,
        status: &str,
        record: String,
        events: Vec<(i64, String)>,
    ) -> Result<(), String> {
        let (arn, machine, status) = (arn.to_string(), machine.to_string(), status.to_string());
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO workflow_executions (arn, machine, status, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (arn) DO UPDATE SET status = excluded.status, record = excluded.record",
                params![arn, machine, status, record],
            )?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO workflow_history (arn, id, event) VALUES (?1, ?2, ?3)
                     ON CONFLICT (arn, id) DO NOTHING",
                )?;
                for (id, event) in &events {
                    stmt.execute(params![arn, id, event])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// An execution's history events, in order.
    pub async fn workflow_history(&self, arn: &str) -> Result<Vec<String>, String> {
        let arn = arn.to_string();
        self.run(move |c| {
            let mut stmt =
                c.prepare("SELECT event FROM workflow_history WHERE arn = ?1 ORDER BY id")?;
            let rows = stmt.query_map(params![arn], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    /// (arn, record), newest last.
    pub async fn workflow_executions(&self) -> Result<Vec<(String, String)>, String> {
        self.run(|c| {
            let mut stmt =
                c.prepare("SELECT arn, record FROM workflow_executions ORDER BY rowid")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    pub async fn delete_executions_of(&self, machine: &str) -> Result<(), String> {
        let machine = machine.to_string();
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "DELETE FROM workflow_history WHERE arn IN (SELECT arn FROM workflow_executions
                 WHERE machine = ?1 AND status <> 'RUNNING')",
                params![machine],
            )?;
            tx.execute(
                "DELETE FROM workflow_executions WHERE machine = ?1 AND status <> 'RUNNING'",
                params![machine],
            )?;
            tx.commit()
        })
        .await
    }

    pub async fn workflow_execution(&self, arn: &str) -> Result<Option<String>, String> {
        let arn = arn.to_string();
        self.run(move |c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT record FROM workflow_executions WHERE arn = ?1",
                params![arn],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// A machine's stored executions: (arn, record).
    pub async fn workflow_executions_of(
        &self,
        machine: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let machine = machine.to_string();
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT arn, record FROM workflow_executions WHERE machine = ?1 ORDER BY rowid",
            )?;
            let rows = stmt.query_map(params![machine], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}
