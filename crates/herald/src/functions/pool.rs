//! The worker threads that run JavaScript functions. Each worker keeps one
//! initialized runtime per function (and code version) and reuses it, so a
//! warm invocation is a call into already-initialized code. A new version is
//! warmed (loaded and initialized) on every worker before it takes traffic
//! ([`JsPool::warm`]): each worker has a control channel of its own, read
//! between invocations and at least every [`CONTROL_POLL`] when idle.
//!
//! The job queue is bounded ([`PoolSettings::queue`]): when it is full, an
//! invocation is refused at once (`TooManyRequestsException`, as Lambda
//! answers past the account's concurrency) instead of waiting.

use super::js::{JsFunction, JsResult, JsSetup};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Workers and queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub workers: usize,
    pub queue: usize,
}

/// A function's code at one version.
#[derive(Debug)]
pub struct JsCode {
    pub version: u64,
    pub setup: JsSetup,
}

/// What a worker reports about one invocation.
#[derive(Debug)]
pub struct Ran {
    pub result: JsResult,
    /// Init time, when this invocation had to load the function (a cold start).
    pub init: Option<Duration>,
}

/// How long a worker looks for the next invocation before it sleeps.
const SPIN: Duration = Duration::from_micros(100);

/// How often an idle worker looks at its control channel.
pub const CONTROL_POLL: Duration = Duration::from_millis(20);
/// How long a deploy waits for every worker to warm the new version (a
/// worker busy with a long invocation warms it after; its first invocation
/// of the new version then loads it).
pub const WARM_WAIT: Duration = Duration::from_secs(2);

struct Job {
    code: Arc<JsCode>,
    event: String,
    context: String,
    request_id: String,
    timeout: Duration,
    reply: oneshot::Sender<Ran>,
}

/// Counts the workers that have yet to warm a version.
struct Warming {
    remaining: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

impl Warming {
    fn one_done(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.done.notify_one();
        }
    }
}

enum Control {
    Warm(Arc<JsCode>, Arc<Warming>),
    Forget(String),
}

pub struct JsPool {
    jobs: mpsc::SyncSender<Job>,
    /// Each worker's control channel (bounded: a full one skips the
    /// message; the worker then loads on first use).
    control: Vec<mpsc::SyncSender<Control>>,
}

/// Why the pool could not take an invocation.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Full,
    Stopped,
}

impl JsPool {
    pub fn start(settings: PoolSettings) -> Result<JsPool, String> {
        let (tx, rx) = mpsc::sync_channel::<Job>(settings.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let mut control = Vec::new();
        for i in 0..settings.workers.max(1) {
            let rx = rx.clone();
            let (ctl_tx, ctl_rx) = mpsc::sync_channel::<Control>(64);
            control.push(ctl_tx);
            std::thread::Builder::new()
                .name(format!("herald-functions-{i}"))
                .spawn(move || worker(rx, ctl_rx))
                .map_err(|e| e.to_string())?;
        }
        Ok(JsPool { jobs: tx, control })
    }

    /// Run `code` on `event`; `Err` when the queue is full.
    pub async fn invoke(
        &self,
        code: Arc<JsCode>,
        event: String,
        context: String,
        request_id: String,
        timeout: Duration,
    ) -> Result<Ran, Refused> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            code,
            event,
            context,
            request_id,
            timeout,
            reply,
        };
        match self.jobs.try_send(job) {
            Err(mpsc::TrySendError::Full(_)) => return Err(Refused::Full),
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(Refused::Stopped),
            Ok(()) => {}
        }
        answer.await.map_err(|_| Refused::Stopped)
    }

    /// Load and initialize `code` on every worker; returns once all have
    /// (or after [`WARM_WAIT`]).
    pub async fn warm(&self, code: &Arc<JsCode>) {
        let warming = Arc::new(Warming {
            remaining: self.control.len().into(),
            done: tokio::sync::Notify::new(),
        });
        let notified = warming.done.notified();
        for ctl in &self.control {
            if ctl
                .try_send(Control::Warm(code.clone(), warming.clone()))
                .is_err()
            {
                warming.one_done();
            }
        }
        if warming.remaining.load(std::sync::atomic::Ordering::Acquire) > 0 {
            let _ = tokio::time::timeout(WARM_WAIT, notified).await;
        }
    }

    /// Drop a deleted function's runtimes.
    pub fn forget(&self, name: &str) {
        for ctl in &self.control {
            let _ = ctl.try_send(Control::Forget(name.to_string()));
        }
    }
}

/// Function name -> (code version, initialized runtime).
type Loaded = HashMap<String, (u64, JsFunction)>;

fn control(loaded: &mut Loaded, message: Control) {
    match message {
        Control::Forget(name) => {
            loaded.remove(&name);
        }
        Control::Warm(code, warming) => {
            let name = &code.setup.name;
            if loaded.get(name).is_none_or(|(v, _)| *v < code.version) {
                match JsFunction::load(&code.setup) {
                    Ok(f) => {
                        tracing::debug!(function = %name, init_ms = f.init.as_secs_f64() * 1e3, "function warmed");
                        loaded.insert(name.clone(), (code.version, f));
                    }
                    Err(e) => {
                        tracing::warn!(function = %name, error = %e, "function does not load")
                    }
                }
            }
            warming.one_done();
        }
    }
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>, ctl: mpsc::Receiver<Control>) {
    let mut loaded: Loaded = HashMap::new();
    loop {
        while let Ok(message) = ctl.try_recv() {
            control(&mut loaded, message);
        }
        let job = {
            let rx = rx.lock().unwrap();
            // Right after an invocation the next one often follows within
            // microseconds: look for it briefly before sleeping, which saves
            // the thread's wake-up on a busy function.
            let spin_until = std::time::Instant::now() + SPIN;
            let mut got = rx.try_recv();
            while matches!(got, Err(mpsc::TryRecvError::Empty))
                && std::time::Instant::now() < spin_until
            {
                std::hint::spin_loop();
                got = rx.try_recv();
            }
            match got {
                Ok(job) => job,
                Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => match rx.recv_timeout(CONTROL_POLL) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
            }
        };
        let Job {
            code,
            event,
            context,
            request_id,
            timeout,
            reply,
        } = job;
        if reply.is_closed() {
            continue;
        }
        let name = &code.setup.name;
        let mut init = None;
        if loaded.get(name).is_none_or(|(v, _)| *v != code.version) {
            loaded.remove(name);
            match JsFunction::load(&code.setup) {
                Ok(f) => {
                    init = Some(f.init);
                    loaded.insert(name.clone(), (code.version, f));
                }
                Err(error) => {
                    let _ = reply.send(Ran {
                        result: JsResult::Error {
                            error,
                            broken: true,
                        },
                        init: None,
                    });
                    continue;
                }
            }
        }
        let (_, f) = &loaded[name];
        let result = f.invoke(&event, &context, &request_id, timeout);
        if let JsResult::Error { broken: true, .. } = result {
            // Interrupted or out of memory: never reused.
            loaded.remove(name);
        }
        let _ = reply.send(Ran { result, init });
    }
}
