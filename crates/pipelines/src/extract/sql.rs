//! A query against another database (`sqlite://PATH` or `postgres://...`), its rows fed
//! through the [`Shaper`] like JSON records. The store reads the source
//! ([`brigade_store::source`]): one run of the query in one read-only snapshot, in pages of
//! [`PAGE_ROWS`] (a PostgreSQL server-side cursor, a stepped SQLite statement), so a large
//! table costs one scan and no more memory than a small one. An incremental extract with a
//! previous cursor asks the source only for rows from it on (`WHERE "<cursor>" >= $1 ORDER
//! BY "<cursor>"`; those the last load took at that value are dropped again), so the cursor
//! must be a column of the query's result, named as the query names it.

use std::path::{Path, PathBuf};

use brigade_store::StoreError;
use brigade_store::source::{Bound, CursorRange, Pages, SourceDatabase, SourceError};
use reqwest::Url;

use super::http::{extract_error, send_all};
use super::shape::Shaper;
use super::{Batcher, Context, Message, Sender};
use crate::error::PipelineError;

/// Rows per query page.
pub use brigade_store::source::PAGE_ROWS;

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
    let result = extract(cx, tx, &db, &query, &source).await;
    db.close().await;
    result
}

/// Opens the source database.
async fn open(
    cx: &Context,
    connection: &str,
    source: &str,
) -> Result<SourceDatabase, PipelineError> {
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
        Ok(SourceDatabase::sqlite(&path))
    } else if connection.starts_with("postgres://") || connection.starts_with("postgresql://") {
        SourceDatabase::postgres(connection)
            .await
            .map_err(|e| match e {
                StoreError::Unavailable { message: m, .. } => PipelineError::Transient(format!(
                    "extract `{}`: cannot connect to {source}: {m}",
                    cx.spec.name
                )),
                other => extract_error(cx, &format!("cannot connect to {source}: {other}")),
            })
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

async fn extract(
    cx: &Context,
    tx: &Sender,
    db: &SourceDatabase,
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
    let bounds: Vec<(Bound, serde_json::Value)> = match (&cx.range, &cx.since) {
        (Some((from, to)), _) => vec![(Bound::AtLeast, from.clone()), (Bound::Below, to.clone())],
        // `>=`: rows at the last cursor value that came late load too; the cursor filter
        // drops the ones the last load took (see `extract::cursor`).
        (None, Some(since)) if !since.is_null() => vec![(Bound::AtLeast, since.clone())],
        _ => Vec::new(),
    };
    let range = match &cx.spec.incremental {
        Some(inc) if !bounds.is_empty() => Some(CursorRange {
            column: inc.cursor.clone(),
            bounds,
        }),
        _ => None,
    };
    let mut pages = db
        .read(query, range.as_ref())
        .await
        .map_err(|e| source_error(cx, source, e))?;
    let record_no = read_pages(cx, tx, &mut pages, &mut shaper, &mut batcher, source).await?;
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

/// Feeds every page to the shaper; returns how many rows there were.
async fn read_pages(
    cx: &Context,
    tx: &Sender,
    pages: &mut Pages,
    shaper: &mut Shaper,
    batcher: &mut Batcher,
    source: &str,
) -> Result<u64, PipelineError> {
    let mut record_no: u64 = 0;
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let Some(rows) = pages
            .next()
            .await
            .map_err(|e| query_error(cx, source, &e))?
        else {
            return Ok(record_no);
        };
        let count = rows.len();
        let mut out = Vec::new();
        for row in rows {
            record_no += 1;
            shaper.push(source, record_no, row, batcher, &mut out)?;
            if batcher.full() {
                out.extend(batcher.drain(source));
            }
        }
        send_all(tx, out).await?;
        tracing::debug!(extract = %cx.spec.name, rows = count, "Read a page of the query.");
    }
}

fn source_error(cx: &Context, source: &str, e: SourceError) -> PipelineError {
    match e {
        SourceError::Store(e) => query_error(cx, source, &e),
        other => extract_error(cx, &other.to_string()),
    }
}

fn store_error(cx: &Context, source: &str, e: &StoreError) -> PipelineError {
    match e {
        StoreError::Unavailable { message: m, .. } => PipelineError::Transient(format!(
            "extract `{}`: {source} is unavailable: {m}",
            cx.spec.name
        )),
        other => extract_error(cx, &format!("{source}: {other}")),
    }
}

fn query_error(cx: &Context, source: &str, e: &StoreError) -> PipelineError {
    match e {
        StoreError::Unavailable { .. } => store_error(cx, source, e),
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

    use brigade_store::raw::RawDatabase;

    use super::*;
    use crate::extract::test_support::{Collected, collect, context};

    const ROWS: i64 = 12_345;

    /// A SQLite file `src.db` in a new directory with `ROWS` rows in `t`.
    async fn source() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("src.db").display());
        let db = RawDatabase::open(&url).await.unwrap();
        db.execute_script(&format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, updated TEXT);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS})
             INSERT INTO t SELECT x, 'name ' || x, x / 4.0,
                 datetime('2024-01-01', '+' || x || ' seconds') FROM c;"
        ))
        .await
        .unwrap();
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

    /// Against a real PostgreSQL when `BRIGADE_TEST_POSTGRES_URL` names a database the test
    /// may create a table in; skipped otherwise.
    #[tokio::test]
    async fn postgres_source_when_available() {
        let Ok(url) = std::env::var("BRIGADE_TEST_POSTGRES_URL") else {
            eprintln!("BRIGADE_TEST_POSTGRES_URL is not set; skipping");
            return;
        };
        let db = RawDatabase::open(&url).await.unwrap();
        db.execute_script(
            "DROP TABLE IF EXISTS extract_sql_test;
             CREATE TABLE extract_sql_test (id bigint PRIMARY KEY, ts timestamptz, amount numeric);
             INSERT INTO extract_sql_test
                 SELECT x, timestamptz '2024-01-01 00:00:00+00' + x * interval '1 second', x / 2.0
                 FROM generate_series(1, 6000) x;",
        )
        .await
        .unwrap();
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
