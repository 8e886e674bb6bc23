//! Every column type a SQL model can produce reads, filters and sorts through an exposed
//! model: `numeric` as a JSON number (it was `null`, and `> 50` a 500), dates and times as
//! text, intervals as ISO 8601, uuids as strings, arrays and json as JSON, bytes as base64.
//! A literal of the wrong kind is a 400 naming the field, never a 5xx.

use serde_json::{Value, json};

use super::support::*;
use crate::helpers::{Backend, TestApp, column, expect_json, expect_problem, spawn_app_with_files};

const PIPELINE: &str = r#"
name = "typed"
retries = 0

[[model]]
name = "portable"
sql = "models/portable.sql"
expose = true
unique_key = "k"

[[model]]
name = "native"
sql = "models/native.sql"
expose = true
unique_key = "k"
"#;

/// The same SQL on both stores, the same JSON from both.
const PORTABLE: &str = "
SELECT 'a' AS k, CAST(7 AS INTEGER) AS i, 9000000000 AS big,
       ROUND(CAST(51.456 AS NUMERIC), 2) AS n, CAST(0.25 AS REAL) AS r, 'x' AS t
UNION ALL
SELECT 'b', CAST(8 AS INTEGER), 8000000000, ROUND(CAST(49.5 AS NUMERIC), 2), CAST(2.5 AS REAL), 'y'
UNION ALL
SELECT 'c', NULL, NULL, NULL, NULL, NULL
";

/// What each store's own types make: PostgreSQL's whole range.
const NATIVE_POSTGRES: &str = r#"
SELECT * FROM (VALUES
  ('a', CAST(1 AS SMALLINT), CAST(100000 AS INTEGER), CAST(0.1 AS REAL),
   CAST(2.25 AS DOUBLE PRECISION), CAST(51.456 AS NUMERIC(10, 2)), TRUE,
   DATE '2013-01-02', TIME '10:30:00', TIMESTAMP '2013-01-02 10:30:00',
   TIMESTAMPTZ '2013-01-02 10:30:00+02', INTERVAL '1 day 2 hours 30 minutes',
   CAST('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' AS UUID), ARRAY[1, 2, 3],
   CAST('{"a": 1}' AS JSONB), CAST('{"b": [true]}' AS JSON), CAST('hello' AS BYTEA)),
  ('b', CAST(-2 AS SMALLINT), CAST(5 AS INTEGER), CAST(7.5 AS REAL),
   CAST(-1 AS DOUBLE PRECISION), CAST(49.5 AS NUMERIC(10, 2)), FALSE,
   DATE '2014-06-30', TIME '08:00:00', TIMESTAMP '2014-06-30 23:59:59.5',
   TIMESTAMPTZ '2014-06-30 00:00:00Z', INTERVAL '3 months 90 seconds',
   CAST('00000000-0000-0000-0000-000000000001' AS UUID), ARRAY[4],
   CAST('[1, "two"]' AS JSONB), CAST('null' AS JSON), CAST('' AS BYTEA)),
  ('c', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL)
) AS v(k, small, int4, real4, dbl, num, flag, day, clock, ts, tstz, span, uid, arr, jb, js, bin)
"#;

/// SQLite's: integers, reals, text from its date functions, blobs.
const NATIVE_SQLITE: &str = "
SELECT 'a' AS k, 1 AS small, 100000 AS int4, 0.1 AS real4, 2.25 AS dbl,
       ROUND(CAST(51.456 AS NUMERIC), 2) AS num, date('2013-01-02') AS day,
       time('10:30:00') AS clock, X'68656c6c6f' AS bin
UNION ALL
SELECT 'b', -2, 5, 7.5, -1.0, ROUND(CAST(49.5 AS NUMERIC), 2), date('2014-06-30'),
       time('08:00:00'), X''
UNION ALL
SELECT 'c', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
";

async fn typed_app(backend: Backend) -> Option<TestApp> {
    let native = match backend {
        Backend::Sqlite => NATIVE_SQLITE,
        Backend::Postgres => NATIVE_POSTGRES,
    };
    let files = [
        ("pipelines/typed.toml", PIPELINE.as_bytes()),
        ("models/portable.sql", PORTABLE.as_bytes()),
        ("models/native.sql", native.as_bytes()),
    ];
    let app = spawn_app_with_files(backend, &files).await?;
    let run = run_pipeline(&app, "typed", no_options()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    Some(app)
}

/// The items of `collection` matching `filter` (if any), sorted by `sort`.
async fn list(app: &TestApp, collection: &str, filter: Option<&str>, sort: &str) -> Value {
    let path = format!("/api/collections/{collection}/records");
    let mut query = vec![("sort", sort)];
    if let Some(f) = filter {
        query.push(("filter", f));
    }
    let url = app.url_with(&path, &query);
    let res = app
        .client
        .get(url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await
}

async fn keys(app: &TestApp, collection: &str, filter: &str) -> Vec<String> {
    column(&list(app, collection, Some(filter), "k").await, "k")
}

/// `filter` is refused with a 400 problem whose message names `field`.
async fn refused(app: &TestApp, collection: &str, filter: &str, field: &str) {
    let url = app.url_with(
        &format!("/api/collections/{collection}/records"),
        &[("filter", filter)],
    );
    let res = app
        .client
        .get(url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 400, Some("filter")).await;
    let message = problem["errors"]["filter"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("`{field}`")),
        "{filter}: {problem}"
    );
}

/// The fields of `item` without the system columns.
fn values(item: &Value, fields: &[&str]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|f| ((*f).to_string(), item[*f].clone()))
            .collect(),
    )
}

