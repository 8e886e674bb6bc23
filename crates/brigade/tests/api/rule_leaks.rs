//! The attack review's rule leaks, performed against the real server: relation filters used
//! as an oracle on records the caller may not view, `@request` values that are absent
//! comparing as NULL, conflicts and relation checks that reveal hidden records before the
//! create rule refuses, rules that name missing fields, reserved collection names and filters
//! expensive enough to freeze a server.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, expect_json, expect_problem, status_and_text};
use crate::rules::{call, user};

macro_rules! open_backends {
    ($name:ident, |$app:pat_param| async move $body:block) => {
        on_both_stores!($name, crate::rules::OPEN, |$app| async move $body);
    };
}

const OWNER: &str = "owner = @request.auth.id";

/// `vault` (superusers only), `profiles` (each user sees their own) and a public `posts`
/// collection pointing at both.
async fn leaky_schema(app: &TestApp) {
    app.must_create_collection(json!({
        "name": "vault",
        "fields": [{"name": "secret", "type": "text"}],
        "rules": {"list": null, "view": null, "create": null, "update": null, "delete": null}
    }))
    .await;
    app.must_create_collection(json!({
        "name": "profiles",
        "fields": [
            {"name": "ssn", "type": "text"},
            {"name": "owner", "type": "text"},
            {"name": "vault", "type": "relation", "options": {"collection": "vault"}}
        ],
        "rules": {"list": OWNER, "view": OWNER, "create": OWNER, "update": OWNER, "delete": OWNER}
    }))
    .await;
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "vaultref", "type": "relation", "options": {"collection": "vault"}},
            {"name": "profile", "type": "relation", "options": {"collection": "profiles"}}
        ],
        "rules": {"list": "", "view": "", "create": "", "update": null, "delete": null}
    }))
    .await;
}

async fn list(
    app: &TestApp,
    token: Option<&str>,
    collection: &str,
    filter: &str,
) -> reqwest::Response {
    let mut req = app.client.get(app.url_with(
        &format!("/api/collections/{collection}/records"),
        &[("filter", filter)],
    ));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// How many records `filter` finds for the caller (asserting a 200 whose page holds them all).
async fn matches(app: &TestApp, token: Option<&str>, collection: &str, filter: &str) -> u64 {
    let page = expect_json(list(app, token, collection, filter).await, 200).await;
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        page["total_items"].as_u64().map(|n| n as usize),
        "{page}"
    );
    page["total_items"].as_u64().unwrap()
}

open_backends!(
    relation_filters_see_only_what_the_caller_may_view,
    |app| async move {
        leaky_schema(&app).await;
        let (alice, alice_t) = user(&app, "alice@example.com").await;
        let (bob, bob_t) = user(&app, "bob@example.com").await;
        let vault = app
            .must_post_record("vault", json!({"secret": "Pa55word"}))
            .await;
        let bobs = app
            .must_post_record(
                "profiles",
                json!({"ssn": "123-45-6789", "owner": bob, "vault": vault["id"]}),
            )
            .await;
        let alices = app
            .must_post_record("profiles", json!({"ssn": "987-65-4321", "owner": alice}))
            .await;
        app.must_post_record(
            "posts",
            json!({"title": "public", "vaultref": vault["id"], "profile": bobs["id"]}),
        )
        .await;
        app.must_post_record(
            "posts",
            json!({"title": "alice's", "profile": alices["id"]}),
        )
        .await;

        // The character-by-character extraction of a superuser-only secret is refused outright,
        // anonymously and as a user, at every depth.
        for (who, token) in [("anonymous", None), ("alice", Some(alice_t.as_str()))] {
            for filter in [
                "vaultref.secret >= 'P' && vaultref.secret < 'P\u{10FFFF}'",
                "vaultref.secret ~ 'Pa5'",
                "title = 'x' || vaultref.secret = 'Pa55word'",
            ] {
                let problem = expect_problem(
                    list(&app, token, "posts", filter).await,
                    400,
                    Some("filter"),
                )
                .await;
                let message = problem["errors"]["filter"].as_str().unwrap();
                assert!(message.contains("only superusers"), "{who}: {message}");
            }
        }
        let problem = expect_problem(
            list(&app, Some(&bob_t), "posts", "profile.vault.secret ~ 'P'").await,
            400,
            Some("filter"),
        )
        .await;
        assert!(
            problem["errors"]["filter"]
                .as_str()
                .unwrap()
                .contains("`vault`"),
            "{problem}"
        );

        // Another user's private field cannot be tested through a relation; one's own can.
        assert_eq!(
            matches(&app, Some(&alice_t), "posts", "profile.ssn = '123-45-6789'").await,
            0
        );
        assert_eq!(
            matches(&app, Some(&alice_t), "posts", "profile.ssn ~ '123'").await,
            0
        );
        assert_eq!(
            matches(&app, Some(&alice_t), "posts", "profile.ssn != ''").await,
            1
        );
        assert_eq!(
            matches(&app, Some(&bob_t), "posts", "profile.ssn = '123-45-6789'").await,
            1
        );
        assert_eq!(matches(&app, None, "posts", "profile.ssn != ''").await, 0);
        // Superusers see everything, secrets included.
        let page = app
            .must_list("posts", &[("filter", "vaultref.secret = 'Pa55word'")])
            .await;
        assert_eq!(page["total_items"], 1, "{page}");
        let page = app
            .must_list("posts", &[("filter", "profile.vault.secret ~ 'Pa5'")])
            .await;
        assert_eq!(page["total_items"], 1, "{page}");
    }
);

