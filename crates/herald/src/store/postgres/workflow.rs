//! Standard workflow executions' journal records.

use super::Postgres;

impl Postgres {
    pub async fn put_execution(
        &self,
        arn: &str,
        machine: &str,
        status: &str,
        record: String,
    ) -> Result<(), String> {
        self.execute(
            "INSERT INTO workflow_executions (arn, machine, status, record) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (arn) DO UPDATE SET status = excluded.status, record = excluded.record",
            &[&arn, &machine, &status, &record],
        )
        .await
        .map(|_| ())
    }

    /// (arn, record).
    pub async fn workflow_executions(&self) -> Result<Vec<(String, String)>, String> {
        let rows = self
            .query("SELECT arn, record FROM workflow_executions", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn delete_executions_of(&self, machine: &str) -> Result<(), String> {
        self.execute(
            "DELETE FROM workflow_executions WHERE machine = $1 AND status <> 'RUNNING'",
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
