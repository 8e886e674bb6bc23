//! Schema migrations of an app: JSON files in `DIR/migrations/`, applied in file-name order,
//! each in one transaction together with its row in `_migrations`.
//!
//! Every schema change made over the API is written as such a file before it is applied, so
//! the directory (committed to git) rebuilds the same schema on a fresh SQLite or
//! PostgreSQL database with `brigade migrate up`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use brigade_core::schema::Collection;
use brigade_core::schema::definition::{MigrationFile, Operation};
use brigade_core::value::Value;

use crate::conn::{ColType, Conn};
use crate::ddl;
use crate::error::StoreError;
use crate::sql::{Dialect, Sql};

/// Status of one migration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationStatus {
    pub name: String,
    /// When it was applied, if it was.
    pub applied: Option<String>,
    /// Whether the file exists (an applied migration whose file was deleted shows `false`).
    pub file_present: bool,
    /// The file was edited after it was applied: the edit has not reached the database.
    pub changed_since_applied: bool,
}

/// A migration file as read: its operations and the SHA-256 of its bytes.
#[derive(Debug, Clone)]
pub struct ReadMigration {
    pub file: MigrationFile,
    /// Lowercase hex SHA-256 of the file's bytes, recorded when it is applied.
    pub checksum: String,
}

/// An applied migration as `_migrations` records it.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) name: String,
    pub(crate) at: String,
    /// `None` for migrations applied before checksums were recorded.
    pub(crate) checksum: Option<String>,
}

/// The migration files in `dir`, sorted.
///
/// # Errors
/// [`StoreError::Migration`] when the directory cannot be read.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(StoreError::Migration {
                file: dir.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The migration name of a file: its stem.
pub fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads and parses a migration file; errors name the file, line and column. A file whose
/// operations do nothing (no operations, or `sql` operations with no SQL — what
/// `brigade migrate new` writes) is refused: applying it would mark it applied and silently
/// ignore the SQL written into it later.
///
/// # Errors
/// [`StoreError::Migration`].
pub fn read_file(path: &Path) -> Result<ReadMigration, StoreError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::Migration {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let parsed: MigrationFile = serde_json::from_str(&text).map_err(|e| StoreError::Migration {
        file: file.clone(),
        message: format!("line {}, column {}: {e}", e.line(), e.column()),
    })?;
    if parsed.operations.is_empty() || parsed.operations.iter().all(is_empty_sql) {
        return Err(StoreError::Migration {
            file,
            message: "the migration is empty: write its SQL into `sql` (both databases) or \
                      `sqlite`/`postgres`, or delete the file"
                .into(),
        });
    }
    Ok(ReadMigration {
        file: parsed,
        checksum: checksum(text.as_bytes()),
    })
}

fn is_empty_sql(op: &Operation) -> bool {
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    matches!(op, Operation::Sql { sql, sqlite, postgres } if blank(sql) && blank(sqlite) && blank(postgres))
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn checksum(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The applied migrations, by name.
pub(crate) async fn applied(conn: &mut dyn Conn) -> Result<Vec<Applied>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT name, applied, checksum FROM _migrations ORDER BY name");
    let rows = conn
        .query(&sql, &[ColType::Text, ColType::Text, ColType::Text])
        .await?;
    rows.into_iter()
        .map(|r| match (r.first(), r.get(1), r.get(2)) {
            (Some(Value::Text(n)), Some(Value::Text(a)), c) => Ok(Applied {
                name: n.clone(),
                at: a.clone(),
                checksum: match c {
                    Some(Value::Text(c)) => Some(c.clone()),
                    _ => None,
                },
            }),
            _ => Err(StoreError::internal(format!(
                "malformed row in _migrations: {r:?}"
            ))),
        })
        .collect()
}

/// All collection definitions stored in the database.
pub(crate) async fn load_collections(conn: &mut dyn Conn) -> Result<Vec<Collection>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT definition FROM _collections ORDER BY name");
    let rows = conn.query(&sql, &[ColType::Text]).await?;
    rows.into_iter()
        .map(|r| match r.first() {
            Some(Value::Text(def)) => serde_json::from_str(def)
                .map_err(|e| StoreError::internal_from("corrupt collection definition", e)),
            _ => Err(StoreError::internal("collection definition missing")),
        })
        .collect()
}

