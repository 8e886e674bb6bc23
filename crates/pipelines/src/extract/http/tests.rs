//! Tests of the HTTP extractor against real local servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::*;
use crate::extract::test_support::{collect, context, serve};

type Params = Query<std::collections::HashMap<String, String>>;

#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn param(q: &Params, name: &str) -> Option<i64> {
    q.get(name).and_then(|v| v.parse().ok())
}

async fn run_toml(toml: &str) -> Result<crate::extract::test_support::Collected, PipelineError> {
    run_env(toml, None, &[]).await
}

async fn run_env(
    toml: &str,
    since: Option<Json>,
    env: &[(&str, &str)],
) -> Result<crate::extract::test_support::Collected, PipelineError> {
    let dir = std::env::temp_dir();
    collect(context(toml, &dir, since, env), run).await
}

#[tokio::test]
async fn page_pagination_stops_at_an_empty_page() {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/rates",
            get(|State(h): State<Hits>, q: Params| async move {
                h.next();
                let page = param(&q, "page").unwrap_or(0);
                let data: Vec<Json> = if (1..=3).contains(&page) {
                    (0..2)
                        .map(|i| json!({"id": page * 10 + i, "meta": {"page": page}}))
                        .collect()
                } else {
                    vec![]
                };
                axum::Json(json!({"data": data}))
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let got = run_toml(&format!(
        r#"name = "rates"
from = "http"
url = "{base}/rates?page={{page}}"
records = "data"
paginate = {{ kind = "page" }}"#
    ))
    .await
    .unwrap();
    assert_eq!(
        got.column("id"),
        [
            json!(10),
            json!(11),
            json!(20),
            json!(21),
            json!(30),
            json!(31)
        ]
    );
    assert_eq!(got.column("meta_page")[5], json!(3));
    assert_eq!(hits.count(), 4, "pages 1..3 and the empty page 4");
    assert_eq!(got.sources[0], format!("{base}/rates?page=1"));
    assert_eq!(got.sources[5], format!("{base}/rates?page=3"));
    assert_eq!(got.done, Some(None));
}

#[tokio::test]
async fn rows_keep_their_page_url_across_the_type_sample() {
    // 3 pages of 300: the Shaper's 500-record sample ends inside page 2.
    let app = Router::new().route(
        "/big",
        get(|q: Params| async move {
            let page = param(&q, "page").unwrap_or(0);
            let data: Vec<Json> = if (1..=3).contains(&page) {
                (0..300)
                    .map(|i| {
                        let id = (page - 1) * 300 + i;
                        let v = if id % 97 == 0 { json!("x") } else { json!(id) };
                        json!({"id": id, "v": v})
                    })
                    .collect()
            } else {
                vec![]
            };
            axum::Json(json!({"data": data}))
        }),
    );
    let base = serve(app).await;
    let got = run_env(
        &format!(
            r#"name = "big"
from = "http"
url = "{base}/big?page={{page}}"
records = "data"
paginate = {{ kind = "page" }}
incremental = {{ cursor = "id" }}
columns = {{ v = "integer" }}
on_bad_row = "quarantine""#
        ),
        Some(json!(100)),
        &[],
    )
    .await
    .unwrap();
    let ids = got.column("id");
    let expected: Vec<Json> = (101..900)
        .filter(|i| i % 97 != 0)
        .map(|i| json!(i))
        .collect();
    assert_eq!(ids, expected);
    for (id, source) in ids.iter().zip(&got.sources) {
        let page = id.as_i64().unwrap() / 300 + 1;
        assert_eq!(*source, format!("{base}/big?page={page}"), "row {id}");
    }
    let rejected: Vec<u64> = got.rejected.iter().map(|r| r.line).collect();
    assert_eq!(
        rejected,
        (0..900)
            .filter(|i| i % 97 == 0)
            .map(|i| i + 1)
            .collect::<Vec<u64>>()
    );
    assert_eq!(got.done, Some(Some(json!(899))));
}

#[tokio::test]
async fn offset_pagination_stops_at_a_short_page() {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/items",
            get(|State(h): State<Hits>, q: Params| async move {
                h.next();
                let offset = param(&q, "offset").unwrap_or(-1);
                let limit = param(&q, "limit").unwrap_or(-1);
                let items: Vec<Json> = (offset..(offset + limit).min(5))
                    .map(|i| json!({"n": i}))
                    .collect();
                axum::Json(json!({"result": {"items": items}}))
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let got = run_toml(&format!(
        r#"name = "items"
from = "http"
url = "{base}/items?offset={{offset}}&limit={{limit}}"
records = "result.items"
paginate = {{ kind = "offset", size = 2 }}"#
    ))
    .await
    .unwrap();
    assert_eq!(
        got.column("n"),
        [json!(0), json!(1), json!(2), json!(3), json!(4)]
    );
    assert_eq!(hits.count(), 3, "offsets 0, 2 and 4 (short)");
}

#[tokio::test]
async fn cursor_pagination_with_and_without_placeholder() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let app = Router::new()
        .route(
            "/events",
            get(
                |State(seen): State<Arc<std::sync::Mutex<Vec<String>>>>, q: Params| async move {
                    let cursor = q.get("cursor").cloned();
                    seen.lock().unwrap().push(format!("{cursor:?}"));
                    let (items, next) = match cursor.as_deref() {
                        None | Some("") => (json!([{"id": 1}, {"id": 2}]), json!("a b/c")),
                        Some("a b/c") => (json!([{"id": 3}]), json!(7)),
                        Some("7") => (json!([{"id": 4}]), json!(null)),
                        Some(_) => (json!([]), json!("unexpected")),
                    };
                    axum::Json(json!({"items": items, "meta": {"next": next}}))
                },
            ),
        )
        .with_state(seen.clone());
    let base = serve(app).await;
    for url in [
        format!("{base}/events?cursor={{cursor}}"),
        format!("{base}/events"),
    ] {
        seen.lock().unwrap().clear();
        let got = run_toml(&format!(
            r#"name = "events"
from = "http"
url = "{url}"
records = "items"
paginate = {{ kind = "cursor", next = "meta.next" }}"#
        ))
        .await
        .unwrap();
        assert_eq!(
            got.column("id"),
            [json!(1), json!(2), json!(3), json!(4)],
            "{url}"
        );
        let first = if url.contains("{cursor}") {
            "Some(\"\")"
        } else {
            "None"
        };
        assert_eq!(
            *seen.lock().unwrap(),
            [first, "Some(\"a b/c\")", "Some(\"7\")"],
            "{url}"
        );
    }
}

#[tokio::test]
async fn link_header_pagination_resolves_relative_links() {
    let app = Router::new().route(
        "/v1/list",
        get(|q: Params, headers: AxumHeaders| async move {
            let p = param(&q, "p").unwrap_or(1);
            let host = headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let mut response = axum::Json(json!([{"p": p}])).into_response();
            let link = match p {
                1 => Some("<list?p=2>; rel=\"next\", <list?p=3>; rel=\"last\"".to_string()),
                2 => Some(format!(
                    "<http://{host}/v1/list?p=1>; rel=\"prev first\", <http://{host}/v1/list?p=3>; rel=\"next\""
                )),
                _ => None,
            };
            if let Some(link) = link {
                response
                    .headers_mut()
                    .insert("link", link.parse().unwrap());
            }
            response
        }),
    );
    let base = serve(app).await;
    let got = run_toml(&format!(
        r#"name = "list"
from = "http"
url = "{base}/v1/list"
paginate = {{ kind = "link_header" }}"#
    ))
    .await
    .unwrap();
    assert_eq!(got.column("p"), [json!(1), json!(2), json!(3)]);
    assert_eq!(got.sources[1], format!("{base}/v1/list?p=2"));
}

#[tokio::test]
async fn max_pages_bounds_endless_pagination() {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/forever",
            get(|State(h): State<Hits>, q: Params| async move {
                h.next();
                axum::Json(json!([{"page": param(&q, "page")}]))
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let got = run_toml(&format!(
        r#"name = "forever"
from = "http"
url = "{base}/forever"
paginate = {{ kind = "page", start = 5 }}
max_pages = 3"#
    ))
    .await
    .unwrap();
    assert_eq!(got.column("page"), [json!(5), json!(6), json!(7)]);
    assert_eq!(hits.count(), 3);
}

#[tokio::test]
async fn single_object_response_is_one_record_and_incremental_filters() {
    let app = Router::new()
        .route(
            "/one",
            get(|| async { axum::Json(json!({"id": 7, "name": "x"})) }),
        )
        .route(
            "/many",
            get(|| async {
                axum::Json(json!({"data": [{"id": 1}, {"id": 4}, {"id": 3}, {"id": 2}]}))
            }),
        );
    let base = serve(app).await;
    let got = run_toml(&format!(
        "name = \"one\"\nfrom = \"http\"\nurl = \"{base}/one\""
    ))
    .await
    .unwrap();
    assert_eq!(got.column("name"), [json!("x")]);
    let got = run_env(
        &format!(
            "name = \"many\"\nfrom = \"http\"\nurl = \"{base}/many\"\nrecords = \"data\"\nincremental = {{ cursor = \"id\" }}"
        ),
        Some(json!(2)),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(got.column("id"), [json!(4), json!(3)]);
    assert_eq!(got.done, Some(Some(json!(4))));
}

#[tokio::test]
async fn a_late_record_at_the_cursor_loads_once_and_skips_are_counted() {
    let app = Router::new().route(
        "/events",
        get(|| async {
            axum::Json(json!([
                {"id": 1, "at": 10},
                {"id": 2, "at": 20},
                {"id": 3, "at": 20},
                {"id": 4, "at": null},
                {"id": 5, "at": 30}
            ]))
        }),
    );
    let base = serve(app).await;
    let toml = format!(
        "name = \"ev\"\nfrom = \"http\"\nurl = \"{base}/events\"\nprimary_key = [\"id\"]\nincremental = {{ cursor = \"at\" }}"
    );
    // The last load took id 2 at 20; id 3 came later with the same value.
    let first = collect(context(&toml, &std::env::temp_dir(), None, &[]), run)
        .await
        .unwrap();
    assert_eq!(first.summary.skipped.null_cursor, 1);
    let mut filter = crate::extract::CursorFilter::new("at", &first.columns, None)
        .unwrap()
        .with_boundary(Some(&[]), &["id".to_string()], &first.columns);
    let id2: Vec<_> = first
        .rows
        .iter()
        .filter(|r| r[0] == brigade_core::value::Value::Int(2))
        .cloned()
        .collect();
    assert!(filter.keep(&id2[0]));
    let boundary = filter.boundary().unwrap();
    let mut cx = context(&toml, &std::env::temp_dir(), Some(json!(20)), &[]);
    cx.boundary = Some(boundary);
    let got = collect(cx, run).await.unwrap();
    assert_eq!(
        got.column("id"),
        [json!(3), json!(5)],
        "id 3 late, at the cursor"
    );
    assert_eq!(
        got.summary.skipped,
        crate::extract::Skipped {
            below_cursor: 1,
            null_cursor: 1,
            boundary_duplicate: 1,
            ..Default::default()
        }
    );
    assert_eq!(got.done, Some(Some(json!(30))));
}

#[tokio::test]
async fn empty_source_still_sends_columns_and_done() {
    let app = Router::new().route("/none", get(|| async { axum::Json(json!({"data": []})) }));
    let base = serve(app).await;
    let got = run_toml(&format!(
        "name = \"none\"\nfrom = \"http\"\nurl = \"{base}/none\"\nrecords = \"data\""
    ))
    .await
    .unwrap();
    assert_eq!(got.column_messages, 1);
    assert!(got.columns.is_empty() && got.rows.is_empty());
    assert_eq!(got.done, Some(None));
    // Nothing new is no error for an incremental extract either.
    let got = run_env(
        &format!(
            "name = \"none\"\nfrom = \"http\"\nurl = \"{base}/none\"\nrecords = \"data\"\nincremental = {{ cursor = \"id\" }}"
        ),
        Some(json!(5)),
        &[],
    )
    .await
    .unwrap();
    assert!(got.columns.is_empty() && got.rows.is_empty());
    assert_eq!(got.done, Some(None));
}

#[tokio::test]
async fn non_object_records_are_quarantined_and_missing_records_path_explained() {
    let app = Router::new().route(
        "/mixed",
        get(|| async { axum::Json(json!({"data": [{"id": 1}, 5, {"id": 2}]})) }),
    );
    let base = serve(app).await;
    let got = run_toml(&format!(
        "name = \"mixed\"\nfrom = \"http\"\nurl = \"{base}/mixed\"\nrecords = \"data\"\non_bad_row = \"quarantine\""
    ))
    .await
    .unwrap();
    assert_eq!(got.column("id"), [json!(1), json!(2)]);
    assert_eq!(got.rejected.len(), 1);
    assert_eq!(
        (got.rejected[0].line, got.rejected[0].raw.as_str()),
        (2, "5")
    );
    let err = run_toml(&format!(
        "name = \"mixed\"\nfrom = \"http\"\nurl = \"{base}/mixed\"\nrecords = \"items\""
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("extract `mixed`"), "{err}");
    assert!(err.contains("top-level keys: data"), "{err}");
}

#[tokio::test]
async fn retries_after_503_and_429_with_retry_after() {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/flaky",
            get(|State(h): State<Hits>| async move {
                match h.next() {
                    1 => (AxumStatus::SERVICE_UNAVAILABLE, "deploying").into_response(),
                    _ => axum::Json(json!([{"ok": true}])).into_response(),
                }
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let got = run_toml(&format!(
        "name = \"flaky\"\nfrom = \"http\"\nurl = \"{base}/flaky\""
    ))
    .await
    .unwrap();
    assert_eq!(got.column("ok"), [json!(true)]);
    assert_eq!(hits.count(), 2);

    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/limited",
            get(|State(h): State<Hits>| async move {
                match h.next() {
                    1 => (
                        AxumStatus::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response(),
                    _ => axum::Json(json!([{"ok": 1}])).into_response(),
                }
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let started = Instant::now();
    let got = run_toml(&format!(
        "name = \"limited\"\nfrom = \"http\"\nurl = \"{base}/limited\""
    ))
    .await
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(got.column("ok"), [json!(1)]);
    assert_eq!(hits.count(), 2);
    assert!(waited >= Duration::from_millis(950), "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn persistent_5xx_is_transient_and_404_fails_at_once() {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/down",
            get(|State(h): State<Hits>| async move {
                h.next();
                (AxumStatus::BAD_GATEWAY, "upstream down")
            }),
        )
        .route(
            "/gone",
            get(|State(h): State<Hits>| async move {
                h.next();
                (AxumStatus::NOT_FOUND, "no such thing here")
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let err = run_toml(&format!(
        "name = \"down\"\nfrom = \"http\"\nurl = \"{base}/down\""
    ))
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
    assert_eq!(hits.count(), 6, "one attempt and five retries");

    let hits_before = hits.count();
    let err = run_toml(&format!(
        "name = \"gone\"\nfrom = \"http\"\nurl = \"{base}/gone\""
    ))
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(!err.is_transient(), "{text}");
    assert!(text.starts_with("extract `gone`: GET "), "{text}");
    assert!(text.contains("404 Not Found: no such thing here"), "{text}");
    assert!(text.contains("check `url`"), "{text}");
    assert_eq!(hits.count() - hits_before, 1, "no retry on 404");
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = run_toml(&format!(
        "name = \"nobody\"\nfrom = \"http\"\nurl = \"http://{addr}/x\""
    ))
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("failed 6 times"), "{err}");
}

#[tokio::test]
async fn headers_expand_env_and_secrets_stay_out_of_lineage() {
    let app = Router::new().route(
        "/secure",
        get(|headers: AxumHeaders, q: Params| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            let agent = headers.get("user-agent").and_then(|v| v.to_str().ok());
            if auth != Some("Bearer s3cr3t-token")
                || q.get("api_key").map(String::as_str) != Some("k3y-value")
            {
                return (AxumStatus::UNAUTHORIZED, "bad credentials").into_response();
            }
            axum::Json(json!([{"agent": agent}])).into_response()
        }),
    );
    let base = serve(app).await;
    let toml = format!(
        r#"name = "secure"
from = "http"
url = "{base}/secure?api_key=${{API_KEY}}"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}"#
    );
    let got = run_env(
        &toml,
        None,
        &[("TOKEN", "s3cr3t-token"), ("API_KEY", "k3y-value")],
    )
    .await
    .unwrap();
    assert_eq!(
        got.column("agent"),
        [json!(format!("brigade/{}", env!("CARGO_PKG_VERSION")))]
    );
    assert!(!got.sources[0].contains("k3y-value"), "{}", got.sources[0]);
    assert!(got.sources[0].starts_with(&format!("{base}/secure?api_key=")));

    let err = run_env(
        &toml,
        None,
        &[("TOKEN", "wrong-token"), ("API_KEY", "k3y-value")],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(err.contains("credentials in `headers`"), "{err}");
    assert!(
        !err.contains("k3y-value") && !err.contains("wrong-token"),
        "{err}"
    );

    let err = run_env(&toml, None, &[("API_KEY", "k3y-value")])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`TOKEN` is not set"), "{err}");
}

#[tokio::test]
async fn a_cancelled_run_stops_before_the_next_request() {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/slow",
            get(|State(h): State<Hits>| async move {
                h.next();
                axum::Json(json!([{"id": 1}]))
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let cx = context(
        &format!(
            "name = \"slow\"\nfrom = \"http\"\nurl = \"{base}/slow\"\npaginate = {{ kind = \"page\" }}"
        ),
        &std::env::temp_dir(),
        None,
        &[],
    );
    cx.cancelled.store(true, Ordering::Relaxed);
    let err = collect(cx, run).await.unwrap_err();
    assert!(matches!(err, PipelineError::Cancelled), "{err}");
    assert_eq!(hits.count(), 0);
}

#[test]
fn link_headers_parse_per_rfc_8288() {
    assert_eq!(
        next_link(r#"<https://a/x?p=2>; rel="next", <https://a/x?p=9>; rel="last""#),
        Some("https://a/x?p=2".into())
    );
    assert_eq!(
        next_link(r#"<https://a/x?p=1>; rel="prev"; title="a, b", <y>; rel=next"#),
        Some("y".into())
    );
    assert_eq!(next_link(r#"<z>; rel="NEXT last""#), Some("z".into()));
    assert_eq!(next_link(r#"<https://a/x?p=1>; rel="prev""#), None);
    assert_eq!(next_link(""), None);
}

#[test]
fn backoff_doubles_from_200_ms_up_to_10_s() {
    let start = Duration::from_millis(200);
    let delays: Vec<u128> = (0..8).map(|r| backoff(r, start).as_millis()).collect();
    assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
    assert!(jitter() < Duration::from_millis(100));
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
    let now = SystemTime::now();
    assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
    let base = UNIX_EPOCH + Duration::from_secs(1_445_412_470);
    headers.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    assert_eq!(retry_after(&headers, base), Some(Duration::from_secs(10)));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
    assert_eq!(retry_after(&headers, now), Some(RETRY_AFTER_CAP));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
    assert_eq!(retry_after(&headers, now), None);
}

#[test]
fn dot_paths_and_placeholders() {
    let body = json!({"meta": {"next": "abc"}, "data": [{"x": 1}]});
    assert_eq!(lookup(&body, "meta.next"), Some(&json!("abc")));
    assert_eq!(lookup(&body, "data.0.x"), Some(&json!(1)));
    assert_eq!(lookup(&body, "meta.nope"), None);
    assert_eq!(encode("a b/c"), "a%20b%2Fc");
    let mut url = Url::parse("http://h/x?a=1&cursor=old").unwrap();
    set_param(&mut url, "cursor", "n");
    assert_eq!(url.as_str(), "http://h/x?a=1&cursor=n");
}

#[tokio::test]
async fn a_response_past_the_size_cap_fails_clearly() {
    let app = Router::new().route("/huge", get(|| async { "x".repeat(super::MAX_BODY + 1) }));
    let base = serve(app).await;
    let e = run_toml(&format!(
        "name = \"big\"\nfrom = \"http\"\nurl = \"{base}/huge\"\n"
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("larger than 64 MiB") && e.contains("paginate"),
        "{e}"
    );
}
