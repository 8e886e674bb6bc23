//! Bronze loads from files: incremental cursors, upserts on a primary key, schema evolution,
//! bad rows, globs with gzip, type overrides, NDJSON and JSON arrays.

use serde_json::json;

use super::support::*;
use crate::helpers::write_file;

const EVENTS: &str = r#"
[[extract]]
name = "events"
from = "file"
path = "data/events.csv"
incremental = { cursor = "at" }
"#;

const EVENTS_CSV: &str = "id,kind,at
1,view,2024-01-01T10:00:00Z
2,click,2024-01-01T11:00:00Z
3,view,2024-01-01T12:00:00Z
";

files_test!(
    an_incremental_extract_loads_only_rows_past_its_cursor,
    vec![
        text("pipelines/events.toml", EVENTS),
        text("data/events.csv", EVENTS_CSV),
    ],
    |app| async move {
        let run = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "events")["rows_out"], 3, "{run}");
        assert_eq!(count(&app, "events").await, 3);
        let first = cursor(&app, "events", "events").await;
        assert!(
            first
                .as_deref()
                .is_some_and(|c| c.contains("2024-01-01T12:00:00")),
            "cursor after the first load: {first:?}"
        );

        // Two new rows past the cursor.
        let more = format!("{EVENTS_CSV}4,view,2024-01-02T09:00:00Z\n5,buy,2024-01-02T10:00:00Z\n");
        write_file(app.dir.path(), "data/events.csv", more.as_bytes());
        let run = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(
            step(&run, "events")["rows_out"],
            2,
            "only the new rows: {run}"
        );
        assert_eq!(count(&app, "events").await, 5);
        let ids = query(&app, "SELECT id FROM events ORDER BY id").await;
        assert_eq!(
            ids.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
            [json!(1), json!(2), json!(3), json!(4), json!(5)],
            "no row loaded twice"
        );
        let second = cursor(&app, "events", "events").await;
        assert!(
            second
                .as_deref()
                .is_some_and(|c| c.contains("2024-01-02T10:00:00")),
            "cursor after the second load: {second:?}"
        );

        // Nothing new (a late row older than the cursor is not picked up either).
        let late = format!("{more}6,view,2023-12-31T23:00:00Z\n");
        write_file(app.dir.path(), "data/events.csv", late.as_bytes());
        let run = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "events")["rows_out"], 0, "{run}");
        assert_eq!(count(&app, "events").await, 5);
        assert_eq!(cursor(&app, "events", "events").await, second);

        // A full refresh reloads the whole file.
        let run = run_pipeline(&app, "events", json!({ "full_refresh": true })).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["full_refresh"], true, "{run}");
        assert_eq!(step(&run, "events")["rows_out"], 6, "{run}");
        assert_eq!(count(&app, "events").await, 6);
        let run = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(step(&run, "events")["rows_out"], 0, "{run}");
        assert_eq!(count(&app, "events").await, 6);
    }
);

const CUSTOMERS: &str = r#"
[[extract]]
name = "customers"
from = "file"
path = "data/customers.csv"
primary_key = ["id"]
"#;

