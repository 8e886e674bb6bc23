//! SQL models: expectations that fail or warn, views, incremental models, frozen contracts,
//! exposed models as read-only collections, invalid SQL, and resuming failed runs.

use serde_json::json;

use super::support::*;
use crate::helpers::{column, content_type, expect_json, status_and_text, write_file};

const ORDERS: &str = r#"
retries = 0

[[extract]]
name = "raw_orders"
from = "file"
path = "data/orders.csv"

[[model]]
name = "clean_orders"
query = "SELECT id, amount FROM {{ ref('raw_orders') }}"
[[model.expect]]
name = "positive"
check = "amount > 0"
on_fail = "fail"
[[model.expect]]
name = "small"
check = "amount < 1000"
on_fail = "warn"
"#;

files_test!(
    a_failed_expectation_names_rows_and_keeps_the_previous_table,
    vec![
        text("pipelines/orders.toml", ORDERS),
        text("data/orders.csv", "id,amount\n1,10\n2,5000\n3,30\n"),
    ],
    |app| async move {
        let first = run_pipeline(&app, "orders", no_options()).await;
        assert_eq!(first["status"], "succeeded", "{first}");
        let clean = step(&first, "clean_orders");
        assert_eq!(
            expectation(clean, "positive")["status"],
            "passed",
            "{clean}"
        );
        let small = expectation(clean, "small");
        assert_eq!(
            (small["status"].as_str(), small["failing_rows"].as_u64()),
            (Some("warned"), Some(1)),
            "{clean}"
        );
        assert_eq!(clean["rows_out"], 3, "warn keeps the rows: {clean}");
        let quarantined = query(
            &app,
            "SELECT _run_id, _expectation, id, amount FROM clean_orders__quarantine",
        )
        .await;
        assert_eq!(quarantined.len(), 1, "{quarantined:?}");
        assert_eq!(quarantined[0]["_run_id"], first["id"]);
        assert_eq!(quarantined[0]["_expectation"], "small");
        assert_eq!(quarantined[0]["id"], 2);
        let before = query(&app, "SELECT id, amount FROM clean_orders ORDER BY id").await;
        assert_eq!(before.len(), 3);

        write_file(
            app.dir.path(),
            "data/orders.csv",
            b"id,amount\n1,10\n2,5000\n3,30\n4,-5\n5,7\n",
        );
        let second = run_pipeline(&app, "orders", no_options()).await;
        assert_eq!(second["status"], "failed", "{second}");
        let clean = step(&second, "clean_orders");
        assert_eq!(clean["status"], "failed", "{second}");
        let positive = expectation(clean, "positive");
        assert_eq!(
            (
                positive["status"].as_str(),
                positive["failing_rows"].as_u64()
            ),
            (Some("failed"), Some(1)),
            "{clean}"
        );
        let error = second["error"].as_str().unwrap_or_default();
        for part in [
            "clean_orders",
            "expectation `positive`",
            "amount > 0",
            "\"amount\":-5",
            "\"id\":4",
        ] {
            assert!(error.contains(part), "no {part} in the error: {second}");
        }
        assert_eq!(
            query(&app, "SELECT id, amount FROM clean_orders ORDER BY id").await,
            before,
            "the previous version of the model is untouched"
        );
        assert_eq!(
            count(&app, "clean_orders__quarantine").await,
            1,
            "nothing quarantined by the failed run"
        );
    }
);

const SCORES: &str = r#"
[[extract]]
name = "raw_scores"
from = "file"
path = "data/scores.csv"

[[model]]
name = "high_scores"
materialized = "view"
query = "SELECT name, score FROM {{ ref('raw_scores') }} WHERE score >= 50"
[[model.expect]]
name = "named"
check = "name IS NOT NULL"
on_fail = "fail"
"#;

