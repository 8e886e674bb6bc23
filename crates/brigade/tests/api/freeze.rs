//! Expensive filters cannot freeze the server (issue #11, finding 3): clients looping on the
//! most expensive list filters must not delay `/healthz` or cheap reads, and a query that
//! outlives `server.request_timeout` is stopped and answered with a 503 problem instead of
//! holding the connection (and, on SQLite, a runtime thread) for as long as it takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Short, so over-long queries hit it quickly; limits off, so the loaders are not throttled.
const CONFIG: &str = "[server]\nrequest_timeout = \"1s\"\n[rate_limit]\ndefault = \"off\"\n";
const TIMEOUT: Duration = Duration::from_secs(1);
const NOTES: usize = 4_000;
/// Notes per batch request: small batches, so each is stored well within the timeout.
const PER_BATCH: usize = 100;
const LOADERS: usize = 32;

/// A public `notes` collection of (at least) [`NOTES`] records, each by one of 100 `authors`; returns
/// the id of one note.
async fn seed(app: &TestApp) -> String {
    let public = json!({ "list": "", "view": "" });
    app.must_create_collection(json!({
        "name": "authors",
        "fields": [{ "name": "name", "type": "text" }],
        "rules": public,
    }))
    .await;
    app.must_create_collection(json!({
        "name": "notes",
        "fields": [
            { "name": "body", "type": "text" },
            { "name": "author", "type": "relation", "options": { "collection": "authors" } },
        ],
        "rules": public,
    }))
    .await;
    let authors: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "method": "POST",
                "url": "/api/collections/authors/records",
                "body": { "name": format!("author number {i}") },
            })
        })
        .collect();
    store_batch(app, authors).await;
    let page = app.must_list("authors", &[("per_page", "100")]).await;
    let authors: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    // Long bodies: every `~` reads all of them.
    let filler = "the quick brown fox jumps over the lazy dog and keeps on running ".repeat(40);
    for start in (0..NOTES).step_by(PER_BATCH) {
        let requests: Vec<Value> = (start..(start + PER_BATCH).min(NOTES))
            .map(|i| {
                json!({
                    "method": "POST",
                    "url": "/api/collections/notes/records",
                    "body": { "body": format!("{filler} note {i}"), "author": authors[i % 100] },
                })
            })
            .collect();
        store_batch(app, requests).await;
    }
    let page = app
        .must_list("notes", &[("per_page", "1"), ("skip_total", "true")])
        .await;
    page["items"][0]["id"].as_str().unwrap().to_owned()
}

/// Sends one batch, again when the short request timeout cut it off on a busy machine (a
/// batch that timed out may still have been stored: the tests need at least, not exactly,
/// these records).
async fn store_batch(app: &TestApp, requests: Vec<Value>) {
    let body = json!({ "requests": requests });
    for _ in 0..10 {
        let res = app
            .request(Method::POST, "/api/batch")
            .timeout(Duration::from_secs(120))
            .json(&body)
            .send()
            .await
            .expect("the batch is answered");
        if res.status() != 503 {
            expect_json(res, 200).await;
            return;
        }
    }
    panic!("a seed batch timed out ten times");
}

/// A filter within the language's limits that scans every note for each of ~110 needles
/// (text search and a relation walk per needle); `salt` keeps answers from being cached.
fn expensive_filter(salt: usize) -> String {
    let mut clauses = Vec::new();
    let mut i = 0;
    loop {
        let clause = if i % 2 == 0 {
            format!("body ~ 'zq{salt}x{i}'")
        } else {
            format!("author.name ~ 'zq{salt}x{i}'")
        };
        let len: usize = clauses.iter().map(|c: &String| c.len() + 4).sum();
        if len + clause.len() + 4 > 4000 || clauses.len() >= 250 {
            break;
        }
        clauses.push(clause);
        i += 1;
    }
    clauses.join(" || ")
}

/// The most expensive filter an anonymous caller may send: the whole cost budget of 100, as
/// 8 `~` on the body (5 each) and 4 `~` through a relation (15 each).
fn budget_filter(salt: usize) -> String {
    let mut clauses: Vec<String> = (0..8).map(|i| format!("body ~ 'zq{salt}y{i}'")).collect();
    clauses.extend((0..4).map(|i| format!("author.name ~ 'zq{salt}y{i}'")));
    clauses.join(" || ")
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64) * p).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// The latencies of `path` requested every 20 ms while `running` (asserting 200 answers
/// with `must_succeed`).
async fn probe(
    app: &TestApp,
    path: &str,
    running: &AtomicBool,
    must_succeed: bool,
) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut samples = Vec::new();
    while running.load(Ordering::Relaxed) {
        let started = Instant::now();
        let res = client
            .get(app.url(path))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: no answer under load ({e})"));
        if must_succeed {
            assert_eq!(res.status(), 200, "GET {path} under load");
        }
        let _ = res.bytes().await;
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples
}

