//! `/api/auth/*`: password login issuing a JWT access token and a rotating refresh token,
//! refresh (a replayed token revokes its family), logout, and the current user. Logout and a
//! replayed refresh token also end the account's access tokens at once (its token version
//! moves on; other sessions get new access tokens with their refresh tokens).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brigade_auth::{Principal, PrincipalKind, Secret, opaque, password};
use brigade_store::{Rotation, UserRow};
use serde_json::{Map, Value, json};

use super::Routes;
use crate::audit::RequestMeta;
use crate::body;
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, JsonObject};
use crate::routes::auth_routes as paths;
use crate::state::AppState;
use crate::views::{RegisteredView, TokenPairView, TokenUserView, UserView};
use brigade_store::AuditAction;

pub(super) fn routes() -> Routes {
    Routes::new()
        .post(paths::LOGIN, login)
        .post(paths::REGISTER, register)
        .post(paths::REFRESH, refresh)
        .post(paths::LOGOUT, logout)
        .get(paths::ME, me)
}

async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonObject(body): JsonObject,
) -> Result<Json<TokenPairView>, ApiError> {
    body::closed(&body, &["email", "password"])?;
    let email = body::string(&body, "email")?;
    let password = body::secret(&body, "password")?;
    // Charged before the password is checked: while the account is locked, even the right
    // password is refused (429), and concurrent guesses are counted one by one.
    let attempt = crate::login_budget::begin(&state, &meta, &email).await?;
    let user = state.store().accounts().user_by_email(email.trim()).await?;
    // Verify against a dummy hash for unknown emails so timing does not reveal accounts.
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => password::dummy_hash()
            .map_err(ApiError::internal)?
            .to_string(),
    };
    let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(email = %email, "Login failed.");
        let detail = json!({"email": email});
        state
            .audit()
            .record(&meta, AuditAction::AuthLoginFailed, None, None, detail);
        return Err(ApiError::unauthorized("Wrong email or password."));
    };
    attempt.succeeded(&state).await?;
    let (refresh_token, hash) = opaque::new_refresh_token();
    state
        .store()
        .accounts()
        .create_refresh_token(&user.id, &hash, &refresh_expiry(&state))
        .await?;
    tracing::info!(user = %user.id, "Login succeeded.");
    state.audit().record(
        &meta,
        AuditAction::AuthLogin,
        Some(&user.email),
        Some(format!("users/{}", user.id)),
        Value::Null,
    );
    token_pair(&state, &user, &refresh_token)
}

/// Profile keys that a registration body may not set.
const RESERVED_PROFILE_KEYS: &[&str] = &[
    "id",
    "roles",
    "created",
    "updated",
    "password_hash",
    "verified",
];

async fn register(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<RegisteredView>), ApiError> {
    if !state.settings().auth.allow_registration {
        return Err(ApiError::forbidden(
            "Self-registration is closed on this server (auth.allow_registration = false).",
        ));
    }
    let Value::Object(mut body) = body else {
        return Err(ApiError::field(
            "body",
            "expected {\"email\", \"password\", ...profile}",
        ));
    };
    let mut errors = brigade_core::errors::FieldErrors::new();
    let email = match body.remove("email") {
        Some(Value::String(e)) if brigade_core::schema::input::is_email(e.trim()) => {
            e.trim().to_lowercase()
        }
        _ => {
            errors.add("email", "required: an email address");
            String::new()
        }
    };
    let password = match body.remove("password") {
        Some(Value::String(p)) => Some(Secret::new(p)),
        _ => {
            errors.add("password", "required: a string");
            None
        }
    };
    for key in body.keys() {
        if RESERVED_PROFILE_KEYS.contains(&key.as_str()) {
            errors.add(key.clone(), "cannot be set at registration");
        }
    }
    if serde_json::to_string(&body).map_or(0, |s| s.len()) > 16 * 1024 {
        errors.add("profile", "profile fields are limited to 16 KiB");
    }
    let (Some(password), true) = (password, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::field("password", e.to_string()))?;
    let user = state
        .store()
        .accounts()
        .create_user(&email, &hash, &[], &body)
        .await?;
    tracing::info!(user = %user.id, "User registered.");
    state.audit().record(
        &meta,
        AuditAction::AuthRegister,
        Some(&user.email),
        Some(format!("users/{}", user.id)),
        Value::Null,
    );
    Ok((
        StatusCode::CREATED,
        Json(RegisteredView {
            user: UserView::from(&user),
        }),
    ))
}