files_test!(
    a_view_model_is_a_view_over_the_latest_data,
    vec![
        text("pipelines/scores.toml", SCORES),
        text("data/scores.csv", "name,score\nAnn,90\nBob,20\nCy,55\n"),
    ],
    |app| async move {
        let run = run_pipeline(&app, "scores", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "high_scores")["rows_out"], 2, "{run}");
        let kind = match app.backend {
            crate::helpers::Backend::Sqlite => {
                query(&app, "SELECT type AS kind FROM sqlite_master WHERE name = 'high_scores'").await
            }
            crate::helpers::Backend::Postgres => {
                query(&app, "SELECT table_type AS kind FROM information_schema.tables WHERE table_name = 'high_scores'").await
            }
        };
        assert!(
            kind[0]["kind"]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case("view")),
            "{kind:?}"
        );

        // Rows added to the bronze table show without another run.
        execute(
            &app,
            "INSERT INTO raw_scores (name, score) VALUES ('Di', 77)",
        )
        .await;
        assert_eq!(count(&app, "high_scores").await, 3);

        // A new source column (PostgreSQL must rebuild the table under the view).
        write_file(
            app.dir.path(),
            "data/scores.csv",
            b"name,score,team\nAnn,91,red\nEd,60,blue\nFay,10,red\n",
        );
        let run = run_pipeline(&app, "scores", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let rows = query(&app, "SELECT name, score FROM high_scores ORDER BY name").await;
        assert_eq!(
            column(&json!({ "items": rows }), "name"),
            ["Ann", "Ed"],
            "{rows:?}"
        );
    }
);

const LATEST: &str = r#"
[[extract]]
name = "raw_orders"
from = "file"
path = "data/orders.csv"

[[model]]
name = "orders_latest"
sql = "models/orders_latest.sql"
materialized = "incremental"
unique_key = "id"
"#;

const LATEST_SQL: &str = "SELECT id, status, updated_at FROM {{ ref('raw_orders') }}
{% if is_incremental() %}WHERE updated_at > (SELECT max(updated_at) FROM {{ this }}){% endif %}
";

/// `id:status` of every row of `orders_latest`.
async fn statuses(app: &crate::helpers::TestApp) -> Vec<String> {
    query(app, "SELECT id, status FROM orders_latest ORDER BY id")
        .await
        .iter()
        .map(|r| format!("{}:{}", r["id"], r["status"].as_str().unwrap_or_default()))
        .collect()
}

