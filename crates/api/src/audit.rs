//! Writing the audit log without slowing requests down: handlers hand entries to an
//! [`Auditor`], a background task stores them in batches (one transaction per batch), and a
//! second task prunes entries past the retention period. On shutdown the queue is drained
//! before the database closes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use brigade_store::{AuditEntry, Store};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Entries waiting to be stored before new ones are dropped (and counted).
const QUEUE: usize = 10_000;
/// Most entries stored in one transaction.
const BATCH: usize = 500;

/// Where a request came from, for audit entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestMeta {
    pub(crate) ip: Option<String>,
    pub(crate) request_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(RequestMeta { ip, request_id })
    }
}

/// The sending side of the audit queue.
#[derive(Clone)]
pub(crate) struct Auditor {
    tx: mpsc::Sender<AuditEntry>,
}

impl Auditor {
    /// Starts the writer (and, with a retention period, the pruner).
    pub(crate) fn start(
        store: Arc<Store>,
        retention: Option<Duration>,
    ) -> (Auditor, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(store.clone(), rx));
        if let Some(retention) = retention {
            tokio::spawn(prune_forever(store, retention));
        }
        (Auditor { tx }, writer)
    }

    /// Queues an entry; never blocks the request.
    pub(crate) fn record(
        &self,
        meta: &RequestMeta,
        action: &str,
        actor: Option<&str>,
        target: Option<String>,
        detail: Value,
    ) {
        let mut entry = AuditEntry::new(action);
        entry.actor = actor.map(str::to_string);
        entry.ip.clone_from(&meta.ip);
        entry.request_id.clone_from(&meta.request_id);
        entry.target = target;
        entry.detail = detail;
        if self.tx.try_send(entry).is_err() {
            metrics::counter!("audit_dropped_total").increment(1);
            tracing::warn!(action, "Audit queue full; entry dropped.");
        }
    }
}

async fn write_batches(store: Arc<Store>, mut rx: mpsc::Receiver<AuditEntry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(e) = store.record_audit(&batch).await {
            tracing::error!(error = %e, count = batch.len(), "Could not store audit entries.");
        }
        batch.clear();
    }
}

async fn prune_forever(store: Arc<Store>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let keep = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(90));
        let before = brigade_core::time::format_datetime(chrono::Utc::now() - keep);
        match store.prune_audit(&before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "Pruned audit entries past retention."),
            Err(e) => tracing::warn!(error = %e, "Could not prune audit entries."),
        }
    }
}
