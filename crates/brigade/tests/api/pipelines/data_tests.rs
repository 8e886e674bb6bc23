//! dbt's data tests in `[[model.expect]]` / `[[extract.expect]]`: `unique`, `not_null`,
//! `accepted_values`, `relationships`, `row_count` and table expressions fail or warn a step
//! with the test, column and failing values; `brigade pipeline test` and
//! `POST /api/pipelines/{name}/test` run them against the current tables alone.

use serde_json::{Value, json};

use super::support::*;
use crate::helpers::{expect_json, write_file};

const SHOP: &str = r#"
retries = 0

[[extract]]
name = "raw_customers"
from = "file"
path = "data/customers.csv"
[[extract.expect]]
test = "unique"
column = "id"
[[extract.expect]]
test = "row_count"
min = 1

[[extract]]
name = "raw_orders"
from = "file"
path = "data/orders.csv"

[[model]]
name = "orders"
query = "SELECT id, customer_id, status, amount FROM {{ ref('raw_orders') }}"
[[model.expect]]
test = "not_null"
column = "customer_id"
on_fail = "drop"
[[model.expect]]
test = "accepted_values"
column = "status"
values = ["placed", "shipped"]
on_fail = "warn"
[[model.expect]]
test = "relationships"
column = "customer_id"
to = "raw_customers.id"
[[model.expect]]
name = "positive_total"
test = "expression"
expression = "sum(amount) > 0"
[[model.expect]]
test = "unique"
column = "id"
[[model.expect]]
test = "row_count"
max = 1
on_fail = "warn"
"#;

fn shop() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        text("pipelines/shop.toml", SHOP),
        text("data/customers.csv", "id,name\n1,Ann\n2,Bob\n"),
        text(
            "data/orders.csv",
            "id,customer_id,status,amount\n1,1,placed,10\n2,2,returned,5\n3,,placed,7\n",
        ),
    ]
}

fn test_of<'a>(report: &'a Value, node: &str, name: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == node))
        .and_then(|n| n["tests"].as_array())
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no test {name} of {node} in {report}"))
}

files_test!(
    built_in_tests_fail_or_warn_steps,
    shop(),
    |app| async move {
        let run = run_pipeline(&app, "shop", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let orders = step(&run, "orders");
        let status = |name: &str| {
            let x = expectation(orders, name);
            (
                x["status"].as_str().unwrap_or("?").to_string(),
                x["failing_rows"].as_u64(),
            )
        };
        assert_eq!(
            status("not_null_customer_id"),
            ("dropped".into(), Some(1)),
            "{orders}"
        );
        assert_eq!(
            status("accepted_values_status"),
            ("warned".into(), Some(1)),
            "{orders}"
        );
        assert_eq!(status("relationships_customer_id").0, "passed", "{orders}");
        assert_eq!(status("positive_total").0, "passed", "{orders}");
        assert_eq!(status("unique_id").0, "passed", "{orders}");
        // A table-level test with on_fail = "warn" reports and keeps the table.
        assert_eq!(status("row_count"), ("warned".into(), Some(1)), "{orders}");
        assert_eq!(count(&app, "orders").await, 2);
        let customers = step(&run, "raw_customers");
        assert_eq!(expectation(customers, "unique_id")["status"], "passed");

        // An order of an unknown customer and a duplicated id: the model's step fails naming
        // the test, the column and the values; the previous table stays.
        write_file(
            app.dir.path(),
            "data/orders.csv",
            b"id,customer_id,status,amount\n1,1,placed,10\n1,2,placed,5\n4,9,placed,3\n",
        );
        let run = run_pipeline(&app, "shop", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("test `relationships_customer_id` on column `customer_id`"),
            "{error}"
        );
        assert!(error.contains("\"customer_id\":9"), "{error}");
        let orders = step(&run, "orders");
        assert_eq!(orders["status"], "failed", "{run}");
        let unique = expectation(orders, "unique_id");
        assert_eq!(unique["status"], "failed", "{orders}");
        assert_eq!(unique["column"], "id", "{orders}");
        assert!(
            unique["sample"].to_string().contains("n_rows"),
            "the duplicated values and how often: {unique}"
        );
        let kept = query(&app, "SELECT id FROM orders ORDER BY id").await;
        assert_eq!(
            kept.len(),
            2,
            "the failed build published nothing: {kept:?}"
        );

        // An extract's test fails its step before anything is published.
        write_file(
            app.dir.path(),
            "data/customers.csv",
            b"id,name\n1,Ann\n1,Annie\n2,Bob\n",
        );
        let run = run_pipeline(&app, "shop", json!({"select": ["raw_customers"]})).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("test `unique_id` on column `id`")
                && error.contains("nothing was loaded"),
            "{error}"
        );
        assert_eq!(count(&app, "raw_customers").await, 2);
    }
);

