//! Pipelines never destroy data they do not own: a node named like a collection or like
//! another pipeline's table is refused before anything runs, and a collection cannot take
//! the name of a pipeline's table.

use serde_json::{Value, json};

use super::support::*;
use crate::helpers::{Backend, TestApp, expect_json, expect_problem};

const AUTHORS_SYNC: &str = r#"
name = "authors_sync"
retries = 0

[[extract]]
name = "authors"
from = "file"
path = "data/authors.csv"
"#;

const AUTHORS_CSV: &str = "name\nfrom a file\n";

/// `authors` (2 records) and `posts` (3 records) pointing at them.
async fn seed_blog(app: &TestApp) {
    app.must_create_collection(json!({
        "name": "authors",
        "fields": [{ "name": "name", "type": "text" }],
    }))
    .await;
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [
            { "name": "title", "type": "text" },
            { "name": "author", "type": "relation", "options": { "collection": "authors" } },
        ],
    }))
    .await;
    let ada = app
        .must_post_record("authors", json!({ "name": "Ada" }))
        .await;
    let bob = app
        .must_post_record("authors", json!({ "name": "Bob" }))
        .await;
    for (title, author) in [("one", &ada), ("two", &ada), ("three", &bob)] {
        app.must_post_record("posts", json!({ "title": title, "author": author["id"] }))
            .await;
    }
}

/// The foreign keys of `table`, as the database reports them.
async fn foreign_keys(app: &TestApp, table: &str) -> usize {
    let sql = match app.backend {
        Backend::Sqlite => format!("SELECT count(*) AS n FROM pragma_foreign_key_list('{table}')"),
        Backend::Postgres => format!(
            "SELECT count(*) AS n FROM information_schema.table_constraints \
             WHERE table_name = '{table}' AND constraint_type = 'FOREIGN KEY' \
             AND table_schema = current_schema()"
        ),
    };
    query(app, &sql).await[0]["n"].as_i64().unwrap_or(-1) as usize
}

async fn start_refused(app: &TestApp, pipeline: &str) -> Value {
    let res = app
        .post(&format!("/api/pipelines/{pipeline}/runs"), json!({}))
        .await;
    expect_problem(res, 409, None).await
}

files_test!(
    an_extract_named_like_a_collection_is_refused_and_the_collection_keeps_its_records,
    vec![
        text("pipelines/authors_sync.toml", AUTHORS_SYNC),
        text("data/authors.csv", AUTHORS_CSV),
    ],
    |app| async move {
        seed_blog(&app).await;
        assert_eq!(foreign_keys(&app, "posts").await, 1, "posts has its FK");

        let problem = start_refused(&app, "authors_sync").await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("table `authors` belongs to collection `authors`"),
            "{problem}"
        );

        // The CLI refuses the same way.
        let out = pipeline_cli(app.dir.path(), &app.db_url, &["run", "authors_sync"]).await;
        assert!(!out.status.success(), "{}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("table `authors` belongs to collection `authors`"),
            "{}",
            output_text(&out)
        );

        // Nothing ran: no run recorded, every record and the foreign key are still there.
        let runs = expect_json(app.get("/api/pipelines/authors_sync/runs").await, 200).await;
        assert_eq!(
            runs["items"].as_array().map(Vec::len),
            Some(0),
            "no run: {runs}"
        );
        assert_eq!(app.count("authors").await, 2);
        assert_eq!(app.count("posts").await, 3);
        assert_eq!(count(&app, "authors").await, 2);
        assert_eq!(count(&app, "posts").await, 3);
        assert_eq!(foreign_keys(&app, "posts").await, 1, "posts keeps its FK");
        let names = app.must_list("authors", &[("sort", "name")]).await;
        assert_eq!(
            names["items"][0]["name"], "Ada",
            "the collection's rows, not the file's: {names}"
        );
        // Creating a post still checks the author exists (the FK is live).
        let res = app
            .post_record("posts", json!({ "title": "x", "author": "nosuchauthor0" }))
            .await;
        crate::helpers::expect_client_error(res, "post with an unknown author").await;
    }
);

const FIRST: &str = r#"
name = "first"
retries = 0

