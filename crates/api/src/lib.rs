//! Brigade's HTTP surface: the axum router, problem+json errors, extractors and the
//! [`App`] that binds a listener and serves until shutdown.
//!
//! # Layout
//! - [`App`]: build (open the store, apply migrations, bind) and run with graceful shutdown.
//! - `state`: the shared [`state::AppState`]; `error`: [`error::ApiError`]; `extract`: extractors.
//! - `routes/`: one module per resource (auth, collections, records, batch, docs, ops).
//! - `openapi`: the live OpenAPI document; `telemetry`: RED metrics.

mod audit;
mod body;
mod client_ip;
mod deadline;
pub mod error;
mod extract;
mod login_budget;
mod mailer;
mod openapi;
mod ratelimit;
mod realtime;
mod routes;
pub mod state;
mod static_files;
mod tasks;
mod telemetry;
mod views;

pub use routes::Route;

/// The template and method of every route of the API, for checking the OpenAPI document.
pub fn route_table() -> Vec<Route> {
    routes::table()
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use brigade_auth::TokenIssuer;
use brigade_core::settings::Settings;
use brigade_store::{Store, StoreError};
use tokio::net::TcpListener;

/// Key of the generated JWT secret in the store.
const JWT_SECRET_KEY: &str = "jwt_secret";
/// Key of the previous JWT secret, still accepted after a rotation.
const JWT_PREVIOUS_SECRET_KEY: &str = "jwt_secret_previous";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address cannot be bound; the display names what to do, the source says why.
    #[error("cannot listen on {addr}{}", bind_hint(source))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Redis(String),
    /// A pipeline file is invalid.
    #[error("{0}")]
    Pipeline(#[from] brigade_pipelines::ConfigError),
    /// A search index cannot be opened (e.g. its embedder does not load).
    #[error("{0}")]
    Search(#[from] brigade_search::SearchError),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// What to do about a failed bind, for the kinds a user can act on.
fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there, perhaps a second `brigade serve`: stop it, or \
             choose another address with --addr HOST:PORT or [server] addr; port 0 picks a free \
             one)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges: use a port above 1024, e.g. --addr 127.0.0.1:8090)"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            " (no interface has that address: use 127.0.0.1 or 0.0.0.0)"
        }
        _ => "",
    }
}

/// A built, bound server.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    store: Arc<Store>,
    grace: std::time::Duration,
    /// Finishes once every audit entry queued before shutdown is stored.
    audit_writer: tokio::task::JoinHandle<()>,
    /// Pipeline runs, stopped at shutdown.
    runner: Arc<brigade_pipelines::Runner>,
    /// Background work: the scheduler, search ingest and follower (each document is its own
    /// transaction, so stopping between two is safe), pruners, request jobs.
    tasks: tasks::Tasks,
    /// `[metrics] listen`: the second listener and its `/metrics`-only router.
    metrics_server: Option<(TcpListener, axum::Router)>,
    /// Realtime connections: told to close (with a reconnect hint) when shutdown begins.
    realtime: Arc<realtime::Hub>,
}

impl App {
    /// Opens the store, applies pending migrations, loads the signing secret and binds.
    ///
    /// # Errors
    /// [`AppError`] when the database or the address cannot be used.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        let pipelines = brigade_pipelines::load_dir(&settings.dir)?;
        let store = Arc::new(Store::open(&settings).await?);
        let applied = store.migrate_up().await?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "Applied pending migrations.");
        }
        if store
            .accounts()
            .count_users_with_role(brigade_auth::ADMIN_ROLE)
            .await?
            == 0
        {
            tracing::warn!(
                "No superuser yet: create one with `brigade superuser create EMAIL --dir {}`.",
                settings.dir.display()
            );
        }
        let tokens = token_issuer(&store, &settings).await?;
        let addr = settings.server.addr;
        let grace = settings.server.shutdown_grace;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        let metrics_listener = match settings.metrics.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| AppError::Bind { addr, source })?,
            ),
            None => None,
        };
        if settings.metrics.token.is_none()
            && metrics_listener.is_none()
            && !addr.ip().is_loopback()
        {
            tracing::warn!(
                "/metrics is readable by anyone who reaches {addr}; set [metrics] token or \
                 [metrics] listen to restrict it."
            );
        }
        let public_url = match &settings.server.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", listener.local_addr().unwrap_or(addr)),
        };
        let limits = match &settings.redis.url {
            Some(url) => ratelimit::Limits::redis(&settings.rate_limit, url)
                .await
                .map_err(AppError::Redis)?,
            None => ratelimit::Limits::local(&settings.rate_limit),
        };
        let tasks = tasks::Tasks::default();
        // Collections, rules and exposed models changed by another process (a second
        // instance, `brigade migrate up`, a CLI pipeline run) reach this one within this.
        tasks.service(
            "schema follow",
            store.clone().follow_schema(SCHEMA_FOLLOW_INTERVAL),
        );
        let (auditor, audit_writer) =
            audit::Auditor::start(store.clone(), settings.audit.retention, &tasks);
        let runner = brigade_pipelines::Runner::new(
            store.clone(),
            &settings.dir,
            pipelines,
            Arc::new(|name: &str| std::env::var(name).ok()),
            brigade_pipelines::Process {
                role: "brigade serve",
                stale_after: settings.pipelines.stale_after,
            },
        );
        // Runs whose process died are failed by heartbeat age, here and every
        // `stale_after / 2` in the scheduler; runs of live CLI processes are left alone.
        runner.sweep(None).await?;
        tasks.service(
            "scheduler",
            brigade_pipelines::schedule::run(runner.clone()),
        );
        brigade_pipelines::schedule::run_on_start(&runner).await;
        let app_runner = runner.clone();
        let search = Arc::new(brigade_search::Search::open(store.clone(), &settings).await?);
        tasks.service("search ingest", {
            let search = search.clone();
            async move { search.ingest_all().await }
        });
        tasks.service(
            "search follow",
            brigade_search::follow::follow(search.clone()),
        );
        let realtime = realtime::Hub::new(store.clone(), settings.realtime.clone());
        tasks.service("realtime delivery", realtime::pump(realtime.clone()));
        tasks.service("realtime log pruning", realtime::prune(realtime.clone()));
        tasks.service("channel presence", realtime::maintain(realtime.clone()));
        let state = state::AppState::new(state::Parts {
            store: store.clone(),
            tokens,
            settings,
            metrics: telemetry::prometheus(),
            auditor,
            public_url,
            limits,
            runner,
            search,
            tasks: tasks.clone(),
            realtime: realtime.clone(),
        });
        if state.settings().auth.jwt_secret.is_none() {
            tasks.service("signing keys", follow_signing_keys(state.clone()));
        }
        let limits = state.limits().clone();
        tasks.service("rate limit cleanup", async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.retain_recent();
            }
        });
        if let Some(policy) = state.settings().rate_limit.login {
            tasks.service(
                "login failure pruning",
                prune_login_failures(store.clone(), policy),
            );
        }
        let metrics_server = metrics_listener.map(|listener| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(address = %address, "Metrics listening.");
            }
            (listener, telemetry::listener_router(state.clone()))
        });
        let router = routes::router(state);
        Ok(App {
            listener,
            router,
            store,
            grace,
            audit_writer,
            runner: app_runner,
            tasks,
            metrics_server,
            realtime,
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
        if let Some((listener, router)) = self.metrics_server {
            self.tasks.service("metrics listener", async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "The metrics listener failed.");
                }
            });
        }
        let runner = self.runner.clone();
        let hub = self.realtime.clone();
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Running pipelines stop too (their event streams end with them), and realtime
            // connections close with a reconnect hint so graceful shutdown can finish.
            runner.cancel_all();
            hub.stop();
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
        realtime::leave_all(&self.realtime).await;
        self.tasks.shutdown(self.grace).await;
        self.runner.drain(self.grace).await;
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

