//! Rate limits (GCRA, via governor): a strict budget per client IP on the endpoints that
//! take passwords and tokens, and a default budget per user or API key (per IP when
//! anonymous) everywhere else. Over budget → 429 problem+json with `Retry-After`.
//! Operations endpoints (`/healthz`, `/readyz`, `/metrics`) are never limited, and neither
//! are superusers and `admin` keys outside the auth endpoints: they are the operators, and
//! throttling an admin ETL key at an end-user budget would only break imports.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use brigade_auth::opaque;
use brigade_core::settings::{Rate, RateLimitSettings};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;
use crate::state::AppState;

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// The process's limiters.
pub(crate) struct Limits {
    default: Option<Keyed>,
    auth: Option<Keyed>,
}

/// Paths with the strict `auth` budget.
const AUTH_PATHS: &[&str] = &[
    "/api/auth/login",
    "/api/auth/register",
    "/api/auth/refresh",
    "/api/auth/password",
    "/api/auth/password-reset",
    "/api/auth/password-reset/confirm",
];
/// Paths never limited.
const EXEMPT: &[&str] = &["/healthz", "/readyz", "/metrics"];

fn keyed(rate: Rate) -> Keyed {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let interval = (rate.period / count.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count);
    RateLimiter::keyed(quota)
}

impl Limits {
    pub(crate) fn new(settings: &RateLimitSettings) -> Arc<Self> {
        Arc::new(Limits {
            default: settings.default.map(keyed),
            auth: settings.auth.map(keyed),
        })
    }

    /// Forgets idle keys so memory stays bounded; call periodically.
    pub(crate) fn retain_recent(&self) {
        for limiter in [&self.default, &self.auth].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Who a request is charged to: the user or key behind a valid credential, else the IP;
/// `None` for superusers (not limited).
async fn client_key(state: &AppState, bearer: Option<&str>, ip: &str) -> Option<String> {
    match bearer {
        Some(key) if key.starts_with(opaque::API_KEY_PREFIX) => {
            let hash = opaque::hash_token(key);
            match state.store().api_key_by_hash(&hash).await {
                Ok(Some(k)) if k.roles.iter().any(|r| r == brigade_auth::ADMIN_ROLE) => None,
                _ => Some(format!("k:{hash}")),
            }
        }
        Some(token) => match state.tokens().verify(token) {
            Ok(p) if p.is_admin() => None,
            Ok(p) => Some(format!("u:{}", p.id)),
            Err(_) => Some(format!("ip:{ip}")),
        },
        None => Some(format!("ip:{ip}")),
    }
}

/// The middleware.
pub(crate) async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if EXEMPT.contains(&path) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let limits = state.limits();
    let (limiter, key, class) = if AUTH_PATHS.contains(&path) {
        (limits.auth.as_ref(), Some(format!("ip:{ip}")), "auth")
    } else if limits.default.is_some() {
        let bearer = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|v| v.trim().to_string());
        let key = client_key(&state, bearer.as_deref(), &ip).await;
        (limits.default.as_ref(), key, "default")
    } else {
        (None, None, "default")
    };
    if let (Some(limiter), Some(key)) = (limiter, key)
        && let Err(not_until) = limiter.check_key(&key)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        metrics::counter!("rate_limited_total", "class" => class).increment(1);
        tracing::info!(class, ip = %ip, "Rate limited.");
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many requests; retry in {secs} s."),
        );
        err.retry_after = Some(secs.max(1));
        return err.into_response();
    }
    next.run(req).await
}
