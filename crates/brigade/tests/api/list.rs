//! Listing records: pagination, the filter language, sort, field selection, and hostile input.

use serde_json::{Value, json};

use crate::helpers::*;

/// Five posts chosen so that each filter below selects a different subset.
async fn seed_posts(app: &TestApp) {
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [
            { "name": "title", "type": "text" },
            { "name": "status", "type": "select", "options": { "values": ["active", "archived"] } },
            { "name": "views", "type": "integer" },
            { "name": "score", "type": "number" },
            { "name": "published", "type": "bool" },
            { "name": "subtitle", "type": "text" },
            { "name": "pub_date", "type": "datetime" },
        ],
    }))
    .await;
    let rows = [
        (
            "A Rust in production",
            "active",
            10,
            4.5,
            true,
            json!("deep dive"),
            json!("2001-01-01T00:00:00Z"),
        ),
        (
            "B Learning RUST",
            "archived",
            3,
            2.0,
            false,
            json!(null),
            json!("2999-01-01T00:00:00Z"),
        ),
        (
            "C Go vs Zig",
            "active",
            25,
            3.25,
            true,
            json!(null),
            json!("2001-06-01T00:00:00Z"),
        ),
        (
            "D 100% organic",
            "active",
            0,
            1.0,
            false,
            json!("percent"),
            json!(null),
        ),
        (
            "E snake_case names",
            "archived",
            10,
            5.0,
            true,
            json!("under"),
            json!("2002-01-01T00:00:00Z"),
        ),
    ];
    for (title, status, views, score, published, subtitle, pub_date) in rows {
        app.must_post_record(
            "posts",
            json!({
                "title": title, "status": status, "views": views, "score": score,
                "published": published, "subtitle": subtitle, "pub_date": pub_date,
            }),
        )
        .await;
    }
}

/// The first letters of the titles matching `filter`, in title order.
async fn matching(app: &TestApp, filter: &str) -> String {
    let page = app
        .must_list("posts", &[("filter", filter), ("sort", "title")])
        .await;
    let letters: String = column(&page, "title").iter().map(|t| &t[..1]).collect();
    assert_eq!(
        page["total_items"],
        letters.len(),
        "total_items for {filter}: {page}"
    );
    letters
}

both_backends!(list_paginates_with_defaults_and_limits, |app| async move {
    app.must_create_collection(
        json!({ "name": "posts", "fields": [{ "name": "n", "type": "integer" }] }),
    )
    .await;
    for n in 1..=35 {
        app.must_post_record("posts", json!({ "n": n })).await;
    }
    let page = app.must_list("posts", &[]).await;
    assert_eq!(
        (&page["page"], &page["per_page"]),
        (&json!(1), &json!(30)),
        "{page}"
    );
    assert_eq!(
        (&page["total_items"], &page["total_pages"]),
        (&json!(35), &json!(2)),
        "{page}"
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 30);

    let page = app
        .must_list("posts", &[("page", "2"), ("sort", "n")])
        .await;
    assert_eq!(column(&page, "n"), ["31", "32", "33", "34", "35"]);
    assert_eq!(page["page"], 2);

    let page = app
        .must_list(
            "posts",
            &[("page", "4"), ("per_page", "10"), ("sort", "-n")],
        )
        .await;
    assert_eq!(column(&page, "n"), ["5", "4", "3", "2", "1"]);
    assert_eq!(
        (&page["per_page"], &page["total_pages"]),
        (&json!(10), &json!(4))
    );
    let page = app
        .must_list("posts", &[("page", "5"), ("per_page", "10")])
        .await;
    assert_eq!(page["items"], json!([]));
    let page = app.must_list("posts", &[("per_page", "500")]).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 35);

    for per_page in ["501", "0", "-1", "ten"] {
        let res = app.list_records("posts", &[("per_page", per_page)]).await;
        expect_problem(res, 400, Some("per_page")).await;
    }
    for page in ["0", "-1", "first"] {
        expect_problem(
            app.list_records("posts", &[("page", page)]).await,
            400,
            Some("page"),
        )
        .await;
    }

    let page = app.must_list("posts", &[("skip_total", "true")]).await;
    assert_eq!(
        (&page["total_items"], &page["total_pages"]),
        (&Value::Null, &Value::Null),
        "{page}"
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 30);
    assert_eq!((&page["page"], &page["per_page"]), (&json!(1), &json!(30)));
});

both_backends!(filters_select_the_right_records, |app| async move {
    seed_posts(&app).await;
    let cases = [
        ("views = 10", "AE"),
        ("views != 10", "BCD"),
        ("views > 10", "C"),
        ("views >= 10", "ACE"),
        ("views < 10", "BD"),
        ("views <= 3", "BD"),
        ("title ~ 'rust'", "AB"),
        ("title ~ \"RUST\"", "AB"),
        ("title !~ 'rust'", "CDE"),
        ("status = 'active' && (views >= 10 || title ~ 'rust')", "AC"),
        ("status = 'archived' || views = 0", "BDE"),
        (
            "(status = 'archived' || views = 0) && published = true",
            "E",
        ),
        ("subtitle = null", "BC"),
        ("subtitle != null", "ADE"),
        ("published = true", "ACE"),
        ("published = false && score >= 2", "B"),
        ("score > 3.3", "AE"),
        ("score < 2", "D"),
        ("pub_date < @now", "ACE"),
        ("pub_date > @now", "B"),
        ("pub_date > '2001-03-01T00:00:00Z'", "BCE"),
        // `~` is a literal substring match: % and _ are not wildcards.
        ("title ~ '%'", "D"),
        ("title ~ '_'", "E"),
        ("title ~ '0%'", "D"),
        ("title ~ 'o%'", ""),
        ("title !~ '_'", "ABCD"),
        ("views > 100", ""),
    ];
    for (filter, expected) in cases {
        assert_eq!(matching(&app, filter).await, expected, "filter {filter}");
    }
});

