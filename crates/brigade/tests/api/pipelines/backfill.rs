//! Backfills of incremental extracts and lineage over the API.

use serde_json::json;

use super::support::*;
use crate::helpers::{expect_json, write_file};

const EVENTS: &str = "name = \"events\"\n\n[[extract]]\nname = \"raw_events\"\nfrom = \"file\"\npath = \"data/events.csv\"\nincremental = { cursor = \"day\" }\n";

fn events_app() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        text("pipelines/events.toml", EVENTS),
        text("data/events.csv", "day,value\n1,a\n2,b\n3,c\n4,d\n5,e\n"),
    ]
}

files_test!(
    a_backfill_replaces_a_cursor_range_and_keeps_the_cursor,
    events_app(),
    |app| async move {
        let first = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(first["status"], "succeeded", "{first}");
        assert_eq!(count(&app, "raw_events").await, 5);

        // The source corrects days 2 and 3 and gains day 6.
        write_file(
            app.dir.path(),
            "data/events.csv",
            b"day,value\n1,a\n2,B\n3,C\n4,d\n5,e\n6,f\n",
        );
        let backfill =
            run_pipeline(&app, "events", json!({"backfill": {"from": 2, "to": 4}})).await;
        assert_eq!(backfill["status"], "succeeded", "{backfill}");
        assert_eq!(backfill["backfill"], json!({"from": 2, "to": 4}));
        assert_eq!(step(&backfill, "raw_events")["rows_out"], 2, "{backfill}");
        let rows = query(&app, "SELECT day, value FROM raw_events ORDER BY day").await;
        let got: Vec<String> = rows
            .iter()
            .map(|r| format!("{}{}", r["day"], r["value"].as_str().unwrap_or("?")))
            .collect();
        assert_eq!(
            got,
            ["1a", "2B", "3C", "4d", "5e"],
            "days 2-3 replaced, day 6 not loaded"
        );

        // The cursor still points at day 5: the next run loads day 6 only.
        let next = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(step(&next, "raw_events")["rows_out"], 1, "{next}");
        assert_eq!(count(&app, "raw_events").await, 6);
    }
);

files_test!(
    lineage_names_the_source_columns_of_each_gold_column,
    flights_app(),
    |app| async move {
        let before = expect_json(app.get("/api/pipelines/flights/lineage").await, 200).await;
        let gold = before["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "gold_carrier")
            .unwrap()
            .clone();
        assert_eq!(gold["depends_on"], json!(["silver_flights"]));

        let run = run_pipeline(&app, "flights", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let lineage = expect_json(app.get("/api/pipelines/flights/lineage").await, 200).await;
        let gold = lineage["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "gold_carrier")
            .unwrap();
        let column = |name: &str| {
            gold["columns"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap_or_else(|| panic!("{gold}"))
                .clone()
        };
        assert_eq!(column("airline")["from"], json!(["silver_flights.airline"]));
        assert_eq!(
            column("airline")["sources"],
            json!(["raw_airlines.name"]),
            "followed through silver to bronze"
        );
        assert_eq!(
            column("avg_dep_delay")["sources"],
            json!(["raw_flights.dep_delay"])
        );
        assert_eq!(
            column("flights")["sources"],
            json!([]),
            "COUNT(*) reads no column"
        );
        expect_json(app.get("/api/pipelines/nope/lineage").await, 404).await;
    }
);

files_test!(
    pipeline_files_added_or_broken_after_start_are_seen,
    events_app(),
    |app| async move {
        let names = |list: &serde_json::Value| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        };
        let list = expect_json(app.get("/api/pipelines").await, 200).await;
        assert_eq!(names(&list), ["events"]);

        write_file(app.dir.path(), "pipelines/more.toml", b"schedule = \"0 4 * * *\"\n\n[[extract]]\nname = \"raw_more\"\nfrom = \"file\"\npath = \"data/events.csv\"\n");
        let list = expect_json(app.get("/api/pipelines").await, 200).await;
        assert_eq!(
            names(&list),
            ["events", "more"],
            "no restart needed: {list}"
        );
        assert!(
            list[1]["next_run"]
                .as_str()
                .is_some_and(|t| t.contains("T04:00:00")),
            "{list}"
        );
        let run = run_pipeline(&app, "more", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");

        write_file(
            app.dir.path(),
            "pipelines/more.toml",
            b"[[extract]]\nname = \"raw_more\"\nfrom = \"nowhere\"\n",
        );
        // A broken file disables only its own pipeline: the list shows why, the others run.
        let list = expect_json(app.get("/api/pipelines").await, 200).await;
        assert_eq!(names(&list), ["events", "more"], "{list}");
        assert_eq!(list[0]["status"], "valid", "{list}");
        assert_eq!(list[1]["status"], "invalid", "{list}");
        assert_eq!(list[1]["error"]["file"], "pipelines/more.toml", "{list}");
        assert_eq!(list[1]["error"]["line"], 3, "{list}");
        assert!(
            list[1]["error"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("pipelines/more.toml:3") && d.contains("from")),
            "{list}"
        );
        assert_eq!(
            list[1]["last_run"]["status"], "succeeded",
            "its history stays visible: {list}"
        );
        let shown = expect_json(app.get("/api/pipelines/more").await, 200).await;
        assert_eq!(shown["status"], "invalid", "{shown}");
        let events = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(events["status"], "succeeded", "{events}");
        let refused = crate::helpers::expect_problem(
            app.post("/api/pipelines/more/runs", no_options()).await,
            422,
            None,
        )
        .await;
        assert!(
            refused["detail"]
                .as_str()
                .is_some_and(|d| d.contains("pipelines/more.toml:3")),
            "{refused}"
        );
    }
);

const SLOW: &str =
    "retries = 0\n\n[[extract]]\nname = \"bulk\"\nfrom = \"file\"\npath = \"data/bulk.csv\"\n";

files_test!(
    sigterm_stops_running_pipelines_and_leaves_no_run_running,
    vec![
        text("pipelines/slow.toml", SLOW),
        text("data/bulk.csv", &numbered_csv(1, 50))
    ],
    |mut app| async move {
        let first = run_pipeline(&app, "slow", no_options()).await;
        assert_eq!(first["status"], "succeeded", "{first}");
        write_file(
            app.dir.path(),
            "data/bulk.csv",
            numbered_csv(1, 600_000).as_bytes(),
        );
        let started = expect_json(
            app.post("/api/pipelines/slow/runs", no_options()).await,
            202,
        )
        .await;
        let id = started["run_id"].as_str().unwrap().to_string();
        wait_until_loading(&app, &id).await;
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &app.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(killed.success());
        let status = app.wait_for_exit(std::time::Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "exit: {status:?}\n{}",
            app.logs()
        );
        // Checked straight in the database, before any restart could recover it.
        let rows = query(
            &app,
            &format!("SELECT status, error FROM _pipeline_runs WHERE id = '{id}'"),
        )
        .await;
        assert!(
            matches!(rows[0]["status"].as_str(), Some("cancelled" | "failed")),
            "a stopped server left the run {:?}",
            rows[0]
        );
        assert_eq!(
            count(&app, "bulk").await,
            50,
            "nothing of the interrupted load was published"
        );
    }
);
