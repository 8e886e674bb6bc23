//! Bulk paths of the PostgreSQL backend: binary `COPY FROM STDIN` for pipeline loads,
//! and `row_to_json` for queries whose columns are only known at run time (user models), so
//! every server type (numeric, date, interval, ...) comes back without a Rust decoder for it.

use brigade_core::value::Value;
use bytes::{BufMut, BytesMut};
use futures::SinkExt;

use tokio_postgres::types::{IsNull, ToSql, Type};

use super::value::{Bind, map_error};
use crate::conn::{JsonRow, Row};
use crate::error::StoreError;
use crate::sql::{Ident, Sql};

/// Bytes per `COPY` message: big enough to amortise the round trips, small enough to keep
/// memory flat.
const CHUNK: usize = 256 * 1024;

/// Copies `rows` (each followed by `suffix`) into `table` with binary `COPY`: the server
/// does not parse numbers and date-times from text, which is most of its work on a load.
pub(super) async fn copy_in(
    client: &deadpool_postgres::ClientWrapper,
    table: &Ident,
    columns: &[Ident],
    rows: &[Row],
    suffix: &[Value],
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut copy = Copy::open(client, table, columns).await?;
    for row in rows {
        copy.row(row, suffix)?;
        copy.flush_full().await?;
    }
    copy.finish().await
}

/// One binary `COPY` in progress.
struct Copy<'a> {
    sink: std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>,
    buf: BytesMut,
    types: Vec<Type>,
    names: Vec<String>,
    _client: std::marker::PhantomData<&'a ()>,
}

