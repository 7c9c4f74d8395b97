//! Every TOML example in the docs runs as written: each ```toml block of
//! README.md and docs/*.md parses and resolves to a valid configuration.

use herald::config::{ApiConfig, ConfigFile, Overrides};
use std::path::Path;

fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some((n + 1, String::new())),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some((_, block)), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_toml_example_in_the_docs_parses_and_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, block) in toml_blocks(&text) {
            checked += 1;
            let result =
                ConfigFile::parse(&block).and_then(|f| ApiConfig::resolve(f, Overrides::default()));
            if let Err(e) = result {
                failures.push(format!("{}:{line}: {e}", file.display()));
            }
        }
    }
    assert!(checked >= 5, "found only {checked} examples");
    assert!(
        failures.is_empty(),
        "examples that do not run:\n{}",
        failures.join("\n")
    );
}
