//! Runs over the API: steps, counts, expectations, quarantine, lineage columns, reruns.

use serde_json::json;

use super::support::*;
use crate::helpers::{expect_json, expect_problem};

files_test!(
    a_run_loads_bronze_builds_models_and_records_everything,
    flights_app(),
    |app| async move {
        let list = expect_json(app.get("/api/pipelines").await, 200).await;
        assert_eq!(list[0]["name"], "flights", "{list}");
        assert!(list[0]["last_run"].is_null(), "{list}");

        let run = run_pipeline(&app, "flights", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["trigger"], "api");
        let names: Vec<&str> = run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "raw_flights",
                "raw_airlines",
                "silver_flights",
                "gold_carrier"
            ]
        );

        let raw = step(&run, "raw_flights");
        assert_eq!(
            (raw["kind"].as_str(), raw["layer"].as_str()),
            (Some("extract"), Some("bronze"))
        );
        assert_eq!(raw["rows_out"], 6, "{raw}");
        let silver = step(&run, "silver_flights");
        assert_eq!(
            (
                silver["rows_in"].as_u64(),
                silver["rows_out"].as_u64(),
                silver["rows_dropped"].as_u64()
            ),
            (Some(6), Some(5), Some(1)),
            "{silver}"
        );
        assert_eq!(expectation(silver, "departed")["status"], "dropped");
        assert_eq!(expectation(silver, "departed")["failing_rows"], 1);
        assert_eq!(
            expectation(silver, "known_plane")["status"],
            "passed",
            "the NA tailnum row was dropped first"
        );
        assert_eq!(
            expectation(step(&run, "gold_carrier"), "has_flights")["status"],
            "passed"
        );

        // Typed, NULL-correct bronze with lineage columns.
        let rows = query(&app, "SELECT dep_time, dep_delay, tailnum, _batch_id, _source, _loaded_at FROM raw_flights WHERE carrier = 'AA'").await;
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0]["dep_time"].is_null() && rows[0]["tailnum"].is_null(),
            "{rows:?}"
        );
        assert_eq!(rows[0]["_batch_id"], run["id"]);
        assert_eq!(rows[0]["_source"], "data/flights.csv.gz");
        assert!(
            rows[0]["_loaded_at"]
                .as_str()
                .is_some_and(|s| s.starts_with("20")),
            "{rows:?}"
        );
        let delays = query(
            &app,
            "SELECT dep_delay FROM raw_flights WHERE tailnum = 'N39463'",
        )
        .await;
        assert_eq!(delays[0]["dep_delay"], json!(30.5));

        // Dropped rows are kept, with the run and the expectation.
        let quarantined = query(
            &app,
            "SELECT _run_id, _expectation, carrier FROM silver_flights__quarantine",
        )
        .await;
        assert_eq!(quarantined.len(), 1, "{quarantined:?}");
        assert_eq!(quarantined[0]["_run_id"], run["id"]);
        assert_eq!(quarantined[0]["_expectation"], "departed");
        assert_eq!(quarantined[0]["carrier"], "AA");

        let gold = query(
            &app,
            "SELECT carrier, airline, flights FROM gold_carrier ORDER BY carrier",
        )
        .await;
        assert_eq!(gold.len(), 3, "{gold:?}");
        assert_eq!(gold[2]["carrier"], "UA");
        assert_eq!(gold[2]["airline"], "United Air Lines Inc.");
        assert_eq!(gold[2]["flights"], 3);

        // A second run replaces (snapshot extract) and merges (keyed extract): same counts.
        let again = run_pipeline(&app, "flights", no_options()).await;
        assert_eq!(again["status"], "succeeded", "{again}");
        assert_eq!(count(&app, "raw_flights").await, 6);
        assert_eq!(count(&app, "raw_airlines").await, 4);
        assert_eq!(count(&app, "silver_flights").await, 5);

        let list = expect_json(app.get("/api/pipelines").await, 200).await;
        assert_eq!(list[0]["last_run"]["id"], again["id"], "{list}");
        assert_eq!(list[0]["last_run"]["status"], "succeeded");
        let runs = expect_json(app.get("/api/pipelines/flights/runs").await, 200).await;
        assert_eq!(runs["items"].as_array().map(Vec::len), Some(2), "{runs}");
        assert_eq!(runs["items"][0]["id"], again["id"], "newest first");
    }
);

