//! Errors of pipeline files (with file, line and key, so a user can jump to the mistake) and
//! of runs (with the step and what to do about it).

use std::fmt;

use brigade_store::StoreError;

/// A problem in a pipeline file or a model file, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, relative to the app directory.
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a line.
    pub line: usize,
    /// The key path, e.g. `extract[1].format`; empty for whole-file problems.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(file: &str, line: usize, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Why a pipeline step or run failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The pipeline or one of its models is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A source could not be read, or a row of it is malformed.
    #[error("{0}")]
    Extract(String),
    /// A source that may answer later: the network, 5xx or 429 after the extractor's own
    /// retries, a database that is down. Retried like a busy database; a missing file or a
    /// bad row is an [`PipelineError::Extract`] and fails the same way every time.
    #[error("{0} (transient)")]
    Transient(String),
    /// An expectation with `on_fail = "fail"` or a frozen contract stopped the run.
    #[error("{0}")]
    Check(String),
    /// The database refused something.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Someone cancelled the run.
    #[error("the run was cancelled")]
    Cancelled,
}

impl PipelineError {
    /// Whether trying the step again may help (network, busy database), as opposed to a
    /// mistake in the pipeline or the data.
    pub fn is_transient(&self) -> bool {
        matches!(self, PipelineError::Transient(_))
            || matches!(self, PipelineError::Store(e) if e.is_transient())
    }
}
