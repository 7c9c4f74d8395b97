//! Task tokens: a `.waitForTaskToken` task waits here until someone calls
//! `SendTaskSuccess` or `SendTaskFailure` with its token, or its
//! `HeartbeatSeconds` pass without a `SendTaskHeartbeat`
//! (`States.HeartbeatTimeout`).

use super::Failure;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a token's waiter hears.
#[derive(Debug)]
pub enum Signal {
    Success(Value),
    Failure(Failure),
    Heartbeat,
}

/// A registered token: dropped when the task stops waiting.
pub struct Waiting<'a> {
    tokens: &'a Tokens,
    token: String,
    rx: mpsc::Receiver<Signal>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.tokens.waiting.lock().unwrap().remove(&self.token);
    }
}

#[derive(Default)]
pub struct Tokens {
    /// Each waiting token's channel. Bounded (8): a caller that finds it
    /// full gets an error, never blocks.
    waiting: Mutex<HashMap<String, mpsc::Sender<Signal>>>,
}

/// Why a token could not be signalled: AWS's `TaskDoesNotExist` or
/// `TaskTimedOut`.
#[derive(Debug, PartialEq)]
pub enum SendError {
    Unknown,
    Busy,
}

impl Tokens {
    pub fn register(&self, token: &str) -> Waiting<'_> {
        let (tx, rx) = mpsc::channel(8);
        self.waiting.lock().unwrap().insert(token.to_string(), tx);
        Waiting {
            tokens: self,
            token: token.to_string(),
            rx,
        }
    }

    pub fn send(&self, token: &str, signal: Signal) -> Result<(), SendError> {
        let tx = self
            .waiting
            .lock()
            .unwrap()
            .get(token)
            .cloned()
            .ok_or(SendError::Unknown)?;
        tx.try_send(signal).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Busy,
            mpsc::error::TrySendError::Closed(_) => SendError::Unknown,
        })
    }

    /// Wait for the outcome; heartbeats restart the heartbeat clock.
    pub async fn wait(&self, mut w: Waiting<'_>, heartbeat: Option<f64>) -> Result<Value, Failure> {
        let beat = heartbeat.map(Duration::from_secs_f64);
        loop {
            let next = match beat {
                Some(b) => match tokio::time::timeout(b, w.rx.recv()).await {
                    Ok(s) => s,
                    Err(_) => {
                        return Err(Failure::new(
                            "States.HeartbeatTimeout",
                            "The task's heartbeat timed out.",
                        ))
                    }
                },
                None => w.rx.recv().await,
            };
            match next {
                Some(Signal::Success(v)) => return Ok(v),
                Some(Signal::Failure(f)) => return Err(f),
                Some(Signal::Heartbeat) => continue,
                None => return Err(Failure::new("States.Runtime", "the task token was dropped")),
            }
        }
    }
}
