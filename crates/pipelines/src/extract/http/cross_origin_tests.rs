//! The extract's `headers` go only to the origin of its `url`: next pages that the upstream
//! puts on another origin (a `Link` header, a cursor that is a whole URL, an HTML `follow`
//! link, a redirect) are requested without them. Each test runs two real servers, the
//! configured one on 127.0.0.1 and a second one on 127.0.0.2 that records what it got.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus, Uri};
use axum::response::{Html as HtmlBody, IntoResponse, Redirect, Response};
use serde_json::json;

use super::run as run_http;
use crate::error::PipelineError;
use crate::extract::html::run as run_html;
use crate::extract::test_support::{Collected, collect, context, serve_on};

const TOKEN: &str = "s3cr3t-token-value";
const KEY: &str = "k3y-value-0123";

/// One request a server saw: path, authorization, x-api-key.
type Request = (String, Option<String>, Option<String>);

/// The credential headers a server saw, per request.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

impl Seen {
    fn record(&self, uri: &Uri, headers: &AxumHeaders) {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        self.0.lock().unwrap().push((
            uri.path().to_string(),
            get("authorization"),
            get("x-api-key"),
        ));
    }
    fn all(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
    /// Asserts every request carried the credentials.
    fn assert_all_credentialed(&self) {
        let all = self.all();
        assert!(!all.is_empty());
        for (path, auth, key) in all {
            assert_eq!(
                auth.as_deref(),
                Some(format!("Bearer {TOKEN}").as_str()),
                "{path}"
            );
            assert_eq!(key.as_deref(), Some(KEY), "{path}");
        }
    }
    /// Asserts no request carried any credential.
    fn assert_none_credentialed(&self) {
        for (path, auth, key) in self.all() {
            assert!(
                auth.is_none() && key.is_none(),
                "{path} got {auth:?} {key:?}"
            );
        }
    }
}

/// The other origin: records every request and answers `[{"p": "other"}]` (JSON), the
/// same under `data` at /next-page, a page of one item at /page.html, 401 at /private
/// without credentials, and 404 for robots.txt.
async fn other_origin(seen: Seen) -> String {
    let app = Router::new()
        .fallback(
            |State(seen): State<Seen>, uri: Uri, headers: AxumHeaders| async move {
                seen.record(&uri, &headers);
                match uri.path() {
                    "/robots.txt" => AxumStatus::NOT_FOUND.into_response(),
                    "/page.html" => {
                        HtmlBody("<html><body><li class=\"row\"><b>other</b></li></body></html>")
                            .into_response()
                    }
                    "/next-page" => {
                        axum::Json(json!({ "data": [{ "p": "other" }] })).into_response()
                    }
                    "/private" if headers.get("authorization").is_none() => {
                        (AxumStatus::UNAUTHORIZED, "who are you").into_response()
                    }
                    _ => axum::Json(json!([{"p": "other"}])).into_response(),
                }
            },
        )
        .with_state(seen);
    serve_on("127.0.0.2", app).await
}

async fn run_with(toml: &str, html: bool) -> Result<Collected, PipelineError> {
    let dir = std::env::temp_dir();
    let cx = context(toml, &dir, None, &[("TOKEN", TOKEN), ("KEY", KEY)]);
    if html {
        collect(cx, run_html).await
    } else {
        collect(cx, run_http).await
    }
}

fn credentials() -> &'static str {
    r#"headers = { Authorization = "Bearer ${TOKEN}", X-Api-Key = "${KEY}" }"#
}

#[tokio::test]
async fn link_header_to_another_origin_gets_no_credentials() {
    let other_seen = Seen::default();
    let other = other_origin(other_seen.clone()).await;
    let seen = Seen::default();
    let app = Router::new()
        .fallback(
            move |State(seen): State<Seen>, uri: Uri, headers: AxumHeaders| {
                let other = other.clone();
                async move {
                    seen.record(&uri, &headers);
                    let (p, link) = match uri.path() {
                        // Same origin first: it keeps the credentials.
                        "/v1/one" => ("one", "</v1/two>; rel=\"next\"".to_string()),
                        _ => ("two", format!("<{other}/v1/three>; rel=\"next\"")),
                    };
                    let mut response: Response = axum::Json(json!([{ "p": p }])).into_response();
                    response.headers_mut().insert("link", link.parse().unwrap());
                    response
                }
            },
        )
        .with_state(seen.clone());
    let base = serve_on("127.0.0.1", app).await;
    let got = run_with(
        &format!(
            "name = \"list\"\nfrom = \"http\"\nurl = \"{base}/v1/one\"\npaginate = {{ kind = \"link_header\" }}\n{}",
            credentials()
        ),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        got.column("p"),
        [json!("one"), json!("two"), json!("other")]
    );
    assert_eq!(seen.all().len(), 2);
    seen.assert_all_credentialed();
    assert_eq!(other_seen.all().len(), 1);
    other_seen.assert_none_credentialed();
}

