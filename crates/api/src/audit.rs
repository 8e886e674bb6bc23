//! Writing the audit log without slowing requests down: handlers hand entries to an
//! [`Auditor`], a background task stores them in batches (one transaction per batch), and a
//! second task prunes entries past the retention period. On shutdown the queues are drained
//! before the database closes.
//!
//! Record writes are the bulk of the log and anyone allowed to write can make many, so
//! their queue is bounded: when it is full an entry is dropped, counted in
//! `audit_dropped_total{actor="anonymous"|"signed_in"}` (no emails on `/metrics`) and
//! logged with who it was, per actor. Security events (sign-ins and their failures,
//! tokens, keys, accounts, roles, schema changes: every action but `record.*`) have a queue
//! of their own that never drops and is written first, so flooding the record queue cannot
//! hide them. Their volume is bounded by the auth rate limit and by who may make them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use brigade_store::{AuditAction, AuditEntry, Store};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Record entries waiting to be stored before new ones are dropped (and counted).
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
        // The client as the rate limiter resolved it (behind `server.trusted_proxies`, the
        // forwarded address), else the direct peer.
        let ip = parts
            .extensions
            .get::<crate::client_ip::ClientIp>()
            .map(|c| c.0.to_string())
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0.ip().to_string())
            });
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(RequestMeta { ip, request_id })
    }
}

/// The sending side of the audit queues.
#[derive(Clone)]
pub(crate) struct Auditor {
    /// Record writes: bounded, dropped when full.
    tx: mpsc::Sender<AuditEntry>,
    /// Security events: never dropped, written first.
    security: mpsc::UnboundedSender<AuditEntry>,
    /// Dropped record entries per actor, to log the first and then every doubling.
    dropped: Arc<Mutex<HashMap<String, u64>>>,
}

impl Auditor {
    /// Starts the writer (and, with a retention period, the pruner).
    pub(crate) fn start(
        store: Arc<Store>,
        retention: Option<Duration>,
        tasks: &crate::tasks::Tasks,
    ) -> (Auditor, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (security, security_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_batches(store.clone(), security_rx, rx));
        if let Some(retention) = retention {
            tasks.service("audit pruning", prune_forever(store, retention));
        }
        (Auditor::with_queues(tx, security), writer)
    }

    fn with_queues(
        tx: mpsc::Sender<AuditEntry>,
        security: mpsc::UnboundedSender<AuditEntry>,
    ) -> Auditor {
        Auditor {
            tx,
            security,
            dropped: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Queues an entry; never blocks the request. A security event is always kept; a record
    /// entry is dropped (and counted against its actor) when its queue is full.
    pub(crate) fn record(
        &self,
        meta: &RequestMeta,
        action: AuditAction,
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
        if action.is_security() {
            if self.security.send(entry).is_err() {
                tracing::error!(
                    action = action.as_str(),
                    "The audit writer has stopped; security entry lost."
                );
            }
            return;
        }
        if self.tx.try_send(entry).is_err() {
            self.count_drop(action, actor);
        }
    }

    fn count_drop(&self, action: AuditAction, actor: Option<&str>) {
        // The metric is labelled by kind only: actors are emails, and `/metrics` may be
        // public; who it was goes to the log.
        let actor = actor.unwrap_or("anonymous");
        let kind = if actor == "anonymous" {
            "anonymous"
        } else {
            "signed_in"
        };
        metrics::counter!("audit_dropped_total", "actor" => kind).increment(1);
        let count = self.dropped.lock().map_or(1, |mut d| {
            // Bounded: past this many actors the counts start over (only the log's pacing
            // depends on them).
            if d.len() >= 10_000 && !d.contains_key(actor) {
                d.clear();
            }
            let n = d.entry(actor.to_string()).or_default();
            *n += 1;
            *n
        });
        if count.is_power_of_two() {
            tracing::warn!(
                action = action.as_str(),
                actor,
                dropped = count,
                "Audit queue full; record entry dropped (logged at every doubling per actor)."
            );
        }
    }
}

/// Stores queued entries in batches, security events first, until both queues are closed
/// and empty.
async fn write_batches(
    store: Arc<Store>,
    mut security: mpsc::UnboundedReceiver<AuditEntry>,
    mut rx: mpsc::Receiver<AuditEntry>,
) {
    let mut urgent = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    let (mut security_open, mut open) = (true, true);
    loop {
        // `recv_many` is cancel-safe: the branch not taken loses nothing.
        tokio::select! {
            biased;
            n = security.recv_many(&mut urgent, BATCH), if security_open => {
                if n == 0 {
                    security_open = false;
                }
            }
            n = rx.recv_many(&mut batch, BATCH), if open => {
                if n == 0 {
                    open = false;
                }
            }
            else => break,
        }
        if !urgent.is_empty() {
            store_batch(&store, &urgent).await;
            urgent.clear();
        }
        if !batch.is_empty() {
            store_batch(&store, &batch).await;
            batch.clear();
        }
    }
}

/// Stores one batch, trying again twice after a pause should the database refuse it.
async fn store_batch(store: &Store, batch: &[AuditEntry]) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=3 {
        match store.audit().record(batch).await {
            Ok(()) => return,
            Err(e) if attempt < 3 => {
                tracing::warn!(error = %e, count = batch.len(), attempt, "Could not store audit entries; retrying.");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, count = batch.len(), "Could not store audit entries.");
            }
        }
    }
}

