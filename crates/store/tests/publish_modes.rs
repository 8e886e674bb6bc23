//! Publishing a bronze load in each write mode, against a real SQLite file: what the target
//! holds afterwards, how many rows count as published, and that a refused publish (a changed
//! column type, a missing merge key) leaves the table and no staging table behind.
//! (PostgreSQL runs the same code paths in the API suite's pipeline tests.)

use brigade_core::value::Value;
use brigade_store::raw::RawDatabase;
use brigade_store::warehouse::{Column, ColumnType, Finish, WriteMode};
use brigade_store::{Store, StoreError};
use serde_json::{Value as Json, json};

struct Db {
    _dir: tempfile::TempDir,
    store: Store,
    raw: RawDatabase,
}

async fn db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("brigade.db").display());
    let store = Store::connect(&url, &dir.path().join("migrations"))
        .await
        .expect("store");
    let raw = RawDatabase::open(&url).await.expect("raw");
    Db {
        _dir: dir,
        store,
        raw,
    }
}

fn columns(name_type: ColumnType) -> Vec<Column> {
    vec![
        Column {
            name: "id".into(),
            ty: ColumnType::Integer,
        },
        Column {
            name: "name".into(),
            ty: name_type,
        },
    ]
}

fn rows(values: &[(i64, &str)]) -> Vec<Vec<Value>> {
    values
        .iter()
        .map(|(id, name)| vec![Value::Int(*id), Value::Text((*name).into())])
        .collect()
}

/// Loads `values` into `items` with `mode`; returns the rows counted as published.
async fn load(db: &Db, mode: WriteMode, values: &[(i64, &str)]) -> Result<u64, StoreError> {
    load_typed(db, mode, ColumnType::Text, values).await
}

async fn load_typed(
    db: &Db,
    mode: WriteMode,
    name_type: ColumnType,
    values: &[(i64, &str)],
) -> Result<u64, StoreError> {
    let mut staging = db
        .store
        .warehouse()
        .begin_load("shop", "items", &columns(name_type), "run-1", &mode)
        .await?;
    staging
        .write(
            rows(values),
            ["2026-01-01T00:00:00.000Z", "run-1", "test.csv"],
        )
        .await?;
    let published = staging.publish(&mode, Finish::default(), &[]).await?;
    assert_eq!(published.failure, None);
    Ok(published.rows)
}

/// `(id, name)` of every row, by id.
async fn contents(db: &Db) -> Vec<(i64, String)> {
    db.raw
        .query_json("SELECT id, name FROM items ORDER BY id")
        .await
        .expect("read items")
        .into_iter()
        .map(|r| {
            (
                r["id"].as_i64().expect("id"),
                r["name"].as_str().expect("name").to_string(),
            )
        })
        .collect()
}

fn pairs(values: &[(i64, &str)]) -> Vec<(i64, String)> {
    values.iter().map(|(i, n)| (*i, (*n).to_string())).collect()
}

async fn staging_tables(db: &Db) -> Vec<Json> {
    db.raw
        .query_json("SELECT name FROM sqlite_master WHERE name LIKE '\\_stg\\_%' ESCAPE '\\'")
        .await
        .expect("list staging")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect()
}