open_backends!(absent_request_values_never_match, |app| async move {
    app.must_create_collection(json!({
        "name": "notes",
        "fields": [{"name": "title", "type": "text"}, {"name": "owner", "type": "text"}],
        "rules": {"list": OWNER, "view": OWNER, "create": OWNER, "update": OWNER, "delete": OWNER}
    }))
    .await;
    app.must_create_collection(json!({
        "name": "orphans",
        "fields": [{"name": "owner", "type": "text"}],
        "rules": {"list": "owner = null", "view": "owner = null", "create": null, "update": null, "delete": null}
    }))
    .await;
    let ownerless = app
        .must_post_record("notes", json!({"title": "nobody's"}))
        .await;
    let path = format!(
        "/api/collections/notes/records/{}",
        ownerless["id"].as_str().unwrap()
    );
    let (_, alice_t) = user(&app, "alice@example.com").await;

    for token in [None, Some(alice_t.as_str())] {
        // Listing, reading, counting: nothing, although `owner` is null like the absent id.
        let page = expect_json(list(&app, token, "notes", "").await, 200).await;
        assert_eq!(page["total_items"], 0, "{page}");
        let (status, body) =
            status_and_text(call(&app, token, Method::GET, &path, None).await).await;
        assert_eq!(status, 404, "{body}");
        // Changing and deleting it: refused as hidden.
        let (status, body) = status_and_text(
            call(
                &app,
                token,
                Method::PATCH,
                &path,
                Some(json!({"title": "mine now"})),
            )
            .await,
        )
        .await;
        assert_eq!(status, 404, "{body}");
        let (status, body) =
            status_and_text(call(&app, token, Method::DELETE, &path, None).await).await;
        assert_eq!(status, 404, "{body}");
    }
    // Creating an ownerless record anonymously is refused, and nothing is stored.
    let (status, body) = status_and_text(
        call(
            &app,
            None,
            Method::POST,
            "/api/collections/notes/records",
            Some(json!({"title": "spam"})),
        )
        .await,
    )
    .await;
    assert!(status == 401 || status == 403, "{status} {body}");
    assert_eq!(app.count("notes").await, 1);
    let got = expect_json(app.get(&path).await, 200).await;
    assert_eq!(got["title"], "nobody's");

    // The explicit literal `null` still means IS NULL.
    app.must_post_record("orphans", json!({})).await;
    let page = expect_json(list(&app, None, "orphans", "").await, 200).await;
    assert_eq!(page["total_items"], 1, "{page}");
});

