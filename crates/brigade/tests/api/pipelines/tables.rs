//! `/api/tables`: bronze, silver, quarantine and rejected tables read-only over the API, with
//! the records API's filters, sorting and paging; superusers read every table, accounts and
//! API keys the tables of pipelines whose `readers` name one of their roles.

use serde_json::{Value, json};

use super::support::*;
use crate::helpers::{TestApp, expect_json, expect_problem, send};

const ORDERS: &str = r#"
retries = 0
readers = ["analyst"]

[[extract]]
name = "raw_orders"
from = "file"
path = "data/orders.csv"
on_bad_row = "quarantine"
columns = { id = "integer", amount = "number", placed_at = "timestamp", paid = "bool", note = "text" }

[[model]]
name = "clean_orders"
query = "SELECT id, amount, placed_at, paid FROM {{ ref('raw_orders') }}"
[[model.expect]]
name = "small"
check = "amount < 1000"
on_fail = "warn"
"#;

const SECRET: &str = r#"
retries = 0

[[extract]]
name = "raw_salaries"
from = "file"
path = "data/salaries.csv"
"#;

const ORDERS_CSV: &str = "id,amount,placed_at,paid,note\n\
1,10.5,2024-01-01T10:00:00Z,true,first\n\
2,5000,2024-01-02T11:30:00Z,false,big\n\
3,30,2024-01-03T09:15:00Z,true,\n\
4,not-a-number,2024-01-04T00:00:00Z,true,bad\n\
5,45.25,2024-01-05T08:00:00Z,false,late\n";

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        text("pipelines/orders.toml", ORDERS),
        text("pipelines/secret.toml", SECRET),
        text("data/orders.csv", ORDERS_CSV),
        text("data/salaries.csv", "name,salary\nada,100\n"),
    ]
}

/// A new API key with `roles`.
async fn key(app: &TestApp, roles: &[&str]) -> String {
    let created = expect_json(
        app.post("/api/auth/keys", json!({"name": "reader", "roles": roles}))
            .await,
        201,
    )
    .await;
    created["key"].as_str().expect("key").to_string()
}

