//! A collection-backed index follows record writes by itself, and searches obey the
//! collection's list rule and filter on its fields.

use std::time::Duration;

use serde_json::{Value, json};

use super::{docs_of, hits};
use crate::helpers::{TestApp, expect_json};

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        "brigade.toml",
        b"[[search.indexes]]\nname = \"articles\"\ncollection = \"articles\"\nfields = [\"title\", \"body\"]\n"
            .to_vec(),
    )]
}

/// Waits until searching `q` as the admin satisfies `done`; returns the hits.
async fn until(app: &TestApp, q: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = hits(app, "articles", &[("q", q), ("mode", "keyword")]).await;
        if done(&found) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "search for {q:?} never matched: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

files_test!(
    record_writes_are_indexed_and_rules_apply,
    files(),
    |app| async move {
        app.must_create_collection(json!({
            "name": "articles",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "body", "type": "text"},
                {"name": "status", "type": "text"}
            ],
            "rules": {"list": "status = 'published'", "view": "status = 'published'",
                      "create": null, "update": null, "delete": null}
        }))
        .await;
        let published = app
        .must_post_record("articles", json!({"title": "Tuning autovacuum", "body": "Lower autovacuum_vacuum_scale_factor on big tables.", "status": "published"}))
        .await;
        let draft = app
        .must_post_record("articles", json!({"title": "Draft on checkpoints", "body": "Spread checkpoints with checkpoint_completion_target.", "status": "draft"}))
        .await;
        let id = published["id"].as_str().unwrap().to_string();
        let draft_id = draft["id"].as_str().unwrap().to_string();

        let found = until(&app, "autovacuum scale factor", |h| !h.is_empty()).await;
        assert_eq!(docs_of(&found)[0], id);
        assert_eq!(found[0]["source"]["title"], "Tuning autovacuum");
        assert_eq!(
            found[0]["source"]["path_or_url"],
            format!("/api/collections/articles/records/{id}")
        );
        until(&app, "checkpoint_completion_target", |h| {
            docs_of(h) == [draft_id.clone()]
        })
        .await;

        // Anonymous callers see what the list rule lets them list; filters use the fields.
        let anon = |q: &str| {
            let url = app.url_with("/api/search/articles", &[("q", q)]);
            crate::helpers::send(app.client.get(url))
        };
        let body = expect_json(anon("checkpoints autovacuum").await, 200).await;
        assert_eq!(
            docs_of(body["hits"].as_array().unwrap()),
            [id.as_str()],
            "{body}"
        );
        let drafts = hits(
            &app,
            "articles",
            &[
                ("q", "checkpoints autovacuum"),
                ("filter", "status = 'draft'"),
            ],
        )
        .await;
        assert_eq!(docs_of(&drafts), [draft_id.as_str()]);
        let rag = expect_json(
            crate::helpers::send(
                app.client
                    .post(app.url("/api/rag/articles"))
                    .json(&json!({"question": "checkpoint_completion_target"})),
            )
            .await,
            200,
        )
        .await;
        let sources = rag["sources"].as_array().unwrap();
        assert!(
            !sources.is_empty() && sources.iter().all(|s| s["document_id"] == id),
            "{rag}"
        );

        // Updates replace the document; deletes remove it.
        let res = app
            .patch(
                &format!("/api/collections/articles/records/{id}"),
                json!({"body": "Use per-table storage parameters instead."}),
            )
            .await;
        assert_eq!(res.status(), 200);
        until(&app, "storage parameters", |h| docs_of(h) == [id.clone()]).await;
        until(&app, "lower scale factor", |h| h.is_empty()).await;
        assert_eq!(
            app.delete(&format!("/api/collections/articles/records/{draft_id}"))
                .await
                .status(),
            204
        );
        until(&app, "checkpoint_completion_target", |h| h.is_empty()).await;

        // Documents of a collection index come from the collection only.
        let res = app
            .post("/api/search/articles/documents", json!({"text": "x"}))
            .await;
        crate::helpers::expect_problem(res, 400, Some("index")).await;
    }
);
