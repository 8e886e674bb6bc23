//! Schema endpoints: `/api/collections[/{name}]`, name validation, PATCH migrations.

use serde_json::{Value, json};

use crate::helpers::*;

/// `posts` with one field of each common kind.
fn posts() -> Value {
    json!({
        "name": "posts",
        "fields": [
            { "name": "title", "type": "text", "required": true },
            { "name": "views", "type": "integer", "default": 0 },
            { "name": "status", "type": "select", "options": { "values": ["draft", "published"] } },
            { "name": "slug", "type": "text", "unique": true },
        ],
    })
}

/// The keys of `problem.errors`.
fn error_keys(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_object()
        .map(|errors| errors.keys().cloned().collect())
        .unwrap_or_default()
}

/// Asserts a 400 whose `errors` has a key starting with `prefix`.
async fn expect_400_about(res: reqwest::Response, prefix: &str) {
    let problem = expect_problem(res, 400, None).await;
    assert!(
        error_keys(&problem).iter().any(|k| k.starts_with(prefix)),
        "expected an error key starting with {prefix:?} in {problem}"
    );
}

/// The field of `collection` called `name`.
fn field<'a>(collection: &'a Value, name: &str) -> &'a Value {
    collection["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {collection}"))
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {collection}"))
}

fn field_names(collection: &Value) -> Vec<String> {
    column(&json!({ "items": collection["fields"] }), "name")
}

both_backends!(
    schema_and_records_require_an_admin_token,
    |app| async move {
        for res in [
            app.anon_get("/api/collections").await,
            send_as(&app, None, "POST", "/api/collections", Some(posts())).await,
            send_as(&app, Some("garbage"), "GET", "/api/collections", None).await,
            send_as(
                &app,
                Some("garbage"),
                "POST",
                "/api/collections",
                Some(posts()),
            )
            .await,
        ] {
            expect_problem(res, 401, None).await;
        }
        let list = expect_json(app.get("/api/collections").await, 200).await;
        assert_eq!(
            list["items"],
            json!([]),
            "an unauthorised POST created something"
        );

        app.must_create_collection(posts()).await;
        let records = "/api/collections/posts/records";
        let record = json!({ "title": "hi" });
        for res in [
            app.anon_get(records).await,
            send_as(&app, None, "POST", records, Some(record.clone())).await,
            send_as(&app, Some("garbage"), "GET", records, None).await,
            send_as(&app, Some("not.a.jwt"), "POST", records, Some(record)).await,
            send_as(&app, None, "DELETE", "/api/collections/posts", None).await,
        ] {
            expect_problem(res, 401, None).await;
        }
        assert_eq!(app.count("posts").await, 0);
        expect_json(app.get("/api/collections/posts").await, 200).await;
    }
);

