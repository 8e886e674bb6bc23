//! The embedded SQLite backend: one writer connection (writes are serialised, so a writer
//! never sees `SQLITE_BUSY`) and two lanes of read-only connections, all in WAL mode.
//!
//! rusqlite is synchronous, and a filter over a large collection can keep a statement busy
//! for seconds; run on the async runtime's worker threads, a few of them froze every request
//! of the server. So statements are stopped at the request's deadline
//! ([`crate::deadline`]), and none holds a runtime thread for more than [`INLINE_LIMIT`]:
//! - Writes run inline on the one writer connection (it serialises them anyway, and a hop
//!   to another thread per statement cost two thirds of insert throughput), stopped at
//!   their request's deadline.
//! - Reads take a connection of the *quick* lane (`database.pool_size` connections) and try
//!   inline first, stopped after [`INLINE_LIMIT`]: a point lookup takes microseconds, and a
//!   hop to another thread and back would cost a third of GET-by-id throughput. A read that
//!   outgrows that runs again on a thread of the lane; one still running after [`QUICK_LIMIT`]
//!   runs again on the *heavy* lane, a few connections (half the cores) that expensive
//!   filters queue for, so they cannot take every connection (and core) from cheap
//!   requests. Re-running is safe: reads are read-only and in autocommit mode (a read
//!   transaction keeps its statements on its connection), and the work thrown away is
//!   bounded by the limits.

mod bulk;
mod pool;
mod stop;
mod value;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use brigade_core::value::Value;

use crate::conn::{ColType, Conn, Database, JsonRow, Row};
use crate::deadline::{Deadline, until_deadline};
use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};
use pool::{Handle, Lane, Lease, off_thread};
use stop::{Stop, is_interrupt};
use value::{Bind, decode, map_error};

/// Sorts, window partitions and temporary tables larger than the page cache spill to temp
/// files (`temp_store = FILE`, in `SQLITE_TMPDIR` or `TMPDIR`, else `/var/tmp` or `/tmp`),
/// so a model's window function over millions of rows runs in bounded memory instead of
/// holding its sort in RAM (920 MB for 3.4M rows with `MEMORY`). Small sorts never leave
/// the cache, so API reads are not slowed.
const WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
    PRAGMA foreign_keys = ON; PRAGMA temp_store = FILE; PRAGMA cache_size = -8000;";
const READER_PRAGMAS: &str =
    "PRAGMA query_only = ON; PRAGMA temp_store = FILE; PRAGMA cache_size = -4000;";
/// How long a read may run inline on a runtime thread before it moves to a lane thread.
const INLINE_LIMIT: Duration = Duration::from_millis(2);
/// How long a read may run on the quick lane before it moves to the heavy lane. Point
/// lookups and pages of indexed lists take well under a millisecond.
const QUICK_LIMIT: Duration = Duration::from_millis(10);

/// Niceness of the quick lane's threads (statements past [`INLINE_LIMIT`]).
const QUICK_NICE: i32 = 5;
/// Niceness of the heavy lane's threads: they get the cores nothing else wants.
const HEAVY_NICE: i32 = 15;

/// An open SQLite database file.
pub(crate) struct SqliteDatabase {
    writer: Arc<tokio::sync::Mutex<Handle>>,
    quick: Arc<Lane>,
    heavy: Arc<Lane>,
}

