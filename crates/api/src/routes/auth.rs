//! `/api/auth/*`: password login issuing JWT access tokens, and the current user.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use brigade_auth::{Principal, Secret, password};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/me", get(me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: Secret,
}

async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let body: LoginBody = serde_json::from_value(body).map_err(|e| {
        ApiError::field("body", format!("expected {{\"email\", \"password\"}}: {e}"))
    })?;
    let user = state.store().user_by_email(body.email.trim()).await?;
    // Verify against a dummy hash for unknown emails so timing does not reveal accounts.
    let hash = user.as_ref().map_or_else(
        || password::dummy_hash().to_string(),
        |u| u.password_hash.clone(),
    );
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(email = %body.email, "Login failed.");
        return Err(ApiError::unauthorized("Wrong email or password."));
    };
    let principal = Principal {
        id: user.id.clone(),
        email: user.email.clone(),
        roles: user.roles.clone(),
    };
    let access_token = state
        .tokens()
        .issue(&principal)
        .map_err(ApiError::internal)?;
    tracing::info!(user = %user.id, "Login succeeded.");
    Ok(Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.tokens().ttl().as_secs(),
        "user": {"id": user.id, "email": user.email, "roles": user.roles},
    })))
}

async fn me(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let Some(p) = caller else {
        return Err(ApiError::unauthorized(
            "Send `Authorization: Bearer <token>`.",
        ));
    };
    let user = state
        .store()
        .user_by_id(&p.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The account no longer exists."))?;
    Ok(Json(
        json!({"id": user.id, "email": user.email, "roles": user.roles, "created": user.created, "updated": user.updated}),
    ))
}
