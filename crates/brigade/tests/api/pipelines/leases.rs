//! Runs in several processes on one database: two CLI runs of one pipeline take turns
//! (the second waits, then loads only what is new); Ctrl-C and SIGTERM cancel a CLI run
//! cleanly; a CLI run killed with -9 is failed once its heartbeat is older than
//! `stale_after`, after which it can be retried; a server starting beside a live CLI run
//! leaves it alone (and queues API runs behind it).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use super::support::*;
use crate::helpers::{Backend, TestApp, expect_json};

/// A short `stale_after` so dead runs are noticed within the test.
const SETTINGS: &str = "[pipelines]\nstale_after = \"2s\"\n";

/// An app whose `bulk` pipeline already loaded [`SMALL`] rows, and whose file now has
/// [`BIG`]; `None` when the backend is not available.
async fn loaded_app(backend: Backend) -> Option<(tempfile::TempDir, String)> {
    let dir = app_dir(&[
        text("brigade.toml", SETTINGS),
        text("pipelines/bulk.toml", BULK),
        text("data/bulk.csv", &numbered_csv(1, SMALL)),
    ]);
    let url = backend.fresh_database_url(dir.path()).await?;
    let out = pipeline_cli(dir.path(), &url, &["run", "bulk"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    crate::helpers::write_file(dir.path(), "data/bulk.csv", numbered_csv(1, BIG).as_bytes());
    Some((dir, url))
}

/// `brigade pipeline ARGS` in the background, output piped.
fn spawn_cli(dir: &std::path::Path, url: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_brigade"))
        .arg("pipeline")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("BRIGADE_DATABASE_URL", url)
        .env_remove("BRIGADE_PIPELINES_STALE_AFTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn brigade pipeline")
}

/// Waits (at most a minute) for `child` and returns its output.
async fn finish(child: Child) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finished within a minute")
        .expect("wait for the CLI")
}

/// Distinct ids in the `bulk` table.
async fn distinct_ids(backend: Backend, url: &str) -> i64 {
    query_at(
        backend,
        url,
        "SELECT count(*) AS n, count(DISTINCT id) AS d FROM bulk",
    )
    .await[0]["d"]
        .as_i64()
        .expect("count")
}

/// The run `id` as stored.
async fn run_row(backend: Backend, url: &str, id: &str) -> Value {
    let rows = query_at(
        backend,
        url,
        &format!("SELECT id, status, error, steps FROM _pipeline_runs WHERE id = '{id}'"),
    )
    .await;
    serde_json::to_value(&rows[0]).expect("row as JSON")
}

/// Waits until a run of `bulk` is loading rows, and returns its id.
async fn wait_until_loading(backend: Backend, url: &str, child: &mut Child) -> String {
    let started = Instant::now();
    loop {
        if let Ok(rows) = try_query_at(
            backend,
            url,
            "SELECT id, steps FROM _pipeline_runs WHERE status = 'running' ORDER BY created DESC",
        )
        .await
            && let Some(run) = rows.first()
        {
            let progress = run["steps"]
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .and_then(|steps| steps[0]["rows_in"].as_i64())
                .unwrap_or(0);
            let staged = staging_tables(backend, url)
                .await
                .iter()
                .any(|(_, n)| n.is_some_and(|n| n > 0));
            if progress > 0 || staged {
                return run["id"].as_str().expect("id").to_string();
            }
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the run ended ({status}) before it was seen loading");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no run loading within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `brigade pipeline run bulk` and kills it (-9) while it loads; returns its run id.
async fn kill_mid_load(backend: Backend, dir: &std::path::Path, url: &str) -> String {
    let mut child = spawn_cli(dir, url, &["run", "bulk"]);
    let killed = wait_until_loading(backend, url, &mut child).await;
    child.start_kill().expect("kill -9");
    child.wait().await.expect("wait");
    killed
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("the child runs");
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

async fn leases(backend: Backend, url: &str) -> Vec<brigade_store::JsonRow> {
    query_at(
        backend,
        url,
        "SELECT pipeline, run_id FROM _pipeline_leases",
    )
    .await
}

backend_test!(
    two_cli_runs_of_one_pipeline_take_turns_and_load_each_row_once,
    |backend| async move {
        let Some((dir, url)) = loaded_app(backend).await else {
            return;
        };
        let first = spawn_cli(dir.path(), &url, &["run", "bulk"]);
        let second = spawn_cli(dir.path(), &url, &["run", "bulk"]);
        let (first, second) = tokio::join!(finish(first), finish(second));
        for out in [&first, &second] {
            assert_eq!(out.status.code(), Some(0), "{}", output_text(out));
            let text = output_text(out);
            assert!(
                !text.contains("UNIQUE") && !text.contains("duplicate"),
                "{text}"
            );
        }
        assert_eq!(bulk_rows(backend, &url).await, BIG as i64, "no row twice");
        assert_eq!(distinct_ids(backend, &url).await, BIG as i64);

        let waited: Vec<_> = [&first, &second]
            .into_iter()
            .filter(|o| String::from_utf8_lossy(&o.stderr).contains("waiting for run "))
            .collect();
        assert_eq!(
            waited.len(),
            1,
            "exactly one run waited for the other:\n{}\n{}",
            output_text(&first),
            output_text(&second)
        );
        let stderr = String::from_utf8_lossy(&waited[0].stderr);
        assert!(
            stderr.contains("of pipeline bulk held by brigade pipeline run (pid "),
            "{stderr}"
        );

        let runs = query_at(
            backend,
            &url,
            "SELECT status, steps FROM _pipeline_runs ORDER BY created",
        )
        .await;
        assert_eq!(runs.len(), 3, "{runs:?}");
        let mut loaded: Vec<i64> = runs[1..]
            .iter()
            .map(|r| {
                assert_eq!(r["status"], "succeeded", "{r:?}");
                let steps: Value = serde_json::from_str(r["steps"].as_str().unwrap()).unwrap();
                steps[0]["rows_out"].as_i64().unwrap()
            })
            .collect();
        loaded.sort_unstable();
        assert_eq!(
            loaded,
            [0, (BIG - SMALL) as i64],
            "the run that waited loaded only what was new"
        );
        assert!(
            leases(backend, &url).await.is_empty(),
            "both released the lease"
        );
    }
);

async fn stop_with(backend: Backend, name: &str, code: i32) {
    let Some((dir, url)) = loaded_app(backend).await else {
        return;
    };
    let mut child = spawn_cli(dir.path(), &url, &["run", "bulk"]);
    let id = wait_until_loading(backend, &url, &mut child).await;
    signal(&child, name);
    let out = finish(child).await;
    assert_eq!(out.status.code(), Some(code), "{}", output_text(&out));

    let run = run_row(backend, &url, &id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("SIG{name}"))),
        "the reason names the signal: {run}"
    );
    assert_eq!(
        bulk_rows(backend, &url).await,
        SMALL as i64,
        "nothing of the cancelled load is published"
    );
    assert!(
        leases(backend, &url).await.is_empty(),
        "the lease is released"
    );
    assert!(
        staging_tables(backend, &url).await.is_empty(),
        "no staging table is left"
    );

    let out = pipeline_cli(dir.path(), &url, &["retry", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(bulk_rows(backend, &url).await, BIG as i64);
    assert_eq!(distinct_ids(backend, &url).await, BIG as i64);
}

backend_test!(
    sigterm_cancels_a_cli_run_which_exits_143,
    |backend| async move {
        stop_with(backend, "TERM", 143).await;
    }
);

backend_test!(
    ctrl_c_cancels_a_cli_run_which_exits_130,
    |backend| async move {
        stop_with(backend, "INT", 130).await;
    }
);

backend_test!(
    a_killed_cli_run_is_failed_once_its_heartbeat_is_stale_and_can_be_retried,
    |backend| async move {
        let Some((dir, url)) = loaded_app(backend).await else {
            return;
        };
        let killed = kill_mid_load(backend, dir.path(), &url).await;
        assert_eq!(run_row(backend, &url, &killed).await["status"], "running");
        let out = pipeline_cli(dir.path(), &url, &["retry", &killed]).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "too early: the heartbeat is fresh\n{}",
            output_text(&out)
        );

        // A new run waits for the dead one's lease until its heartbeat is 2 s old, fails
        // it and runs.
        let started = Instant::now();
        let out = pipeline_cli(dir.path(), &url, &["run", "bulk"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("waiting for run {killed}")),
            "{}",
            output_text(&out)
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        let run = run_row(backend, &url, &killed).await;
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["error"]
                .as_str()
                .is_some_and(|e| e.contains("stopped responding (last heartbeat ")),
            "{run}"
        );
        assert_eq!(bulk_rows(backend, &url).await, BIG as i64);
        assert_eq!(distinct_ids(backend, &url).await, BIG as i64);

        let out = pipeline_cli(dir.path(), &url, &["retry", &killed]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        assert_eq!(
            bulk_rows(backend, &url).await,
            BIG as i64,
            "nothing new twice"
        );
    }
);

backend_test!(
    a_server_fails_a_killed_cli_run_by_heartbeat_age_and_runs_again,
    |backend| async move {
        let Some((dir, url)) = loaded_app(backend).await else {
            return;
        };
        let killed = kill_mid_load(backend, dir.path(), &url).await;

        let app = TestApp::start(dir, url.clone(), backend).await;
        let started = Instant::now();
        let run = loop {
            let run = expect_json(app.get(&format!("/api/runs/{killed}")).await, 200).await;
            if run["status"] != "running" {
                break run;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the server's sweep failed it within 20 s: {run}\n{}",
                app.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["error"]
                .as_str()
                .is_some_and(|e| e.contains("stopped responding")),
            "{run}"
        );
        let run = run_pipeline(&app, "bulk", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}\n{}", app.logs());
        assert_eq!(step(&run, "bulk")["rows_out"], BIG - SMALL, "{run}");
        assert_eq!(bulk_rows(backend, &url).await, BIG as i64);
    }
);

backend_test!(
    a_server_starting_beside_a_live_cli_run_leaves_it_running_and_queues_api_runs,
    |backend| async move {
        let Some((dir, url)) = loaded_app(backend).await else {
            return;
        };
        // Twice the rows: the load outlasts the server's start.
        crate::helpers::write_file(
            dir.path(),
            "data/bulk.csv",
            numbered_csv(1, 2 * BIG).as_bytes(),
        );
        let mut child = spawn_cli(dir.path(), &url, &["run", "bulk"]);
        let live = wait_until_loading(backend, &url, &mut child).await;

        let app = TestApp::start(dir, url.clone(), backend).await;
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the CLI run outlasts the server's start"
        );
        let queued = expect_json(
            app.post("/api/pipelines/bulk/runs", no_options()).await,
            202,
        )
        .await;
        let queued = queued["run_id"].as_str().expect("run_id").to_string();
        let cli_running = child.try_wait().expect("try_wait").is_none();
        if cli_running {
            let run = expect_json(app.get(&format!("/api/runs/{queued}")).await, 200).await;
            assert_eq!(
                run["status"], "queued",
                "an API run waits for the CLI run: {run}"
            );
        }

        let out = finish(child).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let run = expect_json(app.get(&format!("/api/runs/{live}")).await, 200).await;
        assert_eq!(
            run["status"], "succeeded",
            "the server did not fail it: {run}"
        );
        assert_eq!(step(&run, "bulk")["rows_out"], 2 * BIG - SMALL, "{run}");

        let run = wait(&app, &queued).await;
        assert_eq!(run["status"], "succeeded", "{run}\n{}", app.logs());
        assert_eq!(step(&run, "bulk")["rows_out"], 0, "only what is new: {run}");
        assert_eq!(bulk_rows(backend, &url).await, 2 * BIG as i64);
    }
);
