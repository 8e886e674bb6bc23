//! A model runs exactly one query: a second statement after `;` (a piggy-backed
//! `DROP TABLE`) is refused at load and again after rendering, while `;` inside literals,
//! quoted names and comments is fine.

use serde_json::json;

use super::support::*;
use crate::helpers::{expect_problem, write_file};

const TWO_STATEMENTS: &str = r#"
name = "sneaky"
retries = 0

[[extract]]
name = "raw_b"
from = "file"
path = "data/b.csv"

[[model]]
name = "m"
sql = "models/m.sql"
"#;

files_test!(
    a_model_with_a_second_statement_is_refused_and_runs_nothing,
    vec![
        text("pipelines/sneaky.toml", TWO_STATEMENTS),
        text("data/b.csv", "n,s\n1,x\n2,y\n"),
        // A `;` inside a literal, a quoted name and a comment, and a trailing `;`: one query.
        text(
            "models/m.sql",
            "SELECT n, 'a;b' AS s, s AS \"odd;name\" -- yes; really\nFROM {{ ref('raw_b') }};\n-- end\n",
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "sneaky", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let rows = query(&app, "SELECT s FROM m ORDER BY n").await;
        assert_eq!(rows[0]["s"], "a;b", "{rows:?}");
        assert_eq!(count(&app, "raw_b").await, 2);

        // A second statement: the file is refused at load, with its line.
        write_file(
            app.dir.path(),
            "models/m.sql",
            b"SELECT 1 AS n FROM {{ ref('raw_b') }};\n\nDROP TABLE raw_b\n",
        );
        let res = app.post("/api/pipelines/sneaky/runs", json!({})).await;
        let problem = expect_problem(res, 422, None).await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("models/m.sql:3") && detail.contains("one SELECT"),
            "names the file and line: {problem}"
        );
        let out = pipeline_cli(app.dir.path(), &app.db_url, &["run", "sneaky"]).await;
        assert!(!out.status.success(), "{}", output_text(&out));
        assert!(
            output_text(&out).contains("models/m.sql:3"),
            "{}",
            output_text(&out)
        );
        assert_eq!(count(&app, "raw_b").await, 2, "raw_b survives");

        // A statement that only appears once the template renders: refused before it runs.
        write_file(
            app.dir.path(),
            "models/m.sql",
            b"SELECT 1 AS n FROM {{ ref('raw_b') }}{{ ';' }} DROP TABLE raw_b\n",
        );
        let run = run_pipeline(&app, "sneaky", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = step(&run, "m")["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("models/m.sql") && error.contains("one SELECT"),
            "{run}"
        );
        assert_eq!(count(&app, "raw_b").await, 2, "raw_b survives");
        let rows = query(&app, "SELECT s FROM m ORDER BY n").await;
        assert_eq!(rows.len(), 2, "the old table stays: {rows:?}");
    }
);
