//! The `bus` scenario: the event bus end to end on this machine, with the
//! durable log on (SQLite, `synchronous = FULL`, in a temporary data
//! directory).
//!
//! With `--log nats` or `--log redis` the server is a cluster node instead:
//! PostgreSQL store (a database created for the run on `--store-url`, dropped
//! after) and the engine's shared log (a stream named for the run, deleted
//! after), as [`crate::bus::log`] describes; phase 3 is then skipped.
//!
//! A server runs in this process with `--rules` rules (four kinds of
//! pattern: exact, prefix, wildcard with a numeric condition,
//! equals-ignore-case), each matching one of the `kind`s the events cycle
//! through, each with a channel target (`InputPath: $.detail`); a WebSocket
//! client subscribes to that channel. The client side signs every request
//! with SigV4, as an SDK does, over keep-alive HTTP.
//!
//! 1. **Accepted**: `--clients` senders put batches of `--batch` entries
//!    as fast as the server answers, for `--duration` s: events/s accepted
//!    (answered after the commit is on disk), and every accepted event must
//!    reach the subscriber (else the run FAILS).
//! 2. **Latency**: events put at `--rate` per second (a batch every 10 ms)
//!    for `--duration` s: from just before `PutEvents` to the subscriber's
//!    frame, p50/p99/p999; and `PutEvents`' own answer time.
//! 3. **The disk's floor**: the same number of commits a second as phase 1
//!    made, each one synced SQLite transaction of the same rows, written by
//!    a plain loop: what durability alone costs here.

use super::delivery::pct;
use super::rawws::{self, Frame};
use super::subscribe::new_hist;
use super::target::now_us;
use crate::esm::config::EventSourceFile;
use crate::esm::sources::aws::AwsJson;
use crate::server::Server;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY_ID: &str = "AKIAHERALDBENCHBUS00";
const SECRET: &str = "bench-bus-secret-000000000000000000000000";
const API_KEY: &str = "da2-benchbus00000000000000000000";

