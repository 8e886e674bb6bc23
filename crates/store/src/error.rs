//! Store errors: user faults (not found, conflicts, invalid queries) kept apart from internal
//! faults, whose causes are logged by the API layer and never sent to clients.

use brigade_core::errors::FieldErrors;
use brigade_core::report::Cause;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such collection.
    #[error("collection `{0}` not found")]
    CollectionNotFound(String),
    /// No such record.
    #[error("record `{id}` not found in `{collection}`")]
    RecordNotFound { collection: String, id: String },
    /// A unique value or a reference would be violated.
    #[error("{message}")]
    Conflict {
        message: String,
        errors: FieldErrors,
    },
    /// A collection rule refuses the operation.
    #[error("{message}")]
    Forbidden { anonymous: bool, message: String },
    /// Input that fails validation, per field.
    #[error("invalid input: {}", .0.summary())]
    Invalid(FieldErrors),
    /// Well-formed but cannot be carried out (e.g. a schema change the data does not allow).
    #[error("{0}")]
    Unprocessable(String),
    /// A migration file that cannot be read or applied.
    #[error("migration `{file}`: {message}")]
    Migration { file: String, message: String },
    /// A write to a collection a pipeline maintains.
    #[error(
        "collection `{collection}` is maintained by pipeline `{pipeline}` and is read-only; change its model and run the pipeline"
    )]
    ReadOnly {
        collection: String,
        pipeline: String,
    },
    /// A statement ran past the request's deadline and was stopped (see [`crate::deadline`]).
    #[error("the query took longer than {} s and was stopped", .budget.as_secs_f64())]
    Timeout { budget: std::time::Duration },
    /// The database could not be reached. Trying again later may help: see
    /// [`StoreError::is_transient`].
    #[error("database unavailable: {message}")]
    Unavailable {
        /// What failed, with the cause's own words (see [`brigade_core::report`]).
        message: String,
        /// The driver's or the system's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Anything else; the message is for logs only.
    #[error("database error: {message}")]
    Internal {
        /// What failed, with the cause's own words (see [`brigade_core::report`]).
        message: String,
        /// The driver's or the system's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
}

impl StoreError {
    /// [`StoreError::Internal`] for a broken invariant, with no underlying error.
    pub fn internal(message: impl Into<String>) -> Self {
        StoreError::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Internal`] caused by `cause`: the message is `context: cause`.
    pub fn internal_from(context: impl std::fmt::Display, cause: impl Into<Cause>) -> Self {
        let cause = cause.into();
        StoreError::Internal {
            message: format!("{context}: {cause}"),
            source: Some(cause),
        }
    }

    /// [`StoreError::Unavailable`] with no underlying error (a closed pool, a shutdown).
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Unavailable`] with its cause; `message` already says it in words.
    pub fn unavailable_from(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    /// Whether the same call may succeed later without anyone changing anything: the
    /// database was unreachable, busy or shutting down. Deadlines are not transient — the
    /// same query would take as long again.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// Shorthand for [`StoreError::Invalid`] with one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        StoreError::Invalid(FieldErrors::one(field, message))
    }

    /// Shorthand for [`StoreError::Conflict`] about one field.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        StoreError::Conflict {
            errors: FieldErrors::one(field, message.clone()),
            message,
        }
    }
}
