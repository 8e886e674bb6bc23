//! A process killed in the middle of a load: the bronze table and the incremental cursor are
//! as they were before the run, the next run picks up cleanly, and a server started
//! afterwards marks the interrupted run failed once its heartbeat is stale.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::*;
use crate::helpers::{Backend, TestApp, expect_json, write_file};

async fn bulk_cursor(backend: Backend, url: &str) -> String {
    let rows = query_at(
        backend,
        url,
        "SELECT cursor FROM _pipeline_state WHERE pipeline = 'bulk' AND node = 'bulk'",
    )
    .await;
    match &rows[0]["cursor"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows the newest run reports loaded by its first step.
async fn loaded_so_far(backend: Backend, url: &str) -> i64 {
    let Ok(rows) = super::support::try_query_at(
        backend,
        url,
        "SELECT steps FROM _pipeline_runs WHERE status = 'running' ORDER BY created DESC",
    )
    .await
    else {
        return 0;
    };
    rows.first()
        .and_then(|r| r["steps"].as_str())
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|steps| steps[0]["rows_in"].as_i64())
        .unwrap_or(0)
}

backend_test!(
    a_killed_load_leaves_the_table_and_cursor_as_they_were,
    |backend| async move {
        let dir = app_dir(&[
            text("pipelines/bulk.toml", BULK),
            text("data/bulk.csv", &numbered_csv(1, SMALL)),
        ]);
        let Some(url) = backend.fresh_database_url(dir.path()).await else {
            return;
        };
        let out = pipeline_cli(dir.path(), &url, &["run", "bulk"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert_eq!(bulk_rows(backend, &url).await, SMALL as i64);
        assert_eq!(bulk_cursor(backend, &url).await, SMALL.to_string());

        write_file(dir.path(), "data/bulk.csv", numbered_csv(1, BIG).as_bytes());
        let mut child = Command::new(env!("CARGO_BIN_EXE_brigade"))
            .args(["pipeline", "run", "bulk", "--dir"])
            .arg(dir.path())
            .env("BRIGADE_DATABASE_URL", &url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn brigade pipeline run");

        // Kill it once rows are being staged: in the middle of the load.
        let started = Instant::now();
        // Staged rows are visible on SQLite (a transaction per batch); PostgreSQL streams
        // one COPY, so there the run record's progress (saved every second) tells.
        let staged = loop {
            let tables = staging_tables(backend, &url).await;
            if let Some((_, Some(n))) = tables.iter().find(|(_, n)| n.is_some_and(|n| n > 0)) {
                break *n;
            }
            let progress = loaded_so_far(backend, &url).await;
            if progress > 0 {
                break progress;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("the run ended ({status}) before it was seen loading");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no staged rows within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(
            staged < BIG as i64,
            "killed mid-load ({staged} rows staged)"
        );

        let runs = query_at(
            backend,
            &url,
            "SELECT id, status FROM _pipeline_runs ORDER BY created DESC",
        )
        .await;
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(
            runs[0]["status"], "running",
            "the run never finished: {runs:?}"
        );
        let killed = runs[0]["id"].as_str().unwrap().to_string();
        assert_eq!(
            bulk_rows(backend, &url).await,
            SMALL as i64,
            "no row of the killed load is visible"
        );
        assert_eq!(
            bulk_cursor(backend, &url).await,
            SMALL.to_string(),
            "the cursor did not move"
        );

        // A run counts as dead once its heartbeat is `stale_after` (30 s) old, whichever
        // process looks. Age it rather than wait.
        execute_at(
            backend,
            &url,
            &format!("UPDATE _pipeline_runs SET heartbeat = '2000-01-01T00:00:00.000Z' WHERE id = '{killed}'"),
        )
        .await;
        let app = TestApp::start(dir, url.clone(), backend).await;
        let run = expect_json(app.get(&format!("/api/runs/{killed}")).await, 200).await;
        assert_eq!(
            run["status"], "failed",
            "a restarted app marks it failed: {run}"
        );
        assert!(
            run["error"].as_str().is_some_and(|e| e.contains("stopped")),
            "{run}"
        );
        assert!(run["finished"].is_string(), "{run}");

        let run = run_pipeline(&app, "bulk", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}\n{}", app.logs());
        assert_eq!(step(&run, "bulk")["rows_out"], BIG - SMALL, "{run}");
        assert_eq!(bulk_rows(backend, &url).await, BIG as i64);
        assert_eq!(bulk_cursor(backend, &url).await, BIG.to_string());
        let distinct = query(&app, "SELECT count(DISTINCT id) AS n FROM bulk").await;
        assert_eq!(distinct[0]["n"], BIG, "no row twice");
        assert!(
            staging_tables(backend, &url).await.is_empty(),
            "the killed run's staging table was dropped"
        );
    }
);
