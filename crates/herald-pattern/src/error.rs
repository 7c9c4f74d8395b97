//! Why a pattern was refused.

use std::fmt;

/// A pattern that is not valid, with a message for people that names the
/// offending field (as a dotted path) or operator. Front ends wrap it in their
/// own error shape (`InvalidEventPatternException`, a `subscribe_error`, a
/// Lambda `InvalidParameterValueException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl PatternError {
    pub(crate) fn at(path: &[String], what: impl fmt::Display) -> PatternError {
        if path.is_empty() {
            PatternError(what.to_string())
        } else {
            PatternError(format!("field '{}': {what}", path.join(".")))
        }
    }

    /// The message alone.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Event pattern is not valid. Reason: {}", self.0)
    }
}

impl std::error::Error for PatternError {}
