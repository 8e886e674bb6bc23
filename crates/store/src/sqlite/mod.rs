//! The embedded SQLite backend: one writer connection (writes are serialised, so a writer
//! never sees `SQLITE_BUSY`) and a pool of read-only connections, all in WAL mode.
//!
//! rusqlite is synchronous; statements run inline on the calling task (they take
//! microseconds; handing the thread off per call costs more than it saves).

mod bulk;
mod value;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use brigade_core::value::Value;

use crate::conn::{ColType, Conn, Database, JsonRow, Row};
use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};
use value::{Bind, decode, map_error};

const WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
    PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8000;";
const READER_PRAGMAS: &str =
    "PRAGMA query_only = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -4000;";

/// An open SQLite database file.
pub struct SqliteDatabase {
    path: PathBuf,
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: Arc<ReaderPool>,
}

struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    size: usize,
}

impl SqliteDatabase {
    /// Opens (creating if needed) the database at `path` with `readers` read connections.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be created or opened.
    pub fn open(path: &Path, readers: usize) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let unavailable =
            |e: rusqlite::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        let writer = Connection::open(path).map_err(unavailable)?;
        writer
            .busy_timeout(Duration::from_secs(5))
            .map_err(unavailable)?;
        writer.execute_batch(WRITER_PRAGMAS).map_err(unavailable)?;
        writer.set_prepared_statement_cache_capacity(256);
        let mut idle = Vec::with_capacity(readers);
        for _ in 0..readers.max(1) {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            let reader = Connection::open_with_flags(path, flags).map_err(unavailable)?;
            reader
                .busy_timeout(Duration::from_secs(5))
                .map_err(unavailable)?;
            reader.execute_batch(READER_PRAGMAS).map_err(unavailable)?;
            reader.set_prepared_statement_cache_capacity(256);
            idle.push(reader);
        }
        let size = idle.len();
        Ok(SqliteDatabase {
            path: path.to_path_buf(),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Arc::new(ReaderPool {
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(size)),
                size,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Database for SqliteDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn begin(&self) -> Result<Box<dyn Conn>, StoreError> {
        let guard = self.writer.clone().lock_owned().await;
        let mut conn = SqliteConn {
            holder: Holder::Writer(guard),
            open: false,
        };
        conn.run(|c| c.execute_batch("BEGIN IMMEDIATE"))
            .map_err(map_error)?;
        conn.open = true;
        Ok(Box::new(conn))
    }

    async fn read(&self) -> Result<Box<dyn Conn>, StoreError> {
        let permit = self
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("database is closed".into()))?;
        let conn = self
            .readers
            .idle
            .lock()
            .map_err(|_| StoreError::Internal("reader pool poisoned".into()))?
            .pop()
            .ok_or_else(|| StoreError::Internal("reader pool empty".into()))?;
        let conn = SqliteConn {
            holder: Holder::Reader {
                conn: Some(conn),
                pool: self.readers.clone(),
                _permit: permit,
            },
            open: false,
        };
        // Autocommit: a single read needs no transaction, and skipping BEGIN/ROLLBACK
        // saves two statements per request.
        Ok(Box::new(conn))
    }

    async fn bulk_writer(
        &self,
        _table: &Ident,
        _columns: &[Ident],
    ) -> Result<Option<Box<dyn crate::conn::BulkWriter>>, StoreError> {
        Ok(None)
    }

    fn pool_status(&self) -> (usize, usize) {
        let idle = self.readers.permits.available_permits();
        (self.readers.size - idle + 1, idle)
    }

    async fn close(&self) {
        let writer = self.writer.lock().await;
        if let Err(e) = writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;") {
            tracing::warn!(error = %e, "WAL checkpoint on shutdown failed.");
        }
        self.readers.permits.close();
    }
}

enum Holder {
    Writer(OwnedMutexGuard<Connection>),
    Reader {
        conn: Option<Connection>,
        pool: Arc<ReaderPool>,
        /// Held for the connection's lifetime; returned on drop.
        _permit: OwnedSemaphorePermit,
    },
}

struct SqliteConn {
    holder: Holder,
    open: bool,
}

impl SqliteConn {
    fn connection(&self) -> &Connection {
        match &self.holder {
            Holder::Writer(guard) => guard,
            Holder::Reader { conn, .. } => conn.as_ref().expect("reader present until drop"),
        }
    }

    fn run<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        // Inline on the runtime thread: statements take microseconds, and `block_in_place`
        // would hand the worker's core to another thread on every call, which under load
        // grows the thread pool (and RSS) far more than it saves.
        f(self.connection())
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        if self.open {
            let _ = self.connection().execute_batch("ROLLBACK");
        }
        if let Holder::Reader { conn, pool, .. } = &mut self.holder
            && let (Some(conn), Ok(mut idle)) = (conn.take(), pool.idle.lock())
        {
            idle.push(conn);
        }
    }
}

#[async_trait]
impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, sql: &Sql, types: &[ColType]) -> Result<Vec<Row>, StoreError> {
        self.run(|c| {
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
        .map_err(map_error)
    }

    async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(&sql.text)?;
            let params: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
            stmt.execute(rusqlite::params_from_iter(params.iter()))
                .map(|n| n as u64)
        })
        .map_err(map_error)
    }

    async fn execute_script(&mut self, script: &str) -> Result<(), StoreError> {
        self.run(|c| c.execute_batch(script)).map_err(map_error)
    }

    async fn insert_rows(
        &mut self,
        table: &Ident,
        columns: &[Ident],
        rows: &[Row],
        suffix: &[Value],
    ) -> Result<u64, StoreError> {
        let connection = self.connection();
        // A bulk insert takes milliseconds per batch: let the runtime move other tasks off
        // this worker while it runs.
        let insert = || bulk::insert(connection, table, columns, rows, suffix);
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(insert),
            _ => insert(),
        }
        .map_err(map_error)
    }

    async fn describe(&mut self, sql: &Sql) -> Result<Vec<(String, String)>, StoreError> {
        self.run(|c| {
            let stmt = c.prepare(&sql.text)?;
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
        .map_err(map_error)
    }

    async fn query_json(&mut self, sql: &Sql) -> Result<Vec<JsonRow>, StoreError> {
        self.run(|c| bulk::query_json(c, sql)).map_err(map_error)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if !self.open {
            return Ok(());
        }
        self.run(|c| c.execute_batch("COMMIT")).map_err(map_error)?;
        self.open = false;
        Ok(())
    }
}
