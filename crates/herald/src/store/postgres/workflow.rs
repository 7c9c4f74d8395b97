//! Standard workflow executions' journal records.

use super::Postgres;

impl Postgres {
    /// The record and the history events new since the last write, in
    /// one statement (so both or neither).
    pub async fn put_execution(
        &self,
        arn: &str,
        machine: &str,
        status: &str,
        record: String,
        events: Vec<(i64, String)>,
    ) -> Result<(), String> {
        let ids: Vec<i64> = events.iter().map(|(i, _)| *i).collect();
        let texts: Vec<String> = events.into_iter().map(|(_, e)| e).collect();
        self.execute(
            "WITH rec AS (
                 INSERT INTO workflow_executions (arn, machine, status, record) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (arn) DO UPDATE SET status = excluded.status, record = excluded.record
             )
             INSERT INTO workflow_history (arn, id, event)
             SELECT $1, e.id, e.event FROM unnest($5::bigint[], $6::text[]) AS e(id, event)
             ON CONFLICT (arn, id) DO NOTHING",
            &[&arn, &machine, &status, &record, &ids, &texts],
        )
        .await
        .map(|_| ())
    }

    /// An execution's history events, in order.
    pub async fn workflow_history(&self, arn: &str) -> Result<Vec<String>, String> {
        let rows = self
            .query(
                "SELECT event FROM workflow_history WHERE arn = $1 ORDER BY id",
                &[&arn],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// (arn, record).
    pub async fn workflow_executions(&self) -> Result<Vec<(String, String)>, String> {
        let rows = self
            .query("SELECT arn, record FROM workflow_executions", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// A machine's finished executions and their history, in one statement.
    pub async fn delete_executions_of(&self, machine: &str) -> Result<(), String> {
        self.execute(
            "WITH gone AS (
                 DELETE FROM workflow_executions WHERE machine = $1 AND status <> 'RUNNING'
                 RETURNING arn
             )
             DELETE FROM workflow_history WHERE arn IN (SELECT arn FROM gone)",
            &[&machine],
        )
        .await
        .map(|_| ())
    }

    pub async fn workflow_execution(&self, arn: &str) -> Result<Option<String>, String> {
        let rows = self
            .query(
                "SELECT record FROM workflow_executions WHERE arn = $1",
                &[&arn],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// A machine's stored executions: (arn, record).
    pub async fn workflow_executions_of(
        &self,
        machine: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let rows = self
            .query(
                "SELECT arn, record FROM workflow_executions WHERE machine = $1",
                &[&machine],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
