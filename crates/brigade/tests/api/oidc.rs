//! OpenID Connect login against a fake provider that the test runs on loopback and that
//! speaks the real protocol: discovery, `/authorize` (approves at once and redirects back
//! with a code), `/token` (checks the grant, the redirect URI, the client and the PKCE
//! verifier against the S256 challenge) and `/jwks`, signing RS256 ID tokens with a fixed
//! test key. The test client does not follow redirects, so each hop of the browser's journey
//! is visible and can be tampered with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, expect_json, expect_problem, spawn_app_with_config};

const CLIENT_ID: &str = "brigade-test";
const KID: &str = "test-key";
pub(crate) const EMAIL: &str = "ada@example.com";

/// What the fake provider puts in its next ID tokens; tests change it to misbehave.
#[derive(Clone)]
pub(crate) struct Claims {
    pub(crate) email: String,
    /// `sub`; by default `fake|{email}`.
    pub(crate) subject: Option<String>,
    email_verified: Value,
    /// Sign with [`OTHER_KEY`] (under the published `kid`) instead of the provider's key.
    foreign_key: bool,
    nonce: Option<String>,
    audience: String,
}

impl Default for Claims {
    /// A well-behaved provider.
    fn default() -> Self {
        Claims {
            email: EMAIL.into(),
            subject: None,
            email_verified: json!(true),
            foreign_key: false,
            nonce: None,
            audience: CLIENT_ID.into(),
        }
    }
}

/// A change to the claims of the next ID tokens.
type Misbehaviour = fn(&mut Claims);

/// A code handed out by `/authorize`, waiting for `/token`.
struct Grant {
    redirect_uri: String,
    nonce: String,
    code_challenge: String,
}

pub(crate) struct Provider {
    issuer: String,
    claims: Mutex<Claims>,
    grants: Mutex<HashMap<String, Grant>>,
    key: EncodingKey,
    other_key: EncodingKey,
}

pub(crate) type Shared = Arc<Provider>;

/// Starts the fake provider on `127.0.0.1:0`.
async fn start_provider() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = Arc::new(Provider {
        issuer: format!("http://{}", listener.local_addr().unwrap()),
        claims: Mutex::new(Claims::default()),
        grants: Mutex::new(HashMap::new()),
        key: EncodingKey::from_rsa_pem(PROVIDER_KEY.as_bytes()).unwrap(),
        other_key: EncodingKey::from_rsa_pem(OTHER_KEY.as_bytes()).unwrap(),
    });
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .with_state(Arc::clone(&provider));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    provider
}

impl Provider {
    pub(crate) fn set(&self, change: impl FnOnce(&mut Claims)) {
        change(&mut self.claims.lock().unwrap());
    }
}

async fn discovery(State(p): State<Shared>) -> Json<Value> {
    let issuer = &p.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
    }))
}

