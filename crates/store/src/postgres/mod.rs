//! The PostgreSQL backend: a deadpool of tokio-postgres connections with cached prepared
//! statements. A broken connection is discarded by the pool's recycle check, so the store
//! recovers by itself after the server restarts.

mod bulk;
mod value;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use brigade_core::value::Value;

use crate::conn::{ColType, Conn, Database, JsonRow, Row};
use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};
use value::{Bind, decode, map_error};

/// A pool of connections to one PostgreSQL database.
pub struct PostgresDatabase {
    pool: Pool,
}

impl PostgresDatabase {
    /// Connects to `url` with at most `size` connections and checks one connection works.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is malformed or the server cannot be reached.
    pub async fn connect(url: &str, size: usize) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("brigade");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let db = PostgresDatabase { pool };
        // Fail fast with a clear message when the server is not there.
        drop(db.client().await?);
        Ok(db)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Database for PostgresDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn begin(&self) -> Result<Box<dyn Conn>, StoreError> {
        let client = self.client().await?;
        client.batch_execute("BEGIN").await.map_err(map_error)?;
        Ok(Box::new(PgConn {
            client: Some(client),
            in_transaction: true,
        }))
    }

    async fn read(&self) -> Result<Box<dyn Conn>, StoreError> {
        // Autocommit: one round trip per statement instead of BEGIN/.../ROLLBACK.
        let client = self.client().await?;
        Ok(Box::new(PgConn {
            client: Some(client),
            in_transaction: false,
        }))
    }

    async fn bulk_writer(
        &self,
        table: &Ident,
        columns: &[Ident],
    ) -> Result<Option<Box<dyn crate::conn::BulkWriter>>, StoreError> {
        let client = self.client().await?;
        Ok(Some(Box::new(bulk::CopyWriter::start(
            client, table, columns,
        ))))
    }

    fn pool_status(&self) -> (usize, usize) {
        let s = self.pool.status();
        (s.size - s.available, s.available)
    }

    async fn close(&self) {
        self.pool.close();
    }
}

struct PgConn {
    /// `None` once committed.
    client: Option<Object>,
    /// Whether a transaction is open (and must be rolled back on drop).
    in_transaction: bool,
}

impl PgConn {
    fn client(&self) -> Result<&Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Internal("transaction already finished".into()))
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|_| self.in_transaction) {
            // Roll back before the connection goes back to the pool; if that fails the
            // connection is closed rather than reused in an aborted state.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            } else {
                drop(Object::take(client));
            }
        }
    }
}

#[async_trait]
impl Conn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, sql: &Sql, types: &[ColType]) -> Result<Vec<Row>, StoreError> {
        let client = self.client()?;
        let stmt = client.prepare_cached(&sql.text).await.map_err(map_error)?;
        let binds: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&stmt, &params).await.map_err(map_error)?;
        rows.iter()
            .map(|row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| decode(row, i, *t))
                    .collect()
            })
            .collect()
    }

    async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        let client = self.client()?;
        let stmt = client.prepare_cached(&sql.text).await.map_err(map_error)?;
        let binds: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        client.execute(&stmt, &params).await.map_err(map_error)
    }

    async fn execute_script(&mut self, script: &str) -> Result<(), StoreError> {
        self.client()?
            .batch_execute(script)
            .await
            .map_err(map_error)
    }

    async fn insert_rows(
        &mut self,
        table: &Ident,
        columns: &[Ident],
        rows: &[Row],
        suffix: &[Value],
    ) -> Result<u64, StoreError> {
        bulk::copy_in(self.client()?, table, columns, rows, suffix).await
    }

    async fn describe(&mut self, sql: &Sql) -> Result<Vec<(String, String)>, StoreError> {
        let stmt = self.client()?.prepare(&sql.text).await.map_err(map_error)?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().name().to_string()))
            .collect())
    }

    async fn query_json(&mut self, sql: &Sql) -> Result<Vec<JsonRow>, StoreError> {
        bulk::query_json(self.client()?, sql).await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let client = self
            .client
            .take()
            .ok_or_else(|| StoreError::Internal("transaction already finished".into()))?;
        if !self.in_transaction {
            return Ok(());
        }
        client.batch_execute("COMMIT").await.map_err(map_error)
    }
}
