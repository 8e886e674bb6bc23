//! Collection rules for ordinary users: registration, then IDOR, privilege escalation,
//! filter probing, and attempts to bypass rules through batch and expand. Superusers bypass
//! rules; everyone else sees and changes only what the rules allow.

use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, expect_problem};

/// An app with self-registration open.
/// Self-registration open.
pub(crate) const OPEN: &str = "[auth]\nallow_registration = true\n";

macro_rules! open_backends {
    ($name:ident, |$app:pat_param| async move $body:block) => {
        on_both_stores!($name, crate::rules::OPEN, |$app| async move $body);
    };
}

/// A registered user: `(id, access token)`.
pub(crate) async fn user(app: &TestApp, email: &str) -> (String, String) {
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"email": email, "password": "long enough password", "name": email}))
        .send()
        .await
        .unwrap();
    let created = expect_json(res, 201).await;
    assert_eq!(created["user"]["roles"], json!([]));
    let (id, token) = login_again(app, email).await;
    assert_eq!(created["user"]["id"], id.as_str());
    (id, token)
}

pub(crate) async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

const OWNER_ONLY: &str = "owner = @request.auth.id";

async fn notes_schema(app: &TestApp) {
    app.must_create_collection(json!({
        "name": "notes",
        "fields": [{"name": "title", "type": "text"}, {"name": "owner", "type": "text"}],
        "rules": {
            "list": OWNER_ONLY, "view": OWNER_ONLY,
            "create": "owner = @request.auth.id",
            "update": "owner = @request.auth.id && (@request.body.owner = null || @request.body.owner = @request.auth.id)",
            "delete": OWNER_ONLY
        }
    }))
    .await;
    app.must_create_collection(json!({
        "name": "comments",
        "fields": [{"name": "text", "type": "text"}, {"name": "note", "type": "relation", "options": {"collection": "notes"}}],
        "rules": {"list": "", "view": "", "create": null, "update": null, "delete": null}
    }))
    .await;
}

open_backends!(users_see_and_change_only_their_records, |app| async move {
    use reqwest::Method;
    notes_schema(&app).await;
    let (alice, alice_t) = user(&app, "alice@example.com").await;
    let (bob, bob_t) = user(&app, "bob@example.com").await;

    let note = expect_json(
        call(
            &app,
            Some(&alice_t),
            Method::POST,
            "/api/collections/notes/records",
            Some(json!({"title": "alice secret", "owner": alice})),
        )
        .await,
        201,
    )
    .await;
    let path = format!(
        "/api/collections/notes/records/{}",
        note["id"].as_str().unwrap()
    );

    // Creating a record in someone else's name is refused and leaves nothing behind.
    let res = call(
        &app,
        Some(&bob_t),
        Method::POST,
        "/api/collections/notes/records",
        Some(json!({"title": "forged", "owner": alice})),
    )
    .await;
    expect_problem(res, 403, None).await;
    let res = call(
        &app,
        None,
        Method::POST,
        "/api/collections/notes/records",
        Some(json!({"title": "anon", "owner": ""})),
    )
    .await;
    expect_problem(res, 401, None).await;
    assert_eq!(
        app.count("notes").await,
        1,
        "refused creates are rolled back"
    );

    // IDOR: bob cannot read, change or delete alice's note; it looks like it does not exist.
    expect_problem(
        call(&app, Some(&bob_t), Method::GET, &path, None).await,
        404,
        None,
    )
    .await;
    expect_problem(
        call(
            &app,
            Some(&bob_t),
            Method::PATCH,
            &path,
            Some(json!({"title": "pwned"})),
        )
        .await,
        404,
        None,
    )
    .await;
    expect_problem(
        call(&app, Some(&bob_t), Method::DELETE, &path, None).await,
        404,
        None,
    )
    .await;

    // Filter probing: the rule is part of the SQL, so totals reveal nothing.
    let page = expect_json(
        call(
            &app,
            Some(&bob_t),
            Method::GET,
            "/api/collections/notes/records?filter=title%20~%20%27secret%27",
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["total_items"], 0);
    assert_eq!(page["items"], json!([]));
    let page = expect_json(
        call(
            &app,
            Some(&alice_t),
            Method::GET,
            "/api/collections/notes/records",
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["total_items"], 1);

    // Privilege escalation: alice may edit her note but not hand it to bob.
    expect_json(
        call(
            &app,
            Some(&alice_t),
            Method::PATCH,
            &path,
            Some(json!({"title": "renamed"})),
        )
        .await,
        200,
    )
    .await;
    let res = call(
        &app,
        Some(&alice_t),
        Method::PATCH,
        &path,
        Some(json!({"owner": bob})),
    )
    .await;
    expect_problem(res, 404, None).await;

    // Batch cannot bypass rules, and a refused write rolls back the whole batch.
    let batch = json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "bob's own", "owner": bob}},
        {"method": "PATCH", "url": path, "body": {"title": "via batch"}}
    ]});
    let problem = expect_problem(
        call(&app, Some(&bob_t), Method::POST, "/api/batch", Some(batch)).await,
        404,
        None,
    )
    .await;
    assert!(
        problem["errors"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("requests.1")),
        "{problem}"
    );
    let page = expect_json(
        call(
            &app,
            Some(&bob_t),
            Method::GET,
            "/api/collections/notes/records",
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        page["total_items"], 0,
        "bob's create in the failed batch was rolled back"
    );

    // Expand cannot bypass the target's view rule.
    let comment = expect_json(
        app.post(
            "/api/collections/comments/records",
            json!({"text": "hi", "note": note["id"]}),
        )
        .await,
        201,
    )
    .await;
    let comment_path = format!(
        "/api/collections/comments/records/{}?expand=note",
        comment["id"].as_str().unwrap()
    );
    let seen_by_bob = expect_json(
        call(&app, Some(&bob_t), Method::GET, &comment_path, None).await,
        200,
    )
    .await;
    assert!(
        seen_by_bob.get("expand").is_none(),
        "bob must not see alice's note through expand: {seen_by_bob}"
    );
    let seen_by_alice = expect_json(
        call(&app, Some(&alice_t), Method::GET, &comment_path, None).await,
        200,
    )
    .await;
    assert_eq!(seen_by_alice["expand"]["note"]["title"], "renamed");

    // Superusers bypass rules; the note is intact.
    let admin_view = expect_json(app.get(&path).await, 200).await;
    assert_eq!(admin_view["title"], "renamed");
    assert_eq!(admin_view["owner"], alice);
});