backend_test!(
    portable_models_give_the_same_json_on_both_stores,
    |backend| async move {
        let Some(app) = typed_app(backend).await else {
            return;
        };
        let page = list(&app, "portable", None, "k").await;
        let fields = ["k", "i", "big", "n", "r", "t"];
        let items: Vec<Value> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| values(item, &fields))
            .collect();
        assert_eq!(
            items,
            [
                json!({"k": "a", "i": 7, "big": 9_000_000_000_i64, "n": 51.46, "r": 0.25, "t": "x"}),
                json!({"k": "b", "i": 8, "big": 8_000_000_000_i64, "n": 49.5, "r": 2.5, "t": "y"}),
                json!({"k": "c", "i": null, "big": null, "n": null, "r": null, "t": null}),
            ],
            "{page}"
        );
        // The flights example's failing filter: a `numeric` column with an integer or a decimal.
        assert_eq!(keys(&app, "portable", "n > 50").await, ["a"]);
        assert_eq!(keys(&app, "portable", "n > 49.5").await, ["a"]);
        assert_eq!(keys(&app, "portable", "n <= 49.5").await, ["b"]);
        assert_eq!(keys(&app, "portable", "n != 51.46").await, ["b", "c"]);
        assert_eq!(keys(&app, "portable", "big > 8500000000").await, ["a"]);
        assert_eq!(keys(&app, "portable", "i = 8 && r = 2.5").await, ["b"]);
        assert_eq!(keys(&app, "portable", "r < 1").await, ["a"]);
        assert_eq!(keys(&app, "portable", "n = null").await, ["c"]);
        // Sorted by the numbers, not by their text; nulls first ascending, as records are.
        let sorted = |sort: &'static str| {
            let app = &app;
            async move { column(&list(app, "portable", Some("n != null"), sort).await, "k") }
        };
        assert_eq!(sorted("-n").await, ["a", "b"]);
        assert_eq!(sorted("n").await, ["b", "a"]);
        assert_eq!(sorted("-r").await, ["b", "a"]);
        assert_eq!(sorted("big").await, ["b", "a"]);
        // Wrong kinds are the caller's mistake.
        refused(&app, "portable", "n > 'abc'", "n").await;
        refused(&app, "portable", "i = true", "i").await;
        refused(&app, "portable", "big > 'many'", "big").await;
    }
);

