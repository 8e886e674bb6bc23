//! A query against another database (`sqlite://PATH` or `postgres://...`), its rows fed
//! through the [`Shaper`] like JSON records. The result is read in pages of [`PAGE_ROWS`]
//! (`SELECT * FROM (<query>) q LIMIT n OFFSET m`) so a large table costs no more memory
//! than a small one; the pages are read inside one read-only transaction, so they come from
//! one snapshot even while the source is written to. For a stable order between pages the
//! query should end with an `ORDER BY` on a unique key. An incremental extract with a
//! previous cursor asks the source only for rows from it on (`WHERE "<cursor>" >= $1 ORDER
//! BY "<cursor>"`; those the last load took at that value are dropped again), so the cursor must be a column of the query's result, named as the query
//! names it.

use std::path::{Path, PathBuf};

use brigade_core::value::Value;
use brigade_store::conn::{Conn, Database};
use brigade_store::sql::{Dialect, Ident, Sql};
use brigade_store::{PostgresDatabase, SqliteDatabase, StoreError};
use reqwest::Url;

use super::http::{extract_error, send_all};
use super::shape::Shaper;
use super::{Batcher, Context, Message, Sender};
use crate::error::PipelineError;

/// Rows per query page.
pub const PAGE_ROWS: usize = 5000;

/// Runs the extract's query and sends its rows.
///
/// # Errors
/// A connection that is not `sqlite://` or `postgres://`, a SQLite file that does not
/// exist, an unreachable server (marked transient), a failing query, or a bad row under
/// `on_bad_row = "fail"`.
pub async fn run(cx: &Context, tx: &Sender) -> Result<(), PipelineError> {
    let connection = cx.expand(cx.spec.connection.as_deref().unwrap_or_default())?;
    let source = without_password(&connection);
    let query = user_query(cx)?;
    let db = open(cx, &connection, &source).await?;
    let result = extract(cx, tx, db.as_ref(), &query, &source).await;
    db.close().await;
    result
}

/// Opens the source database.
async fn open(
    cx: &Context,
    connection: &str,
    source: &str,
) -> Result<Box<dyn Database>, PipelineError> {
    if let Some(rest) = connection.strip_prefix("sqlite://") {
        let path = sqlite_path(&cx.dir, rest);
        if rest.split('?').next().unwrap_or_default().is_empty() {
            return Err(extract_error(
                cx,
                "`connection` names no SQLite file; write sqlite://PATH (relative to the app directory) or sqlite:///ABSOLUTE/PATH",
            ));
        }
        if !path.is_file() {
            return Err(extract_error(
                cx,
                &format!(
                    "the SQLite database {} does not exist; check `connection` (a relative path is relative to the app directory {})",
                    path.display(),
                    cx.dir.display()
                ),
            ));
        }
        let db = SqliteDatabase::open(&path, 1)
            .map_err(|e| extract_error(cx, &format!("cannot open {}: {e}", path.display())))?;
        Ok(Box::new(db))
    } else if connection.starts_with("postgres://") || connection.starts_with("postgresql://") {
        let db = PostgresDatabase::connect(connection, 2)
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(m) => PipelineError::Transient(format!(
                    "extract `{}`: cannot connect to {source}: {m}",
                    cx.spec.name
                )),
                other => extract_error(cx, &format!("cannot connect to {source}: {other}")),
            })?;
        Ok(Box::new(db))
    } else {
        Err(extract_error(
            cx,
            "`connection` must start with sqlite:// or postgres:// (after ${VAR} expansion)",
        ))
    }
}

/// The file of a `sqlite://` connection: `sqlite:///abs` is absolute, anything else is
/// relative to the app directory; a `?query` is ignored.
fn sqlite_path(dir: &Path, rest: &str) -> PathBuf {
    let path = rest.split('?').next().unwrap_or_default();
    if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        dir.join(path)
    }
}

/// The query without trailing semicolons and comments, ready to be wrapped in a subquery.
fn user_query(cx: &Context) -> Result<String, PipelineError> {
    let text = cx.spec.query.as_deref().unwrap_or_default();
    let query = &text[..significant_end(text)];
    if query.trim().is_empty() {
        return Err(extract_error(
            cx,
            "`query` is empty; write the SELECT whose rows to load",
        ));
    }
    Ok(query.trim_start().to_string())
}

