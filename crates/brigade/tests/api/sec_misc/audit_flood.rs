//! Audit entries could be dropped on purpose: every operation of a batch queued an entry, so
//! a few parallel 1,000-operation batches filled the 10,000-entry queue and failed logins
//! made meanwhile vanished. Now a batch is one entry with counts and security events have a
//! queue that never drops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::OPEN;
use crate::helpers::{TestApp, expect_json, expect_problem};

const BATCHES: usize = 12;
const OPS: usize = 1000;
/// Failed logins made at least, and at most (they go on while the batches run).
const FAILED_LOGINS: usize = 17;
const MAX_LOGINS: usize = 400;

/// The entries of `/api/audit` matching `filter` (all of them: up to 500).
async fn audit(app: &TestApp, filter: &str) -> Vec<Value> {
    let url = app.url_with("/api/audit", &[("filter", filter), ("per_page", "500")]);
    let page = expect_json(
        app.client
            .get(url)
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Polls until `filter` matches `n` entries; the entries found last.
async fn wait_for(app: &TestApp, filter: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = audit(app, filter).await;
        if found.len() >= n || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn batch(n: usize, round: usize) -> Value {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "method": "POST",
                "url": "/api/collections/posts/records",
                "body": {"title": format!("flood {round}.{i}")}
            })
        })
        .collect();
    json!({ "requests": requests })
}

files_test!(
    parallel_batches_cannot_push_failed_logins_out_of_the_audit_log,
    vec![("brigade.toml", OPEN.as_bytes().to_vec())],
    |app| async move {
        app.must_create_collection(json!({
            "name": "posts",
            "fields": [{"name": "title", "type": "text"}]
        }))
        .await;
        let bodies: Vec<Value> = (0..BATCHES).map(|r| batch(OPS, r)).collect();
        let flooding = AtomicBool::new(true);
        let flood = async {
            let sends = bodies.iter().map(|body| {
                app.client
                    .post(app.url("/api/batch"))
                    .bearer_auth(&app.token)
                    .json(body)
                    .timeout(Duration::from_secs(120))
                    .send()
            });
            let results = crate::helpers::join_all(sends).await;
            flooding.store(false, Ordering::SeqCst);
            results
        };
        // Failed logins all through the flood and just after it, while the writer catches up.
        let logins = async {
            let mut statuses = Vec::new();
            let mut after = None;
            while statuses.len() < MAX_LOGINS {
                if !flooding.load(Ordering::SeqCst) {
                    let since = *after.get_or_insert_with(std::time::Instant::now);
                    if statuses.len() >= FAILED_LOGINS
                        && since.elapsed() > Duration::from_millis(500)
                    {
                        break;
                    }
                }
                let i = statuses.len();
                let res = app
                    .client
                    .post(app.url("/api/auth/login"))
                    .json(&json!({"email": format!("victim{i}@example.com"), "password": "guess"}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(res.status().as_u16());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        };
        let (results, statuses) = tokio::join!(flood, logins);
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
        let attempts = statuses.len();
        let mut ok = 0;
        for r in results {
            let r = r.expect("batch request");
            assert_eq!(r.status(), 200);
            ok += 1;
        }
        assert_eq!(ok, BATCHES);

        // Every failed login is there, each with the email tried.
        let failed = wait_for(&app, "action = 'auth.login_failed'", attempts).await;
        assert_eq!(
            failed.len(),
            attempts,
            "failed logins missing from the audit log"
        );
        let mut emails: Vec<String> = failed
            .iter()
            .map(|e| {
                e["detail"]["email"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        emails.sort();
        let mut expected: Vec<String> = (0..attempts)
            .map(|i| format!("victim{i}@example.com"))
            .collect();
        expected.sort();
        assert_eq!(emails, expected);

        // One entry per batch, with its counts; no entry per operation.
        let batches = wait_for(&app, "action = 'record.batch'", BATCHES).await;
        assert_eq!(batches.len(), BATCHES);
        for b in &batches {
            assert_eq!(b["detail"]["operations"], OPS, "{b}");
            assert_eq!(b["detail"]["collections"]["posts"]["create"], OPS, "{b}");
            assert_eq!(b["actor"], crate::helpers::ADMIN_EMAIL);
        }
        assert!(audit(&app, "action = 'record.create'").await.is_empty());
        assert_eq!(app.count("posts").await, (BATCHES * OPS) as u64);
        expect_problem(app.anon_get("/api/audit").await, 401, None).await;
    }
);
