//! Reading another database: the `sql` extractor's source. SQL stays in the store, so the
//! pipelines hand over a query and get pages of JSON rows back.
//!
//! The query runs once, in one read-only transaction (one snapshot even while the source is
//! written to), and its rows are read in pages of [`PAGE_ROWS`]: on PostgreSQL through a
//! server-side cursor (`DECLARE … NO SCROLL CURSOR`, then `FETCH`), on SQLite by stepping the
//! statement on a read-only connection of its own. Neither re-runs the query per page, so a
//! large table costs one scan and no more memory than a small one. An incremental read pushes
//! its cursor bounds into the query (`WHERE "cursor" >= $1 ORDER BY "cursor"`); on PostgreSQL
//! the bound is cast to the column's type, learned by preparing the query, not by running it.

use std::path::{Path, PathBuf};

use brigade_core::value::Value;
use tokio::sync::mpsc;

use crate::conn::{ColType, Conn, Database, JsonRow};
use crate::error::StoreError;
use crate::postgres::PostgresDatabase;
use crate::sql::{Dialect, Ident, Sql};

/// Rows per page.
pub const PAGE_ROWS: usize = 5000;

/// One side of an incremental read's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `column >= value`
    AtLeast,
    /// `column < value`
    Below,
}

/// The rows of an incremental read: `column` within `bounds`, in `column` order.
#[derive(Debug, Clone)]
pub struct CursorRange {
    pub column: String,
    pub bounds: Vec<(Bound, serde_json::Value)>,
}

/// Why a source cannot be read as asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The cursor is not a plain column name.
    #[error(
        "the incremental cursor `{0}` must be a plain column name (letters, digits and _) of the query's result"
    )]
    CursorName(String),
    /// The cursor's column type cannot be compared.
    #[error(
        "the incremental cursor `{column}` has type `{ty}`, which cannot be compared; use a number, text or timestamp column"
    )]
    CursorType { column: String, ty: String },
    /// The database refused the query or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A database to read from.
pub struct SourceDatabase {
    inner: Inner,
}

enum Inner {
    Sqlite(PathBuf),
    Postgres(Box<PostgresDatabase>),
}

impl SourceDatabase {
    /// The SQLite file at `path` (opened read-only when read; it must exist).
    pub fn sqlite(path: &Path) -> Self {
        SourceDatabase {
            inner: Inner::Sqlite(path.to_path_buf()),
        }
    }

    /// The PostgreSQL database at `url`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it cannot be reached.
    pub async fn postgres(url: &str) -> Result<Self, StoreError> {
        Ok(SourceDatabase {
            inner: Inner::Postgres(Box::new(PostgresDatabase::connect(url, 1).await?)),
        })
    }

    /// Starts reading `query` (one `SELECT`, without a trailing `;`), within `cursor` when
    /// given.
    ///
    /// # Errors
    /// A bad cursor, a query the database refuses, or a database out of reach.
    pub async fn read(
        &self,
        query: &str,
        cursor: Option<&CursorRange>,
    ) -> Result<Pages, SourceError> {
        let cursor = match cursor {
            Some(c) => Some((
                Ident::parse(&c.column).map_err(|_| SourceError::CursorName(c.column.clone()))?,
                c,
            )),
            None => None,
        };
        match &self.inner {
            Inner::Sqlite(path) => {
                let sql = wrapped(Dialect::Sqlite, query, cursor, None);
                let (tx, rx) = mpsc::channel(2);
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    crate::sqlite::stream_file(&path, &sql, PAGE_ROWS, &tx);
                });
                Ok(Pages {
                    inner: PagesInner::Sqlite(rx),
                })
            }
            Inner::Postgres(db) => {
                let mut conn = db.begin().await?;
                conn.execute_script("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?;
                let cast = match cursor {
                    Some((ref column, _)) => Some(column_type(conn.as_mut(), query, column).await?),
                    None => None,
                };
                let select = wrapped(Dialect::Postgres, query, cursor, cast.as_deref());
                // Each row as one JSON text: FETCH cannot be wrapped in a SELECT afterwards.
                let mut declare = Sql::new(Dialect::Postgres);
                declare
                    .push("DECLARE brigade_source NO SCROLL CURSOR FOR SELECT row_to_json(r)::text FROM (")
                    .append(select)
                    .push(") r");
                conn.execute(&declare).await?;
                Ok(Pages {
                    inner: PagesInner::Postgres { conn, done: false },
                })
            }
        }
    }

    /// Closes the connections.
    pub async fn close(self) {
        if let Inner::Postgres(db) = self.inner {
            db.close().await;
        }
    }
}

/// The pages of one read, in order.
pub struct Pages {
    inner: PagesInner,
}

enum PagesInner {
    Sqlite(mpsc::Receiver<Result<Vec<JsonRow>, StoreError>>),
    Postgres { conn: Box<dyn Conn>, done: bool },
}