/// How often a server checks for schema changes made by other processes.
const SCHEMA_FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Drops stale per-account login failure counts once an hour.
async fn prune_login_failures(store: Arc<Store>, policy: brigade_core::settings::LoginLockout) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(e) = store.accounts().prune_login_failures(&policy).await {
            tracing::warn!(error = %e, "Could not prune old login failures.");
        }
    }
}

/// The access-token issuer: the secret from the environment (`auth.jwt_secret_env`, with
/// `auth.jwt_previous_secret_env` still accepted), or else the one generated on first start
/// and stored in the database (with the previous one after `brigade jwt rotate`).
async fn token_issuer(store: &Store, settings: &Settings) -> Result<TokenIssuer, StoreError> {
    let ttl = settings.auth.access_token_ttl;
    if let Some(secret) = &settings.auth.jwt_secret {
        let previous = settings
            .auth
            .jwt_previous_secret
            .as_ref()
            .map(|p| p.expose().as_bytes());
        return Ok(TokenIssuer::with_previous(
            secret.expose().as_bytes(),
            previous,
            ttl,
        ));
    }
    let secret = store
        .accounts()
        .persistent_value(JWT_SECRET_KEY, new_secret)
        .await?;
    let previous = store
        .accounts()
        .stored_value(JWT_PREVIOUS_SECRET_KEY)
        .await?;
    Ok(TokenIssuer::with_previous(
        secret.as_bytes(),
        previous.as_deref().map(str::as_bytes),
        ttl,
    ))
}

/// How often a server checks the stored signing keys for a rotation made elsewhere.
const SIGNING_KEYS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows `brigade jwt rotate` (run against the database while servers run): within a
/// second every server signs with the new key and still accepts the previous one.
async fn follow_signing_keys(state: state::AppState) {
    let mut tick = tokio::time::interval(SIGNING_KEYS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let accounts = state.store().accounts();
        let stored = async {
            let secret = accounts.stored_value(JWT_SECRET_KEY).await?;
            let previous = accounts.stored_value(JWT_PREVIOUS_SECRET_KEY).await?;
            Ok::<_, StoreError>((secret, previous))
        };
        match stored.await {
            Ok((Some(secret), previous)) => {
                failing = false;
                let previous = previous.as_deref().map(str::as_bytes);
                let current = state.tokens();
                if !current.has_keys(secret.as_bytes(), previous) {
                    state.set_tokens(current.rekeyed(secret.as_bytes(), previous));
                    tracing::info!(
                        "The signing key was rotated; tokens are now signed with the new key."
                    );
                }
            }
            Ok((None, _)) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "Cannot read the stored signing keys; retrying.");
            }
            Err(_) => {}
        }
    }
}

/// 256 random bits, hex.
pub fn new_secret() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

/// Replaces the stored JWT secret, keeping the old one for verification. Running servers
/// pick the new key up within a second; tokens signed before stay valid until they expire.
///
/// # Errors
/// Database errors.
pub async fn rotate_stored_jwt_secret(store: &Store) -> Result<(), StoreError> {
    store
        .accounts()
        .rotate_value(JWT_SECRET_KEY, JWT_PREVIOUS_SECRET_KEY, &new_secret())
        .await
}
