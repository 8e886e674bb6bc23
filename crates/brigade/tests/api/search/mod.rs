//! Search and RAG end to end: indexes declared in brigade.toml over files, posted documents
//! and collections, searched and asked over HTTP and the CLI, on both backends; answers
//! written by an OpenAI-compatible server the test starts on loopback.

mod collections;
mod documents;
mod embedders;
mod files;
mod rag;

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, expect_json};

/// A short manual in three markdown files.
pub(crate) fn manual() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "docs/backup.md",
            b"# Backup and Restore\n\nUse pg_dump to make a logical backup of one database. \
              pg_dumpall dumps every database of a cluster, roles included.\n\n## Restoring\n\n\
              pg_restore reads the archives that pg_dump writes in the custom format.\n"
                .to_vec(),
        ),
        (
            "docs/vacuum.md",
            b"---\ntitle: Routine Vacuuming\ntags: [maintenance, storage]\nlevel: 2\n---\n\n\
              # Routine Vacuuming\n\nVACUUM reclaims storage occupied by dead tuples. \
              VACUUM FULL rewrites the whole table and holds an exclusive lock while it runs.\n\n\
              ## Autovacuum\n\nThe autovacuum daemon runs VACUUM and ANALYZE automatically.\n"
                .to_vec(),
        ),
        (
            "docs/guide/indexes.md",
            b"# Indexes\n\nCREATE INDEX CONCURRENTLY builds an index without locking out writes. \
              A B-tree index speeds up equality and range queries.\n"
                .to_vec(),
        ),
    ]
}

/// `brigade.toml` with a `docs` index over `docs/**/*.md` (plus `extra`).
pub(crate) fn config(extra: &str) -> (&'static str, Vec<u8>) {
    (
        "brigade.toml",
        format!("[[search.indexes]]\nname = \"docs\"\npath = \"docs/**/*.md\"\n{extra}")
            .into_bytes(),
    )
}

/// Waits until the background ingest of `index` is done; returns its listing.
pub(crate) async fn wait_ingested(app: &TestApp, index: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = expect_json(app.get("/api/search").await, 200).await;
        let item = list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == index))
            .cloned()
            .unwrap_or_else(|| panic!("no index {index} in {list}"));
        match item["ingest"]["state"].as_str() {
            Some("done") => return item,
            Some("failed") => panic!("ingest failed: {item}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ingest did not finish: {item}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /api/search/{index}` with `query`, as the admin; the hits.
pub(crate) async fn hits(app: &TestApp, index: &str, query: &[(&str, &str)]) -> Vec<Value> {
    let url = app.url_with(&format!("/api/search/{index}"), query);
    let res = crate::helpers::send(app.client.get(url).bearer_auth(&app.token)).await;
    let body = expect_json(res, 200).await;
    body["hits"].as_array().cloned().unwrap_or_default()
}

/// The document ids of `hits`, in order.
pub(crate) fn docs_of(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| {
            h["source"]["document_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}
