//! The user's own account: profile updates without role changes, password change (which
//! signs out other sessions), password reset by email with single-use tokens, and CORS.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, expect_json, expect_problem, spawn_app_with_config};

async fn app_with(settings: &str) -> TestApp {
    spawn_app_with_config(Backend::Sqlite, settings)
        .await
        .expect("SQLite app")
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    post(
        app,
        "/api/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

const OPEN: &str = "[auth]\nallow_registration = true\n[rate_limit]\nauth = \"100/min\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_edit_their_profile_but_not_their_roles() {
    let app = app_with(OPEN).await;
    let body = json!({"email": "u@example.com", "password": "long enough password", "name": "U"});
    expect_json(post(&app, "/api/auth/register", None, body).await, 201).await;
    let tokens = expect_json(
        login(&app, "u@example.com", "long enough password").await,
        200,
    )
    .await;
    let token = tokens["access_token"].as_str().unwrap();
    let patch = |body: Value| {
        app.client
            .patch(app.url("/api/auth/me"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let me = expect_json(
        patch(json!({"name": "Ursula", "team": "data"}))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["profile"], json!({"name": "Ursula", "team": "data"}));
    expect_problem(
        patch(json!({"roles": ["admin"]})).await.unwrap(),
        400,
        Some("roles"),
    )
    .await;
    let me = expect_json(
        app.client
            .get(app.url("/api/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["roles"], json!([]), "roles unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_needs_the_current_one_and_signs_out_other_sessions() {
    let app = app_with(OPEN).await;
    let body = json!({"email": "u@example.com", "password": "long enough password"});
    expect_json(post(&app, "/api/auth/register", None, body).await, 201).await;
    let session = expect_json(
        login(&app, "u@example.com", "long enough password").await,
        200,
    )
    .await;
    let token = session["access_token"].as_str().unwrap();
    let wrong =
        json!({"current_password": "not it at all", "new_password": "an even longer password"});
    expect_problem(
        post(&app, "/api/auth/password", Some(token), wrong).await,
        400,
        Some("current_password"),
    )
    .await;
    let weak = json!({"current_password": "long enough password", "new_password": "short"});
    expect_problem(
        post(&app, "/api/auth/password", Some(token), weak).await,
        400,
        Some("new_password"),
    )
    .await;
    let ok = json!({"current_password": "long enough password", "new_password": "an even longer password"});
    assert_eq!(
        post(&app, "/api/auth/password", Some(token), ok)
            .await
            .status(),
        204
    );
    expect_problem(
        login(&app, "u@example.com", "long enough password").await,
        401,
        None,
    )
    .await;
    expect_json(
        login(&app, "u@example.com", "an even longer password").await,
        200,
    )
    .await;
    let refresh = json!({"refresh_token": session["refresh_token"]});
    expect_problem(
        post(&app, "/api/auth/refresh", None, refresh).await,
        401,
        None,
    )
    .await;
}

/// The reset token from the newest email in the outbox, waiting for the email: the request
/// is answered before the email is written.
async fn token_from_outbox(app: &TestApp) -> String {
    let outbox = app.dir.path().join("data/outbox");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut mails: Vec<_> = loop {
        let mails: Vec<_> = std::fs::read_dir(&outbox)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if !mails.is_empty() {
            break mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no email in {}",
            outbox.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    mails.sort();
    let text = std::fs::read_to_string(mails.last().expect("an email")).unwrap();
    assert!(text.contains("To: u@example.com"), "{text}");
    text.split_whitespace()
        .find(|w| w.starts_with("brt_"))
        .expect("a token in the email")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_by_email_is_single_use_and_does_not_enumerate() {
    let app = app_with(OPEN).await;
    let body = json!({"email": "u@example.com", "password": "long enough password"});
    expect_json(post(&app, "/api/auth/register", None, body).await, 201).await;
    let session = expect_json(
        login(&app, "u@example.com", "long enough password").await,
        200,
    )
    .await;

    let known = expect_json(
        post(
            &app,
            "/api/auth/password-reset",
            None,
            json!({"email": "u@example.com"}),
        )
        .await,
        202,
    )
    .await;
    let unknown = expect_json(
        post(
            &app,
            "/api/auth/password-reset",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(known, unknown, "the answer does not reveal accounts");

    let token = token_from_outbox(&app).await;
    let confirm = |password: &str| json!({"token": token, "password": password});
    assert_eq!(
        post(
            &app,
            "/api/auth/password-reset/confirm",
            None,
            confirm("a brand new password")
        )
        .await
        .status(),
        204
    );
    expect_problem(
        post(
            &app,
            "/api/auth/password-reset/confirm",
            None,
            confirm("yet another password"),
        )
        .await,
        400,
        Some("token"),
    )
    .await;
    expect_json(
        login(&app, "u@example.com", "a brand new password").await,
        200,
    )
    .await;
    let refresh = json!({"refresh_token": session["refresh_token"]});
    expect_problem(
        post(&app, "/api/auth/refresh", None, refresh).await,
        401,
        None,
    )
    .await;
    let forged = json!({"token": "brt_00", "password": "a brand new password"});
    expect_problem(
        post(&app, "/api/auth/password-reset/confirm", None, forged).await,
        400,
        Some("token"),
    )
    .await;

    assert!(
        !app.logs().contains(&token),
        "reset tokens never reach the logs"
    );
    assert!(
        !app.logs().contains("a brand new password"),
        "passwords never reach the logs"
    );
    assert!(
        !app.logs()
            .contains(session["access_token"].as_str().unwrap()),
        "tokens never reach the logs"
    );
}

/// The link in the reset email opens a page that resets the password without any front end
/// of the app's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_link_opens_a_working_page() {
    let app = app_with(OPEN).await;
    let body = json!({"email": "u@example.com", "password": "long enough password"});
    expect_json(post(&app, "/api/auth/register", None, body).await, 201).await;
    expect_json(
        post(
            &app,
            "/api/auth/password-reset",
            None,
            json!({"email": "u@example.com"}),
        )
        .await,
        202,
    )
    .await;
    let token = token_from_outbox(&app).await;
    let outbox = app.dir.path().join("data/outbox");
    let mail = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains(&token))
        .unwrap();
    let link = mail
        .split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("/reset-password?token="))
        .expect("a link in the email");
    let path = &link[link.find("/reset-password").unwrap()..];

    let page = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\"") && html.contains(&token),
        "{html}"
    );

    // Markup in the token is escaped, never rendered.
    let hostile = app
        .client
        .get(app.url("/reset-password?token=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!hostile.contains("<script>"), "{hostile}");
    assert!(hostile.contains("&quot;&gt;&lt;script&gt;"), "{hostile}");

    let submit = |password: &'static str, confirm: &'static str| {
        let form = [
            ("token", token.as_str()),
            ("password", password),
            ("confirm", confirm),
        ];
        app.client
            .post(app.url("/reset-password"))
            .form(&form)
            .send()
    };
    let differ = submit("a brand new password", "another new password")
        .await
        .unwrap();
    assert_eq!(differ.status(), 400);
    assert!(differ.text().await.unwrap().contains("differ"));
    let short = submit("short", "short").await.unwrap();
    assert_eq!(short.status(), 400);
    let done = submit("a brand new password", "a brand new password")
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Password changed"));
    expect_json(
        login(&app, "u@example.com", "a brand new password").await,
        200,
    )
    .await;
    let again = submit("yet another password!", "yet another password!")
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_and_security_headers() {
    let app = app_with("[server]\ncors_origins = [\"https://app.example.com\"]\n").await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/collections"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
}