fn bad_request(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

/// Approves at once: back to `redirect_uri` with a code and the state, remembering the nonce
/// and the PKCE challenge for `/token`.
async fn authorize(State(p): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let param = |k: &str| q.get(k).cloned().unwrap_or_default();
    let scopes: Vec<String> = param("scope").split(' ').map(str::to_string).collect();
    if param("response_type") != "code"
        || param("client_id") != CLIENT_ID
        || param("code_challenge_method") != "S256"
        || param("code_challenge").len() != 43
        || param("state").is_empty()
        || param("nonce").is_empty()
        || !scopes.iter().any(|s| s == "openid")
    {
        return bad_request("invalid_request");
    }
    let code = uuid::Uuid::new_v4().to_string();
    let mut back = Url::parse(&param("redirect_uri")).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &param("state"));
    p.grants.lock().unwrap().insert(
        code,
        Grant {
            redirect_uri: param("redirect_uri"),
            nonce: param("nonce"),
            code_challenge: param("code_challenge"),
        },
    );
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// Spends a code: grant type, redirect URI, client and PKCE verifier must all match.
async fn token(State(p): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let param = |k: &str| form.get(k).cloned().unwrap_or_default();
    if param("grant_type") != "authorization_code" {
        return bad_request("unsupported_grant_type");
    }
    if param("client_id") != CLIENT_ID || form.contains_key("client_secret") {
        return bad_request("invalid_client");
    }
    let Some(grant) = p.grants.lock().unwrap().remove(&param("code")) else {
        return bad_request("invalid_grant");
    };
    let verifier = param("code_verifier");
    if grant.redirect_uri != param("redirect_uri")
        || verifier.len() < 43
        || brigade_auth::oidc::pkce_challenge(&verifier) != grant.code_challenge
    {
        return bad_request("invalid_grant");
    }
    let claims = p.claims.lock().unwrap().clone();
    let now = jsonwebtoken::get_current_timestamp();
    let id_token = json!({
        "iss": p.issuer, "aud": claims.audience,
        "sub": claims.subject.unwrap_or_else(|| format!("fake|{}", claims.email)),
        "iat": now, "exp": now + 300, "nonce": claims.nonce.unwrap_or(grant.nonce),
        "email": claims.email, "email_verified": claims.email_verified, "name": "Ada Lovelace",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.into());
    let key = if claims.foreign_key {
        &p.other_key
    } else {
        &p.key
    };
    let id_token = jsonwebtoken::encode(&header, &id_token, key).unwrap();
    Json(json!({
        "access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

async fn jwks(State(p): State<Shared>) -> Json<JwkSet> {
    let mut jwk = Jwk::from_encoding_key(&p.key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(KID.into());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Json(JwkSet { keys: vec![jwk] })
}

/// An app whose `[auth.oidc.test]` is the fake provider (public client: PKCE only), plus a
/// `down` provider nobody listens for.
pub(crate) async fn setup(backend: Backend) -> Option<(TestApp, Shared)> {
    let provider = start_provider().await;
    let config = format!(
        "[auth]\nallow_registration = true\n\
         [auth.oidc.test]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
         [auth.oidc.down]\nissuer = \"http://127.0.0.1:1\"\nclient_id = \"x\"\n",
        provider.issuer
    );
    let app = spawn_app_with_config(backend, &config).await?;
    Some((app, provider))
}

/// Runs the test body on each listed backend with a fresh app and provider.
macro_rules! oidc_test {
    (
        $name:ident,
        [$($test:ident: $backend:ident),+],
        |$app:pat_param, $provider:pat_param| async move $body:block
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(($app, $provider)) = setup(Backend::$backend).await else {
                        return;
                    };
                    $body
                }
            )+
        }
    };
}

/// A browser that, unlike a real one, shows each redirect, and that keeps the one cookie
/// Brigade sets (the login's state) as a real one would.
pub(crate) struct Browser {
    client: reqwest::Client,
    cookie: Mutex<Option<String>>,
}

impl Browser {
    pub(crate) fn new() -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: Mutex::new(None),
        }
    }

    /// GET with the cookie, remembering any cookie set (an emptied one is forgotten).
    pub(crate) async fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::Response {
        let mut request = self.client.get(url);
        if let Some(cookie) = self.cookie.lock().unwrap().clone() {
            request = request.header(header::COOKIE, cookie);
        }
        let res = request.send().await.unwrap();
        if let Some(set) = res.headers().get(header::SET_COOKIE) {
            let pair = set
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_string();
            let kept = pair
                .split_once('=')
                .filter(|(_, v)| !v.is_empty())
                .map(|_| pair.clone());
            *self.cookie.lock().unwrap() = kept;
        }
        res
    }
}

/// A fresh browser, without cookies.
fn browser() -> Browser {
    Browser::new()
}

fn location(res: &reqwest::Response) -> Url {
    assert_eq!(res.status(), 302, "expected a redirect from {}", res.url());
    let to = res.headers()[header::LOCATION.as_str()].to_str().unwrap();
    Url::parse(to).unwrap()
}

/// The browser's journey up to the callback: Brigade → provider → back. Returns the browser
/// and the callback URL, not yet visited.
pub(crate) async fn authorize_at_provider(
    app: &TestApp,
    provider: &Provider,
    query: &str,
) -> (Browser, Url) {
    let client = browser();
    let res = client
        .get(app.url(&format!("/api/auth/oidc/test{query}")))
        .await;
    let cookie = res.headers()[header::SET_COOKIE.as_str()].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let to_provider = location(&res);
    assert!(
        to_provider
            .as_str()
            .starts_with(&format!("{}/authorize?", provider.issuer)),
        "{to_provider}"
    );
    let params: HashMap<_, _> = to_provider.query_pairs().into_owned().collect();
    assert_eq!(
        params["redirect_uri"],
        app.url("/api/auth/oidc/test/callback")
    );
    assert_eq!(params["scope"], "openid email profile");
    assert!(!params.contains_key("client_secret"));
    let res = client.get(to_provider).await;
    let back = location(&res);
    assert!(
        back.as_str()
            .starts_with(&app.url("/api/auth/oidc/test/callback?")),
        "{back}"
    );
    (client, back)
}

/// The whole login in one browser; returns the callback's answer.
pub(crate) async fn login(app: &TestApp, provider: &Provider) -> reqwest::Response {
    let (browser, callback) = authorize_at_provider(app, provider, "").await;
    browser.get(callback).await
}

/// The callback URL with its `state` replaced.
fn with_state(callback: &Url, state: &str) -> Url {
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, state.into())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut url = callback.clone();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url
}

pub(crate) async fn me(app: &TestApp, access_token: &str) -> Value {
    let res = app
        .client
        .get(app.url("/api/auth/me"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await
}

oidc_test!(
    login_creates_a_user_and_a_second_login_links_to_it,
    [sqlite: Sqlite, postgres: Postgres],
    |app, provider| async move {
        let first = expect_json(login(&app, &provider).await, 200).await;
        assert_eq!(first["token_type"], "Bearer", "{first}");
        assert!(first["expires_in"].as_u64().is_some_and(|s| s > 0), "{first}");
        assert!(first["refresh_token"].as_str().is_some_and(|t| t.starts_with("brt_")));
        assert_eq!(first["user"]["email"], EMAIL);
        assert_eq!(first["user"]["roles"], json!([]));
        let user = me(&app, first["access_token"].as_str().unwrap()).await;
        assert_eq!(user["id"], first["user"]["id"]);
        assert_eq!(user["profile"]["name"], "Ada Lovelace");

        let second = expect_json(login(&app, &provider).await, 200).await;
        assert_eq!(second["user"]["id"], first["user"]["id"]);
        assert_ne!(second["refresh_token"], first["refresh_token"]);
        let res = app
            .client
            .post(app.url("/api/auth/refresh"))
            .json(&json!({"refresh_token": second["refresh_token"]}))
            .send()
            .await
            .unwrap();
        expect_json(res, 200).await;

        // The account has no password: nothing, not even the marker, logs in with one.
        for password in ["!oidc", ""] {
            let res = app
                .client
                .post(app.url("/api/auth/login"))
                .json(&json!({"email": EMAIL, "password": password}))
                .send()
                .await
                .unwrap();
            expect_problem(res, 401, None).await;
        }
        let url = app.url_with("/api/audit", &[("filter", "action = 'auth.oidc_login'")]);
        for _ in 0..100 {
            let res = app.client.get(url.clone()).bearer_auth(&app.token).send();
            let page = expect_json(res.await.unwrap(), 200).await;
            if page["items"].as_array().is_some_and(|items| items.len() == 2) {
                assert_eq!(page["items"][0]["actor"], EMAIL);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no auth.oidc_login audit entries");
    }
);

oidc_test!(
    an_existing_password_account_is_linked_by_verified_email,
    [sqlite: Sqlite, postgres: Postgres],
    |app, provider| async move {
        let res = app
            .client
            .post(app.url("/api/auth/register"))
            .json(&json!({"email": "Ada@Example.com", "password": "long enough password"}))
            .send()
            .await
            .unwrap();
        let registered = expect_json(res, 201).await;
        provider.set(|c| c.email = "ADA@example.com".into());
        let body = expect_json(login(&app, &provider).await, 200).await;
        assert_eq!(body["user"]["id"], registered["user"]["id"]);
        // The password still works too.
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": EMAIL, "password": "long enough password"}))
            .send()
            .await
            .unwrap();
        expect_json(res, 200).await;
    }
);

oidc_test!(
    a_state_is_single_use_and_cannot_be_forged,
    [sqlite: Sqlite, postgres: Postgres],
    |app, provider| async move {
        let (browser, callback) = authorize_at_provider(&app, &provider, "").await;
        let state = callback
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        for forged in [format!("{state}x"), String::new(), "x".repeat(600)] {
            let res = browser.get(with_state(&callback, &forged)).await;
            expect_problem(res, 400, Some("state")).await;
        }
        let mut no_state = callback.clone();
        no_state.query_pairs_mut().clear().append_pair("code", "c");
        expect_problem(browser.get(no_state).await, 400, Some("state")).await;
        // The forgeries did not spend the real state; replaying it after use is refused.
        expect_json(browser.get(callback.clone()).await, 200).await;
        let res = browser.get(callback).await;
        expect_problem(res, 400, Some("state")).await;
    }
);

oidc_test!(
    an_unverified_email_is_forbidden,
    [sqlite: Sqlite],
    |app, provider| async move {
        provider.set(|c| c.email_verified = json!(false));
        let problem = expect_problem(login(&app, &provider).await, 403, None).await;
        assert!(problem["detail"].as_str().unwrap().contains("email_verified"), "{problem}");
        provider.set(|c| c.email_verified = Value::Null);
        expect_problem(login(&app, &provider).await, 403, None).await;
        // Nothing was created; some providers send the string "true", which counts.
        provider.set(|c| c.email_verified = json!("true"));
        expect_json(login(&app, &provider).await, 200).await;
    }
);

oidc_test!(
    id_tokens_that_fail_verification_are_401,
    [sqlite: Sqlite],
    |app, provider| async move {
        let cases: [(&str, Misbehaviour); 3] = [
            ("signature", |c| c.foreign_key = true),
            ("nonce", |c| c.nonce = Some("someone else's nonce".into())),
            ("audience", |c| c.audience = "another-client".into()),
        ];
        for (what, change) in cases {
            provider.set(change);
            let problem = expect_problem(login(&app, &provider).await, 401, None).await;
            assert!(problem["detail"].as_str().unwrap().contains("ID token"), "{what}: {problem}");
            provider.set(|c| *c = Claims::default());
        }
        expect_json(login(&app, &provider).await, 200).await;
    }
);

oidc_test!(
    a_code_the_provider_refuses_is_401,
    [sqlite: Sqlite],
    |app, provider| async move {
        let (browser, callback) = authorize_at_provider(&app, &provider, "").await;
        // The provider forgets the code (as after a timeout or a replay).
        provider.grants.lock().unwrap().clear();
        let res = browser.get(callback).await;
        let problem = expect_problem(res, 401, None).await;
        assert!(problem["detail"].as_str().unwrap().contains("invalid_grant"), "{problem}");
        // A user who declines at the provider comes back with `error`.
        let (browser, callback) = authorize_at_provider(&app, &provider, "").await;
        let mut declined = callback.clone();
        declined.query_pairs_mut().append_pair("error", "access_denied");
        expect_problem(browser.get(declined).await, 401, None).await;
    }
);

oidc_test!(
    unknown_and_unreachable_providers,
    [sqlite: Sqlite],
    |app, _provider| async move {
        for path in ["/api/auth/oidc/nope", "/api/auth/oidc/nope/callback?code=c&state=s"] {
            expect_problem(browser().get(app.url(path)).await, 404, None).await;
        }
        let res = browser().get(app.url("/api/auth/oidc/down")).await;
        expect_problem(res, 502, None).await;
    }
);

oidc_test!(
    redirect_to_stays_on_this_site,
    [sqlite: Sqlite],
    |app, provider| async move {
        for evil in ["https://evil.example", "//evil.example", "/\\evil.example", "evil"] {
            let url = app.url_with("/api/auth/oidc/test", &[("redirect_to", evil)]);
            let res = browser().get(url).await;
            expect_problem(res, 400, Some("redirect_to")).await;
        }
        let query = "?redirect_to=%2Fapp%2Fhome%3Ftab%3D1";
        let (browser, callback) = authorize_at_provider(&app, &provider, query).await;
        let body = expect_json(browser.get(callback).await, 200).await;
        assert_eq!(body["redirect_to"], "/app/home?tab=1");
    }
);

/// The provider's signing key (generated once with `openssl genrsa 2048`; test-only).
const PROVIDER_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7bYaNDeiqi2b/
UiV/NY03IbZ0WFugkbzFpWb7u4TdLiPqRlgzapqK9k8rxpVVnAJ2VY7V+MRjVvvJ
u06/k6rL16cuZc204WBzZW925LVuef1F8kejLWcn0QGh8hV2ANTBZsYm+VYo3xOU
6CcByZzMqbOCR3yQfNTVJ1D6H9TaGQtbN4BB4chQ5+Gz4CM+6mntJKp6w9y+OEzv
n9rCvOtok4PXXwzMJN2wOx+/2+KonYmexmJuWJMS6+mBUyb+3FfBaNrm6+u2tEwQ
3AM7CGvVwc1i5KWjs4XpXsl0xkC6A915agNozMhZikVgE8+cshBnyjD6efhDwJfL
jx+ocPHRAgMBAAECggEAA9xISZK8JHohVZg1r0J1PYnXWhthTMP/s0L6RWxZ+tvK
z9Yh1jJHi13yKMTK+ePQHauauO/KLMEjh8bQwwupuI/hMMiWRXfgbpQL6RMiJQvE
cprATL1ASw7IJbOoq0DuYOrq4S3gz0/z9WzYM9ZZIVKMAN6T016M3DSWe4ZpEhJp
o39SLk76e1ZYAij+oo6cWwy5fLVW7gDMq201YksAWVoFsv8uweE/7mh0eLAI/2Gh
jVNdDaPZa8fuwG9S2a+EQW/mCI+c+KE/m84YdD7R7W2TCUyeqjGFeK516T8m4svI
c4zjVGzqlZB9idJPaiNAe3CvUNcsq5O2mAGcJq+cAQKBgQD41Szn3Ftag1HR/wDr
HMa/YKvjfw7LL6nF9UwfX0r7LsGLVlofuoWd5mL5SJZPmCs6eWqSgjLXHPwDCDfy
7EfibUlxhzqRe98nAakV93k0oGxnDKRVoApw8P5k2Gy+ABINtqAfuuCuf/iFCVhS
j7R7cYHPpQwkZtYg0o97iZ/X0QKBgQDA05E8Fb+NcB+Jk+uPvZRngHAL6LROuWWy
Vyilmjo57oHb3Rd2mT3++GaM/ZaQ7D82PT8ahjTxG7p2A4K+fVRAC+i0OJLugvOh
+rO4HyqTNheCqmzKqBjAung5PK80vmqqK9YSv0ynPEpOU0zO6sZrUl9HaxkZxXgZ
Su9ZV9/6AQKBgDPyvUdCl8fTtpcyt4xeG5gEpJ3//qSotLbhOR0rlcnOvxVJ19Lb
691FJdCJOOgxCoVQp9EiYV7LbEltw9BxR6ibzENpSe7pf3LzQ8uUOLel7jutRfmi
Scu+ZD3FeR5JgXtfbxpwt0t25/lONCQ4YCONVN52xIws8/MyQkY2OyqhAoGAZuiC
ei6hLDrKmgH3lZ73tMU3ByQKFnmbbLJXXwoQSRqg81XrT8A49fpbwKMV2AI9OhU1
uFInrwW9XX5CKKd6bzPr3ULUJ7Z7j9bcU0dO0YHsyi9qID3V+AWMY/+fAecdxfPf
K+IsZpQmk+ag900U1/H+J39gxgA9OEJluqjLQAECgYEAm3qCtb2gDm+fNAfkGAfo
onfiOfdjlVvmt/cECzHtS3BO32TReAsVNptGYidDE9BF/PRPH8lPMu03mqXEzgJK
JmHY/NrMcs53CCgDL2Km2VlUyUbkIuYxQw7ABpZBeodYjHr/0j7Dg1BfYFctoQvI
K24xRDpZmXw9wvcyYBhmp7s=
-----END PRIVATE KEY-----
";

/// Another key, whose signatures the provider's JWKS does not vouch for.
const OTHER_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCPnoRFMCMPdMrb
WpGiPYocgn9IdlqnL5esfWZUqMOpK7yKxNdwSyXT5BMvZRjpRAw8I0maJcxz/2Q8
sz5LgzYtxuxQxWSTSWqaVP3tbOXLLYQgmsRBO+3uArA0I3DwquV5cwt93+QYYbnf
4UxsnVPpetPQPt7UeYqPxwQOEaP+9aYD+tQmk7COMUx3ywYvMhbGb8Qg4wDUSi03
3dPSi6ctCDSPvBNTqXLdtbHkUn55RwQBaJwahjQxPdbIhwaJ56703QHya5yelOOq
kEv1V1cmZCESbbzExKGPlH4qh6z9vZAwuVKIrjOjYm1TGSy1/rc4+darWv3B0XnW
vtzlpYdBAgMBAAECggEADhqCYYtlNgRbIDvLQQQLRw3abNKqlLzYus8JuIoy9+Ip
C47Im7XVfiYDBRl7Ei7LhzBT7wS21We6f53k7sqkDGf6sI5IRSp/HHuSM1M8i1cd
IL9YdhHp8jPM+yHFdCAXYg88Wd0duJAIQWyni6POwYcW7xFT4pVMJR7L6CT7vNko
mZcn/ryGT6rRe+3x+XSDrVXCZMOiAWIxDmHBkMeFZTRtFgyJ7aU8i7K3sUAiL5pM
9pGyaVKwxkejTZgx6ypum/jFK6l9VpzGwqhEbvJAikU5Ofc4bk9oOCELSiAG17cQ
dejyEuqjXJyIfBy1pbkT0rZ17Dcn+GyUGCRa163RDQKBgQDKkMiqYJ4TPu5m1e7K
IID8mWluqaLTK0yf46ktiKIKjHNTPk/mJPSh+y13aidAt3K2YmiA29IbGL/4u9vr
tV0zVkxvWUzxSheYoOMkfIMqRxCJ3kvHYJc79p4gbaCnHEbH942Gnf6CnAWoiIhI
XST1KWk5I2Qq9/ughT+jgKFMSwKBgQC1gRiQHflsXBipxvSjT9HnzLjThhQlWJGD
ypU/ULgQ5FJgY2Seou36AGL5I9W10OznKNGv1kJ5RVgil8AeZVdIRDkQgCUlH+o4
jEHAWCTrj5Duf/BQ/mKdL2PvvxPekSQaAcLCv+GZ6Hmw6qif9dbnd8tlqiFAKVG8
NFJ7q6arIwKBgQCcD3253eQLWdGcQrfM28vkUGEtE95RKKvJB0GgxgJpdBmpiXlP
Cyu52+UEejExp+Pl5d0zYaf2nlPQUxM0/q6GTbdnlfo0b2vMeC9nPdJj8Qop3ayu
N5lsZi0fOLar6JoTl4JeszyQ7ZliZYXxkmlVxAjAL6cNf65J1j7YPdKHDwKBgGe6
hZ0nZDpnT7kHeRw0K9P7jc1lHPJS8aaOCkmLCgatVd68Lu7yUmrD+cxEjIhCBIH/
NAb3vjmsRbhPXX6BkCY+xxYFBjV3TdZPYexY85CkFcIX3/GJ0DXgtY54dxSFgkpS
o0nFe1sIHzPah9ATIWRbdCR/3Ezc0Fds147SBIhdAoGBALAnfys8bruCNxhPir0d
WrnUnCyJoPDAtDMxuECS3DmSb/k6frWoa7S380lpmu/Q56M5X5mSNljgBdHywYrU
qAWFqi8wFvKGU4tYYQW80yaHWi56eAe/mCxxFirMEhgnaxCwVPUFOIM627SvcESf
Ce5nYejTVrm9RqutR+E5rjxE
-----END PRIVATE KEY-----
";