async fn prune_forever(store: Arc<Store>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let keep = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(90));
        let before = brigade_core::time::format_datetime(chrono::Utc::now() - keep);
        match store.audit().prune(&before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "Pruned audit entries past retention."),
            Err(e) => tracing::warn!(error = %e, "Could not prune audit entries."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_events_are_never_dropped_and_drops_are_counted_per_actor() {
        let (tx, mut rx) = mpsc::channel(1);
        let (security, mut security_rx) = mpsc::unbounded_channel();
        let auditor = Auditor::with_queues(tx, security);
        let meta = RequestMeta::default();
        for _ in 0..3 {
            auditor.record(
                &meta,
                AuditAction::RecordCreate,
                Some("mallory"),
                None,
                Value::Null,
            );
        }
        auditor.record(&meta, AuditAction::RecordBatch, None, None, Value::Null);
        // The record queue is full: every failed login still gets through.
        for _ in 0..50 {
            auditor.record(&meta, AuditAction::AuthLoginFailed, None, None, Value::Null);
        }
        auditor.record(
            &meta,
            AuditAction::CollectionDelete,
            Some("admin"),
            None,
            Value::Null,
        );
        auditor.record(
            &meta,
            AuditAction::KeyCreate,
            Some("admin"),
            None,
            Value::Null,
        );
        let mut security = Vec::new();
        while let Ok(e) = security_rx.try_recv() {
            security.push(e.action);
        }
        assert_eq!(security.len(), 52);
        assert_eq!(
            security
                .iter()
                .filter(|a| **a == AuditAction::AuthLoginFailed)
                .count(),
            50
        );
        assert_eq!(rx.try_recv().unwrap().action, AuditAction::RecordCreate);
        assert!(rx.try_recv().is_err());
        let dropped = auditor.dropped.lock().unwrap().clone();
        assert_eq!(dropped.get("mallory"), Some(&2));
        assert_eq!(dropped.get("anonymous"), Some(&1));
    }

    #[test]
    fn only_record_writes_are_droppable() {
        for action in [
            AuditAction::RecordCreate,
            AuditAction::RecordUpdate,
            AuditAction::RecordDelete,
            AuditAction::RecordBatch,
        ] {
            assert!(!action.is_security(), "{action}");
        }
        for action in [
            AuditAction::AuthLoginFailed,
            AuditAction::AuthRefreshReused,
            AuditAction::KeyCreate,
            AuditAction::UserRoles,
            AuditAction::CollectionUpdate,
        ] {
            assert!(action.is_security(), "{action}");
        }
    }
}
