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
