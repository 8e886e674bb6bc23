//! Operations: health, metrics, request ids, routing errors, OpenAPI and shutdown.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

const REQUEST_ID: &str = "x-request-id";

fn request_id(res: &reqwest::Response) -> String {
    res.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

both_backends!(
    health_and_readiness_answer_without_a_token,
    |app| async move {
        for path in ["/healthz", "/readyz"] {
            let res = app.anon_get(path).await;
            assert_eq!(res.status(), 200, "{path}");
        }
    }
);

both_backends!(metrics_count_requests_by_route_template, |app| async move {
    app.must_create_collection(
        json!({ "name": "posts", "fields": [{ "name": "title", "type": "text" }] }),
    )
    .await;
    let record = app
        .must_post_record("posts", json!({ "title": "hello" }))
        .await;
    let id = record["id"].as_str().unwrap();
    app.must_list("posts", &[]).await;
    expect_json(
        app.get(&format!("/api/collections/posts/records/{id}"))
            .await,
        200,
    )
    .await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for metric in ["http_requests_total", "http_request_duration_seconds"] {
        assert!(text.contains(metric), "no {metric} in /metrics:\n{text}");
    }
    let templated = text.lines().any(|line| {
        line.starts_with("http_requests_total{")
            && line.contains("route=\"/api/collections/{")
            && line.contains("}/records\"")
    });
    assert!(
        templated,
        "no http_requests_total with a route template label:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_request_duration_seconds")
                && l.contains("route=\"/api/collections/{")),
        "no duration histogram by route template:\n{text}"
    );
    assert!(
        !text.contains("route=\"/api/collections/posts"),
        "raw paths as labels:\n{text}"
    );
    assert!(
        !text.contains(id),
        "a record id leaked into labels:\n{text}"
    );
});

both_backends!(every_response_has_a_request_id, |app| async move {
    let first = request_id(&app.anon_get("/healthz").await);
    let second = request_id(&app.anon_get("/healthz").await);
    assert!(
        !first.is_empty() && !second.is_empty(),
        "missing {REQUEST_ID}"
    );
    assert_ne!(first, second, "request ids must differ per request");

    for path in ["/healthz", "/api/collections", "/api/no-such-route"] {
        let res = app
            .request(Method::GET, path)
            .header(REQUEST_ID, "test-req-42")
            .send()
            .await
            .unwrap();
        assert_eq!(
            request_id(&res),
            "test-req-42",
            "{path} did not echo the request id"
        );
    }
    let res = app.anon_get("/api/collections").await;
    assert_eq!(res.status(), 401);
    assert!(
        !request_id(&res).is_empty(),
        "error responses carry a request id too"
    );
});

both_backends!(unknown_routes_and_wrong_methods, |app| async move {
    expect_problem(app.get("/api/no-such-route").await, 404, None).await;
    expect_problem(app.anon_get("/api/no-such-route").await, 404, None).await;
    assert_eq!(app.get("/definitely/not/here").await.status(), 404);
    for (method, path) in [
        (Method::PUT, "/api/collections"),
        (Method::DELETE, "/healthz"),
        (Method::PUT, "/api/batch"),
    ] {
        let res = app.request(method.clone(), path).send().await.unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
    }
});

both_backends!(openapi_describes_the_live_collections, |app| async move {
    let spec = expect_json(app.get("/api/openapi.json").await, 200).await;
    let version = spec["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi is {version:?}");
    assert!(
        spec["paths"]
            .get("/api/collections/posts/records")
            .is_none()
    );

    app.must_create_collection(
        json!({ "name": "posts", "fields": [{ "name": "title", "type": "text" }] }),
    )
    .await;
    let spec = expect_json(app.get("/api/openapi.json").await, 200).await;
    let paths = spec["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths in {spec}"));
    assert!(
        paths.contains_key("/api/collections/posts/records"),
        "posts is missing from {:?}",
        paths.keys().collect::<Vec<_>>()
    );

    let res = app.get("/api/docs").await;
    assert_eq!(res.status(), 200);
    let content_type = content_type(&res);
    assert!(
        content_type.starts_with("text/html"),
        "/api/docs is {content_type}"
    );
    assert!(!res.text().await.unwrap().is_empty());
});

both_backends!(
    openapi_lists_the_pipeline_routes_to_superusers_only,
    |app| async move {
        let spec = expect_json(app.get("/api/openapi.json").await, 200).await;
        for path in [
            "/api/pipelines",
            "/api/pipelines/{name}",
            "/api/pipelines/{name}/runs",
            "/api/pipelines/{name}/test",
            "/api/pipelines/{name}/lineage",
            "/api/runs/{id}",
            "/api/runs/{id}/events",
            "/api/runs/{id}/cancel",
        ] {
            assert!(spec["paths"].get(path).is_some(), "{path} is missing");
        }
        let run = &spec["paths"]["/api/pipelines/{name}/runs"]["post"];
        assert!(run["responses"].get("409").is_some(), "{run}");
        let props = &run["requestBody"]["content"]["application/json"]["schema"]["properties"];
        for key in ["vars", "select", "exclude", "backfill"] {
            assert!(
                props.get(key).is_some(),
                "run option {key} is missing: {props}"
            );
        }
        let public = expect_json(app.anon_get("/api/openapi.json").await, 200).await;
        assert!(
            public["paths"].get("/api/pipelines").is_none(),
            "pipeline routes are superuser-only"
        );
    }
);

both_backends!(sigterm_shuts_down_cleanly, |mut app| async move {
    app.must_create_collection(
        json!({ "name": "posts", "fields": [{ "name": "title", "type": "text" }] }),
    )
    .await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = app.wait_for_exit(Duration::from_secs(10)).await;
    let logs = app.logs();
    let exit = exit.unwrap_or_else(|| panic!("still running 10 s after SIGTERM; log:\n{logs}"));
    assert!(
        exit.success(),
        "exit status {exit} after SIGTERM; log:\n{logs}"
    );
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "still answering after exit"
    );
});