backend_test!(
    every_native_type_reads_filters_and_sorts,
    |backend| async move {
        let Some(app) = typed_app(backend).await else {
            return;
        };
        let page = list(&app, "native", None, "k").await;
        let items = page["items"].as_array().unwrap();
        let common = [
            "k", "small", "int4", "real4", "dbl", "num", "day", "clock", "bin",
        ];
        assert_eq!(
            values(&items[0], &common),
            json!({"k": "a", "small": 1, "int4": 100_000, "real4": 0.1, "dbl": 2.25, "num": 51.46,
               "day": "2013-01-02", "clock": "10:30:00", "bin": "aGVsbG8="}),
            "{page}"
        );
        assert_eq!(
            values(&items[1], &common),
            json!({"k": "b", "small": -2, "int4": 5, "real4": 7.5, "dbl": -1.0, "num": 49.5,
               "day": "2014-06-30", "clock": "08:00:00", "bin": ""}),
            "{page}"
        );
        for field in &common[1..] {
            assert_eq!(items[2][*field], Value::Null, "{field}: {page}");
        }
        for (filter, want) in [
            ("small < 0", &["b"][..]),
            ("small = 1", &["a"]),
            ("int4 >= 100000", &["a"]),
            ("real4 > 0.05 && real4 < 0.2", &["a"]),
            ("dbl < 0", &["b"]),
            ("num > 50", &["a"]),
            ("num > 49.4", &["a", "b"]),
            ("day >= '2014-01-01'", &["b"]),
            ("day = '2013-01-02'", &["a"]),
            ("clock < '09:00:00'", &["b"]),
            ("clock ~ '10:30'", &["a"]),
        ] {
            assert_eq!(keys(&app, "native", filter).await, want, "{filter}");
        }
        for (sort, want) in [
            ("-small", ["a", "b"]),
            ("int4", ["b", "a"]),
            ("-num", ["a", "b"]),
            ("-day", ["b", "a"]),
            ("clock", ["b", "a"]),
        ] {
            let page = list(&app, "native", Some("k != 'c'"), sort).await;
            assert_eq!(column(&page, "k"), want, "sort={sort}");
        }
        refused(&app, "native", "num > 'a lot'", "num").await;
        refused(&app, "native", "small = 'one'", "small").await;
        refused(&app, "native", "day > 5", "day").await;
        if backend == Backend::Sqlite {
            return;
        }
        // PostgreSQL's own types.
        let pg = ["flag", "ts", "tstz", "span", "uid", "arr", "jb", "js"];
        assert_eq!(
            values(&items[0], &pg),
            json!({"flag": true, "ts": "2013-01-02T10:30:00.000Z", "tstz": "2013-01-02T08:30:00.000Z",
               "span": "P0Y0M1DT2H30M0S", "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
               "arr": [1, 2, 3], "jb": {"a": 1}, "js": {"b": [true]}}),
            "{page}"
        );
        assert_eq!(
            values(&items[1], &pg),
            json!({"flag": false, "ts": "2014-06-30T23:59:59.500Z", "tstz": "2014-06-30T00:00:00.000Z",
               "span": "P0Y3M0DT0H1M30S", "uid": "00000000-0000-0000-0000-000000000001",
               "arr": [4], "jb": [1, "two"], "js": null}),
            "{page}"
        );
        for field in pg {
            assert_eq!(items[2][field], Value::Null, "{field}: {page}");
        }
        for (filter, want) in [
            ("flag = true", &["a"][..]),
            ("flag != true", &["b", "c"]),
            ("ts > '2014-01-01T00:00:00Z'", &["b"]),
            ("tstz < '2013-01-02T09:00:00Z'", &["a"]),
            ("span = 'P0Y3M0DT0H1M30S'", &["b"]),
            ("uid = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", &["a"]),
            ("bin = 'aGVsbG8='", &["a"]),
            ("arr ~ '2'", &["a"]),
            ("jb ~ 'two'", &["b"]),
            ("js = null", &["c"]),
        ] {
            assert_eq!(keys(&app, "native", filter).await, want, "{filter}");
        }
        for (sort, want) in [
            ("-tstz", ["b", "a"]),
            ("uid", ["b", "a"]),
            ("flag", ["b", "a"]),
        ] {
            let page = list(&app, "native", Some("k != 'c'"), sort).await;
            assert_eq!(column(&page, "k"), want, "sort={sort}");
        }
        refused(&app, "native", "flag = 1", "flag").await;
        refused(&app, "native", "ts > 'yesterday'", "ts").await;
        refused(&app, "native", "jb > 1", "jb").await;
        refused(&app, "native", "uid = 5", "uid").await;
    }
);

const LOADED: &str = r#"
name = "loaded"
retries = 0

[[extract]]
name = "raw_events"
from = "file"
path = "data/events.csv"
columns = { n = "integer", ok = "bool", at = "timestamp", amount = "number", doc = "json" }

[[model]]
name = "events"
query = "SELECT n, ok, at, amount, name, doc FROM {{ ref('raw_events') }}"
expose = true
unique_key = "n"
"#;

const EVENTS: &str = "n,ok,at,amount,name,doc
1,true,2013-01-01T10:00:00Z,2.5,first,\"{\"\"a\"\": 1}\"
2,false,2013-01-02 11:30:00,10,second,[1]
";

backend_test!(
    loaded_columns_keep_their_types_when_exposed,
    |backend| async move {
        let files = [
            ("pipelines/loaded.toml", LOADED.as_bytes()),
            ("data/events.csv", EVENTS.as_bytes()),
        ];
        let Some(app) = spawn_app_with_files(backend, &files).await else {
            return;
        };
        let run = run_pipeline(&app, "loaded", no_options()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let page = list(&app, "events", None, "n").await;
        let fields = ["n", "ok", "at", "amount", "name", "doc"];
        let items: Vec<Value> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| values(item, &fields))
            .collect();
        assert_eq!(
            items,
            [
                json!({"n": 1, "ok": true, "at": "2013-01-01T10:00:00.000Z", "amount": 2.5,
                   "name": "first", "doc": {"a": 1}}),
                json!({"n": 2, "ok": false, "at": "2013-01-02T11:30:00.000Z", "amount": 10.0,
                   "name": "second", "doc": [1]}),
            ],
            "{page}"
        );
        assert_eq!(keys_by(&app, "events", "ok = true", "n").await, ["1"]);
        assert_eq!(
            keys_by(&app, "events", "at > '2013-01-02T00:00:00Z'", "n").await,
            ["2"]
        );
        assert_eq!(keys_by(&app, "events", "amount > 5", "n").await, ["2"]);
        refused(&app, "events", "ok = 'yes'", "ok").await;
        refused(&app, "events", "at > 'soon'", "at").await;
    }
);

async fn keys_by(app: &TestApp, collection: &str, filter: &str, key: &str) -> Vec<String> {
    column(&list(app, collection, Some(filter), key).await, key)
}