/// The stored definition of collection `name`, read in `conn`'s transaction: what another
/// process created is seen even before this one's schema cache learns of it.
pub(crate) async fn load_collection(
    conn: &mut dyn Conn,
    name: &str,
) -> Result<Option<Collection>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT definition FROM _collections WHERE name = ")
        .bind(Value::Text(name.to_string()));
    match conn
        .query(&sql, &[ColType::Text])
        .await?
        .first()
        .and_then(|r| r.first())
    {
        Some(Value::Text(def)) => serde_json::from_str(def)
            .map(Some)
            .map_err(|e| StoreError::internal_from("corrupt collection definition", e)),
        Some(_) => Err(StoreError::internal("collection definition missing")),
        None => Ok(None),
    }
}

pub(crate) async fn save_definition(
    conn: &mut dyn Conn,
    c: &Collection,
    insert: bool,
) -> Result<(), StoreError> {
    let def = serde_json::to_string(c)
        .map_err(|e| StoreError::internal_from("serializing a collection definition", e))?;
    let mut sql = Sql::new(conn.dialect());
    if insert {
        sql.push("INSERT INTO _collections (name, definition) VALUES (")
            .bind(Value::Text(c.name.clone()))
            .push(", ")
            .bind(Value::Text(def))
            .push(")");
    } else {
        sql.push("UPDATE _collections SET definition = ")
            .bind(Value::Text(def))
            .push(" WHERE name = ")
            .bind(Value::Text(c.name.clone()));
    }
    conn.execute(&sql).await?;
    bump_schema_version(conn).await
}

/// The `NOTIFY` channel servers listen on for schema changes (PostgreSQL).
pub const SCHEMA_CHANNEL: &str = "brigade_schema";

/// Counts a change of `_collections` inside the caller's transaction, so other servers see
/// one number move (and, on PostgreSQL, are notified at commit).
pub(crate) async fn bump_schema_version(conn: &mut dyn Conn) -> Result<(), StoreError> {
    conn.execute_script("UPDATE _schema_version SET version = version + 1")
        .await?;
    if conn.dialect() == crate::sql::Dialect::Postgres {
        conn.execute_script(&format!("NOTIFY {SCHEMA_CHANNEL}"))
            .await?;
    }
    Ok(())
}

/// The schema version: changes whenever `_collections` does.
pub(crate) async fn schema_version(conn: &mut dyn Conn) -> Result<i64, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT version FROM _schema_version");
    match conn
        .query(&sql, &[crate::conn::ColType::Int])
        .await?
        .first()
        .map(|r| &r[..])
    {
        Some([Value::Int(v)]) => Ok(*v),
        _ => Err(StoreError::internal("the schema version row is missing")),
    }
}

