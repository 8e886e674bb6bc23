//! `GET /api/audit`: the audit log for superusers, with the records API's `filter`, `sort`
//! (newest first by default) and paging, e.g. `filter=action = 'auth.login_failed'`.

use axum::Json;
use axum::extract::State;
use brigade_store::Page;

use super::Routes;
use super::records::{ListQuery, list_params};
use crate::error::ApiError;
use crate::extract::{Admin, ApiQuery};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().get("/api/audit", list_audit)
}

async fn list_audit(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    Ok(Json(state.store().audit().list(&list_params(q)).await?))
}
