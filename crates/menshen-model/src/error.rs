//! The validation error every input type returns.

use serde::Serialize;

/// A validation failure that names the offending field and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field (JSON name) that is wrong.
    pub field: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl ValidationError {
    /// Build one.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}
