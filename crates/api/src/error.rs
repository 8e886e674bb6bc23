//! [`ApiError`]: the single place errors become RFC 9457 `application/problem+json`.
//! Internal causes are logged with the request's context and never sent to the client.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brigade_core::errors::FieldErrors;
use brigade_store::StoreError;
use serde_json::{Map, Value, json};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Option<FieldErrors>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status and a message for the client.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }

    /// 400 with per-field messages.
    pub fn invalid(errors: FieldErrors) -> Self {
        let detail = format!("The request is invalid: {}.", errors.summary());
        ApiError {
            status: StatusCode::BAD_REQUEST,
            detail,
            errors: Some(errors),
            retry_after: None,
        }
    }

    /// 400 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(FieldErrors::one(field, message))
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 500; `cause` is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Internal error.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred; it has been logged.",
        )
    }

    /// Prefixes field errors (for batch requests: `requests.2.`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.errors = Some(self.errors.take().unwrap_or_default().prefixed(prefix));
        if self.errors.as_ref().is_some_and(FieldErrors::is_empty) {
            self.errors = Some(FieldErrors::one(prefix, self.detail.clone()));
        }
        self.detail = format!("{prefix}: {}", self.detail);
        self
    }
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": title(self.status),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(errors) = &self.errors {
            let map: Map<String, Value> = errors
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            body["errors"] = Value::Object(map);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

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
            },
            StoreError::Invalid(errors) => ApiError::invalid(errors),
            StoreError::Forbidden {
                anonymous: true,
                message,
            } => ApiError::unauthorized(format!("Log in first: {message}.")),
            StoreError::Forbidden {
                anonymous: false,
                message,
            } => ApiError::forbidden(format!("Not allowed: {message}.")),
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
            ),
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "Database unavailable.");
                ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The database is unavailable; retry shortly.",
                    )
                }
            }
            e @ (StoreError::Migration { .. } | StoreError::Internal(_)) => ApiError::internal(e),
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
