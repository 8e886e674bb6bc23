//! Models with `expose = true` become read-only collections: the model's rows get the
//! system columns every record has (`id`, `created`, `updated`), and the table is
//! registered in `_collections` (marked with its pipeline, no migration file) in the same
//! transaction that publishes it, so the API never sees a table without its collection.

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

/// Wraps `select` so its rows carry `id`, `created` and `updated` (the run's time).
/// PostgreSQL date-times become RFC 3339 text like every collection's.
pub(super) async fn wrap(
    tx: &mut dyn Conn,
    select: &str,
    expose: &Expose,
    now: &str,
) -> Result<String, StoreError> {
    let mut probe = Sql::new(tx.dialect());
    probe.push("SELECT * FROM (").push(select).push(") q");
    let columns = tx.describe(&probe).await.map_err(super::user_sql)?;
    let has = |name: &str| columns.iter().any(|(c, _)| c == name);
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
    let stamp = |c: &str| if has(c) { text(c) } else { format!("'{now}'") };
    let mut list = vec![
        format!("{id} AS \"id\""),
        format!("{} AS \"created\"", stamp("created")),
        format!("{} AS \"updated\"", stamp("updated")),
    ];
    for (name, ty) in &columns {
        if matches!(name.as_str(), "id" | "created" | "updated") {
            continue;
        }
        let column = ident(name).map_err(|_| {
            StoreError::Unprocessable(format!(
                "an exposed model needs plain column names; give `{name}` an alias (e.g. `{name} AS total`)"
            ))
        })?;
        let lower = ty.to_ascii_lowercase();
        if tx.dialect() == Dialect::Postgres && (lower.starts_with("timestamp") || lower == "date")
        {
            list.push(format!(
                "to_char(q.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS {column}"
            ));
        } else {
            list.push(format!("q.{column}"));
        }
    }
    Ok(format!("SELECT {} FROM ({select}) q", list.join(", ")))
}

/// Registers (or refreshes) the collection of exposed `table`, whose result columns were
/// `described` before wrapping.
pub(super) async fn register(
    tx: &mut dyn Conn,
    table: &str,
    expose: &Expose,
    existing: Option<&Collection>,
    now: &str,
) -> Result<(), StoreError> {
    let columns = tables::columns(tx, table).await?.unwrap_or_default();
    let mut fields = Vec::new();
    for column in columns
        .iter()
        .filter(|c| !matches!(c.name.as_str(), "id" | "created" | "updated"))
    {
        let kind = match column.ty {
            ColumnType::Integer => FieldType::Integer,
            ColumnType::Bool => FieldType::Bool,
            ColumnType::Timestamp => FieldType::Datetime,
            ColumnType::Json => FieldType::Json,
            ColumnType::Text => FieldType::Text,
            ColumnType::Number => sampled(tx, table, &column.name).await?,
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
    };
    migrations::save_definition(tx, &collection, existing.is_none()).await
}

/// SQLite gives `CREATE TABLE .. AS` expression columns no declared type: look at a value.
async fn sampled(tx: &mut dyn Conn, table: &str, column: &str) -> Result<FieldType, StoreError> {
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
