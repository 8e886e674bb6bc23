//! Raw SQL on a database named by URL: what the domain API deliberately does not offer, for
//! tests that look at tables directly and for operators' tools (the dashboard's read-only
//! console will build on it). Everything else goes through [`crate::Store`].

use std::path::Path;

use crate::conn::{Database, JsonRow};
use crate::error::StoreError;
use crate::postgres::PostgresDatabase;
use crate::sql::{Dialect, Sql};
use crate::sqlite::SqliteDatabase;

/// A connection pool to one database.
pub struct RawDatabase {
    db: Box<dyn Database>,
}

impl RawDatabase {
    /// Opens `sqlite://PATH` or connects to `postgres://…`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be opened or reached;
    /// [`StoreError::Unprocessable`] for another scheme.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let db: Box<dyn Database> = if let Some(path) = url.strip_prefix("sqlite://") {
            Box::new(SqliteDatabase::open(Path::new(path), 1)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Box::new(PostgresDatabase::connect(url, 2).await?)
        } else {
            return Err(StoreError::Unprocessable(format!(
                "`{url}` is not a sqlite:// or postgres:// URL"
            )));
        };
        Ok(RawDatabase { db })
    }

    /// The database's dialect.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Runs one query and returns its rows as JSON objects.
    ///
    /// # Errors
    /// The database refused the query or could not be reached.
    pub async fn query_json(&self, sql: &str) -> Result<Vec<JsonRow>, StoreError> {
        let mut conn = self.db.read().await?;
        let mut query = Sql::new(self.db.dialect());
        query.push(sql);
        conn.query_json(&query).await
    }

    /// Runs `script` (one or more statements) in one transaction.
    ///
    /// # Errors
    /// The database refused a statement (nothing is kept) or could not be reached.
    pub async fn execute_script(&self, script: &str) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        tx.execute_script(script).await?;
        tx.commit().await
    }

    /// Closes the pool.
    pub async fn close(self) {
        self.db.close().await;
    }
}