files_test!(
    unknown_pipelines_runs_and_bad_bodies_are_clear_errors,
    flights_app(),
    |app| async move {
        expect_problem(
            app.post("/api/pipelines/nope/runs", no_options()).await,
            404,
            None,
        )
        .await;
        expect_problem(app.get("/api/runs/nope").await, 404, None).await;
        expect_problem(
            app.post("/api/pipelines/flights/runs", json!({"full_refrsh": true}))
                .await,
            400,
            Some("full_refrsh"),
        )
        .await;
        expect_problem(
            app.post("/api/pipelines/flights/runs", json!({"from_step": "nope"}))
                .await,
            400,
            Some("from_step"),
        )
        .await;
        let anon = app.anon_get("/api/pipelines").await;
        assert_eq!(anon.status(), 401);
        // A backfill needs cursor values and an incremental extract to apply to.
        expect_problem(
            app.post(
                "/api/pipelines/flights/runs",
                json!({"backfill": {"from": [1], "to": {}}}),
            )
            .await,
            400,
            Some("backfill"),
        )
        .await;
        expect_problem(
            app.post(
                "/api/pipelines/flights/runs",
                json!({"backfill": {"from": 1, "to": 2}}),
            )
            .await,
            400,
            Some("backfill"),
        )
        .await;
        // A body that is not declared JSON.
        let res = app
            .request(reqwest::Method::POST, "/api/pipelines/flights/runs")
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .expect("the server answers");
        assert_eq!(res.status(), 415);
    }
);

/// A pipeline that loads `data/bulk.csv` (replaced on every run).
const BULK: &str = r#"
retries = 0

[[extract]]
name = "bulk"
from = "file"
path = "data/bulk.csv"
"#;

files_test!(
    run_events_stream_the_run_until_it_finishes,
    vec![
        text("pipelines/bulk.toml", BULK),
        text("data/bulk.csv", &numbered_csv(1, 200_000)),
    ],
    |app| async move {
        let started = expect_json(
            app.post("/api/pipelines/bulk/runs", no_options()).await,
            202,
        )
        .await;
        let id = started["run_id"].as_str().unwrap();
        let events = run_events(&app, id).await;
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"run"), "a snapshot first: {names:?}");
        let snapshot = &events[0].1;
        assert_eq!(snapshot["id"], id, "{snapshot}");
        assert!(
            matches!(snapshot["status"].as_str(), Some("queued" | "running")),
            "the run should still be going when the stream opens (make the file bigger): {snapshot}"
        );
        let finished = events
            .iter()
            .find(|(n, _)| n == "run_finished")
            .unwrap_or_else(|| panic!("no run_finished in {names:?}"));
        assert_eq!(finished.1["run_id"], id, "{}", finished.1);
        assert_eq!(finished.1["status"], "succeeded", "{}", finished.1);
        let step_done = events
            .iter()
            .find(|(n, _)| n == "step_finished")
            .unwrap_or_else(|| panic!("no step_finished in {names:?}"));
        assert_eq!(step_done.1["step"]["name"], "bulk", "{}", step_done.1);
        assert_eq!(step_done.1["step"]["rows_out"], 200_000, "{}", step_done.1);
        let last = &events.last().unwrap().1;
        assert_eq!(
            last["status"], "succeeded",
            "the stream ends on the final state: {last}"
        );

        // A finished run's stream is its record, then the end.
        let again = run_events(&app, id).await;
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].0, "run");
        assert_eq!(again[0].1["status"], "succeeded");
    }
);

files_test!(
    cancelling_a_long_run_leaves_the_table_unchanged,
    vec![
        text("pipelines/bulk.toml", BULK),
        text("data/bulk.csv", &numbered_csv(1, 100)),
    ],
    |app| async move {
        let run = run_pipeline(&app, "bulk", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(count(&app, "bulk").await, 100);

        crate::helpers::write_file(
            app.dir.path(),
            "data/bulk.csv",
            numbered_csv(1, 400_000).as_bytes(),
        );
        let started = expect_json(
            app.post("/api/pipelines/bulk/runs", no_options()).await,
            202,
        )
        .await;
        let id = started["run_id"].as_str().unwrap();
        // Cancel in the middle of the load: once the run reports rows loaded.
        wait_until_loading(&app, id).await;
        let cancel = expect_json(
            app.post(&format!("/api/runs/{id}/cancel"), no_options())
                .await,
            202,
        )
        .await;
        assert_eq!(cancel["run_id"], id, "{cancel}");
        let run = wait(&app, id).await;
        assert_eq!(run["status"], "cancelled", "{run}");
        assert!(
            matches!(step(&run, "bulk")["status"].as_str(), Some("cancelled")),
            "{run}"
        );
        assert!(run["finished"].is_string(), "{run}");
        assert_eq!(
            count(&app, "bulk").await,
            100,
            "the bronze table is as it was"
        );
        let left = staging_tables(app.backend, &app.db_url).await;
        assert!(left.is_empty(), "staged rows are discarded: {left:?}");

        let problem = expect_problem(
            app.post(&format!("/api/runs/{id}/cancel"), no_options())
                .await,
            409,
            None,
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("cancelled")),
            "{problem}"
        );
        let done = run_pipeline(&app, "bulk", no_options()).await;
        let done_id = done["id"].as_str().unwrap();
        expect_problem(
            app.post(&format!("/api/runs/{done_id}/cancel"), no_options())
                .await,
            409,
            None,
        )
        .await;
        expect_problem(
            app.post("/api/runs/nope/cancel", no_options()).await,
            404,
            None,
        )
        .await;
    }
);

