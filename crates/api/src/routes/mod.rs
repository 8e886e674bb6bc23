//! The router: one `router()` per resource, assembled with the cross-cutting layers
//! (request ids, metrics, deadlines, body limits, panics as 500s, security headers).

mod account;
mod audit;
mod auth;
pub(crate) mod auth_routes;
mod batch;
mod collections;
mod docs;
mod keys;
mod oidc;
mod ops;
mod pipeline_tests;
mod pipelines;
mod records;
mod reset_page;
mod search;
mod table;
mod tables;
mod users;

pub use table::Route;
pub(crate) use table::Routes;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

const REQUEST_ID: &str = "x-request-id";
/// Bodies of auth endpoints are small; a large one is an attack, not a login.
const AUTH_BODY_LIMIT: usize = 64 * 1024;

/// Every route of every resource, before the cross-cutting layers.
fn routes() -> Routes {
    let auth_limit = |r: Router<AppState>| r.layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT));
    Routes::new()
        .merge(account::routes().map(auth_limit))
        .merge(audit::routes())
        .merge(auth::routes().map(auth_limit))
        .merge(keys::routes())
        .merge(oidc::routes())
        .merge(collections::routes())
        .merge(records::routes())
        .merge(batch::routes())
        .merge(users::routes())
        .merge(docs::routes())
        .merge(ops::routes())
        .merge(pipelines::routes())
        .merge(pipeline_tests::routes())
        .merge(tables::routes())
        .merge(search::routes())
        .merge(crate::realtime::routes::routes())
        .merge(reset_page::routes().map(auth_limit))
}

/// The template and method of every route the server answers (the OpenAPI document must
/// describe each of them).
pub(crate) fn table() -> Vec<Route> {
    routes().into_table()
}

/// The whole HTTP surface.
pub(crate) fn router(state: AppState) -> Router {
    let settings = state.settings().server.clone();
    let request_id = HeaderName::from_static(REQUEST_ID);
    routes()
        .into_router()
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn(crate::telemetry::track))
        .fallback(crate::static_files::fallback)
        .layer(middleware::from_fn_with_state(state.clone(), crate::ratelimit::limit))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(middleware::from_fn_with_state(settings.request_timeout.max(Duration::from_millis(100)), crate::deadline::limit))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(tower::util::option_layer(cors(&settings.cors_origins)))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// CORS from `server.cors_origins`: none by default, `*` for any origin (without
/// credentials), or an explicit list.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let expose = [
        HeaderName::from_static(REQUEST_ID),
        axum::http::header::RETRY_AFTER,
    ];
    if origins.is_empty() {
        return None;
    }
    let base = CorsLayer::new()
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers(expose)
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        Some(base.allow_origin(Any))
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        Some(base.allow_origin(AllowOrigin::list(list)))
    }
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "This route does not accept that method.",
    )
    .into_response()
}
