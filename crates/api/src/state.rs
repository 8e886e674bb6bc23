//! Shared state of the HTTP server: one `Arc` holding the store, the token issuer, settings
//! and the metrics handle.

use std::sync::Arc;

use brigade_auth::TokenIssuer;
use brigade_core::settings::Settings;
use brigade_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::audit::Auditor;
use crate::ratelimit::Limits;

/// Cheap to clone; everything lives behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    auditor: Auditor,
    limits: Arc<Limits>,
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
        auditor: Auditor,
    ) -> Self {
        let limits = Limits::new(&settings.rate_limit);
        AppState(Arc::new(Inner {
            auditor,
            limits,
            store,
            tokens,
            settings,
            metrics,
        }))
    }

    /// The audit log writer.
    pub(crate) fn audit(&self) -> &Auditor {
        &self.0.auditor
    }

    pub(crate) fn limits(&self) -> &Arc<Limits> {
        &self.0.limits
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
