//! Notifications and source freshness: `[[notify]]` webhooks get run outcomes, scheduled
//! runs that did not happen (a broken file, no process up) and stale sources, each with the
//! reason; freshness shows in the API, the CLI and the metrics.

use std::time::Duration;

use serde_json::Value;

use super::support::*;
use crate::helpers::{TestApp, expect_json, write_file};

/// The next webhook body whose `event` is `event`, within 20 s.
async fn next_event(
    hooks: &mut tokio::sync::mpsc::Receiver<Value>,
    event: &str,
    app: &TestApp,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, hooks.recv()).await {
            Ok(Some(body)) if body["event"] == event => return body,
            Ok(Some(_)) => {}
            _ => panic!(
                "no `{event}` notification within 20 s; log:\n{}",
                app.logs()
            ),
        }
    }
}

fn notify(url: &str, on: &str) -> String {
    format!("[[notify]]\nwebhook = \"{url}\"\non = {on}\n\n")
}

backend_test!(
    notify_webhooks_receive_successes_and_failures_with_the_reason,
    |backend| async move {
        let (url, mut hooks) = webhook_receiver().await;
        let hook = notify(&url, "[\"success\", \"failure\"]");
        let ok = format!(
            "{hook}[[extract]]\nname = \"raw_ok\"\nfrom = \"file\"\npath = \"data/ok.csv\"\n"
        );
        let bad = format!(
            "{hook}[[extract]]\nname = \"raw_gone\"\nfrom = \"file\"\npath = \"data/missing.csv\"\n"
        );
        let files = [
            ("pipelines/ok.toml", ok.as_bytes()),
            ("pipelines/bad.toml", bad.as_bytes()),
            ("data/ok.csv", b"id,name\n1,a\n".as_slice()),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        let run = run_pipeline(&app, "ok", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let body = next_event(&mut hooks, "run_succeeded", &app).await;
        assert_eq!(body["pipeline"], "ok", "{body}");
        assert_eq!(body["run"]["id"], run["id"], "{body}");

        let failed = run_pipeline(&app, "bad", no_options()).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        let body = next_event(&mut hooks, "run_failed", &app).await;
        assert_eq!(body["pipeline"], "bad", "{body}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("data/missing.csv") && reason.contains("brigade pipeline retry"),
            "the reason says what failed and what to do: {body}"
        );
    }
);

/// Fires every second; `data/ticks.csv` exists.
fn ticking(hook: &str) -> String {
    format!(
        "name = \"ticking\"\nschedule = \"* * * * * *\"\n{hook}[[extract]]\nname = \"raw_ticks\"\nfrom = \"file\"\npath = \"data/ticks.csv\"\n"
    )
}

backend_test!(
    a_scheduled_pipeline_whose_file_breaks_reports_each_missed_firing,
    |backend| async move {
        let (url, mut hooks) = webhook_receiver().await;
        let hook = notify(&url, "[\"missed\"]");
        let pipeline = ticking(&hook);
        let files = [
            ("pipelines/ticking.toml", pipeline.as_bytes()),
            ("data/ticks.csv", b"id,tick\n1,a\n".as_slice()),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        // Valid: it fires. Then the file breaks (line 6 names no source kind).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let runs = expect_json(app.get("/api/pipelines/ticking/runs").await, 200).await;
            if runs["items"].as_array().is_some_and(|r| !r.is_empty()) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never fired: {runs}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let broken = pipeline.replace("from = \"file\"", "from = \"nowhere\"");
        write_file(app.dir.path(), "pipelines/ticking.toml", broken.as_bytes());
        let body = next_event(&mut hooks, "run_missed", &app).await;
        assert_eq!(body["pipeline"], "ticking", "{body}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("pipelines/ticking.toml") && reason.contains("nowhere"),
            "the reason names the broken file: {body}"
        );
        assert!(body["scheduled_at"].is_string(), "{body}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("pipeline_missed_runs_total{")
                    && l.contains("pipeline=\"ticking\"")
                    && l.contains("reason=\"refused\"")),
            "{metrics}"
        );
    }
);

backend_test!(
    firings_missed_while_no_process_ran_are_notified_at_start,
    |backend| async move {
        let (url, mut hooks) = webhook_receiver().await;
        let hook = notify(&url, "[\"missed\"]");
        let pipeline = format!(
            "name = \"nightly\"\nschedule = \"0 3 * * *\"\n{hook}[[extract]]\nname = \"raw_nightly\"\nfrom = \"file\"\npath = \"data/n.csv\"\n"
        );
        let dir = app_dir(&[
            text("pipelines/nightly.toml", &pipeline),
            text("data/n.csv", "id\n1\n"),
        ]);
        let Some(db_url) = backend.fresh_database_url(dir.path()).await else {
            return;
        };
        // The last firing any process claimed was in 2020; nobody ran since.
        let listed = pipeline_cli(dir.path(), &db_url, &["list"]).await;
        assert!(listed.status.success(), "{}", output_text(&listed));
        execute_at(
            backend,
            &db_url,
            "INSERT INTO _pipeline_schedule (pipeline, last_fire) VALUES ('nightly', '2020-01-01T03:00:00.000Z')",
        )
        .await;
        let app = TestApp::start(dir, db_url, backend).await;
        let body = next_event(&mut hooks, "run_missed", &app).await;
        assert_eq!(body["pipeline"], "nightly", "{body}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("no Brigade process was running"), "{body}");
        let scheduled = body["scheduled_at"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(scheduled.ends_with("T03:00:00.000Z"), "{body}");
        let now = chrono::Utc::now().to_rfc3339();
        assert!(scheduled.as_str() < now.as_str(), "{body}");
        let rows = query(
            &app,
            "SELECT last_fire FROM _pipeline_schedule WHERE pipeline = 'nightly'",
        )
        .await;
        assert_eq!(
            rows[0]["last_fire"], scheduled,
            "claimed, so other processes do not notify it again"
        );
    }
);

const STALE: &str = "name = \"events\"\n\n[[extract]]\nname = \"raw_events\"\nfrom = \"file\"\npath = \"data/events.csv\"\nfreshness = { warn_after = \"12h\", error_after = \"1d\", field = \"day\" }\n\n[[extract]]\nname = \"raw_fresh\"\nfrom = \"file\"\npath = \"data/events.csv\"\nfreshness = { warn_after = \"1h\" }\n";

backend_test!(
    stale_sources_show_in_the_api_cli_and_metrics_and_are_notified,
    |backend| async move {
        let (url, mut hooks) = webhook_receiver().await;
        let pipeline = format!("{STALE}\n{}", notify(&url, "[\"freshness\"]"));
        let files = [
            ("pipelines/events.toml", pipeline.as_bytes()),
            (
                "data/events.csv",
                b"id,day\n1,2020-01-01T00:00:00Z\n2,2020-01-02T00:00:00Z\n".as_slice(),
            ),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        let shown = expect_json(app.get("/api/pipelines/events").await, 200).await;
        assert_eq!(
            shown["freshness"][0]["status"], "unknown",
            "never loaded: {shown}"
        );

        let run = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let body = next_event(&mut hooks, "source_stale", &app).await;
        assert_eq!(body["freshness"]["extract"], "raw_events", "{body}");
        assert_eq!(body["freshness"]["status"], "error", "{body}");
        assert!(
            body["reason"]
                .as_str()
                .is_some_and(|r| r.contains("older than 1d")),
            "{body}"
        );

        let shown = expect_json(app.get("/api/pipelines/events").await, 200).await;
        let f = &shown["freshness"];
        assert_eq!(f[0]["extract"], "raw_events", "{shown}");
        assert_eq!(f[0]["status"], "error", "{shown}");
        assert_eq!(f[0]["newest"], "2020-01-02T00:00:00.000Z", "{shown}");
        assert!(
            f[0]["age_seconds"].as_u64().unwrap() > 86_400 * 365,
            "{shown}"
        );
        assert_eq!(f[1]["status"], "pass", "loaded just now: {shown}");
        let list = expect_json(app.get("/api/pipelines").await, 200).await;
        assert_eq!(list[0]["freshness"], "error", "{list}");

        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("pipeline_source_freshness{")
                    && l.contains("extract=\"raw_events\"")
                    && l.ends_with(" 2")),
            "{metrics}"
        );

        let cli = pipeline_cli(app.dir.path(), &app.db_url, &["freshness", "events"]).await;
        assert_eq!(cli.status.code(), Some(1), "{}", output_text(&cli));
        let out = output_text(&cli);
        assert!(out.contains("raw_events") && out.contains("ERROR"), "{out}");
        assert!(out.contains("raw_fresh") && out.contains("PASS"), "{out}");

        // Only once per stale episode.
        let again = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(again["status"], "succeeded", "{again}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        while let Ok(body) = hooks.try_recv() {
            assert_ne!(body["event"], "source_stale", "notified twice: {body}");
        }
    }
);
