//! Column types of pipeline tables, per dialect, and reading a table's columns back.

use brigade_core::value::Value;

use super::Warehouse;
use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};

/// Staging tables start with this; leftovers of a killed run are dropped by the next one.
pub const STAGING_PREFIX: &str = "_stg_";

/// The type of a pipeline table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Integer,
    Number,
    Bool,
    Text,
    Timestamp,
    Json,
}

impl ColumnType {
    /// All names, for messages.
    pub const NAMES: &'static [&'static str] =
        &["integer", "number", "bool", "text", "timestamp", "json"];

    /// Parses a type name as written in pipeline files (`int`, `float`, `boolean`, ... too).
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "integer" | "int" | "bigint" => ColumnType::Integer,
            "number" | "float" | "double" | "real" => ColumnType::Number,
            "bool" | "boolean" => ColumnType::Bool,
            "text" | "string" => ColumnType::Text,
            "timestamp" | "datetime" | "timestamptz" => ColumnType::Timestamp,
            "json" => ColumnType::Json,
            _ => return None,
        })
    }

    /// The name used in messages and the API.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Bool => "bool",
            ColumnType::Text => "text",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Json => "json",
        }
    }

    /// The column type in DDL. On SQLite the declared names map back through
    /// [`ColumnType::from_declared`] and give the right affinity.
    pub(crate) fn sql(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (ColumnType::Integer, Dialect::Sqlite) => "INTEGER",
            (ColumnType::Integer, Dialect::Postgres) => "BIGINT",
            (ColumnType::Number, Dialect::Sqlite) => "REAL",
            (ColumnType::Number, Dialect::Postgres) => "DOUBLE PRECISION",
            (ColumnType::Bool, Dialect::Sqlite) => "BOOLEAN",
            (ColumnType::Bool, Dialect::Postgres) => "BOOLEAN",
            (ColumnType::Text, _) => "TEXT",
            (ColumnType::Timestamp, Dialect::Sqlite) => "DATETIME",
            (ColumnType::Timestamp, Dialect::Postgres) => "TIMESTAMPTZ",
            (ColumnType::Json, Dialect::Sqlite) => "JSON_TEXT",
            (ColumnType::Json, Dialect::Postgres) => "JSONB",
        }
    }

    /// Maps a declared column type (SQLite) or `information_schema` data type (PostgreSQL)
    /// back. SQLite columns of `CREATE TABLE .. AS` over expressions declare nothing or
    /// `NUM`; those read as numbers.
    pub(crate) fn from_declared(declared: &str) -> ColumnType {
        let d = declared.to_ascii_uppercase();
        if d.starts_with("JSON") {
            ColumnType::Json
        } else if d.contains("INT") {
            ColumnType::Integer
        } else if d.starts_with("BOOL") {
            ColumnType::Bool
        } else if d.contains("TIMESTAMP") || d.starts_with("DATE") {
            ColumnType::Timestamp
        } else if d.contains("CHAR") || d.contains("TEXT") || d.contains("CLOB") || d == "UUID" {
            ColumnType::Text
        } else {
            ColumnType::Number
        }
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

pub(crate) fn ident(name: &str) -> Result<Ident, StoreError> {
    Ident::parse(name).map_err(|n| {
        StoreError::invalid(
            "name",
            format!(
                "`{n}` is not a valid table or column name (letters, digits and `_`, at most 63)"
            ),
        )
    })
}

/// The columns of `table`, or `None` when it does not exist.
pub(crate) async fn columns(
    conn: &mut dyn Conn,
    table: &str,
) -> Result<Option<Vec<Column>>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    match conn.dialect() {
        Dialect::Sqlite => sql
            .push("SELECT name, type FROM pragma_table_info(")
            .bind(Value::Text(table.into()))
            .push(") ORDER BY cid"),
        Dialect::Postgres => sql
            .push(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = ",
            )
            .bind(Value::Text(table.into()))
            .push(" ORDER BY ordinal_position"),
    };
    let rows = conn.query(&sql, &[ColType::Text, ColType::Text]).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .filter_map(|row| match row.as_slice() {
                [Value::Text(name), Value::Text(declared)] => Some(Column {
                    name: name.clone(),
                    ty: ColumnType::from_declared(declared),
                }),
                [Value::Text(name), Value::Null] => Some(Column {
                    name: name.clone(),
                    ty: ColumnType::Number,
                }),
                _ => None,
            })
            .collect(),
    ))
}