pub(super) fn refresh_expiry(state: &AppState) -> String {
    let ttl = chrono::Duration::from_std(state.settings().auth.refresh_token_ttl)
        .unwrap_or(chrono::Duration::days(30));
    brigade_core::time::format_datetime(chrono::Utc::now() + ttl)
}

pub(super) fn token_pair(
    state: &AppState,
    user: &UserRow,
    refresh_token: &Secret,
) -> Result<Json<TokenPairView>, ApiError> {
    let principal = Principal {
        id: user.id.clone(),
        email: user.email.clone(),
        roles: user.roles.clone(),
        kind: PrincipalKind::User {
            token_version: user.token_version,
        },
    };
    let access_token = state
        .tokens()
        .issue(&principal)
        .map_err(ApiError::internal)?;
    Ok(Json(TokenPairView {
        access_token,
        refresh_token: refresh_token.expose().to_string(),
        token_type: "Bearer".to_string(),
        expires_in: state.tokens().ttl().as_secs(),
        user: TokenUserView {
            id: user.id.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
        },
        redirect_to: None,
    }))
}

/// The refresh token of a refresh or logout body (`{"refresh_token"}`, nothing else).
fn refresh_token(body: &Map<String, Value>) -> Result<Secret, ApiError> {
    body::closed(body, &["refresh_token"])?;
    body::secret(body, "refresh_token")
}

async fn refresh(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonObject(body): JsonObject,
) -> Result<Json<TokenPairView>, ApiError> {
    let token = refresh_token(&body)?;
    let (next, next_hash) = opaque::new_refresh_token();
    let old_hash = opaque::hash_token(token.expose());
    match state
        .store()
        .accounts()
        .rotate_refresh_token(&old_hash, &next_hash, &refresh_expiry(&state))
        .await?
    {
        Rotation::Rotated { user_id } => {
            let user = state
                .store()
                .accounts()
                .user_by_id(&user_id)
                .await?
                .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
            tracing::info!(user = %user.id, "Token refreshed.");
            state.audit().record(
                &meta,
                AuditAction::AuthRefresh,
                Some(&user.email),
                Some(format!("users/{}", user.id)),
                Value::Null,
            );
            token_pair(&state, &user, &next)
        }
        Rotation::Reused { user_id } => {
            state.tokens().versions().forget(&user_id);
            tracing::warn!(user = %user_id, "A spent refresh token was replayed; its whole family and the account's access tokens are revoked.");
            state.audit().record(
                &meta,
                AuditAction::AuthRefreshReused,
                None,
                Some(format!("users/{user_id}")),
                Value::Null,
            );
            Err(ApiError::unauthorized(
                "This refresh token was already used; every session of that login is now revoked. Log in again.",
            ))
        }
        Rotation::Invalid => Err(ApiError::unauthorized(
            "The refresh token is invalid or expired; log in again.",
        )),
    }
}

async fn logout(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonObject(body): JsonObject,
) -> Result<StatusCode, ApiError> {
    let hash = opaque::hash_token(refresh_token(&body)?.expose());
    if let Some(user_id) = state.store().accounts().revoke_refresh_token(&hash).await? {
        state.tokens().versions().forget(&user_id);
        tracing::info!(user = %user_id, "Refresh token and access tokens revoked (logout).");
        state.audit().record(
            &meta,
            AuditAction::AuthLogout,
            None,
            Some(format!("users/{user_id}")),
            Value::Null,
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn me(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<UserView>, ApiError> {
    let Some(p) = caller else {
        return Err(ApiError::unauthorized(
            "Send `Authorization: Bearer <token>`.",
        ));
    };
    if !p.is_user() {
        return Err(ApiError::forbidden("API keys have no account."));
    }
    let user = state
        .store()
        .accounts()
        .user_by_id(&p.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
    Ok(Json(UserView::from(&user)))
}
