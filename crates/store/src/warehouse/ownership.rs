//! Which pipeline owns which table. A pipeline creates and replaces only tables it owns
//! (recorded in `_pipeline_tables` when it first publishes one), so a node named like a
//! collection, a system table or another pipeline's table is refused instead of silently
//! dropping that table (and, through foreign keys, the rows that point at it).
//!
//! The runner asks [`Warehouse::table_owners`] before a run starts; every publish checks again
//! inside its own transaction ([`claim`]), and creating a collection checks [`pipeline_owner`].

use std::fmt;

use brigade_core::value::Value;

use super::Warehouse;
use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::migrations;
use crate::sql::Sql;

/// Who holds a table name that a pipeline wants to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A collection of the API (its records, relations and rules live in the table).
    Collection(String),
    /// Brigade's own tables (`_users`, `_collections`, ...): every name starting with `_`.
    System,
    /// Another pipeline (`node` wrote it first).
    Pipeline { pipeline: String, node: String },
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Collection(name) => write!(f, "collection `{name}`"),
            Owner::System => write!(f, "Brigade's system tables"),
            Owner::Pipeline { pipeline, node } => {
                write!(f, "pipeline `{pipeline}` (node {node})")
            }
        }
    }
}

/// A table a pipeline may not write, and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub table: String,
    pub owner: Owner,
}

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table `{}` belongs to {}; a pipeline only creates and replaces its own tables: rename the node",
            self.table, self.owner
        )
    }
}

impl Taken {
    /// As a store error (409 over HTTP).
    pub fn into_error(self) -> StoreError {
        StoreError::conflict("name", self.to_string())
    }
}

/// Who other than `pipeline` holds `table`, if anyone.
pub(crate) async fn holder(
    conn: &mut dyn Conn,
    pipeline: &str,
    table: &str,
) -> Result<Option<Owner>, StoreError> {
    let collections = migrations::load_collections(conn).await?;
    holder_among(conn, &collections, pipeline, table).await
}

/// [`holder`], with the collections already read (one read for many tables).
async fn holder_among(
    conn: &mut dyn Conn,
    collections: &[brigade_core::schema::Collection],
    pipeline: &str,
    table: &str,
) -> Result<Option<Owner>, StoreError> {
    if table.starts_with('_') || table.to_ascii_lowercase().starts_with("sqlite_") {
        return Ok(Some(Owner::System));
    }
    if let Some(c) = collections
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(table))
    {
        return Ok(match &c.pipeline {
            // An exposed model of this very pipeline.
            Some(p) if p == pipeline => None,
            Some(p) => Some(Owner::Pipeline {
                pipeline: p.clone(),
                node: c.name.clone(),
            }),
            None => Some(Owner::Collection(c.name.clone())),
        });
    }
    Ok(match pipeline_owner(conn, table).await? {
        Some((p, node)) if p != pipeline => Some(Owner::Pipeline { pipeline: p, node }),
        _ => None,
    })
}

/// The `(pipeline, node)` that owns `table`, per `_pipeline_tables`.
pub(crate) async fn pipeline_owner(
    conn: &mut dyn Conn,
    table: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT pipeline, node FROM _pipeline_tables WHERE lower(table_name) = lower(")
        .bind(Value::Text(table.into()))
        .push(")");
    let rows = conn.query(&sql, &[ColType::Text, ColType::Text]).await?;
    Ok(rows.into_iter().next().and_then(|r| match r.as_slice() {
        [Value::Text(p), Value::Text(n)] => Some((p.clone(), n.clone())),
        _ => None,
    }))
}

/// Checks, inside the publishing transaction, that `pipeline` may write `table`, and records
/// it as the owner when nobody is yet (a table made by an older version of this pipeline,
/// before ownership was recorded, is claimed the same way).
///
/// # Errors
/// [`StoreError::Conflict`] naming the table and its owner; nothing may be published then.
pub(crate) async fn claim(
    conn: &mut dyn Conn,
    pipeline: &str,
    node: &str,
    table: &str,
) -> Result<(), StoreError> {
    if let Some(owner) = holder(conn, pipeline, table).await? {
        return Err(Taken {
            table: table.to_string(),
            owner,
        }
        .into_error());
    }
    let mut sql = Sql::new(conn.dialect());
    sql.push("INSERT INTO _pipeline_tables (table_name, pipeline, node, created_at) VALUES (")
        .bind(Value::Text(table.into()))
        .push(", ")
        .bind(Value::Text(pipeline.into()))
        .push(", ")
        .bind(Value::Text(node.into()))
        .push(", ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(") ON CONFLICT (table_name) DO NOTHING");
    if conn.execute(&sql).await? == 0
        && let Some(owner) = holder(conn, pipeline, table).await?
    {
        // Another pipeline claimed it between the check and the insert.
        return Err(Taken {
            table: table.to_string(),
            owner,
        }
        .into_error());
    }
    Ok(())
}

impl Warehouse<'_> {
    /// The tables of `tables` that `pipeline` may not write, with their owners; empty when
    /// the run may go ahead.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn table_owners(
        self,
        pipeline: &str,
        tables: &[String],
    ) -> Result<Vec<Taken>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let collections = migrations::load_collections(conn.as_mut()).await?;
        let mut taken = Vec::new();
        for table in tables {
            if let Some(owner) = holder_among(conn.as_mut(), &collections, pipeline, table).await? {
                taken.push(Taken {
                    table: table.clone(),
                    owner,
                });
            }
        }
        Ok(taken)
    }
}
