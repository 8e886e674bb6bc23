//! Fixtures and checks shared by the pipeline tests.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use brigade_store::JsonRow;
use brigade_store::raw::RawDatabase;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, expect_json, run_cli, write_file};

/// `(path, content)` of a text file.
pub(crate) fn text(path: &'static str, content: &str) -> (&'static str, Vec<u8>) {
    (path, content.as_bytes().to_vec())
}

/// `(path, gzip of content)`.
pub(crate) fn gzip(path: &'static str, content: &str) -> (&'static str, Vec<u8>) {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(content.as_bytes()).expect("gzip");
    (path, enc.finish().expect("gzip"))
}

/// Starts a run of `pipeline` over the API and waits until it ends; returns the run.
pub(crate) async fn run_pipeline(app: &TestApp, pipeline: &str, body: Value) -> Value {
    let started = expect_json(
        app.post(&format!("/api/pipelines/{pipeline}/runs"), body)
            .await,
        202,
    )
    .await;
    let id = started["run_id"].as_str().expect("run_id").to_string();
    wait(app, &id).await
}

/// Polls `GET /api/runs/{id}` until the run is no longer queued or running.
pub(crate) async fn wait(app: &TestApp, id: &str) -> Value {
    for _ in 0..600 {
        let run = expect_json(app.get(&format!("/api/runs/{id}")).await, 200).await;
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "run {id} did not finish within a minute; log:\n{}",
        app.logs()
    );
}

