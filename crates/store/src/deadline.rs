//! The deadline of the HTTP request a query runs for.
//!
//! The API runs each request inside [`Deadline::scope`]; the backends read
//! [`Deadline::current`] and stop a statement when it passes (SQLite: the progress handler of
//! the connection; PostgreSQL: the statement timeout), answering
//! [`StoreError::Timeout`](crate::StoreError::Timeout) instead of holding a connection and a
//! core for as long as the filter takes. Work outside a request (pipeline runs, migrations,
//! background tasks) has no deadline.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Deadline;
}

/// When the current request must be answered, and the budget it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// The instant the work must stop.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The whole budget (for messages: "took longer than 30 s").
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The deadline of the request this task works for, if any.
    pub fn current() -> Option<Deadline> {
        DEADLINE.try_with(|d| *d).ok()
    }

    /// Runs `work` with this deadline visible to every query it makes (on this task; tasks
    /// it spawns have none).
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        DEADLINE.scope(self, work).await
    }

    /// [`StoreError::Timeout`](crate::StoreError::Timeout) for this deadline.
    pub(crate) fn exceeded(&self) -> crate::StoreError {
        crate::StoreError::Timeout {
            budget: self.budget,
        }
    }
}

/// Waits for `acquire` until the current request's deadline (forever outside a request).
///
/// # Errors
/// [`StoreError::Timeout`](crate::StoreError::Timeout) when the deadline passes first.
pub(crate) async fn until_deadline<T>(
    acquire: impl Future<Output = T>,
) -> Result<T, crate::StoreError> {
    match Deadline::current() {
        None => Ok(acquire.await),
        Some(deadline) => tokio::time::timeout_at(deadline.at.into(), acquire)
            .await
            .map_err(|_| deadline.exceeded()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_is_seen_inside_its_scope_only_and_bounds_waits() {
        assert_eq!(Deadline::current(), None);
        let deadline = Deadline::after(Duration::from_millis(20));
        let seen = deadline.scope(async { Deadline::current() }).await;
        assert_eq!(seen, Some(deadline));

        let waited = deadline
            .scope(until_deadline(std::future::pending::<()>()))
            .await;
        assert!(matches!(
            waited,
            Err(crate::StoreError::Timeout { budget }) if budget == Duration::from_millis(20)
        ));
        assert_eq!(until_deadline(async { 7 }).await.ok(), Some(7));
    }
}