impl SqliteDatabase {
    /// Opens (creating if needed) the database at `path` with `readers` quick read
    /// connections (and a heavy lane of half the cores, at most `readers`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be created or opened.
    pub(crate) fn open(path: &Path, readers: usize) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::unavailable_from(format!("cannot create {}: {e}", parent.display()), e)
            })?;
        }
        let unavailable = |e: rusqlite::Error| {
            StoreError::unavailable_from(format!("{}: {e}", path.display()), e)
        };
        let writer = Connection::open(path).map_err(unavailable)?;
        writer
            .busy_timeout(Duration::from_secs(5))
            .map_err(unavailable)?;
        writer.execute_batch(WRITER_PRAGMAS).map_err(unavailable)?;
        strict_quotes(&writer).map_err(unavailable)?;
        writer.set_prepared_statement_cache_capacity(256);
        let stop = Stop::install(&writer).map_err(unavailable)?;
        let writer = Handle { conn: writer, stop };

        let readers = readers.max(1);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let heavy = (cores / 2).clamp(1, readers);
        let open_reader = || -> Result<Handle, StoreError> {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            let reader = Connection::open_with_flags(path, flags).map_err(unavailable)?;
            reader
                .busy_timeout(Duration::from_secs(5))
                .map_err(unavailable)?;
            reader.execute_batch(READER_PRAGMAS).map_err(unavailable)?;
            strict_quotes(&reader).map_err(unavailable)?;
            reader.set_prepared_statement_cache_capacity(256);
            let stop = Stop::install(&reader).map_err(unavailable)?;
            Ok(Handle { conn: reader, stop })
        };
        let quick = (0..readers)
            .map(|_| open_reader())
            .collect::<Result<_, _>>()?;
        let heavy = (0..heavy)
            .map(|_| open_reader())
            .collect::<Result<_, _>>()?;
        let threads = |e: std::io::Error| {
            StoreError::unavailable_from(format!("cannot start a thread: {e}"), e)
        };
        Ok(SqliteDatabase {
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            quick: Lane::new(quick, "sqlite-read", QUICK_NICE).map_err(threads)?,
            heavy: Lane::new(heavy, "sqlite-heavy", HEAVY_NICE).map_err(threads)?,
        })
    }
}

/// Double quotes name columns and tables only, as in PostgreSQL and standard SQL. SQLite's
/// default reads an unknown double-quoted name as a string, so a misspelt column in a
/// model or a key (`"sku"`) silently became a constant instead of an error.
fn strict_quotes(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::config::DbConfig;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    Ok(())
}

#[async_trait]
impl Database for SqliteDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn begin(&self) -> Result<Box<dyn Conn>, StoreError> {
        let guard = until_deadline(self.writer.clone().lock_owned()).await?;
        let mut conn = SqliteConn {
            lease: Some(Lease::Writer { guard, open: false }),
            heavy: None,
        };
        conn.run(|c| c.execute_batch("BEGIN IMMEDIATE")).await?;
        if let Some(Lease::Writer { open, .. }) = &mut conn.lease {
            *open = true;
        }
        Ok(Box::new(conn))
    }

    async fn read(&self) -> Result<Box<dyn Conn>, StoreError> {
        // Autocommit: a single read needs no transaction, and skipping BEGIN/ROLLBACK
        // saves two statements per request.
        Ok(Box::new(SqliteConn {
            lease: Some(self.quick.lease().await?),
            heavy: Some(self.heavy.clone()),
        }))
    }

    async fn bulk_writer(
        &self,
        _table: &Ident,
        _columns: &[Ident],
    ) -> Result<Option<Box<dyn crate::conn::BulkWriter>>, StoreError> {
        Ok(None)
    }

    fn pool_status(&self) -> (usize, usize) {
        let (quick_used, quick_idle) = self.quick.status();
        let (heavy_used, heavy_idle) = self.heavy.status();
        (quick_used + heavy_used + 1, quick_idle + heavy_idle)
    }

    async fn close(&self) {
        let writer = self.writer.clone().lock_owned().await;
        let checkpoint = tokio::task::spawn_blocking(move || {
            writer
                .conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;")
        });
        match checkpoint.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "WAL checkpoint on shutdown failed."),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint on shutdown failed."),
        }
        self.quick.close();
        self.heavy.close();
    }
}

struct SqliteConn {
    /// `None` only after a statement panicked (the lease went with it).
    lease: Option<Lease>,
    /// A read on the quick lane: the lane to move to when a statement outgrows it.
    heavy: Option<Arc<Lane>>,
}

