//! The OpenAPI document against the router itself: every route the server answers
//! ([`brigade_api::route_table`], built by the same calls as the router) is in the document
//! for a superuser, every documented operation is a route, and every operation declares its
//! security and problem+json errors. A route added without documentation fails here.

use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json};

const CONFIG: &str = "[[search.indexes]]\nname = \"kb\"\n";

/// Whether template `route` (axum: `{x}`, `{*x}`) names document path `doc`.
fn matches(route: &str, doc: &str) -> bool {
    let route: Vec<&str> = route.split('/').collect();
    let doc: Vec<&str> = doc.split('/').collect();
    if let Some(last) = route.last()
        && last.starts_with("{*")
    {
        return doc.len() >= route.len()
            && route[..route.len() - 1]
                .iter()
                .zip(&doc)
                .all(|(r, d)| segment(r, d));
    }
    route.len() == doc.len() && route.iter().zip(&doc).all(|(r, d)| segment(r, d))
}

fn segment(route: &str, doc: &str) -> bool {
    route == doc || (route.starts_with('{') && !doc.is_empty())
}

async fn superuser_document(app: &TestApp) -> Value {
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [{"name": "title", "type": "text", "required": true}, {"name": "views", "type": "integer"}]
    }))
    .await;
    expect_json(app.get("/api/openapi.json").await, 200).await
}

files_test!(
    every_route_is_documented_and_every_operation_is_a_route,
    vec![("brigade.toml", CONFIG.as_bytes().to_vec())],
    |app| async move {
        let doc = superuser_document(&app).await;
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        let table = brigade_api::route_table();
        assert!(table.len() > 40, "{} routes", table.len());
        let missing: Vec<String> = table
            .iter()
            .filter(|r| {
                let method = r.method.as_str().to_ascii_lowercase();
                !paths
                    .iter()
                    .any(|(p, item)| matches(r.path, p) && item.get(&method).is_some())
            })
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(missing.is_empty(), "undocumented routes: {missing:?}");
        for (path, item) in &paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                if !["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                    continue;
                }
                assert!(
                    table
                        .iter()
                        .any(|r| matches(r.path, path)
                            && r.method.as_str().eq_ignore_ascii_case(method)),
                    "{method} {path} is documented but not a route"
                );
                assert!(op.get("security").is_some(), "{method} {path}: no security");
                let responses = op["responses"].as_object().cloned().unwrap_or_default();
                assert!(responses.contains_key("503"), "{method} {path}: no 503");
                for (status, response) in &responses {
                    // Pages (the reset form) answer a refused form with the page itself.
                    let page = response["content"]["text/html"].is_object();
                    if (status.starts_with('4') || status.starts_with('5')) && !page {
                        assert_eq!(
                            response["content"]["application/problem+json"]["schema"]["$ref"],
                            "#/components/schemas/Problem",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        let problem = &doc["components"]["schemas"]["Problem"];
        let codes = problem["properties"]["code"]["enum"].to_string();
        for code in [
            "validation_failed",
            "unauthenticated",
            "rule_refused",
            "rate_limited",
        ] {
            assert!(codes.contains(code), "{code} missing from {codes}");
        }
    }
);

files_test!(
    optional_record_fields_are_nullable_and_records_send_null,
    vec![("brigade.toml", CONFIG.as_bytes().to_vec())],
    |app| async move {
        let doc = superuser_document(&app).await;
        let record = &doc["components"]["schemas"]["postsRecord"]["properties"];
        assert_eq!(
            record["views"]["type"],
            json!(["integer", "null"]),
            "{record}"
        );
        assert_eq!(record["title"]["type"], "string", "{record}");
        let created = expect_json(
            app.post("/api/collections/posts/records", json!({"title": "x"}))
                .await,
            201,
        )
        .await;
        assert_eq!(created["views"], Value::Null, "{created}");
    }
);

#[test]
fn templates_match_document_paths() {
    assert!(matches(
        "/api/collections/{name}/records",
        "/api/collections/posts/records"
    ));
    assert!(!matches(
        "/api/collections/{name}/records",
        "/api/collections/posts/records/{id}"
    ));
    assert!(matches(
        "/api/search/{index}/documents/{*id}",
        "/api/search/{index}/documents/{id}"
    ));
    assert!(!matches("/api/runs/{id}", "/api/runs/{id}/cancel"));
}
