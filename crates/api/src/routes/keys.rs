//! `/api/auth/keys[/{id}]`: API keys for services, created by superusers with roles and an
//! optional expiry. The key is returned once; only its hash is stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use brigade_auth::opaque;
use serde_json::{Value, json};

use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, JsonObject};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/keys", get(list_keys).post(create_key))
        .route("/api/auth/keys/{id}", delete(delete_key))
}

fn is_role(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn create_key(
    State(state): State<AppState>,
    meta: RequestMeta,
    Admin(admin): Admin,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut errors = brigade_core::errors::FieldErrors::new();
    for key in body
        .keys()
        .filter(|k| !["name", "roles", "expires_at"].contains(&k.as_str()))
    {
        errors.add(key.clone(), "unknown key");
    }
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 100 => n.trim().to_string(),
        _ => {
            errors.add("name", "required: 1 to 100 characters");
            String::new()
        }
    };
    let roles: Vec<String> = match body.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|r| match r.as_str() {
                Some(r) if is_role(r) => Some(r.to_string()),
                _ => {
                    errors.add("roles", "each role is 1 to 64 letters, digits, `_` or `-`");
                    None
                }
            })
            .collect(),
        Some(_) => {
            errors.add("roles", "expected an array of role names");
            Vec::new()
        }
    };
    let expires = match body.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match brigade_core::time::normalize_datetime(s) {
            Some(t) if t > brigade_core::time::now() => Some(t),
            Some(_) => {
                errors.add("expires_at", "must be in the future");
                None
            }
            None => {
                errors.add("expires_at", "expected an RFC 3339 date-time");
                None
            }
        },
        Some(_) => {
            errors.add("expires_at", "expected an RFC 3339 date-time");
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let (key, hash) = opaque::new_api_key();
    let row = state
        .store()
        .create_api_key(&name, &hash, &roles, &admin.id, expires.as_deref())
        .await?;
    tracing::info!(key = %row.id, name = %row.name, actor = %admin.email, "API key created.");
    let detail = json!({"name": row.name, "roles": row.roles, "expires_at": row.expires_at});
    state.audit().record(
        &meta,
        "key.create",
        Some(&admin.email),
        Some(format!("keys/{}", row.id)),
        detail,
    );
    let mut out = serde_json::to_value(&row).map_err(ApiError::internal)?;
    out["key"] = Value::String(key.expose().to_string());
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list_keys(State(state): State<AppState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"items": state.store().list_api_keys().await?})))
}

async fn delete_key(
    State(state): State<AppState>,
    meta: RequestMeta,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store().delete_api_key(&id).await? {
        return Err(ApiError::not_found(format!("No API key `{id}`.")));
    }
    tracing::info!(key = %id, actor = %admin.email, "API key revoked.");
    state.audit().record(
        &meta,
        "key.delete",
        Some(&admin.email),
        Some(format!("keys/{id}")),
        Value::Null,
    );
    Ok(StatusCode::NO_CONTENT)
}
