//! Two servers on one database: collections, rules and drops made through one are what the
//! other serves within about a second, and a change made through a server whose copy of the
//! schema is out of date never undoes another server's change.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, expect_json};

/// How long the other server may take (it checks every 500 ms).
const WITHIN: Duration = Duration::from_millis(1500);

async fn two_servers(backend: Backend) -> Option<(TestApp, TestApp)> {
    crate::helpers::two_servers(backend, "").await
}

/// Waits until `status` answers `want`, failing after [`WITHIN`] from `since`.
async fn until_status<F, Fut>(since: Instant, want: u16, what: &str, status: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    loop {
        let got = status().await;
        if got == want {
            return;
        }
        assert!(
            since.elapsed() < WITHIN,
            "{what}: still {got} (want {want}) after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn field_names(collection: &Value) -> Vec<String> {
    let mut names: Vec<String> = collection["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn schema_changes_reach_the_other_server(backend: Backend) {
    let Some((first, second)) = two_servers(backend).await else {
        return;
    };
    // A collection created through the first is served by the second.
    let created = Instant::now();
    first
        .must_create_collection(json!({
            "name": "notes",
            "fields": [{"name": "title", "type": "text"}],
            "rules": {"list": "", "view": "", "create": "", "update": null, "delete": null}
        }))
        .await;
    until_status(
        created,
        200,
        "anonymous list on the second server",
        || async {
            second
                .anon_get("/api/collections/notes/records")
                .await
                .status()
                .as_u16()
        },
    )
    .await;

    // A rule tightened through the first is enforced by the second.
    let tightened = Instant::now();
    expect_json(
        first
            .patch(
                "/api/collections/notes",
                json!({"rules": {"list": null, "view": null, "create": null}}),
            )
            .await,
        200,
    )
    .await;
    until_status(tightened, 401, "anonymous list after the rule", || async {
        second
            .anon_get("/api/collections/notes/records")
            .await
            .status()
            .as_u16()
    })
    .await;
    let anonymous_create = second
        .client
        .post(second.url("/api/collections/notes/records"))
        .json(&json!({"title": "sneaky"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous_create.status(),
        401,
        "the create rule is null now: sign in"
    );

    // Fields added through each server in turn are both kept: the second builds its change
    // on the stored definition, not on the copy it had.
    expect_json(
        first
            .patch(
                "/api/collections/notes",
                json!({"fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "text"}]}),
            )
            .await,
        200,
    )
    .await;
    let merged = expect_json(
        second
            .patch("/api/collections/notes", json!({"rules": {"list": ""}}))
            .await,
        200,
    )
    .await;
    assert_eq!(field_names(&merged), ["body", "title"], "{merged}");
    let stored = expect_json(first.get("/api/collections/notes").await, 200).await;
    assert_eq!(field_names(&stored), ["body", "title"], "{stored}");

    // A collection dropped through the first is gone on the second, for writes too.
    let dropped = Instant::now();
    assert_eq!(first.delete("/api/collections/notes").await.status(), 204);
    until_status(dropped, 404, "superuser list after the drop", || async {
        second
            .get("/api/collections/notes/records")
            .await
            .status()
            .as_u16()
    })
    .await;
    let write = second
        .post("/api/collections/notes/records", json!({"title": "late"}))
        .await;
    assert_eq!(write.status(), 404, "a dropped collection takes no writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_reach_the_other_server_on_postgres() {
    schema_changes_reach_the_other_server(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_reach_the_other_server_on_sqlite() {
    schema_changes_reach_the_other_server(Backend::Sqlite).await;
}

/// `brigade jwt rotate` run against the database while two servers run: within about a second
/// both sign with the new key and accept tokens either signed, and tokens signed before keep
/// working.
async fn a_rotated_signing_key_reaches_both_servers(backend: Backend) {
    let Some((first, second)) = two_servers(backend).await else {
        return;
    };
    let before = first.token.clone();
    let out = crate::helpers::run_cli(
        ["jwt", "rotate", "--dir", first.dir.path().to_str().unwrap()],
        &[("BRIGADE_DATABASE_URL", &first.db_url)],
        None,
    )
    .await;
    crate::helpers::assert_success(&out, "brigade jwt rotate");
    let rotated = Instant::now();
    let login = || async {
        let res = first
            .client
            .post(first.url("/api/auth/login"))
            .json(&json!({"email": crate::helpers::ADMIN_EMAIL, "password": crate::helpers::ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        expect_json(res, 200).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    // The first server signs with the new key within the interval...
    let mut fresh = login().await;
    while kid(&fresh) == kid(&before) {
        assert!(
            rotated.elapsed() < WITHIN,
            "the first server still signs with the old key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        fresh = login().await;
    }
    // ...and the second accepts it (it knows the new key), and the old token still works.
    until_status(
        rotated,
        200,
        "a token signed with the new key on the second server",
        || async {
            second
                .client
                .get(second.url("/api/auth/me"))
                .bearer_auth(&fresh)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        },
    )
    .await;
    let old = second
        .client
        .get(second.url("/api/auth/me"))
        .bearer_auth(&before)
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.status(),
        200,
        "a token signed before the rotation still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_reaches_both_servers_on_postgres() {
    a_rotated_signing_key_reaches_both_servers(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_reaches_both_servers_on_sqlite() {
    a_rotated_signing_key_reaches_both_servers(Backend::Sqlite).await;
}

/// A server whose notification connections are cut (a PostgreSQL restart, a proxy timeout)
/// reconnects and catches up: a collection created meanwhile, and a record committed
/// meanwhile, still reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_notification_connection_catches_up_on_postgres() {
    let Some((first, second)) = two_servers(Backend::Postgres).await else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(&first.db_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    let cut = || async {
        client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                &[],
            )
            .await
            .unwrap()
            .len()
    };
    assert!(cut().await >= 4, "both servers listen on two channels");
    let since = Instant::now();
    first
        .must_create_collection(json!({
            "name": "late",
            "fields": [{"name": "title", "type": "text"}],
            "rules": {"list": "", "view": "", "create": "", "update": null, "delete": null}
        }))
        .await;
    until_status(
        since,
        200,
        "the collection created while cut off",
        || async {
            second
                .anon_get("/api/collections/late/records")
                .await
                .status()
                .as_u16()
        },
    )
    .await;
    let mut sse = crate::realtime::Sse::subscribed(&second, None, "late").await;
    // Wait for the listeners to be back, then cut them again and write at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cut().await;
    let record = first
        .must_post_record("late", json!({"title": "while cut off"}))
        .await;
    let event = sse.record_event().await;
    assert_eq!(event.data["record"]["id"], record["id"]);
}