/// Where the last SQL token of `text` ends, past quoted text and ignoring comments,
/// whitespace and semicolons.
fn significant_end(text: &str) -> usize {
    let mut end = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                end = text.len();
                for (j, d) in chars.by_ref() {
                    if d == c {
                        end = j + 1;
                        break;
                    }
                }
            }
            '-' if chars.peek().is_some_and(|(_, d)| *d == '-') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, d)| *d == '*') => {
                chars.next();
                let mut star = false;
                for (_, d) in chars.by_ref() {
                    if star && d == '/' {
                        break;
                    }
                    star = d == '*';
                }
            }
            ';' => {}
            c if c.is_whitespace() => {}
            c => end = i + c.len_utf8(),
        }
    }
    end
}

/// Reads the query page by page inside one read-only transaction.
async fn extract(
    cx: &Context,
    tx: &Sender,
    db: &dyn Database,
    query: &str,
    source: &str,
) -> Result<(), PipelineError> {
    let dialect = db.dialect();
    let mut conn = db.read().await.map_err(|e| store_error(cx, source, &e))?;
    let begin = match dialect {
        Dialect::Sqlite => "BEGIN",
        Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    };
    conn.execute_script(begin)
        .await
        .map_err(|e| store_error(cx, source, &e))?;
    let result = pages(cx, tx, conn.as_mut(), dialect, query, source).await;
    // A read-only transaction: ending it commits nothing; a failure here changes nothing.
    let _ = conn.execute_script("COMMIT").await;
    result
}