files_test!(
    pipeline_test_checks_current_tables,
    shop(),
    |app| async move {
        let out = pipeline_cli(app.dir.path(), &app.db_url, &["test", "shop"]).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "no tables yet: every test errors\n{}",
            output_text(&out)
        );
        let run = run_pipeline(&app, "shop", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");

        let out = pipeline_cli(app.dir.path(), &app.db_url, &["test", "shop"]).await;
        assert!(out.status.success(), "{}", output_text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("unique_id") && l.contains("PASS")),
            "{stdout}"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("accepted_values_status") && l.contains("WARN")),
            "{stdout}"
        );
        assert!(stdout.contains("\"status\":\"returned\""), "{stdout}");

        // Someone breaks the table by hand: the tests see it, nothing is loaded.
        execute(
            &app,
            "INSERT INTO orders (id, customer_id, status, amount) VALUES (2, 7, 'placed', 1)",
        )
        .await;
        let loads = count(&app, "raw_orders").await;
        let out = pipeline_cli(
            app.dir.path(),
            &app.db_url,
            &["test", "shop", "--select", "orders"],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("orders") && l.contains("unique_id") && l.contains("FAIL")),
            "{stdout}"
        );
        assert!(
            stdout.contains("relationships_customer_id") && stdout.contains("\"customer_id\":7"),
            "{stdout}"
        );
        assert!(
            !stdout.lines().any(|l| l.starts_with("raw_customers")),
            "only the selection: {stdout}"
        );
        assert!(stdout.contains("expected at most 1 rows"), "{stdout}");
        assert_eq!(count(&app, "raw_orders").await, loads);
        let out = pipeline_cli(
            app.dir.path(),
            &app.db_url,
            &["test", "shop", "--select", "tag:none"],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));

        // The same over HTTP.
        let report = expect_json(
            app.post("/api/pipelines/shop/test", json!({"select": ["orders"]}))
                .await,
            200,
        )
        .await;
        assert_eq!(report["status"], "failed", "{report}");
        let unique = test_of(&report, "orders", "unique_id");
        assert_eq!(
            (unique["status"].as_str(), unique["failing_rows"].as_u64()),
            (Some("failed"), Some(1)),
            "{report}"
        );
        assert_eq!(
            test_of(&report, "orders", "positive_total")["status"],
            "passed"
        );
        let all = expect_json(app.post("/api/pipelines/shop/test", json!({})).await, 200).await;
        assert_eq!(
            test_of(&all, "raw_customers", "unique_id")["status"],
            "passed"
        );
        expect_json(
            app.post("/api/pipelines/shop/test", json!({"exclude": ["nope"]}))
                .await,
            422,
        )
        .await;
    }
);

#[tokio::test]
async fn a_test_with_a_wrong_target_names_the_key() {
    let p = r#"[[extract]]
name = "raw"
from = "file"
path = "data/raw.csv"

[[model]]
name = "m"
query = "SELECT * FROM {{ ref('raw') }}"
[[model.expect]]
test = "relationships"
column = "id"
to = "customers.id"
"#;
    let dir = app_dir(&[text("pipelines/p.toml", p), text("data/raw.csv", "id\n1\n")]);
    let url = format!("sqlite://{}/data/brigade.db", dir.path().display());
    let out = pipeline_cli(dir.path(), &url, &["test", "p"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pipelines/p.toml:12: key `model[0].expect[0].to`")
            && stderr.contains("`customers` is not another extract or model"),
        "{}",
        output_text(&out)
    );
}
