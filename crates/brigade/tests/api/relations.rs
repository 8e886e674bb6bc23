//! Relation fields: referential checks, `expand`, restrict and cascade on delete.

use serde_json::{Value, json};

use crate::helpers::*;

/// teams ← authors.team ← posts.author (restrict) and posts ← comments.post (cascade).
async fn create_schema(app: &TestApp) {
    app.must_create_collection(
        json!({ "name": "teams", "fields": [{ "name": "name", "type": "text" }] }),
    )
    .await;
    app.must_create_collection(json!({
        "name": "authors",
        "fields": [
            { "name": "name", "type": "text" },
            { "name": "team", "type": "relation", "options": { "collection": "teams" } },
        ],
    }))
    .await;
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [
            { "name": "title", "type": "text" },
            { "name": "author", "type": "relation", "options": { "collection": "authors" } },
        ],
    }))
    .await;
    app.must_create_collection(json!({
        "name": "comments",
        "fields": [
            { "name": "body", "type": "text" },
            { "name": "post", "type": "relation",
              "options": { "collection": "posts", "cascade_delete": true } },
        ],
    }))
    .await;
}

fn id(record: &Value) -> &str {
    record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {record}"))
}

fn path(collection: &str, record: &Value) -> String {
    format!("/api/collections/{collection}/records/{}", id(record))
}

both_backends!(expand_follows_relations, |app| async move {
    create_schema(&app).await;
    let team = app
        .must_post_record("teams", json!({ "name": "core" }))
        .await;
    let ann = app
        .must_post_record("authors", json!({ "name": "ann", "team": id(&team) }))
        .await;
    let bob = app
        .must_post_record("authors", json!({ "name": "bob", "team": id(&team) }))
        .await;
    let post = app
        .must_post_record("posts", json!({ "title": "p1", "author": id(&ann) }))
        .await;
    assert_eq!(
        post["author"],
        id(&ann),
        "a relation is stored as the target's id"
    );
    app.must_post_record("posts", json!({ "title": "p2", "author": id(&bob) }))
        .await;

    let page = app.must_list("posts", &[("sort", "title")]).await;
    for item in page["items"].as_array().unwrap() {
        assert!(
            item.get("expand").is_none_or(Value::is_null),
            "expand without asking: {item}"
        );
    }

    let page = app
        .must_list("posts", &[("sort", "title"), ("expand", "author")])
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items[0]["author"], id(&ann));
    assert_eq!(items[0]["expand"]["author"]["id"], id(&ann), "{page}");
    assert_eq!(items[0]["expand"]["author"]["name"], "ann");
    assert_eq!(items[1]["expand"]["author"]["name"], "bob");

    let page = app
        .must_list("posts", &[("sort", "title"), ("expand", "author.team")])
        .await;
    let author = &page["items"][0]["expand"]["author"];
    assert_eq!(author["name"], "ann", "{page}");
    assert_eq!(author["expand"]["team"]["name"], "core", "{page}");
    assert_eq!(author["expand"]["team"]["id"], id(&team));

    for expand in ["nosuch", "title", "author.nosuch"] {
        let res = app.list_records("posts", &[("expand", expand)]).await;
        expect_client_error(res, &format!("expand={expand}")).await;
    }
});

both_backends!(relations_must_point_to_existing_records, |app| async move {
    create_schema(&app).await;
    let team = app
        .must_post_record("teams", json!({ "name": "core" }))
        .await;
    let ann = app
        .must_post_record("authors", json!({ "name": "ann" }))
        .await;

    for author in [
        json!("0190f0c4-0000-7000-8000-000000000000"),
        json!(id(&team)),
        json!("' OR 1=1 --"),
        json!(5),
    ] {
        let res = app
            .post_record("posts", json!({ "title": "x", "author": author }))
            .await;
        expect_problem(res, 400, Some("author")).await;
    }
    assert_eq!(app.count("posts").await, 0);

    let post = app
        .must_post_record("posts", json!({ "title": "x", "author": id(&ann) }))
        .await;
    let res = app
        .patch(&path("posts", &post), json!({ "author": "missing" }))
        .await;
    expect_problem(res, 400, Some("author")).await;
    let fetched = expect_json(app.get(&path("posts", &post)).await, 200).await;
    assert_eq!(fetched["author"], id(&ann));
});

both_backends!(deleting_a_referenced_record_conflicts, |app| async move {
    create_schema(&app).await;
    let ann = app
        .must_post_record("authors", json!({ "name": "ann" }))
        .await;
    let post = app
        .must_post_record("posts", json!({ "title": "x", "author": id(&ann) }))
        .await;

    expect_problem(app.delete(&path("authors", &ann)).await, 409, None).await;
    expect_json(app.get(&path("authors", &ann)).await, 200).await;
    let fetched = expect_json(app.get(&path("posts", &post)).await, 200).await;
    assert_eq!(fetched["author"], id(&ann));

    assert_eq!(app.delete(&path("posts", &post)).await.status(), 204);
    assert_eq!(app.delete(&path("authors", &ann)).await.status(), 204);
});

both_backends!(
    cascade_delete_removes_referencing_records,
    |app| async move {
        create_schema(&app).await;
        let first = app
            .must_post_record("posts", json!({ "title": "first" }))
            .await;
        let second = app
            .must_post_record("posts", json!({ "title": "second" }))
            .await;
        let mut doomed = Vec::new();
        for body in ["a", "b"] {
            doomed.push(
                app.must_post_record("comments", json!({ "body": body, "post": id(&first) }))
                    .await,
            );
        }
        let kept = app
            .must_post_record("comments", json!({ "body": "c", "post": id(&second) }))
            .await;

        assert_eq!(app.delete(&path("posts", &first)).await.status(), 204);
        for comment in &doomed {
            expect_problem(app.get(&path("comments", comment)).await, 404, None).await;
        }
        let fetched = expect_json(app.get(&path("comments", &kept)).await, 200).await;
        assert_eq!(fetched["post"], id(&second));
        assert_eq!(app.count("comments").await, 1);
        assert_eq!(app.count("posts").await, 1);
    }
);