impl SqliteConn {
    /// Runs `f`, stopped at the request's deadline: a write inline; a read
    /// inline for at most [`INLINE_LIMIT`], then on its lane's threads, then (past
    /// [`QUICK_LIMIT`]) on the heavy lane.
    async fn run<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let mut f = f;
        let deadline = Deadline::current();
        let lease = self
            .lease
            .take()
            .ok_or_else(|| StoreError::internal("the connection was lost by a failed statement"))?;
        // Inside a read transaction (`BEGIN` on a read connection: a consistent extract)
        // the statement stays on its connection: its snapshot is there.
        if self.heavy.is_some() && !lease.handle().conn.is_autocommit() {
            self.heavy = None;
        }
        if self.heavy.is_some() {
            let limit = Instant::now() + INLINE_LIMIT;
            let stop = &lease.handle().stop;
            stop.arm(Some(deadline.map_or(limit, |d| d.at().min(limit))));
            let result = f(&lease.handle().conn);
            stop.disarm();
            let outgrew = matches!(&result, Err(e) if is_interrupt(e))
                && !deadline.is_some_and(|d| d.passed());
            if !outgrew {
                self.lease = Some(lease);
                return result.map_err(|e| interpreted(e, deadline));
            }
        }
        if matches!(lease, Lease::Writer { .. }) {
            // Writes run inline, as one writer serialises them anyway: a hop to a blocking
            // thread per statement cost two thirds of insert throughput (11.9k -> 3.4k/s).
            // They still stop at the request's deadline.
            let stop = &lease.handle().stop;
            stop.arm(deadline.map(|d| d.at()));
            let result = f(&lease.handle().conn);
            stop.disarm();
            self.lease = Some(lease);
            return result.map_err(|e| interpreted(e, deadline));
        }
        let stop_at = match (&self.heavy, deadline) {
            (Some(_), Some(d)) => Some(d.at().min(Instant::now() + QUICK_LIMIT)),
            (Some(_), None) => Some(Instant::now() + QUICK_LIMIT),
            (None, d) => d.map(|d| d.at()),
        };
        let (lease, f, result) = off_thread(lease, stop_at, f).await?;
        let outgrew_quick = matches!(&result, Err(e) if is_interrupt(e))
            && self.heavy.is_some()
            && !deadline.is_some_and(|d| d.passed());
        if !outgrew_quick {
            self.lease = Some(lease);
            return result.map_err(|e| interpreted(e, deadline));
        }
        // Free the quick connection before queueing for a heavy one.
        drop(lease);
        let heavy = self.heavy.take().expect("checked above");
        let lease = heavy.lease().await?;
        let (lease, _, result) = off_thread(lease, deadline.map(|d| d.at()), f).await?;
        self.lease = Some(lease);
        result.map_err(|e| interpreted(e, deadline))
    }

    /// Runs a statement on the writer without a deadline (`COMMIT`), inline like every write.
    async fn run_to_completion<T, F>(&mut self, f: F) -> Result<T, StoreError>
    where
        F: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let lease = self
            .lease
            .take()
            .ok_or_else(|| StoreError::internal("the connection was lost by a failed statement"))?;
        let mut f = f;
        let result = f(&lease.handle().conn);
        self.lease = Some(lease);
        result.map_err(map_error)
    }
}

/// An interrupted statement past the deadline is a [`StoreError::Timeout`]; anything else
/// as [`map_error`] says.
fn interpreted(e: rusqlite::Error, deadline: Option<Deadline>) -> StoreError {
    match deadline {
        Some(d) if is_interrupt(&e) && d.passed() => d.exceeded(),
        _ => map_error(e),
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        // An abandoned write transaction is rolled back on a blocking thread too.
        if let Some(lease) = self.lease.take_if(|l| l.rolls_back())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn_blocking(move || drop(lease));
        }
    }
}

