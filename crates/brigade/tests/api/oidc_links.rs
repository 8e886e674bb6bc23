//! Account takeover through OpenID Connect, attempted against the fake provider of
//! [`crate::oidc`]: an identity claiming a superuser's (verified) email, a callback URL
//! planted in another browser, and a second identity claiming a linked account's email.

use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, Backend, expect_json, expect_problem};
use crate::oidc::{EMAIL, authorize_at_provider, login, me, setup};

macro_rules! on_both_stores {
    ($name:ident, |$app:ident, $provider:ident| async move $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some(($app, $provider)) = setup(Backend::Sqlite).await else {
                    return;
                };
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(($app, $provider)) = setup(Backend::Postgres).await else {
                    return;
                };
                $body
            }
        }
    };
}

on_both_stores!(
    a_superusers_email_at_a_provider_does_not_log_in_as_the_superuser,
    |app, provider| async move {
        // Anyone can register the superuser's address at some provider that vouches for it.
        provider.set(|c| c.email = ADMIN_EMAIL.to_uppercase());
        let problem = expect_problem(login(&app, &provider).await, 403, None).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("holds roles"),
            "{problem}"
        );
        // Neither does any other account holding roles.
        let res = app
            .client
            .post(app.url("/api/auth/register"))
            .json(&json!({"email": "editor@example.com", "password": "long enough password"}))
            .send()
            .await
            .unwrap();
        let editor = expect_json(res, 201).await;
        let id = editor["user"]["id"].as_str().unwrap();
        let res = app
            .patch(&format!("/api/users/{id}"), json!({"roles": ["editor"]}))
            .await;
        expect_json(res, 200).await;
        provider.set(|c| c.email = "editor@example.com".into());
        expect_problem(login(&app, &provider).await, 403, None).await;
        // A role-less account with a verified email is still linked, as before.
        provider.set(|c| c.email = EMAIL.into());
        let body = expect_json(login(&app, &provider).await, 200).await;
        assert_eq!(body["user"]["roles"], json!([]));
    }
);

on_both_stores!(
    an_identity_is_recognised_by_its_link_and_a_second_one_cannot_claim_the_account,
    |app, provider| async move {
        provider.set(|c| c.subject = Some("ada-subject".into()));
        let first = expect_json(login(&app, &provider).await, 200).await;
        // The provider changes the address it reports: still the same account, by `sub`.
        provider.set(|c| c.email = "ada.new@example.com".into());
        let again = expect_json(login(&app, &provider).await, 200).await;
        assert_eq!(again["user"]["id"], first["user"]["id"]);
        let user = me(&app, again["access_token"].as_str().unwrap()).await;
        assert_eq!(user["email"], EMAIL);
        // Another identity claiming the linked account's (verified) email is refused.
        provider.set(|c| {
            c.subject = Some("mallory-subject".into());
            c.email = EMAIL.into();
        });
        let problem = expect_problem(login(&app, &provider).await, 403, None).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("another"),
            "{problem}"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_from_another_browser_is_refused() {
    let Some((app, provider)) = setup(Backend::Sqlite).await else {
        return;
    };
    // The attacker logs in with their own account, stops before the callback and plants
    // the callback URL in the victim's browser (which may have a login of its own pending).
    let (attacker, planted) = authorize_at_provider(&app, &provider, "").await;
    let (victim, _own) = authorize_at_provider(&app, &provider, "").await;
    let fresh = crate::oidc::Browser::new();
    for browser in [&victim, &fresh] {
        let res = browser.get(planted.clone()).await;
        let problem = expect_problem(res, 400, Some("state")).await;
        assert!(
            problem["errors"]["state"]
                .as_str()
                .unwrap()
                .contains("browser"),
            "{problem}"
        );
    }
    // The refused attempts did not spend the login: its own browser can still finish it.
    expect_json(attacker.get(planted).await, 200).await;
}