open_backends!(
    refused_creators_learn_nothing_from_conflicts_or_relations,
    |app| async move {
        leaky_schema(&app).await;
        app.must_create_collection(json!({
        "name": "handles",
        "fields": [
            {"name": "handle", "type": "text", "unique": true},
            {"name": "owner", "type": "text"}
        ],
        "rules": {"list": OWNER, "view": OWNER, "create": OWNER, "update": OWNER, "delete": OWNER}
    }))
    .await;
        let (alice, alice_t) = user(&app, "alice@example.com").await;
        let (bob, _) = user(&app, "bob@example.com").await;
        let taken = app
            .must_post_record("handles", json!({"handle": "root", "owner": bob}))
            .await;
        let taken_id = taken["id"].as_str().unwrap();

        // Refused by the create rule: 403 whether or not the unique value or id is taken.
        for body in [
            json!({"handle": "root", "owner": bob}),
            json!({"handle": "free", "owner": bob}),
            json!({"id": taken_id, "handle": "other", "owner": bob}),
        ] {
            let res = call(
                &app,
                Some(&alice_t),
                Method::POST,
                "/api/collections/handles/records",
                Some(body.clone()),
            )
            .await;
            expect_problem(res, 403, None).await;
        }
        assert_eq!(app.count("handles").await, 1);
        let mine = call(
            &app,
            Some(&alice_t),
            Method::POST,
            "/api/collections/handles/records",
            Some(json!({"handle": "alice", "owner": alice})),
        )
        .await;
        expect_json(mine, 201).await;

        // A relation to a record the caller may not view answers exactly like one to no record.
        let vault = app.must_post_record("vault", json!({"secret": "s"})).await;
        let bobs = app
            .must_post_record("profiles", json!({"ssn": "1", "owner": bob}))
            .await;
        let alices = app
            .must_post_record("profiles", json!({"ssn": "2", "owner": alice}))
            .await;
        let missing = "0190f5f6-0000-7000-8000-000000000000";
        let mut answers = Vec::new();
        for body in [
            json!({"title": "a", "profile": bobs["id"]}),
            json!({"title": "b", "profile": missing}),
            json!({"title": "c", "vaultref": vault["id"]}),
            json!({"title": "d", "vaultref": missing}),
        ] {
            let res = call(
                &app,
                Some(&alice_t),
                Method::POST,
                "/api/collections/posts/records",
                Some(body),
            )
            .await;
            let problem = expect_problem(res, 400, None).await;
            let errors = problem["errors"].as_object().unwrap().clone();
            let (field, message) = errors.into_iter().next().unwrap();
            let message = message.as_str().unwrap().replace(missing, "ID");
            answers.push((
                field,
                message
                    .replace(bobs["id"].as_str().unwrap(), "ID")
                    .replace(vault["id"].as_str().unwrap(), "ID"),
            ));
        }
        assert_eq!(answers[0], answers[1], "{answers:?}");
        assert_eq!(answers[2], answers[3], "{answers:?}");
        assert_eq!(app.count("posts").await, 0);
        let ok = call(
            &app,
            Some(&alice_t),
            Method::POST,
            "/api/collections/posts/records",
            Some(json!({"title": "mine", "profile": alices["id"]})),
        )
        .await;
        expect_json(ok, 201).await;
    }
);

open_backends!(
    broken_rules_and_reserved_names_are_refused_when_defined,
    |app| async move {
        // A rule naming a field the collection does not have.
        let res = app
        .create_collection(json!({
            "name": "tasks",
            "fields": [{"name": "title", "type": "text"}],
            "rules": {"list": "ownr = @request.auth.id", "view": "", "create": "", "update": "", "delete": ""}
        }))
        .await;
        let problem = expect_problem(res, 400, Some("rules.list")).await;
        assert!(
            problem["errors"]["rules.list"]
                .as_str()
                .unwrap()
                .contains("ownr"),
            "{problem}"
        );
        let res = app
        .create_collection(json!({
            "name": "tasks",
            "fields": [{"name": "title", "type": "text"}, {"name": "owner", "type": "text"}],
            "rules": {"list": OWNER, "view": "title != ''", "create": "", "update": "", "delete": ""}
        }))
        .await;
        expect_json(res, 201).await;
        // Dropping a field a rule uses is refused, naming the rule.
        let res = app
            .patch(
                "/api/collections/tasks",
                json!({"fields": [{"name": "title", "type": "text"}]}),
            )
            .await;
        expect_problem(res, 400, Some("rules.list")).await;
        // The collection still answers, with its rules intact.
        let page = expect_json(list(&app, None, "tasks", "").await, 200).await;
        assert_eq!(page["total_items"], 0);

        // A body value of the wrong type for a rule's field is no server error.
        app.must_create_collection(json!({
        "name": "bids",
        "fields": [
            {"name": "amount", "type": "integer"},
            {"name": "meta", "type": "json"},
            {"name": "due", "type": "datetime"},
            {"name": "firm", "type": "bool"},
            {"name": "price", "type": "number"}
        ],
        "rules": {"list": "", "view": "", "create": "amount > 10 && @request.body.amount < 1000 && firm != false", "update": null, "delete": null}
    }))
    .await;
        for (body, status) in [
            (json!({"amount": 50}), 201),
            (
                json!({"amount": 50, "meta": {"a": [1, 2]}, "due": "2026-01-31T12:00:00Z", "firm": true, "price": 1.5}),
                201,
            ),
            (json!({"amount": 50, "firm": false}), 401),
            (json!({"amount": 5000}), 401),
            (json!({"amount": "lots"}), 400),
        ] {
            let (actual, text) = status_and_text(
                call(
                    &app,
                    None,
                    Method::POST,
                    "/api/collections/bids/records",
                    Some(body.clone()),
                )
                .await,
            )
            .await;
            assert_eq!(actual, status, "{body}: {text}");
        }

        // Names the databases keep for themselves.
        for name in ["sqlite_master", "SQLITE_temp", "pg_class"] {
            let res = app
                .create_collection(json!({"name": name, "fields": [{"name": "x", "type": "text"}]}))
                .await;
            expect_problem(res, 400, Some("name")).await;
        }
    }
);

