//! Rate limits: a strict budget per client IP on the endpoints that take passwords and
//! tokens, and a default budget per user or API key (per IP when anonymous) everywhere else.
//! The client IP is the one [`crate::client_ip`] resolves (`X-Forwarded-For` only from
//! trusted proxies; IPv6 by /64); per-account login budgets are in [`crate::login_budget`].
//! Over budget → 429 problem+json with `Retry-After`. Operations endpoints (`/healthz`,
//! `/readyz`, `/metrics`) are never limited, and neither are superusers and `admin` keys
//! outside the auth endpoints: they are the operators, and throttling an admin ETL key at an
//! end-user budget would only break imports.
//!
//! In one process the budgets are GCRA limiters in memory (governor). With `[redis] url`,
//! every process charges the same counters in Redis (a fixed window per period, incremented
//! atomically by a script), so a client cannot multiply its budget by spreading requests
//! over instances. If Redis is unreachable the request is let through and counted in
//! `rate_limit_errors_total`: a rate limiter must not take the API down with it.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use brigade_auth::{Principal, opaque};
use brigade_core::settings::{Rate, RateLimitSettings};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use redis::aio::ConnectionManager;

use crate::client_ip::{self, ClientIp};
use crate::error::ApiError;
use crate::extract::{Verified, api_key};
use crate::state::AppState;

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// Increments a window counter and sets its expiry on first use, in one round trip.
const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n";

/// Paths never limited.
const EXEMPT: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Which budget a request is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Default,
    Auth,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Default => "default",
            Class::Auth => "auth",
        }
    }
}

enum Backend {
    Local {
        default: Option<Keyed>,
        auth: Option<Keyed>,
    },
    Redis {
        conn: ConnectionManager,
        script: redis::Script,
    },
}

/// The process's limiters.
pub(crate) struct Limits {
    settings: RateLimitSettings,
    backend: Backend,
}

fn keyed(rate: Rate) -> Keyed {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let interval = (rate.period / count.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count);
    RateLimiter::keyed(quota)
}

impl Limits {
    /// In-process limiters.
    pub(crate) fn local(settings: &RateLimitSettings) -> Arc<Self> {
        Arc::new(Limits {
            settings: settings.clone(),
            backend: Backend::Local {
                default: settings.default.map(keyed),
                auth: settings.auth.map(keyed),
            },
        })
    }

    /// Limiters shared through Redis at `url`.
    ///
    /// # Errors
    /// A message when Redis cannot be reached at start.
    pub(crate) async fn redis(
        settings: &RateLimitSettings,
        url: &str,
    ) -> Result<Arc<Self>, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("invalid Redis URL `{url}`: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
            .await
            .map_err(|_| format!("Redis at {url} did not answer within 5 s"))?
            .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
        Ok(Arc::new(Limits {
            settings: settings.clone(),
            backend: Backend::Redis {
                conn,
                script: redis::Script::new(WINDOW_SCRIPT),
            },
        }))
    }

    fn rate(&self, class: Class) -> Option<Rate> {
        match class {
            Class::Default => self.settings.default,
            Class::Auth => self.settings.auth,
        }
    }

    /// Forgets idle keys so memory stays bounded; call periodically.
    pub(crate) fn retain_recent(&self) {
        if let Backend::Local { default, auth } = &self.backend {
            for limiter in [default, auth].into_iter().flatten() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// Charges one request to `key`; `Err(wait)` when over budget.
    async fn check(&self, class: Class, key: &str) -> Result<(), Duration> {
        let Some(rate) = self.rate(class) else {
            return Ok(());
        };
        match &self.backend {
            Backend::Local { default, auth } => {
                let limiter = if class == Class::Auth { auth } else { default };
                match limiter.as_ref().map(|l| l.check_key(&key.to_string())) {
                    Some(Err(not_until)) => {
                        Err(not_until.wait_time_from(DefaultClock::default().now()))
                    }
                    _ => Ok(()),
                }
            }
            Backend::Redis { conn, script } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                let period = rate.period.as_millis().max(1);
                let window = now / period;
                let redis_key = format!("brigade:rl:{}:{key}:{window}", class.name());
                let mut conn = conn.clone();
                let count: Result<u64, _> = script
                    .key(&redis_key)
                    .arg(period as u64)
                    .invoke_async(&mut conn)
                    .await;
                match count {
                    Ok(n) if n > u64::from(rate.count) => {
                        Err(Duration::from_millis(((window + 1) * period - now) as u64))
                    }
                    Ok(_) => Ok(()),
                    Err(e) => {
                        metrics::counter!("rate_limit_errors_total").increment(1);
                        tracing::warn!(error = %e, "Redis rate limiter unavailable; request let through.");
                        Ok(())
                    }
                }
            }
        }
    }
}

/// Who a request is charged to: the user or key behind a valid credential, else the IP;
/// `None` for superusers (not limited). The verified principal (JWT or API key) is returned
/// too, so the handler does not verify the credential a second time.
async fn client_key(
    state: &AppState,
    bearer: Option<&str>,
    ip: &str,
) -> (Option<String>, Option<Principal>) {
    match bearer {
        Some(key) if key.starts_with(opaque::API_KEY_PREFIX) => match api_key(state, key).await {
            Ok(p) if p.is_admin() => (None, Some(p)),
            Ok(p) => (Some(format!("k:{}", p.id)), Some(p)),
            Err(_) => (Some(format!("ip:{ip}")), None),
        },
        Some(token) => match state.tokens().verify(token) {
            // A revoked token (demotion, logout) is no superuser: it pays like anyone.
            Ok(p) if p.is_admin() && crate::extract::current(state, &p).await.is_ok() => {
                (None, Some(p))
            }
            Ok(p) if p.is_admin() => (Some(format!("ip:{ip}")), None),
            Ok(p) => (Some(format!("u:{}", p.id)), Some(p)),
            Err(_) => (Some(format!("ip:{ip}")), None),
        },
        None => (Some(format!("ip:{ip}")), None),
    }
}

/// The middleware.
pub(crate) async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if EXEMPT.contains(&path) {
        return next.run(req).await;
    }
    let auth_path = crate::routes::auth_routes::is_auth_route(req.method(), path);
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| {
        client_ip::resolve(
            c.0.ip(),
            req.headers(),
            &state.settings().server.trusted_proxies,
        )
    });
    if let Some(client) = client {
        req.extensions_mut().insert(ClientIp(client));
    }
    let ip = client.map_or_else(|| "unknown".to_string(), client_ip::budget_key);
    let limits = state.limits().clone();
    let (class, key) = if auth_path {
        (Class::Auth, Some(format!("ip:{ip}")))
    } else if limits.rate(Class::Default).is_some() {
        let bearer = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|v| v.trim().to_string());
        let (key, principal) = client_key(&state, bearer.as_deref(), &ip).await;
        if let Some(p) = principal {
            req.extensions_mut().insert(Verified(p));
        }
        (Class::Default, key)
    } else {
        (Class::Default, None)
    };
    if let Some(key) = key
        && let Err(wait) = limits.check(class, &key).await
    {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        metrics::counter!("rate_limited_total", "class" => class.name()).increment(1);
        tracing::info!(class = class.name(), ip = %ip, "Rate limited.");
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many requests; retry in {secs} s."),
        );
        err.retry_after = Some(secs);
        return err.into_response();
    }
    next.run(req).await
}
