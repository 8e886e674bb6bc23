//! Bronze loads: rows go into a staging table in short transactions (so API writes keep
//! flowing on SQLite's single writer), then one transaction publishes them — replace, append
//! or merge on a key — together with the incremental cursor and the step record. A killed
//! process leaves only a staging table, which the next run drops.

use std::sync::Arc;

use brigade_core::value::Value;

use super::Warehouse;
use super::datatests::{self, DataTest, TestOutcome};
use super::runs::{self, StateUpdate};
use super::tables::{self, Column, ColumnType, STAGING_PREFIX, create_table, ident};
use crate::conn::{BulkWriter, Conn, Database, Row};
use crate::error::StoreError;
use crate::sql::{Dialect, Ident};

/// How a step's rows reach its table.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    /// Add the rows.
    Append,
    /// Replace the table's contents.
    Replace,
    /// Insert or update by these key columns (the last row of a key in one load wins).
    Merge(Vec<String>),
    /// Replace the table's contents with one row per key of these columns (the last row of a
    /// key wins, as in a merge): a full refresh of a keyed extract.
    Rebuild(Vec<String>),
    /// Replace the rows with `from <= column < to` (a backfill of an incremental extract).
    ReplaceRange {
        column: String,
        from: Value,
        to: Value,
    },
}

/// Source rows that did not parse, kept in `<table>__rejected` (`on_bad_row = "quarantine"`).
#[derive(Debug, Default)]
pub struct RejectedRows {
    pub table: String,
    pub run_id: String,
    /// `(source, line, error, raw text)`.
    pub rows: Vec<(String, i64, String, String)>,
}

/// What to commit with the data.
#[derive(Debug, Default)]
pub struct Finish {
    /// Rows to keep in the rejected table.
    pub rejected: Option<RejectedRows>,
    /// The incremental cursor after this load.
    pub state: Option<StateUpdate>,
    /// The run's steps (JSON) as they stand once this step succeeds.
    pub run_steps: Option<(String, serde_json::Value)>,
    /// The run that must still hold its pipeline's lease for this to commit: a run another
    /// process took for dead (and whose lease it took over) publishes nothing.
    pub leased_by: Option<String>,
}

/// What publishing a load did.
#[derive(Debug, Clone)]
pub struct Published {
    /// Rows loaded.
    pub rows: u64,
    /// The extract's data tests over the published table.
    pub tests: Vec<TestOutcome>,
    /// The failing test's message: nothing was published then.
    pub failure: Option<String>,
}

/// A load in progress: rows written so far sit in a staging table.
pub struct Staging {
    db: Arc<dyn Database>,
    /// The pipeline loading it: the table must be its own (see [`super::ownership`]).
    pipeline: String,
    target: String,
    table: Ident,
    columns: Vec<Column>,
    idents: Vec<Ident>,
    rows: u64,
    /// The backend's streaming writer (PostgreSQL), opened on the first write.
    stream: Option<Box<dyn BulkWriter>>,
    /// The backend has no streaming writer: short transactions per batch (SQLite).
    batched: bool,
}

/// The lineage columns every bronze row carries, after its data columns.
pub const LINEAGE: [(&str, ColumnType); 3] = [
    ("_loaded_at", ColumnType::Timestamp),
    ("_batch_id", ColumnType::Text),
    ("_source", ColumnType::Text),
];

