//! A JavaScript function's code: the files of its deployment package (a zip,
//! as Lambda takes it, or one module given inline or as a file) and the
//! module and export its `Handler` names (`index.handler`: `handler`
//! exported by `index.mjs`, `index.js` or `index.cjs`).
//!
//! ES modules run as they are. A `.cjs` file, or a `.js` file with no
//! `import`/`export` statement, is CommonJS: it is wrapped so that
//! `module.exports` / `exports.x` become the module's exports, as Node runs
//! such a file on Lambda.

use std::collections::HashMap;
use std::io::Read;

/// Lambda's limit on a zip uploaded in the request (50 MB), and on what it
/// unpacks to (250 MB).
pub const MAX_ZIP_BYTES: usize = 50 << 20;
pub const MAX_UNPACKED_BYTES: usize = 250 << 20;

/// The module files of a package, by path inside it (`index.mjs`,
/// `lib/util.js`), ready for the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub files: HashMap<String, String>,
    /// The module the handler lives in.
    pub entry: String,
    /// The export the handler is.
    pub export: String,
}

fn is_module_path(p: &str) -> bool {
    p.ends_with(".mjs") || p.ends_with(".js") || p.ends_with(".cjs") || p.ends_with(".json")
}

/// Whether a `.js` file is CommonJS: no line starts an `import` or `export`.
fn is_commonjs(path: &str, source: &str) -> bool {
    path.ends_with(".cjs")
        || (path.ends_with(".js")
            && !source.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("export ")
                    || l.starts_with("export{")
                    || l.starts_with("import ")
                    || l.starts_with("import{")
            }))
}

/// A CommonJS file as an ES module exporting `module.exports` (as the
/// default export and, when it is an object, by name for the handler).
fn wrap_commonjs(source: &str) -> String {
    format!(
        "const module = {{ exports: {{}} }};\nconst exports = module.exports;\n\
         (function (module, exports) {{\n{source}\n}})(module, exports);\n\
         export default module.exports;\n"
    )
}

/// Split Lambda's `Handler` (`file.export`, `dir/file.export`).
fn split_handler(handler: &str) -> Result<(&str, &str), String> {
    match handler.rsplit_once('.') {
        Some((file, export))
            if !file.is_empty()
                && !export.is_empty()
                && export
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') =>
        {
            Ok((file, export))
        }
        _ => Err(format!(
            "Handler '{handler}' is not of the form file.export (for example index.handler)"
        )),
    }
}

impl Package {
    /// Files and a `Handler`: the entry module is `file` + `.mjs`, `.js` or
    /// `.cjs`, whichever the package has (in that order).
    pub fn new(mut files: HashMap<String, String>, handler: &str) -> Result<Package, String> {
        let (file, export) = split_handler(handler)?;
        let entry = ["mjs", "js", "cjs"]
            .iter()
            .map(|ext| format!("{file}.{ext}"))
            .find(|p| files.contains_key(p))
            .ok_or_else(|| {
                format!("Cannot find module '{file}': the package has no {file}.mjs, {file}.js or {file}.cjs")
            })?;
        for (path, source) in files.iter_mut() {
            if is_commonjs(path, source) {
                *source = wrap_commonjs(source);
            } else if path.ends_with(".json") {
                *source = format!("export default {source};");
            }
        }
        Ok(Package {
            files,
            entry,
            export: export.to_string(),
        })
    }

    /// One module given as text (inline or from a `.mjs`/`.js` file).
    pub fn single(file_name: &str, source: &str, handler: &str) -> Result<Package, String> {
        Package::new(
            HashMap::from([(file_name.to_string(), source.to_string())]),
            handler,
        )
    }

