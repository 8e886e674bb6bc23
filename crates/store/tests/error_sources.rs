//! Store errors keep the driver's or the system's error as their `source()`, say it in their
//! own message too, and tell transient faults from permanent ones by type.

use std::error::Error;

use brigade_store::raw::RawDatabase;
use brigade_store::{Store, StoreError};

#[tokio::test]
async fn a_failed_sqlite_statement_keeps_the_drivers_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("brigade.db").display());
    let raw = RawDatabase::open(&url).await.expect("raw");
    let err = raw
        .query_json("SELECT * FROM no_such_table")
        .await
        .expect_err("the table does not exist");
    assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
    assert!(!err.is_transient(), "a missing table stays missing");
    assert!(err.to_string().contains("no such table"), "{err}");
    let source = err.source().expect("the driver's error is kept");
    assert!(source.is::<rusqlite::Error>(), "{source:?}");
    let report = brigade_core::report::chain(&err);
    assert!(report.starts_with(&err.to_string()), "{report}");
    assert_eq!(
        report.matches("no such table").count(),
        1,
        "the message already says the cause; a report must not repeat it: {report}"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_transient_and_keeps_the_cause() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let err = Store::connect(
        "postgres://brigade@127.0.0.1:1/app?connect_timeout=2",
        std::path::Path::new("migrations"),
    )
    .await
    .err()
    .expect("nothing listens on port 1");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "names host and port: {text}");
    assert!(
        text.contains("`app`") && text.contains("`brigade`"),
        "{text}"
    );
    let mut causes = std::iter::successors(err.source(), |&e| e.source());
    assert!(
        causes.any(|e| e.is::<tokio_postgres::Error>()),
        "the driver's error is kept: {err:?}"
    );
}

#[tokio::test]
async fn a_sqlite_file_that_cannot_be_created_keeps_the_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"a file where a folder should be").expect("write");
    let url = format!("sqlite://{}", blocker.join("brigade.db").display());
    let err = Store::connect(&url, &dir.path().join("migrations"))
        .await
        .err()
        .expect("a file is in the way");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not-a-dir"),
        "names the path: {err}"
    );
    assert!(err.source().is_some(), "{err:?}");
}