impl Warehouse<'_> {
    /// Starts loading `target` for `pipeline` with `columns` (the data columns; lineage
    /// columns are added).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad table or column name.
    pub async fn begin_load(
        self,
        pipeline: &str,
        target: &str,
        columns: &[Column],
        batch_id: &str,
        mode: &WriteMode,
    ) -> Result<Staging, StoreError> {
        ident(target)?;
        let short: String = batch_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let staging = ident(
            &format!("{STAGING_PREFIX}{short}_{target}")
                .chars()
                .take(63)
                .collect::<String>(),
        )?;
        let mut all = columns.to_vec();
        all.extend(LINEAGE.iter().map(|(name, ty)| Column {
            name: (*name).to_string(),
            ty: *ty,
        }));
        let typed: Vec<(Ident, ColumnType)> = all
            .iter()
            .map(|c| Ok((ident(&c.name)?, c.ty)))
            .collect::<Result<_, StoreError>>()?;
        let mut tx = self.store.db.begin().await?;
        tx.execute_script(&format!("DROP TABLE IF EXISTS {staging}"))
            .await?;
        // A replacing load's staging table becomes the table: write it durably once rather
        // than unlogged and then again by SET LOGGED.
        let unlogged = if tx.dialect() == Dialect::Postgres
            && !matches!(mode, WriteMode::Replace | WriteMode::Rebuild(_))
        {
            "UNLOGGED "
        } else {
            ""
        };
        let ddl = create_table(tx.dialect(), &staging, &typed).replacen(
            "CREATE TABLE",
            &format!("CREATE {unlogged}TABLE"),
            1,
        );
        tx.execute_script(&ddl).await?;
        tx.commit().await?;
        Ok(Staging {
            db: self.store.db.clone(),
            pipeline: pipeline.to_string(),
            target: target.to_string(),
            table: staging,
            idents: typed.into_iter().map(|(i, _)| i).collect(),
            columns: all,
            rows: 0,
            stream: None,
            batched: false,
        })
    }
}

impl Staging {
    /// Rows staged so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds data columns that appeared after the load started (a later JSON record).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad column name.
    pub async fn add_columns(&mut self, columns: &[Column]) -> Result<(), StoreError> {
        self.end_stream().await?;
        let data = self.columns.len() - LINEAGE.len();
        let mut tx = self.db.begin().await?;
        for (i, column) in columns.iter().enumerate() {
            let name = ident(&column.name)?;
            tx.execute_script(&format!(
                "ALTER TABLE {} ADD COLUMN {name} {}",
                self.table,
                column.ty.sql(tx.dialect())
            ))
            .await?;
            self.idents.insert(data + i, name);
            self.columns.insert(data + i, column.clone());
        }
        tx.commit().await
    }

    /// Stages `rows` (data columns only) from `source`, loaded at `loaded_at` by `batch_id`.
    ///
    /// # Errors
    /// [`StoreError::Unprocessable`] when the database refuses a value.
    pub async fn write(&mut self, rows: Vec<Row>, lineage: [&str; 3]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let suffix: Vec<Value> = lineage
            .iter()
            .map(|s| Value::Text((*s).to_string()))
            .collect();
        if self.stream.is_none() && !self.batched {
            self.stream = self.db.bulk_writer(&self.table, &self.idents).await?;
            self.batched = self.stream.is_none();
        }
        let n = rows.len() as u64;
        match &mut self.stream {
            Some(stream) => stream.write(rows, suffix).await.map_err(super::user_sql)?,
            None => {
                let mut tx = self.db.begin().await?;
                tx.insert_rows(&self.table, &self.idents, &rows, &suffix)
                    .await
                    .map_err(super::user_sql)?;
                tx.commit().await?;
            }
        }
        self.rows += n;
        Ok(())
    }

    /// Commits what the streaming writer holds.
    async fn end_stream(&mut self) -> Result<(), StoreError> {
        match self.stream.take() {
            Some(stream) => stream.finish().await.map(|_| ()).map_err(super::user_sql),
            None => Ok(()),
        }
    }

