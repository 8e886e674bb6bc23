//! A cached RAG answer outlived the caller's access: after a record left a user's list rule
//! (its text unchanged, so the index version stayed), the user kept getting the cached
//! answer quoting it. Now a cached answer's sources are checked against the caller's access
//! before it is served.

use std::time::Duration;

use serde_json::{Value, json};

use super::OPEN;
use crate::helpers::{TestApp, expect_json};
use crate::rules::user;

const SECRET: &str = "The vault combination is 4711 and it opens at dawn.";

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        "brigade.toml",
        format!(
            "{OPEN}[[search.indexes]]\nname = \"notes\"\ncollection = \"notes\"\nfields = [\"body\"]\n"
        )
        .into_bytes(),
    )]
}

async fn ask(app: &TestApp, token: &str, question: &str) -> Value {
    expect_json(
        crate::helpers::send(
            app.client
                .post(app.url("/api/rag/notes"))
                .bearer_auth(token)
                .json(&json!({ "question": question })),
        )
        .await,
        200,
    )
    .await
}

fn quotes(answer: &Value, id: &str) -> bool {
    answer["answer"]
        .as_str()
        .unwrap_or_default()
        .contains("4711")
        || answer["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["document_id"] == id))
}

files_test!(
    a_cached_answer_is_not_served_once_its_source_left_the_callers_list_rule,
    files(),
    |app| async move {
        app.must_create_collection(json!({
            "name": "notes",
            "fields": [
                {"name": "body", "type": "text"},
                {"name": "owner", "type": "text"}
            ],
            "rules": {"list": "owner = @request.auth.id", "view": "owner = @request.auth.id",
                      "create": null, "update": null, "delete": null}
        }))
        .await;
        let (alice, alice_token) = user(&app, "alice@example.com").await;
        let note = app
            .must_post_record("notes", json!({"body": SECRET, "owner": alice}))
            .await;
        let id = note["id"].as_str().unwrap().to_string();

        // Alice may see her note: once indexed, her answer quotes it, then comes from the
        // cache. (The first answer quoting it may be stored under the version read just
        // before the note's indexing committed, so ask until one comes from the cache.)
        let question = "What is the vault combination?";
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let a = ask(&app, &alice_token, question).await;
            if quotes(&a, &id) && a["cached"] == true {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never cached: {a}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A superuser gives the note to someone else; its text does not change.
        let res = app
            .patch(
                &format!("/api/collections/notes/records/{id}"),
                json!({"owner": "someone-else"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let listed = expect_json(
            crate::helpers::send(
                app.client
                    .get(app.url("/api/collections/notes/records"))
                    .bearer_auth(&alice_token),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(listed["items"], json!([]), "{listed}");

        // Alice asks again, at once and a little later: the note is quoted no more.
        for _ in 0..3 {
            let after = ask(&app, &alice_token, question).await;
            assert!(
                !quotes(&after, &id),
                "the cache still quotes the note: {after}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The superuser still gets it.
        let admin = ask(&app, &app.token, question).await;
        assert!(quotes(&admin, &id), "{admin}");
    }
);