open_backends!(
    null_rules_are_superuser_only_and_empty_rules_public,
    |app| async move {
        use reqwest::Method;
        notes_schema(&app).await;
        let (_, bob_t) = user(&app, "bob@example.com").await;
        // comments: list/view public, writes superuser-only.
        expect_json(
            call(
                &app,
                None,
                Method::GET,
                "/api/collections/comments/records",
                None,
            )
            .await,
            200,
        )
        .await;
        let res = call(
            &app,
            Some(&bob_t),
            Method::POST,
            "/api/collections/comments/records",
            Some(json!({"text": "x"})),
        )
        .await;
        expect_problem(res, 403, None).await;
        let res = call(
            &app,
            None,
            Method::POST,
            "/api/collections/comments/records",
            Some(json!({"text": "x"})),
        )
        .await;
        expect_problem(res, 401, None).await;
        // Schema stays superuser-only.
        expect_problem(
            call(&app, Some(&bob_t), Method::GET, "/api/collections", None).await,
            403,
            None,
        )
        .await;
    }
);

open_backends!(
    registration_validates_and_protects_roles,
    |app| async move {
        let register = |body: Value| {
            let app = &app;
            async move {
                app.client
                    .post(app.url("/api/auth/register"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let res = register(json!({"email": "eve@example.com", "password": "long enough password", "roles": ["admin"]})).await;
        expect_problem(res, 400, Some("roles")).await;
        expect_problem(
            register(json!({"email": "not-an-email", "password": "long enough password"})).await,
            400,
            Some("email"),
        )
        .await;
        expect_problem(
            register(json!({"email": "eve@example.com", "password": "short"})).await,
            400,
            Some("password"),
        )
        .await;
        let created = expect_json(register(json!({"email": "Eve@Example.com", "password": "long enough password", "name": "Eve"})).await, 201).await;
        assert_eq!(created["user"]["email"], "eve@example.com");
        assert_eq!(created["user"]["profile"]["name"], "Eve");
        assert!(created["user"].get("password_hash").is_none());
        expect_problem(
            register(json!({"email": "eve@example.com", "password": "long enough password"})).await,
            409,
            None,
        )
        .await;
    }
);

both_backends!(registration_is_closed_by_default, |app| async move {
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"email": "eve@example.com", "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 403, None).await;
});

both_backends!(role_rules_match_any_role_of_the_caller, |app| async move {
    use reqwest::Method;
    app.must_create_collection(json!({
        "name": "drafts",
        "fields": [{"name": "title", "type": "text"}],
        "rules": {"list": "@request.auth.roles = 'editor'", "view": "@request.auth.roles = 'editor'",
                  "create": "@request.auth.roles ~ 'edit' && @request.auth.roles != 'banned'",
                  "update": null, "delete": null}
    }))
    .await;
    let key = |roles: Value| {
        let app = &app;
        async move {
            let created = expect_json(
                app.post("/api/auth/keys", json!({"name": "k", "roles": roles}))
                    .await,
                201,
            )
            .await;
            created["key"].as_str().unwrap().to_string()
        }
    };
    let editor = key(json!(["reader", "editor"])).await;
    let reader = key(json!(["reader"])).await;
    let banned = key(json!(["editor", "banned"])).await;
    let body = Some(json!({"title": "t"}));
    expect_json(
        call(
            &app,
            Some(&editor),
            Method::POST,
            "/api/collections/drafts/records",
            body.clone(),
        )
        .await,
        201,
    )
    .await;
    expect_problem(
        call(
            &app,
            Some(&reader),
            Method::POST,
            "/api/collections/drafts/records",
            body.clone(),
        )
        .await,
        403,
        None,
    )
    .await;
    expect_problem(
        call(
            &app,
            Some(&banned),
            Method::POST,
            "/api/collections/drafts/records",
            body,
        )
        .await,
        403,
        None,
    )
    .await;
    let seen = expect_json(
        call(
            &app,
            Some(&editor),
            Method::GET,
            "/api/collections/drafts/records",
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(seen["total_items"], 1);
    let hidden = expect_json(
        call(
            &app,
            Some(&reader),
            Method::GET,
            "/api/collections/drafts/records",
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(hidden["total_items"], 0);
});

open_backends!(superusers_grant_roles_that_rules_see, |app| async move {
    use reqwest::Method;
    app.must_create_collection(json!({
        "name": "drafts",
        "fields": [{"name": "title", "type": "text"}],
        "rules": {"list": "@request.auth.roles = 'editor'", "view": null, "create": "@request.auth.roles = 'editor'", "update": null, "delete": null}
    }))
    .await;
    let (uid, token) = user(&app, "ed@example.com").await;
    let body = Some(json!({"title": "t"}));
    expect_problem(
        call(
            &app,
            Some(&token),
            Method::POST,
            "/api/collections/drafts/records",
            body.clone(),
        )
        .await,
        403,
        None,
    )
    .await;
    // Users cannot grant themselves roles.
    let grant = Some(json!({"roles": ["editor"]}));
    expect_problem(
        call(
            &app,
            Some(&token),
            Method::PATCH,
            &format!("/api/users/{uid}"),
            grant.clone(),
        )
        .await,
        403,
        None,
    )
    .await;
    // A superuser can; the next login carries the role.
    let updated = expect_json(
        app.patch(&format!("/api/users/{uid}"), json!({"roles": ["editor"]}))
            .await,
        200,
    )
    .await;
    assert_eq!(updated["roles"], json!(["editor"]));
    let (_, token) = login_again(&app, "ed@example.com").await;
    expect_json(
        call(
            &app,
            Some(&token),
            Method::POST,
            "/api/collections/drafts/records",
            body,
        )
        .await,
        201,
    )
    .await;
    let users = expect_json(app.get("/api/users?per_page=10").await, 200).await;
    assert_eq!(users["total_items"], 2);
    // The last superuser keeps the admin role.
    let admin_id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["roles"] == json!(["admin"]))
        .unwrap()["id"]
        .clone();
    let res = app
        .patch(
            &format!("/api/users/{}", admin_id.as_str().unwrap()),
            json!({"roles": []}),
        )
        .await;
    expect_problem(res, 409, Some("roles")).await;
    expect_problem(
        app.patch(&format!("/api/users/{uid}"), json!({"roles": ["a b"]}))
            .await,
        400,
        Some("roles"),
    )
    .await;
    expect_problem(
        app.patch("/api/users/nobody", json!({"roles": []})).await,
        404,
        None,
    )
    .await;
});

/// Logs a registered user in: `(id, access token)`.
async fn login_again(app: &TestApp, email: &str) -> (String, String) {
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    let login = expect_json(res, 200).await;
    (
        login["user"]["id"].as_str().unwrap().to_string(),
        login["access_token"].as_str().unwrap().to_string(),
    )
}
