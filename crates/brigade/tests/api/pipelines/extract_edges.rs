//! Extract edge cases (issue 12): empty and header-only files, late rows at the incremental
//! cursor, NULL cursors and what the step report says about the rows it did not load.

use serde_json::{Value, json};

use super::support::*;
use crate::helpers::{Backend, TestApp, write_file};

/// The declared SQL type of `column` of `table`, lowercased.
async fn column_type(app: &TestApp, table: &str, column: &str) -> String {
    let sql = match app.backend {
        Backend::Sqlite => {
            format!("SELECT type AS t FROM pragma_table_info('{table}') WHERE name = '{column}'")
        }
        Backend::Postgres => format!(
            "SELECT data_type AS t FROM information_schema.columns WHERE table_name = '{table}' \
             AND column_name = '{column}' AND table_schema = current_schema()"
        ),
    };
    let rows = query(app, &sql).await;
    rows.first()
        .and_then(|r| r["t"].as_str())
        .unwrap_or_else(|| panic!("no column {column} in {table}: {rows:?}"))
        .to_lowercase()
}

/// The notes of `step`, joined for assertions.
fn notes(step: &Value) -> String {
    step["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

const ORDERS: &str = r#"
[[extract]]
name = "orders"
from = "file"
path = "data/orders.csv"
"#;

files_test!(
    empty_and_header_only_files_load_nothing_and_say_so,
    vec![
        text("pipelines/orders.toml", ORDERS),
        text("data/orders.csv", ""),
    ],
    |app| async move {
        // A 0-byte file on the first load: nothing created, the report says why.
        let run = run_pipeline(&app, "orders", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let s = step(&run, "orders");
        assert_eq!(s["rows_out"], 0, "{run}");
        let n = notes(s);
        assert!(n.contains("0 rows: file data/orders.csv is empty"), "{n}");
        assert!(n.contains("table `orders` was not created"), "{n}");
        assert!(
            !table_exists(&app, "orders").await,
            "no table of no columns"
        );

        // Header only on the first load: still no table (types come from data).
        write_file(app.dir.path(), "data/orders.csv", b"id,amount,day\n");
        let run = run_pipeline(&app, "orders", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let n = notes(step(&run, "orders"));
        assert!(
            n.contains("0 rows: file data/orders.csv has a header but no rows"),
            "{n}"
        );
        assert!(!table_exists(&app, "orders").await);

        // Real rows: typed columns.
        write_file(
            app.dir.path(),
            "data/orders.csv",
            b"id,amount,day\n1,2.5,2024-01-01\n2,4,2024-01-02\n",
        );
        let run = run_pipeline(&app, "orders", no_options()).await;
        assert_eq!(step(&run, "orders")["rows_out"], 2, "{run}");
        assert!(step(&run, "orders").get("notes").is_none(), "{run}");
        let id_type = column_type(&app, "orders", "id").await;
        let amount_type = column_type(&app, "orders", "amount").await;
        assert!(!id_type.contains("text") && !amount_type.contains("text"));

        // A 0-byte file now: the table stays as it was (no replace by nothing).
        write_file(app.dir.path(), "data/orders.csv", b"");
        let run = run_pipeline(&app, "orders", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert!(notes(step(&run, "orders")).contains("is empty"), "{run}");
        assert_eq!(
            count(&app, "orders").await,
            2,
            "an empty file replaced nothing"
        );

        // Header only now: zero rows (a replace), and the columns keep their types.
        write_file(app.dir.path(), "data/orders.csv", b"id,amount,day\n");
        let run = run_pipeline(&app, "orders", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(count(&app, "orders").await, 0);
        assert_eq!(column_type(&app, "orders", "id").await, id_type);
        assert_eq!(column_type(&app, "orders", "amount").await, amount_type);
    }
);

const EVENTS: &str = r#"
[[extract]]
name = "events"
from = "file"
path = "data/events.csv"
incremental = { cursor = "at" }
"#;

files_test!(
    a_late_row_at_the_cursor_loads_exactly_once_and_skips_are_counted,
    vec![
        text("pipelines/events.toml", EVENTS),
        text(
            "data/events.csv",
            "id,kind,at\n1,view,2024-01-01T10:00:00Z\n2,click,2024-01-01T11:00:00Z\n",
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(step(&run, "events")["rows_out"], 2, "{run}");

        // Row 3 shares the last cursor value but arrived after the load; row 4 has no cursor.
        write_file(
            app.dir.path(),
            "data/events.csv",
            b"id,kind,at\n1,view,2024-01-01T10:00:00Z\n2,click,2024-01-01T11:00:00Z\n\
              3,buy,2024-01-01T11:00:00Z\n4,view,\n",
        );
        let run = run_pipeline(&app, "events", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let s = step(&run, "events");
        assert_eq!(s["rows_out"], 1, "the late row only: {run}");
        assert_eq!(
            s["rows_skipped"],
            json!({"below_cursor": 1, "null_cursor": 1, "boundary_duplicate": 1, "outside_range": 0, "bad_row": 0}),
            "{run}"
        );
        assert!(
            notes(s).contains("1 row has no value in the cursor column `at`"),
            "{run}"
        );
        let ids = query(&app, "SELECT id FROM events ORDER BY id").await;
        assert_eq!(
            ids.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
            [json!(1), json!(2), json!(3)]
        );

        // Again: nothing new, both rows at the cursor are known.
        let run = run_pipeline(&app, "events", no_options()).await;
        let s = step(&run, "events");
        assert_eq!(s["rows_out"], 0, "{run}");
        assert_eq!(s["rows_skipped"]["boundary_duplicate"], 2, "{run}");
        assert_eq!(count(&app, "events").await, 3);
    }
);

const SQL_EVENTS: &str = r#"
[[extract]]
name = "sql_events"
from = "sql"
connection = "sqlite://src.db"
query = "SELECT id, at FROM ev ORDER BY id"
incremental = { cursor = "at" }
primary_key = ["id"]
"#;

files_test!(
    a_sql_extract_takes_late_rows_at_the_cursor_once,
    vec![text("pipelines/sql_events.toml", SQL_EVENTS)],
    |app| async move {
        let src = format!("sqlite://{}", app.dir.path().join("src.db").display());
        execute_at(
            Backend::Sqlite,
            &src,
            "CREATE TABLE ev (id INTEGER PRIMARY KEY, at INTEGER); \
             INSERT INTO ev VALUES (1, 10), (2, 20), (3, NULL);",
        )
        .await;
        let run = run_pipeline(&app, "sql_events", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let s = step(&run, "sql_events");
        assert_eq!(s["rows_out"], 2, "{run}");
        assert_eq!(s["rows_skipped"]["null_cursor"], 1, "{run}");

        execute_at(
            Backend::Sqlite,
            &src,
            "INSERT INTO ev VALUES (4, 20), (5, 5);",
        )
        .await;
        let run = run_pipeline(&app, "sql_events", no_options()).await;
        let s = step(&run, "sql_events");
        assert_eq!(s["rows_out"], 1, "row 4, late at the cursor: {run}");
        assert_eq!(s["rows_skipped"]["boundary_duplicate"], 1, "{run}");
        let run = run_pipeline(&app, "sql_events", no_options()).await;
        assert_eq!(step(&run, "sql_events")["rows_out"], 0, "{run}");
        let ids = query(&app, "SELECT id FROM sql_events ORDER BY id").await;
        assert_eq!(
            ids.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
            [json!(1), json!(2), json!(4)]
        );
    }
);