backend_test!(
    expensive_filters_neither_freeze_nor_outlive_the_timeout,
    |backend| async move {
        let Some(app) = spawn_app_with_config(backend, CONFIG).await else {
            return;
        };
        let note = seed(&app).await;
        let app = Arc::new(app);

        // Over-long queries: stopped at the deadline, answered as 503 problems. Four at once,
        // so that on a quiet machine (where one alone may just finish within the second) the
        // later ones still outlive the deadline, queued behind the first.
        let url = app.url_with(
            "/api/collections/notes/records",
            &[("filter", &expensive_filter(0)), ("per_page", "500")],
        );
        // Anonymous callers may not send it at all (the cost budget) ...
        let anonymous = app.client.get(url.clone()).send().await.expect("answered");
        expect_problem(anonymous, 400, Some("filter")).await;
        // ... superusers may, and what outlives the deadline is stopped there.
        let started = Instant::now();
        let answers = crate::helpers::join_all((0..4).map(|_| {
            app.client
                .get(url.clone())
                .bearer_auth(&app.token)
                .timeout(Duration::from_secs(60))
                .send()
        }))
        .await;
        let took = started.elapsed();
        let mut stopped = 0;
        for res in answers {
            let res = res.expect("an over-long query is answered");
            if res.status() == 503 {
                let problem = expect_problem(res, 503, None).await;
                let detail = problem["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("took longer than 1 s"), "{problem}");
                stopped += 1;
            } else {
                expect_json(res, 200).await;
            }
        }
        assert!(stopped >= 1, "no query outlived the 1 s deadline");
        assert!(
            took < TIMEOUT + Duration::from_secs(2),
            "the timeout answered after {took:?}"
        );

        // Many clients looping on expensive filters — half with the superuser's token (no cost
        // budget: the heaviest load any caller can make), half anonymous with the most
        // expensive filter the budget allows — while /healthz and a cheap record read are
        // timed.
        let running = Arc::new(AtomicBool::new(true));
        let answered = Arc::new(AtomicUsize::new(0));
        let mut loaders = Vec::new();
        for n in 0..LOADERS {
            let (app, running, answered) = (app.clone(), running.clone(), answered.clone());
            loaders.push(tokio::spawn(async move {
                let mut salt = n * 1000 + 1;
                let superuser = n % 2 == 0;
                while running.load(Ordering::Relaxed) {
                    let filter = if superuser {
                        expensive_filter(salt)
                    } else {
                        budget_filter(salt)
                    };
                    let url = app.url_with(
                        "/api/collections/notes/records",
                        &[("filter", &filter), ("per_page", "500")],
                    );
                    let mut req = app.client.get(url);
                    if superuser {
                        req = req.bearer_auth(&app.token);
                    }
                    let res = req
                        .timeout(Duration::from_secs(60))
                        .send()
                        .await
                        .expect("a loader's query is answered");
                    let status = res.status().as_u16();
                    let body = res.text().await.unwrap_or_default();
                    assert!(
                        status == 200 || status == 503,
                        "a loader got {status}: {body}"
                    );
                    answered.fetch_add(1, Ordering::Relaxed);
                    salt += 1;
                }
            }));
        }
        // Let the loaders fill every connection before measuring.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stop = {
            let running = running.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(6)).await;
                running.store(false, Ordering::Relaxed);
            }
        };
        let record = format!("/api/collections/notes/records/{note}");
        let (mut health, mut reads, ()) = tokio::join!(
            probe(&app, "/healthz", &running, true),
            probe(&app, &record, &running, true),
            stop
        );
        for loader in loaders {
            loader.await.expect("loader task");
        }

        let health_p50 = percentile(&mut health, 0.5);
        let health_p99 = percentile(&mut health, 0.99);
        let reads_p50 = percentile(&mut reads, 0.5);
        let reads_p99 = percentile(&mut reads, 0.99);
        let summary = format!(
            "{backend:?}: {} loader answers; /healthz p50 {health_p50:?} p99 {health_p99:?} \
         ({} samples); GET by id p50 {reads_p50:?} p99 {reads_p99:?} ({} samples)",
            answered.load(Ordering::Relaxed),
            health.len(),
            reads.len(),
        );
        eprintln!("{summary}");
        // The goal is 50 ms at p99 on an idle box (measured alone: p50 ~2 ms, p99 ~40 ms);
        // these bounds leave room for a loaded 2-core CI machine. Before the fix /healthz took
        // seconds: every runtime thread was running a filter.
        assert!(health.len() >= 20, "too few /healthz answers: {summary}");
        assert!(health_p50 < Duration::from_millis(100), "{summary}");
        assert!(health_p99 < Duration::from_millis(1000), "{summary}");
        // Cheap reads stay apart from the expensive ones: SQLite moves slow reads to a lane of
        // their own, PostgreSQL lets expensive filters hold at most half the pool.
        assert!(reads_p50 < Duration::from_millis(100), "{summary}");
        assert!(reads_p99 < Duration::from_millis(1000), "{summary}");

        // Nothing leaked: every connection is back and answers.
        let page = app.must_list("notes", &[("per_page", "1")]).await;
        let total = page["total_items"].as_u64().unwrap_or_default();
        assert!(total >= NOTES as u64, "{page}");
    }
);
