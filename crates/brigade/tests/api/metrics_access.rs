//! Who may read `/metrics`: with `[metrics] token` only a scraper sending it; with
//! `[metrics] listen` only clients of that address, not of the public one.

use std::net::SocketAddr;

use serde_json::Value;

use crate::helpers::{Backend, expect_problem, spawn_app_with_config};

const TOKEN: &str = "metrics-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_metrics_require_it() {
    let settings = format!("[metrics]\ntoken = \"{TOKEN}\"\n");
    let app = spawn_app_with_config(Backend::Sqlite, &settings)
        .await
        .expect("SQLite app");
    expect_problem(app.anon_get("/metrics").await, 401, None).await;
    // Neither an admin's access token nor a wrong token will do.
    expect_problem(app.get("/metrics").await, 401, None).await;
    let res = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(format!("{TOKEN}x"))
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, None).await;
    let res = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("http_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_takes_metrics_off_the_public_address() {
    let settings = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let app = spawn_app_with_config(Backend::Sqlite, settings)
        .await
        .expect("SQLite app");
    expect_problem(app.anon_get("/metrics").await, 404, None).await;
    let logs = app.logs();
    let address: SocketAddr = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|v| v["fields"]["message"] == "Metrics listening.")
        .and_then(|v| v["fields"]["address"].as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no `Metrics listening.` line in:\n{logs}"));
    let res = app
        .client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("http_requests_total"));
    // That address serves nothing else.
    let res = app
        .client
        .get(format!("http://{address}/api/collections"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, None).await;
}
