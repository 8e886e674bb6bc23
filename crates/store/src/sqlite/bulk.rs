//! Bulk paths of the SQLite backend: multi-row prepared inserts for pipeline loads, and
//! queries whose columns are only known at run time (user-written models).

use brigade_core::value::Value;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::value::Bind;
use crate::conn::{JsonRow, Row};
use crate::sql::{Ident, Sql};

/// SQLite's default limit on bound parameters per statement.
const MAX_PARAMS: usize = 32_766;
/// Rows per multi-row `INSERT`: past ~64 the statement gets longer without getting faster.
const ROWS_PER_STATEMENT: usize = 64;

/// Inserts `rows` (each followed by `suffix`) into `table` with cached multi-row statements.
pub(super) fn insert(
    conn: &Connection,
    table: &Ident,
    columns: &[Ident],
    rows: &[Row],
    suffix: &[Value],
) -> rusqlite::Result<u64> {
    let width = columns.len();
    if width == 0 || rows.is_empty() {
        return Ok(0);
    }
    let per_statement = (MAX_PARAMS / width).clamp(1, ROWS_PER_STATEMENT);
    let mut chunks = rows.chunks_exact(per_statement);
    if chunks.len() > 0 {
        let mut stmt = conn.prepare_cached(&insert_sql(table, columns, per_statement))?;
        for chunk in chunks.by_ref() {
            bind_rows(&mut stmt, chunk, suffix)?;
            stmt.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut stmt = conn.prepare_cached(&insert_sql(table, columns, 1))?;
        for row in rest {
            bind_rows(&mut stmt, std::slice::from_ref(row), suffix)?;
            stmt.raw_execute()?;
        }
    }
    Ok(rows.len() as u64)
}

fn bind_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    rows: &[Row],
    suffix: &[Value],
) -> rusqlite::Result<()> {
    let mut index = 1;
    for row in rows {
        for value in row.iter().chain(suffix) {
            stmt.raw_bind_parameter(index, Bind(value))?;
            index += 1;
        }
    }
    Ok(())
}

fn insert_sql(table: &Ident, columns: &[Ident], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(ToString::to_string).collect();
    let mut one = String::from("(");
    for i in 0..columns.len() {
        one.push_str(if i == 0 { "?" } else { ",?" });
    }
    one.push(')');
    let values = vec![one; rows].join(",");
    format!("INSERT INTO {table} ({}) VALUES {values}", names.join(","))
}

/// Runs `sql` and returns each row as a JSON object.
pub(super) fn query_json(conn: &Connection, sql: &Sql) -> rusqlite::Result<Vec<JsonRow>> {
    let mut stmt = conn.prepare(&sql.text)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let params: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut object = JsonRow::new();
        for (i, name) in names.iter().enumerate() {
            object.insert(name.clone(), json_of(row.get_ref(i)?));
        }
        out.push(object);
    }
    Ok(out)
}

/// Runs `sql` once and hands its rows to `page` as JSON objects, `page_rows` at a time (the
/// last page may be shorter or empty); stops early when `page` returns `false`.
pub(crate) fn stream_json(
    conn: &Connection,
    sql: &Sql,
    page_rows: usize,
    mut page: impl FnMut(Vec<JsonRow>) -> bool,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&sql.text)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let params: Vec<Bind<'_>> = sql.params.iter().map(Bind).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::with_capacity(page_rows);
    while let Some(row) = rows.next()? {
        let mut object = JsonRow::new();
        for (i, name) in names.iter().enumerate() {
            object.insert(name.clone(), json_of(row.get_ref(i)?));
        }
        out.push(object);
        if out.len() == page_rows
            && !page(std::mem::replace(&mut out, Vec::with_capacity(page_rows)))
        {
            return Ok(());
        }
    }
    page(out);
    Ok(())
}

fn json_of(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(b) => String::from_utf8_lossy(b).into_owned().into(),
        ValueRef::Blob(b) => format!("<{} bytes>", b.len()).into(),
    }
}
