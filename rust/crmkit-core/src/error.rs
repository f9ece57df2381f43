//! Errors raised by the core engines.

use thiserror::Error;

/// Every error the core crate returns. The binding crate maps each variant to a
/// Python exception class in `crmkit.errors`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// Input data that cannot be processed (wrong lengths, bad encoding, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A rule that does not parse or does not type-check.
    #[error("{0}")]
    Rule(String),
    /// A configuration value out of range.
    #[error("invalid config: {0}")]
    Config(String),
}

/// Result alias for the core crate.
pub type CoreResult<T> = Result<T, CoreError>;
