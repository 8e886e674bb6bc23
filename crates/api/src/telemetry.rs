//! RED metrics per route template (`http_requests_total`, `http_request_duration_seconds`),
//! the process-wide Prometheus recorder, and who may read it.
//!
//! `GET /metrics` answers on the main address unless `[metrics] listen` moves it to an
//! address of its own (the usual way to keep it off the public port); with `[metrics] token`
//! (or `BRIGADE_METRICS_TOKEN`) it requires `Authorization: Bearer TOKEN`, which Prometheus
//! sends with `authorization: { credentials_file: ... }` in its scrape config.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{Extension, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use brigade_auth::opaque;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;
use crate::state::AppState;

/// The path metrics are served at, on either listener.
pub(crate) const METRICS_PATH: &str = "/metrics";

/// Marks requests that arrived on the `[metrics] listen` address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetricsListener;

const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The Prometheus recorder, installed once per process.
pub(crate) fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("realtime_delivery_seconds".into()),
                        DURATION_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts and times each request under its route template, not its raw path.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    response
}

/// The router of the `[metrics] listen` address: `/metrics` and nothing else.
pub(crate) fn listener_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(METRICS_PATH, get(render_metrics))
        .fallback(|| async { ApiError::not_found("This address serves /metrics only.") })
        .layer(Extension(MetricsListener))
        .with_state(state)
}

/// `GET /metrics`: the Prometheus text, to whoever the `[metrics]` settings allow.
pub(crate) async fn render_metrics(
    State(state): State<AppState>,
    listener: Option<Extension<MetricsListener>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let settings = &state.settings().metrics;
    if settings.listen.is_some() && listener.is_none() {
        return Err(ApiError::not_found(
            "Metrics are served on the `[metrics] listen` address, not here.",
        ));
    }
    if let Some(token) = &settings.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        // Compared as hashes: the time taken says nothing about how much of the token matched.
        if given.map(opaque::hash_token) != Some(opaque::hash_token(token.expose())) {
            return Err(ApiError::unauthorized(
                "Metrics require `Authorization: Bearer <metrics token>` ([metrics] token).",
            ));
        }
    }
    let (in_use, idle) = state.store().pool_status();
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
        .into_response())
}
