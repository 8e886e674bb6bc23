//! The PostgreSQL backend: a deadpool of tokio-postgres connections with cached prepared
//! statements. A broken connection is discarded by the pool's recycle check, so the store
//! recovers by itself after the server restarts.
//!
//! Statements of a request stop at its deadline ([`crate::deadline`]): a write transaction
//! sets `statement_timeout` to the time left (in the `BEGIN` round trip), and a read that is
//! still waiting at the deadline, or whose request went away, is cancelled on the server and
//! its connection closed rather than handed to the next request mid-query.

mod bulk;
mod listen;
mod target;
mod value;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use brigade_core::value::Value;

use crate::conn::{ColType, Conn, Database, JsonRow, Row};
use crate::deadline::{Deadline, until_deadline};
use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};
use brigade_core::report::chain;
use target::Target;
use value::{Bind, decode, map_error};

/// A pool of connections to one PostgreSQL database.
pub(crate) struct PostgresDatabase {
    pool: Pool,
    /// Where the pool connects, for messages.
    target: Target,
    /// The connection settings, for `LISTEN` connections outside the pool.
    config: tokio_postgres::Config,
}

impl PostgresDatabase {
    /// Connects to `url` with at most `size` connections and checks one connection works.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is malformed or the server cannot be reached.
    pub(crate) async fn connect(url: &str, size: usize) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::unavailable_from(format!("invalid PostgreSQL URL: {}", chain(&e)), e)
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("brigade");
        config.keepalives_idle(Duration::from_secs(30));
        let target = Target::of(&config);
        let listen_config = config.clone();
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
            .map_err(|e| StoreError::unavailable_from(target.says(&chain(&e)), e))?;
        let db = PostgresDatabase {
            pool,
            target,
            config: listen_config,
        };
        // Fail fast with a clear message when the server is not there.
        drop(db.client().await?);
        Ok(db)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        until_deadline(self.pool.get()).await?.map_err(|e| match e {
            // Every connection is in use: the server is there, the pool is busy.
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
                StoreError::unavailable_from(chain(&e), e)
            }
            e => StoreError::unavailable_from(self.target.failed(&e), e),
        })
    }
}

#[async_trait]
impl Database for PostgresDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn begin(&self) -> Result<Box<dyn Conn>, StoreError> {
        let client = self.client().await?;
        let mut conn = PgConn {
            client: Some(client),
            in_transaction: false,
            in_flight: false,
        };
        let begin = match Deadline::current() {
            // `0` would mean no limit.
            Some(d) => format!(
                "BEGIN; SET LOCAL statement_timeout = {}",
                d.at()
                    .saturating_duration_since(std::time::Instant::now())
                    .as_millis()
                    .max(1)
            ),
            None => "BEGIN".to_owned(),
        };
        conn.execute_script(&begin).await?;
        conn.in_transaction = true;
        Ok(Box::new(conn))
    }

    async fn read(&self) -> Result<Box<dyn Conn>, StoreError> {
        // Autocommit: one round trip per statement instead of BEGIN/.../ROLLBACK.
        let client = self.client().await?;
        Ok(Box::new(PgConn {
            client: Some(client),
            in_transaction: false,
            in_flight: false,
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

    fn listen(&self, channel: &'static str) -> Option<tokio::sync::mpsc::Receiver<()>> {
        Some(listen::listen(self.config.clone(), channel))
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
    /// A statement was sent and its answer not awaited to the end (its deadline passed or
    /// its request went away): it is cancelled and the connection closed on drop.
    in_flight: bool,
}

impl PgConn {
    /// The client, and the flag [`bounded`] keeps.
    fn parts(&mut self) -> Result<(&Object, &mut bool), StoreError> {
        match &self.client {
            Some(client) => Ok((client, &mut self.in_flight)),
            None => Err(StoreError::internal("transaction already finished")),
        }
    }
}

/// Awaits `op` until the request's deadline; `in_flight` stays set if it does not finish.
async fn bounded<T>(
    in_flight: &mut bool,
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    *in_flight = true;
    let out = match Deadline::current() {
        None => op.await,
        Some(d) => match tokio::time::timeout_at(d.at().into(), op).await {
            Ok(out) => out,
            Err(_) => return Err(d.exceeded()),
        },
    };
    *in_flight = false;
    out
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if self.in_flight
            && let Some(client) = self.client.take()
        {
            // Stop the statement on the server, then close the connection: handed to another
            // request, a late cancel could hit that request's statement instead.
            let token = client.cancel_token();
            let client = Object::take(client);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(e) = token.cancel_query(NoTls).await {
                        tracing::warn!(error = %e, "Cancelling an abandoned query failed.");
                    }
                    drop(client);
                });
            }
            return;
        }
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
        let (client, in_flight) = self.parts()?;
        let rows = bounded(in_flight, async {
            let stmt = client.prepare_cached(&sql.text).await.map_err(map_error)?;
            let binds: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
            let params: Vec<&(dyn ToSql + Sync)> =
                binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            client.query(&stmt, &params).await.map_err(map_error)
        })
        .await?;
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
        let (client, in_flight) = self.parts()?;
        bounded(in_flight, async {
            let stmt = client.prepare_cached(&sql.text).await.map_err(map_error)?;
            let binds: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
            let params: Vec<&(dyn ToSql + Sync)> =
                binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            client.execute(&stmt, &params).await.map_err(map_error)
        })
        .await
    }

    async fn execute_script(&mut self, script: &str) -> Result<(), StoreError> {
        let (client, in_flight) = self.parts()?;
        bounded(in_flight, async {
            client.batch_execute(script).await.map_err(map_error)
        })
        .await
    }

    async fn insert_rows(
        &mut self,
        table: &Ident,
        columns: &[Ident],
        rows: &[Row],
        suffix: &[Value],
    ) -> Result<u64, StoreError> {
        let (client, in_flight) = self.parts()?;
        bounded(
            in_flight,
            bulk::copy_in(client, table, columns, rows, suffix),
        )
        .await
    }

    async fn describe(&mut self, sql: &Sql) -> Result<Vec<(String, String)>, StoreError> {
        let (client, in_flight) = self.parts()?;
        let stmt = bounded(in_flight, async {
            client.prepare(&sql.text).await.map_err(map_error)
        })
        .await?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().name().to_string()))
            .collect())
    }

    async fn query_json(&mut self, sql: &Sql) -> Result<Vec<JsonRow>, StoreError> {
        let (client, in_flight) = self.parts()?;
        bounded(in_flight, bulk::query_json(client, sql)).await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let client = self
            .client
            .take()
            .ok_or_else(|| StoreError::internal("transaction already finished"))?;
        if !self.in_transaction {
            return Ok(());
        }
        client.batch_execute("COMMIT").await.map_err(map_error)
    }
}

#[cfg(test)]
mod tests {
    use super::PostgresDatabase;

    /// The pool and the driver keep the reason in their error sources; the message must too.
    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let Err(e) = PostgresDatabase::connect("postgres://nobody@127.0.0.1:1/nothing", 2).await
        else {
            panic!("nothing listens on port 1");
        };
        let message = e.to_string().to_lowercase();
        assert!(message.contains("connection refused"), "{message}");
        for part in ["127.0.0.1:1", "database `nothing`", "role `nobody`"] {
            assert!(message.contains(part), "no {part:?} in {message}");
        }
    }
}
