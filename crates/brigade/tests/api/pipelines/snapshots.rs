//! Snapshots (SCD type 2): each run records changed rows as new versions with
//! `valid_from`/`valid_to`, closes versions of deleted keys when asked, keeps history
//! through full refreshes, and refuses duplicate keys without touching the table.

use serde_json::json;

use super::support::*;
use crate::helpers::write_file;

const CHECK: &str = "[[extract]]\nname = \"raw_customers\"\nfrom = \"file\"\npath = \"data/customers.csv\"\n\n[[model]]\nname = \"customers_history\"\nmaterialized = \"snapshot\"\nunique_key = \"id\"\ncheck_cols = [\"email\", \"plan\"]\nhard_deletes = \"invalidate\"\nquery = \"SELECT id, email, plan, visits FROM {{ ref('raw_customers') }}\"\n";

/// `(id, email, plan, closed)` of every version, in key and time order.
async fn versions(app: &crate::helpers::TestApp) -> Vec<(i64, String, String, bool)> {
    query(
        app,
        "SELECT id, email, plan, valid_from, valid_to FROM customers_history ORDER BY id, valid_from",
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r["id"].as_i64().unwrap_or(-1),
            r["email"].as_str().unwrap_or_default().to_string(),
            r["plan"].as_str().unwrap_or_default().to_string(),
            !r["valid_to"].is_null(),
        )
    })
    .collect()
}

backend_test!(
    a_snapshot_keeps_every_version_of_changed_and_deleted_rows,
    |backend| async move {
        let files = [
            ("pipelines/crm.toml", CHECK.as_bytes()),
            (
                "data/customers.csv",
                b"id,email,plan,visits\n1,a@x.io,free,1\n2,b@x.io,pro,5\n3,c@x.io,free,2\n"
                    .as_slice(),
            ),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        let run = run_pipeline(&app, "crm", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "customers_history")["rows_out"], 3);
        assert_eq!(
            versions(&app).await,
            [
                (1, "a@x.io".into(), "free".into(), false),
                (2, "b@x.io".into(), "pro".into(), false),
                (3, "c@x.io".into(), "free".into(), false),
            ]
        );

        // 1 upgrades, 2 only visits more (not a checked column), 3 leaves, 4 arrives.
        write_file(
            app.dir.path(),
            "data/customers.csv",
            b"id,email,plan,visits\n1,a@x.io,pro,1\n2,b@x.io,pro,9\n4,d@x.io,free,1\n",
        );
        let run = run_pipeline(&app, "crm", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "customers_history")["rows_out"], 2, "{run}");
        assert_eq!(
            versions(&app).await,
            [
                (1, "a@x.io".into(), "free".into(), true),
                (1, "a@x.io".into(), "pro".into(), false),
                (2, "b@x.io".into(), "pro".into(), false),
                (3, "c@x.io".into(), "free".into(), true),
                (4, "d@x.io".into(), "free".into(), false),
            ]
        );
        // The closed version ends exactly where the new one starts.
        let one = query(
            &app,
            "SELECT valid_from, valid_to FROM customers_history WHERE id = 1 ORDER BY valid_from",
        )
        .await;
        assert_eq!(one[0]["valid_to"], one[1]["valid_from"], "{one:?}");

        // Unchanged data adds nothing; a full refresh keeps the history.
        let run = run_pipeline(&app, "crm", json!({"full_refresh": true})).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "customers_history")["rows_out"], 0, "{run}");
        assert_eq!(versions(&app).await.len(), 5);

        // Duplicate keys fail the step, naming them; the history stays as it was.
        write_file(
            app.dir.path(),
            "data/customers.csv",
            b"id,email,plan,visits\n1,a@x.io,pro,1\n1,a2@x.io,pro,1\n",
        );
        let run = run_pipeline(&app, "crm", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = step(&run, "customers_history")["error"].to_string();
        assert!(
            error.contains("not unique") && error.contains("\\\"id\\\":1"),
            "{error}"
        );
        assert_eq!(versions(&app).await.len(), 5);

        // A NULL key could never match its version: refused, history untouched.
        write_file(
            app.dir.path(),
            "data/customers.csv",
            b"id,email,plan,visits\n1,a@x.io,pro,1\n,z@x.io,free,1\n",
        );
        let run = run_pipeline(&app, "crm", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = step(&run, "customers_history")["error"].to_string();
        assert!(error.contains("NULL unique_key"), "{error}");
        assert_eq!(versions(&app).await.len(), 5);
    }
);

const TIMESTAMPED: &str = "[[extract]]\nname = \"raw_prices\"\nfrom = \"file\"\npath = \"data/prices.csv\"\ncolumns = { changed_at = \"timestamp\" }\n\n[[model]]\nname = \"price_history\"\nmaterialized = \"snapshot\"\nunique_key = \"sku\"\nupdated_at = \"changed_at\"\nquery = \"SELECT sku, price, changed_at FROM {{ ref('raw_prices') }}\"\n";

backend_test!(
    an_updated_at_snapshot_dates_versions_by_the_rows_own_timestamp,
    |backend| async move {
        let files = [
            ("pipelines/prices.toml", TIMESTAMPED.as_bytes()),
            (
                "data/prices.csv",
                b"sku,price,changed_at\nA,10,2024-01-01T00:00:00Z\nB,20,2024-01-01T00:00:00Z\n"
                    .as_slice(),
            ),
        ];
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            return;
        };
        let run = run_pipeline(&app, "prices", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        // A's price changed on March 1st; B's row was re-sent with the same timestamp.
        write_file(
            app.dir.path(),
            "data/prices.csv",
            b"sku,price,changed_at\nA,12,2024-03-01T00:00:00Z\nB,21,2024-01-01T00:00:00Z\n",
        );
        let run = run_pipeline(&app, "prices", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let rows = query(
            &app,
            "SELECT sku, price, valid_from, valid_to FROM price_history ORDER BY sku, valid_from",
        )
        .await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0]["price"], 10);
        assert!(
            rows[0]["valid_to"]
                .as_str()
                .unwrap_or_default()
                .starts_with("2024-03-01"),
            "{rows:?}"
        );
        assert!(
            rows[1]["valid_from"]
                .as_str()
                .unwrap_or_default()
                .starts_with("2024-03-01"),
            "{rows:?}"
        );
        assert!(rows[1]["valid_to"].is_null());
        assert_eq!(
            rows[2]["price"], 20,
            "the same timestamp is not a new version"
        );
    }
);