/// Whether `name` is a view (views are replaced, never merged into).
pub(crate) async fn is_view(conn: &mut dyn Conn, name: &str) -> Result<bool, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    match conn.dialect() {
        Dialect::Sqlite => sql
            .push("SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = ")
            .bind(Value::Text(name.into())),
        Dialect::Postgres => sql
            .push(
                "SELECT count(*) FROM information_schema.views \
                 WHERE table_schema = current_schema() AND table_name = ",
            )
            .bind(Value::Text(name.into())),
    };
    let rows = conn.query(&sql, &[ColType::Int]).await?;
    Ok(matches!(rows.first().and_then(|r| r.first()), Some(Value::Int(n)) if *n > 0))
}

/// `CREATE TABLE` text for `columns` in `table`.
pub(crate) fn create_table(
    dialect: Dialect,
    table: &Ident,
    columns: &[(Ident, ColumnType)],
) -> String {
    let defs: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{name} {}", ty.sql(dialect)))
        .collect();
    format!("CREATE TABLE {table} ({})", defs.join(", "))
}

/// The `LIKE` pattern (escape `\\`) of the staging tables of `target`: the prefix, 12
/// characters of a run id, `_` and the target, cut at 63 characters as the names are. Only
/// those: `%_orders` would also match the staging tables of `big_orders`.
fn staging_pattern(target: &str) -> String {
    let escape = |text: &str| -> Vec<String> {
        text.chars()
            .map(|c| match c {
                '_' | '%' | '\\' => format!("\\{c}"),
                c => c.to_string(),
            })
            .collect()
    };
    let mut atoms = escape(STAGING_PREFIX);
    atoms.extend(std::iter::repeat_n("_".to_string(), 12));
    atoms.extend(escape("_"));
    atoms.extend(escape(target));
    atoms.into_iter().take(63).collect()
}

impl Warehouse<'_> {
    /// The columns of a table or view, or `None` when there is none by that name.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn table_columns(self, table: &str) -> Result<Option<Vec<Column>>, StoreError> {
        let mut conn = self.store.db.read().await?;
        columns(conn.as_mut(), table).await
    }

    /// Drops staging tables of `targets` left behind by killed runs.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn drop_staging(self, targets: &[String]) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        for target in targets {
            let mut sql = Sql::new(tx.dialect());
            let pattern = staging_pattern(target);
            match tx.dialect() {
                Dialect::Sqlite => sql
                    .push("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ")
                    .bind(Value::Text(pattern))
                    .push(" ESCAPE '\\'"),
                Dialect::Postgres => sql
                    .push(
                        "SELECT table_name::text FROM information_schema.tables \
                         WHERE table_schema = current_schema() AND table_name LIKE ",
                    )
                    .bind(Value::Text(pattern))
                    .push(" ESCAPE '\\'"),
            };
            let rows = tx.query(&sql, &[ColType::Text]).await?;
            for row in rows {
                if let Some(Value::Text(name)) = row.first()
                    && let Ok(table) = Ident::parse(name)
                {
                    tx.execute_script(&format!("DROP TABLE IF EXISTS {table}"))
                        .await?;
                }
            }
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::staging_pattern;

    #[test]
    fn staging_patterns_match_only_their_own_target() {
        assert_eq!(staging_pattern("orders"), "\\_stg\\_____________\\_orders");
        // Cut at 63 characters, as the staging names are.
        let long = "t".repeat(60);
        let pattern = staging_pattern(&long);
        let unescaped = pattern.replace("\\", "");
        assert_eq!(unescaped.len(), 63, "{pattern}");
    }
}
