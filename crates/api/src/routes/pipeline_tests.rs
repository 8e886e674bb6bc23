//! `POST /api/pipelines/{name}/test` (an extension to API.md): runs the pipeline's data
//! tests against its current tables without loading or building anything, like
//! `brigade pipeline test`. Superusers only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brigade_pipelines::datatest::{self, TestError};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::Routes;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().post("/api/pipelines/{name}/test", test_pipeline)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    #[serde(default)]
    select: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// 200 with `{pipeline, status: passed|warned|failed, nodes: [{node, kind, tests: [...]}]}`;
/// failing tests are data, not an HTTP error.
async fn test_pipeline(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: TestBody = match crate::body::optional_object(&headers, &body)? {
        None => TestBody::default(),
        Some(map) => serde_json::from_value(Value::Object(map)).map_err(|e| {
            ApiError::field(
                "body",
                format!("expected {{\"select\": [selector], \"exclude\": [selector]}}: {e}"),
            )
        })?,
    };
    let runner = state.runner();
    // Files are read again, as for a run, so edited tests take effect at once.
    runner.reload()?;
    let Some(pipeline) = runner.pipeline(&name) else {
        return Err(match runner.broken().iter().find(|b| b.name == name) {
            Some(b) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, b.error.to_string()),
            None => ApiError::not_found(format!("pipeline `{name}` not found")),
        });
    };
    let run = datatest::run(state.store(), &pipeline, &body.select, &body.exclude)
        .await
        .map_err(|e| match e {
            TestError::Select(e) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                ..ApiError::field(e.field, e.message)
            },
            TestError::Store(e) => e.into(),
        })?;
    Ok(Json(serde_json::to_value(run).unwrap_or_default()))
}