/// A request with an optional bearer token (None: no Authorization header).
async fn send_as(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

both_backends!(create_collection_returns_the_collection, |app| async move {
    let created = app.must_create_collection(posts()).await;
    assert!(
        created["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{created}"
    );
    assert_eq!(created["name"], "posts");
    assert!(
        is_utc_millis(created["created"].as_str().unwrap_or_default()),
        "{created}"
    );
    assert!(
        is_utc_millis(created["updated"].as_str().unwrap_or_default()),
        "{created}"
    );
    assert!(
        created.get("indexes").is_some() && created.get("rules").is_some(),
        "{created}"
    );
    assert_eq!(field_names(&created), ["title", "views", "status", "slug"]);

    let mut ids = Vec::new();
    for f in created["fields"].as_array().unwrap() {
        for key in [
            "id", "name", "type", "required", "unique", "default", "options",
        ] {
            assert!(f.get(key).is_some(), "field without {key}: {f}");
        }
        ids.push(f["id"].as_str().expect("field id is a string").to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "field ids must be distinct: {created}");

    let title = field(&created, "title");
    assert_eq!(
        (&title["type"], &title["required"], &title["unique"]),
        (&json!("text"), &json!(true), &json!(false))
    );
    assert_eq!(field(&created, "views")["default"], 0);
    assert_eq!(field(&created, "views")["type"], "integer");
    assert_eq!(
        field(&created, "status")["options"]["values"],
        json!(["draft", "published"])
    );
    assert_eq!(field(&created, "slug")["unique"], true);

    let fetched = expect_json(app.get("/api/collections/posts").await, 200).await;
    assert_eq!(fetched, created);
    let list = expect_json(app.get("/api/collections").await, 200).await;
    assert_eq!(list["items"], json!([created]));
    expect_problem(app.get("/api/collections/nope").await, 404, None).await;
});

both_backends!(hostile_collection_names_are_rejected, |app| async move {
    let long = "a".repeat(100);
    for name in [
        "posts; DROP TABLE x",
        "a\"b",
        "_users",
        "",
        long.as_str(),
        "1posts",
        "with space",
        "pöst",
        "a-b",
    ] {
        let res = app
            .create_collection(
                json!({ "name": name, "fields": [{ "name": "title", "type": "text" }] }),
            )
            .await;
        expect_problem(res, 400, Some("name")).await;
    }
    // 63 characters is the longest valid name.
    let longest = format!("A{}", "b".repeat(62));
    app.must_create_collection(json!({ "name": longest, "fields": [] }))
        .await;

    for name in [
        "x; DROP TABLE y",
        "a\"b",
        "",
        long.as_str(),
        "9lives",
        "sp ace",
    ] {
        let res = app
            .create_collection(json!({
                "name": "ok",
                "fields": [
                    { "name": "fine", "type": "text" },
                    { "name": "also_fine", "type": "integer" },
                    { "name": name, "type": "text" },
                ],
            }))
            .await;
        expect_problem(res, 400, Some("fields.2.name")).await;
    }
    let list = expect_json(app.get("/api/collections").await, 200).await;
    assert_eq!(column(&list, "name"), [longest]);
});

both_backends!(duplicate_collection_name_conflicts, |app| async move {
    app.must_create_collection(posts()).await;
    expect_problem(app.create_collection(posts()).await, 409, None).await;
    let list = expect_json(app.get("/api/collections").await, 200).await;
    assert_eq!(column(&list, "name"), ["posts"]);
});

both_backends!(
    reserved_and_duplicate_field_names_are_rejected,
    |app| async move {
        for name in ["id", "created", "updated", "expand"] {
            let res = app
                .create_collection(
                    json!({ "name": "posts", "fields": [{ "name": name, "type": "text" }] }),
                )
                .await;
            expect_problem(res, 400, Some("fields.0.name")).await;
        }
        let twice = json!({
            "name": "posts",
            "fields": [{ "name": "title", "type": "text" }, { "name": "title", "type": "integer" }],
        });
        expect_problem(app.create_collection(twice).await, 400, None).await;
        expect_problem(app.get("/api/collections/posts").await, 404, None).await;
    }
);

both_backends!(unknown_field_type_is_rejected, |app| async move {
    for kind in ["varchar", "", "TEXT; DROP TABLE x"] {
        let res = app
            .create_collection(
                json!({ "name": "posts", "fields": [{ "name": "title", "type": kind }] }),
            )
            .await;
        expect_problem(res, 400, Some("fields.0.type")).await;
    }
    expect_problem(app.get("/api/collections/posts").await, 404, None).await;
});

both_backends!(select_fields_need_a_list_of_values, |app| async move {
    for options in [
        json!(null),
        json!({}),
        json!({ "values": [] }),
        json!({ "values": [1, 2] }),
        json!({ "values": "a,b" }),
    ] {
        let res = app
            .create_collection(json!({
                "name": "posts",
                "fields": [{ "name": "status", "type": "select", "options": options }],
            }))
            .await;
        expect_400_about(res, "fields.0").await;
    }
    let created = app
        .must_create_collection(json!({
            "name": "posts",
            "fields": [{ "name": "status", "type": "select", "options": { "values": ["a", "b"] } }],
        }))
        .await;
    assert_eq!(
        field(&created, "status")["options"]["values"],
        json!(["a", "b"])
    );
});

both_backends!(
    relation_fields_need_an_existing_collection,
    |app| async move {
        for options in [
            json!({}),
            json!({ "collection": "ghosts" }),
            json!({ "collection": 5 }),
        ] {
            let res = app
                .create_collection(json!({
                    "name": "posts",
                    "fields": [{ "name": "author", "type": "relation", "options": options }],
                }))
                .await;
            expect_400_about(res, "fields.0").await;
        }
        app.must_create_collection(
            json!({ "name": "authors", "fields": [{ "name": "name", "type": "text" }] }),
        )
        .await;
        let created = app
            .must_create_collection(json!({
                "name": "posts",
                "fields": [{
                    "name": "author",
                    "type": "relation",
                    "options": { "collection": "authors", "cascade_delete": true },
                }],
            }))
            .await;
        let author = field(&created, "author");
        assert_eq!(author["options"]["collection"], "authors");
        assert_eq!(author["options"]["cascade_delete"], true);
    }
);

both_backends!(deleted_collection_is_gone, |app| async move {
    app.must_create_collection(posts()).await;
    app.must_post_record("posts", json!({ "title": "old" }))
        .await;
    let res = app.delete("/api/collections/posts").await;
    assert_eq!(res.status(), 204);

    expect_problem(app.get("/api/collections/posts").await, 404, None).await;
    expect_problem(app.list_records("posts", &[]).await, 404, None).await;
    expect_problem(
        app.post_record("posts", json!({ "title": "x" })).await,
        404,
        None,
    )
    .await;
    expect_problem(app.delete("/api/collections/posts").await, 404, None).await;
    let list = expect_json(app.get("/api/collections").await, 200).await;
    assert_eq!(list["items"], json!([]));

    // The name is free again and the new collection starts empty.
    app.must_create_collection(posts()).await;
    assert_eq!(app.count("posts").await, 0);
});

both_backends!(patch_renames_adds_and_drops_fields, |app| async move {
    let created = app
        .must_create_collection(json!({
            "name": "posts",
            "fields": [
                { "name": "title", "type": "text" },
                { "name": "views", "type": "integer" },
                { "name": "legacy", "type": "text" },
            ],
        }))
        .await;
    let migrations_before = app.migration_files().len();
    assert!(
        migrations_before >= 1,
        "creating a collection writes a migration file"
    );
    let record = app
        .must_post_record(
            "posts",
            json!({ "title": "kept", "views": 7, "legacy": "gone" }),
        )
        .await;

    let title_id = field(&created, "title")["id"].clone();
    let views_id = field(&created, "views")["id"].clone();
    let res = app
        .patch(
            "/api/collections/posts",
            json!({ "fields": [
                { "id": title_id, "name": "headline", "type": "text" },
                { "id": views_id, "name": "views", "type": "integer" },
                { "name": "summary", "type": "text" },
            ] }),
        )
        .await;
    let patched = expect_json(res, 200).await;
    assert_eq!(field_names(&patched), ["headline", "views", "summary"]);
    assert_eq!(
        field(&patched, "headline")["id"],
        title_id,
        "a rename keeps the field id"
    );

    let path = format!(
        "/api/collections/posts/records/{}",
        record["id"].as_str().unwrap()
    );
    let after = expect_json(app.get(&path).await, 200).await;
    assert_eq!(
        after["headline"], "kept",
        "renamed field keeps its data: {after}"
    );
    assert_eq!(after["views"], 7);
    assert_eq!(after["summary"], Value::Null);
    assert!(
        after.get("title").is_none() && after.get("legacy").is_none(),
        "{after}"
    );
    expect_problem(
        app.post_record("posts", json!({ "legacy": "x" })).await,
        400,
        Some("legacy"),
    )
    .await;
    app.must_post_record("posts", json!({ "headline": "new", "summary": "s" }))
        .await;

    let fetched = expect_json(app.get("/api/collections/posts").await, 200).await;
    assert_eq!(field_names(&fetched), ["headline", "views", "summary"]);

    let files = app.migration_files();
    assert_eq!(
        files.len(),
        migrations_before + 1,
        "a PATCH writes one migration: {files:?}"
    );
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".json")
                && name.contains('_')
                && name.starts_with(|c: char| c.is_ascii_digit()),
            "migration file name {name} is not <timestamp>_<name>.json"
        );
        let text = std::fs::read_to_string(file).unwrap();
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
    }
});

