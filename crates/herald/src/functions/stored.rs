//! Functions created through the Lambda API live in the store; every node
//! serves exactly what it holds. The same re-read as the APIs' (at start, on
//! a change notification `fn/<name>`, and periodically), with the same guard
//! against applying a read older than this node's own write.

use super::{Function, FunctionSpec, Functions, Package};
use crate::store::{Store, StoredFunction};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;

const ATTEMPTS: usize = 5;

impl Functions {
    /// The stored form of a function the API made.
    pub fn to_stored(f: &Function) -> StoredFunction {
        StoredFunction {
            name: f.spec.name.clone(),
            spec: serde_json::to_string(&f.spec).expect("a spec serializes"),
            code: f.zip.as_deref().unwrap_or_default().to_vec(),
        }
    }

    /// Build a function from its stored form (blocking: runs init).
    pub fn from_stored(&self, stored: &StoredFunction) -> Result<Arc<Function>, String> {
        let spec: FunctionSpec = serde_json::from_str(&stored.spec)
            .map_err(|e| format!("stored function {}: {e}", stored.name))?;
        let package = match spec.url() {
            Some(_) => None,
            None => Some(Package::from_zip(&stored.code, &spec.handler)?),
        };
        let zip = (!stored.code.is_empty()).then(|| Bytes::from(stored.code.clone()));
        self.prepare(spec, package, zip, false)
    }

    /// Make the API's functions exactly the stored ones (the configuration
    /// file's are left alone, and win over a stored one of the same name).
    /// Returns what could not be applied.
    pub async fn reconcile(self: &Arc<Self>, store: &Store) -> Result<Vec<String>, String> {
        for _ in 0..ATTEMPTS {
            let before = store.local_writes();
            let stored = store.functions().await?;
            let mut problems = Vec::new();
            let mut built = Vec::new();
            for sf in &stored {
                let current = self.get(&sf.name);
                if current.as_ref().is_some_and(|f| f.from_file) {
                    continue;
                }
                let same = current.is_some_and(|f| Self::to_stored(&f) == *sf);
                if same {
                    continue;
                }
                let this = self.clone();
                let sf = sf.clone();
                match tokio::task::spawn_blocking(move || this.from_stored(&sf)).await {
                    Ok(Ok(f)) => {
                        self.warm(&f).await;
                        built.push(f)
                    }
                    Ok(Err(e)) => problems.push(e),
                    Err(e) => problems.push(format!("loading a stored function failed: {e}")),
                }
            }
            if store.local_writes() != before {
                continue;
            }
            let names: HashSet<&str> = stored.iter().map(|f| f.name.as_str()).collect();
            for f in built {
                tracing::info!(function = %f.spec.name, "function serving (from the store)");
                self.insert(f);
            }
            for f in self.list() {
                if !f.from_file && !names.contains(f.spec.name.as_str()) {
                    self.remove(&f.spec.name);
                    tracing::info!(function = %f.spec.name, "function deleted (from the store)");
                }
            }
            return Ok(problems);
        }
        Ok(Vec::new())
    }
}
