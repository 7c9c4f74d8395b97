//! Functions declared in the configuration file (`[[functions]]`): turned
//! into the same [`FunctionSpec`] and package the Lambda API makes, so both
//! run alike. Read at start; a function whose code does not load stops the
//! start with the reason.

use super::{now_iso, sha256_base64, Function, FunctionSpec, Functions, Package, URL_VARIABLE};
use crate::config::FunctionFile;
use bytes::Bytes;
use std::sync::Arc;

impl Functions {
    /// Build a declared function (blocking: it reads files and runs init).
    pub fn declared(&self, decl: &FunctionFile) -> Result<Arc<Function>, String> {
        let name = &decl.name;
        let handler = decl
            .handler
            .clone()
            .unwrap_or_else(|| "index.handler".into());
        let mut environment = decl.environment.clone();
        let (package, zip, bytes): (Option<Package>, Option<Bytes>, Vec<u8>) =
            match (&decl.code, &decl.code_file, &decl.url) {
                (Some(code), _, _) => {
                    let file = format!(
                        "{}.mjs",
                        handler.rsplit_once('.').map(|(f, _)| f).unwrap_or("index")
                    );
                    (
                        Some(Package::single(&file, code, &handler)?),
                        None,
                        code.clone().into_bytes(),
                    )
                }
                (_, Some(path), _) => {
                    let bytes = std::fs::read(path).map_err(|e| {
                        format!("function '{name}': cannot read {}: {e}", path.display())
                    })?;
                    let is_zip = path.extension().is_some_and(|e| e == "zip");
                    let package = if is_zip {
                        Package::from_zip(&bytes, &handler)
                    } else {
                        let file_name = path
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "index.mjs".into());
                        let text = String::from_utf8(bytes.clone())
                            .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
                        // The handler's module is this file, whatever its name.
                        let export = handler
                            .rsplit_once('.')
                            .map(|(_, e)| e)
                            .unwrap_or("handler");
                        let stem = file_name
                            .rsplit_once('.')
                            .map(|(s, _)| s)
                            .unwrap_or(&file_name);
                        Package::single(&file_name, &text, &format!("{stem}.{export}"))
                    }
                    .map_err(|e| format!("function '{name}': {e}"))?;
                    (
                        Some(package),
                        is_zip.then(|| Bytes::from(bytes.clone())),
                        bytes,
                    )
                }
                (_, _, Some(url)) => {
                    environment.insert(URL_VARIABLE.to_string(), url.clone());
                    (None, None, url.clone().into_bytes())
                }
                _ => return Err(format!("function '{name}': give code, code_file or url")),
            };
        let runtime = decl.runtime.clone().unwrap_or_else(|| {
            if decl.url.is_some() {
                "herald-http"
            } else {
                "herald-js"
            }
            .to_string()
        });
        let spec = FunctionSpec {
            name: name.clone(),
            runtime,
            handler,
            description: decl.description.clone().unwrap_or_default(),
            role: String::new(),
            timeout_secs: decl.timeout_secs.unwrap_or(3),
            memory_mb: decl.memory_mb.unwrap_or(128),
            environment,
            reserved_concurrency: decl.reserved_concurrency,
            event_invoke: None,
            code_sha256: sha256_base64(&bytes),
            code_size: bytes.len() as u64,
            last_modified: now_iso(),
            revision_id: crate::new_uuid().to_string(),
        };
        self.prepare(spec, package, zip, true)
            .map_err(|e| format!("function '{name}': {e}"))
    }
}
