//! The request timeout (`server.request_timeout`): every request runs under a
//! [`Deadline`] that the store stops its queries at, and is answered with a 503
//! problem+json when the deadline passes, whatever it was waiting for.
//!
//! This replaces tower-http's `TimeoutLayer`, whose empty 503 never came while SQLite
//! statements ran on the runtime threads (nothing polled its timer); now that no statement
//! holds a runtime thread for more than a couple of milliseconds the timer fires, and the
//! store's own deadline usually answers first with a message about the query.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use brigade_store::deadline::Deadline;

use crate::error::ApiError;

/// Runs the request under a deadline of `budget`.
pub(crate) async fn limit(State(budget): State<Duration>, req: Request, next: Next) -> Response {
    let deadline = Deadline::after(budget);
    match tokio::time::timeout_at(deadline.at().into(), deadline.scope(next.run(req))).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "The request took longer than {} s (server.request_timeout) and was stopped; if it lists records, narrow the filter or ask for fewer records.",
                budget.as_secs_f64()
            ),
        )
        .with_code(crate::error::ErrorCode::Timeout)
        .into_response(),
    }
}
