//! PostgreSQL going away under a running Brigade: 503 problem+json while it is down (never a
//! 500, never a hang), and recovery without restarting Brigade once it is back, with the data
//! that was acknowledged still there.
//!
//! The test stops and starts PostgreSQL, so it runs on a dedicated cluster of its own
//! ([`postgres::dedicated_cluster`]), not on the shared one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::postgres::{self, PgCluster};
use crate::helpers::*;

/// No single request may take longer than this, whatever state PostgreSQL is in.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Brigade may take to be ready again once PostgreSQL accepts connections.
const RECOVERY: Duration = Duration::from_secs(10);
/// The whole scenario; a hang anywhere fails the test instead of blocking the run.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);
const RECORDS: &str = "/api/collections/notes/records";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_gives_503_then_recovers() {
    let Some(cluster) = postgres::dedicated_cluster().await else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("brigade-app-")
        .tempdir()
        .expect("create the app directory");
    let db_url = cluster.create_database().await;
    let app = TestApp::start(dir, db_url, Backend::Postgres).await;

    if tokio::time::timeout(TEST_TIMEOUT, scenario(&app, &cluster))
        .await
        .is_err()
    {
        panic!(
            "the restart scenario did not finish within {TEST_TIMEOUT:?}\n--- brigade log ---\n{}\
             \n--- postgres.log ---\n{}",
            log_tail(&app.logs(), 4000),
            cluster.server_log()
        );
    }
}

async fn scenario(app: &TestApp, cluster: &PgCluster) {
    app.must_create_collection(json!({
        "name": "notes",
        "fields": [
            { "name": "title", "type": "text", "required": true },
            { "name": "slug", "type": "text", "unique": true },
        ],
    }))
    .await;
    let before = app
        .must_post_record("notes", json!({ "title": "before", "slug": "before" }))
        .await;
    let before_path = record_path(&before);
    // Several reads at once, so the pool holds several connections that the restart breaks.
    let reads = (0..8).map(|_| call(app, Method::GET, &before_path, None));
    for (status, body) in join_all(reads).await {
        assert_eq!(status, 200, "warm-up read: {body}");
    }

    // 1. PostgreSQL is down: every request that needs it is a quick 503 problem+json.
    cluster.stop().await.expect("stop PostgreSQL");
    let down: [(Method, String, Option<Value>); 8] = [
        (Method::GET, "/readyz".into(), None),
        (Method::GET, RECORDS.into(), None),
        (Method::GET, before_path.clone(), None),
        (
            Method::POST,
            RECORDS.into(),
            Some(json!({ "title": "while down", "slug": "down" })),
        ),
        (
            Method::PATCH,
            before_path.clone(),
            Some(json!({ "title": "changed while down" })),
        ),
        (Method::DELETE, before_path.clone(), None),
        (
            Method::POST,
            "/api/batch".into(),
            Some(json!({ "requests": [
                { "method": "POST", "url": RECORDS, "body": { "title": "batched while down" } },
            ] })),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            Some(json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })),
        ),
    ];
    // Twice: the first round meets the pool's broken connections, the second new connects.
    for round in 0..2 {
        for (method, path, body) in &down {
            let started = Instant::now();
            let res = send(app, method, path, body.as_ref())
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "round {round}: {method} {path} with PostgreSQL down got no answer \
                         within {REQUEST_TIMEOUT:?} ({e})\n--- brigade log ---\n{}",
                        log_tail(&app.logs(), 4000)
                    )
                });
            let problem = expect_problem(res, 503, None).await;
            assert!(
                started.elapsed() < REQUEST_TIMEOUT,
                "{method} {path}: 503 only after {:?}",
                started.elapsed()
            );
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(
                !detail.contains("127.0.0.1") && !detail.contains("postgres"),
                "{method} {path}: the 503 leaks connection details: {problem}"
            );
        }
        // Liveness does not depend on the database.
        assert_eq!(app.anon_get("/healthz").await.status(), 200);
    }

    // 2. PostgreSQL is back: Brigade recovers by itself, without lost or invented data.
    cluster.start().await.expect("start PostgreSQL");
    let ready_after = wait_until_ready(app, "start").await;
    check_reads_and_writes(app, &before, "after the restart").await;
    assert_eq!(
        app.count("notes").await,
        2,
        "nothing sent while PostgreSQL was down was written"
    );

    // 3. A restart while requests are in flight: each one is answered 2xx or 503, never 500,
    //    and every acknowledged write survives.
    let load = Load::start(app, &before_path);
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.restart().await.expect("restart PostgreSQL");
    let ready_after_restart = wait_until_ready(app, "restart").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restart = load.finish(app, "the restart").await;
    assert!(
        restart.tally.get(&503).is_some_and(|n| *n > 0),
        "no request of the load fell into the restart: {:?}",
        restart.tally
    );

    // 4. PostgreSQL ends Brigade's connections (`pg_terminate_backend`, what a failover or an
    //    idle-session reaper does) again and again while requests are in flight: the same rules.
    let database = app.db_url.rsplit('/').next().expect("a database name");
    let load = Load::start(app, &before_path);
    let mut terminated = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        terminated += cluster.terminate_backends(database).await;
    }
    assert!(terminated > 0, "no connection of Brigade's to terminate");
    wait_until_ready(app, "terminations").await;
    let terminations = load.finish(app, "the terminations").await;

    check_reads_and_writes(app, &before, "after the restart under load").await;
    // `before`, and one record from each `check_reads_and_writes`.
    let mut expected = 3;
    let mut maybe_written = 0;
    for outcome in [&restart, &terminations] {
        for record in &outcome.acknowledged {
            let fetched = expect_json(app.get(&record_path(record)).await, 200).await;
            assert_eq!(
                &fetched, record,
                "an acknowledged write was lost or changed"
            );
        }
        expected += outcome.acknowledged.len() as u64;
        maybe_written += outcome.maybe_written;
    }
    let count = app.count("notes").await;
    assert!(
        (expected..=expected + maybe_written).contains(&count),
        "{count} notes; expected {expected} (+ up to {maybe_written} whose 503 came after the \
         commit); statuses {:?} and {:?}",
        restart.tally,
        terminations.tally
    );
    let fetched = expect_json(app.get(&before_path).await, 200).await;
    assert_eq!(fetched["slug"], "before");
    assert!(
        ready_after <= RECOVERY && ready_after_restart <= RECOVERY,
        "{ready_after:?} / {ready_after_restart:?}"
    );
}

