//! The signed-in user's own account: `PATCH /api/auth/me` (profile only — nobody changes
//! their own roles), `POST /api/auth/password` (needs the current password), and password
//! reset by email (`/api/auth/password-reset` and `.../confirm`) with single-use, expiring
//! tokens and answers that do not reveal whether an address has an account: a reset request
//! is answered before anything is looked up, and the lookup, token and email happen after,
//! on their own task. An account has at most one pending reset (a new one replaces it).
//! Changing or resetting a password ends the account's access and refresh tokens at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brigade_auth::{Secret, opaque, password};
use serde_json::{Value, json};

use super::Routes;
use crate::audit::RequestMeta;
use crate::body;
use crate::error::ApiError;
use crate::extract::{Caller, JsonObject};
use crate::routes::auth_routes as paths;
use crate::state::AppState;
use crate::views::{StatusView, UserView};
use brigade_store::AuditAction;

/// How long a reset link works.
const RESET_TTL_MINUTES: i64 = 60;
/// Keys of `PATCH /api/auth/me` that are not profile fields.
const NOT_PROFILE: &[&str] = &[
    "id",
    "email",
    "roles",
    "password",
    "password_hash",
    "created",
    "updated",
    "verified",
];

pub(super) fn routes() -> Routes {
    Routes::new()
        .patch(paths::ME, update_me)
        .post(paths::PASSWORD, change_password)
        .post(paths::PASSWORD_RESET, request_reset)
        .post(paths::PASSWORD_RESET_CONFIRM, confirm_reset)
}

fn signed_in(caller: Caller) -> Result<brigade_auth::Principal, ApiError> {
    match caller.0 {
        Some(p) if p.is_user() => Ok(p),
        Some(_) => Err(ApiError::forbidden("API keys have no account to change.")),
        None => Err(ApiError::unauthorized("Log in first.")),
    }
}

async fn hash_password(password: Secret, field: &str) -> Result<String, ApiError> {
    let field = field.to_string();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::field(&field, e.to_string()))
}

async fn update_me(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<UserView>, ApiError> {
    let me = signed_in(caller)?;
    let mut errors = brigade_core::errors::FieldErrors::new();
    for key in body.keys().filter(|k| NOT_PROFILE.contains(&k.as_str())) {
        let why = match key.as_str() {
            "roles" => "roles are granted by superusers, not changed by their holder",
            "password" => "use POST /api/auth/password",
            _ => "cannot be changed here",
        };
        errors.add(key.clone(), why);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let user = state
        .store()
        .accounts()
        .user_by_id(&me.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
    let mut profile = user.profile.clone();
    for (k, v) in body {
        if v.is_null() {
            profile.remove(&k);
        } else {
            profile.insert(k, v);
        }
    }
    if serde_json::to_string(&profile).map_or(0, |s| s.len()) > 16 * 1024 {
        return Err(ApiError::field(
            "profile",
            "profile fields are limited to 16 KiB",
        ));
    }
    state
        .store()
        .accounts()
        .set_user_profile(&user.id, &profile)
        .await?;
    state.audit().record(
        &meta,
        AuditAction::AuthProfileUpdate,
        Some(&user.email),
        Some(format!("users/{}", user.id)),
        Value::Null,
    );
    let user = state
        .store()
        .accounts()
        .user_by_id(&me.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
    Ok(Json(UserView::from(&user)))
}

async fn change_password(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<StatusCode, ApiError> {
    let me = signed_in(caller)?;
    body::closed(&body, &["current_password", "new_password"])?;
    let current = body::secret(&body, "current_password")?;
    let new = body::secret(&body, "new_password")?;
    let user = state
        .store()
        .accounts()
        .user_by_id(&me.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
    let hash = user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || password::verify(&current, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !ok {
        return Err(ApiError::field("current_password", "does not match"));
    }
    let new_hash = hash_password(new, "new_password").await?;
    state
        .store()
        .accounts()
        .change_password(&user.id, &new_hash)
        .await?;
    state.tokens().versions().forget(&user.id);
    state.audit().record(
        &meta,
        AuditAction::AuthPasswordChange,
        Some(&user.email),
        Some(format!("users/{}", user.id)),
        Value::Null,
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn request_reset(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<StatusView>), ApiError> {
    body::closed(&body, &["email"])?;
    let email = body::string(&body, "email")?.trim().to_string();
    // Everything that depends on whether the address has an account happens after the
    // answer, so neither the answer nor its timing tells.
    state
        .tasks()
        .clone()
        .job("password reset mail", async move {
            if let Err(e) = send_reset(&state, &meta, &email).await {
                tracing::error!(error = %e, "Could not prepare a password reset.");
            }
        });
    Ok(accepted())
}

/// The one answer to every reset request.
fn accepted() -> (StatusCode, Json<StatusView>) {
    (
        StatusCode::ACCEPTED,
        Json(StatusView::new(
            "If the address has an account, a reset link is on its way.",
        )),
    )
}

/// Looks the address up and, for an account, stores a reset token (replacing a pending one)
/// and writes the email.
async fn send_reset(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
) -> Result<(), brigade_store::StoreError> {
    let Some(user) = state.store().accounts().user_by_email(email).await? else {
        state.audit().record(
            meta,
            AuditAction::AuthPasswordResetRequested,
            None,
            None,
            json!({"email": email, "known": false}),
        );
        return Ok(());
    };
    let (token, hash) = opaque::new_refresh_token();
    let expires = brigade_core::time::format_datetime(
        chrono::Utc::now() + chrono::Duration::minutes(RESET_TTL_MINUTES),
    );
    state
        .store()
        .accounts()
        .create_password_reset(&user.id, &hash, &expires)
        .await?;
    let link = format!(
        "{}/reset-password?token={}",
        state.public_url(),
        token.expose()
    );
    let body = format!(
        "Someone asked to reset the password of {} on Brigade.\n\n\
         Use this token within {RESET_TTL_MINUTES} minutes (it works once, and only until \
         another reset is asked for):\n\n    {}\n\n\
         or open {link}\n\nIf it was not you, ignore this message; your password is unchanged.\n",
        user.email,
        token.expose()
    );
    if let Err(e) = state
        .mailer()
        .send(&user.email, "Reset your Brigade password", &body)
        .await
    {
        tracing::error!(error = %e, "Could not write the reset email.");
    }
    state.audit().record(
        meta,
        AuditAction::AuthPasswordResetRequested,
        Some(&user.email),
        Some(format!("users/{}", user.id)),
        Value::Null,
    );
    Ok(())
}

async fn confirm_reset(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonObject(body): JsonObject,
) -> Result<StatusCode, ApiError> {
    body::closed(&body, &["token", "password"])?;
    let token = body::secret(&body, "token")?;
    let new = body::secret(&body, "password")?;
    reset_password(&state, &meta, &token, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the password of the account `token` was mailed to, once; shared by the API and the
/// reset page.
pub(super) async fn reset_password(
    state: &AppState,
    meta: &RequestMeta,
    token: &Secret,
    new: Secret,
) -> Result<(), ApiError> {
    let new_hash = hash_password(new, "password").await?;
    match state
        .store()
        .accounts()
        .reset_password(&opaque::hash_token(token.expose()), &new_hash)
        .await?
    {
        Some(user_id) => {
            state.tokens().versions().forget(&user_id);
            state.audit().record(
                meta,
                AuditAction::AuthPasswordReset,
                None,
                Some(format!("users/{user_id}")),
                Value::Null,
            );
            Ok(())
        }
        None => Err(ApiError::field(
            "token",
            "invalid, already used or expired; request a new reset",
        )),
    }
}
