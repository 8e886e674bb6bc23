//! Two stores on one SQLite file stand for two servers on one database, with no follower
//! task running: a schema change made through the one whose copy is out of date is still
//! built on the stored definition, so it never undoes the other's change.

use brigade_store::Store;
use serde_json::json;

fn field_names(c: &brigade_core::schema::Collection) -> Vec<String> {
    let mut names: Vec<String> = c.fields.iter().map(|f| f.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_change_through_a_stale_copy_keeps_the_other_stores_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("brigade.db").display());
    let first = Store::connect(&url, &dir.path().join("migrations"))
        .await
        .expect("first store");
    let second = Store::connect(&url, &dir.path().join("migrations"))
        .await
        .expect("second store");

    first
        .create_collection(&json!({"name": "notes", "fields": [{"name": "title", "type": "text"}]}))
        .await
        .expect("create");
    // The second store has not seen `notes` yet; its change still finds it.
    second
        .update_collection(
            "notes",
            &json!({"fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "text"}]}),
        )
        .await
        .expect("the second store refreshes before it builds the change");
    // Now the first store's copy lacks `body`: a rules-only change must keep it.
    let changed = first
        .update_collection("notes", &json!({"rules": {"list": ""}}))
        .await
        .expect("update through the stale copy");
    assert_eq!(field_names(&changed), ["body", "title"]);
    let stored = second.collection("notes").expect("notes");
    assert_eq!(field_names(&stored), ["body", "title"]);
    assert!(
        second.refresh_schema().await.expect("refresh"),
        "the rule change made through the first store is new to the second"
    );
    assert_eq!(
        second
            .collection("notes")
            .expect("notes")
            .rules
            .list
            .as_deref(),
        Some("")
    );
}