files_test!(
    an_incremental_model_merges_new_rows_and_rebuilds_on_full_refresh,
    vec![
        text("pipelines/latest.toml", LATEST),
        text("models/orders_latest.sql", LATEST_SQL),
        text(
            "data/orders.csv",
            "id,status,updated_at\n1,new,2024-01-01T00:00:00Z\n2,new,2024-01-01T01:00:00Z\n3,new,2024-01-01T02:00:00Z\n",
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "latest", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(statuses(&app).await, ["1:new", "2:new", "3:new"]);

        // Order 1 is gone from the source, 2 changed, 4 is new.
        write_file(
            app.dir.path(),
            "data/orders.csv",
            b"id,status,updated_at\n2,shipped,2024-01-02T00:00:00Z\n3,new,2024-01-01T02:00:00Z\n4,new,2024-01-02T01:00:00Z\n",
        );
        let run = run_pipeline(&app, "latest", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(
            step(&run, "orders_latest")["rows_in"],
            2,
            "only newer rows are selected: {run}"
        );
        assert_eq!(
            statuses(&app).await,
            ["1:new", "2:shipped", "3:new", "4:new"],
            "merged on id"
        );

        let run = run_pipeline(&app, "latest", json!({ "full_refresh": true })).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(
            statuses(&app).await,
            ["2:shipped", "3:new", "4:new"],
            "rebuilt from the source"
        );
    }
);

const FROZEN: &str = r#"
[[extract]]
name = "raw_people"
from = "file"
path = "data/people.csv"

[[model]]
name = "people"
sql = "models/people.sql"
contract = "freeze"
"#;

backend_test!(
    a_frozen_contract_fails_when_the_columns_change,
    |backend| async move {
        let dir = app_dir(&[
            text("pipelines/frozen.toml", FROZEN),
            text(
                "models/people.sql",
                "SELECT id, name FROM {{ ref('raw_people') }}",
            ),
            text("data/people.csv", "id,name,city\n1,Ann,Paris\n2,Bob,Rome\n"),
        ]);
        let Some(url) = backend.fresh_database_url(dir.path()).await else {
            return;
        };
        let out = pipeline_cli(dir.path(), &url, &["run", "frozen"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

        // The model file changes between runs (each CLI run reads the files afresh).
        write_file(
            dir.path(),
            "models/people.sql",
            b"SELECT id, name, city FROM {{ ref('raw_people') }}",
        );
        let out = pipeline_cli(dir.path(), &url, &["run", "frozen"]).await;
        assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for part in [
            "step `people` failed",
            "contract of `people` is frozen",
            "the table has (id integer, name text)",
            "now returns (id integer, name text, city text)",
        ] {
            assert!(stderr.contains(part), "no {part:?}:\n{}", output_text(&out));
        }
        let rows = query_at(backend, &url, "SELECT * FROM people ORDER BY id").await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            !rows[0].contains_key("city"),
            "the table is unchanged: {rows:?}"
        );
    }
);

const EXPOSED: &str = r#"
[[extract]]
name = "raw_sales"
from = "file"
path = "data/sales.csv"

[[model]]
name = "region_totals"
layer = "gold"
query = "SELECT region, COUNT(*) AS orders, SUM(amount) AS total FROM {{ ref('raw_sales') }} GROUP BY region"
expose = true
unique_key = "region"
list_rule = ""

[[model]]
name = "private_totals"
layer = "gold"
query = "SELECT region, SUM(amount) AS total FROM {{ ref('raw_sales') }} GROUP BY region"
expose = true
unique_key = "region"
"#;

files_test!(
    exposed_models_are_read_only_collections_with_rules,
    vec![
        text("pipelines/sales.toml", EXPOSED),
        text(
            "data/sales.csv",
            "region,product,amount\nnorth,a,10\nnorth,b,5\nsouth,a,7\neast,c,30\neast,a,1\n",
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "sales", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");

        let records = "/api/collections/region_totals/records";
        let url = app.url_with(records, &[("filter", "orders>1"), ("sort", "-total")]);
        let page = expect_json(app.client.get(url).send().await.unwrap(), 200).await;
        assert_eq!(
            column(&page, "region"),
            ["east", "north"],
            "anonymous list: {page}"
        );
        assert_eq!(page["total_items"], 2, "{page}");
        assert_eq!(
            page["items"][0]["id"], "east",
            "the id is the unique key: {page}"
        );
        let one = expect_json(app.anon_get(&format!("{records}/south")).await, 200).await;
        assert_eq!(one["orders"], 1, "{one}");

        // Read-only, even for a superuser.
        let item = format!("{records}/north");
        let collection = "/api/collections/region_totals";
        for (what, res) in [
            (
                "POST record",
                app.post(records, json!({ "region": "west", "orders": 1 }))
                    .await,
            ),
            (
                "PATCH record",
                app.patch(&item, json!({ "orders": 9 })).await,
            ),
            ("DELETE record", app.delete(&item).await),
            (
                "PATCH collection",
                app.patch(collection, json!({ "name": "renamed" })).await,
            ),
            ("DELETE collection", app.delete(collection).await),
        ] {
            let content_type = content_type(&res);
            let (status, body) = status_and_text(res).await;
            assert_eq!(status, 405, "{what}: {body}");
            assert!(
                content_type.starts_with("application/problem+json"),
                "{what}: {content_type}"
            );
        }
        let north = expect_json(app.anon_get(&item).await, 200).await;
        assert_eq!(north["orders"], 2, "unchanged: {north}");

        // Without list_rule only superusers read it.
        let private = "/api/collections/private_totals/records";
        assert_eq!(app.anon_get(private).await.status(), 401);
        let page = expect_json(app.get(private).await, 200).await;
        assert_eq!(page["total_items"], 3, "{page}");

        // OpenAPI documents the reads only (to superusers: anonymous callers are not told
        // of a superuser-only table).
        let anon = expect_json(app.anon_get("/api/openapi.json").await, 200).await;
        assert!(anon["paths"].get(private).is_none(), "{anon}");
        let doc = expect_json(app.get("/api/openapi.json").await, 200).await;
        let list = &doc["paths"]["/api/collections/private_totals/records"];
        assert!(list["get"].is_object() && list["post"].is_null(), "{list}");
        let one = &doc["paths"]["/api/collections/private_totals/records/{id}"];
        assert!(
            one["get"].is_object() && one["patch"].is_null() && one["delete"].is_null(),
            "{one}"
        );
    }
);

const BROKEN: &str = r#"
[[extract]]
name = "raw"
from = "file"
path = "data/raw.csv"

[[model]]
name = "broken"
query = "SELECT nope FROM {{ ref('raw') }}"
"#;

files_test!(
    invalid_model_sql_fails_with_the_database_message,
    vec![
        text("pipelines/broken.toml", BROKEN),
        text("data/raw.csv", "a\n1\n"),
    ],
    |app| async move {
        let run = run_pipeline(&app, "broken", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        assert_eq!(step(&run, "raw")["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "broken")["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(error.contains("model `broken`"), "names the model: {run}");
        let db_message = match app.backend {
            crate::helpers::Backend::Sqlite => "no such column: nope",
            crate::helpers::Backend::Postgres => "column \"nope\" does not exist",
        };
        assert!(error.contains(db_message), "the database's message: {run}");
        assert!(!table_exists(&app, "broken").await);
    }
);

const PAYMENTS: &str = r#"
retries = 0

[[extract]]
name = "raw_payments"
from = "file"
path = "data/payments.csv"

[[model]]
name = "payments"
query = "SELECT id, amount FROM {{ ref('raw_payments') }}"
[[model.expect]]
name = "positive"
check = "amount > 0"
on_fail = "fail"

[[model]]
name = "payments_total"
layer = "gold"
query = "SELECT COUNT(*) AS n, SUM(amount) AS total FROM {{ ref('payments') }}"
"#;

files_test!(
    a_failed_run_resumes_from_the_failed_step,
    vec![
        text("pipelines/payments.toml", PAYMENTS),
        text("data/payments.csv", "id,amount\n1,10\n2,-3\n3,4\n"),
    ],
    |app| async move {
        let failed = run_pipeline(&app, "payments", no_options()).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        assert_eq!(
            step_statuses(&failed),
            [
                "raw_payments:succeeded",
                "payments:failed",
                "payments_total:skipped"
            ],
            "{failed}"
        );
        let failed_id = failed["id"].as_str().unwrap();

        // Fix the bronze row by hand, then retry from the command line. Re-extracting would
        // bring the bad row back, so the retry must skip the extract.
        execute(&app, "UPDATE raw_payments SET amount = 2 WHERE amount <= 0").await;
        let out = pipeline_cli(app.dir.path(), &app.db_url, &["retry", failed_id]).await;
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let runs = expect_json(app.get("/api/pipelines/payments/runs").await, 200).await;
        let retry = &runs["items"][0];
        assert_eq!(retry["retry_of"], failed_id, "{retry}");
        assert_eq!(retry["trigger"], "cli", "{retry}");
        assert_eq!(retry["status"], "succeeded", "{retry}");
        assert_eq!(
            step_statuses(retry),
            [
                "raw_payments:skipped",
                "payments:succeeded",
                "payments_total:succeeded"
            ],
            "{retry}"
        );
        let total = query(
            &app,
            "SELECT n, CAST(total AS INTEGER) AS total FROM payments_total",
        )
        .await;
        assert_eq!(
            (total[0]["n"].as_i64(), total[0]["total"].as_i64()),
            (Some(3), Some(16)),
            "{total:?}"
        );

        // Only failed or cancelled runs can be retried.
        let retry_id = retry["id"].as_str().unwrap();
        let out = pipeline_cli(app.dir.path(), &app.db_url, &["retry", retry_id]).await;
        assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("only failed or cancelled runs"),
            "{}",
            output_text(&out)
        );

        // A full run reloads the bad row and fails again; resume over the API this time.
        let again = run_pipeline(&app, "payments", no_options()).await;
        assert_eq!(again["status"], "failed", "{again}");
        execute(&app, "UPDATE raw_payments SET amount = 2 WHERE amount <= 0").await;
        let resumed = run_pipeline(&app, "payments", json!({ "from_step": "payments" })).await;
        assert_eq!(resumed["status"], "succeeded", "{resumed}");
        assert_eq!(
            step_statuses(&resumed),
            [
                "raw_payments:skipped",
                "payments:succeeded",
                "payments_total:succeeded"
            ],
            "{resumed}"
        );
    }
);
