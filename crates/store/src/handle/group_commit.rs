//! Group commit. When many requests write at once, one task drains the queue of pending
//! writes and runs them all in one transaction, each inside its own savepoint: a write that
//! fails (a unique conflict, a refusing rule) is rolled back alone and answered with its
//! error, the others commit together, and the group's realtime events take one range of the
//! event log.
//!
//! SQLite has one writer, so handing the write lock from task to task would cost more than the
//! writes. On PostgreSQL the event log's counter row (`_event_head`, held from the append to
//! the commit so ids follow commit order) makes commits follow one another: writing one
//! transaction per request there measured 1.6k inserts/s against 5.2k/s before the log, and
//! one transaction per burst 9.1k/s (BENCHMARKS.md). The price is that a statement stuck on
//! a row lock held elsewhere holds up its group.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::BatchOutcome;
use super::counts::CountCache;
use super::records::{WriteJob, apply_job};
use crate::changes::ChangeFeed;
use crate::conn::Database;
use crate::error::StoreError;
use crate::event_log::{self, LocalWake};

/// Most requests committed in one transaction.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Vec<BatchOutcome>, (usize, StoreError)>>;

/// The sending side of the write queue.
pub(super) struct GroupCommit {
    tx: mpsc::Sender<(WriteJob, Reply)>,
}

impl GroupCommit {
    /// Starts the committing task.
    pub(super) fn start(
        db: Arc<dyn Database>,
        counts: Arc<CountCache>,
        changes: Arc<ChangeFeed>,
        wake: Arc<LocalWake>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(commit_groups(db, counts, changes, wake, rx));
        GroupCommit { tx }
    }

    /// Queues a job and waits for its outcome (after its group committed).
    pub(super) async fn submit(
        &self,
        job: WriteJob,
    ) -> Result<Vec<BatchOutcome>, (usize, StoreError)> {
        let (reply, answer) = oneshot::channel();
        let closed = || (0, StoreError::unavailable("the store is shutting down"));
        self.tx.send((job, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn commit_groups(
    db: Arc<dyn Database>,
    counts: Arc<CountCache>,
    changes: Arc<ChangeFeed>,
    wake: Arc<LocalWake>,
    mut rx: mpsc::Receiver<(WriteJob, Reply)>,
) {
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut jobs, MAX_GROUP).await > 0 {
        let mut tx = match db.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in jobs.drain(..) {
                    let _ = reply.send(Err((0, StoreError::unavailable(message.clone()))));
                }
                continue;
            }
        };
        let mut done = Vec::with_capacity(jobs.len());
        let mut logged = Vec::new();
        for (job, reply) in jobs.drain(..) {
            if let Err(e) = tx.execute_script("SAVEPOINT brigade_write").await {
                done.push((reply, Err((0, e)), Vec::new()));
                continue;
            }
            match apply_job(tx.as_mut(), job).await {
                Ok((outcomes, written)) => match tx.execute_script("RELEASE brigade_write").await {
                    Ok(()) => {
                        logged.extend(written.events);
                        done.push((reply, Ok(outcomes), written.changes));
                    }
                    Err(e) => done.push((reply, Err((0, e)), Vec::new())),
                },
                Err(failure) => {
                    let undo = tx
                        .execute_script("ROLLBACK TO brigade_write; RELEASE brigade_write")
                        .await;
                    if let Err(e) = undo {
                        tracing::error!(error = %e, "Could not roll back a failed write in a group.");
                    }
                    done.push((reply, Err(failure), Vec::new()));
                }
            }
        }
        // The group's events take one range of the log; if that fails, nothing commits.
        let committed = match event_log::append(tx.as_mut(), &logged).await {
            Ok(_) => tx.commit().await,
            Err(e) => Err(e),
        };
        match committed {
            Ok(()) => {
                counts.bump();
                if !logged.is_empty() {
                    wake.fire();
                }
                for (reply, result, events) in done {
                    for change in events {
                        changes.publish(change);
                    }
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let message = e.to_string();
                // A lost connection or a server going away is the client's 503 (retry), as
                // for a write committed alone; anything else is a fault of ours.
                let transient = e.is_transient();
                for (reply, result, _) in done {
                    // Writes that had already failed keep their own error.
                    let answer = match result {
                        Ok(_) if transient => Err((
                            0,
                            StoreError::unavailable(format!("commit failed: {message}")),
                        )),
                        Ok(_) => {
                            Err((0, StoreError::internal(format!("commit failed: {message}"))))
                        }
                        failed => failed,
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    }
}
