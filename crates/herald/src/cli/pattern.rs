//! `herald pattern test`: try an event pattern, for people writing patterns
//! and for scripts (the exit code is the answer).

use herald_pattern::Pattern;
use std::process::ExitCode;

/// JSON text as given, or the contents of `@FILE`.
fn text(arg: &str, what: &str) -> Result<String, String> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the {what} from {path}: {e}")),
        None => Ok(arg.to_string()),
    }
}

/// 0 and `match`, 1 and `no match`, or 2 and the reason the input is invalid.
pub fn test(pattern: &str, event: &str) -> ExitCode {
    let checked = (|| {
        let pattern = Pattern::parse(&text(pattern, "pattern")?).map_err(|e| e.to_string())?;
        let event: serde_json::Value = serde_json::from_str(&text(event, "event")?)
            .map_err(|e| format!("the event is not valid JSON: {e}"))?;
        Ok::<bool, String>(pattern.matches(&event))
    })();
    match checked {
        Ok(true) => {
            println!("match");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("no match");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::from(2)
        }
    }
}