#[tokio::test]
async fn a_cursor_that_is_a_url_on_another_origin_gets_no_credentials() {
    let other_seen = Seen::default();
    let other = other_origin(other_seen.clone()).await;
    let seen = Seen::default();
    let app = Router::new()
        .fallback(
            move |State(seen): State<Seen>, uri: Uri, headers: AxumHeaders| {
                let other = other.clone();
                async move {
                    seen.record(&uri, &headers);
                    axum::Json(json!({
                        "data": [{ "p": "first" }],
                        "next": format!("{other}/next-page?c=2"),
                    }))
                }
            },
        )
        .with_state(seen.clone());
    let base = serve_on("127.0.0.1", app).await;
    let got = run_with(
        &format!(
            "name = \"list\"\nfrom = \"http\"\nurl = \"{base}/items\"\nrecords = \"data\"\npaginate = {{ kind = \"cursor\", next = \"next\" }}\n{}",
            credentials()
        ),
        false,
    )
    .await
    .unwrap();
    assert_eq!(got.column("p"), [json!("first"), json!("other")]);
    seen.assert_all_credentialed();
    assert_eq!(other_seen.all().len(), 1, "{:?}", other_seen.all());
    other_seen.assert_none_credentialed();
}

#[tokio::test]
async fn an_html_follow_link_to_another_origin_gets_no_credentials() {
    let other_seen = Seen::default();
    let other = other_origin(other_seen.clone()).await;
    let seen = Seen::default();
    let app = Router::new()
        .fallback(
            move |State(seen): State<Seen>, uri: Uri, headers: AxumHeaders| {
                let other = other.clone();
                async move {
                    seen.record(&uri, &headers);
                    if uri.path() == "/robots.txt" {
                        return AxumStatus::NOT_FOUND.into_response();
                    }
                    HtmlBody(format!(
                        "<html><body><li class=\"row\"><b>first</b></li>\
                         <a class=\"next\" href=\"{other}/page.html\">next</a></body></html>"
                    ))
                    .into_response()
                }
            },
        )
        .with_state(seen.clone());
    let base = serve_on("127.0.0.1", app).await;
    let got = run_with(
        &format!(
            "name = \"pages\"\nfrom = \"html\"\nurl = \"{base}/list\"\nitem = \"li.row\"\nfields = {{ b = \"b\" }}\nfollow = \"a.next@href\"\ndelay_ms = 0\n{}",
            credentials()
        ),
        true,
    )
    .await
    .unwrap();
    assert_eq!(got.column("b"), [json!("first"), json!("other")]);
    seen.assert_all_credentialed();
    // robots.txt and the page.
    assert_eq!(other_seen.all().len(), 2, "{:?}", other_seen.all());
    other_seen.assert_none_credentialed();
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed_with_credentials() {
    let other_seen = Seen::default();
    let other = other_origin(other_seen.clone()).await;
    let app = Router::new().fallback(move || {
        let other = other.clone();
        async move { Redirect::temporary(&format!("{other}/moved")) }
    });
    let base = serve_on("127.0.0.1", app).await;
    let err = run_with(
        &format!(
            "name = \"list\"\nfrom = \"http\"\nurl = \"{base}/items\"\n{}",
            credentials()
        ),
        false,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("another origin"), "{err}");
    assert!(err.contains("redirect was not followed"), "{err}");
    assert!(other_seen.all().is_empty(), "{:?}", other_seen.all());

    // Without configured headers there is nothing to leak, and redirects are followed.
    let got = run_with(
        &format!("name = \"list\"\nfrom = \"http\"\nurl = \"{base}/items\""),
        false,
    )
    .await
    .unwrap();
    assert_eq!(got.column("p"), [json!("other")]);
    other_seen.assert_none_credentialed();
}

#[tokio::test]
async fn a_cross_origin_page_refusing_the_request_says_why() {
    let other_seen = Seen::default();
    let other = other_origin(other_seen.clone()).await;
    let app = Router::new().fallback(move || {
        let other = other.clone();
        async move {
            let mut response: Response = axum::Json(json!([{ "p": 1 }])).into_response();
            response.headers_mut().insert(
                "link",
                format!("<{other}/private>; rel=\"next\"").parse().unwrap(),
            );
            response
        }
    });
    let base = serve_on("127.0.0.1", app).await;
    let err = run_with(
        &format!(
            "name = \"list\"\nfrom = \"http\"\nurl = \"{base}/items\"\npaginate = {{ kind = \"link_header\" }}\n{}",
            credentials()
        ),
        false,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(
        err.contains(
            "requested without the extract's `headers`, which are sent only to http://127.0.0.1:"
        ),
        "{err}"
    );
    assert!(!err.contains(TOKEN) && !err.contains(KEY), "{err}");
    other_seen.assert_none_credentialed();
}
