//! The seam between the dialect-neutral store logic and the two drivers.
//!
//! [`Database`] is implemented by the SQLite and PostgreSQL backends; everything above it
//! (records, schema changes, users) is written once against [`Conn`], a connection that is
//! either inside a write transaction or a read-only connection in autocommit mode.

use async_trait::async_trait;
use brigade_core::schema::FieldType;
use brigade_core::value::Value;

use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};

/// How to decode a result column, so both backends return the same [`Value`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Int,
    Float,
    Bool,
    Text,
    Json,
    /// Raw bytes (`BLOB` / `bytea`).
    Blob,
}

impl From<FieldType> for ColType {
    fn from(t: FieldType) -> Self {
        match t {
            FieldType::Integer => ColType::Int,
            FieldType::Number => ColType::Float,
            FieldType::Bool => ColType::Bool,
            FieldType::Json => ColType::Json,
            _ => ColType::Text,
        }
    }
}

/// Bytes read as text (a model's `bytea` or blob column): standard base64 with padding, the
/// same on both backends.
pub(crate) fn base64_text(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A row decoded per the requested [`ColType`]s.
pub type Row = Vec<Value>;

/// A row of a query with columns unknown in advance, by column name.
pub type JsonRow = serde_json::Map<String, serde_json::Value>;

/// A connection inside a transaction (writes) or in autocommit mode (reads).
#[async_trait]
pub trait Conn: Send {
    /// The SQL dialect of this connection.
    fn dialect(&self) -> Dialect;

    /// Runs a query and decodes each row's columns as `types` (one per selected column).
    async fn query(&mut self, sql: &Sql, types: &[ColType]) -> Result<Vec<Row>, StoreError>;

    /// Runs a statement and returns the number of affected rows.
    async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError>;

    /// Runs statements without parameters (DDL), separated by `;`.
    async fn execute_script(&mut self, script: &str) -> Result<(), StoreError>;

    /// Inserts many rows into `table` as fast as the backend allows (SQLite: multi-row
    /// prepared inserts; PostgreSQL: `COPY FROM STDIN`). Each row is followed by `suffix`
    /// (constant columns such as a batch id), so `columns` lists the row's columns and then
    /// the suffix's.
    async fn insert_rows(
        &mut self,
        table: &Ident,
        columns: &[Ident],
        rows: &[Row],
        suffix: &[Value],
    ) -> Result<u64, StoreError>;

    /// The result columns of a query, `(name, declared type)`, without running it. The type
    /// is SQLite's declared type (empty for expressions) or PostgreSQL's type name.
    async fn describe(&mut self, sql: &Sql) -> Result<Vec<(String, String)>, StoreError>;

    /// Runs a query whose columns are not known in advance (user-written SQL) and returns
    /// each row as a JSON object, column order kept.
    async fn query_json(&mut self, sql: &Sql) -> Result<Vec<JsonRow>, StoreError>;

    /// Commits a write transaction (a no-op for read connections). Dropping a connection
    /// without committing rolls back.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Rows streamed into one table in one transaction (a pipeline's staging table), so the
/// database works on one batch while the next is being prepared.
#[async_trait]
pub trait BulkWriter: Send {
    /// Queues `rows`, each followed by `suffix`.
    async fn write(&mut self, rows: Vec<Row>, suffix: Vec<Value>) -> Result<(), StoreError>;

    /// Sends the rest and commits; returns the rows written.
    async fn finish(self: Box<Self>) -> Result<u64, StoreError>;
}

/// A backend: hands out write transactions and read connections.
#[async_trait]
pub trait Database: Send + Sync {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;

    /// Starts the (single, serialised on SQLite) write transaction.
    async fn begin(&self) -> Result<Box<dyn Conn>, StoreError>;

    /// A read connection in autocommit mode (each statement sees the latest commit).
    async fn read(&self) -> Result<Box<dyn Conn>, StoreError>;

    /// A streaming writer into `table`, where the backend has one (PostgreSQL: one
    /// `COPY` for the whole load). `None`: write batches with [`Conn::insert_rows`] in short
    /// transactions (SQLite, where the single writer must stay available to the API).
    async fn bulk_writer(
        &self,
        table: &Ident,
        columns: &[Ident],
    ) -> Result<Option<Box<dyn BulkWriter>>, StoreError>;

    /// Connections in use and idle, for `db_pool_connections`.
    fn pool_status(&self) -> (usize, usize);

    /// A message per notification on `channel` from any process (PostgreSQL `LISTEN`), and
    /// one after every (re)connection; the listener reconnects by itself and stops when the
    /// receiver is dropped. `None` where the backend has no notifications (SQLite).
    fn listen(&self, channel: &'static str) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let _ = channel;
        None
    }

    /// Flushes and closes (SQLite: WAL checkpoint).
    async fn close(&self);
}
