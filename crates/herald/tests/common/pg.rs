//! A PostgreSQL database of its own per test, on the server at
//! 127.0.0.1:5432 (`scripts/setup` starts it).

/// A database of its own, dropped (with its connections) at the end.
pub struct Database {
    pub name: String,
    pub url: String,
}

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&format!("{SERVER}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL runs on 127.0.0.1:5432 (scripts/setup starts it)");
    tokio::spawn(connection);
    client
}

impl Database {
    pub async fn create(label: &str) -> Database {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("herald_{label}_{}_{nanos}", std::process::id());
        admin_client()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Database {
            url: format!("{SERVER}/{name}"),
            name,
        }
    }

    /// A connection to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    pub async fn drop_it(self) {
        admin_client()
            .await
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}