#[tokio::test]
async fn each_write_mode_leaves_the_table_it_promises() {
    let db = db().await;
    assert_eq!(
        load(&db, WriteMode::Replace, &[(1, "a"), (2, "b"), (3, "c")])
            .await
            .unwrap(),
        3
    );
    assert_eq!(contents(&db).await, pairs(&[(1, "a"), (2, "b"), (3, "c")]));

    // Append adds, even a repeated id.
    assert_eq!(
        load(&db, WriteMode::Append, &[(3, "c2"), (4, "d")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(contents(&db).await.len(), 5);

    // Replace swaps the contents.
    load(&db, WriteMode::Replace, &[(1, "a"), (2, "b"), (3, "c")])
        .await
        .unwrap();
    assert_eq!(contents(&db).await, pairs(&[(1, "a"), (2, "b"), (3, "c")]));

    // Merge updates and inserts by key; the last row of a key in one load wins and the
    // repeated row is not counted.
    let merged = load(
        &db,
        WriteMode::Merge(vec!["id".into()]),
        &[(2, "B"), (4, "d"), (4, "D")],
    )
    .await
    .unwrap();
    assert_eq!(merged, 2);
    assert_eq!(
        contents(&db).await,
        pairs(&[(1, "a"), (2, "B"), (3, "c"), (4, "D")])
    );

    // A range replace touches only `from <= id < to`.
    load(
        &db,
        WriteMode::ReplaceRange {
            column: "id".into(),
            from: Value::Int(2),
            to: Value::Int(4),
        },
        &[(3, "x")],
    )
    .await
    .unwrap();
    assert_eq!(contents(&db).await, pairs(&[(1, "a"), (3, "x"), (4, "D")]));

    // Rebuild replaces everything with one row per key.
    let rebuilt = load(
        &db,
        WriteMode::Rebuild(vec!["id".into()]),
        &[(5, "e"), (5, "E"), (6, "f")],
    )
    .await
    .unwrap();
    assert_eq!(rebuilt, 2);
    assert_eq!(contents(&db).await, pairs(&[(5, "E"), (6, "f")]));

    // Lineage columns ride along.
    let lineage = db
        .raw
        .query_json("SELECT _batch_id, _source FROM items LIMIT 1")
        .await
        .unwrap();
    assert_eq!(
        Json::Object(lineage[0].clone()),
        json!({"_batch_id": "run-1", "_source": "test.csv"})
    );
    assert!(staging_tables(&db).await.is_empty());
}

#[tokio::test]
async fn a_refused_publish_changes_nothing() {
    let db = db().await;
    load_typed(
        &db,
        WriteMode::Replace,
        ColumnType::Integer,
        &[(1, "10"), (2, "20")],
    )
    .await
    .unwrap();
    let before = db
        .raw
        .query_json("SELECT id, name FROM items ORDER BY id")
        .await
        .unwrap();
    assert_eq!(before[1]["name"], 20);

    // Text where the table has integers: refused, naming the column and both types (integers
    // into a text column would widen and be accepted).
    let err = load(&db, WriteMode::Append, &[(3, "abc")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unprocessable(_))
            && err
                .to_string()
                .contains("column `name` of `items` is integer but the new data is text"),
        "{err:?}"
    );
    // A merge on a column the rows do not have.
    let err = load_typed(
        &db,
        WriteMode::Merge(vec!["sku".into()]),
        ColumnType::Integer,
        &[(3, "30")],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Unprocessable(_))
            && err
                .to_string()
                .contains("the key column `sku` of `items` is not in its rows"),
        "{err:?}"
    );

    let after = db
        .raw
        .query_json("SELECT id, name FROM items ORDER BY id")
        .await
        .unwrap();
    assert_eq!(after, before);
    assert!(staging_tables(&db).await.is_empty());
}

#[tokio::test]
async fn a_pipeline_cannot_publish_over_another_pipelines_table() {
    let db = db().await;
    load(&db, WriteMode::Replace, &[(1, "a")]).await.unwrap();
    let mut staging = db
        .store
        .warehouse()
        .begin_load(
            "other",
            "items",
            &columns(ColumnType::Text),
            "run-2",
            &WriteMode::Replace,
        )
        .await
        .unwrap();
    staging
        .write(
            rows(&[(9, "z")]),
            ["2026-01-01T00:00:00.000Z", "run-2", "x"],
        )
        .await
        .unwrap();
    let err = staging
        .publish(&WriteMode::Replace, Finish::default(), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { .. }) && err.to_string().contains("pipeline `shop`"),
        "{err:?}"
    );
    assert_eq!(contents(&db).await, pairs(&[(1, "a")]));
    assert!(staging_tables(&db).await.is_empty());
}