impl Copy<'_> {
    async fn open(
        client: &deadpool_postgres::ClientWrapper,
        table: &Ident,
        columns: &[Ident],
    ) -> Result<Self, StoreError> {
        let names: Vec<String> = columns.iter().map(ToString::to_string).collect();
        let list = names.join(",");
        // The column types, from a statement the connection caches.
        let probe = client
            .prepare_cached(&format!("SELECT {list} FROM {table} LIMIT 0"))
            .await
            .map_err(map_error)?;
        let types: Vec<Type> = probe.columns().iter().map(|c| c.type_().clone()).collect();
        let sink = client
            .copy_in(&format!("COPY {table} ({list}) FROM STDIN (FORMAT binary)"))
            .await
            .map_err(map_error)?;
        let mut buf = BytesMut::with_capacity(CHUNK + 4096);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension
        Ok(Copy {
            sink: Box::pin(sink),
            buf,
            types,
            names,
            _client: std::marker::PhantomData,
        })
    }

    fn row(&mut self, row: &Row, suffix: &[Value]) -> Result<(), StoreError> {
        let width = i16::try_from(self.types.len())
            .map_err(|_| StoreError::internal("too many columns for COPY"))?;
        self.buf.put_i16(width);
        for (i, (value, ty)) in row.iter().chain(suffix).zip(&self.types).enumerate() {
            let at = self.buf.len();
            self.buf.put_i32(0);
            let column = || self.names[i].trim_matches('"').to_string();
            match encode(value, ty, &mut self.buf)
                .map_err(|e| StoreError::Unprocessable(format!("column `{}`: {e}", column())))?
            {
                IsNull::Yes => {
                    self.buf.truncate(at);
                    self.buf.put_i32(-1);
                }
                IsNull::No => {
                    let len = i32::try_from(self.buf.len() - at - 4).map_err(|_| {
                        StoreError::Unprocessable(format!("column `{}`: value too large", column()))
                    })?;
                    self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
        Ok(())
    }

    async fn flush_full(&mut self) -> Result<(), StoreError> {
        if self.buf.len() >= CHUNK {
            let chunk = self.buf.split().freeze();
            self.sink.send(chunk).await.map_err(map_error)?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<u64, StoreError> {
        self.buf.put_i16(-1);
        let chunk = self.buf.split().freeze();
        self.sink.send(chunk).await.map_err(map_error)?;
        self.sink.as_mut().finish().await.map_err(map_error)
    }
}

/// A whole load as one `COPY` in one transaction, on its own task: the caller prepares the
/// next batch while the server stores this one.
pub(super) struct CopyWriter {
    batches: Option<tokio::sync::mpsc::Sender<(Vec<Row>, Vec<Value>)>>,
    task: Option<tokio::task::JoinHandle<Result<u64, StoreError>>>,
}

impl CopyWriter {
    pub(super) fn start(
        client: deadpool_postgres::Object,
        table: &Ident,
        columns: &[Ident],
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<Row>, Vec<Value>)>(1);
        let table = table.clone();
        let columns = columns.to_vec();
        let task = tokio::spawn(async move {
            let result = async {
                client.batch_execute("BEGIN").await.map_err(map_error)?;
                let mut copy = Copy::open(&client, &table, &columns).await?;
                let mut n = 0u64;
                while let Some((rows, suffix)) = rx.recv().await {
                    for row in &rows {
                        copy.row(row, &suffix)?;
                        copy.flush_full().await?;
                    }
                    n += rows.len() as u64;
                }
                copy.finish().await?;
                client.batch_execute("COMMIT").await.map_err(map_error)?;
                Ok(n)
            }
            .await;
            if result.is_err() && client.batch_execute("ROLLBACK").await.is_err() {
                // Never hand a connection in an unknown state back to the pool.
                drop(deadpool_postgres::Object::take(client));
            }
            result
        });
        CopyWriter {
            batches: Some(tx),
            task: Some(task),
        }
    }

    async fn outcome(&mut self) -> Result<u64, StoreError> {
        self.batches = None;
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| StoreError::internal_from("COPY task failed", e))?,
            None => Err(StoreError::internal("COPY already finished")),
        }
    }
}

#[async_trait::async_trait]
impl crate::conn::BulkWriter for CopyWriter {
    async fn write(&mut self, rows: Vec<Row>, suffix: Vec<Value>) -> Result<(), StoreError> {
        let Some(batches) = &self.batches else {
            return Err(StoreError::internal("COPY already finished"));
        };
        if batches.send((rows, suffix)).await.is_err() {
            // The task stopped: its error says why.
            return self
                .outcome()
                .await
                .and(Err(StoreError::internal("COPY stopped")));
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, StoreError> {
        self.outcome().await
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// One value in binary COPY format. Date-times arrive as text (RFC 3339, `YYYY-MM-DD`,
/// `YYYY-MM-DD HH:MM[:SS]`, naive ones read as UTC) and go out as microseconds since 2000.
fn encode(value: &Value, ty: &Type, buf: &mut BytesMut) -> Result<IsNull, BoxError> {
    match (value, ty) {
        (Value::Text(s), &Type::TIMESTAMPTZ | &Type::TIMESTAMP) => {
            let micros = parse_datetime(s).ok_or_else(|| format!("`{s}` is not a date-time"))?;
            buf.put_i64(micros - POSTGRES_EPOCH_MICROS);
            Ok(IsNull::No)
        }
        (Value::Text(s), _) if s.contains('\0') => Err("text cannot contain NUL characters".into()),
        _ => Bind(value).to_sql(ty, buf),
    }
}

/// 2000-01-01T00:00:00Z in microseconds since the Unix epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn parse_datetime(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// Runs `sql` wrapped in `row_to_json` and returns each row as a JSON object.
pub(super) async fn query_json(
    client: &tokio_postgres::Client,
    sql: &Sql,
) -> Result<Vec<JsonRow>, StoreError> {
    let wrapped = format!("SELECT row_to_json(q)::text FROM ({}) q", sql.text);
    let binds: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = binds
        .iter()
        .map(|b| b as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = client.query(&wrapped, &params).await.map_err(map_error)?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get(0).map_err(map_error)?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::internal_from("row_to_json returned bad JSON", e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn date_times_in_every_accepted_form() {
        let t = 1_357_034_400_000_000; // 2013-01-01T10:00:00Z
        assert_eq!(parse_datetime("2013-01-01T10:00:00Z"), Some(t));
        assert_eq!(parse_datetime("2013-01-01T12:00:00+02:00"), Some(t));
        assert_eq!(parse_datetime("2013-01-01 10:00:00"), Some(t));
        assert_eq!(parse_datetime("2013-01-01T10:00:00.000"), Some(t));
        assert_eq!(parse_datetime("2013-01-01 10:00"), Some(t));
        assert_eq!(parse_datetime("2013-01-01"), Some(t - 36_000_000_000));
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
