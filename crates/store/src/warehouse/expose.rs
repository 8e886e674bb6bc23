//! Models with `expose = true` become read-only collections: the model's rows get the
//! system columns every record has (`id`, `created`, `updated`), and the table is
//! registered in `_collections` (marked with its pipeline, no migration file) in the same
//! transaction that publishes it, so the API never sees a table without its collection.

use std::collections::HashMap;

use brigade_core::schema::{Collection, Field, FieldType, Rules, new_collection_id};
use brigade_core::value::Value;

use super::tables::{self, ColumnType, ident};
use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::migrations;
use crate::sql::{Dialect, Sql};

/// How a model is exposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expose {
    /// The pipeline that maintains it.
    pub pipeline: String,
    /// Columns whose values make the record id (joined with `|`); empty: the model's own
    /// `id` column, or else the row number.
    pub key: Vec<String>,
    /// List and view rule (filter language); `None`: superusers only.
    pub rule: Option<String>,
}

/// An exposed model's `SELECT`, wrapped, and the field type of each of its columns where
/// the database says it (PostgreSQL; SQLite's expression columns have no type until a
/// value is stored, see [`register`]).
pub(super) struct Wrapped {
    pub(super) select: String,
    pub(super) kinds: HashMap<String, FieldType>,
}

/// Wraps `select` so its rows carry `id`, `created` and `updated` (the run's time), and on
/// PostgreSQL converts every column to one of the forms the records API reads, filters and
/// sorts (see [`pg_column`]).
pub(super) async fn wrap(
    tx: &mut dyn Conn,
    select: &str,
    expose: &Expose,
    now: &str,
) -> Result<Wrapped, StoreError> {
    let mut probe = Sql::new(tx.dialect());
    probe.push("SELECT * FROM (").push(select).push(") q");
    let columns = tx.describe(&probe).await.map_err(super::user_sql)?;
    let postgres = tx.dialect() == Dialect::Postgres;
    let type_of = |name: &str| columns.iter().find(|(c, _)| c == name).map(|(_, t)| t);
    let has = |name: &str| type_of(name).is_some();
    for key in &expose.key {
        if !has(key) {
            return Err(StoreError::Unprocessable(format!(
                "unique_key column `{key}` is not returned by the model"
            )));
        }
    }
    let text = |c: &str| format!("CAST(q.\"{c}\" AS TEXT)");
    let id = if !expose.key.is_empty() {
        expose
            .key
            .iter()
            .map(|k| format!("COALESCE({}, '')", text(k)))
            .collect::<Vec<_>>()
            .join(" || '|' || ")
    } else if has("id") {
        text("id")
    } else {
        "CAST(row_number() OVER () AS TEXT)".to_string()
    };
    // `now` is our own RFC 3339 text: digits, `-`, `:`, `.`, `T`, `Z`.
    let stamp = |c: &str| match type_of(c) {
        Some(ty) if postgres && ty.starts_with("timestamp") => {
            pg_column(&format!("q.\"{c}\""), ty).0
        }
        Some(ty) if !postgres && ColumnType::from_declared(ty) == ColumnType::Timestamp => {
            sqlite_column(&format!("q.\"{c}\""), ty).0
        }
        Some(_) => text(c),
        None => format!("'{now}'"),
    };
    let mut list = vec![
        format!("{id} AS \"id\""),
        format!("{} AS \"created\"", stamp("created")),
        format!("{} AS \"updated\"", stamp("updated")),
    ];
    let mut kinds = HashMap::new();
    for (name, ty) in &columns {
        if matches!(name.as_str(), "id" | "created" | "updated") {
            continue;
        }
        let column = ident(name).map_err(|_| {
            StoreError::Unprocessable(format!(
                "an exposed model needs plain column names; give `{name}` an alias (e.g. `{name} AS total`)"
            ))
        })?;
        let (expr, kind) = if postgres {
            let (expr, kind) = pg_column(&format!("q.{column}"), ty);
            (expr, Some(kind))
        } else {
            sqlite_column(&format!("q.{column}"), ty)
        };
        list.push(format!("{expr} AS {column}"));
        if let Some(kind) = kind {
            kinds.insert(name.clone(), kind);
        }
    }
    Ok(Wrapped {
        select: format!("SELECT {} FROM ({select}) q", list.join(", ")),
        kinds,
    })
}

