//! Concurrent writes: unique constraints under races, many inserts at once, racing PATCHes
//! of one record, and a large batch that fails at its last request.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const RECORDS: &str = "/api/collections/posts/records";
/// No request of these tests may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends all `requests` (method, path, body) at the same moment, each from its own task on its
/// own connection, and returns `(status, JSON body)` in the order given.
async fn send_all(app: &TestApp, requests: Vec<(Method, String, Value)>) -> Vec<(u16, Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (method, path, body) in requests {
        let request = app
            .request(method.clone(), &path)
            .timeout(REQUEST_TIMEOUT)
            .json(&body);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let res = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: no answer ({e})"));
            let (status, text) = status_and_text(res).await;
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
            (status, body)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("request task"));
    }
    results
}

both_backends!(racing_creates_of_one_unique_value, |app| async move {
    create_posts(&app).await;
    let requests = (0..20)
        .map(|i| {
            let body = json!({ "title": format!("racer {i}"), "slug": "same" });
            (Method::POST, RECORDS.to_owned(), body)
        })
        .collect();
    let results = send_all(&app, requests).await;

    let winners: Vec<&Value> = results
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one create wins: {results:?}");
    for (status, body) in &results {
        if *status == 201 {
            continue;
        }
        assert_eq!(*status, 409, "a losing create is a conflict: {body}");
        assert!(
            body["errors"]["slug"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "the conflict names `slug`: {body}"
        );
    }
    assert_eq!(app.count("posts").await, 1);
    let stored = expect_json(app.get(&posts_record_path(winners[0])).await, 200).await;
    assert_eq!(&stored, winners[0]);
    assert_eq!(stored["slug"], "same");
});

both_backends!(many_concurrent_inserts, |app| async move {
    create_posts(&app).await;
    let requests = (0..50)
        .map(|i| {
            let body = json!({ "title": format!("p{i}"), "slug": format!("s{i}"), "views": i });
            (Method::POST, RECORDS.to_owned(), body)
        })
        .collect();
    let results = send_all(&app, requests).await;
    for (i, (status, body)) in results.iter().enumerate() {
        assert_eq!(*status, 201, "insert {i}: {body}");
        assert_eq!(
            body["views"], i,
            "insert {i} answered with another record: {body}"
        );
    }
    assert_eq!(app.count("posts").await, 50);

    let ids: HashSet<&str> = results
        .iter()
        .map(|(_, body)| body["id"].as_str().expect("string id"))
        .collect();
    assert_eq!(ids.len(), 50, "ids are unique");

    let by_id = app
        .must_list("posts", &[("sort", "id"), ("per_page", "50")])
        .await;
    let listed: HashSet<String> = column(&by_id, "id").into_iter().collect();
    assert_eq!(
        listed,
        ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>(),
        "the list holds exactly the created records"
    );
    // Ids are time-ordered: in id order, `created` never goes back.
    let created = column(&by_id, "created");
    assert!(
        created.windows(2).all(|w| w[0] <= w[1]),
        "sorted by id, `created` is not ascending: {:?}",
        column(&by_id, "id")
            .iter()
            .zip(&created)
            .collect::<Vec<_>>()
    );
    // So sorting by `created` (ties broken by id) gives the same order as sorting by id.
    let by_created = app
        .must_list("posts", &[("sort", "created,id"), ("per_page", "50")])
        .await;
    assert_eq!(column(&by_created, "id"), column(&by_id, "id"));
});

both_backends!(racing_patches_of_one_record, |app| async move {
    create_posts(&app).await;
    let record = app
        .must_post_record("posts", json!({ "title": "start", "views": -1 }))
        .await;
    let path = posts_record_path(&record);
    let requests = (0..10)
        .map(|i| {
            let body = json!({ "title": format!("v{i}"), "views": i });
            (Method::PATCH, path.clone(), body)
        })
        .collect();
    let results = send_all(&app, requests).await;
    for (i, (status, body)) in results.iter().enumerate() {
        assert_eq!(*status, 200, "PATCH {i}: {body}");
        assert_eq!(body["id"], record["id"]);
        assert_eq!(
            body["created"], record["created"],
            "PATCH {i} changed created"
        );
    }

    let stored = expect_json(app.get(&path).await, 200).await;
    // One PATCH won as a whole: its title and views together, exactly as it answered.
    let views = stored["views"]
        .as_u64()
        .unwrap_or_else(|| panic!("views is not one of the sent values: {stored}"));
    assert!(views < 10, "{stored}");
    assert_eq!(
        stored["title"],
        format!("v{views}"),
        "a mix of two PATCHes: {stored}"
    );
    assert!(
        results.iter().any(|(_, body)| body == &stored),
        "the final record is none of the PATCH answers: {stored}"
    );
    let created = stored["created"].as_str().unwrap();
    let updated = stored["updated"].as_str().unwrap();
    assert!(is_utc_millis(updated), "{stored}");
    assert!(updated >= created, "updated before created: {stored}");
    assert!(updated >= record["updated"].as_str().unwrap(), "{stored}");
    assert_eq!(app.count("posts").await, 1);
});

both_backends!(large_batch_failing_at_the_last_request, |app| async move {
    create_posts(&app).await;
    let existing = app
        .must_post_record("posts", json!({ "title": "existing", "slug": "taken" }))
        .await;

    // The 100th create repeats a slug already in the table, then one the batch itself wrote.
    for (case, duplicate) in [("an existing record", "taken"), ("the batch's first", "b0")] {
        let mut requests: Vec<Value> = (0..99)
            .map(|i| {
                json!({ "method": "POST", "url": RECORDS,
                        "body": { "title": format!("b{i}"), "slug": format!("b{i}") } })
            })
            .collect();
        requests.push(json!({ "method": "POST", "url": RECORDS,
                              "body": { "title": "last", "slug": duplicate } }));
        let res = app
            .request(Method::POST, "/api/batch")
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({ "requests": requests }))
            .send()
            .await
            .expect("the batch is answered");
        let problem = expect_problem(res, 409, None).await;
        let keys: Vec<&String> = problem["errors"]
            .as_object()
            .unwrap_or_else(|| panic!("no errors in {problem}"))
            .keys()
            .collect();
        assert!(
            !keys.is_empty() && keys.iter().all(|k| k.starts_with("requests.99")),
            "the conflict with {case} is not reported at requests.99: {problem}"
        );
        assert_eq!(
            app.count("posts").await,
            1,
            "nothing of the batch was written ({case})"
        );
        let page = app.must_list("posts", &[("filter", "slug ~ 'b'")]).await;
        assert_eq!(page["items"], json!([]), "{case}");
    }
    let stored = expect_json(app.get(&posts_record_path(&existing)).await, 200).await;
    assert_eq!(stored, existing);
});
