//! Request extractors that fail as problem+json: JSON bodies ([`JsonObject`], [`JsonBody`]),
//! query strings ([`ApiQuery`]) and the caller's identity ([`Caller`], [`Admin`]).
//!
//! Identity is decided here and nowhere else: a verified access token is a user principal,
//! and it counts only while its account's token version is current (logout, password and
//! role changes end it at once); an API key is a key principal whose roles are limited to
//! what its owning account holds now. [`PrincipalKind`] says which — never the email text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use brigade_auth::{Principal, PrincipalKind, TokenError, opaque};
use brigade_store::Access;
use brigade_store::query::RequestContext;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// Query string parameters; malformed ones are a 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub(crate) T);

/// Path parameters; undecodable ones (e.g. invalid UTF-8) are a 404 problem.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub(crate) T);

/// A JSON body of any shape, with content-type and size checked.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Value);

/// A JSON body that must be an object.
#[derive(Debug)]
pub(crate) struct JsonObject(pub(crate) Map<String, Value>);

/// 415 unless the request says its body is JSON (`application/json` or `application/*+json`).
pub(crate) fn require_json(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false);
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the body as JSON with `Content-Type: application/json`.",
        ))
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::field(
                "body",
                format!(
                    "malformed JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Ok(JsonBody(value))
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match JsonBody::from_request(req, state).await?.0 {
            Value::Object(map) => Ok(JsonObject(map)),
            _ => Err(ApiError::field("body", "expected a JSON object")),
        }
    }
}

/// A principal whose access token an earlier layer (the rate limiter) already verified.
#[derive(Debug, Clone)]
pub(crate) struct Verified(pub(crate) Principal);

/// The authenticated caller, if any. A present but invalid token is a 401, not anonymous.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Option<Principal>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Verified(p)) = parts.extensions.get::<Verified>() {
            let p = p.clone();
            current(state, &p).await?;
            return Ok(Caller(Some(p)));
        }
        match presented_token(&parts.headers, parts.uri.query())? {
            None => Ok(Caller(None)),
            Some(token) => Ok(Caller(Some(authenticate(state, &token).await?.0))),
        }
    }
}

/// The credential a request presents: `Authorization: Bearer …`, or else `?token=` (for
/// clients that cannot set headers, such as `EventSource`).
///
/// # Errors
/// 401 for an `Authorization` header of another scheme.
pub(crate) fn presented_token(
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    match header {
        Some(h) => match h.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(Some(token.trim().to_string()))
            }
            _ => Err(ApiError::unauthorized(
                "Use `Authorization: Bearer <token>`.",
            )),
        },
        None => Ok(query_token(query)),
    }
}

/// The principal behind an access token or API key, checked as every request checks it;
/// for an access token also when it expires (Unix seconds).
///
/// # Errors
/// 401 for an expired, invalid or revoked credential.
pub(crate) async fn authenticate(
    state: &AppState,
    token: &str,
) -> Result<(Principal, Option<u64>), ApiError> {
    if token.starts_with(opaque::API_KEY_PREFIX) {
        return api_key(state, token).await.map(|p| (p, None));
    }
    match state.tokens().verify_until(token) {
        Ok((p, expires)) => {
            current(state, &p).await?;
            Ok((p, Some(expires)))
        }
        Err(TokenError::Expired) => Err(ApiError::unauthorized(
            "The access token has expired; refresh it or log in again.",
        )),
        Err(TokenError::Invalid) => Err(ApiError::unauthorized("The access token is invalid.")),
    }
}

/// 401 unless a user's access token is still current (API keys were checked when they were
/// looked up). Whoever verified the signature — this extractor or the rate limiter — the
/// revocation check happens here, on every request.
pub(crate) async fn current(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    let PrincipalKind::User { token_version } = p.kind else {
        return Ok(());
    };
    if state
        .tokens()
        .versions()
        .is_current(&p.id, token_version, || {
            state.store().accounts().token_version(&p.id)
        })
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "The access token was revoked (logout, password or role change); refresh it or log in again.",
        ))
    }
}

