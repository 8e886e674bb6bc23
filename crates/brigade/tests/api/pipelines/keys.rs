//! Keys mean one row each: a full refresh keeps one row per primary key, reported row counts
//! are the rows in the table, and an exposed model with repeated record ids is refused before
//! it replaces the published collection.

use serde_json::json;

use super::support::*;
use crate::helpers::{expect_json, write_file};

const PEOPLE: &str = r#"
name = "people"
retries = 0

[[extract]]
name = "people"
from = "file"
path = "data/people.csv"
primary_key = ["id"]
"#;

files_test!(
    a_full_refresh_keeps_one_row_per_primary_key,
    vec![
        text("pipelines/people.toml", PEOPLE),
        text("data/people.csv", "id,name\n1,ann\n1,anne\n2,bo\n"),
    ],
    |app| async move {
        let run = run_pipeline(&app, "people", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(count(&app, "people").await, 2);
        assert_eq!(step(&run, "people")["rows_out"], 2, "{run}");

        write_file(
            app.dir.path(),
            "data/people.csv",
            b"id,name\n1,a\n1,b\n2,c\n3,d\n3,e\n3,f\n",
        );
        for _ in 0..2 {
            let run = run_pipeline(&app, "people", json!({ "full_refresh": true })).await;
            assert_eq!(run["status"], "succeeded", "{run}");
            let s = step(&run, "people");
            assert_eq!(s["rows_in"], 6, "{run}");
            assert_eq!(s["rows_out"], 3, "the rows in the table: {run}");
            assert_eq!(s["rows_dropped"], 3, "repeated keys: {run}");
            let rows = query(&app, "SELECT id, name FROM people ORDER BY id").await;
            let got: Vec<(i64, String)> = rows
                .iter()
                .map(|r| {
                    (
                        r["id"].as_i64().unwrap(),
                        r["name"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                [(1, "b".into()), (2, "c".into()), (3, "f".into())],
                "one row per key, the last one wins"
            );
        }

        // Merges after the rebuild still find the key.
        write_file(app.dir.path(), "data/people.csv", b"id,name\n2,cy\n4,dee\n");
        let run = run_pipeline(&app, "people", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(count(&app, "people").await, 4);
        let dup = query(
            &app,
            "SELECT count(*) AS n FROM (SELECT id FROM people GROUP BY id HAVING count(*) > 1) d",
        )
        .await;
        assert_eq!(dup[0]["n"], 0, "no repeated key: {dup:?}");
    }
);

const EXPOSED: &str = r#"
name = "teams"
retries = 0

[[extract]]
name = "raw_members"
from = "file"
path = "data/members.csv"

[[model]]
name = "team_api"
query = "SELECT team, member FROM {{ ref('raw_members') }}"
expose = true
unique_key = "team"
list_rule = ""

[[model]]
name = "latest_member"
materialized = "incremental"
unique_key = "team"
query = "SELECT team, member FROM {{ ref('raw_members') }}"
"#;

files_test!(
    an_exposed_model_with_repeated_keys_fails_and_keeps_the_published_records,
    vec![
        text("pipelines/teams.toml", EXPOSED),
        text("data/members.csv", "team,member\nred,ann\nblue,bo\n"),
    ],
    |app| async move {
        let run = run_pipeline(&app, "teams", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(app.count("team_api").await, 2);
        let red = expect_json(app.get("/api/collections/team_api/records/red").await, 200).await;
        assert_eq!(red["member"], "ann", "{red}");

        write_file(
            app.dir.path(),
            "data/members.csv",
            b"team,member\nred,ann\nred,cy\nblue,bo\nblue,di\nblue,ed\ngreen,fay\n",
        );
        let run = run_pipeline(&app, "teams", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = step(&run, "team_api")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            error.contains("2 key(s) repeat")
                && error.contains("`blue` (3 rows)")
                && error.contains("`red` (2 rows)"),
            "names the repeated keys and their count: {error}"
        );
        // The published collection is the previous one.
        assert_eq!(app.count("team_api").await, 2);
        assert_eq!(count(&app, "team_api").await, 2);
        let red = expect_json(app.get("/api/collections/team_api/records/red").await, 200).await;
        assert_eq!(red["member"], "ann", "{red}");

        // Without the exposed model, the incremental one merges on its key and reports the
        // rows its table holds.
        let pipeline = EXPOSED
            .split("[[model]]\nname = \"team_api\"")
            .next()
            .unwrap()
            .to_string()
            + "[[model]]\nname = \"latest_member\"\nmaterialized = \"incremental\"\nunique_key = \"team\"\nquery = \"SELECT team, member FROM {{ ref('raw_members') }}\"\n";
        write_file(app.dir.path(), "pipelines/teams.toml", pipeline.as_bytes());
        let run = run_pipeline(&app, "teams", json!({ "full_refresh": true })).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let s = step(&run, "latest_member");
        assert_eq!(count(&app, "latest_member").await, 3);
        assert_eq!(s["rows_out"], 3, "the rows in the table: {run}");
        assert_eq!(s["rows_in"], 6, "{run}");
    }
);
