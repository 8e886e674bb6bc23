//! Bulk paths of the PostgreSQL backend: `COPY FROM STDIN` (text format) for pipeline loads,
//! and `row_to_json` for queries whose columns are only known at run time (user models), so
//! every server type (numeric, date, interval, ...) comes back without a Rust decoder for it.

use std::fmt::Write as _;

use brigade_core::value::Value;
use bytes::{BufMut, BytesMut};
use futures::SinkExt;

use super::value::map_error;
use crate::conn::{JsonRow, Row};
use crate::error::StoreError;
use crate::sql::{Ident, Sql};

/// Bytes per `COPY` message: big enough to amortise the round trips, small enough to keep
/// memory flat.
const CHUNK: usize = 256 * 1024;

/// Copies `rows` (each followed by `suffix`) into `table`.
pub(super) async fn copy_in(
    client: &tokio_postgres::Client,
    table: &Ident,
    columns: &[Ident],
    rows: &[Row],
    suffix: &[Value],
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = columns.iter().map(ToString::to_string).collect();
    let statement = format!("COPY {table} ({}) FROM STDIN", names.join(","));
    let sink = client.copy_in(&statement).await.map_err(map_error)?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(CHUNK + 4096);
    for row in rows {
        for (i, value) in row.iter().chain(suffix).enumerate() {
            if i > 0 {
                buf.put_u8(b'\t');
            }
            encode(&mut buf, value);
        }
        buf.put_u8(b'\n');
        if buf.len() >= CHUNK {
            sink.send(buf.split().freeze()).await.map_err(map_error)?;
        }
    }
    if !buf.is_empty() {
        sink.send(buf.split().freeze()).await.map_err(map_error)?;
    }
    sink.finish().await.map_err(map_error)
}

/// One value in COPY's text format: `\N` for NULL, backslash escapes for the rest.
fn encode(buf: &mut BytesMut, value: &Value) {
    match value {
        Value::Null => buf.put_slice(b"\\N"),
        Value::Int(i) => {
            let _ = write!(Writer(buf), "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(Writer(buf), "{f}");
        }
        Value::Float(f) if f.is_nan() => buf.put_slice(b"NaN"),
        Value::Float(f) => buf.put_slice(if *f > 0.0 { b"Infinity" } else { b"-Infinity" }),
        Value::Bool(b) => buf.put_u8(if *b { b't' } else { b'f' }),
        Value::Text(s) => escape(buf, s),
        Value::Json(j) => escape(buf, &j.to_string()),
    }
}

fn escape(buf: &mut BytesMut, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => buf.put_slice(b"\\\\"),
            b'\t' => buf.put_slice(b"\\t"),
            b'\n' => buf.put_slice(b"\\n"),
            b'\r' => buf.put_slice(b"\\r"),
            // PostgreSQL text cannot hold NUL; the loader rejects such values earlier.
            0 => {}
            _ => buf.put_u8(b),
        }
    }
}

struct Writer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

/// Runs `sql` wrapped in `row_to_json` and returns each row as a JSON object.
pub(super) async fn query_json(
    client: &tokio_postgres::Client,
    sql: &Sql,
) -> Result<Vec<JsonRow>, StoreError> {
    let wrapped = format!("SELECT row_to_json(q)::text FROM ({}) q", sql.text);
    let binds: Vec<super::value::Bind<'_>> = sql.params.iter().map(super::value::Bind).collect();
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = binds
        .iter()
        .map(|b| b as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = client.query(&wrapped, &params).await.map_err(map_error)?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get(0).map_err(map_error)?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Internal(format!("row_to_json returned bad JSON: {e}")))
        })
        .collect()
}
