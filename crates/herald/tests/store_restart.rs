//! The control plane's PostgreSQL store stopped and restarted under a running
//! server: a PostgreSQL instance of the test's own (initdb in a temporary
//! directory, on a free port), so the shared one on 5432 is never touched.

mod common;

use common::aws::*;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const API: &str = "storeapi000000000000000000";
const KEYS: &str = "/v1/apis/storeapi000000000000000000/apikeys";

/// A private PostgreSQL: `initdb`, `pg_ctl start/stop` as the `postgres`
/// user; stopped and removed when dropped.
struct Postgres {
    dir: std::path::PathBuf,
    port: u16,
}

fn pg_bin(name: &str) -> String {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
    let mut dirs: Vec<_> = versions.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    let bin = dirs
        .last()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(name);
    bin.display().to_string()
}

fn as_postgres(args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("runuser runs")
        .success()
}

impl Postgres {
    fn start() -> Postgres {
        let dir = std::env::temp_dir().join(format!("herald-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap()
            .success());
        let data = dir.join("data");
        assert!(
            as_postgres(&[
                &pg_bin("initdb"),
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ]),
            "initdb"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres { dir, port };
        pg.up();
        pg
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        assert!(
            as_postgres(&[
                &pg_bin("pg_ctl"),
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ]),
            "pg_ctl start"
        );
    }

    fn down(&self) {
        let data = self.dir.join("data");
        as_postgres(&[
            &pg_bin("pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// While the store is down, a change is refused (500 "nothing changed")
/// and the public listener serves with what it holds; once PostgreSQL is
/// back, changes succeed again with no restart of Herald, and what was
/// created before and after is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_under_the_control_plane() {
    let pg = Postgres::start();
    let dir = temp_dir("store-restart");
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            r#"api_id = "{API}"
{}[[channel_namespaces]]
name = "default"
[admin]
listen = "127.0.0.1:0"
[store]
backend = "postgres"
url = "{}"
"#,
            admin_toml(),
            pg.url()
        ),
    )
    .unwrap();
    let (_server, addr, admin) = serve_process_at(&config, &[]);
    let admin = admin.expect("an admin listener");
    let r = post(admin, KEYS, &json!({"description": "before"})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let before = r.body["apiKey"]["id"].as_str().unwrap().to_string();
    assert_eq!(publish_with(addr, &before).await, 200);

    pg.down();
    let r = post(admin, KEYS, &json!({"description": "during"})).await;
    assert_eq!(r.status, 500, "{}", r.raw);
    assert_eq!(error_type(&r), "InternalFailureException");
    assert!(r.raw.contains("nothing changed"), "{}", r.raw);
    // What the server holds is still served.
    assert_eq!(publish_with(addr, &before).await, 200);
    assert_eq!(get(admin, KEYS).await.status, 200);

    pg.up();
    // The store's connections come back by themselves; asked until they
    // have (each attempt is a real request, refused as above until then).
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let r = post(admin, KEYS, &json!({"description": "after"})).await;
        if r.status == 200 {
            break r.body["apiKey"]["id"].as_str().unwrap().to_string();
        }
        assert_eq!(r.status, 500, "{}", r.raw);
        assert!(Instant::now() < deadline, "the store never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(publish_with(addr, &after).await, 200);
    assert_eq!(publish_with(addr, &before).await, 200);
    let listed = get(admin, KEYS).await;
    let ids: Vec<&str> = listed.body["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&before.as_str()) && ids.contains(&after.as_str()));
    assert_eq!(ids.len(), 3, "the file's key and the two created: {ids:?}");
}
