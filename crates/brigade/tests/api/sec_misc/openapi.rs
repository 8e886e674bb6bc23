//! The anonymous OpenAPI document listed superuser-only collections and their fields. Now it
//! is built for the caller: anonymous callers and ordinary users learn of the collections
//! and operations their rules may allow, superusers of everything.

use serde_json::{Value, json};

use super::OPEN;
use crate::helpers::{TestApp, expect_json};
use crate::rules::user;

async fn document(app: &TestApp, token: Option<&str>) -> Value {
    let mut req = app.client.get(app.url("/api/openapi.json"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    expect_json(crate::helpers::send(req).await, 200).await
}

fn paths(doc: &Value) -> Vec<String> {
    doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

files_test!(
    the_openapi_document_shows_each_caller_only_what_it_may_use,
    vec![("brigade.toml", OPEN.as_bytes().to_vec())],
    |app| async move {
        // Superuser-only in every way, with a telling field.
        app.must_create_collection(json!({
            "name": "payroll",
            "fields": [{"name": "salary_cents", "type": "integer"}]
        }))
        .await;
        // Readable by anyone, written by superusers only.
        app.must_create_collection(json!({
            "name": "posts",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "ledger", "type": "relation", "options": {"collection": "payroll"}}
            ],
            "rules": {"list": "", "view": "", "create": null, "update": null, "delete": null}
        }))
        .await;
        let (_, user_token) = user(&app, "reader@example.com").await;

        for token in [None, Some(user_token.as_str())] {
            let doc = document(&app, token).await;
            let text = doc.to_string();
            assert!(!text.contains("payroll"), "{token:?}: {text}");
            assert!(!text.contains("salary_cents"), "{token:?}: {text}");
            let paths = paths(&doc);
            assert!(
                paths.contains(&"/api/collections/posts/records".to_string()),
                "{paths:?}"
            );
            // Only the reads of posts: its writes are superuser-only.
            let list = &doc["paths"]["/api/collections/posts/records"];
            assert!(
                list.get("get").is_some() && list.get("post").is_none(),
                "{list}"
            );
            let one = &doc["paths"]["/api/collections/posts/records/{id}"];
            assert!(one.get("get").is_some(), "{one}");
            assert!(
                one.get("patch").is_none() && one.get("delete").is_none(),
                "{one}"
            );
            // Nor the schema routes.
            assert!(
                !paths.contains(&"/api/collections".to_string()),
                "{paths:?}"
            );
            assert!(doc["components"]["schemas"].get("postsRecord").is_some());
            assert!(doc["components"]["schemas"].get("payrollRecord").is_none());
        }

        let doc = document(&app, Some(&app.token)).await;
        let paths = paths(&doc);
        for p in [
            "/api/collections/payroll/records",
            "/api/collections/payroll/records/{id}",
            "/api/collections",
            "/api/collections/{name}",
        ] {
            assert!(paths.contains(&p.to_string()), "{p} missing: {paths:?}");
        }
        assert!(
            doc["components"]["schemas"]["payrollRecord"]["properties"]
                .get("salary_cents")
                .is_some()
        );
        let posts = &doc["paths"]["/api/collections/posts/records"];
        assert!(posts.get("post").is_some(), "{posts}");
    }
);