#[async_trait]
impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, sql: &Sql, types: &[ColType]) -> Result<Vec<Row>, StoreError> {
        let sql = sql.clone();
        let types = types.to_vec();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&sql.text)?;
            let params: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
            let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(types.len());
                for (i, t) in types.iter().enumerate() {
                    values.push(decode(row.get_ref(i)?, *t));
                }
                out.push(values);
            }
            Ok(out)
        })
        .await
    }

    async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        let sql = sql.clone();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&sql.text)?;
            let params: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
            stmt.execute(rusqlite::params_from_iter(params.iter()))
                .map(|n| n as u64)
        })
        .await
    }

    async fn execute_script(&mut self, script: &str) -> Result<(), StoreError> {
        let script = script.to_owned();
        self.run(move |c| c.execute_batch(&script)).await
    }

    async fn insert_rows(
        &mut self,
        table: &Ident,
        columns: &[Ident],
        rows: &[Row],
        suffix: &[Value],
    ) -> Result<u64, StoreError> {
        let lease = self
            .lease
            .as_ref()
            .ok_or_else(|| StoreError::internal("the connection was lost by a failed statement"))?;
        let connection = &lease.handle().conn;
        // A pipeline's batch (no request deadline): rather than copying its rows to a
        // blocking thread, let the runtime move this worker's other tasks elsewhere while
        // it runs.
        let insert = || bulk::insert(connection, table, columns, rows, suffix);
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(insert),
            _ => insert(),
        }
        .map_err(map_error)
    }

    async fn describe(&mut self, sql: &Sql) -> Result<Vec<(String, String)>, StoreError> {
        let text = sql.text.clone();
        self.run(move |c| {
            let stmt = c.prepare(&text)?;
            Ok(stmt
                .columns()
                .iter()
                .map(|col| {
                    (
                        col.name().to_string(),
                        col.decl_type().unwrap_or_default().to_string(),
                    )
                })
                .collect())
        })
        .await
    }

    async fn query_json(&mut self, sql: &Sql) -> Result<Vec<JsonRow>, StoreError> {
        let sql = sql.clone();
        self.run(move |c| bulk::query_json(c, &sql)).await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if !self.lease.as_ref().is_some_and(Lease::rolls_back) {
            return Ok(());
        }
        self.run_to_completion(|c| c.execute_batch("COMMIT"))
            .await?;
        if let Some(Lease::Writer { open, .. }) = &mut self.lease {
            *open = false;
        }
        Ok(())
    }
}

/// Reads `sql` from the SQLite file at `path` — opened read-only, in one transaction, so the
/// pages come from one snapshot — and sends its rows as JSON pages of `page_rows` on `pages`
/// (the last may be shorter or empty). Runs on the calling (blocking) thread; stops when the
/// receiver goes away.
pub(crate) fn stream_file(
    path: &Path,
    sql: &Sql,
    page_rows: usize,
    pages: &tokio::sync::mpsc::Sender<Result<Vec<JsonRow>, StoreError>>,
) {
    let result = (|| {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        strict_quotes(&conn)?;
        conn.execute_batch("BEGIN")?;
        bulk::stream_json(&conn, sql, page_rows, |page| {
            pages.blocking_send(Ok(page)).is_ok()
        })
    })();
    if let Err(e) = result {
        let _ = pages.blocking_send(Err(map_error(e)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ~50-100 ms of work: past the inline and quick limits.
    const SLOW: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
        WHERE i < 400000) SELECT count(*) FROM n";

    fn slow() -> Sql {
        let mut sql = Sql::new(Dialect::Sqlite);
        sql.push(SLOW);
        sql
    }

    fn open() -> (tempfile::TempDir, SqliteDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("t.db"), 2).unwrap();
        (dir, db)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_read_moves_to_the_heavy_lane_and_finishes() {
        let (_dir, db) = open();
        let mut conn = db.read().await.unwrap();
        let rows = conn.query(&slow(), &[ColType::Int]).await.unwrap();
        assert_eq!(rows, vec![vec![Value::Int(400_000)]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_transaction_keeps_its_connection() {
        let (_dir, db) = open();
        let mut conn = db.read().await.unwrap();
        conn.execute_script("BEGIN").await.unwrap();
        conn.query(&slow(), &[ColType::Int]).await.unwrap();
        // Still on the connection that began it (elsewhere: "no transaction is active").
        conn.execute_script("COMMIT").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_past_the_deadline_is_a_timeout() {
        let (_dir, db) = open();
        let deadline = Deadline::after(Duration::from_millis(15));
        let outcome = deadline
            .scope(async {
                let mut conn = db.read().await?;
                conn.query(&slow(), &[ColType::Int]).await
            })
            .await;
        assert!(
            matches!(outcome, Err(StoreError::Timeout { .. })),
            "{outcome:?}"
        );
        // The connections are back and work.
        let mut conn = db.read().await.unwrap();
        conn.execute_script("SELECT 1").await.unwrap();
    }
}
