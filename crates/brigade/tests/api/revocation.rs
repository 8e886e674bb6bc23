//! Ending access: a demoted superuser's token stops working at once and cannot mint a
//! backdoor key; demotion revokes the keys the account made; keys have a maximum lifetime;
//! logout, password change, password reset and refresh-token reuse end existing access tokens
//! at once, on every process sharing the database; an email that looks like an API key label
//! is an ordinary user; one pending password reset per account.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, expect_json, expect_problem, spawn_app_with_config, write_file,
};

const PASSWORD: &str = "long enough password";
pub(crate) const CONFIG: &str = "[auth]\nallow_registration = true\napi_key_max_ttl = \"2d\"\n\
                      [rate_limit]\nauth = \"1000/min\"\n";

async fn open_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with_config(backend, CONFIG).await
}

/// Runs the body on SQLite and PostgreSQL apps with registration open and `api_key_max_ttl`
/// of two days.
macro_rules! open_backends {
    ($name:ident, |$app:pat_param| async move $body:block) => {
        on_both_stores!($name, crate::revocation::CONFIG, |$app| async move $body);
    };
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
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

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    call(app, Some(token), Method::GET, path, None).await
}

async fn post(app: &TestApp, token: Option<&str>, path: &str, body: Value) -> reqwest::Response {
    call(app, token, Method::POST, path, Some(body)).await
}

/// Logs in: the whole token response.
async fn login(app: &TestApp, email: &str) -> Value {
    let body = json!({"email": email, "password": PASSWORD});
    expect_json(post(app, None, "/api/auth/login", body).await, 200).await
}

