//! Every `From<…> for ApiError`: what a store, search, pipeline-file or extractor error
//! becomes over HTTP. Handlers use `?`; nothing else maps library errors to statuses.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use brigade_search::SearchError;
use brigade_store::StoreError;

use super::{ApiError, ErrorCode};

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CollectionNotFound(name) => {
                ApiError::not_found(format!("No collection named `{name}`."))
            }
            StoreError::RecordNotFound { collection, id } => {
                ApiError::not_found(format!("No record `{id}` in collection `{collection}`."))
            }
            StoreError::Conflict { message, errors } => ApiError {
                status: StatusCode::CONFLICT,
                detail: message,
                errors: (!errors.is_empty()).then_some(errors),
                retry_after: None,
                code: None,
            },
            StoreError::Invalid(errors) => ApiError::invalid(errors),
            StoreError::Forbidden {
                anonymous: true,
                message,
            } => ApiError::unauthorized(format!("Log in first: {message}.")),
            StoreError::Forbidden {
                anonymous: false,
                message,
            } => ApiError::forbidden(format!("Not allowed: {message}."))
                .with_code(ErrorCode::RuleRefused),
            StoreError::Unprocessable(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            e @ StoreError::ReadOnly { .. } => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, e.to_string())
            }
            StoreError::Timeout { budget } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "The query took longer than {} s (server.request_timeout) and was stopped; narrow the filter, or ask for fewer records or no total (skip_total=true).",
                    budget.as_secs_f64()
                ),
            )
            .with_code(ErrorCode::Timeout),
            e @ StoreError::Unavailable { .. } => {
                tracing::error!(error = %brigade_core::report::chain(&e), "Database unavailable.");
                ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The database is unavailable; retry shortly.",
                    )
                }
            }
            e @ (StoreError::Migration { .. } | StoreError::Internal { .. }) => ApiError::internal(e),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "The request body is larger than the limit.")
        } else {
            ApiError::new(status, r.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::field("query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::not_found(r.body_text())
    }
}

impl From<brigade_pipelines::ConfigError> for ApiError {
    /// An invalid pipeline file: 422 naming the file, line and key.
    fn from(e: brigade_pipelines::ConfigError) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Invalid { field, message } => ApiError::field(&field, message),
            e @ (SearchError::UnknownIndex(_) | SearchError::UnknownDocument(_)) => {
                ApiError::not_found(e.to_string())
            }
            e @ SearchError::Document { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            // The message already says the cause in its own words.
            SearchError::Embed { message: m, .. } => {
                tracing::error!(error = %m, "Embedder failed.");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "The embedder failed: {m}. Retry, or check the embedding model or server."
                    ),
                )
            }
            e @ SearchError::LlmTimeout(_) => {
                tracing::warn!(error = %e, "Language model timed out.");
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("{e}; retry, or raise llm.timeout_s in brigade.toml."),
                )
            }
            e @ SearchError::Llm { .. } => {
                tracing::warn!(error = %e, "Language model failed.");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "{e}; check [llm] base_url and model in brigade.toml, or remove [llm] \
                         to answer extractively."
                    ),
                )
            }
            SearchError::Store(e) => e.into(),
        }
    }
}