files_test!(
    a_primary_key_upserts_and_the_last_duplicate_wins,
    vec![
        text("pipelines/customers.toml", CUSTOMERS),
        // Even the first load keeps one row per key: the last one.
        text(
            "data/customers.csv",
            "id,name,city\n1,Ann,Paris\n2,Bob,Rome\n3,Cy,Oslo\n3,Cy,Bergen\n",
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "customers", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let rows = query(&app, "SELECT id, city FROM customers ORDER BY id").await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[2]["city"], "Bergen", "{rows:?}");

        // Bob moves, Di is new (twice: the last row wins), Ann is absent but kept.
        write_file(
            app.dir.path(),
            "data/customers.csv",
            b"id,name,city\n2,Bob,Milan\n3,Cy,Bergen\n4,Di,Lima\n4,Di,Lisbon\n",
        );
        let run = run_pipeline(&app, "customers", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let rows = query(&app, "SELECT id, name, city FROM customers ORDER BY id").await;
        let cities: Vec<(i64, &str)> = rows
            .iter()
            .map(|r| (r["id"].as_i64().unwrap(), r["city"].as_str().unwrap()))
            .collect();
        assert_eq!(
            cities,
            [(1, "Paris"), (2, "Milan"), (3, "Bergen"), (4, "Lisbon")],
            "{rows:?}"
        );
        let distinct = query(&app, "SELECT count(DISTINCT id) AS n FROM customers").await;
        assert_eq!(distinct[0]["n"], 4);
        let batches = query(
            &app,
            "SELECT id, _batch_id FROM customers WHERE id IN (1, 2) ORDER BY id",
        )
        .await;
        assert_eq!(
            batches[1]["_batch_id"], run["id"],
            "updated rows carry the run"
        );
        assert_ne!(
            batches[0]["_batch_id"], run["id"],
            "untouched rows keep theirs"
        );
    }
);

const PEOPLE: &str = r#"
[[extract]]
name = "people"
from = "file"
path = "data/people.csv"
primary_key = ["id"]
"#;

files_test!(
    new_source_columns_are_added_and_changed_types_fail_cleanly,
    vec![
        text("pipelines/people.toml", PEOPLE),
        text("data/people.csv", "id,name,age\n1,Ann,31\n2,Bob,42\n"),
    ],
    |app| async move {
        let run = run_pipeline(&app, "people", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");

        write_file(
            app.dir.path(),
            "data/people.csv",
            b"id,name,age,email\n2,Bob,43,bob@example.com\n3,Cy,25,cy@example.com\n",
        );
        let run = run_pipeline(&app, "people", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let rows = query(&app, "SELECT id, age, email FROM people ORDER BY id").await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert!(rows[0]["email"].is_null(), "old rows get NULL: {rows:?}");
        assert_eq!(rows[1]["email"], "bob@example.com", "{rows:?}");
        assert_eq!(rows[1]["age"], 43, "{rows:?}");

        // `age` was an integer column; now the source has text in it.
        write_file(
            app.dir.path(),
            "data/people.csv",
            b"id,name,age,email\n1,Ann,unknown,ann@example.com\n4,Di,50,di@example.com\n",
        );
        let run = run_pipeline(&app, "people", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        assert_eq!(step(&run, "people")["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        for part in ["`age`", "integer", "text"] {
            assert!(error.contains(part), "no {part} in the error: {run}");
        }
        let after = query(&app, "SELECT id, age, email FROM people ORDER BY id").await;
        assert_eq!(after, rows, "the table is as it was");
    }
);

const BAD_CSV: &str = "id,n
1,10
2,abc
3,30,extra
4,40
";

fn bad_rows_pipeline(name: &str, policy: &str) -> String {
    format!(
        "[[extract]]\nname = \"{name}\"\nfrom = \"file\"\npath = \"data/bad.csv\"\n\
         columns = {{ n = \"integer\" }}\n{policy}\n"
    )
}

files_test!(
    bad_rows_fail_the_step_or_are_quarantined_or_skipped,
    vec![
        text("pipelines/strict.toml", &bad_rows_pipeline("strict", "")),
        text(
            "pipelines/kept.toml",
            &bad_rows_pipeline("kept", "on_bad_row = \"quarantine\""),
        ),
        text(
            "pipelines/skipping.toml",
            &bad_rows_pipeline("skipping", "on_bad_row = \"skip\""),
        ),
        text("data/bad.csv", BAD_CSV),
    ],
    |app| async move {
        let run = run_pipeline(&app, "strict", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("data/bad.csv line 3") && error.contains("`abc` is not an integer"),
            "file, line and reason: {run}"
        );
        assert!(!table_exists(&app, "strict").await, "nothing was loaded");

        let run = run_pipeline(&app, "kept", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "kept")["rows_out"], 2, "{run}");
        assert_eq!(step(&run, "kept")["rows_rejected"], 2, "{run}");
        let good = query(&app, "SELECT id, n FROM kept ORDER BY id").await;
        assert_eq!(good.len(), 2, "{good:?}");
        assert_eq!(
            (good[1]["id"].clone(), good[1]["n"].clone()),
            (json!(4), json!(40))
        );
        let rejected = query(
            &app,
            "SELECT _run_id, _source, _line, _error, _raw FROM kept__rejected ORDER BY _line",
        )
        .await;
        assert_eq!(rejected.len(), 2, "{rejected:?}");
        assert_eq!(rejected[0]["_run_id"], run["id"]);
        assert_eq!(rejected[0]["_source"], "data/bad.csv");
        assert_eq!(rejected[0]["_line"], 3, "{rejected:?}");
        assert!(
            rejected[0]["_error"]
                .as_str()
                .is_some_and(|e| e.contains("not an integer")),
            "{rejected:?}"
        );
        assert!(
            rejected[0]["_raw"]
                .as_str()
                .is_some_and(|r| r.contains("abc")),
            "{rejected:?}"
        );
        assert_eq!(rejected[1]["_line"], 4, "{rejected:?}");
        assert!(
            rejected[1]["_error"]
                .as_str()
                .is_some_and(|e| e.contains("3 fields")),
            "{rejected:?}"
        );

        let run = run_pipeline(&app, "skipping", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(step(&run, "skipping")["rows_out"], 2, "{run}");
        assert_eq!(count(&app, "skipping").await, 2);
        assert!(!table_exists(&app, "skipping__rejected").await);
    }
);

const FORMATS: &str = r#"
[[extract]]
name = "sales"
from = "file"
path = "data/sales_*"
format = "csv"

[[extract]]
name = "zips"
from = "file"
path = "data/zips.csv"
sample_rows = 1
columns = { zip = "text" }

[[extract]]
name = "users"
from = "file"
path = "data/users/*.ndjson"

[[extract]]
name = "items"
from = "file"
path = "data/items.json"
"#;

files_test!(
    globs_gzip_overrides_ndjson_and_json_arrays_load,
    vec![
        text("pipelines/formats.toml", FORMATS),
        text("data/sales_1.csv", "sku,qty\nA,1\nB,2\n"),
        gzip("data/sales_2.csv.gz", "sku,qty\nC,3\nD,4\nE,5\n"),
        text(
            "data/zips.csv",
            "zip,city\n90210,Beverly Hills\n02134,Boston\n"
        ),
        text(
            "data/users/a.ndjson",
            "{\"id\": 1, \"name\": \"Ann\", \"address\": {\"city\": \"Paris\"}}\n\
             {\"id\": 2, \"name\": \"Bob\", \"address\": {\"city\": \"Rome\"}}\n",
        ),
        text(
            "data/users/b.ndjson",
            "{\"id\": 3, \"name\": \"Cy\", \"email\": \"cy@example.com\"}\n",
        ),
        text(
            "data/items.json",
            r#"[{"sku": "A1", "price": 9.5}, {"sku": "B2", "price": 12}]"#,
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "formats", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");

        let sources = query(
            &app,
            "SELECT _source, count(*) AS n, CAST(sum(qty) AS INTEGER) AS qty FROM sales \
             GROUP BY _source ORDER BY _source",
        )
        .await;
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert_eq!(sources[0]["_source"], "data/sales_1.csv");
        assert_eq!(sources[0]["n"], 2);
        assert_eq!(sources[1]["_source"], "data/sales_2.csv.gz");
        assert_eq!(sources[1]["n"], 3);
        assert_eq!(sources[1]["qty"], 12, "{sources:?}");

        let zips = query(&app, "SELECT zip FROM zips ORDER BY city").await;
        assert_eq!(zips[0]["zip"], "90210", "{zips:?}");
        assert_eq!(zips[1]["zip"], "02134", "leading zero kept: {zips:?}");

        let users = query(
            &app,
            "SELECT id, name, address_city, email, _source FROM users ORDER BY id",
        )
        .await;
        assert_eq!(users.len(), 3, "{users:?}");
        assert_eq!(users[0]["address_city"], "Paris", "nested objects flatten");
        assert!(users[0]["email"].is_null(), "{users:?}");
        assert_eq!(users[2]["email"], "cy@example.com", "{users:?}");
        assert!(users[2]["address_city"].is_null(), "{users:?}");
        assert_eq!(users[0]["_source"], "data/users/a.ndjson", "{users:?}");
        assert_eq!(users[2]["_source"], "data/users/b.ndjson", "{users:?}");

        let items = query(&app, "SELECT sku, price FROM items ORDER BY sku").await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0]["price"].as_f64(), Some(9.5));
        assert_eq!(items[1]["price"].as_f64(), Some(12.0));
        assert_eq!(step(&run, "items")["rows_out"], 2, "{run}");
    }
);
