//! The change feed: what committed, published after the commit to whoever listens inside the
//! process — today the search follower, which indexes the records this process wrote.
//!
//! Records, collection definitions (fields, rules, indexes; exposed gold models are collections
//! too) and search-index contents are all changes, so a listener needs one subscription to stay
//! current. Each change travels in an [`Envelope`] with a per-process sequence number and the
//! process it came from (the origin also names this process in channel presence). Nothing here
//! crosses processes: record events reach other servers through the event log
//! ([`crate::event_log`]), schema changes through `_schema_version`. A record is shared (`Arc`)
//! between listeners and built only when someone listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::records::Record;

/// How many changes a slow listener may fall behind before it is told it lagged.
const CAPACITY: usize = 1024;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

impl ChangeKind {
    /// `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

/// What happened to a collection's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaKind {
    Created,
    /// Fields, indexes or rules changed (or an exposed model was published again).
    Updated,
    Dropped,
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// A record was written; for a delete, the record as it was.
    Record {
        #[serde(
            serialize_with = "shared::serialize",
            deserialize_with = "shared::text"
        )]
        collection: Arc<str>,
        kind: ChangeKind,
        #[serde(
            serialize_with = "shared::serialize",
            deserialize_with = "shared::record"
        )]
        record: Arc<Record>,
    },
    /// A collection was created, changed or dropped. `pipeline` names the pipeline of an
    /// exposed model.
    Collection {
        name: String,
        kind: SchemaKind,
        pipeline: Option<String>,
    },
    /// The documents of a search index changed (an ingest, or documents removed); `version`
    /// is the index's version after the change (`_search_indexes.version`).
    SearchIndex { index: String, version: i64 },
}

/// A change with where and in which order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Increasing per origin, from 1.
    pub sequence: u64,
    /// The process that committed it (a random id per [`ChangeFeed`]).
    pub origin: String,
    pub change: Change,
}

/// The process's change feed.
#[derive(Debug)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<Envelope>>,
    sequence: AtomicU64,
    origin: String,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            tx: broadcast::channel(CAPACITY).0,
            sequence: AtomicU64::new(0),
            origin: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

impl ChangeFeed {
    /// Every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }

    /// Whether anyone listens: writers skip building changes nobody receives.
    pub fn listening(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// This process's origin id.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Publishes a change committed by this process.
    pub(crate) fn publish(&self, change: Change) {
        if !self.listening() {
            return;
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = self.tx.send(Arc::new(Envelope {
            sequence,
            origin: self.origin.clone(),
            change,
        }));
    }
}

/// Serde for shared values, as their contents (serde's `rc` feature would rebuild every crate).
mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T, S>(value: &Arc<T>, s: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize + ?Sized,
        S: Serializer,
    {
        (**value).serialize(s)
    }

    pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }

    pub(super) fn record<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<super::Record>, D::Error> {
        super::Record::deserialize(d).map(Arc::new)
    }
}

/// A record change, for the writers.
pub(crate) fn record(collection: &str, kind: ChangeKind, record: Record) -> Change {
    Change::Record {
        collection: Arc::from(collection),
        kind,
        record: Arc::new(record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_reach_listeners_in_order_and_round_trip_as_json() {
        let feed = ChangeFeed::default();
        feed.publish(Change::SearchIndex {
            index: "lost".into(),
            version: 1,
        });
        let mut rx = feed.subscribe();
        let mut row = Record::new();
        row.insert("id".into(), "r1".into());
        feed.publish(record("posts", ChangeKind::Create, row));
        feed.publish(Change::Collection {
            name: "posts".into(),
            kind: SchemaKind::Updated,
            pipeline: None,
        });
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(
            (first.sequence, second.sequence),
            (1, 2),
            "nothing is counted unheard"
        );
        let json = serde_json::to_value(&*first).unwrap();
        assert_eq!(json["change"]["type"], "record");
        assert_eq!(json["change"]["kind"], "create");
        assert_eq!(json["change"]["record"]["id"], "r1");
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, *first);
    }
}

/// The feed as a store publishes it, on a real SQLite file.
#[cfg(test)]
mod store_tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::sqlite::SqliteDatabase;
    use crate::{Access, Store};

    async fn next(rx: &mut broadcast::Receiver<Arc<Envelope>>) -> Change {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a change within 5 s")
            .expect("the feed is open")
            .change
            .clone()
    }

    #[tokio::test]
    async fn schema_and_record_writes_are_published_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("app.db"), 2).unwrap();
        let store = Store::with_database(Arc::new(db), &dir.path().join("migrations"))
            .await
            .unwrap();
        let mut rx = store.subscribe();
        store
            .create_collection(
                &json!({"name": "notes", "fields": [{"name": "title", "type": "text"}]}),
            )
            .await
            .unwrap();
        assert_eq!(
            next(&mut rx).await,
            Change::Collection {
                name: "notes".into(),
                kind: SchemaKind::Created,
                pipeline: None
            }
        );
        let body = json!({"title": "hello"});
        let created = store
            .create_record("notes", body.as_object().unwrap(), &Access::Superuser)
            .await
            .unwrap();
        let Change::Record {
            collection,
            kind,
            record,
        } = next(&mut rx).await
        else {
            panic!("a record change");
        };
        assert_eq!((&*collection, kind), ("notes", ChangeKind::Create));
        assert_eq!(*record, created);
        store.delete_collection("notes").await.unwrap();
        assert!(matches!(
            next(&mut rx).await,
            Change::Collection {
                kind: SchemaKind::Dropped,
                ..
            }
        ));
    }
}
