//! Which documents a caller can still see, to check cached answers: a RAG answer is cached by
//! index version, and a change that leaves a document's text alone (a record's owner, a
//! document's metadata) does not bump the version, yet may take the document out of the
//! caller's list rule or the index's rule. Before a cached answer is served its sources
//! are checked against the caller's restriction as it compiles now.

use std::collections::HashSet;

use brigade_core::value::Value;

use super::Restriction;
use super::SearchIndex;
use crate::conn::ColType;
use crate::error::StoreError;
use crate::sql::Sql;

impl SearchIndex<'_> {
    /// Of `documents` of the index, those with a chunk that `restriction` allows now.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn visible_documents(
        self,
        documents: &[String],
        restriction: &Restriction,
    ) -> Result<HashSet<String>, StoreError> {
        let index = self.name;
        if documents.is_empty() {
            return Ok(HashSet::new());
        }
        let mut conn = self.store.db.read().await?;
        let dialect = conn.dialect();
        let mut sql = Sql::new(dialect);
        sql.push("SELECT DISTINCT document_id FROM _search_chunks WHERE index_name = ")
            .bind(Value::Text(index.to_string()))
            .push(" AND document_id IN (");
        for (i, id) in documents.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Value::Text(id.clone()));
        }
        sql.push(") AND seq IN (")
            .append(Restriction::chunk_ids(Some(restriction), index, dialect))
            .push(")");
        let rows = conn.query(&sql, &[ColType::Text]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(Value::Text(id)) => Some(id),
                _ => None,
            })
            .collect())
    }
}