both_backends!(
    patch_changing_a_field_type_is_unprocessable,
    |app| async move {
        let created = app.must_create_collection(posts()).await;
        let record = app
            .must_post_record("posts", json!({ "title": "t", "views": 3 }))
            .await;
        let mut fields = created["fields"].clone();
        for f in fields.as_array_mut().unwrap() {
            if f["name"] == "views" {
                f["type"] = json!("text");
            }
        }
        let res = app
            .patch("/api/collections/posts", json!({ "fields": fields }))
            .await;
        expect_problem(res, 422, None).await;

        let fetched = expect_json(app.get("/api/collections/posts").await, 200).await;
        assert_eq!(
            fetched["fields"], created["fields"],
            "a rejected PATCH changes nothing"
        );
        let path = format!(
            "/api/collections/posts/records/{}",
            record["id"].as_str().unwrap()
        );
        let after = expect_json(app.get(&path).await, 200).await;
        assert_eq!(after["views"], 3);
    }
);

both_backends!(indexes_are_kept_and_checked, |app| async move {
    let mut body = posts();
    body["indexes"] = json!([["status", "views"]]);
    let created = app.must_create_collection(body).await;
    assert_eq!(created["indexes"], json!([["status", "views"]]));

    let res = app
        .create_collection(json!({
            "name": "others",
            "fields": [{ "name": "title", "type": "text" }],
            "indexes": [["nosuchfield"]],
        }))
        .await;
    expect_problem(res, 400, None).await;
    expect_problem(app.get("/api/collections/others").await, 404, None).await;
});