/// Resolves an API key to its principal and records its use (at most once a minute). The
/// key acts with the roles it was given that its owning account still holds (`admin`
/// holds every role), and not past `auth.api_key_max_ttl` after its creation.
pub(crate) async fn api_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let refused = || ApiError::unauthorized("The API key is invalid, revoked or expired.");
    let Some(found) = state
        .store()
        .accounts()
        .api_key_by_hash(&opaque::hash_token(key))
        .await?
    else {
        return Err(refused());
    };
    let Some(owner_roles) = found.owner_roles else {
        return Err(refused()); // the account it belonged to is gone
    };
    let row = found.key;
    let max_age = chrono::Duration::from_std(state.settings().auth.api_key_max_ttl)
        .unwrap_or(chrono::Duration::MAX);
    let oldest = chrono::Utc::now()
        .checked_sub_signed(max_age)
        .map(brigade_core::time::format_datetime)
        .unwrap_or_default();
    if row.created < oldest {
        return Err(refused());
    }
    let now = brigade_core::time::now();
    let stale = row.last_used.as_deref().is_none_or(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .is_ok_and(|t| chrono::Utc::now() - t.to_utc() > chrono::Duration::seconds(60))
    });
    if stale {
        let state = state.clone();
        let id = row.id.clone();
        state.tasks().clone().job("API key last use", async move {
            if let Err(e) = state.store().accounts().touch_api_key(&id, &now).await {
                tracing::warn!(error = %e, "Could not record API key use.");
            }
        });
    }
    let roles = if owner_roles.iter().any(|r| r == brigade_auth::ADMIN_ROLE) {
        row.roles
    } else {
        row.roles
            .into_iter()
            .filter(|r| owner_roles.contains(r))
            .collect()
    };
    Ok(Principal {
        id: row.id,
        email: format!("apikey:{}", row.name),
        roles,
        kind: PrincipalKind::ApiKey {
            name: row.name,
            owner: row.created_by,
        },
    })
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| v.to_string())
    })
}

impl Caller {
    /// The name audit entries use: the user's email (`apikey:NAME` for keys), or `None`.
    /// A label only: who is calling is [`Principal::kind`].
    pub(crate) fn actor(&self) -> Option<&str> {
        self.0.as_ref().map(|p| p.email.as_str())
    }

    /// The access the store applies collection rules for: superusers bypass rules.
    pub(crate) fn access(&self) -> Access {
        access_of(self.0.as_ref())
    }
}

/// The access the store applies collection rules for: superusers bypass rules.
pub(crate) fn access_of(principal: Option<&Principal>) -> Access {
    match principal {
        Some(p) if p.is_admin() => Access::Superuser,
        Some(p) => {
            let mut auth = Map::new();
            auth.insert("id".into(), Value::String(p.id.clone()));
            // Keys have no email: a rule on `@request.auth.email` never matches a key,
            // and `@request.auth.kind` tells users ("user") from keys ("key").
            let (email, kind) = match &p.kind {
                PrincipalKind::User { .. } => (Value::String(p.email.clone()), "user"),
                PrincipalKind::ApiKey { .. } => (Value::Null, "key"),
            };
            auth.insert("email".into(), email);
            auth.insert("kind".into(), Value::String(kind.into()));
            auth.insert(
                "roles".into(),
                Value::Array(p.roles.iter().cloned().map(Value::String).collect()),
            );
            Access::Caller(RequestContext {
                auth,
                body: Map::new(),
            })
        }
        None => Access::anonymous(),
    }
}

/// A superuser. Anonymous callers get 401, others 403.
#[derive(Debug, Clone)]
pub(crate) struct Admin(pub(crate) Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Some(p) if p.is_admin() => Ok(Admin(p)),
            Some(_) => Err(ApiError::forbidden("This needs the `admin` role.")),
            None => Err(ApiError::unauthorized(
                "Log in as a superuser and send `Authorization: Bearer <token>`.",
            )),
        }
    }
}
