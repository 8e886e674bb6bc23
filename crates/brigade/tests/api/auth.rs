//! Login, refresh-token rotation with reuse detection, logout, `/api/auth/me`, and token
//! handling on protected routes.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, expect_json, expect_problem};

async fn login(app: &crate::helpers::TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login request")
}

async fn post_anon(app: &crate::helpers::TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

both_backends!(login_returns_the_contract_shape, |app| async move {
    let body = expect_json(login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await, 200).await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(body["refresh_token"].as_str().is_some_and(|t| t.len() > 40));
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(body["user"]["roles"], json!(["admin"]));
    // Email is case-insensitive.
    let upper = ADMIN_EMAIL.to_uppercase();
    expect_json(login(&app, &upper, ADMIN_PASSWORD).await, 200).await;
});

both_backends!(
    wrong_credentials_are_401_without_enumeration,
    |app| async move {
        let wrong_pw = expect_problem(
            login(&app, ADMIN_EMAIL, "not-the-password").await,
            401,
            None,
        )
        .await;
        let no_user = expect_problem(
            login(&app, "nobody@example.com", "not-the-password").await,
            401,
            None,
        )
        .await;
        assert_eq!(
            wrong_pw["detail"], no_user["detail"],
            "same answer for unknown users"
        );
        let res = post_anon(&app, "/api/auth/login", json!({"email": ADMIN_EMAIL})).await;
        expect_problem(res, 400, None).await;
        assert!(
            !app.logs().contains(ADMIN_PASSWORD),
            "passwords never reach the logs"
        );
        assert!(
            !app.logs().contains("not-the-password"),
            "passwords never reach the logs"
        );
    }
);

both_backends!(
    refresh_rotates_and_reuse_revokes_the_family,
    |app| async move {
        let first = expect_json(login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await, 200).await;
        let r1 = first["refresh_token"].as_str().unwrap().to_string();
        let second = expect_json(
            post_anon(&app, "/api/auth/refresh", json!({"refresh_token": r1})).await,
            200,
        )
        .await;
        let r2 = second["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(r1, r2, "rotation issues a new token");
        let access = second["access_token"].as_str().unwrap();
        let me = app
            .client
            .get(app.url("/api/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(expect_json(me, 200).await["email"], ADMIN_EMAIL);

        // Replaying the rotated token fails and revokes the family, including r2.
        expect_problem(
            post_anon(&app, "/api/auth/refresh", json!({"refresh_token": r1})).await,
            401,
            None,
        )
        .await;
        expect_problem(
            post_anon(&app, "/api/auth/refresh", json!({"refresh_token": r2})).await,
            401,
            None,
        )
        .await;

        // Another login is a separate family and unaffected.
        let other = expect_json(login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await, 200).await;
        let r3 = other["refresh_token"].as_str().unwrap().to_string();
        expect_json(
            post_anon(&app, "/api/auth/refresh", json!({"refresh_token": r3})).await,
            200,
        )
        .await;
        expect_problem(
            post_anon(
                &app,
                "/api/auth/refresh",
                json!({"refresh_token": "brt_forged"}),
            )
            .await,
            401,
            None,
        )
        .await;
    }
);

both_backends!(logout_revokes_the_refresh_token, |app| async move {
    let body = expect_json(login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await, 200).await;
    let token = body["refresh_token"].as_str().unwrap().to_string();
    let res = post_anon(&app, "/api/auth/logout", json!({"refresh_token": token})).await;
    assert_eq!(res.status(), 204);
    expect_problem(
        post_anon(&app, "/api/auth/refresh", json!({"refresh_token": token})).await,
        401,
        None,
    )
    .await;
});

both_backends!(bad_tokens_are_401_and_query_token_works, |app| async move {
    for header in ["Bearer nope", "Basic abc", "Bearer ", "Token x"] {
        let res = app
            .client
            .get(app.url("/api/collections"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        expect_problem(res, 401, None).await;
    }
    // A token signed with another key, and alg=none.
    let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZW1haWwiOiJ4Iiwicm9sZXMiOlsiYWRtaW4iXSwiaWF0IjoxLCJleHAiOjQxMDI0NDQ4MDAsInR5cCI6ImFjY2VzcyJ9.";
    let res = app
        .client
        .get(app.url("/api/collections"))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, None).await;
    let res = app
        .client
        .get(app.url(&format!("/api/collections?token={}", app.token)))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    expect_problem(app.anon_get("/api/auth/me").await, 401, None).await;
});

both_backends!(
    api_keys_are_shown_once_usable_and_revocable,
    |app| async move {
        let res = app
            .post("/api/auth/keys", json!({"name": "etl", "roles": ["admin"]}))
            .await;
        let created = expect_json(res, 201).await;
        let key = created["key"].as_str().unwrap().to_string();
        let id = created["id"].as_str().unwrap().to_string();
        assert!(key.starts_with("bk_"));
        assert_eq!(created["roles"], json!(["admin"]));

        // Usable wherever a bearer token is; an admin key has admin rights.
        let res = app
            .client
            .get(app.url("/api/collections"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        expect_json(res, 200).await;

        // Listed without the secret, with last_used recorded.
        let mut last_used = Value::Null;
        for _ in 0..50 {
            let list = expect_json(app.get("/api/auth/keys").await, 200).await;
            let item = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["id"] == id.as_str())
                .cloned()
                .unwrap();
            assert!(item.get("key").is_none(), "the key is shown once: {item}");
            assert!(
                !item.to_string().contains(&key[3..]),
                "no secret material in listings"
            );
            last_used = item["last_used"].clone();
            if !last_used.is_null() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(last_used.is_string(), "last_used is tracked");

        // A key without admin role cannot manage keys or the schema.
        let plain = expect_json(
            app.post("/api/auth/keys", json!({"name": "reader"})).await,
            201,
        )
        .await;
        let plain_key = plain["key"].as_str().unwrap();
        let res = app
            .client
            .get(app.url("/api/collections"))
            .bearer_auth(plain_key)
            .send()
            .await
            .unwrap();
        expect_problem(res, 403, None).await;
        let res = app
            .client
            .post(app.url("/api/auth/keys"))
            .bearer_auth(plain_key)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        expect_problem(res, 403, None).await;

        // Revoked keys stop working at once.
        assert_eq!(
            app.delete(&format!("/api/auth/keys/{id}")).await.status(),
            204
        );
        let res = app
            .client
            .get(app.url("/api/collections"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        expect_problem(res, 401, None).await;
        expect_problem(app.delete(&format!("/api/auth/keys/{id}")).await, 404, None).await;
        let res = app
            .client
            .get(app.url("/api/collections"))
            .bearer_auth("bk_0000")
            .send()
            .await
            .unwrap();
        expect_problem(res, 401, None).await;
    }
);

both_backends!(api_key_input_and_expiry_are_checked, |app| async move {
    expect_problem(
        app.post("/api/auth/keys", json!({"roles": ["admin"]}))
            .await,
        400,
        Some("name"),
    )
    .await;
    expect_problem(
        app.post("/api/auth/keys", json!({"name": "x", "roles": ["a b"]}))
            .await,
        400,
        Some("roles"),
    )
    .await;
    let past = json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"});
    expect_problem(
        app.post("/api/auth/keys", past).await,
        400,
        Some("expires_at"),
    )
    .await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let created = expect_json(
        app.post(
            "/api/auth/keys",
            json!({"name": "short", "roles": ["admin"], "expires_at": soon}),
        )
        .await,
        201,
    )
    .await;
    let key = created["key"].as_str().unwrap();
    let res = app
        .client
        .get(app.url("/api/collections"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let res = app
        .client
        .get(app.url("/api/collections"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, None).await;
});
