//! Shared state of the HTTP server: one `Arc` holding the store, the token issuer, settings
//! and the metrics handle.

use std::sync::Arc;

use brigade_auth::TokenIssuer;
use brigade_core::settings::Settings;
use brigade_pipelines::Runner;
use brigade_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::audit::Auditor;
use crate::mailer::Mailer;
use crate::ratelimit::Limits;

/// Cheap to clone; everything lives behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    auditor: Auditor,
    mailer: Mailer,
    public_url: String,
    limits: Arc<Limits>,
    store: Arc<Store>,
    /// Swapped whole when another process rotates the stored signing key.
    tokens: std::sync::RwLock<Arc<TokenIssuer>>,
    settings: Settings,
    metrics: PrometheusHandle,
    runner: Arc<Runner>,
    search: Arc<brigade_search::Search>,
    tasks: crate::tasks::Tasks,
    realtime: Arc<crate::realtime::Hub>,
}

/// What the server is assembled from.
pub(crate) struct Parts {
    pub(crate) store: Arc<Store>,
    pub(crate) tokens: TokenIssuer,
    pub(crate) settings: Settings,
    pub(crate) metrics: PrometheusHandle,
    pub(crate) auditor: Auditor,
    pub(crate) public_url: String,
    pub(crate) limits: Arc<Limits>,
    pub(crate) runner: Arc<Runner>,
    pub(crate) search: Arc<brigade_search::Search>,
    pub(crate) tasks: crate::tasks::Tasks,
    pub(crate) realtime: Arc<crate::realtime::Hub>,
}

impl AppState {
    pub(crate) fn new(parts: Parts) -> Self {
        let Parts {
            store,
            tokens,
            settings,
            metrics,
            auditor,
            public_url,
            limits,
            runner,
            search,
            tasks,
            realtime,
        } = parts;
        let mailer = Mailer::new(settings.mail.from.clone(), settings.mail.outbox.clone());
        AppState(Arc::new(Inner {
            auditor,
            mailer,
            public_url,
            limits,
            store,
            tokens: std::sync::RwLock::new(Arc::new(tokens)),
            settings,
            metrics,
            runner,
            search,
            tasks,
            realtime,
        }))
    }

    /// Background work: started here, stopped or awaited on shutdown.
    pub(crate) fn tasks(&self) -> &crate::tasks::Tasks {
        &self.0.tasks
    }

    /// Realtime connections and channels.
    pub(crate) fn realtime(&self) -> &Arc<crate::realtime::Hub> {
        &self.0.realtime
    }

    /// Outgoing email.
    pub(crate) fn mailer(&self) -> &Mailer {
        &self.0.mailer
    }

    /// Where users reach this server, for links.
    pub(crate) fn public_url(&self) -> &str {
        &self.0.public_url
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

    /// The pipeline runner.
    pub fn runner(&self) -> &Arc<Runner> {
        &self.0.runner
    }

    /// The search indexes.
    pub fn search(&self) -> &Arc<brigade_search::Search> {
        &self.0.search
    }

    /// The access-token issuer with the current keys.
    pub fn tokens(&self) -> Arc<TokenIssuer> {
        self.0
            .tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Installs an issuer with new keys.
    pub(crate) fn set_tokens(&self, tokens: TokenIssuer) {
        *self
            .0
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(tokens);
    }

    /// Validated settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub(crate) fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }
}