open_backends!(
    expensive_filters_have_a_budget_for_non_superusers,
    |app| async move {
        leaky_schema(&app).await;
        app.must_post_record("posts", json!({"title": "hello"}))
            .await;
        let (_, alice_t) = user(&app, "alice@example.com").await;
        let many: Vec<String> = (0..21).map(|i| format!("title ~ 'x{i}'")).collect();
        let expensive = many.join(" || ");
        for token in [None, Some(alice_t.as_str())] {
            let problem = expect_problem(
                list(&app, token, "posts", &expensive).await,
                400,
                Some("filter"),
            )
            .await;
            assert!(
                problem["errors"]["filter"]
                    .as_str()
                    .unwrap()
                    .contains("at most 100"),
                "{problem}"
            );
        }
        // Twenty `~` fit the budget, and superusers have none.
        let fits = many[..20].join(" || ");
        assert_eq!(matches(&app, None, "posts", &fits).await, 0);
        let page = app.must_list("posts", &[("filter", &expensive)]).await;
        assert_eq!(page["total_items"], 0, "{page}");
    }
);

files_test!(
    search_filters_walk_relations_under_view_rules,
    vec![(
        "brigade.toml",
        b"[[search.indexes]]\nname = \"posts\"\ncollection = \"posts\"\nfields = [\"title\"]\n"
            .to_vec(),
    )],
    |app| async move {
        leaky_schema(&app).await;
        let vault = app
            .must_post_record("vault", json!({"secret": "Pa55word"}))
            .await;
        let post = app
            .must_post_record(
                "posts",
                json!({"title": "autovacuum tuning", "vaultref": vault["id"]}),
            )
            .await;
        // Wait until the index follows the write (the superuser's search sees it).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let found =
                crate::search::hits(&app, "posts", &[("q", "autovacuum"), ("mode", "keyword")])
                    .await;
            if crate::search::docs_of(&found) == [post["id"].as_str().unwrap()] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never indexed: {found:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // The superuser may filter through the relation; an anonymous caller may not.
        let found = crate::search::hits(
            &app,
            "posts",
            &[
                ("q", "autovacuum"),
                ("mode", "keyword"),
                ("filter", "vaultref.secret ~ 'Pa5'"),
            ],
        )
        .await;
        assert_eq!(found.len(), 1, "{found:?}");
        let url = app.url_with(
            "/api/search/posts",
            &[
                ("q", "autovacuum"),
                ("mode", "keyword"),
                ("filter", "vaultref.secret ~ 'Pa5'"),
            ],
        );
        let problem = expect_problem(
            app.client.get(url).send().await.unwrap(),
            400,
            Some("filter"),
        )
        .await;
        assert!(
            problem["errors"]["filter"]
                .as_str()
                .unwrap()
                .contains("only superusers"),
            "{problem}"
        );
    }
);
