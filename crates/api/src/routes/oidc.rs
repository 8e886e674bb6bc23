//! `/api/auth/oidc/{provider}`: login with an OpenID Connect provider of `[auth.oidc.NAME]`
//! (authorization code + PKCE).
//!
//! `GET /api/auth/oidc/{provider}` stores a pending login (hashed `state`, PKCE verifier,
//! nonce, optional relative `redirect_to`) in the database — so any server process can finish
//! it — sets the `state` in an HttpOnly cookie, and redirects to the provider.
//! `GET .../callback` requires that cookie to carry the same `state` (so a callback URL
//! planted in another browser — login CSRF — is refused), spends the state (once, within ten
//! minutes), exchanges the code and verifies the ID token.
//!
//! Who the user is comes from the provider's `(provider, sub)` link, never from the email
//! alone. The first login of an identity links it to the account with the same email only
//! when the provider says that email is verified *and* that account holds no roles:
//! otherwise anyone able to claim an address at some provider could take over an
//! administrator here. With no such account a role-less one is created, with a password
//! hash no password matches. The answer is the same JSON as `POST /api/auth/login`, plus
//! `redirect_to` when one was given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brigade_auth::oidc::{Identity, OidcClient, OidcError};
use brigade_auth::{Secret, opaque};
use brigade_core::settings::OidcProvider;
use brigade_store::StoreError;
use brigade_store::oidc_links::OidcLogin;
use brigade_store::oidc_state::PendingLogin;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Routes;
use super::auth::{refresh_expiry, token_pair};
use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use brigade_store::AuditAction;

/// How long a user may take at the provider before the callback is refused.
const LOGIN_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// The password hash of accounts created by OIDC: not a PHC string, so no password matches.
const NO_PASSWORD: &str = "!oidc";
/// Longest accepted `redirect_to`.
const MAX_REDIRECT: usize = 2048;
/// The cookie binding a pending login to the browser that started it.
const STATE_COOKIE: &str = "brigade_oidc_state";
/// The cookie's path: sent to the callbacks only.
use super::auth_routes::OIDC_PREFIX as COOKIE_PATH;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/auth/oidc/{provider}", start_login)
        .get("/api/auth/oidc/{provider}/callback", finish_login)
        .map(|r| r.layer(Extension(Clients::default())))
}

/// One [`OidcClient`] per provider, made on first use, so discovery and JWKS caches survive
/// between requests of this process.
#[derive(Clone, Default)]
struct Clients(Arc<Mutex<HashMap<String, Arc<OidcClient>>>>);

impl Clients {
    /// The client of the configured provider `name`; 404 when there is none.
    fn get(&self, state: &AppState, name: &str) -> Result<Arc<OidcClient>, ApiError> {
        let Some(provider) = state.settings().auth.oidc.iter().find(|p| p.name == name) else {
            return Err(ApiError::not_found(format!(
                "No OpenID Connect provider named `{name}` is configured."
            )));
        };
        let mut clients = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(name) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(OidcClient::new(provider.clone()).map_err(ApiError::internal)?);
        clients.insert(name.to_string(), Arc::clone(&client));
        Ok(client)
    }
}

#[derive(Deserialize)]
struct StartQuery {
    redirect_to: Option<String>,
}

async fn start_login(
    State(state): State<AppState>,
    Extension(clients): Extension<Clients>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<StartQuery>,
) -> Result<Response, ApiError> {
    let client = clients.get(&state, &name)?;
    let redirect_to = match query.redirect_to {
        Some(path) if is_local_path(&path) => Some(path),
        Some(_) => {
            return Err(ApiError::field(
                "redirect_to",
                "must be a path on this site such as \"/app\"; other sites are refused",
            ));
        }
        None => None,
    };
    let start = client
        .start(&redirect_uri(&state, client.provider()))
        .await
        .map_err(|e| provider_error(&name, e))?;
    let expires = brigade_core::time::format_datetime(chrono::Utc::now() + LOGIN_TTL);
    state
        .store()
        .accounts()
        .create_pending_login(&PendingLogin {
            state_hash: opaque::hash_token(start.state.expose()),
            provider: name,
            pkce_verifier: start.pkce_verifier.expose().to_string(),
            nonce: start.nonce,
            redirect_to,
            expires,
        })
        .await?;
    let cookie = state_cookie(&state, start.state.expose(), LOGIN_TTL.num_seconds());
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, start.url),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response())
}

/// The `Set-Cookie` value carrying `value` for `max_age` seconds (0 deletes it). `Lax`, so
/// the browser sends it on the provider's top-level redirect back to the callback.
fn state_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{STATE_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; \
         SameSite=Lax{secure}"
    )
}

