//! dbt-style node selection: `--select` / `--exclude` on the CLI and `select` / `exclude` in
//! the run body run only the chosen steps, and a selector that matches nothing is refused.

use serde_json::json;

use super::support::*;
use crate::helpers::expect_json;

/// raw_orders -> clean_orders -> order_totals ; raw_people -> people (tag: crm)
const SHOP: &str = r#"
retries = 0

[[extract]]
name = "raw_orders"
from = "file"
path = "data/orders.csv"
tags = ["sales"]

[[extract]]
name = "raw_people"
from = "file"
path = "data/people.csv"
tags = ["crm"]

[[model]]
name = "clean_orders"
query = "SELECT id, amount FROM {{ ref('raw_orders') }} WHERE amount > 0"
tags = ["sales"]

[[model]]
name = "order_totals"
layer = "gold"
query = "SELECT count(*) AS orders, sum(amount) AS total FROM {{ ref('clean_orders') }}"
tags = ["sales", "finance"]

[[model]]
name = "people"
query = "SELECT id, name FROM {{ ref('raw_people') }}"
tags = ["crm"]
"#;

fn shop() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        text("pipelines/shop.toml", SHOP),
        text("data/orders.csv", "id,amount\n1,10\n2,-3\n3,30\n"),
        text("data/people.csv", "id,name\n1,Ann\n2,Bob\n"),
    ]
}

fn names(run: &serde_json::Value) -> Vec<String> {
    step_statuses(run)
}

files_test!(
    selecting_runs_only_the_chosen_steps,
    shop(),
    |app| async move {
        // One model with its ancestors: its extract and the model between, nothing else.
        let run = run_pipeline(&app, "shop", json!({"select": ["+order_totals"]})).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(
            names(&run),
            [
                "raw_orders:succeeded",
                "clean_orders:succeeded",
                "order_totals:succeeded"
            ],
            "{run}"
        );
        assert_eq!(run["select"], json!(["+order_totals"]));
        assert!(!table_exists(&app, "raw_people").await);
        assert!(!table_exists(&app, "people").await);
        let totals = query(&app, "SELECT orders, total FROM order_totals").await;
        assert_eq!(totals[0]["orders"], 2, "{totals:?}");

        // One model alone: only it runs, reading the tables already there.
        execute(&app, "DELETE FROM raw_orders WHERE id = 3").await;
        let run = run_pipeline(&app, "shop", json!({"select": ["clean_orders"]})).await;
        assert_eq!(names(&run), ["clean_orders:succeeded"], "{run}");
        assert_eq!(count(&app, "clean_orders").await, 1);
        assert_eq!(
            query(&app, "SELECT orders FROM order_totals").await[0]["orders"],
            2,
            "order_totals was not selected, so it still shows the earlier build"
        );

        // Tags, and exclude.
        let run = run_pipeline(
            &app,
            "shop",
            json!({"select": ["tag:crm", "tag:sales"], "exclude": ["raw_orders+1"]}),
        )
        .await;
        assert_eq!(
            names(&run),
            [
                "raw_people:succeeded",
                "order_totals:succeeded",
                "people:succeeded"
            ],
            "{run}"
        );
        assert_eq!(count(&app, "people").await, 2);
        let run = run_pipeline(&app, "shop", json!({"select": ["tag:finance"]})).await;
        assert_eq!(names(&run), ["order_totals:succeeded"], "{run}");
    }
);

files_test!(
    a_selector_matching_nothing_is_refused,
    shop(),
    |app| async move {
        let res = app
            .post(
                "/api/pipelines/shop/runs",
                json!({"select": ["order_total+"]}),
            )
            .await;
        let body = expect_json(res, 422).await;
        let text = body.to_string();
        assert!(text.contains("`order_total+` matches no step"), "{body}");
        assert!(
            body["errors"]["select"].is_object() || text.contains("select"),
            "{body}"
        );
        let res = app
            .post("/api/pipelines/shop/runs", json!({"exclude": ["tag:nope"]}))
            .await;
        let body = expect_json(res, 422).await;
        assert!(
            body.to_string().contains("`tag:nope` matches no step"),
            "{body}"
        );
        let runs = expect_json(app.get("/api/pipelines/shop/runs").await, 200).await;
        assert_eq!(
            runs["items"].as_array().map_or(0, Vec::len),
            0,
            "a refused selection starts no run: {runs}"
        );

        // The CLI: exit 2 naming the selector; a good selection runs only its steps.
        let out = pipeline_cli(
            app.dir.path(),
            &app.db_url,
            &["run", "shop", "--select", "nothing_here"],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("`nothing_here` matches no step"),
            "{}",
            output_text(&out)
        );
        let out = pipeline_cli(
            app.dir.path(),
            &app.db_url,
            &["run", "shop", "--select", "people+", "--select", "+people"],
        )
        .await;
        assert!(out.status.success(), "{}", output_text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("raw_people"), "{stdout}");
        assert!(!stdout.contains("raw_orders"), "{stdout}");
        assert!(!stdout.contains("clean_orders"), "{stdout}");
        assert_eq!(count(&app, "people").await, 2);
        assert!(!table_exists(&app, "raw_orders").await);
    }
);
