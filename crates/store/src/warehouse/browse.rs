//! Reading warehouse tables as they are — bronze loads, silver and gold models, quarantine
//! and rejected rows — read-only, with the records API's filters, sorting and paging, so a
//! data engineer can check a load without opening the database file (`/api/tables`).
//!
//! A table is read through a wrapping `SELECT` that puts every column in a form the API
//! decodes, filters and sorts (the same conversions exposed models get, see
//! [`expose::pg_column`]); the filter checker sees the table as a collection without system
//! columns, so `id`, `created` and `updated` are only fields when the table has them.

use brigade_core::schema::{Collection, Field, FieldType, Rules};
use brigade_core::value::Value;
use serde::Serialize;

use super::Warehouse;
use super::expose::{pg_column, sqlite_column};
use super::models::quarantine_table;
use super::tables::ident;
use crate::access::Access;
use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::handle::Page;
use crate::query::{ListParams, parse_fields, parse_sort};
use crate::records::{self, Record};
use crate::sql::{Dialect, Sql};

/// What a warehouse table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableRole {
    /// The output of a pipeline node (an extract's load or a model).
    Output,
    /// Rows a model's expectation quarantined (`<table>__quarantine`).
    Quarantine,
    /// Source rows that did not parse (`<table>__rejected`).
    Rejected,
}

/// A table (or view) a pipeline wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarehouseTable {
    pub name: String,
    pub pipeline: String,
    /// The pipeline node that writes it (for quarantine and rejected tables, the node whose
    /// rows they keep).
    pub node: String,
    pub role: TableRole,
    /// A view rather than a table (models materialized as views).
    pub view: bool,
}

/// A column of a warehouse table as the API reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowseColumn {
    pub name: String,
    /// The field type its values read, filter and sort as.
    #[serde(rename = "type")]
    pub kind: FieldType,
}

/// A table's readable form: the wrapping select and the checker's view of it.
struct Readable {
    select: String,
    shape: Collection,
}

impl Warehouse<'_> {
    /// Every table and view pipelines wrote that exists now, by name.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn tables(self) -> Result<Vec<WarehouseTable>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let existing = relations(conn.as_mut()).await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT table_name, pipeline, node FROM _pipeline_tables ORDER BY table_name");
        let owned = conn
            .query(&sql, &[ColType::Text, ColType::Text, ColType::Text])
            .await?;
        let find = |name: &str| {
            existing
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .cloned()
        };
        let mut tables = Vec::new();
        for row in owned {
            let [Value::Text(table), Value::Text(pipeline), Value::Text(node)] = row.as_slice()
            else {
                return Err(StoreError::internal(
                    "a _pipeline_tables row is not (text, text, text)",
                ));
            };
            let derived = [
                (table.clone(), TableRole::Output),
                (quarantine_table(table), TableRole::Quarantine),
                (
                    format!("{table}__rejected").chars().take(63).collect(),
                    TableRole::Rejected,
                ),
            ];
            for (name, role) in derived {
                if let Some((name, view)) = find(&name) {
                    tables.push(WarehouseTable {
                        name,
                        pipeline: pipeline.clone(),
                        node: node.clone(),
                        role,
                        view,
                    });
                }
            }
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tables)
    }

    /// The warehouse table called `name`, if there is one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn table(self, name: &str) -> Result<Option<WarehouseTable>, StoreError> {
        Ok(self.tables().await?.into_iter().find(|t| t.name == name))
    }

    /// The columns of warehouse table `table` with the types the API reads them as.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn browse_columns(
        self,
        table: &WarehouseTable,
    ) -> Result<Vec<BrowseColumn>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let readable = readable(conn.as_mut(), &table.name).await?;
        Ok(readable
            .shape
            .fields
            .iter()
            .map(|f| BrowseColumn {
                name: f.name.clone(),
                kind: f.kind,
            })
            .collect())
    }

    /// A page of `table`'s rows with the records API's `filter`, `sort`, `fields`, `page`,
    /// `per_page` and `skip_total` (no `expand`: tables have no relations). Without a sort,
    /// rows come in the order of their columns, so pages are stable.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for bad parameters (naming the key and, for filters, the
    /// position), [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn browse_table(
        self,
        table: &WarehouseTable,
        params: &ListParams,
        access: &Access,
    ) -> Result<Page, StoreError> {
        if params
            .expand
            .as_deref()
            .is_some_and(|e| !e.trim().is_empty())
        {
            return Err(StoreError::invalid(
                "expand",
                "warehouse tables have no relations to expand",
            ));
        }
        let (page, per_page, skip_total) = params.paging()?;
        let mut conn = self.store.db.read().await?;
        let readable = readable(conn.as_mut(), &table.name).await?;
        let shape = &readable.shape;
        let sort = parse_sort(shape, params.sort.as_deref())?;
        let fields = parse_fields(shape, params.fields.as_deref())?;
        let no_relations = |_: &str| -> Option<std::sync::Arc<Collection>> { None };
        let filter = match params
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(src) => Some(
                records::filter_sql(conn.dialect(), shape, src, &no_relations, access, None)?.sql,
            ),
            None => None,
        };
        let from = format!("({}) q", readable.select);
        let mut sql = Sql::new(conn.dialect());
        let names: Vec<String> = shape
            .fields
            .iter()
            .map(|f| ident(&f.name).map(|i| i.to_string()))
            .collect::<Result<_, _>>()?;
        sql.push(&format!("SELECT {} FROM {from}", names.join(", ")));
        if let Some(f) = &filter {
            sql.push(" WHERE ").append(f.clone());
        }
        if !sort.is_empty() {
            let order = sort
                .iter()
                .map(|k| {
                    ident(&k.column)
                        .map(|i| format!("{i}{}", if k.descending { " DESC" } else { " ASC" }))
                })
                .collect::<Result<Vec<_>, _>>()?;
            sql.push(&format!(" ORDER BY {}", order.join(", ")));
        }
        sql.push(" LIMIT ").bind(Value::Int(per_page));
        sql.push(" OFFSET ")
            .bind(Value::Int((page - 1).saturating_mul(per_page)));
        let types: Vec<ColType> = shape.fields.iter().map(|f| f.kind.into()).collect();
        let mut items: Vec<Record> = conn
            .query(&sql, &types)
            .await?
            .into_iter()
            .map(|row| {
                shape
                    .fields
                    .iter()
                    .zip(row)
                    .map(|(f, v)| (f.name.clone(), v.to_json()))
                    .collect()
            })
            .collect();
        let total = if skip_total {
            None
        } else {
            let mut count = Sql::new(conn.dialect());
            count.push(&format!("SELECT COUNT(*) FROM {from}"));
            if let Some(f) = filter {
                count.push(" WHERE ").append(f);
            }
            let rows = conn.query(&count, &[ColType::Int]).await?;
            match rows.first().and_then(|r| r.first()) {
                Some(Value::Int(n)) => Some(*n),
                _ => {
                    return Err(StoreError::internal("COUNT(*) returned no integer"));
                }
            }
        };
        if let Some(fields) = &fields {
            items.iter_mut().for_each(|r| records::project(r, fields));
        }
        Ok(Page {
            items,
            page,
            per_page,
            total_items: total,
            total_pages: total.map(|t| (t + per_page - 1) / per_page),
        })
    }
}

