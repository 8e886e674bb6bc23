//! `/api/collections[/{name}]`: schema changes, each applied as a recorded migration.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brigade_core::schema::Collection;
use serde_json::{Value, json};

use super::Routes;
use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, JsonBody};
use crate::state::AppState;
use brigade_store::AuditAction;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/collections", list_collections)
        .post("/api/collections", create_collection)
        .get("/api/collections/{name}", read_collection)
        .patch("/api/collections/{name}", update_collection)
        .delete("/api/collections/{name}", delete_collection)
}

async fn list_collections(State(state): State<AppState>, _admin: Admin) -> Json<Value> {
    Json(json!({ "items": state.store().collections() }))
}

async fn read_collection(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Arc<Collection>>, ApiError> {
    Ok(Json(state.store().collection(&name)?))
}

async fn create_collection(
    State(state): State<AppState>,
    meta: RequestMeta,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Arc<Collection>>), ApiError> {
    let c = state.store().create_collection(&body).await?;
    tracing::info!(collection = %c.name, actor = %admin.email, "Collection created.");
    state.audit().record(
        &meta,
        AuditAction::CollectionCreate,
        Some(&admin.email),
        Some(c.name.clone()),
        json!({"definition": &*c}),
    );
    Ok((StatusCode::CREATED, Json(c)))
}

async fn update_collection(
    State(state): State<AppState>,
    meta: RequestMeta,
    Admin(admin): Admin,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Arc<Collection>>, ApiError> {
    let c = state.store().update_collection(&name, &body).await?;
    tracing::info!(collection = %c.name, actor = %admin.email, "Collection updated.");
    state.audit().record(
        &meta,
        AuditAction::CollectionUpdate,
        Some(&admin.email),
        Some(c.name.clone()),
        json!({"definition": &*c}),
    );
    Ok(Json(c))
}

async fn delete_collection(
    State(state): State<AppState>,
    meta: RequestMeta,
    Admin(admin): Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.store().delete_collection(&name).await?;
    tracing::info!(collection = %name, actor = %admin.email, "Collection deleted.");
    state.audit().record(
        &meta,
        AuditAction::CollectionDelete,
        Some(&admin.email),
        Some(name.clone()),
        Value::Null,
    );
    Ok(StatusCode::NO_CONTENT)
}
