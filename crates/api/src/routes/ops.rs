//! Operations endpoints: `/healthz` (alive), `/readyz` (database reachable and migrations
//! applied) and `/metrics` (Prometheus text; who may read it is `telemetry`'s business).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::Routes;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::StatusView;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get(
            crate::telemetry::METRICS_PATH,
            crate::telemetry::render_metrics,
        )
}

async fn healthz() -> Json<StatusView> {
    Json(StatusView::new("ok"))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<StatusView>, ApiError> {
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
    Ok(Json(StatusView::new("ready")))
}