async fn get_with(
    app: &TestApp,
    key: &str,
    path: &str,
    query: &[(&str, &str)],
) -> reqwest::Response {
    send(app.client.get(app.url_with(path, query)).bearer_auth(key)).await
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

files_test!(
    pipeline_tables_are_readable_with_filters_by_superusers_and_granted_roles,
    files(),
    |app| async move {
        for pipeline in ["orders", "secret"] {
            let run = run_pipeline(&app, pipeline, no_options()).await;
            assert_eq!(run["status"], "succeeded", "{run}");
        }

        // Every table pipelines wrote, with its layer and role.
        let list = expect_json(app.get("/api/tables").await, 200).await;
        assert_eq!(
            names(&list),
            [
                "clean_orders",
                "clean_orders__quarantine",
                "raw_orders",
                "raw_orders__rejected",
                "raw_salaries"
            ],
            "{list}"
        );
        let find = |name: &str| {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            find("raw_orders"),
            json!({"name": "raw_orders", "pipeline": "orders", "node": "raw_orders",
                "layer": "bronze", "role": "output", "view": false})
        );
        assert_eq!(find("clean_orders")["layer"], "silver");
        assert_eq!(find("clean_orders__quarantine")["role"], "quarantine");
        assert_eq!(find("clean_orders__quarantine")["node"], "clean_orders");
        assert_eq!(find("raw_orders__rejected")["role"], "rejected");

        // Columns with the types they read, filter and sort as.
        let table = expect_json(app.get("/api/tables/raw_orders").await, 200).await;
        let types: Vec<(String, String)> = table["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["type"].as_str().unwrap().to_string(),
                )
            })
            .filter(|(n, _)| !n.starts_with('_'))
            .collect();
        for (name, ty) in [
            ("id", "integer"),
            ("amount", "number"),
            ("placed_at", "datetime"),
            ("paid", "bool"),
            ("note", "text"),
        ] {
            assert!(
                types.contains(&(name.to_string(), ty.to_string())),
                "{name}: {ty} in {types:?}"
            );
        }

        // Rows with filters on every type, sorting, paging and totals.
        let rows = |query: &'static [(&'static str, &'static str)]| {
            let app = &app;
            async move {
                expect_json(
                    send(
                        app.client
                            .get(app.url_with("/api/tables/raw_orders/records", query))
                            .bearer_auth(app.token.clone()),
                    )
                    .await,
                    200,
                )
                .await
            }
        };
        let page = rows(&[
            (
                "filter",
                "amount > 20 && placed_at >= '2024-01-02T00:00:00Z'",
            ),
            ("sort", "-amount"),
            ("fields", "id,amount,placed_at,paid"),
        ])
        .await;
        assert_eq!(
            page["items"],
            json!([
                {"id": 2, "amount": 5000.0, "placed_at": "2024-01-02T11:30:00.000Z", "paid": false},
                {"id": 5, "amount": 45.25, "placed_at": "2024-01-05T08:00:00.000Z", "paid": false},
                {"id": 3, "amount": 30.0, "placed_at": "2024-01-03T09:15:00.000Z", "paid": true}
            ]),
            "{page}"
        );
        assert_eq!(
            (page["total_items"].as_i64(), page["total_pages"].as_i64()),
            (Some(3), Some(1))
        );
        let paid = rows(&[("filter", "paid = true && note != null"), ("fields", "id")]).await;
        assert_eq!(paid["items"], json!([{"id": 1}]), "{paid}");
        let paged = rows(&[
            ("sort", "id"),
            ("per_page", "2"),
            ("page", "2"),
            ("fields", "id"),
        ])
        .await;
        assert_eq!(paged["items"], json!([{"id": 3}, {"id": 5}]), "{paged}");
        assert_eq!(paged["total_pages"], 2);
        let unsorted = rows(&[("perPage", "10"), ("skip_total", "true")]).await;
        assert_eq!(unsorted["items"].as_array().unwrap().len(), 4);
        assert!(unsorted["total_items"].is_null());

        // Quarantined and rejected rows read the same way.
        let quarantined = expect_json(
            app.get("/api/tables/clean_orders__quarantine/records?fields=_expectation,id")
                .await,
            200,
        )
        .await;
        assert_eq!(
            quarantined["items"],
            json!([{"_expectation": "small", "id": 2}]),
            "{quarantined}"
        );
        let rejected = expect_json(
            app.get("/api/tables/raw_orders__rejected/records").await,
            200,
        )
        .await;
        assert_eq!(rejected["total_items"], 1, "{rejected}");

        // Clear errors: unknown columns (no system columns on a table), syntax, expand.
        let problem = expect_problem(
            app.get("/api/tables/raw_orders/records?filter=created%20%3E%20%272024-01-01%27")
                .await,
            400,
            Some("filter"),
        )
        .await;
        assert!(
            problem.to_string().contains("unknown field `created`"),
            "{problem}"
        );
        expect_problem(
            app.get("/api/tables/raw_orders/records?filter=amount%20%3E")
                .await,
            400,
            Some("filter"),
        )
        .await;
        expect_problem(
            app.get("/api/tables/raw_orders/records?sort=nope").await,
            400,
            Some("sort"),
        )
        .await;
        expect_problem(
            app.get("/api/tables/raw_orders/records?filter=amount%20%3D%20%27abc%27")
                .await,
            400,
            Some("filter"),
        )
        .await;
        expect_problem(
            app.get("/api/tables/raw_orders/records?expand=id").await,
            400,
            Some("expand"),
        )
        .await;
        // Collections and system tables are not warehouse tables.
        for name in ["_users", "nope", "_pipeline_tables"] {
            expect_problem(
                app.get(&format!("/api/tables/{name}/records")).await,
                404,
                None,
            )
            .await;
        }

        // Anonymous callers: 401.
        expect_problem(app.anon_get("/api/tables").await, 401, None).await;
        expect_problem(
            app.anon_get("/api/tables/raw_orders/records").await,
            401,
            None,
        )
        .await;

        // A key with a granted role reads that pipeline's tables and no other.
        let analyst = key(&app, &["analyst"]).await;
        let list = expect_json(get_with(&app, &analyst, "/api/tables", &[]).await, 200).await;
        assert_eq!(
            names(&list),
            [
                "clean_orders",
                "clean_orders__quarantine",
                "raw_orders",
                "raw_orders__rejected"
            ]
        );
        let page = expect_json(
            get_with(
                &app,
                &analyst,
                "/api/tables/clean_orders/records",
                &[("filter", "amount < 20")],
            )
            .await,
            200,
        )
        .await;
        assert_eq!(page["total_items"], 1, "{page}");
        expect_problem(
            get_with(&app, &analyst, "/api/tables/raw_salaries/records", &[]).await,
            403,
            None,
        )
        .await;
        expect_problem(
            get_with(&app, &analyst, "/api/tables/raw_salaries", &[]).await,
            403,
            None,
        )
        .await;

        // A key without it reads none.
        let other = key(&app, &["support"]).await;
        let list = expect_json(get_with(&app, &other, "/api/tables", &[]).await, 200).await;
        assert_eq!(list["items"], json!([]));
        expect_problem(
            get_with(&app, &other, "/api/tables/raw_orders/records", &[]).await,
            403,
            None,
        )
        .await;
    }
);