/// The `state` cookie the browser sent, if any.
fn cookie_state(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value.trim())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn finish_login(
    State(state): State<AppState>,
    Extension(clients): Extension<Clients>,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<CallbackQuery>,
) -> Result<Response, ApiError> {
    let client = clients.get(&state, &name)?;
    let bad_state = || {
        ApiError::field(
            "state",
            "unknown, expired or already used; start the login again",
        )
    };
    let raw_state = query
        .state
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or_else(bad_state)?;
    // The browser that started the login holds its state in a cookie; a callback URL opened
    // anywhere else (an attacker's login planted in a victim's browser) is refused.
    let same_browser = cookie_state(&headers)
        .is_some_and(|c| opaque::hash_token(c) == opaque::hash_token(&raw_state));
    if !same_browser {
        return Err(ApiError::field(
            "state",
            "this login was not started in this browser (its state cookie is missing or \
             different); start the login again here",
        ));
    }
    let pending = state
        .store()
        .accounts()
        .take_pending_login(&opaque::hash_token(&raw_state))
        .await?
        .filter(|p| p.provider == name)
        .ok_or_else(bad_state)?;
    let failed = |reason: &str| {
        // The reason may come from the query string: keep the audit entry small.
        let reason: String = reason.chars().take(200).collect();
        let detail = json!({"provider": name, "reason": reason});
        state
            .audit()
            .record(&meta, AuditAction::AuthOidcLoginFailed, None, None, detail);
    };
    if let Some(error) = query.error {
        failed(&error);
        let description = query
            .error_description
            .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        return Err(ApiError::unauthorized(format!(
            "The identity provider did not approve the login ({}){description}.",
            error.chars().take(100).collect::<String>()
        )));
    }
    let code = query
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::field("code", "required: the provider's authorization code"))?;
    let redirect_uri = redirect_uri(&state, client.provider());
    let verified = async {
        let verifier = Secret::new(pending.pkce_verifier);
        let id_token = client
            .exchange_code(&code, &verifier, &redirect_uri)
            .await?;
        client.verify_id_token(&id_token, &pending.nonce).await
    };
    let identity = match verified.await {
        Ok(identity) => identity,
        Err(e) => {
            failed(&e.to_string());
            return Err(provider_error(&name, e));
        }
    };
    let (user, created) = match identify(&state, &name, &identity).await? {
        OidcLogin::Known(user) | OidcLogin::Linked(user) => (user, false),
        OidcLogin::Created(user) => (user, true),
        OidcLogin::Unverified => {
            failed("email not verified");
            return Err(ApiError::forbidden(
                "The identity provider did not vouch for an email address (`email_verified` is \
                 not true), so this login cannot be linked to an account.",
            ));
        }
        OidcLogin::Privileged => {
            failed("the account with this email holds roles");
            return Err(ApiError::forbidden(
                "An account with this email exists and holds roles; such accounts are never \
                 linked to an identity provider automatically. Log in with its password, or \
                 ask an administrator to link it.",
            ));
        }
        OidcLogin::OtherIdentity => {
            failed("the account is linked to another identity at this provider");
            return Err(ApiError::forbidden(format!(
                "The account with this email is already linked to another `{name}` identity."
            )));
        }
    };
    let (refresh_token, hash) = opaque::new_refresh_token();
    state
        .store()
        .accounts()
        .create_refresh_token(&user.id, &hash, &refresh_expiry(&state))
        .await?;
    tracing::info!(user = %user.id, provider = %name, created, "OIDC login succeeded.");
    state.audit().record(
        &meta,
        AuditAction::AuthOidcLogin,
        Some(&user.email),
        Some(format!("users/{}", user.id)),
        json!({"provider": name, "subject": identity.subject, "created": created}),
    );
    let Json(mut body) = token_pair(&state, &user, &refresh_token)?;
    body.redirect_to = pending.redirect_to;
    let spent = state_cookie(&state, "", 0);
    Ok((
        [
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::SET_COOKIE, spent),
        ],
        Json(body),
    )
        .into_response())
}

/// Who `identity` at `provider` is: its linked account, or (first login) the role-less
/// account with its verified email, or a new account.
async fn identify(
    state: &AppState,
    provider: &str,
    identity: &Identity,
) -> Result<OidcLogin, ApiError> {
    let email = verified_email(identity);
    let mut profile = Map::new();
    if let Some(name) = identity.name.as_ref().filter(|n| n.len() <= 256) {
        profile.insert("name".into(), Value::String(name.clone()));
    }
    let store = state.store();
    let login = || {
        store.accounts().oidc_login(
            provider,
            &identity.subject,
            email.as_deref(),
            &profile,
            NO_PASSWORD,
        )
    };
    match login().await {
        // A concurrent callback created the account or the link first: now it is there.
        Err(StoreError::Conflict { .. }) => Ok(login().await?),
        outcome => Ok(outcome?),
    }
}

/// The lowercased email, when the provider says it is verified.
fn verified_email(identity: &Identity) -> Option<String> {
    let email = identity.email.as_deref()?.trim();
    (identity.email_verified && brigade_core::schema::input::is_email(email))
        .then(|| email.to_lowercase())
}

/// The callback URL registered at the provider.
fn redirect_uri(state: &AppState, provider: &OidcProvider) -> String {
    provider.redirect_url.clone().unwrap_or_else(|| {
        format!(
            "{}/api/auth/oidc/{}/callback",
            state.public_url(),
            provider.name
        )
    })
}

/// A path on this site (`/app?x=1`), never another origin: no scheme, no `//host`, no
/// backslashes (browsers read `/\host` as `//host`), no control characters.
fn is_local_path(path: &str) -> bool {
    path.len() <= MAX_REDIRECT
        && path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

fn provider_error(name: &str, e: OidcError) -> ApiError {
    match e {
        OidcError::Unreachable(_) => {
            tracing::warn!(provider = %name, error = %e, "OIDC provider unreachable.");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "The identity provider `{name}` could not be reached or answered badly; \
                     the cause is logged."
                ),
            )
        }
        OidcError::CodeRejected(_) | OidcError::InvalidToken(_) => {
            tracing::warn!(provider = %name, error = %e, "OIDC login refused.");
            ApiError::unauthorized(format!("Login with `{name}` failed: {e}."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_kept() {
        for ok in ["/", "/app", "/app/x?y=1#z", "/a//b"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "app",
            "javascript:alert(1)",
            "/x\ny",
            "",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}
