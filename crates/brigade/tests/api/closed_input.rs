//! Input the OpenAPI document refuses is refused by the server too, as schemathesis checks
//! (`scripts/openapi-fuzz.sh`): closed bodies name an unknown key, arrays are not read as
//! objects, and a query parameter that is sent is what the document says it is. SQLite only:
//! none of this reaches the database.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, expect_problem, spawn_app};

async fn app() -> TestApp {
    spawn_app(Backend::Sqlite).await.expect("SQLite app")
}

async fn post_anon(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_bodies_name_an_unknown_key() {
    let app = app().await;
    for (path, body) in [
        (
            "/api/auth/password-reset",
            json!({"email": "a@example.com", "extra": 1}),
        ),
        (
            "/api/auth/password-reset/confirm",
            json!({"token": "t", "password": "a long new password", "extra": 1}),
        ),
        (
            "/api/auth/login",
            json!({"email": "a@example.com", "password": "x", "extra": 1}),
        ),
        (
            "/api/auth/refresh",
            json!({"refresh_token": "r", "extra": 1}),
        ),
        (
            "/api/auth/logout",
            json!({"refresh_token": "r", "extra": 1}),
        ),
    ] {
        let problem = expect_problem(post_anon(&app, path, body).await, 400, Some("extra")).await;
        assert_eq!(problem["code"], "validation_failed", "{path}: {problem}");
    }
    let res = app
        .post(
            "/api/auth/password",
            json!({"current_password": "x", "new_password": "y", "extra": 1}),
        )
        .await;
    expect_problem(res, 400, Some("extra")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_are_not_objects() {
    let app = app().await;
    for path in ["/api/auth/login", "/api/auth/refresh", "/api/auth/logout"] {
        expect_problem(
            post_anon(&app, path, json!(["a", "b"])).await,
            400,
            Some("body"),
        )
        .await;
    }
    expect_problem(
        app.post("/api/pipelines/nope/runs", json!([true])).await,
        400,
        Some("body"),
    )
    .await;
    expect_problem(
        app.post("/api/pipelines/nope/runs", json!({"backfill": [1, 2]}))
            .await,
        400,
        Some("backfill"),
    )
    .await;
    expect_problem(
        app.post("/api/pipelines/nope/test", json!([["a"], []]))
            .await,
        400,
        Some("body"),
    )
    .await;
    let res = app
        .create_collection(json!({"name": "notes", "rules": [null, ""]}))
        .await;
    expect_problem(res, 400, Some("rules")).await;
    let res = app
        .create_collection(json!({"name": "notes", "fields": [
            {"name": "s", "type": "select", "options": [["a"]]}]}))
        .await;
    expect_problem(res, 400, Some("fields.0.options")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_parameters_are_numbers_and_booleans_when_sent() {
    let app = app().await;
    app.must_create_collection(
        json!({"name": "notes", "fields": [{"name": "t", "type": "text"}],
        "rules": {"list": ""}}),
    )
    .await;
    for (key, value) in [
        ("page", ""),
        ("per_page", ""),
        ("page", "+1"),
        ("skip_total", "1"),
        ("skip_total", ""),
    ] {
        let res = app.list_records("notes", &[(key, value)]).await;
        expect_problem(res, 400, Some(key)).await;
    }
    app.must_list("notes", &[("page", "1"), ("skip_total", "true")])
        .await;
    let url = app.url_with("/api/audit", &[("page", "")]);
    let res = app
        .client
        .get(url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    expect_problem(res, 400, Some("page")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_page_answers_a_body_that_is_not_a_form_with_a_page() {
    let app = app().await;
    let res = app
        .client
        .request(Method::POST, app.url("/reset-password"))
        .body("token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(res.text().await.unwrap().contains("x-www-form-urlencoded"));
}
