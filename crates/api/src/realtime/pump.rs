//! The pump: this process's reader of the event log. It wakes on local commits, on
//! PostgreSQL notifications from other processes (and after each reconnection of the
//! notification connection), and on a timer — the only signal on SQLite for writes of another
//! process — then hands every event after its position to the hub, in order.

use std::sync::Arc;
use std::time::Duration;

use brigade_store::StoreError;

use super::Hub;
use super::deliver::dispatch;
use super::message::Outgoing;

/// Events read per query.
const BATCH: usize = 512;
/// How often the log is read without a wake-up: other processes' writes on SQLite, and a
/// safety net on PostgreSQL.
const POLL_SQLITE: Duration = Duration::from_millis(200);
const POLL_POSTGRES: Duration = Duration::from_secs(2);
/// How often old events are pruned: often enough that a burst of writes (16k records/s on
/// SQLite here) never leaves more than a few seconds' worth beyond `realtime.replay`.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Runs until the task is stopped.
pub(crate) async fn run(hub: Arc<Hub>) {
    let log = hub.store.event_log();
    let start = loop {
        match log.head().await {
            Ok(head) => break head,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the realtime event log; retrying.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    *hub.position.lock().await = start;
    tracing::debug!(position = start, "Realtime delivery started.");
    let local = log.local_wake();
    let mut remote = log.remote_wake();
    let poll = if remote.is_some() {
        POLL_POSTGRES
    } else {
        POLL_SQLITE
    };
    let mut failing = false;
    loop {
        tokio::select! {
            () = local.wait() => {}
            Some(()) = async { match remote.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {}
            () = tokio::time::sleep(poll) => {}
        }
        match drain(&hub).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("Realtime delivery resumed.");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "Cannot read the realtime event log; retrying (subscribers get what they missed when it returns).");
            }
            Err(_) => {}
        }
    }
}

/// Delivers everything after the hub's position.
async fn drain(hub: &Hub) -> Result<(), StoreError> {
    let log = hub.store.event_log();
    loop {
        let mut position = hub.position.lock().await;
        if hub.is_idle() {
            // Nobody to deliver to: move past what was written without reading it (one row
            // instead of every event's body, on every write, on every server). A subscriber
            // arriving later starts after this position, or resumes from the log.
            *position = log.head().await?.max(*position);
            return Ok(());
        }
        let batch = log.read(*position, None, BATCH).await?;
        let Some(first) = batch.first() else {
            return Ok(());
        };
        if first.id > *position + 1 {
            // Pruned before this process read them (it was cut off from the database for
            // longer than the log keeps events): every subscriber must read again.
            tracing::warn!(
                from = *position + 1,
                to = first.id - 1,
                "Realtime events were pruned before this server delivered them; subscribers are told to resync."
            );
            for connection in hub.connections() {
                for topic in connection.labels() {
                    connection.send(Outgoing::Resync { topic });
                }
            }
        }
        let connections = hub.connections();
        for event in &batch {
            dispatch(hub, &connections, event).await;
            *position = event.id;
        }
    }
}

/// Prunes the log down to `realtime.replay` events every few seconds.
pub(crate) async fn prune(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        match hub.store.event_log().prune(hub.settings.replay).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "Pruned the realtime event log."),
            Err(e) => tracing::warn!(error = %e, "Could not prune the realtime event log."),
        }
    }
}
