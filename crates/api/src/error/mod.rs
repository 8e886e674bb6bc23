//! [`ApiError`]: the single place errors become RFC 9457 `application/problem+json`.
//! Internal causes are logged with the request's context and never sent to the client.
//!
//! Every problem carries a stable, machine-readable [`ErrorCode`] in its `code` member
//! (snake_case), so clients branch on it instead of on the status or the English `detail`.
//!
//! What each library error becomes (status, code, wording) is decided in one file, [`from`].

mod from;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brigade_core::errors::FieldErrors;
use serde_json::{Map, Value, json};

/// The `code` member of a problem: what went wrong, stable across releases and wordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body, a field, a query parameter or a filter is invalid.
    ValidationFailed,
    /// 401: no, an invalid, an expired or a revoked token; or wrong credentials.
    Unauthenticated,
    /// 403: a collection rule refused a signed-in caller.
    RuleRefused,
    /// 403: the caller is known but lacks the role or kind of account the route needs.
    Forbidden,
    /// 404: no such route, collection, record, pipeline, run, index or document.
    NotFound,
    /// 405: the route does not take that method (or the collection is read-only).
    MethodNotAllowed,
    /// 409: a unique value is taken, a record is still referenced, a run already ended.
    Conflict,
    /// 413: the body is larger than the limit.
    PayloadTooLarge,
    /// 415: the body is not sent as JSON.
    UnsupportedMediaType,
    /// 422: well-formed but cannot be processed (invalid pipeline files, type changes).
    Unprocessable,
    /// 429: over a rate limit or a locked login; see `Retry-After`.
    RateLimited,
    /// 500: an internal error (logged, never described).
    Internal,
    /// 502: an upstream service (embedder, language model) failed.
    UpstreamFailed,
    /// 503: the request or its query ran past `server.request_timeout`.
    Timeout,
    /// 503: the database is unreachable or migrations are pending; see `Retry-After`.
    Unavailable,
    /// 504: an upstream service (language model) timed out.
    UpstreamTimeout,
}

impl ErrorCode {
    /// Every code, for the OpenAPI document.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::ValidationFailed,
        ErrorCode::Unauthenticated,
        ErrorCode::RuleRefused,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unprocessable,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::UpstreamFailed,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::UpstreamTimeout,
    ];

    /// The code of a status when nothing more precise was said.
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::BAD_REQUEST => ErrorCode::ValidationFailed,
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::Unprocessable,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            StatusCode::BAD_GATEWAY => ErrorCode::UpstreamFailed,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => ErrorCode::UpstreamTimeout,
            s if s.is_client_error() => ErrorCode::ValidationFailed,
            _ => ErrorCode::Internal,
        }
    }

    /// The snake_case name sent in `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::RuleRefused => "rule_refused",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unprocessable => "unprocessable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::UpstreamFailed => "upstream_failed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
        }
    }
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Option<FieldErrors>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// A code more precise than the status's ([`ErrorCode::for_status`] otherwise).
    pub code: Option<ErrorCode>,
}

impl ApiError {
    /// An error with a status and a message for the client.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            errors: None,
            retry_after: None,
            code: None,
        }
    }

    /// The same error with a more precise `code`.
    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = Some(code);
        self
    }

    /// The `code` member this error is sent with.
    pub fn code(&self) -> ErrorCode {
        self.code
            .unwrap_or_else(|| ErrorCode::for_status(self.status))
    }

    /// 400 with per-field messages.
    pub fn invalid(errors: FieldErrors) -> Self {
        let detail = format!("The request is invalid: {}.", errors.summary());
        ApiError {
            status: StatusCode::BAD_REQUEST,
            detail,
            errors: Some(errors),
            retry_after: None,
            code: None,
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
            "code": self.code().as_str(),
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
