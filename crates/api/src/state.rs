//! Shared state of the HTTP server: one `Arc` holding the store, the token issuer, settings
//! and the metrics handle.

use std::sync::Arc;

use brigade_auth::TokenIssuer;
use brigade_core::settings::Settings;
use brigade_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

/// Cheap to clone; everything lives behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<Store>,
    tokens: TokenIssuer,
    settings: Settings,
    metrics: PrometheusHandle,
}

impl AppState {
    pub(crate) fn new(
        store: Arc<Store>,
        tokens: TokenIssuer,
        settings: Settings,
        metrics: PrometheusHandle,
    ) -> Self {
        AppState(Arc::new(Inner {
            store,
            tokens,
            settings,
            metrics,
        }))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The access-token issuer.
    pub fn tokens(&self) -> &TokenIssuer {
        &self.0.tokens
    }

    /// Validated settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub(crate) fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }
}