impl Pages {
    /// The next page; `None` after the last. A page may be shorter than [`PAGE_ROWS`] only at
    /// the end.
    ///
    /// # Errors
    /// The database failed while reading.
    pub async fn next(&mut self) -> Result<Option<Vec<JsonRow>>, StoreError> {
        match &mut self.inner {
            PagesInner::Sqlite(rx) => rx.recv().await.transpose(),
            PagesInner::Postgres { conn, done } => {
                if *done {
                    return Ok(None);
                }
                let mut fetch = Sql::new(Dialect::Postgres);
                fetch.push(&format!("FETCH FORWARD {PAGE_ROWS} FROM brigade_source"));
                let rows = conn.query(&fetch, &[ColType::Text]).await?;
                *done = rows.len() < PAGE_ROWS;
                rows.into_iter()
                    .map(|row| match row.first() {
                        Some(Value::Text(text)) => serde_json::from_str(text).map_err(|e| {
                            StoreError::internal_from("row_to_json returned bad JSON", e)
                        }),
                        _ => Err(StoreError::internal("FETCH returned no row text")),
                    })
                    .collect::<Result<Vec<JsonRow>, _>>()
                    .map(Some)
            }
        }
    }
}

/// `SELECT * FROM (query) q`, within the cursor's bounds and in its order.
fn wrapped(
    dialect: Dialect,
    query: &str,
    cursor: Option<(Ident, &CursorRange)>,
    cast: Option<&str>,
) -> Sql {
    let mut sql = Sql::new(dialect);
    // Newlines keep a trailing `-- comment` of the query from swallowing the wrapper.
    sql.push("SELECT * FROM (\n").push(query).push("\n) q");
    if let Some((column, range)) = cursor {
        for (i, (bound, value)) in range.bounds.iter().enumerate() {
            sql.push(if i == 0 { " WHERE " } else { " AND " })
                .ident(&column)
                .push(match bound {
                    Bound::AtLeast => " >= ",
                    Bound::Below => " < ",
                });
            match cast {
                Some(ty) => {
                    sql.push("CAST(CAST(")
                        .bind(value_of(value))
                        .push(" AS text) AS ")
                        .push(ty)
                        .push(")");
                }
                None => {
                    sql.bind(value_of(value));
                }
            }
        }
        sql.push(" ORDER BY ").ident(&column);
    }
    sql
}

/// The PostgreSQL type of `column` in the query's result, from preparing it.
async fn column_type(
    conn: &mut dyn Conn,
    query: &str,
    column: &Ident,
) -> Result<String, SourceError> {
    let mut probe = Sql::new(Dialect::Postgres);
    probe.push("SELECT * FROM (\n").push(query).push("\n) q");
    let columns = conn.describe(&probe).await?;
    let ty = columns
        .into_iter()
        .find(|(name, _)| name == column.as_str())
        .map(|(_, ty)| ty)
        .ok_or_else(|| {
            StoreError::Unprocessable(format!(
                "the incremental cursor `{}` is not a column of the query's result",
                column.as_str()
            ))
        })?;
    if is_comparable(&ty) {
        Ok(ty)
    } else {
        Err(SourceError::CursorType {
            column: column.as_str().to_string(),
            ty,
        })
    }
}

/// Whether a PostgreSQL type name is one a cursor can be compared in (and safe to write into
/// a cast: the driver's names are plain identifiers).
fn is_comparable(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            name,
            "json" | "jsonb" | "xml" | "point" | "box" | "polygon" | "bytea"
        )
}

/// A cursor value as a value to bind.
fn value_of(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Null, Value::Float),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn source(rows: i64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("src.db")).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, updated TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO t SELECT i, printf('2024-01-%02d', 1 + i % 28) FROM n;"
        ))
        .unwrap();
        dir
    }

    async fn all(pages: &mut Pages) -> Vec<Vec<JsonRow>> {
        let mut out = Vec::new();
        while let Some(page) = pages.next().await.unwrap() {
            out.push(page);
        }
        out
    }

    #[tokio::test]
    async fn a_sqlite_source_is_read_once_in_full_pages() {
        let dir = source(12_345);
        let db = SourceDatabase::sqlite(&dir.path().join("src.db"));
        let mut pages = db.read("SELECT id FROM t ORDER BY id", None).await.unwrap();
        let got = all(&mut pages).await;
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes, [5000, 5000, 2345]);
        assert_eq!(got[2].last().unwrap()["id"], 12_345);
    }

    #[tokio::test]
    async fn a_cursor_range_is_pushed_into_the_query() {
        let dir = source(100);
        let db = SourceDatabase::sqlite(&dir.path().join("src.db"));
        let range = CursorRange {
            column: "updated".into(),
            bounds: vec![
                (Bound::AtLeast, json!("2024-01-27")),
                (Bound::Below, json!("2024-01-28")),
            ],
        };
        let mut pages = db.read("SELECT * FROM t", Some(&range)).await.unwrap();
        let rows: Vec<JsonRow> = all(&mut pages).await.concat();
        assert!(!rows.is_empty());
        assert!(
            rows.iter().all(|r| r["updated"] == "2024-01-27"),
            "{rows:?}"
        );
        let bad = CursorRange {
            column: "a; DROP".into(),
            bounds: vec![],
        };
        assert!(matches!(
            db.read("SELECT * FROM t", Some(&bad)).await,
            Err(SourceError::CursorName(_))
        ));
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.db");
        let db = SourceDatabase::sqlite(&path);
        let mut pages = db.read("SELECT 1", None).await.unwrap();
        assert!(pages.next().await.is_err());
        assert!(!path.exists());
    }
}