/// The expression that stores PostgreSQL column `expr` of type `ty` (the type's name, as
/// `describe` gives it) in an exposed table, and the field type the API reads it as:
///
/// | model type | stored as | JSON |
/// | --- | --- | --- |
/// | smallint, integer, bigint | `bigint` | number |
/// | real, double precision, numeric | `double precision` | number |
/// | boolean | `boolean` | true / false |
/// | timestamp, timestamptz | RFC 3339 text in UTC | `"2013-01-01T10:00:00.000Z"` |
/// | date | `YYYY-MM-DD` text | `"2013-01-01"` |
/// | time, timetz, uuid, text types, anything else | text | string |
/// | interval | ISO 8601 text with every part | `"P0Y0M1DT2H30M0S"` |
/// | json, jsonb | as is | JSON |
/// | arrays | `jsonb` | JSON array |
/// | bytea | base64 text | string |
///
/// So filters bind parameters the column takes (a `numeric` column compared with `50` was a
/// serialization error) and values decode to JSON (a `numeric` read as `null`).
pub(super) fn pg_column(expr: &str, ty: &str) -> (String, FieldType) {
    const RFC3339: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";
    let ty = ty.to_ascii_lowercase();
    match ty.as_str() {
        "int2" | "int4" | "int8" => (format!("CAST({expr} AS BIGINT)"), FieldType::Integer),
        "float8" => (expr.to_string(), FieldType::Number),
        // Through text, so a real's 0.1 stays 0.1 and not 0.100000001490116.
        "float4" => (
            format!("CAST(CAST({expr} AS TEXT) AS DOUBLE PRECISION)"),
            FieldType::Number,
        ),
        "numeric" => (
            format!("CAST({expr} AS DOUBLE PRECISION)"),
            FieldType::Number,
        ),
        "bool" => (expr.to_string(), FieldType::Bool),
        "text" => (expr.to_string(), FieldType::Text),
        "timestamptz" => (
            format!("to_char({expr} AT TIME ZONE 'UTC', {RFC3339})"),
            FieldType::Datetime,
        ),
        // No zone: the wall-clock time is taken as UTC, whatever the session's zone.
        "timestamp" => (format!("to_char({expr}, {RFC3339})"), FieldType::Datetime),
        "date" => (format!("to_char({expr}, 'YYYY-MM-DD')"), FieldType::Text),
        // Built from its parts, so the form does not depend on the session's IntervalStyle.
        "interval" => (
            format!(
                "CASE WHEN {expr} IS NULL THEN NULL ELSE format('P%sY%sM%sDT%sH%sM%sS', \
                 CAST(extract(year FROM {expr}) AS BIGINT), \
                 CAST(extract(month FROM {expr}) AS BIGINT), \
                 CAST(extract(day FROM {expr}) AS BIGINT), \
                 CAST(extract(hour FROM {expr}) AS BIGINT), \
                 CAST(extract(minute FROM {expr}) AS BIGINT), \
                 CAST(CAST(extract(second FROM {expr}) AS DOUBLE PRECISION) AS TEXT)) END"
            ),
            FieldType::Text,
        ),
        "json" | "jsonb" => (expr.to_string(), FieldType::Json),
        "bytea" => (
            format!("replace(encode({expr}, 'base64'), chr(10), '')"),
            FieldType::Text,
        ),
        t if t.starts_with('_') => (format!("to_jsonb({expr})"), FieldType::Json),
        _ => (format!("CAST({expr} AS TEXT)"), FieldType::Text),
    }
}

