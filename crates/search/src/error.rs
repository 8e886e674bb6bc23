//! Errors of search and RAG, typed so the API maps each to one status: bad input is a 400
//! naming the field, an unknown index a 404, a failing model a 502 or 504.

use brigade_core::report::Cause;
use brigade_store::StoreError;

/// Why a search, an ingest or an answer failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Bad input from the caller: the field and what is wrong with it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No index of that name in `brigade.toml`.
    #[error(
        "no search index named `{0}`; indexes are declared under [[search.indexes]] in brigade.toml"
    )]
    UnknownIndex(String),
    /// No such document in the index.
    #[error("no document `{0}` in this index")]
    UnknownDocument(String),
    /// A document could not be read or parsed (a broken PDF, a file that vanished).
    #[error("{path}: {message}")]
    Document { path: String, message: String },
    /// The embedder failed (a model directory that does not load, an embeddings API down).
    #[error("embedder: {message}")]
    Embed {
        /// What failed, with the cause's own words.
        message: String,
        /// The model's, the HTTP client's or the task's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The configured language model did not answer in time.
    #[error("the language model did not answer within {0} s")]
    LlmTimeout(u64),
    /// The configured language model failed or answered something unusable.
    #[error("the language model failed: {message}")]
    Llm {
        /// What failed, with the cause's own words.
        message: String,
        /// The HTTP client's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The database refused something.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SearchError {
    /// [`SearchError::Embed`] with no underlying error.
    pub fn embed(message: impl Into<String>) -> Self {
        SearchError::Embed {
            message: message.into(),
            source: None,
        }
    }

    /// [`SearchError::Embed`] caused by `cause`: the message is `context: cause`.
    pub fn embed_from(context: impl std::fmt::Display, cause: impl Into<Cause>) -> Self {
        let cause = cause.into();
        SearchError::Embed {
            message: format!("{context}: {cause}"),
            source: Some(cause),
        }
    }

    /// [`SearchError::Llm`] with no underlying error.
    pub fn llm(message: impl Into<String>) -> Self {
        SearchError::Llm {
            message: message.into(),
            source: None,
        }
    }

    /// [`SearchError::Llm`] caused by `cause`: the message is `context: cause`.
    pub fn llm_from(context: impl std::fmt::Display, cause: impl Into<Cause>) -> Self {
        let cause = cause.into();
        SearchError::Llm {
            message: format!("{context}: {cause}"),
            source: Some(cause),
        }
    }

    /// Bad input on `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        SearchError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
