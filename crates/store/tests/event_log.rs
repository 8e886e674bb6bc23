//! The realtime event log on a real SQLite file: every record write of the records API is one
//! event, numbered without holes in commit order even when writes race, and pruning keeps the
//! last `keep` events.

use std::sync::Arc;

use brigade_store::{Access, EventKind, Store};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_get_consecutive_ids_and_pruning_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("brigade.db").display());
    let store = Arc::new(
        Store::connect(&url, &dir.path().join("migrations"))
            .await
            .expect("store"),
    );
    store
        .create_collection(&json!({"name": "notes", "fields": [{"name": "title", "type": "text"}]}))
        .await
        .expect("create");
    let before = store.event_log().head().await.expect("head");
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let body = json!({"title": format!("{w}-{i}")});
                    store
                        .create_record("notes", body.as_object().unwrap(), &Access::Superuser)
                        .await
                        .expect("create a record");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let head = store.event_log().head().await.expect("head");
    assert_eq!(head - before, 200, "one event per write");
    let events = store
        .event_log()
        .read(before, None, 1000)
        .await
        .expect("read");
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        ((before + 1)..=head).collect::<Vec<_>>(),
        "no holes, in order"
    );
    assert!(events.iter().all(|e| e.kind == EventKind::Record
        && e.topic == "notes"
        && e.action == "create"
        && e.record_id.is_some()));
    let titles: std::collections::HashSet<String> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.body).unwrap()["title"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(titles.len(), 200, "every write's record is in its event");

    let pruned = store.event_log().prune(30).await.expect("prune");
    assert_eq!(pruned, 170);
    assert_eq!(
        store.event_log().oldest().await.expect("oldest"),
        Some(head - 29)
    );
    assert_eq!(
        store
            .event_log()
            .read(0, None, 1000)
            .await
            .expect("read")
            .len(),
        30
    );
}