[[extract]]
name = "shared"
from = "file"
path = "data/first.csv"
"#;

const SECOND: &str = r#"
name = "second"
retries = 0

[[extract]]
name = "other"
from = "file"
path = "data/second.csv"

[[model]]
name = "shared"
query = "SELECT id FROM {{ ref('other') }}"
"#;

files_test!(
    a_second_pipeline_writing_the_same_table_is_refused_naming_the_first,
    vec![
        text("pipelines/first.toml", FIRST),
        text("pipelines/second.toml", SECOND),
        text("data/first.csv", "id,owner\n1,first\n2,first\n"),
        text("data/second.csv", "id\n7\n"),
    ],
    |app| async move {
        let run = run_pipeline(&app, "first", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        // Its own table again: fine.
        let run = run_pipeline(&app, "first", json!({ "full_refresh": true })).await;
        assert_eq!(run["status"], "succeeded", "{run}");

        let problem = start_refused(&app, "second").await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("table `shared` belongs to pipeline `first` (node shared)"),
            "{problem}"
        );
        assert!(
            !table_exists(&app, "other").await,
            "nothing of `second` ran"
        );
        let rows = query(&app, "SELECT id, owner FROM shared ORDER BY id").await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0]["owner"], "first", "{rows:?}");

        // A collection cannot take a pipeline's table either.
        let res = app
            .create_collection(json!({
                "name": "shared",
                "fields": [{ "name": "x", "type": "text" }],
            }))
            .await;
        let problem = expect_problem(res, 409, Some("name")).await;
        assert!(
            problem.to_string().contains("pipeline `first`"),
            "names the pipeline: {problem}"
        );
        assert_eq!(count(&app, "shared").await, 2, "the table is untouched");
        let run = run_pipeline(&app, "first", no_options()).await;
        assert_eq!(run["status"], "succeeded", "still the pipeline's: {run}");
    }
);

const SYSTEM: &str = r#"
name = "sneaky"
retries = 0

[[extract]]
name = "data"
from = "file"
path = "data/x.csv"

[[model]]
name = "_users"
query = "SELECT 1 AS id FROM {{ ref('data') }}"
"#;

files_test!(
    a_model_named_like_a_system_table_is_refused,
    vec![
        text("pipelines/sneaky.toml", SYSTEM),
        text("data/x.csv", "id\n1\n"),
    ],
    |app| async move {
        let res = app.post("/api/pipelines/sneaky/runs", json!({})).await;
        // Either the file is refused at load (names starting with `_`) or the run is.
        let (status, text) = crate::helpers::status_and_text(res).await;
        assert!(matches!(status, 409 | 422), "{status}: {text}");
        let rows = query(&app, "SELECT count(*) AS n FROM _users").await;
        assert_eq!(rows[0]["n"], 1, "the superuser is still there: {rows:?}");
    }
);

const BULK: &str = r#"
name = "bulk"
retries = 0

[[extract]]
name = "bulk"
from = "file"
path = "data/bulk.csv"
"#;

files_test!(
    a_collection_made_while_a_run_loads_is_not_replaced_by_the_publish,
    vec![
        text("pipelines/bulk.toml", BULK),
        text("data/bulk.csv", &numbered_csv(1, 400_000)),
    ],
    |app| async move {
        let started = expect_json(app.post("/api/pipelines/bulk/runs", json!({})).await, 202).await;
        let id = started["run_id"].as_str().expect("run_id").to_string();
        // The run passed its checks; a collection takes the name while rows are staged.
        wait_until_loading(&app, &id).await;
        app.must_create_collection(json!({
            "name": "bulk",
            "fields": [{ "name": "note", "type": "text" }],
        }))
        .await;
        app.must_post_record("bulk", json!({ "note": "mine" }))
            .await;

        let run = wait(&app, &id).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = step(&run, "bulk")["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("table `bulk` belongs to collection `bulk`"),
            "the publish checks again: {run}"
        );
        assert_eq!(
            app.count("bulk").await,
            1,
            "the collection keeps its record"
        );
        let left = staging_tables(app.backend, &app.db_url).await;
        assert!(left.is_empty(), "staged rows are discarded: {left:?}");
    }
);