fn pattern(i: usize) -> String {
    match i % 4 {
        0 => format!(r#"{{"source": ["bench"], "detail": {{"kind": ["k{i}-x"]}}}}"#),
        1 => format!(r#"{{"detail": {{"kind": [{{"prefix": "k{i}-"}}]}}}}"#),
        2 => format!(
            r#"{{"detail": {{"kind": [{{"wildcard": "k{i}-*"}}], "n": [{{"numeric": [">=", 0]}}]}}}}"#
        ),
        _ => format!(r#"{{"detail": {{"kind": [{{"equals-ignore-case": "K{i}-X"}}]}}}}"#),
    }
}

fn entries(n: usize, rules: usize, seq: &AtomicU64) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|_| {
            let s = seq.fetch_add(1, Ordering::Relaxed);
            let detail = format!(
                r#"{{"t":{},"kind":"k{}-x","n":{s}}}"#,
                now_us(),
                s as usize % rules
            );
            json!({"Source": "bench", "DetailType": "Bench", "Detail": detail})
        })
        .collect();
    json!({"Entries": items})
}

/// The subscriber: counts frames and records latency until `done`.
struct Seen {
    count: AtomicU64,
    hist: Mutex<Histogram<u64>>,
    recording: AtomicBool,
}

async fn subscribe(
    public: std::net::SocketAddr,
    seen: Arc<Seen>,
    done: Arc<AtomicBool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let authority = public.to_string();
    let mut ws = rawws::RawWs::connect(public, &authority, API_KEY, None)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    ws.send_text(r#"{"type":"connection_init"}"#)
        .await
        .map_err(|e| e.to_string())?;
    ws.send_text(&json!({"type": "subscribe", "id": "b", "channel": "/default/bench", "authorization": {"x-api-key": API_KEY, "host": authority}}).to_string())
        .await
        .map_err(|e| e.to_string())?;
    let mut ok = false;
    ws.read_frames(|f| match f {
        Frame::Text(t) if rawws::find(t, b"subscribe_success").is_some() => {
            ok = true;
            false
        }
        Frame::Text(t) => rawws::find(t, b"_error").is_none(),
        Frame::Close => false,
    })
    .await
    .map_err(|e| e.to_string())?;
    if !ok {
        return Err("the subscription was refused".into());
    }
    Ok(tokio::spawn(async move {
        let _ = ws
            .read_frames(|f| match f {
                Frame::Text(t) => {
                    if let Some(sent) = rawws::timestamp_us(t) {
                        seen.count.fetch_add(1, Ordering::Relaxed);
                        if seen.recording.load(Ordering::Relaxed) {
                            let _ = seen
                                .hist
                                .lock()
                                .unwrap()
                                .record(now_us().saturating_sub(sent).max(1));
                        }
                    }
                    !done.load(Ordering::Relaxed)
                }
                Frame::Close => false,
            })
            .await;
    }))
}

/// Wait until the subscriber has `n` events (or `limit` passes).
async fn drained(seen: &Seen, n: u64, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while seen.count.load(Ordering::Relaxed) < n {
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A cluster node's surroundings for the run: a database and a stream of
/// its own, removed afterwards.
struct Cluster {
    engine: &'static str,
    server: String,
    database: String,
    stream: String,
}

impl Cluster {
    async fn create(engine: &'static str, server: &str) -> Result<Cluster, String> {
        let id = crate::new_uuid().simple().to_string();
        let c = Cluster {
            engine,
            server: server.trim_end_matches('/').to_string(),
            database: format!("herald_bench_bus_{}", &id[..12]),
            stream: format!("BENCH_BUS_{}", &id[..12]),
        };
        c.admin()
            .await?
            .batch_execute(&format!("CREATE DATABASE {}", c.database))
            .await
            .map_err(|e| format!("creating the bench database: {e}"))?;
        Ok(c)
    }

    async fn admin(&self) -> Result<tokio_postgres::Client, String> {
        let (client, conn) =
            tokio_postgres::connect(&format!("{}/postgres", self.server), tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("PostgreSQL at {}: {e}", self.server))?;
        tokio::spawn(conn);
        Ok(client)
    }

    fn config(&self) -> (String, String) {
        (
            format!("engine = \"{}\"\n", self.engine),
            format!(
                "[store]\nbackend = \"postgres\"\nurl = \"{}/{}\"\n[event_bus]\nstream = \"{}\"\n",
                self.server, self.database, self.stream
            ),
        )
    }

    async fn remove(self) {
        if let Ok(admin) = self.admin().await {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.database))
                .await;
        }
        if self.engine == "nats" {
            if let Ok(c) = async_nats::connect("nats://127.0.0.1:4222").await {
                let _ = async_nats::jetstream::new(c)
                    .delete_stream(&self.stream)
                    .await;
            }
        } else if let Ok(client) = redis::Client::open("redis://127.0.0.1:6379") {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(format!("{}:events", self.stream))
                    .arg(format!("{}:retries", self.stream))
                    .query_async(&mut conn)
                    .await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn bus_scenario(
    rules: usize,
    rate: u64,
    duration: Duration,
    clients: usize,
    batch: usize,
    log: &str,
    store_url: &str,
) -> Result<Value, String> {
    let batch = batch.clamp(1, 10);
    let dir = std::env::temp_dir().join(format!("herald-bench-bus-{}", crate::new_uuid()));
    let cluster = match log {
        "local" => None,
        "nats" => Some(Cluster::create("nats", store_url).await?),
        "redis" => Some(Cluster::create("redis", store_url).await?),
        other => return Err(format!("--log {other}: local, nats or redis")),
    };
    let (top, tables) = cluster.as_ref().map(Cluster::config).unwrap_or_default();
    let config_text = format!(
        r#"{top}
[[iam_credentials]]
access_key_id = "{KEY_ID}"
secret_access_key = "{SECRET}"
principal = "arn:aws:iam::123456789012:user/bench"
allow = [{{ actions = ["admin"] }}]
[[api_keys]]
id = "{API_KEY}"
[[channel_namespaces]]
name = "default"
[admin]
listen = "127.0.0.1:0"
{tables}"#
    );
    let file = crate::config::ConfigFile::parse(&config_text)?;
    let mut config = crate::config::ApiConfig::resolve(
        file,
        crate::config::Overrides {
            listen: Some("127.0.0.1:0".parse().expect("an address")),
            data_dir: cluster.is_none().then(|| dir.clone()),
            ..Default::default()
        },
    )?;
    config.drain = Duration::ZERO;
    let region = config.aws_region.clone();
    let server = Server::bind(config).await?;
    let admin = server.admin_addr().ok_or("no admin listener")?;
    let running = server.spawn();
    let public = running.addr;
    let http = crate::http_client::HttpClient::new(None)?;
    let source = EventSourceFile {
        arn: String::new(),
        url: format!("http://{admin}"),
        username: None,
        password: None,
        access_key_id: Some(KEY_ID.into()),
        secret_access_key: Some(SECRET.into()),
        ack_wait_secs: None,
        max_deliveries: None,
    };
    let client = Arc::new(AwsJson::new(
        http,
        &source,
        &region,
        "events",
        "AWSEvents",
        "application/x-amz-json-1.1",
    ));
    let call = |op: &'static str, body: Value| {
        let c = client.clone();
        async move { c.call(op, body, Duration::from_secs(30)).await }
    };
    for i in 0..rules {
        call(
            "PutRule",
            json!({"Name": format!("r{i}"), "EventPattern": pattern(i)}),
        )
        .await?;
        call(
            "PutTargets",
            json!({"Rule": format!("r{i}"), "Targets": [
            {"Id": "ws", "Arn": "channel:/default/bench", "InputPath": "$.detail"}]}),
        )
        .await?;
    }
    let seen = Arc::new(Seen {
        count: AtomicU64::new(0),
        hist: Mutex::new(new_hist()),
        recording: AtomicBool::new(false),
    });
    let done = Arc::new(AtomicBool::new(false));
    let reader = subscribe(public, seen.clone(), done.clone()).await?;
    let seq = Arc::new(AtomicU64::new(0));

    // 1. Accepted, as fast as the server answers.
    let stop = Instant::now() + duration;
    let accepted = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let started = Instant::now();
    for _ in 0..clients {
        let (client, seq, accepted, requests) = (
            client.clone(),
            seq.clone(),
            accepted.clone(),
            requests.clone(),
        );
        senders.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let r = client
                    .call(
                        "PutEvents",
                        entries(batch, rules, &seq),
                        Duration::from_secs(30),
                    )
                    .await?;
                let failed = r["FailedEntryCount"].as_u64().unwrap_or(0);
                accepted.fetch_add(batch as u64 - failed, Ordering::Relaxed);
                requests.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        }));
    }
    for s in senders {
        s.await.map_err(|e| e.to_string())??;
    }
    let put_secs = started.elapsed().as_secs_f64();
    let accepted_n = accepted.load(Ordering::Relaxed);
    let all_delivered = drained(&seen, accepted_n, Duration::from_secs(120)).await;
    let delivered_secs = started.elapsed().as_secs_f64();
    let commits = requests.load(Ordering::Relaxed);

    // 2. Latency at a fixed rate.
    seen.recording.store(true, Ordering::Relaxed);
    let before = seen.count.load(Ordering::Relaxed);
    let per_tick = (rate / 100).max(1) as usize;
    let ticks = (duration.as_secs_f64() * 100.0) as usize;
    let put_hist = Arc::new(Mutex::new(new_hist()));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut inflight = Vec::new();
    let mut sent = 0u64;
    for _ in 0..ticks {
        tick.tick().await;
        let mut left = per_tick;
        while left > 0 {
            let n = left.min(batch);
            left -= n;
            sent += n as u64;
            let (client, seq, put_hist) = (client.clone(), seq.clone(), put_hist.clone());
            inflight.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = client
                    .call(
                        "PutEvents",
                        entries(n, rules, &seq),
                        Duration::from_secs(30),
                    )
                    .await;
                let _ = put_hist
                    .lock()
                    .unwrap()
                    .record(t.elapsed().as_micros().max(1) as u64);
                r.map(|_| ())
            }));
        }
        inflight.retain(|h| !h.is_finished());
    }
    for h in inflight {
        h.await.map_err(|e| e.to_string())??;
    }
    let live_delivered = drained(&seen, before + sent, Duration::from_secs(60)).await;
    done.store(true, Ordering::Relaxed);
    reader.abort();
    let hist = seen.hist.lock().unwrap().clone();
    let put_hist = put_hist.lock().unwrap().clone();
    drop(running);

    // 3. The disk's floor: the same commits, by a plain loop.
    let floor = match cluster {
        Some(c) => {
            c.remove().await;
            None
        }
        None => {
            let floor_dir = dir.join("floor");
            let floor_commits = commits.max(1);
            Some(
                tokio::task::spawn_blocking(move || disk_floor(&floor_dir, floor_commits, batch))
                    .await
                    .map_err(|e| e.to_string())??,
            )
        }
    };
    let _ = std::fs::remove_dir_all(&dir);

    let ms = |h: &Histogram<u64>, q: f64| (pct(h, q) * 10.0).round() / 10.0;
    Ok(json!({
        "scenario": "bus",
        "log": log,
        "ok": all_delivered && live_delivered,
        "rules": rules,
        "batch": batch,
        "clients": clients,
        "accepted_per_sec": (accepted_n as f64 / put_secs).round(),
        "accepted": accepted_n,
        "delivered_all_within_secs": (delivered_secs * 10.0).round() / 10.0,
        "put_requests_per_sec": (commits as f64 / put_secs).round(),
        "rate": rate,
        "latency_ms_p50": ms(&hist, 0.5),
        "latency_ms_p99": ms(&hist, 0.99),
        "latency_ms_p999": ms(&hist, 0.999),
        "latency_ms_max": ms(&hist, 1.0),
        "latency_samples": hist.len(),
        "put_events_ms_p50": ms(&put_hist, 0.5),
        "put_events_ms_p99": ms(&put_hist, 0.99),
        "disk_floor_synced_commits_per_sec": floor.map(f64::round),
        "disk_floor_rows_per_sec": floor.map(|f| (f * batch as f64).round()),
    }))
}

/// `commits` synced SQLite transactions of `batch` rows each, written one
/// after another: commits per second.
fn disk_floor(dir: &std::path::Path, commits: u64, batch: usize) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let c = rusqlite::Connection::open(dir.join("floor.db")).map_err(|e| e.to_string())?;
    c.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    c.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    c.execute_batch("CREATE TABLE e (seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL)")
        .map_err(|e| e.to_string())?;
    let row = "x".repeat(300);
    let n = commits.min(20_000);
    let t = Instant::now();
    for _ in 0..n {
        c.execute_batch("BEGIN").map_err(|e| e.to_string())?;
        for _ in 0..batch {
            c.execute("INSERT INTO e (event) VALUES (?1)", [&row])
                .map_err(|e| e.to_string())?;
        }
        c.execute_batch("COMMIT").map_err(|e| e.to_string())?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}
