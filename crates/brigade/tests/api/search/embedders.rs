//! The `local:` embedder (the real all-MiniLM-L6-v2 run in process) and the `openai:`
//! embedder (an OpenAI-compatible `/v1/embeddings` on loopback), end to end.

use brigade_search::fake_openai::{Behaviour, FakeOpenAi};
use serde_json::json;

use super::{docs_of, hits, manual, wait_ingested};
use crate::helpers::{Backend, expect_json, expect_problem, spawn_app_with_files};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_model_finds_paraphrases() {
    let model = brigade_search::test_model::minilm_dir();
    let config = format!(
        "[[search.indexes]]\nname = \"docs\"\npath = \"docs/**/*.md\"\nembedder = \"local:{}\"\n",
        model.display()
    );
    let mut files = manual();
    files.push(("brigade.toml", config.into_bytes()));
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
    let Some(app) = spawn_app_with_files(Backend::Sqlite, &files).await else {
        return;
    };
    let index = wait_ingested(&app, "docs").await;
    assert_eq!(index["embedder"], format!("local:{}", model.display()));
    // No word of the question is in the answer's text: only meaning connects them.
    let found = hits(
        &app,
        "docs",
        &[
            ("q", "How can I save a copy of my data to a file?"),
            ("mode", "vector"),
            ("k", "1"),
        ],
    )
    .await;
    assert_eq!(docs_of(&found), ["docs/backup.md"], "{found:?}");
    let found = hits(
        &app,
        "docs",
        &[
            ("q", "cleaning up rows that were deleted"),
            ("mode", "vector"),
            ("k", "1"),
        ],
    )
    .await;
    assert_eq!(docs_of(&found), ["docs/vacuum.md"], "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_embedder_is_batched_cached_and_its_failures_are_502() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let server = FakeOpenAi::start(Behaviour::Answer).await;
        let config = format!(
            "[[search.indexes]]\nname = \"kb\"\nembedder = \"openai:fake-model\"\nembedder_url = \"{}\"\n",
            server.base_url
        );
        let files = [("brigade.toml", config.as_bytes())];
        let Some(app) = spawn_app_with_files(backend, &files).await else {
            continue;
        };
        let doc = |id: &str| json!({"id": id, "title": "Same", "text": "Alpha paragraph.\n\nBeta paragraph."});
        expect_json(app.post("/api/search/kb/documents", doc("one")).await, 201).await;
        let sent = server.requests();
        let embeds: Vec<_> = sent
            .iter()
            .filter(|r| r["path"] == "/v1/embeddings")
            .collect();
        assert_eq!(embeds.len(), 1, "{sent:?}");
        assert_eq!(embeds[0]["body"]["model"], "fake-model");
        // The same text under another id reuses the cached vectors: no embeddings call.
        expect_json(app.post("/api/search/kb/documents", doc("two")).await, 201).await;
        assert_eq!(
            server
                .requests()
                .iter()
                .filter(|r| r["path"] == "/v1/embeddings")
                .count(),
            1
        );

        let found = hits(&app, "kb", &[("q", "alpha"), ("mode", "vector")]).await;
        assert!(!found.is_empty());
        // The query was embedded by the same server.
        let last = server.requests().last().cloned().expect("a request");
        assert_eq!(last["path"], "/v1/embeddings", "{last}");
        assert_eq!(last["body"]["input"], json!(["alpha"]), "{last}");
        // Queries are embedded by the server too; when it fails, the search is a 502.
        server.set_behaviour(Behaviour::Status(500));
        let url = app.url_with(
            "/api/search/kb",
            &[("q", "something new"), ("mode", "vector")],
        );
        let p = expect_problem(
            crate::helpers::send(app.client.get(url).bearer_auth(&app.token)).await,
            502,
            None,
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("embedder"), "{p}");
        // Keyword search does not need the embedder.
        assert!(
            !hits(&app, "kb", &[("q", "beta"), ("mode", "keyword")])
                .await
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_model_directory_that_does_not_load_stops_serve_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("brigade.toml"),
        "[[search.indexes]]\nname = \"docs\"\nembedder = \"local:models/missing\"\n",
    )
    .unwrap();
    let out = crate::helpers::run_cli(
        [
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("index `docs`") && stderr.contains("config.json"),
        "{stderr}"
    );
}
