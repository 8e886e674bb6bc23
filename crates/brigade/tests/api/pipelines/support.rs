//! Fixtures and checks shared by the pipeline tests.

use std::time::Duration;

use brigade_store::conn::{Database, JsonRow};
use brigade_store::sql::Sql;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, expect_json};

/// Defines `sqlite` and `postgres` tests of an app started with `$files`.
macro_rules! pipeline_test {
    ($name:ident, $files:expr, |$app:pat_param| async move $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let files: Vec<(&str, Vec<u8>)> = $files;
                let files: Vec<(&str, &[u8])> =
                    files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
                let Some($app) =
                    crate::helpers::spawn_app_with_files(crate::helpers::Backend::Sqlite, &files)
                        .await
                else {
                    return;
                };
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let files: Vec<(&str, Vec<u8>)> = $files;
                let files: Vec<(&str, &[u8])> =
                    files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
                let Some($app) =
                    crate::helpers::spawn_app_with_files(crate::helpers::Backend::Postgres, &files)
                        .await
                else {
                    return;
                };
                $body
            }
        }
    };
}
pub(crate) use pipeline_test;

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

/// The step called `name` of `run`.
pub(crate) fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
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
    let db: Box<dyn Database> = match app.backend {
        Backend::Sqlite => {
            let path = app.db_url.strip_prefix("sqlite://").expect("sqlite url");
            Box::new(
                brigade_store::SqliteDatabase::open(std::path::Path::new(path), 1)
                    .expect("open sqlite"),
            )
        }
        Backend::Postgres => Box::new(
            brigade_store::PostgresDatabase::connect(&app.db_url, 2)
                .await
                .expect("connect"),
        ),
    };
    let mut conn = db.read().await.expect("read connection");
    let mut q = Sql::new(db.dialect());
    q.push(sql);
    let rows = conn
        .query_json(&q)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(conn);
    rows
}

/// `SELECT count(*)` of `table`.
pub(crate) async fn count(app: &TestApp, table: &str) -> i64 {
    let rows = query(app, &format!("SELECT count(*) AS n FROM \"{table}\"")).await;
    rows[0]["n"]
        .as_i64()
        .unwrap_or_else(|| panic!("count of {table}: {rows:?}"))
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
