//! The single node's log: one SQLite database, `events.db` in the data
//! directory (in memory with the memory store), written by one thread that
//! owns the connection. The thread takes every request waiting for it and
//! runs them in one transaction: many concurrent `PutEvents` share one
//! commit (group commit), so the disk's sync rate does not cap the event
//! rate.
//!
//! **Fsync policy**: `synchronous = FULL` in WAL mode: a commit is synced to
//! the disk before any of its requests is answered, so an acknowledged
//! event survives a power loss, not only a crash of the process.
//!
//! **Delivery contract**: events get increasing sequence numbers (never
//! reused: `AUTOINCREMENT`). The [`Reader`] records a *done* mark: every
//! event at or below it was settled (delivered, dead-lettered, or handed to
//! the retry table, `retries`, also here). After a restart reading starts
//! after the mark, so events past it are delivered again to every target
//! they match: delivery is at least once, and a crash can repeat the
//! deliveries of the events in flight at that moment (at most the
//! dispatcher's in-flight window). Events at or below the mark are deleted.

use super::{Logged, NewEvent, Retry};
use rusqlite::{params, Connection};
use std::collections::BTreeSet;
use std::path::Path;
use tokio::sync::{mpsc, oneshot, watch};

/// Requests waiting for the writer thread, at most. When full, callers
/// wait for room (`PutEvents` then takes longer; nothing is dropped).
const QUEUE: usize = 4096;
/// Requests run in one transaction, at most.
const GROUP: usize = 512;

const MIGRATIONS: &[&str] = &[
    // 1: events, the done mark, and retries.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        bus TEXT NOT NULL,
        rule TEXT,
        event TEXT NOT NULL,
        received REAL NOT NULL
    );
    CREATE TABLE progress (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        done INTEGER NOT NULL
    );
    INSERT INTO progress (id, done) VALUES (0, 0);
    CREATE TABLE retries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bus TEXT NOT NULL,
        rule TEXT NOT NULL,
        target TEXT NOT NULL,
        event TEXT NOT NULL,
        received REAL NOT NULL,
        attempts INTEGER NOT NULL,
        due REAL NOT NULL,
        error TEXT NOT NULL
    );
    CREATE INDEX retries_due ON retries (due);",
    // 2: archived events, by archive and the time the bus received them.
    "CREATE TABLE archived (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        archive TEXT NOT NULL,
        received REAL NOT NULL,
        event TEXT NOT NULL
    );
    CREATE INDEX archived_by_time ON archived (archive, received, id);",
];

/// An event read back, with its sequence number.
#[derive(Debug, Clone)]
pub struct Row {
    pub seq: u64,
    pub event: Logged,
}

/// A retry row: its id and the retry.
#[derive(Debug, Clone)]
pub struct RetryRow {
    pub id: i64,
    pub retry: Retry,
}

/// An answer waiting for the commit: called with the commit's error, if any.
type Reply = Box<dyn FnOnce(Option<&str>)>;

enum Op {
    Append(Vec<NewEvent>, oneshot::Sender<Result<u64, String>>),
    Read(u64, usize, oneshot::Sender<Result<Vec<Row>, String>>),
    Done(u64),
    AddRetry(Retry, oneshot::Sender<Result<(), String>>),
    UpdateRetry(i64, u32, f64, String),
    DeleteRetry(i64),
    Due(f64, usize, oneshot::Sender<Result<Vec<RetryRow>, String>>),
    Counts(oneshot::Sender<Result<(u64, u64), String>>),
    /// (archive, received, event) rows.
    Archive(
        Vec<(String, f64, String)>,
        oneshot::Sender<Result<(), String>>,
    ),
    /// Archive, from, to (received, inclusive), after id, limit.
    ArchiveRead(
        String,
        f64,
        f64,
        i64,
        usize,
        oneshot::Sender<Result<Vec<(i64, String)>, String>>,
    ),
    /// Events and bytes.
    ArchiveStats(String, oneshot::Sender<Result<(u64, u64), String>>),
    /// Delete an archive's events received before the time (all: `f64::MAX`).
    ArchivePurge(String, f64),
}