/// Workers sending reads and writes in a loop until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Vec<Sent>>>,
}

/// A request of the load (`METHOD PATH`) and its answer: status, whether problem+json, body;
/// or why there was none.
type Sent = (String, Result<(u16, bool, String), String>);

/// What the load got: statuses, the records created (201), and how many creates answered 503
/// (those may or may not have been committed).
struct LoadOutcome {
    tally: BTreeMap<u16, usize>,
    acknowledged: Vec<Value>,
    maybe_written: u64,
}

impl Load {
    const WORKERS: usize = 8;

    fn start(app: &TestApp, read_path: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..Self::WORKERS)
            .map(|worker| {
                let client = app.client.clone();
                let base = app.url("");
                let token = app.token.clone();
                let read_path = read_path.to_owned();
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let (method, path, body) = if i % 2 == 0 {
                            (Method::GET, read_path.clone(), None)
                        } else {
                            let slug = uuid::Uuid::new_v4().simple().to_string();
                            let body = json!({ "title": format!("load {worker}"), "slug": slug });
                            (Method::POST, RECORDS.to_owned(), Some(body))
                        };
                        let mut req = client
                            .request(method.clone(), format!("{base}{path}"))
                            .bearer_auth(&token)
                            .timeout(REQUEST_TIMEOUT);
                        if let Some(body) = &body {
                            req = req.json(body);
                        }
                        let outcome = match req.send().await {
                            Ok(res) => {
                                let problem = content_type(&res).starts_with(PROBLEM_JSON);
                                let (status, text) = status_and_text(res).await;
                                Ok((status, problem, text))
                            }
                            Err(e) => Err(e.to_string()),
                        };
                        outcomes.push((format!("{method} {path}"), outcome));
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops the workers and fails the test if any request was answered other than 2xx or
    /// 503 problem+json, or not at all, during `what`.
    async fn finish(self, app: &TestApp, what: &str) -> LoadOutcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcome = LoadOutcome {
            tally: BTreeMap::new(),
            acknowledged: Vec::new(),
            maybe_written: 0,
        };
        let mut bad = Vec::new();
        for worker in self.workers {
            for (request, answer) in worker.await.expect("load task") {
                let (status, problem, text) = match answer {
                    Ok(answer) => answer,
                    Err(e) => {
                        bad.push(format!("{request} -> no answer: {e}"));
                        continue;
                    }
                };
                *outcome.tally.entry(status).or_default() += 1;
                match status {
                    200 => {}
                    201 => outcome.acknowledged.push(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("201 body is not JSON ({e}): {text}")),
                    ),
                    // The commit may have happened before the connection died.
                    503 if problem && request.starts_with("POST") => outcome.maybe_written += 1,
                    503 if problem => {}
                    _ => bad.push(format!("{request} -> {status} {text}")),
                }
            }
        }
        assert!(
            bad.is_empty(),
            "during {what} some requests were answered neither 2xx nor 503 problem+json:\n{}\
             \nThe server logged these internal errors:\n{}",
            bad.join("\n"),
            internal_errors(&app.logs()).join("\n")
        );
        assert!(
            outcome.tally.get(&200).is_some_and(|n| *n > 0)
                && outcome.tally.get(&201).is_some_and(|n| *n > 0),
            "the load made no successful requests during {what}: {:?}",
            outcome.tally
        );
        outcome
    }
}

