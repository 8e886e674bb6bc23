//! Record CRUD: create, read, update, delete, type checks and body handling.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn create_posts(app: &TestApp) {
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [
            { "name": "title", "type": "text", "required": true },
            { "name": "views", "type": "integer" },
            { "name": "status", "type": "select", "default": "draft",
              "options": { "values": ["draft", "published"] } },
            { "name": "note", "type": "text" },
            { "name": "slug", "type": "text", "unique": true },
        ],
    }))
    .await;
}

fn record_path(record: &Value) -> String {
    let id = record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {record}"));
    format!("/api/collections/posts/records/{id}")
}

both_backends!(create_and_read_a_record, |app| async move {
    create_posts(&app).await;
    let record = app
        .must_post_record("posts", json!({ "title": "Hello", "views": 3 }))
        .await;
    assert!(
        record["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{record}"
    );
    for key in ["created", "updated"] {
        let at = record[key].as_str().unwrap_or_default();
        assert!(
            is_utc_millis(at),
            "{key} is not like 2026-11-22T20:49:26.123Z: {record}"
        );
    }
    assert_eq!(record["title"], "Hello");
    assert_eq!(record["views"], 3);
    assert_eq!(record["status"], "draft", "the default applies: {record}");
    assert!(
        record.get("note").is_some_and(Value::is_null),
        "missing optional is null: {record}"
    );

    let fetched = expect_json(app.get(&record_path(&record)).await, 200).await;
    assert_eq!(fetched, record);
});

both_backends!(record_ids_follow_creation_order, |app| async move {
    create_posts(&app).await;
    let mut ids = Vec::new();
    let mut created = Vec::new();
    for i in 0..6 {
        let record = app
            .must_post_record("posts", json!({ "title": format!("p{i}") }))
            .await;
        ids.push(record["id"].as_str().unwrap().to_owned());
        created.push(record["created"].as_str().unwrap().to_owned());
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids sort in creation order");
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");

    let page = app.must_list("posts", &[("sort", "id")]).await;
    assert_eq!(column(&page, "title"), ["p0", "p1", "p2", "p3", "p4", "p5"]);
    let page = app.must_list("posts", &[("sort", "-id")]).await;
    assert_eq!(column(&page, "title"), ["p5", "p4", "p3", "p2", "p1", "p0"]);
});

both_backends!(field_values_are_type_checked, |app| async move {
    app.must_create_collection(json!({
        "name": "things",
        "fields": [
            { "name": "i", "type": "integer" },
            { "name": "n", "type": "number" },
            { "name": "b", "type": "bool" },
            { "name": "e", "type": "email" },
            { "name": "u", "type": "url" },
            { "name": "s", "type": "select", "options": { "values": ["a", "b"] } },
            { "name": "d", "type": "datetime" },
            { "name": "j", "type": "json" },
        ],
    }))
    .await;

    // (field, value sent, value expected back)
    let accepted = [
        ("i", json!(1), json!(1)),
        ("i", json!(-42), json!(-42)),
        ("b", json!(true), json!(true)),
        ("b", json!(false), json!(false)),
        ("e", json!("user@example.com"), json!("user@example.com")),
        (
            "u",
            json!("https://example.com/a?b=c"),
            json!("https://example.com/a?b=c"),
        ),
        ("s", json!("b"), json!("b")),
        (
            "d",
            json!("2026-01-02T03:04:05+02:00"),
            json!("2026-01-02T01:04:05.000Z"),
        ),
        (
            "d",
            json!("2026-01-02T03:04:05.5Z"),
            json!("2026-01-02T03:04:05.500Z"),
        ),
        (
            "j",
            json!({ "a": [1, "x", null], "b": { "c": true } }),
            json!({ "a": [1, "x", null], "b": { "c": true } }),
        ),
        ("j", json!([1, 2, 3]), json!([1, 2, 3])),
        ("j", json!("just a string"), json!("just a string")),
    ];
    for (field, sent, expected) in &accepted {
        let record = app
            .must_post_record("things", json!({ *field: sent }))
            .await;
        assert_eq!(
            &record[*field], expected,
            "{field} = {sent} came back as {record}"
        );
        let fetched = expect_json(
            app.get(&format!(
                "/api/collections/things/records/{}",
                record["id"].as_str().unwrap()
            ))
            .await,
            200,
        )
        .await;
        assert_eq!(
            &fetched[*field], expected,
            "{field} = {sent} read back as {fetched}"
        );
    }
    for sent in [1.0, 1.5, -0.25] {
        let record = app.must_post_record("things", json!({ "n": sent })).await;
        assert_eq!(record["n"].as_f64(), Some(sent), "{record}");
    }
    let integral = app.must_post_record("things", json!({ "n": 1 })).await;
    assert_eq!(integral["n"].as_f64(), Some(1.0), "{integral}");

    let rejected = [
        ("i", json!(1.5)),
        ("i", json!("1")),
        ("i", json!(true)),
        ("n", json!("1.5")),
        ("n", json!(false)),
        ("b", json!(1)),
        ("b", json!("true")),
        ("e", json!("not-an-email")),
        ("e", json!("a@")),
        ("e", json!(5)),
        ("u", json!("not a url")),
        ("u", json!(42)),
        ("s", json!("c")),
        ("s", json!("A")),
        ("s", json!(1)),
        ("d", json!("yesterday")),
        ("d", json!("2026-13-40T00:00:00Z")),
        ("d", json!(1_700_000_000)),
    ];
    for (field, sent) in &rejected {
        let res = app.post_record("things", json!({ *field: sent })).await;
        expect_problem(res, 400, Some(*field)).await;
    }
    let written = accepted.len() as u64 + 4;
    assert_eq!(
        app.count("things").await,
        written,
        "rejected records were not written"
    );
});

both_backends!(
    unknown_and_missing_required_fields_are_rejected,
    |app| async move {
        create_posts(&app).await;
        expect_problem(
            app.post_record("posts", json!({ "views": 1 })).await,
            400,
            Some("title"),
        )
        .await;
        expect_problem(
            app.post_record("posts", json!({ "title": null })).await,
            400,
            Some("title"),
        )
        .await;
        let res = app
            .post_record("posts", json!({ "title": "x", "bogus": 1 }))
            .await;
        expect_problem(res, 400, Some("bogus")).await;
        assert_eq!(app.count("posts").await, 0);
    }
);

both_backends!(unique_values_conflict, |app| async move {
    create_posts(&app).await;
    app.must_post_record("posts", json!({ "title": "a", "slug": "same" }))
        .await;
    let res = app
        .post_record("posts", json!({ "title": "b", "slug": "same" }))
        .await;
    expect_problem(res, 409, Some("slug")).await;

    let other = app
        .must_post_record("posts", json!({ "title": "c", "slug": "other" }))
        .await;
    let res = app
        .patch(&record_path(&other), json!({ "slug": "same" }))
        .await;
    expect_problem(res, 409, Some("slug")).await;
    let fetched = expect_json(app.get(&record_path(&other)).await, 200).await;
    assert_eq!(fetched["slug"], "other");
    assert_eq!(app.count("posts").await, 2);
});

both_backends!(malformed_bodies_are_rejected, |app| async move {
    create_posts(&app).await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.request(reqwest::Method::POST, "/api/collections/posts/records")
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    for body in [
        "{\"title\": ",
        "{not json}",
        "[{\"title\": \"x\"}]",
        "\"title\"",
        "42",
        "null",
        "",
    ] {
        let res = raw(body, "application/json").await.unwrap();
        expect_problem(res, 400, None).await;
    }
    let res = raw("{\"title\": \"x\"}", "text/plain").await.unwrap();
    expect_problem(res, 415, None).await;

    let huge = json!({ "title": "x".repeat(1024 * 1024 + 100_000) });
    let res = app.post_record("posts", huge).await;
    expect_problem(res, 413, None).await;

    let record = app
        .must_post_record("posts", json!({ "title": "ok" }))
        .await;
    let res = app
        .request(reqwest::Method::PATCH, &record_path(&record))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{\"title\"")
        .send()
        .await
        .unwrap();
    expect_problem(res, 400, None).await;
    assert_eq!(app.count("posts").await, 1);
});

both_backends!(unknown_records_and_collections_are_404, |app| async move {
    create_posts(&app).await;
    let missing = "/api/collections/posts/records/0190f0c4-0000-7000-8000-000000000000";
    expect_problem(app.get(missing).await, 404, None).await;
    expect_problem(app.patch(missing, json!({ "title": "x" })).await, 404, None).await;
    expect_problem(app.delete(missing).await, 404, None).await;
    expect_problem(app.get("/api/collections/nope/records").await, 404, None).await;
    expect_problem(
        app.get("/api/collections/nope/records/abc").await,
        404,
        None,
    )
    .await;
    expect_problem(
        app.post_record("nope", json!({ "title": "x" })).await,
        404,
        None,
    )
    .await;
});

both_backends!(patch_updates_only_the_given_fields, |app| async move {
    create_posts(&app).await;
    let record = app
        .must_post_record(
            "posts",
            json!({ "title": "a", "views": 1, "note": "keep", "slug": "s" }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let patched = expect_json(
        app.patch(&record_path(&record), json!({ "views": 2 }))
            .await,
        200,
    )
    .await;
    assert_eq!(patched["views"], 2);
    for key in ["id", "created", "title", "note", "slug", "status"] {
        assert_eq!(patched[key], record[key], "PATCH changed {key}: {patched}");
    }
    let updated = patched["updated"].as_str().unwrap();
    assert!(
        is_utc_millis(updated) && updated > record["updated"].as_str().unwrap(),
        "{patched}"
    );
    assert_eq!(
        expect_json(app.get(&record_path(&record)).await, 200).await,
        patched
    );

    let cleared = expect_json(
        app.patch(&record_path(&record), json!({ "note": null }))
            .await,
        200,
    )
    .await;
    assert_eq!(cleared["note"], Value::Null);
    assert_eq!(cleared["views"], 2);

    expect_problem(
        app.patch(&record_path(&record), json!({ "views": "x" }))
            .await,
        400,
        Some("views"),
    )
    .await;
    expect_problem(
        app.patch(&record_path(&record), json!({ "bogus": 1 }))
            .await,
        400,
        Some("bogus"),
    )
    .await;
    expect_problem(
        app.patch(&record_path(&record), json!({ "title": null }))
            .await,
        400,
        Some("title"),
    )
    .await;
    let fetched = expect_json(app.get(&record_path(&record)).await, 200).await;
    assert_eq!(fetched, cleared, "rejected PATCHes change nothing");
});

both_backends!(delete_removes_only_that_record, |app| async move {
    create_posts(&app).await;
    let doomed = app
        .must_post_record("posts", json!({ "title": "doomed" }))
        .await;
    let kept = app
        .must_post_record("posts", json!({ "title": "kept" }))
        .await;
    let res = app.delete(&record_path(&doomed)).await;
    assert_eq!(res.status(), 204);
    expect_problem(app.get(&record_path(&doomed)).await, 404, None).await;
    expect_problem(app.delete(&record_path(&doomed)).await, 404, None).await;
    expect_json(app.get(&record_path(&kept)).await, 200).await;
    assert_eq!(app.count("posts").await, 1);
});