/// Applies one operation inside the caller's transaction.
pub(crate) async fn apply_operation(conn: &mut dyn Conn, op: &Operation) -> Result<(), StoreError> {
    let dialect = conn.dialect();
    let existing = load_collections(conn).await?;
    let find = |name: &str| existing.iter().find(|c| c.name.eq_ignore_ascii_case(name));
    match op {
        Operation::CreateCollection { collection } => {
            if find(&collection.name).is_some() {
                return Err(StoreError::conflict(
                    "name",
                    format!("a collection named `{}` already exists", collection.name),
                ));
            }
            if let Some((pipeline, node)) =
                crate::warehouse::ownership::pipeline_owner(conn, &collection.name).await?
            {
                return Err(StoreError::conflict(
                    "name",
                    format!(
                        "table `{}` belongs to pipeline `{pipeline}` (node {node}); choose another collection name",
                        collection.name
                    ),
                ));
            }
            for stmt in ddl::create_collection(dialect, collection)? {
                conn.execute_script(&stmt).await?;
            }
            save_definition(conn, collection, true).await
        }
        Operation::UpdateCollection { collection } => {
            let old = find(&collection.name)
                .filter(|c| c.id == collection.id)
                .ok_or_else(|| StoreError::CollectionNotFound(collection.name.clone()))?;
            let (statements, added) = ddl::alter_collection(dialect, old, collection)?;
            for stmt in statements {
                conn.execute_script(&stmt)
                    .await
                    .map_err(|e| schema_conflict(e, &collection.name))?;
            }
            for field in added {
                let Some(default) = &field.default else {
                    continue;
                };
                let value =
                    brigade_core::schema::input::coerce(&field, default).unwrap_or(Value::Null);
                let mut sql = Sql::new(dialect);
                sql.push(&format!(
                    "UPDATE {} SET {} = ",
                    ddl::table(collection)?,
                    ddl::ident(&field.name)?
                ))
                .bind(value);
                conn.execute(&sql).await?;
            }
            save_definition(conn, collection, false).await
        }
        Operation::DeleteCollection { name } => {
            let c = find(name).ok_or_else(|| StoreError::CollectionNotFound(name.clone()))?;
            if let Some((other, field)) =
                existing.iter().filter(|o| o.name != c.name).find_map(|o| {
                    o.fields
                        .iter()
                        .find(|f| {
                            f.options
                                .collection
                                .as_deref()
                                .is_some_and(|t| t.eq_ignore_ascii_case(&c.name))
                        })
                        .map(|f| (o.name.clone(), f.name.clone()))
                })
            {
                return Err(StoreError::Conflict {
                    message: format!(
                        "collection `{}` is referenced by `{other}.{field}`; remove that field first",
                        c.name
                    ),
                    errors: Default::default(),
                });
            }
            for stmt in ddl::drop_collection(c)? {
                conn.execute_script(&stmt).await?;
            }
            let mut sql = Sql::new(dialect);
            sql.push("DELETE FROM _collections WHERE name = ")
                .bind(Value::Text(c.name.clone()));
            conn.execute(&sql).await?;
            bump_schema_version(conn).await
        }
        Operation::Sql {
            sql,
            sqlite,
            postgres,
        } => {
            let script = match dialect {
                Dialect::Sqlite => sqlite.as_ref().or(sql.as_ref()),
                Dialect::Postgres => postgres.as_ref().or(sql.as_ref()),
            };
            if let Some(script) = script {
                conn.execute_script(script).await?;
            }
            Ok(())
        }
    }
}

fn schema_conflict(e: StoreError, collection: &str) -> StoreError {
    match e {
        StoreError::Conflict { errors, .. } => StoreError::Conflict {
            message: format!(
                "existing records of `{collection}` conflict with the new schema (duplicate values for a unique field?)"
            ),
            errors,
        },
        StoreError::Internal { message: m, .. } => {
            StoreError::Unprocessable(format!("the database refused the schema change: {m}"))
        }
        other => other,
    }
}

/// Records a migration as applied, with the checksum of the file as applied.
pub(crate) async fn mark_applied(
    conn: &mut dyn Conn,
    name: &str,
    checksum: &str,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("INSERT INTO _migrations (name, applied, checksum) VALUES (")
        .bind(Value::Text(name.into()))
        .push(", ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(", ")
        .bind(Value::Text(checksum.into()))
        .push(")");
    conn.execute(&sql).await?;
    Ok(())
}

/// Writes a migration file atomically (temp file + rename) and returns its path and the
/// checksum of what was written.
pub(crate) fn write_file(
    dir: &Path,
    slug: &str,
    file: &MigrationFile,
) -> Result<(PathBuf, String), StoreError> {
    let io = |e: std::io::Error| {
        StoreError::internal_from(format!("writing migration in {}", dir.display()), e)
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S%3f");
    let mut path = dir.join(format!("{stamp}_{slug}.json"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{stamp}_{slug}_{n}.json"));
        n += 1;
    }
    let text = serde_json::to_string_pretty(file)
        .map_err(|e| StoreError::internal_from("serializing a migration", e))?;
    let text = text + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &text).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok((path, checksum(text.as_bytes())))
}

/// Shared handle type for the collection cache.
pub(crate) type Schema = Arc<Vec<Arc<Collection>>>;