    /// Publishes the staged rows into the target in one transaction, with `finish`.
    /// Returns the rows published: those staged less repeated keys of a merge or rebuild.
    ///
    /// # Errors
    /// [`StoreError::Unprocessable`] when the new columns clash with the table's (a changed
    /// type), or the merge key is missing; [`StoreError::Conflict`] when the table belongs to
    /// a collection or another pipeline. Nothing is changed then.
    pub async fn publish(
        mut self,
        mode: &WriteMode,
        finish: Finish,
        tests: &[DataTest],
    ) -> Result<Published, StoreError> {
        if let Err(e) = self.end_stream().await {
            self.discard().await;
            return Err(e);
        }
        let mut tx = self.db.begin().await?;
        let result = async {
            super::ownership::claim(tx.as_mut(), &self.pipeline, &self.target, &self.target)
                .await?;
            let duplicates =
                publish_table(tx.as_mut(), &self.table, &self.target, &self.columns, mode).await?;
            // The tests see the whole table as it will be published.
            let tests = datatests::run(tx.as_mut(), &self.target, tests).await?;
            Ok::<_, StoreError>((duplicates, tests))
        }
        .await;
        match result {
            Ok((duplicates, tests)) => {
                // Rows that repeated a key are not in the table: count what is.
                let rows = self.rows.saturating_sub(duplicates);
                let failure = tests
                    .iter()
                    .find(|t| t.status == "failed")
                    .map(|t| t.message.clone());
                if failure.is_some() {
                    drop(tx);
                    self.discard().await;
                } else {
                    runs::finish_in(tx.as_mut(), finish).await?;
                    tx.commit().await?;
                }
                Ok(Published {
                    rows,
                    tests,
                    failure,
                })
            }
            Err(e) => {
                drop(tx);
                self.discard().await;
                Err(e)
            }
        }
    }

    /// Drops the staging table.
    pub async fn discard(mut self) {
        let _ = self.end_stream().await;
        if let Ok(mut tx) = self.db.begin().await {
            let _ = tx
                .execute_script(&format!("DROP TABLE IF EXISTS {}", self.table))
                .await;
            let _ = tx.commit().await;
        }
    }
}