/// The tables and views of the database, with whether each is a view.
async fn relations(conn: &mut dyn Conn) -> Result<Vec<(String, bool)>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    match conn.dialect() {
        Dialect::Sqlite => sql.push(
            "SELECT name, CASE WHEN type = 'view' THEN 1 ELSE 0 END FROM sqlite_master \
             WHERE type IN ('table', 'view')",
        ),
        Dialect::Postgres => sql.push(
            "SELECT table_name::text, CASE WHEN table_type = 'VIEW' THEN 1 ELSE 0 END \
             FROM information_schema.tables WHERE table_schema = current_schema()",
        ),
    };
    let rows = conn.query(&sql, &[ColType::Text, ColType::Int]).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Value::Text(name), Value::Int(view)] => Some((name.clone(), *view == 1)),
            _ => None,
        })
        .collect())
}

/// Describes `table` and builds its readable form.
async fn readable(conn: &mut dyn Conn, table: &str) -> Result<Readable, StoreError> {
    let t = ident(table)?;
    let mut probe = Sql::new(conn.dialect());
    probe.push(&format!("SELECT * FROM {t}"));
    let described = conn.describe(&probe).await?;
    let postgres = conn.dialect() == Dialect::Postgres;
    let mut list = Vec::with_capacity(described.len());
    let mut fields = Vec::with_capacity(described.len());
    for (name, ty) in &described {
        // Columns are read by name: one that is not a plain identifier cannot be.
        let Ok(column) = ident(name) else {
            continue;
        };
        let source = format!("w.{column}");
        let (expr, kind) = if postgres {
            let (expr, kind) = pg_column(&source, ty);
            (expr, kind)
        } else {
            let (expr, kind) = sqlite_column(&source, ty);
            let kind = match kind {
                Some(kind) => kind,
                None => sqlite_kind(conn, table, name, ty).await?,
            };
            (expr, kind)
        };
        list.push(format!("{expr} AS {column}"));
        fields.push(Field::new(name, kind));
    }
    Ok(Readable {
        select: format!("SELECT {} FROM {t} w", list.join(", ")),
        shape: Collection {
            id: format!("table:{table}"),
            name: table.to_string(),
            fields,
            indexes: Vec::new(),
            rules: Rules::default(),
            created: String::new(),
            updated: String::new(),
            pipeline: None,
            system_columns: false,
        },
    })
}

/// The field type of a SQLite column that [`sqlite_column`] leaves to its values: declared
/// integers and reals and text keep their type; an undeclared column (an expression of
/// `CREATE TABLE .. AS`) reads as the type of its first value.
async fn sqlite_kind(
    conn: &mut dyn Conn,
    table: &str,
    column: &str,
    declared: &str,
) -> Result<FieldType, StoreError> {
    let d = declared.to_ascii_uppercase();
    if d.contains("INT") {
        return Ok(FieldType::Integer);
    }
    if d.contains("CHAR") || d.contains("TEXT") || d.contains("CLOB") {
        return Ok(FieldType::Text);
    }
    if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        return Ok(FieldType::Number);
    }
    // An undeclared column: its first value's type, as exposed models are typed.
    super::expose::sampled(conn, table, column).await
}
