//! Connections of the SQLite backend and the blocking threads their statements run on.
//!
//! A [`Lease`] is one connection taken for one [`Conn`](crate::conn::Conn): the writer
//! (behind its mutex, with the open transaction rolled back when the lease is dropped) or a
//! connection of a read [`Lane`] (returned to the lane when dropped). [`off_thread`] moves a
//! lease to a blocking thread, runs one statement there and hands it back; if the waiting
//! request goes away meanwhile, the statement is interrupted and the lease returns to its
//! pool from that thread, so nothing leaks and no runtime worker ever runs SQL.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinHandle};

use super::stop::Stop;
use crate::deadline::until_deadline;
use crate::error::StoreError;

/// A connection and its stop switch.
pub(super) struct Handle {
    pub(super) conn: Connection,
    pub(super) stop: Arc<Stop>,
}

/// A bounded set of read connections; requests wait for one in arrival order.
pub(super) struct Lane {
    idle: Mutex<Vec<Handle>>,
    permits: Arc<Semaphore>,
    size: usize,
}

impl Lane {
    pub(super) fn new(handles: Vec<Handle>) -> Arc<Lane> {
        let size = handles.len();
        Arc::new(Lane {
            idle: Mutex::new(handles),
            permits: Arc::new(Semaphore::new(size)),
            size,
        })
    }

    /// Waits (until the request's deadline) for a connection of this lane.
    pub(super) async fn lease(self: &Arc<Self>) -> Result<Lease, StoreError> {
        let permit = until_deadline(self.permits.clone().acquire_owned())
            .await?
            .map_err(|_| StoreError::Unavailable("database is closed".into()))?;
        let handle = self
            .idle
            .lock()
            .map_err(|_| StoreError::Internal("reader pool poisoned".into()))?
            .pop()
            .ok_or_else(|| StoreError::Internal("reader pool empty".into()))?;
        Ok(Lease::Reader {
            handle: Some(handle),
            lane: Arc::clone(self),
            _permit: permit,
        })
    }

    /// `(in use, idle)`.
    pub(super) fn status(&self) -> (usize, usize) {
        let idle = self.permits.available_permits();
        (self.size - idle, idle)
    }

    pub(super) fn close(&self) {
        self.permits.close();
    }
}

/// One connection, held by one `Conn` (or, while a statement runs, by its blocking thread).
pub(super) enum Lease {
    Writer {
        guard: OwnedMutexGuard<Handle>,
        /// A transaction is open and is rolled back when the lease is dropped.
        open: bool,
    },
    Reader {
        handle: Option<Handle>,
        lane: Arc<Lane>,
        /// Held for the connection's lifetime; released after the handle is back.
        _permit: OwnedSemaphorePermit,
    },
}

impl Lease {
    pub(super) fn handle(&self) -> &Handle {
        match self {
            Lease::Writer { guard, .. } => guard,
            Lease::Reader { handle, .. } => handle.as_ref().expect("handle present until drop"),
        }
    }

    /// Whether dropping this lease runs SQL (a `ROLLBACK`).
    pub(super) fn rolls_back(&self) -> bool {
        matches!(self, Lease::Writer { open: true, .. })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self {
            Lease::Writer { guard, open } => {
                if *open {
                    guard.stop.disarm();
                    if let Err(e) = guard.conn.execute_batch("ROLLBACK") {
                        tracing::warn!(error = %e, "Rolling back an abandoned write failed.");
                    }
                }
            }
            Lease::Reader { handle, lane, .. } => {
                if let (Some(handle), Ok(mut idle)) = (handle.take(), lane.idle.lock()) {
                    handle.stop.disarm();
                    idle.push(handle);
                }
            }
        }
    }
}

/// What [`off_thread`] hands back: the lease, the statement (to run it again elsewhere) and
/// its result.
pub(super) type Ran<F, T> = (Lease, F, rusqlite::Result<T>);

/// Runs `f` with the lease's connection on a blocking thread, stopping it at `stop_at`.
///
/// # Errors
/// [`StoreError::Internal`] when `f` panicked (the lease was dropped, and with it its
/// transaction, while unwinding).
pub(super) async fn off_thread<F, T>(
    lease: Lease,
    stop_at: Option<Instant>,
    f: F,
) -> Result<Ran<F, T>, StoreError>
where
    F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let stop = Arc::clone(&lease.handle().stop);
    stop.arm(stop_at);
    let join = tokio::task::spawn_blocking(move || {
        let mut f = f;
        let result = f(&lease.handle().conn);
        lease.handle().stop.disarm();
        (lease, f, result)
    });
    Running {
        join,
        stop,
        finished: false,
    }
    .await
    .map_err(|e| StoreError::Internal(format!("a SQLite statement failed to run: {e}")))
}

/// A statement running on a blocking thread; dropping it before it finishes stops the
/// statement (before the join handle, and so the lease, can be released).
struct Running<T> {
    join: JoinHandle<T>,
    stop: Arc<Stop>,
    finished: bool,
}

impl<T> Future for Running<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = ready!(Pin::new(&mut self.join).poll(cx));
        self.finished = true;
        Poll::Ready(out)
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.stop.cancel();
        }
    }
}
