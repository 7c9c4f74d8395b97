//! The worker threads that run JavaScript functions. Each worker keeps one
//! initialized runtime per function (and code version) and reuses it, so a
//! warm invocation is a call into already-initialized code. A new version is
//! warmed (loaded and initialized) as soon as it is deployed, before it takes
//! traffic.
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

enum Job {
    Invoke {
        code: Arc<JsCode>,
        event: String,
        context: String,
        request_id: String,
        timeout: Duration,
        reply: oneshot::Sender<Ran>,
    },
    Warm(Arc<JsCode>),
    Forget(String),
}

pub struct JsPool {
    jobs: mpsc::SyncSender<Job>,
    workers: usize,
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
        let workers = settings.workers.max(1);
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("herald-functions-{i}"))
                .spawn(move || worker(rx))
                .map_err(|e| e.to_string())?;
        }
        Ok(JsPool { jobs: tx, workers })
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
        let job = Job::Invoke {
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

    /// Load `code` on the workers before traffic comes (best effort: a full
    /// queue skips it; the first invocation then loads it).
    pub fn warm(&self, code: &Arc<JsCode>) {
        for _ in 0..self.workers {
            let _ = self.jobs.try_send(Job::Warm(code.clone()));
        }
    }

    /// Drop a deleted function's runtimes (best effort, as [`JsPool::warm`]).
    pub fn forget(&self, name: &str) {
        for _ in 0..self.workers {
            let _ = self.jobs.try_send(Job::Forget(name.to_string()));
        }
    }
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    // Function name -> (code version, initialized runtime).
    let mut loaded: HashMap<String, (u64, JsFunction)> = HashMap::new();
    loop {
        let job = match rx.lock().unwrap().recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        match job {
            Job::Forget(name) => {
                loaded.remove(&name);
            }
            Job::Warm(code) => {
                let name = &code.setup.name;
                if loaded.get(name).is_some_and(|(v, _)| *v >= code.version) {
                    continue;
                }
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
            Job::Invoke {
                code,
                event,
                context,
                request_id,
                timeout,
                reply,
            } => {
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
    }
}
