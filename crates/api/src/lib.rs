//! Brigade's HTTP surface: the axum router, problem+json errors, extractors and the
//! [`App`] that binds a listener and serves until shutdown.
//!
//! # Layout
//! - [`App`]: build (open the store, apply migrations, bind) and run with graceful shutdown.
//! - `state`: the shared [`state::AppState`]; `error`: [`error::ApiError`]; `extract`: extractors.
//! - `routes/`: one module per resource (auth, collections, records, batch, docs, ops).
//! - `openapi`: the live OpenAPI document; `telemetry`: RED metrics.

mod audit;
pub mod error;
mod extract;
mod mailer;
mod openapi;
mod ratelimit;
mod routes;
pub mod state;
mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use brigade_auth::TokenIssuer;
use brigade_core::settings::Settings;
use brigade_store::{Store, StoreError};
use tokio::net::TcpListener;

/// Key of the generated JWT secret in the store.
const JWT_SECRET_KEY: &str = "jwt_secret";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// A built, bound server.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    store: Arc<Store>,
    grace: std::time::Duration,
    /// Finishes once every audit entry queued before shutdown is stored.
    audit_writer: tokio::task::JoinHandle<()>,
}

impl App {
    /// Opens the store, applies pending migrations, loads the signing secret and binds.
    ///
    /// # Errors
    /// [`AppError`] when the database or the address cannot be used.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        let store = Arc::new(Store::open(&settings).await?);
        let applied = store.migrate_up().await?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "Applied pending migrations.");
        }
        if store
            .count_users_with_role(brigade_auth::ADMIN_ROLE)
            .await?
            == 0
        {
            tracing::warn!(
                "No superuser yet: create one with `brigade superuser create EMAIL --dir {}`.",
                settings.dir.display()
            );
        }
        let secret = match std::env::var(&settings.auth.jwt_secret_env) {
            Ok(s) if s.len() >= 32 => s,
            Ok(_) => {
                tracing::warn!(var = %settings.auth.jwt_secret_env, "JWT secret shorter than 32 bytes; using the stored one.");
                stored_secret(&store).await?
            }
            Err(_) => stored_secret(&store).await?,
        };
        let tokens = TokenIssuer::new(secret.as_bytes(), settings.auth.access_token_ttl);
        let addr = settings.server.addr;
        let grace = settings.server.shutdown_grace;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        let public_url = match &settings.server.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", listener.local_addr().unwrap_or(addr)),
        };
        let (auditor, audit_writer) =
            audit::Auditor::start(store.clone(), settings.audit.retention);
        let state = state::AppState::new(
            store.clone(),
            tokens,
            settings,
            telemetry::prometheus(),
            auditor,
            public_url,
        );
        let limits = state.limits().clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.retain_recent();
            }
        });
        let router = routes::router(state);
        Ok(App {
            listener,
            router,
            store,
            grace,
            audit_writer,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, drains in-flight requests for at most the grace
    /// period, then closes the database.
    ///
    /// # Errors
    /// [`AppError::Serve`] on an accept-loop failure.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut stop_rx2 = stop_rx.clone();
        let grace = self.grace;
        let result = tokio::select! {
            r = server => r.map_err(AppError::Serve),
            () = async move {
                let _ = stop_rx2.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!("In-flight requests did not finish within the grace period; closing.");
                Ok(())
            }
        };
        drop(stop_rx);
        // The router (and with it every sender of the audit queue) is gone: drain the queue.
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.audit_writer)
            .await
            .is_err()
        {
            tracing::warn!("Audit entries still queued at shutdown were not all stored.");
        }
        self.store.close().await;
        tracing::info!("Stopped.");
        result
    }
}

async fn stored_secret(store: &Store) -> Result<String, StoreError> {
    store
        .persistent_value(JWT_SECRET_KEY, || {
            let a = uuid::Uuid::new_v4().simple().to_string();
            let b = uuid::Uuid::new_v4().simple().to_string();
            format!("{a}{b}")
        })
        .await
}