both_backends!(invalid_filters_sorts_and_fields_are_400, |app| async move {
    seed_posts(&app).await;
    for filter in [
        "title = ",
        "(views > 1",
        "views >> 1",
        "title ~ 'unterminated",
        "&& views = 1",
        "views = 1 views",
    ] {
        let problem = expect_problem(
            app.list_records("posts", &[("filter", filter)]).await,
            400,
            Some("filter"),
        )
        .await;
        let message = problem["errors"]["filter"].as_str().unwrap().to_lowercase();
        assert!(
            message.contains("position"),
            "syntax error for {filter:?} names no position: {problem}"
        );
    }
    for filter in [
        "nosuchfield = 1",
        "views = 'abc'",
        "published = 'yes'",
        "title > 5 && nosuch = 1",
    ] {
        expect_problem(
            app.list_records("posts", &[("filter", filter)]).await,
            400,
            Some("filter"),
        )
        .await;
    }
    for sort in ["nosuch", "-nosuch", "title,nosuch"] {
        expect_problem(
            app.list_records("posts", &[("sort", sort)]).await,
            400,
            Some("sort"),
        )
        .await;
    }
    for fields in ["nosuch", "id,nosuch"] {
        expect_problem(
            app.list_records("posts", &[("fields", fields)]).await,
            400,
            Some("fields"),
        )
        .await;
    }
});

both_backends!(sort_orders_by_several_fields, |app| async move {
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [{ "name": "title", "type": "text" }, { "name": "views", "type": "integer" }],
    }))
    .await;
    for (title, views) in [("b", 1), ("a", 2), ("c", 2), ("d", 0)] {
        app.must_post_record("posts", json!({ "title": title, "views": views }))
            .await;
    }
    for (sort, expected) in [
        ("-views,title", ["a", "c", "b", "d"]),
        ("views,-title", ["d", "b", "c", "a"]),
        ("title", ["a", "b", "c", "d"]),
        ("-title", ["d", "c", "b", "a"]),
    ] {
        let page = app.must_list("posts", &[("sort", sort)]).await;
        assert_eq!(column(&page, "title"), expected, "sort={sort}");
    }
});

both_backends!(fields_selects_the_returned_keys, |app| async move {
    seed_posts(&app).await;
    let page = app
        .must_list("posts", &[("fields", "id,title"), ("sort", "title")])
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        let mut keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["id", "title"], "{item}");
    }
    assert_eq!(items[0]["title"], "A Rust in production");
    let page = app.must_list("posts", &[("fields", "views")]).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.as_object().unwrap().len() == 1),
        "{page}"
    );
});

/// Percent-encodes every byte outside RFC 3986's unreserved set, for use in a path segment.
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const PAYLOADS: [&str; 6] = [
    "' OR 1=1 --",
    "title; DROP TABLE posts",
    "\") OR (\"1\"=\"1",
    "1; DROP TABLE posts; --",
    "posts\"; DROP TABLE \"posts",
    "title) UNION SELECT * FROM secrets --",
];

both_backends!(sql_injection_attempts_are_inert, |app| async move {
    seed_posts(&app).await;
    app.must_create_collection(
        json!({ "name": "secrets", "fields": [{ "name": "code", "type": "text" }] }),
    )
    .await;
    app.must_post_record("secrets", json!({ "code": "hunter2" }))
        .await;

    for payload in PAYLOADS {
        for param in ["filter", "sort", "fields", "expand", "page", "per_page"] {
            let res = app.list_records("posts", &[(param, payload)]).await;
            expect_client_error(res, &format!("{param}={payload}")).await;
        }
        let segment = encode_segment(payload);
        for path in [
            format!("/api/collections/{segment}/records"),
            format!("/api/collections/{segment}"),
        ] {
            expect_client_error(app.get(&path).await, &path).await;
        }
        let path = format!("/api/collections/posts/records/{segment}");
        expect_client_error(app.get(&path).await, &path).await;
        expect_client_error(app.patch(&path, json!({ "title": "pwned" })).await, &path).await;
        expect_client_error(app.delete(&path).await, &path).await;

        // Inside a string literal a payload is just data: a valid filter that matches nothing.
        let q = if payload.contains('\'') { '"' } else { '\'' };
        let filter = format!("title = {q}{payload}{q} || title ~ {q}{payload}{q}");
        let page = app.must_list("posts", &[("filter", &filter)]).await;
        assert_eq!(
            page["items"],
            json!([]),
            "filter {filter} matched something"
        );
    }

    // Stored verbatim and found by equality.
    let evil = "'); DROP TABLE posts; --";
    let record = app
        .must_post_record("posts", json!({ "title": evil }))
        .await;
    assert_eq!(record["title"], evil);
    let page = app
        .must_list(
            "posts",
            &[("filter", "title = \"'); DROP TABLE posts; --\"")],
        )
        .await;
    assert_eq!(column(&page, "id"), [record["id"].as_str().unwrap()]);

    assert_eq!(app.count("posts").await, 6, "all posts survive");
    assert_eq!(app.count("secrets").await, 1);
    let list = expect_json(app.get("/api/collections").await, 200).await;
    let mut names = column(&list, "name");
    names.sort();
    assert_eq!(names, ["posts", "secrets"]);
});