    /// A zip's module files (others are ignored). Bad zips, non-UTF-8 modules
    /// and packages past Lambda's size limits are refused with the reason.
    pub fn from_zip(zip: &[u8], handler: &str) -> Result<Package, String> {
        if zip.len() > MAX_ZIP_BYTES {
            return Err(format!("The zip is larger than {} MB", MAX_ZIP_BYTES >> 20));
        }
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
            .map_err(|e| format!("Could not unzip uploaded file: {e}"))?;
        let mut files = HashMap::new();
        let mut total = 0usize;
        for i in 0..archive.len() {
            let mut entry = archive
                .by_index(i)
                .map_err(|e| format!("Could not unzip uploaded file: {e}"))?;
            if entry.is_dir() {
                continue;
            }
            let Some(path) = entry.enclosed_name() else {
                return Err(format!(
                    "Could not unzip uploaded file: unsafe path {}",
                    entry.name()
                ));
            };
            let path = path.to_string_lossy().replace('\\', "/");
            total = total.saturating_add(entry.size() as usize);
            if total > MAX_UNPACKED_BYTES {
                return Err(format!(
                    "Unzipped size must be smaller than {} bytes",
                    MAX_UNPACKED_BYTES
                ));
            }
            if !is_module_path(&path) || path.starts_with("node_modules/.") {
                continue;
            }
            let mut text = String::new();
            (&mut entry)
                .take(MAX_UNPACKED_BYTES as u64)
                .read_to_string(&mut text)
                .map_err(|e| format!("{path} is not UTF-8 text: {e}"))?;
            files.insert(path, text);
        }
        Package::new(files, handler)
    }
}

/// `path` (the importer `base`'s relative `name`, or a bare name) as a path
/// inside the package: `./`, `../` resolved, `.mjs`/`.js`/`.cjs`/`/index.*`
/// tried as Node does.
pub fn resolve(files: &HashMap<String, String>, base: &str, name: &str) -> Option<String> {
    let joined = if name.starts_with("./") || name.starts_with("../") {
        let dir = base.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("{dir}/{name}")
    } else if let Some(abs) = name.strip_prefix('/') {
        abs.to_string()
    } else {
        // A bare specifier: a package under node_modules.
        format!("node_modules/{name}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    let path = parts.join("/");
    let candidates = [
        path.clone(),
        format!("{path}.mjs"),
        format!("{path}.js"),
        format!("{path}.cjs"),
        format!("{path}.json"),
        format!("{path}/index.mjs"),
        format!("{path}/index.js"),
        format!("{path}/index.cjs"),
    ];
    candidates.into_iter().find(|c| files.contains_key(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn handlers_name_a_module_and_an_export() {
        let z = zip_of(&[
            ("index.mjs", "export const handler = () => 1;"),
            ("lib/a.js", "exports.x = 1;"),
            ("README.md", "ignored"),
        ]);
        let p = Package::from_zip(&z, "index.handler").unwrap();
        assert_eq!(
            (p.entry.as_str(), p.export.as_str()),
            ("index.mjs", "handler")
        );
        assert!(
            p.files["lib/a.js"].contains("module.exports"),
            "CommonJS is wrapped"
        );
        assert!(!p.files.contains_key("README.md"));
        let e = Package::from_zip(&z, "main.handler").unwrap_err();
        assert!(e.contains("Cannot find module 'main'"), "{e}");
        assert!(Package::from_zip(&z, "nodot").is_err());
        let e = Package::from_zip(b"not a zip", "index.handler").unwrap_err();
        assert!(e.contains("Could not unzip"), "{e}");
    }

    #[test]
    fn imports_resolve_inside_the_package() {
        let files: HashMap<String, String> = [
            "index.mjs",
            "lib/util.js",
            "lib/x/index.mjs",
            "node_modules/dep/index.js",
        ]
        .iter()
        .map(|p| (p.to_string(), String::new()))
        .collect();
        assert_eq!(
            resolve(&files, "index.mjs", "./lib/util.js").as_deref(),
            Some("lib/util.js")
        );
        assert_eq!(
            resolve(&files, "index.mjs", "./lib/util").as_deref(),
            Some("lib/util.js")
        );
        assert_eq!(
            resolve(&files, "lib/util.js", "./x").as_deref(),
            Some("lib/x/index.mjs")
        );
        assert_eq!(
            resolve(&files, "lib/x/index.mjs", "../../index.mjs").as_deref(),
            Some("index.mjs")
        );
        assert_eq!(
            resolve(&files, "index.mjs", "dep").as_deref(),
            Some("node_modules/dep/index.js")
        );
        assert_eq!(resolve(&files, "index.mjs", "../../etc/passwd"), None);
        assert_eq!(resolve(&files, "index.mjs", "fs"), None);
    }
}
