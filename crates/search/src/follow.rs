//! Collection-backed indexes follow record writes: every create, update and delete on the
//! store's change feed re-indexes or removes that record's document, and a full sync at
//! start (or after the feed lagged) catches up with writes made while nobody listened.

use std::collections::HashSet;
use std::sync::Arc;

use brigade_core::settings::IndexSource;
use brigade_store::query::ListParams;
use brigade_store::{Access, Change, ChangeKind, Record, StoreError};
use serde_json::Value as Json;
use tokio::sync::broadcast::error::RecvError;

use crate::document::Format;
use crate::error::SearchError;
use crate::index::Index;
use crate::ingest::{self, NewDocument};
use crate::service::Search;

/// Longest field value used as a document title.
const MAX_TITLE_CHARS: usize = 200;

/// The document of a record: the first field is the title when it is short text, every
/// field's text is the body.
pub(crate) fn record_document(
    collection: &str,
    fields: &[String],
    record: &Record,
) -> Option<NewDocument> {
    let id = record.get("id")?.as_str()?.to_string();
    let text_of = |v: &Json| match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let values: Vec<String> = fields
        .iter()
        .map(|f| record.get(f).map(text_of).unwrap_or_default())
        .collect();
    let title = values
        .first()
        .filter(|t| {
            !t.trim().is_empty() && t.chars().count() <= MAX_TITLE_CHARS && !t.contains('\n')
        })
        .cloned();
    let body_fields = if title.is_some() && values.len() > 1 {
        &values[1..]
    } else {
        &values[..]
    };
    let body = body_fields
        .iter()
        .filter(|v| !v.trim().is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n\n");
    Some(NewDocument {
        title: Some(title.unwrap_or_else(|| format!("{collection} {id}"))),
        path_or_url: format!("/api/collections/{collection}/records/{id}"),
        format: Format::Markdown,
        body: body.into_bytes(),
        metadata: serde_json::json!({ "collection": collection }),
        id,
    })
}

fn collection_of(index: &Index) -> Option<(&str, &[String])> {
    match &index.settings.source {
        IndexSource::Collection { name, fields } => Some((name, fields)),
        _ => None,
    }
}

/// Re-indexes every record of the index's collection and drops documents of records that
/// are gone.
///
/// # Errors
/// Store and embedder errors; a missing collection is not one (nothing to index yet).
pub async fn sync(search: &Search, index: &Index) -> Result<(), SearchError> {
    let Some((collection, fields)) = collection_of(index) else {
        return Ok(());
    };
    let store = search.store();
    let mut seen = HashSet::new();
    let mut page = 1;
    loop {
        let params = ListParams {
            sort: Some("id".into()),
            page: Some(page.to_string()),
            per_page: Some("500".into()),
            skip_total: Some("true".into()),
            ..ListParams::default()
        };
        let result = match store
            .list_records(collection, &params, &Access::Superuser)
            .await
        {
            Ok(r) => r,
            Err(StoreError::CollectionNotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let n = result.items.len();
        let docs: Vec<NewDocument> = result
            .items
            .iter()
            .filter_map(|r| record_document(collection, fields, r))
            .collect();
        seen.extend(docs.iter().map(|d| d.id.clone()));
        ingest::documents(store, index, docs).await?;
        if n < 500 {
            break;
        }
        page += 1;
    }
    let known = store
        .search_index(index.name())
        .document_hashes(None)
        .await?;
    for id in known.keys().filter(|id| !seen.contains(*id)) {
        search.delete_document(index.name(), id).await?;
    }
    Ok(())
}

/// Follows the change feed for every collection-backed index until the store closes.
pub async fn follow(search: Arc<Search>) {
    let indexes: Vec<Arc<Index>> = search
        .indexes()
        .filter(|i| collection_of(i).is_some())
        .cloned()
        .collect();
    if indexes.is_empty() {
        return;
    }
    let mut feed = search.store().subscribe();
    for index in &indexes {
        if let Err(e) = sync(&search, index).await {
            tracing::error!(index = index.name(), "search sync failed: {e}");
        }
    }
    loop {
        match feed.recv().await {
            Ok(envelope) => {
                let Change::Record {
                    collection: changed,
                    kind,
                    record,
                } = &envelope.change
                else {
                    continue;
                };
                for index in &indexes {
                    let Some((collection, fields)) = collection_of(index) else {
                        continue;
                    };
                    if &**changed != collection {
                        continue;
                    }
                    let outcome = if *kind == ChangeKind::Delete {
                        match record.get("id").and_then(Json::as_str) {
                            Some(id) => search.delete_document(index.name(), id).await.map(|_| ()),
                            None => Ok(()),
                        }
                    } else {
                        match record_document(collection, fields, record) {
                            Some(doc) => ingest::documents(search.store(), index, vec![doc])
                                .await
                                .map(|_| ()),
                            None => Ok(()),
                        }
                    };
                    if let Err(e) = outcome {
                        tracing::error!(index = index.name(), "indexing a record failed: {e}");
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "search fell behind the change feed; re-syncing collection indexes"
                );
                for index in &indexes {
                    if let Err(e) = sync(&search, index).await {
                        tracing::error!(index = index.name(), "search sync failed: {e}");
                    }
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_documents_titled_by_their_first_field() {
        let record: Record = serde_json::from_value(serde_json::json!({
            "id": "r1", "title": "Hello", "body": "World **bold**", "views": 3
        }))
        .unwrap();
        let doc = record_document(
            "posts",
            &["title".into(), "body".into(), "views".into()],
            &record,
        )
        .unwrap();
        assert_eq!(doc.id, "r1");
        assert_eq!(doc.title.as_deref(), Some("Hello"));
        assert_eq!(String::from_utf8(doc.body).unwrap(), "World **bold**\n\n3");
        assert_eq!(doc.path_or_url, "/api/collections/posts/records/r1");
        let long: Record =
            serde_json::from_value(serde_json::json!({"id": "r2", "body": "x".repeat(300)}))
                .unwrap();
        let doc = record_document("posts", &["body".into()], &long).unwrap();
        assert_eq!(doc.title.as_deref(), Some("posts r2"));
        assert_eq!(doc.body.len(), 300);
    }
}