/// Moves the rows of `staging` (with `columns`) into `target` per `mode`, evolving the
/// target's columns; `staging` is gone afterwards. Shared by bronze loads and models.
/// Returns how many staged rows repeated a key of a merge or rebuild (the last one of each
/// key is kept; the others are not published).
pub(super) async fn publish_table(
    tx: &mut dyn Conn,
    staging: &Ident,
    target_name: &str,
    columns: &[Column],
    mode: &WriteMode,
) -> Result<u64, StoreError> {
    let target = ident(target_name)?;
    let dialect = tx.dialect();
    let keys = match mode {
        WriteMode::Merge(keys) | WriteMode::Rebuild(keys) => Some(keys),
        _ => None,
    };
    if let Some(missing) = keys
        .into_iter()
        .flatten()
        .find(|k| !columns.iter().any(|c| c.name == **k))
    {
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        return Err(StoreError::Unprocessable(format!(
            "the key column `{missing}` of `{target_name}` is not in its rows (columns: {})",
            names.join(", ")
        )));
    }
    let duplicates = match keys {
        Some(keys) => keep_last(tx, staging, keys).await?,
        None => 0,
    };
    let existing = tables::columns(tx, target_name).await?;
    if existing.is_some() && tables::is_view(tx, target_name).await? {
        tx.execute_script(&format!("DROP VIEW {target}"))
            .await
            .map_err(super::user_sql)?;
        rename(tx, staging, &target).await?;
        return Ok(duplicates);
    }
    let Some(existing) = existing else {
        // A new table: the staging table becomes it.
        rename(tx, staging, &target).await?;
        if let Some(keys) = keys {
            unique_index(tx, &target, target_name, keys).await?;
        }
        return Ok(duplicates);
    };
    if let WriteMode::Replace | WriteMode::Rebuild(_) = mode {
        replace(tx, staging, &target, target_name, columns, &existing).await?;
        if let Some(keys) = keys {
            unique_index(tx, &target, target_name, keys).await?;
        }
        return Ok(duplicates);
    }
    evolve(tx, &target, target_name, columns, &existing).await?;
    let names: Vec<String> = columns
        .iter()
        .map(|c| ident(&c.name).map(|i| i.to_string()))
        .collect::<Result<_, _>>()?;
    let list = names.join(", ");
    if let WriteMode::ReplaceRange { column, from, to } = mode {
        let ty = columns
            .iter()
            .find(|c| c.name == *column)
            .map_or(ColumnType::Text, |c| c.ty);
        let mut sql = crate::sql::Sql::new(dialect);
        sql.push("DELETE FROM ")
            .ident(&target)
            .push(" WHERE ")
            .ident(&ident(column)?);
        for (op, value) in [(" >= ", from), (" < ", to)] {
            if op == " < " {
                sql.push(" AND ").ident(&ident(column)?);
            }
            sql.push(op);
            match dialect {
                Dialect::Sqlite => {
                    sql.bind(value.clone());
                }
                Dialect::Postgres => {
                    sql.push("CAST(CAST(")
                        .bind(value.clone())
                        .push(" AS TEXT) AS ")
                        .push(ty.sql(dialect))
                        .push(")");
                }
            }
        }
        tx.execute(&sql).await.map_err(super::user_sql)?;
    }
    let sql = match mode {
        WriteMode::Merge(keys) => {
            unique_index(tx, &target, target_name, keys).await?;
            let key_list = key_list(keys)?;
            let updates: Vec<String> = names
                .iter()
                .filter(|n| !keys.iter().any(|k| format!("\"{k}\"") == **n))
                .map(|n| format!("{n} = excluded.{n}"))
                .collect();
            let action = if updates.is_empty() {
                "NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            };
            // `WHERE true` lets SQLite parse `ON CONFLICT` after a `SELECT`.
            format!(
                "INSERT INTO {target} ({list}) SELECT {list} FROM {staging} WHERE true \
                 ON CONFLICT ({key_list}) DO {action}"
            )
        }
        _ => format!("INSERT INTO {target} ({list}) SELECT {list} FROM {staging}"),
    };
    tx.execute_script(&sql).await.map_err(super::user_sql)?;
    tx.execute_script(&format!("DROP TABLE {staging}")).await?;
    Ok(duplicates)
}

fn key_list(keys: &[String]) -> Result<String, StoreError> {
    Ok(keys
        .iter()
        .map(|k| ident(k).map(|i| i.to_string()))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// Deletes all but the last staged row of each key (the order rows were staged in), so the
/// table gets one row per key; returns how many were deleted.
async fn keep_last(tx: &mut dyn Conn, staging: &Ident, keys: &[String]) -> Result<u64, StoreError> {
    let order = if tx.dialect() == Dialect::Sqlite {
        "rowid"
    } else {
        "ctid"
    };
    let key_list = key_list(keys)?;
    let mut sql = crate::sql::Sql::new(tx.dialect());
    sql.push(&format!(
        "DELETE FROM {staging} WHERE {order} IN (SELECT {order} FROM (SELECT {order}, \
         row_number() OVER (PARTITION BY {key_list} ORDER BY {order} DESC) AS _brigade_rank \
         FROM {staging}) s WHERE _brigade_rank > 1)"
    ));
    tx.execute(&sql).await.map_err(super::user_sql)
}

/// Adds columns the target lacks; refuses a column whose type changed.
async fn evolve(
    tx: &mut dyn Conn,
    target: &Ident,
    target_name: &str,
    columns: &[Column],
    existing: &[Column],
) -> Result<(), StoreError> {
    for column in columns {
        match existing.iter().find(|c| c.name == column.name) {
            Some(old) if compatible(old.ty, column.ty) => {}
            Some(old) => {
                return Err(StoreError::Unprocessable(format!(
                    "column `{}` of `{target_name}` is {} but the new data is {}; declare its type \
                     (columns = {{ {} = \"{}\" }}) or rebuild the table with --full-refresh",
                    column.name,
                    old.ty.name(),
                    column.ty.name(),
                    column.name,
                    old.ty.name(),
                )));
            }
            None => {
                let name = ident(&column.name)?;
                tx.execute_script(&format!(
                    "ALTER TABLE {target} ADD COLUMN {name} {}",
                    column.ty.sql(tx.dialect())
                ))
                .await?;
                tracing::info!(table = target_name, column = %column.name, "Added a new source column.");
            }
        }
    }
    Ok(())
}

/// Whether values of type `new` fit a column of type `old` without loss.
fn compatible(old: ColumnType, new: ColumnType) -> bool {
    old == new
        || old == ColumnType::Text
        || (old == ColumnType::Number && new == ColumnType::Integer)
        || (old == ColumnType::Json)
}

/// Replaces the target's rows. A plain drop + rename is cheapest; when other objects (views
/// of downstream models) depend on the target, PostgreSQL refuses the drop, and the rows are
/// swapped inside the existing table instead.
async fn replace(
    tx: &mut dyn Conn,
    staging: &Ident,
    target: &Ident,
    target_name: &str,
    columns: &[Column],
    existing: &[Column],
) -> Result<(), StoreError> {
    match tx.dialect() {
        Dialect::Sqlite => {
            // Views over the target are resolved by name when used; the legacy flag stops
            // the rename from checking them while the target is briefly missing.
            tx.execute_script(&format!(
                "PRAGMA legacy_alter_table = ON; DROP TABLE {target}; \
                 ALTER TABLE {staging} RENAME TO {target}; PRAGMA legacy_alter_table = OFF;"
            ))
            .await
        }
        Dialect::Postgres => {
            tx.execute_script("SAVEPOINT brigade_replace").await?;
            match tx.execute_script(&format!("DROP TABLE {target}")).await {
                Ok(()) => {
                    tx.execute_script("RELEASE SAVEPOINT brigade_replace")
                        .await?;
                    rename(tx, staging, target).await
                }
                Err(_) => {
                    tx.execute_script("ROLLBACK TO SAVEPOINT brigade_replace")
                        .await?;
                    let same = existing.len() == columns.len()
                        && existing.iter().zip(columns).all(|(a, b)| a.name == b.name);
                    if same {
                        tx.execute_script(&format!(
                            "TRUNCATE {target}; INSERT INTO {target} SELECT * FROM {staging}; DROP TABLE {staging}"
                        ))
                        .await
                        .map_err(super::user_sql)
                    } else {
                        tracing::warn!(
                            table = target_name,
                            "Columns changed: dropping dependent views; their models rebuild them."
                        );
                        tx.execute_script(&format!("DROP TABLE {target} CASCADE"))
                            .await?;
                        rename(tx, staging, target).await
                    }
                }
            }
        }
    }
}

async fn rename(tx: &mut dyn Conn, staging: &Ident, target: &Ident) -> Result<(), StoreError> {
    // Staging tables of appends and merges are UNLOGGED (their rows are copied on); one that
    // becomes the table itself must be made durable.
    let logged = if tx.dialect() == Dialect::Postgres && is_unlogged(tx, staging).await? {
        format!("; ALTER TABLE {target} SET LOGGED")
    } else {
        String::new()
    };
    tx.execute_script(&format!("ALTER TABLE {staging} RENAME TO {target}{logged}"))
        .await
}

async fn is_unlogged(tx: &mut dyn Conn, table: &Ident) -> Result<bool, StoreError> {
    let mut sql = crate::sql::Sql::new(tx.dialect());
    sql.push("SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass(")
        .bind(Value::Text(table.to_string()))
        .push(")");
    let rows = tx.query(&sql, &[crate::conn::ColType::Text]).await?;
    Ok(matches!(rows.first().and_then(|r| r.first()), Some(Value::Text(p)) if p == "u"))
}

async fn unique_index(
    tx: &mut dyn Conn,
    target: &Ident,
    target_name: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    let index = ident(
        &format!("{target_name}__key")
            .chars()
            .take(63)
            .collect::<String>(),
    )?;
    let list = keys
        .iter()
        .map(|k| ident(k).map(|i| i.to_string()))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    tx.execute_script(&format!("CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {target} ({list})"))
        .await
        .map_err(|e| match e {
            StoreError::Internal { message: m, .. } | StoreError::Unprocessable(m) => StoreError::Unprocessable(format!(
                "cannot key `{target_name}` on ({}): {m}; the rows already there repeat the key — rebuild with --full-refresh",
                keys.join(", ")
            )),
            other => other,
        })
}
