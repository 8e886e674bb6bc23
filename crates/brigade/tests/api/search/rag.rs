//! `POST /api/rag/{index}`: extractive answers without a model; with an OpenAI-compatible
//! server started on loopback, generative answers built from the retrieved passages, and
//! the failures a model server has — down, slow, answering garbage.

use std::time::Duration;

use brigade_search::fake_openai::{Behaviour, FakeOpenAi, unused_base_url};
use serde_json::{Value, json};

use super::{config, manual, wait_ingested};
use crate::helpers::{expect_json, expect_problem};

fn files(llm: Option<(&str, u64)>) -> Vec<(&'static str, Vec<u8>)> {
    let extra = match llm {
        Some((url, timeout)) => format!(
            "[llm]\nbase_url = \"{url}\"\nmodel = \"fake-model\"\ntimeout_s = {timeout}\nmax_retries = 1\n"
        ),
        None => String::new(),
    };
    let mut f = manual();
    f.push(config(&extra));
    f
}

async fn ask(app: &crate::helpers::TestApp, body: Value) -> reqwest::Response {
    app.post("/api/rag/docs", body).await
}

files_test!(
    without_a_model_answers_are_extractive_with_sources,
    files(None),
    |app| async move {
        wait_ingested(&app, "docs").await;
        let a = expect_json(
            ask(
                &app,
                json!({"question": "Which lock does VACUUM FULL hold?"}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(a["mode"], "extractive", "{a}");
        assert!(
            a["answer"]
                .as_str()
                .unwrap()
                .contains("exclusive lock while it runs. [1]"),
            "{a}"
        );
        let first = &a["sources"][0];
        assert_eq!(first["document_id"], "docs/vacuum.md");
        assert_eq!(first["title"], "Routine Vacuuming");
        assert_eq!(first["path_or_url"], "docs/vacuum.md");
        assert!(
            first["snippet"].as_str().unwrap().contains("VACUUM FULL"),
            "{a}"
        );
        assert!(first["score"].as_f64().unwrap() > 0.0);
        assert!(a["latency_ms"].is_u64());
        assert!(a.get("model").is_none() && a.get("usage").is_none(), "{a}");

        // Anyone may ask an index without a rule; bad questions are 400s naming the field.
        let anon = crate::helpers::send(
            app.client
                .post(app.url("/api/rag/docs"))
                .json(&json!({"question": "pg_dump"})),
        )
        .await;
        assert_eq!(anon.status(), 200);
        for (body, field) in [
            (json!({"question": ""}), "question"),
            (json!({"question": "   "}), "question"),
            (json!({}), "question"),
            (json!({"question": 42}), "question"),
            (json!({"question": "x".repeat(2001)}), "question"),
            (json!({"question": "x", "k": 0}), "k"),
            (json!({"question": "x", "k": -1}), "k"),
            (json!({"question": "x", "k": 500}), "k"),
            (json!({"question": "x", "top": 3}), "top"),
        ] {
            expect_problem(ask(&app, body).await, 400, Some(field)).await;
        }
        expect_problem(
            app.post("/api/rag/nope", json!({"question": "x"})).await,
            404,
            None,
        )
        .await;
        // The longest accepted question (2,000 characters) is answered.
        let question = "vacuum lock ".repeat(166) + "full ...";
        let long = expect_json(ask(&app, json!({ "question": question })).await, 200).await;
        assert_eq!(long["mode"], "extractive");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_answers_from_the_retrieved_passages_and_is_cached() {
    for backend in [
        crate::helpers::Backend::Sqlite,
        crate::helpers::Backend::Postgres,
    ] {
        let llm = FakeOpenAi::start(Behaviour::Answer).await;
        let files = files(Some((&llm.base_url, 10)));
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            continue;
        };
        wait_ingested(&app, "docs").await;
        let question = "How do I restore an archive made by pg_dump? Mail me at ann@example.com";
        let a = expect_json(ask(&app, json!({"question": question, "k": 3})).await, 200).await;
        assert_eq!(a["mode"], "generative", "{a}");
        assert_eq!(a["model"], "fake-model");
        assert!(a["usage"]["prompt_tokens"].as_u64().unwrap() > 10, "{a}");
        assert!(a["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{a}");
        assert!(
            a["answer"]
                .as_str()
                .unwrap()
                .starts_with("According to [1]"),
            "{a}"
        );
        assert_eq!(a["sources"][0]["document_id"], "docs/backup.md", "{a}");

        // The model was sent the question and the retrieved passages, numbered.
        let sent = llm.requests();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let body = &sent[0]["body"];
        assert_eq!(body["model"], "fake-model");
        let user = body["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(user.contains("[1] Backup and Restore"), "{user}");
        assert!(user.contains("pg_restore reads the archives"), "{user}");
        assert!(user.ends_with(question), "{user}");

        // The same question again is served from the cache, without a model call.
        let again = expect_json(ask(&app, json!({"question": question, "k": 3})).await, 200).await;
        assert_eq!(again["cached"], true);
        assert_eq!(again["answer"], a["answer"]);
        assert_eq!(llm.requests().len(), 1);

        // Questions are logged without the email address; metrics count requests and tokens.
        // (The server's stderr is read by another thread: give the line a moment to arrive.)
        let mut logs = app.logs();
        for _ in 0..40 {
            if logs.contains("How do I restore an archive") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            logs = app.logs();
        }
        assert!(
            logs.contains("How do I restore an archive"),
            "the question is logged"
        );
        assert!(!logs.contains("ann@example.com"), "the email is redacted");
        let metrics = crate::helpers::send(app.client.get(app.url("/metrics")))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(
                "rag_requests_total{index=\"docs\",mode=\"generative\",outcome=\"answered\"} 1"
            ),
            "{metrics}"
        );
        assert!(
            metrics.contains("llm_tokens_total{index=\"docs\",kind=\"prompt\"}"),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_failures_are_502_and_504_problems() {
    for backend in [
        crate::helpers::Backend::Sqlite,
        crate::helpers::Backend::Postgres,
    ] {
        let llm = FakeOpenAi::start(Behaviour::Garbage).await;
        let files = files(Some((&llm.base_url, 1)));
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
        let Some(app) = crate::helpers::spawn_app_with_files(backend, &files).await else {
            continue;
        };
        wait_ingested(&app, "docs").await;
        let p = expect_problem(ask(&app, json!({"question": "pg_dump"})).await, 502, None).await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("not a chat completion"),
            "{p}"
        );
        // ...and says what to do about it.
        assert!(
            p["detail"].as_str().unwrap().contains("[llm] base_url"),
            "{p}"
        );

        llm.set_behaviour(Behaviour::Status(500));
        expect_problem(ask(&app, json!({"question": "vacuum"})).await, 502, None).await;

        llm.set_behaviour(Behaviour::Slow(Duration::from_secs(5)));
        let started = std::time::Instant::now();
        let p = expect_problem(ask(&app, json!({"question": "indexes"})).await, 504, None).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the timeout bounds the call"
        );
        assert!(p["detail"].as_str().unwrap().contains("timeout_s"), "{p}");

        // A failed answer is not cached: once the model is back, the question is answered.
        llm.set_behaviour(Behaviour::Answer);
        let a = expect_json(ask(&app, json!({"question": "pg_dump"})).await, 200).await;
        assert_eq!(a["mode"], "generative");
        assert_eq!(a["cached"], false, "{a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_down_is_a_502_naming_the_server() {
    let url = unused_base_url();
    let files = files(Some((&url, 2)));
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
    let Some(app) =
        crate::helpers::spawn_app_with_files(crate::helpers::Backend::Sqlite, &files).await
    else {
        return;
    };
    wait_ingested(&app, "docs").await;
    let p = expect_problem(ask(&app, json!({"question": "pg_dump"})).await, 502, None).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("127.0.0.1"), "{detail}");
}