async fn pages(
    cx: &Context,
    tx: &Sender,
    conn: &mut dyn Conn,
    dialect: Dialect,
    query: &str,
    source: &str,
) -> Result<(), PipelineError> {
    let cursor = cx
        .spec
        .incremental
        .as_ref()
        .map(|i| (i.cursor.clone(), cx.since.clone()));
    let mut shaper = Shaper::new(cx.overrides(), cursor).known(cx.existing.as_deref());
    let mut batcher = Batcher::for_context(cx);
    // Past the cursor, or within a backfill's range: pushed into the query.
    let bounds: Vec<(&'static str, Value)> = match (&cx.range, &cx.since) {
        (Some((from, to)), _) => vec![(" >= ", value_of(from)), (" < ", value_of(to))],
        // `>=`: rows at the last cursor value that came late load too; the cursor filter
        // drops the ones the last load took (see `extract::cursor`).
        (None, Some(since)) if !since.is_null() => vec![(" >= ", value_of(since))],
        _ => Vec::new(),
    };
    let filter = match &cx.spec.incremental {
        Some(inc) if !bounds.is_empty() => {
            let column = Ident::parse(&inc.cursor).map_err(|name| {
                extract_error(
                    cx,
                    &format!("the incremental cursor `{name}` must be a plain column name (letters, digits and _) of the query's result"),
                )
            })?;
            Some((column, bounds))
        }
        _ => None,
    };
    // PostgreSQL types the bound cursor from the column; it is bound as text and cast to
    // the column's type, which is asked first (no row: nothing to read).
    let mut cast = None;
    let mut more = true;
    if let (Dialect::Postgres, Some((column, _))) = (dialect, &filter) {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT pg_typeof(q.")
            .ident(column)
            .push(")::text AS t FROM (\n")
            .push(query)
            .push("\n) q LIMIT 1");
        let rows = conn
            .query_json(&sql)
            .await
            .map_err(|e| query_error(cx, source, &e))?;
        match rows
            .first()
            .and_then(|r| r.get("t"))
            .and_then(|t| t.as_str())
        {
            Some(ty) if is_type_name(ty) => cast = Some(ty.to_string()),
            Some(ty) => {
                return Err(extract_error(
                    cx,
                    &format!(
                        "the incremental cursor `{}` has type `{ty}`, which cannot be compared; use a number, text or timestamp column",
                        column.as_str()
                    ),
                ));
            }
            None => more = false,
        }
    }
    let mut offset: usize = 0;
    let mut record_no: u64 = 0;
    while more {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let sql = page_sql(dialect, query, filter.as_ref(), cast.as_deref(), offset);
        let rows = conn
            .query_json(&sql)
            .await
            .map_err(|e| query_error(cx, source, &e))?;
        let count = rows.len();
        let mut out = Vec::new();
        for row in rows {
            record_no += 1;
            shaper.push(source, record_no, row, &mut batcher, &mut out)?;
            if batcher.full() {
                out.extend(batcher.drain(source));
            }
        }
        send_all(tx, out).await?;
        tracing::debug!(extract = %cx.spec.name, offset, rows = count, "Read a page of the query.");
        more = count == PAGE_ROWS;
        offset += PAGE_ROWS;
    }
    let mut out = Vec::new();
    if record_no == 0 {
        batcher
            .notes
            .push(format!("0 rows: the query on {source} returned no rows"));
        // No rows: no columns. (The Shaper would look for the incremental cursor among
        // them and fail, yet nothing new is the usual incremental outcome.)
        out.push(Message::Columns(Vec::new()));
    } else {
        shaper.finish(&mut batcher, &mut out)?;
    }
    out.extend(batcher.drain(source));
    out.push(batcher.done());
    send_all(tx, out).await
}

/// One page of the query, past the cursor when there is one.
fn page_sql(
    dialect: Dialect,
    query: &str,
    filter: Option<&(Ident, Vec<(&'static str, Value)>)>,
    cast: Option<&str>,
    offset: usize,
) -> Sql {
    let mut sql = Sql::new(dialect);
    // Newlines keep a trailing `-- comment` of the query from swallowing the wrapper.
    sql.push("SELECT * FROM (\n").push(query).push("\n) q");
    if let Some((column, bounds)) = filter {
        for (i, (op, value)) in bounds.iter().enumerate() {
            sql.push(if i == 0 { " WHERE " } else { " AND " })
                .ident(column)
                .push(op);
            match cast {
                Some(ty) => {
                    sql.push("CAST(CAST(")
                        .bind(value.clone())
                        .push(" AS text) AS ")
                        .push(ty)
                        .push(")");
                }
                None => {
                    sql.bind(value.clone());
                }
            }
        }
        sql.push(" ORDER BY ").ident(column);
    }
    sql.push(&format!(" LIMIT {PAGE_ROWS} OFFSET {offset}"));
    sql
}

/// Whether a type name from `pg_typeof` is safe to write into a cast.
fn is_type_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _,.()[]\"".contains(c))
        && !matches!(name, "json" | "xml" | "point" | "box" | "polygon")
}

/// The last cursor as a value to bind.
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

fn store_error(cx: &Context, source: &str, e: &StoreError) -> PipelineError {
    match e {
        StoreError::Unavailable(m) => PipelineError::Transient(format!(
            "extract `{}`: {source} is unavailable: {m}",
            cx.spec.name
        )),
        other => extract_error(cx, &format!("{source}: {other}")),
    }
}

fn query_error(cx: &Context, source: &str, e: &StoreError) -> PipelineError {
    match e {
        StoreError::Unavailable(_) => store_error(cx, source, e),
        other => extract_error(
            cx,
            &format!(
                "the query failed on {source}: {other}; check `query` (it must be one SELECT)"
            ),
        ),
    }
}

/// The connection as lineage: without its password (`postgres://user@host/db`).
fn without_password(connection: &str) -> String {
    if connection.starts_with("sqlite://") {
        return connection.to_string();
    }
    if let Ok(mut url) = Url::parse(connection) {
        if url.password().is_some() {
            let _ = url.set_password(None);
        }
        if url
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("password"))
        {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("password"))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.set_query(None);
            if !kept.is_empty() {
                url.query_pairs_mut().extend_pairs(kept);
            }
        }
        return url.to_string();
    }
    // Not a URL we can parse: drop everything between `user:` and `@`.
    let Some(scheme_end) = connection.find("://").map(|i| i + 3) else {
        return "(connection)".into();
    };
    let rest = &connection[scheme_end..];
    match rest.rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{}{user}{}", &connection[..scheme_end], &rest[at..])
        }
        None => connection.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::extract::test_support::{Collected, collect, context};

    const ROWS: i64 = 12_345;

    /// A SQLite file `src.db` in a new directory with `ROWS` rows in `t`.
    async fn source() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("src.db"), 1).unwrap();
        let mut conn = db.begin().await.unwrap();
        conn.execute_script(&format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, updated TEXT);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS})
             INSERT INTO t SELECT x, 'name ' || x, x / 4.0,
                 datetime('2024-01-01', '+' || x || ' seconds') FROM c;"
        ))
        .await
        .unwrap();
        conn.commit().await.unwrap();
        db.close().await;
        dir
    }

    async fn extract(
        dir: &Path,
        toml: &str,
        since: Option<serde_json::Value>,
    ) -> Result<Collected, PipelineError> {
        collect(context(toml, dir, since, &[]), run).await
    }

    fn ids(got: &Collected) -> Vec<i64> {
        got.column("id")
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn pages_through_more_rows_than_a_page() {
        let dir = source().await;
        let got = extract(
            dir.path(),
            r#"name = "copy"
from = "sql"
connection = "sqlite://src.db"
query = "SELECT id, name, score FROM t ORDER BY id; -- all of it""#,
            None,
        )
        .await
        .unwrap();
        assert_eq!(ids(&got), (1..=ROWS).collect::<Vec<_>>());
        let columns: Vec<(&str, &str)> = got
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.name()))
            .collect();
        assert_eq!(
            columns,
            [("id", "integer"), ("name", "text"), ("score", "number")]
        );
        assert_eq!(got.column("name")[5000], json!("name 5001"));
        assert_eq!(got.column("score")[1], json!(0.5));
        assert!(got.sources.iter().all(|s| s == "sqlite://src.db"));
        assert_eq!(got.done, Some(None));
    }

    #[tokio::test]
    async fn incremental_reads_only_rows_past_the_cursor() {
        let dir = source().await;
        let toml = |cursor: &str| {
            format!(
                r#"name = "inc"
from = "sql"
connection = "sqlite://{}/src.db"
query = "SELECT id, updated FROM t"
incremental = {{ cursor = "{cursor}" }}"#,
                dir.path().display()
            )
        };
        // First load: everything, and the largest cursor.
        let got = extract(dir.path(), &toml("id"), None).await.unwrap();
        assert_eq!(got.rows.len(), ROWS as usize);
        assert_eq!(got.done, Some(Some(json!(ROWS))));
        // Next load: past 1234, across more than one page of the filtered query.
        let got = extract(dir.path(), &toml("id"), Some(json!(1234)))
            .await
            .unwrap();
        assert_eq!(ids(&got), (1235..=ROWS).collect::<Vec<_>>());
        assert_eq!(got.done, Some(Some(json!(ROWS))));
        // A text timestamp cursor.
        let got = extract(
            dir.path(),
            &toml("updated"),
            Some(json!("2024-01-01 03:25:00")),
        )
        .await
        .unwrap();
        // 03:25:00 is second 12300.
        assert_eq!(ids(&got), (12_301..=ROWS).collect::<Vec<_>>());
        assert_eq!(got.done, Some(Some(json!("2024-01-01 03:25:45"))));
        // Nothing new.
        let got = extract(dir.path(), &toml("id"), Some(json!(ROWS)))
            .await
            .unwrap();
        assert!(got.rows.is_empty());
        assert_eq!(got.done, Some(None));
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_is_refused_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let err = extract(
            dir.path(),
            "name = \"gone\"\nfrom = \"sql\"\nconnection = \"sqlite://data/nope.db\"\nquery = \"SELECT 1\"",
            None,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("extract `gone`: the SQLite database "),
            "{err}"
        );
        assert!(err.contains("nope.db does not exist"), "{err}");
        assert!(!dir.path().join("data").exists());
    }

    #[tokio::test]
    async fn a_failing_query_names_the_extract() {
        let dir = source().await;
        let err = extract(
            dir.path(),
            "name = \"bad\"\nfrom = \"sql\"\nconnection = \"sqlite://src.db\"\nquery = \"SELECT nope FROM t\"",
            None,
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(!err.is_transient(), "{text}");
        assert!(
            text.starts_with("extract `bad`: the query failed on sqlite://src.db"),
            "{text}"
        );
        assert!(text.contains("nope"), "{text}");
    }

    #[test]
    fn lineage_has_no_password() {
        assert_eq!(
            without_password("postgres://user:s3cret@db.example:5432/app?sslmode=require"),
            "postgres://user@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            without_password("postgresql://u@h/db?password=s3cret&application_name=x"),
            "postgresql://u@h/db?application_name=x"
        );
        assert_eq!(
            without_password("sqlite://data/app.db"),
            "sqlite://data/app.db"
        );
        assert_eq!(
            sqlite_path(Path::new("/app"), "/abs/x.db?mode=ro"),
            PathBuf::from("/abs/x.db")
        );
        assert_eq!(
            sqlite_path(Path::new("/app"), "data/x.db"),
            PathBuf::from("/app/data/x.db")
        );
    }

    #[test]
    fn trailing_semicolons_and_comments_are_dropped() {
        let end = |q: &str| q[..significant_end(q)].to_string();
        assert_eq!(end("SELECT 1;  -- note\n"), "SELECT 1");
        assert_eq!(end("SELECT ';--' AS x /* c; */ ;;"), "SELECT ';--' AS x");
        assert_eq!(end("SELECT 'é' -- ü"), "SELECT 'é'");
        assert_eq!(end("SELECT a -- x\nFROM t;"), "SELECT a -- x\nFROM t");
        assert_eq!(end("  ; -- nothing"), "");
    }

    #[test]
    fn pages_wrap_the_query() {
        let q = "SELECT * FROM t ORDER BY id";
        let sql = page_sql(Dialect::Sqlite, q, None, None, 10_000);
        assert_eq!(
            sql.text,
            "SELECT * FROM (\nSELECT * FROM t ORDER BY id\n) q LIMIT 5000 OFFSET 10000"
        );
        let filter = (
            Ident::parse("ts").unwrap(),
            vec![(" >= ", Value::Text("2024".into()))],
        );
        let sql = page_sql(
            Dialect::Postgres,
            q,
            Some(&filter),
            Some("timestamp with time zone"),
            0,
        );
        assert_eq!(
            sql.text,
            "SELECT * FROM (\nSELECT * FROM t ORDER BY id\n) q WHERE \"ts\" >= CAST(CAST($1 AS text) AS timestamp with time zone) ORDER BY \"ts\" LIMIT 5000 OFFSET 0"
        );
        assert_eq!(sql.params, [Value::Text("2024".into())]);
        let range = (
            Ident::parse("n").unwrap(),
            vec![(" >= ", Value::Int(10)), (" < ", Value::Int(20))],
        );
        let sql = page_sql(Dialect::Sqlite, q, Some(&range), None, 0);
        assert!(
            sql.text.ends_with(
                ") q WHERE \"n\" >= ?1 AND \"n\" < ?2 ORDER BY \"n\" LIMIT 5000 OFFSET 0"
            ),
            "{}",
            sql.text
        );
        assert!(!is_type_name("int); DROP TABLE x; --"));
    }

    /// Against a real PostgreSQL when `BRIGADE_TEST_POSTGRES_URL` names a database the test
    /// may create a table in; skipped otherwise.
    #[tokio::test]
    async fn postgres_source_when_available() {
        let Ok(url) = std::env::var("BRIGADE_TEST_POSTGRES_URL") else {
            eprintln!("BRIGADE_TEST_POSTGRES_URL is not set; skipping");
            return;
        };
        let db = PostgresDatabase::connect(&url, 2).await.unwrap();
        let mut conn = db.begin().await.unwrap();
        conn.execute_script(
            "DROP TABLE IF EXISTS extract_sql_test;
             CREATE TABLE extract_sql_test (id bigint PRIMARY KEY, ts timestamptz, amount numeric);
             INSERT INTO extract_sql_test
                 SELECT x, timestamptz '2024-01-01 00:00:00+00' + x * interval '1 second', x / 2.0
                 FROM generate_series(1, 6000) x;",
        )
        .await
        .unwrap();
        conn.commit().await.unwrap();
        db.close().await;
        let dir = tempfile::tempdir().unwrap();
        let toml = |cursor: &str| {
            format!(
                "name = \"pg\"\nfrom = \"sql\"\nconnection = \"{url}\"\nquery = \"SELECT id, ts, amount FROM extract_sql_test ORDER BY id\"\nincremental = {{ cursor = \"{cursor}\" }}"
            )
        };
        let got = extract(dir.path(), &toml("id"), None).await.unwrap();
        assert_eq!(ids(&got), (1..=6000).collect::<Vec<_>>());
        let got = extract(dir.path(), &toml("id"), Some(json!(5990)))
            .await
            .unwrap();
        assert_eq!(ids(&got), (5991..=6000).collect::<Vec<_>>());
        let last = got.done.clone().flatten().unwrap();
        assert_eq!(last, json!(6000));
        let ts = extract(dir.path(), &toml("id"), None)
            .await
            .unwrap()
            .column("ts")[5994]
            .clone();
        let got = extract(dir.path(), &toml("ts"), Some(ts)).await.unwrap();
        assert_eq!(ids(&got), (5996..=6000).collect::<Vec<_>>());
        assert_eq!(got.sources[0], without_password(&url));
        if let Some(password) = Url::parse(&url)
            .ok()
            .and_then(|u| u.password().map(String::from))
        {
            assert!(!got.sources[0].contains(&password));
        }
    }
}
