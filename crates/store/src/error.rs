//! Store errors: user faults (not found, conflicts, invalid queries) kept apart from internal
//! faults, whose causes are logged by the API layer and never sent to clients.

use brigade_core::errors::FieldErrors;

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
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the message is for logs only.
    #[error("database error: {0}")]
    Internal(String),
}

impl StoreError {
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
