//! Connections of the SQLite backend and the blocking threads their statements run on.
//!
//! A [`Lease`] is one connection taken for one [`Conn`](crate::conn::Conn): the writer
//! (behind its mutex, with the open transaction rolled back when the lease is dropped) or a
//! connection of a read [`Lane`] (returned to the lane when dropped). [`off_thread`] moves a
//! lease to another thread, runs one statement there and hands it back; if the waiting
//! request goes away meanwhile, the statement is interrupted and the lease returns to its
//! pool from that thread, so nothing leaks.
//!
//! Writes run on tokio's blocking threads. Each read lane has its own threads, one per
//! connection (so a leased connection never waits for a thread), at a lower CPU priority
//! (`nice`, Linux): a slow filter gets the cores the runtime threads leave, and `/healthz`
//! and cheap requests do not queue for the CPU behind it.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, oneshot};

use super::stop::Stop;
use crate::deadline::until_deadline;
use crate::error::StoreError;

/// A connection and its stop switch.
pub(super) struct Handle {
    pub(super) conn: Connection,
    pub(super) stop: Arc<Stop>,
}

/// Work for a lane's threads.
type Job = Box<dyn FnOnce() + Send>;

/// A bounded set of read connections, and as many threads to run their statements;
/// requests wait for a connection in arrival order.
pub(super) struct Lane {
    idle: Mutex<Vec<Handle>>,
    permits: Arc<Semaphore>,
    size: usize,
    jobs: mpsc::Sender<Job>,
}

impl Lane {
    /// A lane of `handles` whose threads (named `name`) run at niceness `nice`.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub(super) fn new(handles: Vec<Handle>, name: &str, nice: i32) -> std::io::Result<Arc<Lane>> {
        let size = handles.len();
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..size {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    lower_priority(nice);
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking statement drops its lease (and answer) while
                        // unwinding; the thread carries on.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Arc::new(Lane {
            idle: Mutex::new(handles),
            permits: Arc::new(Semaphore::new(size)),
            size,
            jobs,
        }))
    }

    /// Waits (until the request's deadline) for a connection of this lane.
    pub(super) async fn lease(self: &Arc<Self>) -> Result<Lease, StoreError> {
        let permit = until_deadline(self.permits.clone().acquire_owned())
            .await?
            .map_err(|_| StoreError::unavailable("database is closed"))?;
        let handle = self
            .idle
            .lock()
            .map_err(|_| StoreError::internal("reader pool poisoned"))?
            .pop()
            .ok_or_else(|| StoreError::internal("reader pool empty"))?;
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
// The reader holds its connection inline: boxing it would add an allocation per request.
#[allow(clippy::large_enum_variant)]
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
                    // A read transaction (a pipeline's consistent extract) left open would
                    // pin its snapshot for the next user and hold back checkpoints.
                    if !handle.conn.is_autocommit()
                        && let Err(e) = handle.conn.execute_batch("ROLLBACK")
                    {
                        tracing::warn!(error = %e, "Ending an abandoned read transaction failed.");
                    }
                    idle.push(handle);
                }
            }
        }
    }
}

/// Lowers the calling thread's CPU priority to niceness `nice` (Linux; elsewhere a no-op).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::debug!(error = %e, "Could not lower the priority of a SQLite read thread.");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// What [`off_thread`] hands back: the lease, the statement (to run it again elsewhere) and
/// its result.
pub(super) type Ran<F, T> = (Lease, F, rusqlite::Result<T>);

/// Runs `f` with the lease's connection on the threads of its lane (the writer: on a
/// blocking thread), stopping it at `stop_at`.
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
    let lane = match &lease {
        Lease::Reader { lane, .. } => Some(Arc::clone(lane)),
        Lease::Writer { .. } => None,
    };
    let (answer, answered) = oneshot::channel();
    let job = move || {
        let mut f = f;
        let result = f(&lease.handle().conn);
        lease.handle().stop.disarm();
        // Nobody waiting: the lease is dropped here, back to its pool.
        let _ = answer.send((lease, f, result));
    };
    match lane {
        Some(lane) => lane
            .jobs
            .send(Box::new(job))
            .map_err(|_| StoreError::unavailable("database is closed"))?,
        None => drop(tokio::task::spawn_blocking(job)),
    }
    Running {
        answered,
        stop,
        finished: false,
    }
    .await
    .map_err(|_| StoreError::internal("a SQLite statement panicked"))
}

/// A statement running on another thread; dropping it before it finishes stops the
/// statement (before the answer, and so the lease, can be released).
struct Running<T> {
    answered: oneshot::Receiver<T>,
    stop: Arc<Stop>,
    finished: bool,
}

impl<T> Future for Running<T> {
    type Output = Result<T, oneshot::error::RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = ready!(Pin::new(&mut self.answered).poll(cx));
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