/// Waits (at most 30 s) until run `id` reports rows loaded by its first step: a load is under
/// way, with rows still to come when the source is large.
pub(crate) async fn wait_until_loading(app: &TestApp, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while expect_json(app.get(&format!("/api/runs/{id}")).await, 200).await["steps"][0]["rows_in"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "run {id} loaded no rows within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The step called `name` of `run`.
pub(crate) fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

/// `name:status` of every step of `run`, in order.
pub(crate) fn step_statuses(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {run}"))
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["name"].as_str().unwrap_or("?"),
                s["status"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The expectation `name` of `step`.
pub(crate) fn expectation<'a>(step: &'a Value, name: &str) -> &'a Value {
    step["expectations"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no expectation {name} in {step}"))
}

/// Runs `sql` against the app's database directly (what a data engineer would do).
pub(crate) async fn query(app: &TestApp, sql: &str) -> Vec<JsonRow> {
    query_at(app.backend, &app.db_url, sql).await
}

/// Runs `sql` against the database at `db_url`.
pub(crate) async fn query_at(backend: Backend, db_url: &str, sql: &str) -> Vec<JsonRow> {
    try_query_at(backend, db_url, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Like [`query_at`], with the database's error instead of a panic (for polling while
/// another process writes).
pub(crate) async fn try_query_at(
    _backend: Backend,
    db_url: &str,
    sql: &str,
) -> Result<Vec<JsonRow>, String> {
    let db = open_db(db_url).await;
    let rows = db.query_json(sql).await.map_err(|e| e.to_string());
    db.close().await;
    rows
}

/// Runs `script` (statements without results) in one transaction on the app's database:
/// a data engineer fixing rows by hand.
pub(crate) async fn execute(app: &TestApp, script: &str) {
    execute_at(app.backend, &app.db_url, script).await;
}

/// Like [`execute`], on the database at `db_url`.
pub(crate) async fn execute_at(_backend: Backend, db_url: &str, script: &str) {
    let db = open_db(db_url).await;
    db.execute_script(script)
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    db.close().await;
}

/// The database at `db_url` (its scheme says which kind).
async fn open_db(db_url: &str) -> RawDatabase {
    RawDatabase::open(db_url)
        .await
        .unwrap_or_else(|e| panic!("cannot open {db_url}: {e}"))
}

/// `SELECT count(*)` of `table`.
pub(crate) async fn count(app: &TestApp, table: &str) -> i64 {
    let rows = query(app, &format!("SELECT count(*) AS n FROM \"{table}\"")).await;
    rows[0]["n"]
        .as_i64()
        .unwrap_or_else(|| panic!("count of {table}: {rows:?}"))
}

/// The staging tables in the database, with their row counts (`None`: not readable now).
pub(crate) async fn staging_tables(backend: Backend, url: &str) -> Vec<(String, Option<i64>)> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_stg\\_%' ESCAPE '\\'"
        }
        Backend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_name LIKE '\\_stg\\_%' ESCAPE '\\' AND table_schema = current_schema()"
        }
    };
    let Ok(rows) = try_query_at(backend, url, sql).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for row in rows {
        let name = row["name"].as_str().unwrap_or_default().to_string();
        let n = try_query_at(
            backend,
            url,
            &format!("SELECT count(*) AS n FROM \"{name}\""),
        )
        .await
        .ok()
        .and_then(|r| r[0]["n"].as_i64());
        out.push((name, n));
    }
    out
}

/// Whether `table` (or a view of that name) exists in the app's database.
pub(crate) async fn table_exists(app: &TestApp, table: &str) -> bool {
    let sql = match app.backend {
        Backend::Sqlite => {
            format!("SELECT count(*) AS n FROM sqlite_master WHERE name = '{table}'")
        }
        Backend::Postgres => format!(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = '{table}' \
             AND table_schema = current_schema()"
        ),
    };
    query(app, &sql).await[0]["n"].as_i64() == Some(1)
}

/// The incremental cursor stored for extract `node` of `pipeline`, as text.
pub(crate) async fn cursor(app: &TestApp, pipeline: &str, node: &str) -> Option<String> {
    let rows = query(
        app,
        &format!(
            "SELECT cursor FROM _pipeline_state WHERE pipeline = '{pipeline}' AND node = '{node}'"
        ),
    )
    .await;
    rows.first().map(|r| match &r["cursor"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// A small flights-like dataset: 6 rows, one cancelled (no dep_time), one with `NA` tailnum.
pub(crate) const FLIGHTS_CSV: &str = "\
year,month,day,dep_time,dep_delay,carrier,tailnum,time_hour
2013,1,1,517,2,UA,N14228,2013-01-01T10:00:00Z
2013,1,1,533,4,UA,N24211,2013-01-01T10:00:00Z
2013,1,2,NA,NA,AA,NA,2013-01-02T11:00:00Z
2013,1,2,544,-1,B6,N804JB,2013-01-02T11:00:00Z
2013,2,1,554,-6,DL,N668DN,2013-02-01T12:00:00Z
2013,2,1,555,30.5,UA,N39463,2013-02-01T12:00:00Z
";

pub(crate) const AIRLINES_NDJSON: &str = r#"{"carrier": "UA", "name": "United Air Lines Inc."}
{"carrier": "AA", "name": "American Airlines Inc."}
{"carrier": "B6", "name": "JetBlue Airways"}
{"carrier": "DL", "name": "Delta Air Lines Inc."}
"#;

pub(crate) const PIPELINE: &str = r#"
name = "flights"
retries = 0

[[extract]]
name = "raw_flights"
from = "file"
path = "data/flights.csv.gz"
null_values = ["NA"]

[[extract]]
name = "raw_airlines"
from = "file"
path = "data/airlines.ndjson"
primary_key = ["carrier"]

[[model]]
name = "silver_flights"
sql = "models/silver_flights.sql"
[[model.expect]]
name = "departed"
check = "dep_time IS NOT NULL"
on_fail = "drop"
[[model.expect]]
name = "known_plane"
check = "tailnum IS NOT NULL"
on_fail = "warn"

[[model]]
name = "gold_carrier"
layer = "gold"
query = "SELECT carrier, MAX(airline) AS airline, COUNT(*) AS flights, AVG(dep_delay) AS avg_dep_delay FROM {{ ref('silver_flights') }} GROUP BY carrier"
[[model.expect]]
name = "has_flights"
check = "flights > 0"
on_fail = "fail"
"#;

pub(crate) const SILVER_SQL: &str = "SELECT f.year, f.month, f.day, f.dep_time, f.dep_delay, f.carrier, a.name AS airline, f.tailnum, f.time_hour
FROM {{ ref('raw_flights') }} f LEFT JOIN {{ ref('raw_airlines') }} a ON a.carrier = f.carrier";

/// The files of the standard test pipeline.
pub(crate) fn flights_app() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        text("pipelines/flights.toml", PIPELINE),
        gzip("data/flights.csv.gz", FLIGHTS_CSV),
        text("data/airlines.ndjson", AIRLINES_NDJSON),
        text("models/silver_flights.sql", SILVER_SQL),
    ]
}

/// An empty JSON body.
pub(crate) fn no_options() -> Value {
    json!({})
}

/// A temporary app directory with `files` written into it.
pub(crate) fn app_dir(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("brigade-pipeline-")
        .tempdir()
        .expect("create the app directory");
    for (path, content) in files {
        write_file(dir.path(), path, content);
    }
    dir
}

/// `brigade pipeline ARGS --dir DIR` on the database at `db_url`.
pub(crate) async fn pipeline_cli(dir: &Path, db_url: &str, args: &[&str]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = vec!["pipeline".as_ref()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    all.push("--dir".as_ref());
    all.push(dir.as_os_str());
    run_cli(all, &[("BRIGADE_DATABASE_URL", db_url)], None).await
}

/// Stdout and stderr of a command, for assertion messages.
pub(crate) fn output_text(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A CSV `id,name` with ids `from..=to`.
pub(crate) fn numbered_csv(from: u64, to: u64) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(((to + 1 - from) * 14) as usize + 8);
    out.push_str("id,name\n");
    for i in from..=to {
        let _ = writeln!(out, "{i},n{i}");
    }
    out
}

/// The events of `GET /api/runs/{id}/events` as `(event, data)` until the stream ends (or
/// 60 s pass).
pub(crate) async fn run_events(app: &TestApp, id: &str) -> Vec<(String, Value)> {
    let mut res = app.get(&format!("/api/runs/{id}/events")).await;
    assert_eq!(res.status(), 200, "GET /api/runs/{id}/events");
    let content_type = crate::helpers::content_type(&res);
    assert!(
        content_type.starts_with("text/event-stream"),
        "content-type {content_type}"
    );
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = res.chunk().await.expect("read the event stream") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .is_err()
    {
        panic!("the event stream of run {id} did not end; so far:\n{text}");
    }
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if !name.is_empty() {
            let data = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("event {name} data is not JSON ({e}): {data}"));
            events.push((name, data));
        }
    }
    events
}

/// A local endpoint that hands every JSON body POSTed to `/hook` to the returned channel.
pub(crate) async fn webhook_receiver() -> (String, tokio::sync::mpsc::Receiver<serde_json::Value>) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, rx)
}

/// An incremental pipeline `bulk` over `data/bulk.csv`, for the crash and lease tests.
pub(crate) const BULK: &str = r#"
retries = 0

[[extract]]
name = "bulk"
from = "file"
path = "data/bulk.csv"
incremental = { cursor = "id" }
"#;

/// Rows of the first, complete load of `bulk`.
pub(crate) const SMALL: u64 = 1_000;
/// Rows of the `bulk` file a killed or overlapping run reads; big enough that a load takes
/// seconds.
pub(crate) const BIG: u64 = 600_000;

/// Rows in the `bulk` table.
pub(crate) async fn bulk_rows(backend: Backend, url: &str) -> i64 {
    query_at(backend, url, "SELECT count(*) AS n FROM bulk").await[0]["n"]
        .as_i64()
        .expect("count")
}
