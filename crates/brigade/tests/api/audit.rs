//! The audit log: logins (ok and failed), schema changes, record writes and key changes, with
//! actor, IP, request id and time, queryable by superusers only.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, TestApp, expect_json, expect_problem};

/// Polls `/api/audit` until `filter` matches at least `n` entries (writes are batched).
async fn wait_for(app: &TestApp, filter: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let url = app.url_with("/api/audit", &[("filter", filter)]);
        let page = expect_json(
            app.client
                .get(url)
                .bearer_auth(&app.token)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("audit entries for `{filter}` did not appear");
}

both_backends!(audit_records_who_did_what, |app| async move {
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, None).await;
    app.must_create_collection(
        json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;
    let res = app
        .request(reqwest::Method::POST, "/api/collections/posts/records")
        .header("x-request-id", "trace-me-123")
        .json(&json!({"title": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
    let record = expect_json(res, 201).await;
    expect_json(app.post("/api/auth/keys", json!({"name": "ci"})).await, 201).await;

    let failed = wait_for(&app, "action = 'auth.login_failed'", 1).await;
    assert_eq!(failed[0]["detail"]["email"], ADMIN_EMAIL);
    assert!(failed[0]["actor"].is_null());
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    assert!(
        failed[0]["created"]
            .as_str()
            .is_some_and(crate::helpers::is_utc_millis)
    );

    let writes = wait_for(&app, "action = 'record.create'", 1).await;
    assert_eq!(writes[0]["actor"], ADMIN_EMAIL);
    assert_eq!(writes[0]["request_id"], "trace-me-123");
    assert_eq!(
        writes[0]["target"],
        format!("posts/{}", record["id"].as_str().unwrap())
    );

    wait_for(&app, "action = 'collection.create' && target = 'posts'", 1).await;
    wait_for(&app, "action = 'key.create'", 1).await;
    wait_for(&app, "action = 'auth.login'", 1).await;

    // Newest first by default; the filter language applies; superusers only.
    let all = wait_for(&app, "action ~ 'auth.'", 2).await;
    assert!(all[0]["created"].as_str() >= all[1]["created"].as_str());
    expect_problem(app.anon_get("/api/audit").await, 401, None).await;
    let bad = app.url_with("/api/audit", &[("filter", "nope = 1")]);
    expect_problem(
        app.client
            .get(bad)
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap(),
        400,
        Some("filter"),
    )
    .await;
});
