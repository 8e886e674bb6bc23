//! `/api/auth/keys[/{id}]`: API keys for services, created by superusers with roles and an
//! expiry of at most `auth.api_key_max_ttl` (the default when none is asked for). The key is
//! returned once; only its hash is stored. A key belongs to the account that made it (or,
//! made with a key, to that key's account): it never acts with roles the account no longer
//! holds, and taking a role from the account revokes its keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brigade_auth::opaque;
use serde_json::{Value, json};

use super::Routes;
use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, JsonObject};
use crate::state::AppState;
use crate::views::{ApiKeyListView, ApiKeyView, CreatedApiKeyView};
use brigade_store::AuditAction;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/auth/keys", list_keys)
        .post("/api/auth/keys", create_key)
        .delete("/api/auth/keys/{id}", delete_key)
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
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
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
    let max_ttl = state.settings().auth.api_key_max_ttl;
    let latest = chrono::Duration::from_std(max_ttl)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_add_signed(d))
        .map_or_else(
            || "9999-12-31T23:59:59.999Z".to_string(),
            brigade_core::time::format_datetime,
        );
    let expires = match body.get("expires_at") {
        // No expiry asked for: the longest allowed.
        None | Some(Value::Null) => Some(latest.clone()),
        Some(Value::String(s)) => match brigade_core::time::normalize_datetime(s) {
            Some(t) if t > latest => {
                errors.add(
                    "expires_at",
                    format!(
                        "at most {} from now (auth.api_key_max_ttl); omit it for the longest",
                        lifetime_text(max_ttl)
                    ),
                );
                None
            }
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
    // The store checks again, in the transaction, that the owning account holds the roles
    // now (a token that outlived its roles is refused before this, by its version).
    let row = state
        .store()
        .accounts()
        .create_api_key(&name, &hash, &roles, admin.account_id(), expires.as_deref())
        .await?;
    tracing::info!(key = %row.id, name = %row.name, actor = %admin.email, "API key created.");
    let detail = json!({"name": row.name, "roles": row.roles, "expires_at": row.expires_at});
    state.audit().record(
        &meta,
        AuditAction::KeyCreate,
        Some(&admin.email),
        Some(format!("keys/{}", row.id)),
        detail,
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKeyView::new(row, key.expose().to_string())),
    ))
}

/// `90 days`, `36 hours`, `15 minutes`: a maximum lifetime for a message.
fn lifetime_text(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s if s >= 60 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

async fn list_keys(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<ApiKeyListView>, ApiError> {
    let items = state.store().accounts().list_api_keys().await?;
    Ok(Json(ApiKeyListView {
        items: items.into_iter().map(ApiKeyView::from).collect(),
    }))
}

async fn delete_key(
    State(state): State<AppState>,
    meta: RequestMeta,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store().accounts().delete_api_key(&id).await? {
        return Err(ApiError::not_found(format!("No API key `{id}`.")));
    }
    tracing::info!(key = %id, actor = %admin.email, "API key revoked.");
    state.audit().record(
        &meta,
        AuditAction::KeyDelete,
        Some(&admin.email),
        Some(format!("keys/{id}")),
        Value::Null,
    );
    Ok(StatusCode::NO_CONTENT)
}
