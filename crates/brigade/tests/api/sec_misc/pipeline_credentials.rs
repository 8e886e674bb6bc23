//! Pipeline extractors sent the configured `Authorization` and API-key headers to whatever
//! host the upstream chose for the next page. Here a pipeline run by the real server pages
//! through an API on 127.0.0.1 whose `Link` header finally points at a second origin on
//! 127.0.0.2, which records the headers it gets: none of the credentials.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::helpers::{TestApp, expect_json, spawn_app_with_files};

const TOKEN: &str = "pipeline-secret-token";
const KEY: &str = "pipeline-secret-key";

/// `(path, authorization, x-api-key)` of each request a server got.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

fn record(seen: &Seen, uri: &Uri, headers: &HeaderMap) {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    seen.lock()
        .unwrap()
        .push((uri.to_string(), get("authorization"), get("x-api-key")));
}

async fn serve(ip: &str, app: Router) -> String {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Starts a run of `pipeline` and polls it until it ends.
async fn run_pipeline(app: &TestApp, pipeline: &str) -> serde_json::Value {
    let started = expect_json(
        app.post(&format!("/api/pipelines/{pipeline}/runs"), json!({}))
            .await,
        202,
    )
    .await;
    let id = started["run_id"].as_str().expect("run_id").to_string();
    for _ in 0..600 {
        let run = expect_json(app.get(&format!("/api/runs/{id}")).await, 200).await;
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("run {id} did not finish; log:\n{}", app.logs());
}

backend_test!(
    a_link_header_to_another_origin_gets_no_pipeline_credentials,
    |backend| async move {
        let other_seen: Seen = Arc::default();
        let other = serve(
            "127.0.0.2",
            Router::new()
                .fallback(
                    |State(seen): State<Seen>, uri: Uri, headers: HeaderMap| async move {
                        record(&seen, &uri, &headers);
                        axum::Json(json!([{ "n": 3 }]))
                    },
                )
                .with_state(other_seen.clone()),
        )
        .await;
        let seen: Seen = Arc::default();
        let origin = serve(
            "127.0.0.1",
            Router::new()
                .fallback(
                    move |State(seen): State<Seen>, uri: Uri, headers: HeaderMap| {
                        let other = other.clone();
                        async move {
                            record(&seen, &uri, &headers);
                            let (n, next) = if uri.query() == Some("p=1") {
                                (1, "/items?p=2".to_string())
                            } else {
                                (2, format!("{other}/stolen"))
                            };
                            let mut res: Response = axum::Json(json!([{ "n": n }])).into_response();
                            res.headers_mut()
                                .insert("link", format!("<{next}>; rel=\"next\"").parse().unwrap());
                            res
                        }
                    },
                )
                .with_state(seen.clone()),
        )
        .await;
        let pipeline = format!(
            "retries = 0\n\n[[extract]]\nname = \"raw_feed\"\nfrom = \"http\"\nurl = \"{origin}/items?p=1\"\n\
             paginate = {{ kind = \"link_header\" }}\n\
             headers = {{ Authorization = \"Bearer {TOKEN}\", X-Api-Key = \"{KEY}\" }}\n"
        );
        let files = [("pipelines/feed.toml", pipeline.as_bytes())];
        let Some(app) = spawn_app_with_files(backend, &files).await else {
            return;
        };
        let run = run_pipeline(&app, "feed").await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let steps = run["steps"].as_array().expect("steps");
        let raw = steps
            .iter()
            .find(|s| s["name"] == "raw_feed")
            .expect("raw_feed");
        assert_eq!(raw["rows_out"], 3, "{run}");

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for (path, auth, key) in &seen {
            assert_eq!(
                auth.as_deref(),
                Some(format!("Bearer {TOKEN}").as_str()),
                "{path}"
            );
            assert_eq!(key.as_deref(), Some(KEY), "{path}");
        }
        let other_seen = other_seen.lock().unwrap().clone();
        assert_eq!(other_seen.len(), 1, "{other_seen:?}");
        for (path, auth, key) in &other_seen {
            assert!(
                auth.is_none() && key.is_none(),
                "{path} got {auth:?} {key:?}"
            );
        }
        // The run log says why the last page went without them.
        let logs = app.logs();
        assert!(
            logs.contains("requesting it without the extract's `headers`"),
            "{}",
            crate::helpers::log_tail(&logs, 4000)
        );
        assert!(!logs.contains(TOKEN) && !logs.contains(KEY));
    }
);
