//! Rate limits: the strict per-IP budget on auth endpoints, the default budget per user or
//! per IP, 429 problem+json with `Retry-After`, and unlimited operations endpoints.

use serde_json::json;

use crate::helpers::{Backend, TestApp, expect_json, expect_problem, spawn_app_with_config};

async fn limited_app() -> TestApp {
    let settings =
        "[rate_limit]\ndefault = \"6/min\"\nauth = \"4/min\"\n[auth]\nallow_registration = true\n";
    spawn_app_with_config(Backend::Sqlite, settings)
        .await
        .expect("SQLite app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_endpoints_have_a_strict_per_ip_budget() {
    let app = limited_app().await; // the harness's own login used 1 of 4
    let register = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"email": "x@example.com", "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    expect_json(register, 201).await;
    let login = || async {
        app.client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "x@example.com", "password": "wrong password!"}))
            .send()
            .await
            .unwrap()
    };
    expect_problem(login().await, 401, None).await;
    expect_problem(login().await, 401, None).await;
    let res = login().await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_problem(res, 429, None).await;
    // Other routes have their own budget, and operations endpoints are never limited.
    for _ in 0..20 {
        assert_eq!(app.anon_get("/healthz").await.status(), 200);
    }
    expect_json(app.get("/api/collections").await, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_budget_is_per_user_or_per_ip() {
    let app = limited_app().await;
    // Anonymous requests share the IP's budget: 6, then 429.
    for _ in 0..6 {
        expect_problem(app.anon_get("/api/collections").await, 401, None).await;
    }
    expect_problem(app.anon_get("/api/collections").await, 429, None).await;
    // A signed-in user has a budget of their own (per user, not per IP)...
    let register = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&json!({"email": "u@example.com", "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    expect_json(register, 201).await;
    let login = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": "u@example.com", "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    let token = expect_json(login, 200).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let as_user = || async {
        app.client
            .get(app.url("/api/collections"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
    };
    for _ in 0..6 {
        expect_problem(as_user().await, 403, None).await;
    }
    expect_problem(as_user().await, 429, None).await;
    // ...and superusers, the operators, are not limited outside the auth endpoints.
    for _ in 0..20 {
        expect_json(app.get("/api/collections").await, 200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_several_instances_share_one_budget() {
    let Some(redis) = crate::helpers::redis::start() else {
        return;
    };
    // An hour-long window, so the test never straddles a window boundary.
    let settings = format!(
        "[rate_limit]\nauth = \"5/h\"\n[redis]\nurl = \"{}\"\n",
        redis.url
    );
    // Two processes (each with its own database) share the Redis counters; their own
    // harness logins use 2 of the 5 attempts.
    let a = spawn_app_with_config(Backend::Sqlite, &settings)
        .await
        .expect("app a");
    let b = spawn_app_with_config(Backend::Sqlite, &settings)
        .await
        .expect("app b");
    let attempt = |app: &TestApp| {
        app.client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "x@example.com", "password": "wrong password!"}))
            .send()
    };
    expect_problem(attempt(&a).await.unwrap(), 401, None).await;
    expect_problem(attempt(&b).await.unwrap(), 401, None).await;
    expect_problem(attempt(&a).await.unwrap(), 401, None).await;
    let res = attempt(&b).await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    expect_problem(res, 429, None).await;
    expect_problem(attempt(&a).await.unwrap(), 429, None).await;
    // Without its Redis the limiter lets requests through instead of failing them.
    drop(redis);
    expect_problem(attempt(&a).await.unwrap(), 401, None).await;
}