backend_test!(
    a_failed_run_is_posted_to_the_on_failure_webhook,
    |backend| async move {
        let (url, mut hooks) = webhook_receiver().await;
        let on_failure = format!("on_failure = {{ webhook = \"{url}\" }}\n");
        let ok = format!("{on_failure}{BULK}");
        let broken = format!(
            "{on_failure}[[extract]]\nname = \"gone\"\nfrom = \"file\"\npath = \"data/missing.csv\"\n"
        );
        let files = [
            ("pipelines/ok.toml", ok.as_bytes()),
            ("pipelines/broken.toml", broken.as_bytes()),
            ("data/bulk.csv", b"id,name\n1,a\n".as_slice()),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        let run = run_pipeline(&app, "ok", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let failed = run_pipeline(&app, "broken", no_options()).await;
        assert_eq!(failed["status"], "failed", "{failed}");

        let body = tokio::time::timeout(std::time::Duration::from_secs(10), hooks.recv())
            .await
            .unwrap_or_else(|_| panic!("no webhook call within 10 s; log:\n{}", app.logs()))
            .expect("webhook body");
        assert_eq!(
            body["run"]["id"], failed["id"],
            "only the failed run is posted: {body}"
        );
        assert_eq!(body["event"], "run_failed", "{body}");
        assert_eq!(body["run"]["pipeline"], "broken", "{body}");
        assert_eq!(body["run"]["status"], "failed", "{body}");
        assert_eq!(body["run"]["error"], failed["error"], "{body}");
        assert!(
            body["run"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("data/missing.csv")),
            "{body}"
        );
        assert_eq!(body["run"]["steps"][0]["status"], "failed", "{body}");
        assert!(hooks.try_recv().is_err(), "one call per failed run");
    }
);

files_test!(
    metrics_count_runs_and_rows,
    flights_app(),
    |app| async move {
        let run = run_pipeline(&app, "flights", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let res = app.get("/metrics").await;
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let line = |prefix: &str, parts: &[&str]| {
            text.lines()
                .any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
        };
        assert!(
            line(
                "pipeline_runs_total{",
                &["pipeline=\"flights\"", "status=\"succeeded\"", "} 1"]
            ),
            "no pipeline_runs_total for the run:\n{text}"
        );
        assert!(
            line(
                "pipeline_rows_total{",
                &["pipeline=\"flights\"", "step=\"raw_flights\"", "} 6"]
            ),
            "no pipeline_rows_total for raw_flights:\n{text}"
        );
        assert!(text.contains("expectation_failures_total"), "{text}");
    }
);

/// The `at` of every `Starting a scheduled run.` line in a server log.
fn scheduled_firings(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "Starting a scheduled run.")
        .map(|v| v["fields"]["at"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Two servers on one PostgreSQL database: each firing of a schedule runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_tick_across_two_servers() {
    let pipeline =
        "schedule = \"* * * * * *\"\n\n[[model]]\nname = \"tick\"\nquery = \"SELECT 1 AS x\"\n";
    let files = [("pipelines/tick.toml", pipeline.as_bytes())];
    let Some(first) =
        crate::helpers::spawn_app_with_files(crate::helpers::Backend::Postgres, &files).await
    else {
        return;
    };
    let dir = app_dir(&[text("pipelines/tick.toml", pipeline)]);
    let second = crate::helpers::TestApp::start(
        dir,
        first.db_url.clone(),
        crate::helpers::Backend::Postgres,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    // Compare whole seconds up to a cutoff safely in the past, so a firing in flight while
    // this reads does not count on one side only.
    let cutoff = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second_of = |t: &str| t.chars().take(19).collect::<String>();
    let mut fired: Vec<String> = [first.logs(), second.logs()]
        .iter()
        .flat_map(|log| scheduled_firings(log))
        .map(|at| second_of(&at))
        .filter(|at| *at <= cutoff)
        .collect();
    let runs = query(
        &first,
        "SELECT created FROM _pipeline_runs WHERE pipeline = 'tick' AND trigger = 'schedule' \
         ORDER BY created",
    )
    .await;
    drop(second);
    drop(first);

    fired.sort();
    let mut unique = fired.clone();
    unique.dedup();
    assert_eq!(unique, fired, "a firing was claimed twice");
    assert!(
        fired.len() >= 2,
        "the schedule fires every second: {fired:?}"
    );
    let seconds: Vec<String> = runs
        .iter()
        .map(|r| second_of(r["created"].as_str().unwrap_or_default()))
        .filter(|s| *s <= cutoff)
        .collect();
    assert_eq!(
        seconds, fired,
        "one run per firing, none twice in a second: {runs:?}"
    );
}