/// The expression and field type of SQLite column `expr` declared `declared` (the source
/// table's type; expressions declare none and are typed by their values in [`register`]).
/// Loaded date-times are kept as written, so they become RFC 3339 in UTC like PostgreSQL's
/// (`strftime` reads `2013-01-01 10:00:00`, `...T10:00:00Z` and offsets); booleans and json
/// keep their type instead of becoming the integers and text `CREATE TABLE .. AS` makes.
pub(super) fn sqlite_column(expr: &str, declared: &str) -> (String, Option<FieldType>) {
    if declared.trim().is_empty() {
        return (expr.to_string(), None);
    }
    match ColumnType::from_declared(declared) {
        ColumnType::Timestamp => (
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', {expr})"),
            Some(FieldType::Datetime),
        ),
        ColumnType::Bool => (expr.to_string(), Some(FieldType::Bool)),
        ColumnType::Json => (expr.to_string(), Some(FieldType::Json)),
        // Integers, reals and text keep their declared types through the copy.
        _ => (expr.to_string(), None),
    }
}

/// Registers (or refreshes) the collection of exposed `table`; `kinds` are the field types
/// [`wrap`] knew, the other columns' come from the table.
pub(super) async fn register(
    tx: &mut dyn Conn,
    table: &str,
    expose: &Expose,
    kinds: &HashMap<String, FieldType>,
    existing: Option<&Collection>,
    now: &str,
) -> Result<(), StoreError> {
    let columns = tables::columns(tx, table).await?.unwrap_or_default();
    let mut fields = Vec::new();
    for column in columns
        .iter()
        .filter(|c| !matches!(c.name.as_str(), "id" | "created" | "updated"))
    {
        let kind = match (kinds.get(&column.name), column.ty) {
            (Some(kind), _) => *kind,
            (None, ColumnType::Integer) => FieldType::Integer,
            (None, ColumnType::Bool) => FieldType::Bool,
            (None, ColumnType::Timestamp) => FieldType::Datetime,
            (None, ColumnType::Json) => FieldType::Json,
            (None, ColumnType::Text) => FieldType::Text,
            (None, ColumnType::Number) => sampled(tx, table, &column.name).await?,
        };
        let kept = existing
            .and_then(|c| c.field(&column.name))
            .filter(|f| f.kind == kind)
            .map(|f| f.id.clone());
        let mut field = Field::new(&column.name, kind);
        if let Some(id) = kept {
            field.id = id;
        }
        fields.push(field);
    }
    let collection = Collection {
        id: existing.map_or_else(new_collection_id, |c| c.id.clone()),
        name: table.to_string(),
        fields,
        indexes: Vec::new(),
        rules: Rules {
            list: expose.rule.clone(),
            view: expose.rule.clone(),
            create: None,
            update: None,
            delete: None,
        },
        created: existing.map_or_else(|| now.to_string(), |c| c.created.clone()),
        updated: now.to_string(),
        pipeline: Some(expose.pipeline.clone()),
        system_columns: true,
    };
    migrations::save_definition(tx, &collection, existing.is_none()).await
}

/// SQLite gives `CREATE TABLE .. AS` expression columns no declared type: look at a value.
pub(super) async fn sampled(
    tx: &mut dyn Conn,
    table: &str,
    column: &str,
) -> Result<FieldType, StoreError> {
    if tx.dialect() == Dialect::Postgres {
        return Ok(FieldType::Number);
    }
    let t = ident(table)?;
    let c = ident(column)?;
    let mut sql = Sql::new(tx.dialect());
    sql.push(&format!(
        "SELECT typeof({c}) FROM {t} WHERE {c} IS NOT NULL LIMIT 1"
    ));
    let rows = tx.query(&sql, &[ColType::Text]).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Text(t)) if t == "integer" => FieldType::Integer,
        Some(Value::Text(t)) if t == "real" => FieldType::Number,
        None => FieldType::Number,
        _ => FieldType::Text,
    })
}
