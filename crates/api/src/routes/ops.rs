//! Operations endpoints: `/healthz` (alive), `/readyz` (database reachable and migrations
//! applied) and `/metrics` (Prometheus text; who may read it is `telemetry`'s business).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            crate::telemetry::METRICS_PATH,
            get(crate::telemetry::render_metrics),
        )
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store().ping().await?;
    let pending: Vec<String> = state
        .store()
        .migration_status()
        .await?
        .into_iter()
        .filter(|m| m.applied.is_none())
        .map(|m| m.name)
        .collect();
    if !pending.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Pending migrations: {}; run `brigade migrate up`.",
                pending.join(", ")
            ),
        ));
    }
    Ok(Json(json!({"status": "ready"})))
}