/// A handle on the log (cheap to clone).
#[derive(Clone)]
pub struct LocalLog {
    tx: mpsc::Sender<Op>,
    /// The last sequence number appended.
    head: watch::Receiver<u64>,
    /// The done mark when the log was opened.
    pub done_at_open: u64,
    /// Whether events survive this process (false: in memory).
    pub durable: bool,
    /// The lock on the data directory's log, held while the process runs.
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

fn gone<T>(_: T) -> String {
    "the event log stopped".to_string()
}

impl LocalLog {
    /// Open (create, migrate) `events.db` in `dir`, or an in-memory log.
    ///
    /// One process owns a data directory's log (an exclusive lock on
    /// `events.lock`): two dispatchers on one log would each deliver every
    /// event. A second process on the same directory (nodes sharing an
    /// SQLite store on one machine) gets an in-memory log and a warning.
    pub fn open(dir: Option<&Path>) -> Result<LocalLog, String> {
        let mut lock = None;
        let conn = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("cannot create the data directory {}: {e}", dir.display())
                })?;
                let lock_path = dir.join("events.lock");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
                if file.try_lock().is_err() {
                    tracing::warn!(
                        dir = %dir.display(),
                        "another Herald process holds this data directory's event log: this process keeps the events put on it in memory (not durable); give each process its own --data"
                    );
                    return LocalLog::open(None);
                }
                lock = Some(std::sync::Arc::new(file));
                let path = dir.join("events.db");
                let c = Connection::open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                c.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                c.pragma_update(None, "journal_mode", "WAL")
                    .map_err(|e| format!("{}: cannot enable WAL: {e}", path.display()))?;
                c
            }
            None => Connection::open_in_memory().map_err(|e| e.to_string())?,
        };
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| e.to_string())?;
        migrate(&conn)?;
        let done: u64 = conn
            .query_row("SELECT done FROM progress", [], |r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())? as u64;
        let head: u64 = conn
            .query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| e.to_string())? as u64;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (head_tx, head_rx) = watch::channel(head.max(done));
        std::thread::Builder::new()
            .name("herald-event-log".into())
            .spawn(move || writer(conn, rx, head_tx))
            .map_err(|e| format!("cannot start the event log: {e}"))?;
        Ok(LocalLog {
            tx,
            head: head_rx,
            done_at_open: done,
            durable: lock.is_some(),
            _lock: lock,
        })
    }

    /// Append events; returns the last one's sequence number once they are
    /// durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<u64, String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Append(events, tx)).await.map_err(gone)?;
        rx.await.map_err(gone)?
    }

    /// Up to `limit` events after `after`, in order.
    pub async fn read(&self, after: u64, limit: usize) -> Result<Vec<Row>, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Read(after, limit, tx))
            .await
            .map_err(gone)?;
        rx.await.map_err(gone)?
    }

    /// Watch the last appended sequence number.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    /// Everything at or below `seq` is done (see the module's contract).
    pub async fn done(&self, seq: u64) {
        let _ = self.tx.send(Op::Done(seq)).await;
    }

    /// Park a failed delivery for a later attempt; `Ok` once durable.
    pub async fn add_retry(&self, r: Retry) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::AddRetry(r, tx)).await.map_err(gone)?;
        rx.await.map_err(gone)?
    }

    pub async fn update_retry(&self, id: i64, attempts: u32, due: f64, error: String) {
        let _ = self
            .tx
            .send(Op::UpdateRetry(id, attempts, due, error))
            .await;
    }

    pub async fn delete_retry(&self, id: i64) {
        let _ = self.tx.send(Op::DeleteRetry(id)).await;
    }

    /// Up to `limit` retries due at `now`, earliest first.
    pub async fn due(&self, now: f64, limit: usize) -> Result<Vec<RetryRow>, String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Due(now, limit, tx)).await.map_err(gone)?;
        rx.await.map_err(gone)?
    }

    /// Keep events in archives; `Ok` once durable.
    pub async fn archive(&self, rows: Vec<(String, f64, String)>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Archive(rows, tx)).await.map_err(gone)?;
        rx.await.map_err(gone)?
    }

    /// Up to `limit` of an archive's events received from `from` to `to`,
    /// after the one with id `after`, oldest first: (id, event).
    pub async fn archived(
        &self,
        archive: &str,
        from: f64,
        to: f64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::ArchiveRead(archive.into(), from, to, after, limit, tx))
            .await
            .map_err(gone)?;
        rx.await.map_err(gone)?
    }

    /// An archive's event count and size in bytes.
    pub async fn archive_stats(&self, archive: &str) -> Result<(u64, u64), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::ArchiveStats(archive.into(), tx))
            .await
            .map_err(gone)?;
        rx.await.map_err(gone)?
    }

    /// Drop an archive's events received before `before`.
    pub async fn purge_archive(&self, archive: &str, before: f64) {
        let _ = self.tx.send(Op::ArchivePurge(archive.into(), before)).await;
    }

    /// Events not yet done, and retries waiting (for metrics and tests).
    pub async fn counts(&self) -> Result<(u64, u64), String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Counts(tx)).await.map_err(gone)?;
        rx.await.map_err(gone)?
    }
}

