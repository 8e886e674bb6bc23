//! `POST /api/batch`: several record writes in one transaction, all or nothing.

use serde_json::{Value, json};

use crate::helpers::*;

const RECORDS: &str = "/api/collections/posts/records";

async fn batch(app: &TestApp, requests: Value) -> reqwest::Response {
    app.post("/api/batch", json!({ "requests": requests }))
        .await
}

/// The titles of all posts, sorted.
async fn titles(app: &TestApp) -> Vec<String> {
    column(&app.must_list("posts", &[("sort", "title")]).await, "title")
}

both_backends!(batch_applies_every_request_in_order, |app| async move {
    create_posts(&app).await;
    let x = app
        .must_post_record("posts", json!({ "title": "x", "slug": "x" }))
        .await;
    let y = app
        .must_post_record("posts", json!({ "title": "y", "slug": "y" }))
        .await;

    let res = batch(
        &app,
        json!([
            { "method": "POST", "url": RECORDS, "body": { "title": "a", "slug": "a" } },
            { "method": "POST", "url": RECORDS, "body": { "title": "b", "slug": "b", "views": 2 } },
            { "method": "PATCH", "url": posts_record_path(&x), "body": { "title": "x2" } },
            { "method": "DELETE", "url": posts_record_path(&y) },
        ]),
    )
    .await;
    let results = expect_json(res, 200).await;
    let results = results
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {results}"));
    let statuses: Vec<&Value> = results.iter().map(|r| &r["status"]).collect();
    assert_eq!(
        statuses,
        [&json!(201), &json!(201), &json!(200), &json!(204)],
        "{results:?}"
    );
    assert_eq!(results[0]["body"]["title"], "a");
    assert!(results[0]["body"]["id"].is_string(), "{results:?}");
    assert_eq!(results[1]["body"]["views"], 2);
    assert_eq!(results[2]["body"]["title"], "x2");
    assert_eq!(results[2]["body"]["id"], x["id"]);

    assert_eq!(titles(&app).await, ["a", "b", "x2"]);
    expect_problem(app.get(&posts_record_path(&y)).await, 404, None).await;
    let created = &results[0]["body"];
    assert_eq!(
        &expect_json(app.get(&posts_record_path(created)).await, 200).await,
        created
    );
});

both_backends!(batch_rolls_back_on_an_invalid_record, |app| async move {
    create_posts(&app).await;
    let x = app
        .must_post_record("posts", json!({ "title": "x", "slug": "x" }))
        .await;
    let res = batch(
        &app,
        json!([
            { "method": "PATCH", "url": posts_record_path(&x), "body": { "title": "changed" } },
            { "method": "POST", "url": RECORDS, "body": { "title": "new", "slug": "new" } },
            { "method": "POST", "url": RECORDS, "body": { "slug": "no-title" } },
        ]),
    )
    .await;
    expect_problem(res, 400, Some("requests.2.title")).await;

    let res = batch(
        &app,
        json!([
            { "method": "POST", "url": RECORDS, "body": { "title": "new" } },
            { "method": "POST", "url": RECORDS, "body": { "title": "n", "views": "many" } },
        ]),
    )
    .await;
    expect_problem(res, 400, Some("requests.1.views")).await;

    assert_eq!(
        titles(&app).await,
        ["x"],
        "nothing from the failed batches was written"
    );
});

both_backends!(batch_rolls_back_on_a_missing_record, |app| async move {
    create_posts(&app).await;
    let x = app
        .must_post_record("posts", json!({ "title": "x", "slug": "x" }))
        .await;
    let missing = format!("{RECORDS}/0190f0c4-0000-7000-8000-000000000000");
    let res = batch(
        &app,
        json!([
            { "method": "POST", "url": RECORDS, "body": { "title": "new" } },
            { "method": "DELETE", "url": posts_record_path(&x) },
            { "method": "PATCH", "url": missing, "body": { "title": "q" } },
        ]),
    )
    .await;
    expect_problem(res, 404, None).await;

    let res = batch(
        &app,
        json!([
            { "method": "POST", "url": RECORDS, "body": { "title": "new" } },
            { "method": "POST", "url": "/api/collections/nope/records", "body": { "title": "q" } },
        ]),
    )
    .await;
    expect_problem(res, 404, None).await;

    assert_eq!(titles(&app).await, ["x"]);
    expect_json(app.get(&posts_record_path(&x)).await, 200).await;
});

both_backends!(batch_rolls_back_on_a_unique_conflict, |app| async move {
    create_posts(&app).await;
    let x = app
        .must_post_record("posts", json!({ "title": "x", "slug": "x" }))
        .await;
    let res = batch(
        &app,
        json!([
            { "method": "PATCH", "url": posts_record_path(&x), "body": { "title": "changed" } },
            { "method": "POST", "url": RECORDS, "body": { "title": "d1", "slug": "dup" } },
            { "method": "POST", "url": RECORDS, "body": { "title": "d2", "slug": "dup" } },
        ]),
    )
    .await;
    expect_problem(res, 409, Some("requests.2.slug")).await;

    let res = batch(
        &app,
        json!([{ "method": "POST", "url": RECORDS, "body": { "title": "x again", "slug": "x" } }]),
    )
    .await;
    expect_problem(res, 409, Some("requests.0.slug")).await;

    assert_eq!(titles(&app).await, ["x"]);
    let fetched = expect_json(app.get(&posts_record_path(&x)).await, 200).await;
    assert_eq!(
        fetched["title"], "x",
        "the PATCH inside the failed batch was rolled back"
    );
});

both_backends!(batch_needs_admin_and_record_requests, |app| async move {
    create_posts(&app).await;
    let body =
        json!({ "requests": [{ "method": "POST", "url": RECORDS, "body": { "title": "a" } }] });
    let res = app
        .client
        .post(app.url("/api/batch"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, None).await;

    for request in [
        json!({ "method": "GET", "url": RECORDS }),
        json!({
            "method": "POST",
            "url": "/api/collections",
            "body": { "name": "evil", "fields": [] },
        }),
        json!({ "method": "POST", "url": "/api/auth/login", "body": {} }),
        json!({ "method": "POST" }),
    ] {
        let res = batch(
            &app,
            json!([{ "method": "POST", "url": RECORDS, "body": { "title": "b" } }, request]),
        )
        .await;
        expect_client_error(res, &format!("batch with {request}")).await;
    }
    for body in [json!({}), json!({ "requests": "nope" }), json!([])] {
        expect_problem(app.post("/api/batch", body).await, 400, None).await;
    }
    assert_eq!(app.count("posts").await, 0);
    expect_problem(app.get("/api/collections/evil").await, 404, None).await;
});