/// Polls `/readyz` until it is 200 and returns how long that took; only 503 problem+json is
/// acceptable meanwhile, and it must be ready within [`RECOVERY`].
async fn wait_until_ready(app: &TestApp, after: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + RECOVERY;
    loop {
        let res = app
            .client
            .get(app.url("/readyz"))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("/readyz after the {after}: no answer ({e})"));
        let is_problem = content_type(&res).starts_with(PROBLEM_JSON);
        let (status, text) = status_and_text(res).await;
        match status {
            200 => return started.elapsed(),
            503 if is_problem => {}
            _ => panic!(
                "/readyz after the {after} answered {status}: {text}\n--- brigade log ---\n{}",
                log_tail(&app.logs(), 4000)
            ),
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still 503 {RECOVERY:?} after the {after} of PostgreSQL: {text}\
             \n--- brigade log ---\n{}",
            log_tail(&app.logs(), 4000)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Once ready, reads and writes succeed at the first attempt, also when several run at once
/// (each needs a pooled connection: none may be one the restart broke), and `before` is there.
async fn check_reads_and_writes(app: &TestApp, before: &Value, when: &str) {
    let path = record_path(before);
    let reads = (0..8).map(|_| call(app, Method::GET, &path, None));
    for (status, body) in join_all(reads).await {
        assert_eq!(
            status,
            200,
            "read {when}: {body}\n{}",
            log_tail(&app.logs(), 4000)
        );
        assert_eq!(&body, before, "the earlier record {when}");
    }
    let page = expect_json(
        app.list_records("notes", &[("filter", "slug = 'before'")])
            .await,
        200,
    )
    .await;
    assert_eq!(column(&page, "id"), [before["id"].as_str().unwrap()]);

    let slug = format!("after-{}", uuid::Uuid::new_v4().simple());
    let (status, created) = call(
        app,
        Method::POST,
        RECORDS,
        Some(json!({ "title": "after", "slug": slug })),
    )
    .await;
    assert_eq!(
        status,
        201,
        "write {when}: {created}\n{}",
        log_tail(&app.logs(), 4000)
    );
    let (status, patched) = call(
        app,
        Method::PATCH,
        &record_path(&created),
        Some(json!({ "title": "after, patched" })),
    )
    .await;
    assert_eq!(status, 200, "PATCH {when}: {patched}");
    let (status, fetched) = call(app, Method::GET, &record_path(&created), None).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, patched);
}

/// One admin request with [`REQUEST_TIMEOUT`].
async fn send(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Result<reqwest::Response> {
    let mut req = app.request(method.clone(), path).timeout(REQUEST_TIMEOUT);
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await
}

/// [`send`], failing the test without an answer; the status and the JSON body (`null` if
/// empty).
async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let res = send(app, &method, path, body.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: no answer within {REQUEST_TIMEOUT:?} ({e})"));
    let (status, text) = status_and_text(res).await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    };
    (status, value)
}

fn record_path(record: &Value) -> String {
    let id = record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {record}"));
    format!("{RECORDS}/{id}")
}
