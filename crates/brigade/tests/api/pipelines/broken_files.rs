//! One invalid pipeline file disables only its own pipeline: the scheduler keeps firing the
//! others, the API lists it as `invalid` with file, line and reason, a metric counts it, and
//! the CLI runs every other pipeline.

use std::time::Duration;

use super::support::*;
use crate::helpers::expect_json;

/// Fires every second.
const TICKING: &str = "name = \"ticking\"\nschedule = \"* * * * * *\"\n\n[[extract]]\nname = \"raw_ticks\"\nfrom = \"file\"\npath = \"data/ticks.csv\"\n";

/// `from` names no source kind (line 4).
const BROKEN: &str =
    "name = \"broken\"\n\n[[extract]]\nfrom = \"nowhere\"\nname = \"raw_broken\"\n";

/// Declares a name another file already uses.
const TWIN: &str = "name = \"ticking\"\n\n[[extract]]\nname = \"raw_twin\"\nfrom = \"file\"\npath = \"data/ticks.csv\"\n";

fn app_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        text("pipelines/ticking.toml", TICKING),
        text("pipelines/broken.toml", BROKEN),
        text("pipelines/zz_twin.toml", TWIN),
        text("data/ticks.csv", "id,tick\n1,a\n2,b\n"),
    ]
}

files_test!(
    a_broken_file_beside_a_scheduled_pipeline_disables_only_itself,
    app_files(),
    |app| async move {
        // The scheduled pipeline keeps firing.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let scheduled = loop {
            let runs = expect_json(app.get("/api/pipelines/ticking/runs").await, 200).await;
            let done = runs["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["trigger"] == "schedule" && r["status"] == "succeeded")
                .cloned();
            if let Some(run) = done {
                break run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no scheduled run of `ticking` succeeded beside a broken file: {runs}\n{}",
                app.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(step(&scheduled, "raw_ticks")["rows_out"], 2, "{scheduled}");

        let list = expect_json(app.get("/api/pipelines").await, 200).await;
        let entry = |name: &str, file: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name && p["file"] == file)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} ({file}) in {list}"))
        };
        assert_eq!(
            entry("ticking", "pipelines/ticking.toml")["status"],
            "valid"
        );
        let broken = entry("broken", "pipelines/broken.toml");
        assert_eq!(broken["status"], "invalid", "{broken}");
        assert_eq!(broken["error"]["line"], 4, "{broken}");
        assert!(
            broken["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nowhere")),
            "{broken}"
        );
        let twin = entry("ticking", "pipelines/zz_twin.toml");
        assert_eq!(twin["status"], "invalid", "{twin}");
        assert!(
            twin["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("already defined in pipelines/ticking.toml")),
            "the second file with a name is the broken one: {twin}"
        );

        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.lines().any(|l| l == "pipeline_invalid_files 2"),
            "an alertable gauge counts invalid files:\n{metrics}"
        );
        assert!(
            app.logs().contains("A pipeline file is invalid"),
            "the server log says so:\n{}",
            app.logs()
        );

        // The CLI runs the valid pipeline, refuses the broken one with its reason, and
        // lists both.
        let ok = pipeline_cli(app.dir.path(), &app.db_url, &["run", "ticking"]).await;
        assert!(ok.status.success(), "{}", output_text(&ok));
        let refused = pipeline_cli(app.dir.path(), &app.db_url, &["run", "broken"]).await;
        assert_eq!(refused.status.code(), Some(2), "{}", output_text(&refused));
        assert!(
            output_text(&refused).contains("pipelines/broken.toml:4"),
            "{}",
            output_text(&refused)
        );
        let listed = pipeline_cli(app.dir.path(), &app.db_url, &["list"]).await;
        assert!(listed.status.success(), "{}", output_text(&listed));
        let shown = output_text(&listed);
        assert!(
            shown.contains("INVALID") && shown.contains("pipelines/broken.toml:4"),
            "{shown}"
        );
    }
);