/// Registers and logs in: `(id, token response)`.
async fn user(app: &TestApp, email: &str) -> (String, Value) {
    let body = json!({"email": email, "password": PASSWORD});
    let created = expect_json(post(app, None, "/api/auth/register", body).await, 201).await;
    let id = created["user"]["id"].as_str().unwrap().to_string();
    (id, login(app, email).await)
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

fn refresh_body(tokens: &Value) -> Value {
    json!({"refresh_token": tokens["refresh_token"]})
}

/// The reset emails to `to` in the outbox, oldest first, waiting until there are `n`.
async fn reset_tokens(app: &TestApp, to: &str, n: usize) -> Vec<String> {
    let outbox = app.dir.path().join("data/outbox");
    for _ in 0..200 {
        let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&outbox)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                let modified = e.metadata().ok()?.modified().ok()?;
                text.contains(&format!("To: {to}"))
                    .then_some((modified, text))
            })
            .collect();
        if mails.len() >= n {
            mails.sort();
            return mails
                .iter()
                .map(|(_, text)| {
                    text.split_whitespace()
                        .find(|w| w.starts_with("brt_"))
                        .expect("a token in the email")
                        .to_string()
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} reset emails to {to} arrived");
}

open_backends!(
    a_demoted_admin_is_refused_at_once_and_keeps_no_backdoor_key,
    |app| async move {
        let (a_id, _) = user(&app, "a@example.com").await;
        let grant = json!({"roles": ["admin"]});
        expect_json(app.patch(&format!("/api/users/{a_id}"), grant).await, 200).await;
        // A's token from after the grant carries `admin`; A makes keys while an admin.
        let a = login(&app, "a@example.com").await;
        let a_token = access(&a);
        let body = json!({"name": "a-admin", "roles": ["admin"]});
        let key = expect_json(post(&app, Some(a_token), "/api/auth/keys", body).await, 201).await;
        let admin_key = key["key"].as_str().unwrap().to_string();
        let body = json!({"name": "a-plain"});
        let key = expect_json(post(&app, Some(a_token), "/api/auth/keys", body).await, 201).await;
        let plain_key = key["key"].as_str().unwrap().to_string();
        expect_json(get(&app, &admin_key, "/api/collections").await, 200).await;

        // A superuser demotes A.
        let demote = json!({"roles": []});
        expect_json(app.patch(&format!("/api/users/{a_id}"), demote).await, 200).await;

        // A's old token is refused at once for admin routes…
        expect_problem(get(&app, a_token, "/api/collections").await, 401, None).await;
        expect_problem(get(&app, a_token, "/api/users").await, 401, None).await;
        // …cannot mint a key with `admin`…
        let body = json!({"name": "backdoor", "roles": ["admin"]});
        expect_problem(
            post(&app, Some(a_token), "/api/auth/keys", body.clone()).await,
            401,
            None,
        )
        .await;
        // …nor promote A again.
        let res = call(
            &app,
            Some(a_token),
            Method::PATCH,
            &format!("/api/users/{a_id}"),
            Some(json!({"roles": ["admin"]})),
        )
        .await;
        expect_problem(res, 401, None).await;

        // The keys A made while an admin were revoked with the demotion.
        expect_problem(get(&app, &admin_key, "/api/collections").await, 401, None).await;
        expect_problem(get(&app, &plain_key, "/api/auth/me").await, 401, None).await;
        let keys = expect_json(app.get("/api/auth/keys").await, 200).await;
        assert!(
            keys["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["created_by"] != a_id.as_str()),
            "{keys}"
        );

        // A's refreshed token carries A's roles now: no key with roles A does not hold.
        let again = expect_json(
            post(&app, None, "/api/auth/refresh", refresh_body(&a)).await,
            200,
        )
        .await;
        assert_eq!(again["user"]["roles"], json!([]));
        expect_problem(
            post(&app, Some(access(&again)), "/api/auth/keys", body).await,
            403,
            None,
        )
        .await;
        let me = expect_json(get(&app, access(&again), "/api/auth/me").await, 200).await;
        assert_eq!(me["roles"], json!([]));
    }
);

open_backends!(
    api_keys_live_at_most_the_configured_maximum,
    |app| async move {
        let day = chrono::Duration::days(1);
        // No expiry asked for: the maximum (two days here), not forever.
        let key = expect_json(app.post("/api/auth/keys", json!({"name": "k"})).await, 201).await;
        let expires = chrono::DateTime::parse_from_rfc3339(key["expires_at"].as_str().unwrap())
            .unwrap()
            .to_utc();
        let max = chrono::Utc::now() + day * 2;
        assert!(
            expires <= max && expires > max - chrono::Duration::minutes(1),
            "{key}"
        );
        // Longer than the maximum: refused, naming the setting.
        let late = (chrono::Utc::now() + day * 3).to_rfc3339();
        let res = app
            .post("/api/auth/keys", json!({"name": "k", "expires_at": late}))
            .await;
        let problem = expect_problem(res, 400, Some("expires_at")).await;
        assert!(problem.to_string().contains("api_key_max_ttl"), "{problem}");
        let null = json!({"name": "k", "expires_at": null});
        let key = expect_json(app.post("/api/auth/keys", null).await, 201).await;
        assert!(key["expires_at"].is_string(), "{key}");
        let soon = (chrono::Utc::now() + day).to_rfc3339();
        let key = app
            .post("/api/auth/keys", json!({"name": "k", "expires_at": soon}))
            .await;
        expect_json(key, 201).await;
    }
);

open_backends!(logout_ends_access_tokens_at_once, |app| async move {
    let (_, u) = user(&app, "u@example.com").await;
    expect_json(get(&app, access(&u), "/api/auth/me").await, 200).await;
    let res = post(&app, None, "/api/auth/logout", refresh_body(&u)).await;
    assert_eq!(res.status(), 204);
    expect_problem(get(&app, access(&u), "/api/auth/me").await, 401, None).await;
    // Logging in again works.
    let again = login(&app, "u@example.com").await;
    expect_json(get(&app, access(&again), "/api/auth/me").await, 200).await;
});

open_backends!(
    password_change_ends_access_tokens_at_once,
    |app| async move {
        let (_, u) = user(&app, "u@example.com").await;
        let other_session = login(&app, "u@example.com").await;
        let body = json!({"current_password": PASSWORD, "new_password": "an even longer password"});
        let res = post(&app, Some(access(&u)), "/api/auth/password", body).await;
        assert_eq!(res.status(), 204);
        for token in [access(&u), access(&other_session)] {
            expect_problem(get(&app, token, "/api/auth/me").await, 401, None).await;
        }
    }
);

open_backends!(
    password_reset_ends_access_tokens_at_once,
    |app| async move {
        let (_, u) = user(&app, "u@example.com").await;
        let body = json!({"email": "u@example.com"});
        expect_json(
            post(&app, None, "/api/auth/password-reset", body).await,
            202,
        )
        .await;
        let token = reset_tokens(&app, "u@example.com", 1).await.remove(0);
        let confirm = json!({"token": token, "password": "a brand new password"});
        let res = post(&app, None, "/api/auth/password-reset/confirm", confirm).await;
        assert_eq!(res.status(), 204);
        expect_problem(get(&app, access(&u), "/api/auth/me").await, 401, None).await;
    }
);

open_backends!(
    refresh_token_reuse_ends_access_tokens_at_once,
    |app| async move {
        let (_, first) = user(&app, "u@example.com").await;
        // The thief refreshes with a stolen token; the owner's later replay is detected.
        let stolen = expect_json(
            post(&app, None, "/api/auth/refresh", refresh_body(&first)).await,
            200,
        )
        .await;
        expect_json(get(&app, access(&stolen), "/api/auth/me").await, 200).await;
        expect_problem(
            post(&app, None, "/api/auth/refresh", refresh_body(&first)).await,
            401,
            None,
        )
        .await;
        for token in [access(&first), access(&stolen)] {
            expect_problem(get(&app, token, "/api/auth/me").await, 401, None).await;
        }
    }
);

open_backends!(
    an_email_that_looks_like_a_key_label_is_an_ordinary_user,
    |app| async move {
        app.must_create_collection(json!({
            "name": "mine",
            "fields": [{"name": "title", "type": "text"}],
            "rules": {"list": "@request.auth.email = 'apikey:svc@example.com'",
                      "view": null, "create": null, "update": null, "delete": null}
        }))
        .await;
        app.must_post_record("mine", json!({"title": "t"})).await;
        let (id, u) = user(&app, "apikey:svc@example.com").await;
        let token = access(&u);
        let me = expect_json(get(&app, token, "/api/auth/me").await, 200).await;
        assert_eq!(me["id"], id.as_str());
        let res = call(
            &app,
            Some(token),
            Method::PATCH,
            "/api/auth/me",
            Some(json!({"name": "Svc"})),
        )
        .await;
        expect_json(res, 200).await;
        // Rules see the user's email…
        let page = expect_json(get(&app, token, "/api/collections/mine/records").await, 200).await;
        assert_eq!(page["total_items"], 1, "{page}");
        // …and a key named like that user is not that user.
        let key = expect_json(
            app.post("/api/auth/keys", json!({"name": "svc@example.com"}))
                .await,
            201,
        )
        .await;
        let key = key["key"].as_str().unwrap();
        let page = expect_json(get(&app, key, "/api/collections/mine/records").await, 200).await;
        assert_eq!(page["total_items"], 0, "{page}");
        expect_problem(get(&app, key, "/api/auth/me").await, 403, None).await;
        // The user can change their password like anyone.
        let body = json!({"current_password": PASSWORD, "new_password": "an even longer password"});
        let res = post(&app, Some(token), "/api/auth/password", body).await;
        assert_eq!(res.status(), 204);
    }
);

open_backends!(only_the_newest_password_reset_works, |app| async move {
    user(&app, "u@example.com").await;
    let ask = || {
        post(
            &app,
            None,
            "/api/auth/password-reset",
            json!({"email": "u@example.com"}),
        )
    };
    let known = expect_json(ask().await, 202).await;
    let first = reset_tokens(&app, "u@example.com", 1).await.remove(0);
    expect_json(ask().await, 202).await;
    let tokens = reset_tokens(&app, "u@example.com", 2).await;
    let second = tokens.iter().find(|t| **t != first).unwrap().clone();
    let unknown = expect_json(
        post(
            &app,
            None,
            "/api/auth/password-reset",
            json!({"email": "nobody@example.com"}),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(known, unknown, "the answer does not reveal accounts");

    let confirm = |token: &str| json!({"token": token, "password": "a brand new password"});
    expect_problem(
        post(
            &app,
            None,
            "/api/auth/password-reset/confirm",
            confirm(&first),
        )
        .await,
        400,
        Some("token"),
    )
    .await;
    let res = post(
        &app,
        None,
        "/api/auth/password-reset/confirm",
        confirm(&second),
    )
    .await;
    assert_eq!(res.status(), 204);
});

/// Two servers on one PostgreSQL database: a token revoked through one is refused by the
/// other within about a second (each process trusts a version it read for at most 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_another_process_within_a_second() {
    let Some(first) = open_app(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("brigade-app-")
        .tempdir()
        .unwrap();
    write_file(dir.path(), "brigade.toml", CONFIG.as_bytes());
    let second = TestApp::start(dir, first.db_url.clone(), Backend::Postgres).await;
    let (_, u) = user(&first, "u@example.com").await;
    let token = access(&u);
    // The second process has seen the token as current.
    expect_json(get(&second, token, "/api/auth/me").await, 200).await;
    expect_json(get(&second, token, "/api/auth/me").await, 200).await;

    let res = post(&first, None, "/api/auth/logout", refresh_body(&u)).await;
    assert_eq!(res.status(), 204);
    let revoked = Instant::now();
    expect_problem(get(&first, token, "/api/auth/me").await, 401, None).await;
    loop {
        let status = get(&second, token, "/api/auth/me").await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked.elapsed() < Duration::from_millis(1800),
            "the other process still accepts the revoked token after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The maximum lifetime holds when a key is used, not only when it is made: a key made under
/// a longer maximum (or before there was one) stops working once it is older than the
/// maximum of the process it is used on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_older_than_the_maximum_stop_working() {
    let Some(first) = open_app(Backend::Postgres).await else {
        return;
    };
    let body = json!({"name": "old", "expires_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()});
    let key = expect_json(first.post("/api/auth/keys", body).await, 201).await;
    let key = key["key"].as_str().unwrap().to_string();
    let dir = tempfile::Builder::new()
        .prefix("brigade-app-")
        .tempdir()
        .unwrap();
    let strict = CONFIG.replace("api_key_max_ttl = \"2d\"", "api_key_max_ttl = \"1s\"");
    write_file(dir.path(), "brigade.toml", strict.as_bytes());
    let second = TestApp::start(dir, first.db_url.clone(), Backend::Postgres).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Known to the first process (a key has no account: 403), refused by the second (401).
    expect_problem(get(&first, &key, "/api/auth/me").await, 403, None).await;
    expect_problem(get(&second, &key, "/api/auth/me").await, 401, None).await;
}

/// A revoked superuser token is no superuser for the rate limiter either: before, the
/// signature and the `admin` role in it were enough to skip every limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_superuser_token_is_rate_limited_like_anyone() {
    let config = "[rate_limit]\ndefault = \"5/min\"\nauth = \"1000/min\"\n";
    let Some(app) = spawn_app_with_config(Backend::Sqlite, config).await else {
        return;
    };
    let session = expect_json(
        app.client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": crate::helpers::ADMIN_EMAIL, "password": crate::helpers::ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let token = access(&session).to_string();
    // Current: superusers are not limited.
    for _ in 0..8 {
        let res = get(&app, &token, "/api/collections").await;
        assert_eq!(res.status(), 200);
    }
    let res = post(
        &app,
        Some(&token),
        "/api/auth/logout",
        refresh_body(&session),
    )
    .await;
    assert!(res.status().is_success(), "logout: {}", res.status());
    // Revoked: 401, and past the default budget 429.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            get(&app, &token, "/api/collections")
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}
