//! `/api/users[/{id}]` for superusers: list accounts and grant or revoke roles (the roles
//! that collection rules see as `@request.auth.roles`). Users never change their own roles.
//! A role change ends the account's access tokens at once (they carry the old roles; the
//! next refresh carries the new ones), and taking a role away revokes the account's API keys.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Routes;
use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, ApiQuery, JsonObject};
use crate::state::AppState;
use crate::views::{UserPageView, UserView};
use brigade_store::AuditAction;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/users", list_users)
        .patch("/api/users/{id}", update_user)
}

#[derive(Debug, Default, Deserialize)]
struct Paging {
    page: Option<String>,
    per_page: Option<String>,
}

async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<Paging>,
) -> Result<Json<UserPageView>, ApiError> {
    let params = brigade_store::query::ListParams {
        page: q.page,
        per_page: q.per_page,
        ..Default::default()
    };
    let (page, per_page, _) = params.paging()?;
    let (users, total) = state
        .store()
        .accounts()
        .list_users((page - 1) * per_page, per_page)
        .await?;
    Ok(Json(UserPageView {
        items: users.iter().map(UserView::from).collect(),
        page,
        per_page,
        total_items: total,
        total_pages: (total + per_page - 1) / per_page,
    }))
}

async fn update_user(
    State(state): State<AppState>,
    meta: RequestMeta,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<UserView>, ApiError> {
    if let Some(key) = body.keys().find(|k| k.as_str() != "roles") {
        return Err(ApiError::field(key, "only `roles` can be changed here"));
    }
    let roles: Vec<String> = match body.get("roles") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| match r.as_str() {
                Some(r)
                    if !r.is_empty()
                        && r.len() <= 64
                        && r.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    Ok(r.to_string())
                }
                _ => Err(ApiError::field(
                    "roles",
                    "each role is 1 to 64 letters, digits, `_` or `-`",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::field("roles", "required: an array of role names")),
    };
    let (user, revoked_keys) = state.store().accounts().set_user_roles(&id, &roles).await?;
    state.tokens().versions().forget(&id);
    tracing::info!(user = %id, revoked_keys, actor = %admin.email, "Roles changed; access tokens revoked.");
    state.audit().record(
        &meta,
        AuditAction::UserRoles,
        Some(&admin.email),
        Some(format!("users/{id}")),
        json!({"roles": roles, "revoked_keys": revoked_keys}),
    );
    Ok(Json(UserView::from(&user)))
}
