//! Runs over the API: steps, counts, expectations, quarantine, lineage columns, reruns.

use serde_json::json;

use super::support::*;
use crate::helpers::{expect_json, expect_problem};

pipeline_test!(
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

pipeline_test!(
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
    }
);