/// The dispatcher's side of the log: hands out events in order and moves
/// the done mark past those settled.
pub struct Reader {
    log: LocalLog,
    /// The last sequence number handed out.
    pos: u64,
    head: watch::Receiver<u64>,
    /// Handed out, not yet settled.
    outstanding: BTreeSet<u64>,
    /// The done mark last written.
    marked: u64,
}

impl Reader {
    pub fn new(log: &LocalLog) -> Reader {
        Reader {
            log: log.clone(),
            pos: log.done_at_open,
            head: log.head(),
            outstanding: BTreeSet::new(),
            marked: log.done_at_open,
        }
    }

    /// Up to `limit` events after those handed out; waits for one.
    /// Cancel-safe: nothing changes until the read has returned.
    pub async fn next(&mut self, limit: usize) -> Vec<Row> {
        loop {
            if *self.head.borrow_and_update() > self.pos {
                match self.log.read(self.pos, limit).await {
                    Ok(rows) if !rows.is_empty() => {
                        for r in &rows {
                            self.outstanding.insert(r.seq);
                        }
                        self.pos = rows.last().map_or(self.pos, |r| r.seq);
                        return rows;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "reading the event log failed; retrying in 1 s");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            if self.head.changed().await.is_err() {
                // The writer stopped: nothing more will come.
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn settle(&mut self, seq: u64) {
        self.outstanding.remove(&seq);
    }

    /// Write the done mark if it moved.
    pub async fn checkpoint(&mut self) {
        let mark = self.outstanding.first().map(|s| s - 1).unwrap_or(self.pos);
        if mark > self.marked {
            self.log.done(mark).await;
            self.marked = mark;
        }
    }
}

fn migrate(conn: &Connection) -> Result<(), String> {
    let version = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(|e| e.to_string())? as usize;
    if version > MIGRATIONS.len() {
        return Err(format!(
            "the event log's schema is version {version}, newer than this Herald's {}: use a newer Herald",
            MIGRATIONS.len()
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN; {sql} PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(|e| format!("event log migration {} failed: {e}", i + 1))?;
    }
    Ok(())
}

/// The writer thread: takes what is waiting (up to [`GROUP`] requests),
/// runs it in one transaction, answers after the commit.
fn writer(mut conn: Connection, mut rx: mpsc::Receiver<Op>, head: watch::Sender<u64>) {
    let mut ops = Vec::with_capacity(GROUP);
    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        while ops.len() < GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(ops.len());
        let mut last = None;
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for op in ops.drain(..) {
                run(&tx, op, &mut replies, &mut last)?;
            }
            tx.commit()
        })();
        let failed = result.err().map(|e| format!("the event log failed: {e}"));
        if failed.is_none() {
            if let Some(seq) = last {
                head.send_replace(seq);
            }
        } else {
            tracing::error!(
                error = failed.as_deref().unwrap_or_default(),
                "event log write failed"
            );
        }
        for reply in replies {
            reply(failed.as_deref());
        }
    }
}

/// One request inside the writer's transaction; its answer waits in
/// `replies` for the commit (a failed commit fails them all).
fn run(
    c: &Connection,
    op: Op,
    replies: &mut Vec<Reply>,
    last: &mut Option<u64>,
) -> rusqlite::Result<()> {
    match op {
        Op::Append(events, reply) => {
            let mut stmt = c.prepare_cached(
                "INSERT INTO events (bus, rule, event, received) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for e in &events {
                stmt.execute(params![e.bus, e.rule, e.event, e.received])?;
            }
            let seq = c.last_insert_rowid() as u64;
            *last = Some(seq);
            replies.push(Box::new(move |failed| {
                let _ = reply.send(match failed {
                    None => Ok(seq),
                    Some(e) => Err(e.to_string()),
                });
            }));
        }
        Op::Read(after, limit, reply) => {
            let rows = (|| {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, bus, rule, event, received FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
                    Ok(Row {
                        seq: r.get::<_, i64>(0)? as u64,
                        event: Logged {
                            bus: r.get(1)?,
                            rule: r.get(2)?,
                            event: r.get(3)?,
                            received: r.get(4)?,
                        },
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })()
            .map_err(|e| e.to_string());
            replies.push(after_commit(reply, rows));
        }
        Op::Done(seq) => {
            c.execute(
                "UPDATE progress SET done = ?1 WHERE done < ?1",
                params![seq as i64],
            )?;
            c.execute("DELETE FROM events WHERE seq <= ?1", params![seq as i64])?;
        }
        Op::AddRetry(r, reply) => {
            c.prepare_cached(
                "INSERT INTO retries (bus, rule, target, event, received, attempts, due, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                r.bus, r.rule, r.target, r.event, r.received, r.attempts, r.due, r.error
            ])?;
            replies.push(Box::new(move |failed| {
                let _ = reply.send(match failed {
                    None => Ok(()),
                    Some(e) => Err(e.to_string()),
                });
            }));
        }
        Op::UpdateRetry(id, attempts, due, error) => {
            c.execute(
                "UPDATE retries SET attempts = ?2, due = ?3, error = ?4 WHERE id = ?1",
                params![id, attempts, due, error],
            )?;
        }
        Op::DeleteRetry(id) => {
            c.execute("DELETE FROM retries WHERE id = ?1", params![id])?;
        }
        Op::Due(now, limit, reply) => {
            let rows = (|| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, bus, rule, target, event, received, attempts, due, error
                     FROM retries WHERE due <= ?1 ORDER BY due LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![now, limit as i64], |r| {
                    Ok(RetryRow {
                        id: r.get(0)?,
                        retry: Retry {
                            bus: r.get(1)?,
                            rule: r.get(2)?,
                            target: r.get(3)?,
                            event: r.get(4)?,
                            received: r.get(5)?,
                            attempts: r.get(6)?,
                            due: r.get(7)?,
                            error: r.get(8)?,
                        },
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })()
            .map_err(|e| e.to_string());
            replies.push(after_commit(reply, rows));
        }
        Op::Archive(rows, reply) => {
            let mut stmt = c.prepare_cached(
                "INSERT INTO archived (archive, received, event) VALUES (?1, ?2, ?3)",
            )?;
            for (archive, received, event) in &rows {
                stmt.execute(params![archive, received, event])?;
            }
            replies.push(after_commit(reply, Ok(())));
        }
        Op::ArchiveRead(archive, from, to, after, limit, reply) => {
            let rows = (|| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, event FROM archived
                     WHERE archive = ?1 AND received >= ?2 AND received <= ?3 AND id > ?4
                     ORDER BY id LIMIT ?5",
                )?;
                let rows = stmt
                    .query_map(params![archive, from, to, after, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })()
            .map_err(|e| e.to_string());
            replies.push(after_commit(reply, rows));
        }
        Op::ArchiveStats(archive, reply) => {
            let stats = c
                .query_row(
                    "SELECT count(*), COALESCE(sum(length(event)), 0) FROM archived WHERE archive = ?1",
                    params![archive],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
                )
                .map_err(|e| e.to_string());
            replies.push(after_commit(reply, stats));
        }
        Op::ArchivePurge(archive, before) => {
            c.execute(
                "DELETE FROM archived WHERE archive = ?1 AND received < ?2",
                params![archive, before],
            )?;
        }
        Op::Counts(reply) => {
            let counts = (|| {
                let events: i64 = c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
                let retries: i64 = c.query_row("SELECT count(*) FROM retries", [], |r| r.get(0))?;
                Ok::<_, rusqlite::Error>((events as u64, retries as u64))
            })()
            .map_err(|e| e.to_string());
            replies.push(after_commit(reply, counts));
        }
    }
    Ok(())
}

/// A read's answer, sent once the transaction it ran in has committed
/// (every answer comes after the commit, so an answer never describes a
/// state that is not yet durable).
fn after_commit<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, String>>,
    value: Result<T, String>,
) -> Reply {
    Box::new(move |failed| {
        let _ = reply.send(match failed {
            None => value,
            Some(e) => Err(e.to_string()),
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> NewEvent {
        NewEvent {
            bus: "default".into(),
            rule: None,
            event: format!("{{\"n\":{n}}}"),
            received: 1.0,
        }
    }

    #[tokio::test]
    async fn appends_read_back_in_order_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("herald-log-{}", crate::new_uuid()));
        let log = LocalLog::open(Some(&dir)).unwrap();
        let last = log.append((0..3).map(event).collect()).await.unwrap();
        assert_eq!(last, 3);
        assert_eq!(*log.head().borrow(), 3);
        let read = log.read(1, 10).await.unwrap();
        assert_eq!(read.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
        log.done(2).await;
        assert_eq!(log.counts().await.unwrap(), (1, 0));
        drop(log);
        let log = LocalLog::open(Some(&dir)).unwrap();
        assert_eq!(log.done_at_open, 2);
        let read = log.read(log.done_at_open, 10).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].event.event, "{\"n\":2}");
        // Sequence numbers are never reused, even once everything is deleted.
        log.done(3).await;
        assert_eq!(log.append(vec![event(9)]).await.unwrap(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn one_process_owns_a_directorys_log() {
        let dir = std::env::temp_dir().join(format!("herald-log-{}", crate::new_uuid()));
        let first = LocalLog::open(Some(&dir)).unwrap();
        assert!(first.durable);
        // A second opener (here: the same process, a second handle on the
        // lock file) does not share the file.
        let second = LocalLog::open(Some(&dir)).unwrap();
        assert!(!second.durable);
        second.append(vec![event(1)]).await.unwrap();
        assert!(first.read(0, 10).await.unwrap().is_empty());
        drop(first);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn retries_come_back_when_due() {
        let log = LocalLog::open(None).unwrap();
        let r = Retry {
            bus: "default".into(),
            rule: "r".into(),
            target: "t".into(),
            event: "{}".into(),
            received: 1.0,
            attempts: 1,
            due: 10.0,
            error: "down".into(),
        };
        log.add_retry(r).await.unwrap();
        assert!(log.due(9.0, 10).await.unwrap().is_empty());
        let due = log.due(10.0, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        log.update_retry(due[0].id, 2, 20.0, "again".into()).await;
        assert!(log.due(10.0, 10).await.unwrap().is_empty());
        log.delete_retry(due[0].id).await;
        assert_eq!(log.counts().await.unwrap(), (0, 0));
    }
}
