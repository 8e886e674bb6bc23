//! Stopping a SQLite statement from outside the thread that runs it.
//!
//! Every connection gets a progress handler that SQLite calls every [`PROGRESS_OPS`] virtual
//! machine instructions; it interrupts the statement once the instant armed in [`Stop`] has
//! passed (the request's deadline, or the quick lane's limit) or the waiting request went
//! away ([`Stop::cancel`], which also calls `sqlite3_interrupt` for a long single
//! instruction such as a sort). The check is one atomic load and a clock read every few
//! microseconds of work; a point lookup finishes before it ever runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rusqlite::{Connection, InterruptHandle};

/// Instructions between two checks.
const PROGRESS_OPS: i32 = 1_000;
/// `at` value: no limit.
const NEVER: u64 = u64::MAX;

/// The stop switch of one connection.
pub(super) struct Stop {
    epoch: Instant,
    /// Nanoseconds after `epoch` at which a running statement is stopped ([`NEVER`]: not
    /// armed; 0: stop now).
    at: AtomicU64,
    interrupt: InterruptHandle,
}

impl Stop {
    /// Installs the progress handler on `conn` and returns its switch.
    pub(super) fn install(conn: &Connection) -> rusqlite::Result<Arc<Stop>> {
        let stop = Arc::new(Stop {
            epoch: Instant::now(),
            at: AtomicU64::new(NEVER),
            interrupt: conn.get_interrupt_handle(),
        });
        let check = Arc::clone(&stop);
        conn.progress_handler(PROGRESS_OPS, Some(move || check.due()))?;
        Ok(stop)
    }

    /// Stops the next statements at `at` (never with `None`).
    pub(super) fn arm(&self, at: Option<Instant>) {
        let nanos = at.map_or(NEVER, |at| {
            let after = at.saturating_duration_since(self.epoch).as_nanos();
            u64::try_from(after).unwrap_or(NEVER - 1)
        });
        self.at.store(nanos, Ordering::Release);
    }

    /// Lets statements run to completion.
    pub(super) fn disarm(&self) {
        self.at.store(NEVER, Ordering::Release);
    }

    /// Stops the running statement now: its caller is gone.
    pub(super) fn cancel(&self) {
        self.at.store(0, Ordering::Release);
        self.interrupt.interrupt();
    }

    /// Whether the running statement must stop (the progress handler's answer).
    fn due(&self) -> bool {
        let at = self.at.load(Ordering::Acquire);
        at != NEVER && (at == 0 || self.epoch.elapsed().as_nanos() >= u128::from(at))
    }
}

/// Whether `e` is SQLite's answer to an interrupted statement.
pub(super) fn is_interrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::OperationInterrupted
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A statement that counts to ten million: ~a second of work.
    const SLOW: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
        WHERE i < 10000000) SELECT count(*) FROM n";

    #[test]
    fn an_armed_deadline_interrupts_and_disarming_lets_it_run() {
        let conn = Connection::open_in_memory().unwrap();
        let stop = Stop::install(&conn).unwrap();
        stop.arm(Some(Instant::now() + Duration::from_millis(20)));
        let started = Instant::now();
        let err = conn
            .query_row(SLOW, [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(is_interrupt(&err), "{err}");
        assert!(started.elapsed() < Duration::from_millis(500));

        stop.disarm();
        let small = "SELECT count(*) FROM (SELECT 1 UNION ALL SELECT 2)";
        assert_eq!(
            conn.query_row(small, [], |r| r.get::<_, i64>(0)).unwrap(),
            2
        );
    }

    #[test]
    fn cancel_from_another_thread_stops_the_statement() {
        let conn = Connection::open_in_memory().unwrap();
        let stop = Stop::install(&conn).unwrap();
        let canceller = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            canceller.cancel();
        });
        let err = conn
            .query_row(SLOW, [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(is_interrupt(&err), "{err}");
        t.join().unwrap();
    }
}
