//! `run_on_start`: a fresh app runs the pipeline once when the server starts, the server log
//! says how each run went, and a run that did not succeed is tried again at the next start.

use std::time::{Duration, Instant};

use super::support::*;
use crate::helpers::{TestApp, write_file};

const PIPELINE: &str = r#"
name = "inbox"
run_on_start = true

[[extract]]
name = "letters"
from = "file"
path = "inbox/letters.csv"
"#;

/// Waits until the server's log has a line containing `needle`.
async fn logged(app: &TestApp, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let logs = app.logs();
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no `{needle}` in the log within 60 s:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

backend_test!(
    a_run_on_start_that_failed_is_logged_and_runs_again_at_the_next_start,
    |backend| async move {
        let dir = app_dir(&[text("pipelines/inbox.toml", PIPELINE)]);
        let Some(url) = backend.fresh_database_url(dir.path()).await else {
            return;
        };
        let app = TestApp::start(dir, url, backend).await;
        let logs = logged(&app, "Pipeline run failed.").await;
        assert!(logs.contains("Pipeline run started."), "{logs}");
        let failed = logs
            .lines()
            .find(|l| l.contains("Pipeline run failed."))
            .unwrap();
        assert!(
            failed.contains("no file matches `inbox/letters.csv`"),
            "the reason is logged: {failed}"
        );
        assert!(
            failed.contains("brigade pipeline run inbox"),
            "so is how to retry: {failed}"
        );
        let (dir, url, _) = app.stop().await;

        // The next start tries again, and this time the file is there.
        write_file(dir.path(), "inbox/letters.csv", b"id,to\n1,Ada\n2,Grace\n");
        let app = TestApp::start(dir, url, backend).await;
        let logs = logged(&app, "Pipeline run succeeded.").await;
        assert!(
            logs.contains("Running a pipeline again: it has not succeeded yet"),
            "{logs}"
        );
        let succeeded = logs
            .lines()
            .find(|l| l.contains("Pipeline run succeeded."))
            .unwrap();
        assert!(succeeded.contains("\"rows\":2"), "{succeeded}");
        assert_eq!(count(&app, "letters").await, 2);
        let (dir, url, _) = app.stop().await;

        // Once it succeeded, a start runs nothing.
        let app = TestApp::start(dir, url, backend).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let runs = query(&app, "SELECT status FROM _pipeline_runs").await;
        assert_eq!(runs.len(), 2, "{runs:?}\n{}", app.logs());
    }
);
