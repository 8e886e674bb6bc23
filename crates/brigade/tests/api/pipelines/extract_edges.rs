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

const SKIPPY: &str = r#"
retries = 0

[[extract]]
name = "skippy"
from = "file"
path = "data/skippy.csv"
sample_rows = 1
on_bad_row = "skip"

[[extract]]
name = "kept"
from = "file"
path = "data/kept.csv"
sample_rows = 1
on_bad_row = "quarantine"
"#;

files_test!(
    skipped_bad_rows_are_counted_and_quarantined_rows_keep_their_text,
    vec![
        text("pipelines/skippy.toml", SKIPPY),
        text("data/skippy.csv", "id,n\n1,10\n2,x\n3\n4,40\n"),
        text(
            "data/kept.csv",
            "id,name\n1,a\nx,\"Semi; \"\"colon\"\", too\"\n2,b\n"
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "skippy", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let s = step(&run, "skippy");
        assert_eq!(s["rows_out"], 2, "{run}");
        assert_eq!(
            s["rows_skipped"]["bad_row"], 2,
            "skipped rows are counted: {run}"
        );
        let k = step(&run, "kept");
        assert_eq!(k["rows_rejected"], 1, "{run}");
        let raw = query(&app, "SELECT _line, _raw FROM kept__rejected").await;
        assert_eq!(raw.len(), 1, "{raw:?}");
        assert_eq!(raw[0]["_line"], 3, "{raw:?}");
        assert_eq!(
            raw[0]["_raw"], "x,\"Semi; \"\"colon\"\", too\"",
            "as written in the file: {raw:?}"
        );
    }
);

const QUOTE: &str = r#"
retries = 0

[[extract]]
name = "quoted"
from = "file"
path = "data/quoted.csv"
"#;

/// `id,name,n`, row 2 opens a quote it never closes, then 2,000 more rows.
fn unterminated() -> String {
    let mut text = String::from("id,name,n\n1,a,1\n2,\"open,2\n");
    for i in 3..2003 {
        text.push_str(&format!("{i},x{i},{i}\n"));
    }
    text
}

files_test!(
    an_unterminated_quote_fails_the_load_naming_its_line,
    vec![
        text("pipelines/quoted.toml", QUOTE),
        text("data/quoted.csv", &unterminated()),
    ],
    |app| async move {
        let run = run_pipeline(&app, "quoted", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("data/quoted.csv line 3: unterminated quote starting at line 3"),
            "{run}"
        );
        assert!(!error.contains("has 2 fields"), "{run}");
        assert!(!table_exists(&app, "quoted").await);
    }
);

const UNREACHABLE: &str = r#"
retries = 0

[[extract]]
name = "remote"
from = "sql"
connection = "postgres://postgres@127.0.0.1:1/nothing"
query = "SELECT 1 AS x"
"#;

files_test!(
    a_postgres_source_that_refuses_the_connection_says_why,
    vec![text("pipelines/remote.toml", UNREACHABLE)],
    |app| async move {
        let run = run_pipeline(&app, "remote", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("cannot connect to postgres://postgres@127.0.0.1:1/nothing"),
            "{run}"
        );
        assert!(
            error.to_lowercase().contains("connection refused"),
            "the cause is kept: {run}"
        );
    }
);

const BAD_MODEL: &str = r#"
retries = 0

[[extract]]
name = "raw"
from = "file"
path = "data/raw.csv"

[[model]]
name = "m"
sql = "models/m.sql"
"#;

files_test!(
    a_database_error_in_a_model_names_the_line_of_the_model_file,
    vec![
        text("pipelines/bad_model.toml", BAD_MODEL),
        text("data/raw.csv", "a,b\n1,2\n"),
        // A template comment and a block before the mistake on line 5.
        text(
            "models/m.sql",
            "{# one row per a,\n   with b #}\n{% set cols = 'a, b' %}\nSELECT {{ cols }},\n       nope\nFROM {{ ref('raw') }}\n",
        ),
    ],
    |app| async move {
        let run = run_pipeline(&app, "bad_model", no_options()).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("model `m` (models/m.sql:5): the database refused its SQL"),
            "{run}"
        );
    }
);

/// A PostgreSQL source: more rows than a page, read once through a server-side cursor, then
/// only the rows past a `timestamptz` cursor (the bound is cast to the column's type).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_source_is_read_in_pages_and_past_a_timestamp_cursor() {
    let Some(src) = crate::helpers::postgres::fresh_database_url().await else {
        return;
    };
    execute_at(
        Backend::Postgres,
        &src,
        "CREATE TABLE ev (id bigint PRIMARY KEY, at timestamptz NOT NULL, amount numeric);
         INSERT INTO ev SELECT x, timestamptz '2024-01-01 00:00:00+00' + x * interval '1 second', x / 2.0
         FROM generate_series(1, 12345) x;",
    )
    .await;
    let pipeline = format!(
        "[[extract]]\nname = \"pg_events\"\nfrom = \"sql\"\nconnection = \"{src}\"\n\
         query = \"SELECT id, at FROM ev\"\nincremental = {{ cursor = \"at\" }}\nprimary_key = [\"id\"]\n"
    );
    let dir = app_dir(&[("pipelines/pg_events.toml", pipeline.into_bytes())]);
    let Some(url) = Backend::Sqlite.fresh_database_url(dir.path()).await else {
        return;
    };
    let app = TestApp::start(dir, url, Backend::Sqlite).await;
    let run = run_pipeline(&app, "pg_events", no_options()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(step(&run, "pg_events")["rows_out"], 12_345, "{run}");

    execute_at(
        Backend::Postgres,
        &src,
        "INSERT INTO ev SELECT x, timestamptz '2024-01-01 00:00:00+00' + x * interval '1 second', 0
         FROM generate_series(12346, 12350) x;",
    )
    .await;
    let run = run_pipeline(&app, "pg_events", no_options()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        step(&run, "pg_events")["rows_out"],
        5,
        "only the new rows: {run}"
    );
    assert_eq!(count(&app, "pg_events").await, 12_350);
}
