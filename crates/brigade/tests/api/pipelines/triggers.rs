//! Event triggers and run vars: a pipeline runs after another succeeds (whoever ran it),
//! new files in a watched folder start the pipeline that reads them, once; a run carries
//! vars into its models.

use std::time::Duration;

use serde_json::{Value, json};

use super::support::*;
use crate::helpers::{TestApp, expect_json, write_file};

/// The runs of `pipeline`, newest first.
async fn runs_of(app: &TestApp, pipeline: &str) -> Vec<Value> {
    let page = expect_json(
        app.get(&format!("/api/pipelines/{pipeline}/runs")).await,
        200,
    )
    .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits (20 s at most) until `pipeline` has a finished run started by `trigger`.
async fn triggered_run(app: &TestApp, pipeline: &str, trigger: &str) -> Value {
    for _ in 0..200 {
        if let Some(run) = runs_of(app, pipeline)
            .await
            .into_iter()
            .find(|r| r["trigger"] == trigger)
        {
            return wait(app, run["id"].as_str().unwrap_or_default()).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no `{trigger}` run of {pipeline} within 20 s; log:\n{}",
        app.logs()
    );
}

/// Waits until the trigger `source` of `pipeline` has looked once (its baseline is set).
async fn armed(app: &TestApp, pipeline: &str, source: &str) {
    for _ in 0..200 {
        let rows = query(
            app,
            &format!(
                "SELECT seen FROM _pipeline_triggers WHERE pipeline = '{pipeline}' AND source = '{source}'"
            ),
        )
        .await;
        if !rows.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "trigger {source} of {pipeline} never looked; log:\n{}",
        app.logs()
    );
}

const INGEST: &str =
    "[[extract]]\nname = \"raw_orders\"\nfrom = \"file\"\npath = \"data/orders.csv\"\n";
const REPORT: &str = "[trigger]\nafter = [\"ingest\"]\n\n[[model]]\nname = \"order_count\"\nquery = \"SELECT count(*) AS n FROM raw_orders\"\n";

backend_test!(
    a_pipeline_runs_after_another_succeeds_whoever_ran_it,
    |backend| async move {
        let files = [
            ("pipelines/ingest.toml", INGEST.as_bytes()),
            ("pipelines/report.toml", REPORT.as_bytes()),
            ("data/orders.csv", b"id\n1\n2\n3\n".as_slice()),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        armed(&app, "report", "after:ingest").await;
        assert!(
            runs_of(&app, "report").await.is_empty(),
            "nothing fired at start"
        );

        // The upstream run comes from the CLI, another process.
        let out = pipeline_cli(app.dir.path(), &app.db_url, &["run", "ingest"]).await;
        assert!(out.status.success(), "{}", output_text(&out));
        let run = triggered_run(&app, "report", "pipeline").await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let ingest_run = &runs_of(&app, "ingest").await[0];
        let cause = run["cause"].as_str().unwrap_or_default();
        assert!(
            cause.contains(ingest_run["id"].as_str().unwrap_or("?")) && cause.contains("ingest"),
            "the run says which upstream run started it: {run}"
        );
        assert_eq!(query(&app, "SELECT n FROM order_count").await[0]["n"], 3);

        // A failed upstream run starts nothing; one success starts exactly one run.
        std::fs::remove_file(app.dir.path().join("data/orders.csv")).unwrap();
        let failed = run_pipeline(&app, "ingest", no_options()).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            runs_of(&app, "report").await.len(),
            1,
            "a failure triggers nothing"
        );
        write_file(app.dir.path(), "data/orders.csv", b"id\n1\n2\n3\n4\n");
        let ok = run_pipeline(&app, "ingest", no_options()).await;
        assert_eq!(ok["status"], "succeeded", "{ok}");
        for _ in 0..200 {
            if runs_of(&app, "report").await.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let runs = runs_of(&app, "report").await;
        assert_eq!(runs.len(), 2, "one success, one run: {runs:?}");
        wait(&app, runs[0]["id"].as_str().unwrap_or_default()).await;
        assert_eq!(query(&app, "SELECT n FROM order_count").await[0]["n"], 4);
        let shown = expect_json(app.get("/api/pipelines/report").await, 200).await;
        assert_eq!(shown["trigger"]["after"], json!(["ingest"]), "{shown}");
    }
);

const DROPS: &str = "[trigger]\nfiles = true\npoll = \"1s\"\n\n[[extract]]\nname = \"raw_drops\"\nfrom = \"file\"\npath = \"inbox/*.csv\"\n";

backend_test!(
    a_new_file_starts_the_pipeline_that_reads_it_once,
    |backend| async move {
        let files = [
            ("pipelines/drops.toml", DROPS.as_bytes()),
            ("inbox/1.csv", b"id\n1\n2\n".as_slice()),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        armed(&app, "drops", "files").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            runs_of(&app, "drops").await.is_empty(),
            "files already there are the baseline"
        );

        write_file(app.dir.path(), "inbox/2.csv", b"id\n3\n4\n5\n");
        let run = triggered_run(&app, "drops", "files").await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(
            run["cause"]
                .as_str()
                .unwrap_or_default()
                .contains("inbox/2.csv"),
            "the run names the new file: {run}"
        );
        assert_eq!(count(&app, "raw_drops").await, 5);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(runs_of(&app, "drops").await.len(), 1, "one file, one run");
    }
);

const VARS: &str = "[vars]\nmin_id = 2\nlabel = \"all\"\n\n[[extract]]\nname = \"raw_v\"\nfrom = \"file\"\npath = \"data/v.csv\"\n\n[[model]]\nname = \"picked\"\nquery = \"SELECT id, '{{ var('label') }}' AS label FROM {{ ref('raw_v') }} WHERE id >= {{ var('min_id') }}\"\n";

backend_test!(runs_carry_vars_into_models, |backend| async move {
    let files = [
        ("pipelines/vars.toml", VARS.as_bytes()),
        ("data/v.csv", b"id\n1\n2\n3\n4\n".as_slice()),
    ];
    let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
        return;
    };
    let run = run_pipeline(&app, "vars", no_options()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(count(&app, "picked").await, 3, "the defaults apply");

    let run = run_pipeline(
        &app,
        "vars",
        json!({"vars": {"min_id": 4, "label": "late"}}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["vars"], json!({"min_id": 4, "label": "late"}), "{run}");
    let rows = query(&app, "SELECT id, label FROM picked").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["label"], "late");

    let refused = app
        .post("/api/pipelines/vars/runs", json!({"vars": {"nope": 1}}))
        .await;
    let problem = expect_json(refused, 400).await;
    let text = problem.to_string();
    assert!(
        text.contains("nope") && text.contains("min_id"),
        "{problem}"
    );

    let out = pipeline_cli(
        app.dir.path(),
        &app.db_url,
        &["run", "vars", "--var", "min_id=3"],
    )
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(count(&app, "picked").await, 2);
    // A text var keeps its text (no number parsing), a number var wants a number.
    let out = pipeline_cli(
        app.dir.path(),
        &app.db_url,
        &["run", "vars", "--var", "label=007"],
    )
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        query(&app, "SELECT label FROM picked").await[0]["label"],
        "007"
    );
    let out = pipeline_cli(
        app.dir.path(),
        &app.db_url,
        &["run", "vars", "--var", "min_id=abc"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("integer"),
        "{}",
        output_text(&out)
    );
    let out = pipeline_cli(
        app.dir.path(),
        &app.db_url,
        &["run", "vars", "--var", "minid"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("NAME=VALUE"),
        "{}",
        output_text(&out)
    );
});

/// Two servers on one PostgreSQL database: one upstream success starts one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upstream_success_starts_one_run_across_two_servers() {
    let files = [
        ("pipelines/ingest.toml", INGEST.as_bytes()),
        ("pipelines/report.toml", REPORT.as_bytes()),
        ("data/orders.csv", b"id\n1\n2\n".as_slice()),
    ];
    let Some(first) =
        crate::helpers::spawn_app_with_files(crate::helpers::Backend::Postgres, &files).await
    else {
        return;
    };
    let dir = app_dir(&[
        text("pipelines/ingest.toml", INGEST),
        text("pipelines/report.toml", REPORT),
        text("data/orders.csv", "id\n1\n2\n"),
    ]);
    let second = TestApp::start(dir, first.db_url.clone(), crate::helpers::Backend::Postgres).await;
    // Starting the second server made its superuser token the current one.
    armed(&first, "report", "after:ingest").await;
    for _ in 0..3 {
        let run = run_pipeline(&second, "ingest", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let before = runs_of(&second, "report").await.len();
        for _ in 0..200 {
            if runs_of(&second, "report").await.len() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Both servers look every 2 s; give the slower one time to (not) fire as well.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            runs_of(&second, "report").await.len(),
            before + 1,
            "one success, one run; logs:\n{}\n---\n{}",
            first.logs(),
            second.logs()
        );
    }
}
