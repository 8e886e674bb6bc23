//! The storage of search indexes, reached through [`Store::search_index`]: documents, their
//! chunks, cached embeddings and keyword search, written once for both dialects except for
//! the keyword engine (see `ddl`).
//!
//! A document and its chunks change in one transaction that also bumps the index's
//! `version`, so a reader (the in-memory vector index of any process, the answer cache)
//! can tell cheaply whether anything changed.

pub(crate) mod ddl;
mod keyword;
mod visible;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use brigade_core::schema::{Collection, Field, FieldType};
use brigade_core::value::Value;

use crate::access::{Access, RuleOp, rule_for};
use crate::conn::{ColType, Conn, Row};
use crate::ddl::table;
use crate::error::StoreError;
use crate::handle::Store;
use crate::records::{filter_sql, rule_sql};
use crate::sql::{Dialect, Sql};

/// One search index's documents, chunks, vectors and keyword entries. Borrowed from a
/// [`Store`] by [`Store::search_index`].
#[derive(Clone, Copy)]
pub struct SearchIndex<'a> {
    store: &'a Store,
    name: &'a str,
}

impl Store {
    /// The search index called `name` (its tables exist once [`SearchIndex::open`] ran).
    pub fn search_index<'a>(&'a self, name: &'a str) -> SearchIndex<'a> {
        SearchIndex { store: self, name }
    }
}

/// A chunk to store.
#[derive(Debug, Clone)]
pub struct ChunkInput {
    pub ordinal: i64,
    pub heading: String,
    pub text: String,
    /// Hash of the embedded text: the key of its cached vector.
    pub hash: String,
    /// Length in tokens (BM25 document length on PostgreSQL).
    pub tokens: i64,
}

/// A document to store with its chunks.
#[derive(Debug, Clone)]
pub struct DocumentInput {
    pub id: String,
    pub title: String,
    /// A path relative to the app directory, or a URL.
    pub path: String,
    /// `markdown`, `text`, `html`, `pdf` or `record`.
    pub kind: String,
    /// Hash of the source bytes and the chunking settings: unchanged means skip.
    pub hash: String,
    pub metadata: serde_json::Value,
    pub chunks: Vec<ChunkInput>,
}

/// A stored document (without its chunks).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DocumentRow {
    pub id: String,
    pub title: String,
    pub path: String,
    pub kind: String,
    pub hash: String,
    pub chunks: i64,
    /// Posted metadata and front matter (`null` when there is none).
    pub metadata: serde_json::Value,
    pub created: String,
    pub updated: String,
}

/// A stored chunk with its document's title and path.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub seq: u64,
    pub document_id: String,
    pub ordinal: i64,
    pub heading: String,
    pub text: String,
    pub title: String,
    pub path: String,
}

/// What a document write changed, for the in-memory vector index.
#[derive(Debug, Clone, Default)]
pub struct DocumentChange {
    /// Chunk ids that no longer exist.
    pub removed: Vec<u64>,
    /// New chunk ids with the hash of their vector.
    pub added: Vec<(u64, String)>,
    pub version: i64,
}

/// Which documents a search may see: a compiled `filter=` and access rule, as a condition
/// on `document_id`.
#[derive(Debug, Clone)]
pub struct Restriction(Sql);

impl Restriction {
    /// `SELECT seq FROM _search_chunks WHERE ...`: the chunks of `index` this allows (all of
    /// the index's chunks for `None`).
    pub(crate) fn chunk_ids(
        restriction: Option<&Restriction>,
        index: &str,
        dialect: Dialect,
    ) -> Sql {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT seq FROM _search_chunks WHERE index_name = ")
            .bind(Value::Text(index.to_string()));
        if let Some(r) = restriction {
            sql.push(" AND ").append(r.0.clone());
        }
        sql
    }
}

/// Where an index's documents come from, for filters and rules.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Files or posted documents; `rule` is the index's access rule (None = anyone).
    Documents { rule: Option<&'a str> },
    /// Records of a collection: filters and the list rule apply to the collection.
    Collection(&'a str),
}

/// The JSON column of `_search_documents` whose keys filters and rules may name.
const METADATA: &str = "metadata";

/// The columns a filter may use on a document index: `id`, `title`, `path`, `kind`,
/// `created`, `updated` (other names are [`METADATA`] keys).
fn documents_collection() -> Arc<Collection> {
    static DOCUMENTS: LazyLock<Arc<Collection>> = LazyLock::new(|| {
        let field = |id: &str, name: &str| Field {
            id: id.into(),
            name: name.into(),
            kind: FieldType::Text,
            required: false,
            unique: false,
            default: None,
            options: Default::default(),
        };
        Arc::new(Collection {
            id: "c_search_docs".into(),
            name: "_search_documents".into(),
            fields: vec![
                field("f1", "title"),
                field("f2", "path"),
                field("f3", "kind"),
            ],
            indexes: Vec::new(),
            rules: Default::default(),
            created: String::new(),
            updated: String::new(),
            pipeline: None,
            system_columns: true,
        })
    });
    Arc::clone(&DOCUMENTS)
}

fn text(v: Value) -> String {
    match v {
        Value::Text(s) => s,
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

/// Appends `a, b, ...` with each text bound.
fn bind_texts(sql: &mut Sql, texts: &[String]) {
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Value::Text(t.clone()));
    }
}

/// Appends `(id, id, ...)` with each id bound.
pub(crate) fn bind_ids(sql: &mut Sql, ids: &[u64]) {
    sql.push("(");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Value::Int(i64::try_from(*id).unwrap_or(i64::MAX)));
    }
    sql.push(")");
}

fn seq(v: &Value) -> u64 {
    u64::try_from(int(v)).unwrap_or(0)
}

async fn bump(tx: &mut dyn Conn, index: &str, chunks: i64, tokens: i64) -> Result<i64, StoreError> {
    let mut sql = Sql::new(tx.dialect());
    sql.push("UPDATE _search_indexes SET version = version + 1, chunks = chunks + ")
        .bind(Value::Int(chunks))
        .push(", tokens = tokens + ")
        .bind(Value::Int(tokens))
        .push(", updated = ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(" WHERE name = ")
        .bind(Value::Text(index.to_string()))
        .push(" RETURNING version");
    let rows = tx.query(&sql, &[ColType::Int]).await?;
    rows.first()
        .and_then(|r| r.first())
        .map(int)
        .ok_or_else(|| StoreError::internal(format!("search index `{index}` is not open")))
}

/// Removes a document's chunks (and their keyword entries); returns the removed ids and
/// the chunk and token counts removed.
async fn remove_chunks(
    tx: &mut dyn Conn,
    index: &str,
    document: &str,
) -> Result<(Vec<u64>, i64, i64), StoreError> {
    let dialect = tx.dialect();
    let mut sql = Sql::new(dialect);
    sql.push("SELECT seq, tokens FROM _search_chunks WHERE index_name = ")
        .bind(Value::Text(index.to_string()))
        .push(" AND document_id = ")
        .bind(Value::Text(document.to_string()));
    let rows = tx.query(&sql, &[ColType::Int, ColType::Int]).await?;
    if rows.is_empty() {
        return Ok((Vec::new(), 0, 0));
    }
    let seqs: Vec<u64> = rows.iter().map(|r| seq(&r[0])).collect();
    let tokens: i64 = rows.iter().map(|r| int(&r[1])).sum();
    keyword::remove(tx, index, document, &seqs).await?;
    let mut sql = Sql::new(dialect);
    sql.push("DELETE FROM _search_chunks WHERE index_name = ")
        .bind(Value::Text(index.to_string()))
        .push(" AND document_id = ")
        .bind(Value::Text(document.to_string()));
    tx.execute(&sql).await?;
    let n = i64::try_from(seqs.len()).unwrap_or(i64::MAX);
    Ok((seqs, n, tokens))
}

impl SearchIndex<'_> {
    /// Prepares the index (its keyword table) and records `fingerprint` (embedder and
    /// chunking). When the fingerprint changed, every document of the index is dropped so
    /// the next ingest rebuilds it; returns whether that happened.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn open(self, fingerprint: &str) -> Result<bool, StoreError> {
        let name = self.name;
        let mut tx = self.store.db.begin().await?;
        let dialect = tx.dialect();
        if let Some(ddl) = ddl::create_index(dialect, name)? {
            tx.execute_script(&ddl).await?;
        }
        let mut sql = Sql::new(dialect);
        sql.push("SELECT fingerprint FROM _search_indexes WHERE name = ")
            .bind(Value::Text(name.to_string()));
        let stored = tx.query(&sql, &[ColType::Text]).await?;
        let reset = match stored.into_iter().next().and_then(|r| r.into_iter().next()) {
            None => {
                let mut sql = Sql::new(dialect);
                sql.push(
                    "INSERT INTO _search_indexes (name, version, fingerprint, updated) VALUES (",
                )
                .bind(Value::Text(name.to_string()))
                .push(", 1, ")
                .bind(Value::Text(fingerprint.to_string()))
                .push(", ")
                .bind(Value::Text(brigade_core::time::now()))
                .push(")");
                tx.execute(&sql).await?;
                false
            }
            Some(Value::Text(old)) if old == fingerprint => false,
            Some(_) => {
                keyword::clear(tx.as_mut(), name).await?;
                for table in ["_search_chunks", "_search_documents"] {
                    let mut sql = Sql::new(dialect);
                    sql.push("DELETE FROM ")
                        .push(table)
                        .push(" WHERE index_name = ")
                        .bind(Value::Text(name.to_string()));
                    tx.execute(&sql).await?;
                }
                let mut sql = Sql::new(dialect);
                sql.push("UPDATE _search_indexes SET version = version + 1, chunks = 0, tokens = 0, fingerprint = ")
                    .bind(Value::Text(fingerprint.to_string()))
                    .push(" WHERE name = ")
                    .bind(Value::Text(name.to_string()));
                tx.execute(&sql).await?;
                true
            }
        };
        tx.commit().await?;
        Ok(reset)
    }

    /// The index's version: it changes with every document written or deleted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn version(self) -> Result<i64, StoreError> {
        let name = self.name;
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT version FROM _search_indexes WHERE name = ")
            .bind(Value::Text(name.to_string()));
        let rows = conn.query(&sql, &[ColType::Int]).await?;
        Ok(rows.first().and_then(|r| r.first()).map_or(0, int))
    }

    /// `document id → hash` of the index's documents: all of them, or only `ids` (those
    /// that exist) — a record write checks one document, not the whole index.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn document_hashes(
        self,
        ids: Option<&[String]>,
    ) -> Result<HashMap<String, String>, StoreError> {
        let name = self.name;
        let mut conn = self.store.db.read().await?;
        let parts: Vec<Option<&[String]>> =
            ids.map_or_else(|| vec![None], |ids| ids.chunks(500).map(Some).collect());
        let mut out = HashMap::new();
        for part in parts {
            let mut sql = Sql::new(conn.dialect());
            sql.push("SELECT id, hash FROM _search_documents WHERE index_name = ")
                .bind(Value::Text(name.to_string()));
            if let Some(part) = part {
                sql.push(" AND id IN (");
                bind_texts(&mut sql, part);
                sql.push(")");
            }
            for row in conn.query(&sql, &[ColType::Text, ColType::Text]).await? {
                let mut it = row.into_iter();
                out.insert(
                    text(it.next().unwrap_or(Value::Null)),
                    text(it.next().unwrap_or(Value::Null)),
                );
            }
        }
        Ok(out)
    }

    /// Cached vectors of `embedder` for the given text hashes (those found). The cache is
    /// shared by every index: a text one index embedded is not embedded again for another.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn cached_vectors(
        self,
        embedder: &str,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut out = HashMap::new();
        let mut conn = self.store.db.read().await?;
        for part in hashes.chunks(500) {
            let mut sql = Sql::new(conn.dialect());
            sql.push("SELECT hash, vector FROM _search_vectors WHERE embedder = ")
                .bind(Value::Text(embedder.to_string()))
                .push(" AND hash IN (");
            bind_texts(&mut sql, part);
            sql.push(")");
            for row in conn.query(&sql, &[ColType::Text, ColType::Blob]).await? {
                let mut it = row.into_iter();
                let hash = text(it.next().unwrap_or(Value::Null));
                if let Some(Value::Blob(v)) = it.next() {
                    out.insert(hash, v);
                }
            }
        }
        Ok(out)
    }

    /// Writes `doc` (replacing its previous chunks) and caches `vectors` (`hash → bytes`) of
    /// `embedder`, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn put_document(
        self,
        embedder: &str,
        doc: &DocumentInput,
        vectors: &[(String, Vec<u8>)],
    ) -> Result<DocumentChange, StoreError> {
        let index = self.name;
        let mut tx = self.store.db.begin().await?;
        let dialect = tx.dialect();
        for (hash, vector) in vectors {
            let mut sql = Sql::new(dialect);
            sql.push("INSERT INTO _search_vectors (embedder, hash, vector) VALUES (")
                .bind(Value::Text(embedder.to_string()))
                .push(", ")
                .bind(Value::Text(hash.clone()))
                .push(", ")
                .bind(Value::Blob(vector.clone()))
                .push(") ON CONFLICT (embedder, hash) DO NOTHING");
            tx.execute(&sql).await?;
        }
        let (removed, old_chunks, old_tokens) = remove_chunks(tx.as_mut(), index, &doc.id).await?;
        let now = brigade_core::time::now();
        let mut sql = Sql::new(dialect);
        sql.push(
            "INSERT INTO _search_documents (index_name, id, title, path, kind, hash, metadata, \
             chunks, created, updated) VALUES (",
        );
        let values = [
            Value::Text(index.to_string()),
            Value::Text(doc.id.clone()),
            Value::Text(doc.title.clone()),
            Value::Text(doc.path.clone()),
            Value::Text(doc.kind.clone()),
            Value::Text(doc.hash.clone()),
            Value::Text(doc.metadata.to_string()),
            Value::Int(i64::try_from(doc.chunks.len()).unwrap_or(i64::MAX)),
            Value::Text(now.clone()),
            Value::Text(now),
        ];
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(v);
        }
        sql.push(
            ") ON CONFLICT (index_name, id) DO UPDATE SET title = excluded.title, path = \
             excluded.path, kind = excluded.kind, hash = excluded.hash, metadata = \
             excluded.metadata, chunks = excluded.chunks, updated = excluded.updated",
        );
        tx.execute(&sql).await?;
        let mut added = Vec::with_capacity(doc.chunks.len());
        for part in doc.chunks.chunks(64) {
            let mut sql = Sql::new(dialect);
            sql.push(
                "INSERT INTO _search_chunks (index_name, document_id, ordinal, heading, text, \
                 hash, tokens",
            );
            if dialect == Dialect::Postgres {
                sql.push(", tsv");
            }
            sql.push(") VALUES ");
            for (i, c) in part.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(Value::Text(index.to_string()))
                    .push(", ")
                    .bind(Value::Text(doc.id.clone()))
                    .push(", ")
                    .bind(Value::Int(c.ordinal))
                    .push(", ")
                    .bind(Value::Text(c.heading.clone()))
                    .push(", ")
                    .bind(Value::Text(c.text.clone()))
                    .push(", ")
                    .bind(Value::Text(c.hash.clone()))
                    .push(", ")
                    .bind(Value::Int(c.tokens));
                if dialect == Dialect::Postgres {
                    sql.push(", ")
                        .append(keyword::pg_tsvector(&doc.title, &c.heading, &c.text));
                }
                sql.push(")");
            }
            sql.push(" RETURNING seq, ordinal");
            let rows = tx.query(&sql, &[ColType::Int, ColType::Int]).await?;
            let by_ordinal: HashMap<i64, u64> =
                rows.iter().map(|r| (int(&r[1]), seq(&r[0]))).collect();
            for c in part {
                if let Some(&s) = by_ordinal.get(&c.ordinal) {
                    added.push((s, c.hash.clone()));
                }
            }
        }
        keyword::add(tx.as_mut(), index, doc, &added).await?;
        let tokens: i64 = doc.chunks.iter().map(|c| c.tokens).sum();
        let chunks = i64::try_from(doc.chunks.len()).unwrap_or(i64::MAX);
        let version = bump(tx.as_mut(), index, chunks - old_chunks, tokens - old_tokens).await?;
        tx.commit().await?;
        self.store
            .changes
            .publish(crate::changes::Change::SearchIndex {
                index: index.to_string(),
                version,
            });
        Ok(DocumentChange {
            removed,
            added,
            version,
        })
    }

    /// Deletes a document and its chunks; `None` when there was no such document.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn delete_document(self, id: &str) -> Result<Option<DocumentChange>, StoreError> {
        let index = self.name;
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("DELETE FROM _search_documents WHERE index_name = ")
            .bind(Value::Text(index.to_string()))
            .push(" AND id = ")
            .bind(Value::Text(id.to_string()));
        if tx.execute(&sql).await? == 0 {
            return Ok(None);
        }
        let (removed, chunks, tokens) = remove_chunks(tx.as_mut(), index, id).await?;
        let version = bump(tx.as_mut(), index, -chunks, -tokens).await?;
        tx.commit().await?;
        self.store
            .changes
            .publish(crate::changes::Change::SearchIndex {
                index: index.to_string(),
                version,
            });
        Ok(Some(DocumentChange {
            removed,
            added: Vec::new(),
            version,
        }))
    }

    /// Documents of the index, newest first, `limit` from `offset`, and the total.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn documents(
        self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<DocumentRow>, i64), StoreError> {
        let index = self.name;
        let mut conn = self.store.db.read().await?;
        let dialect = conn.dialect();
        let mut sql = Sql::new(dialect);
        sql.push("SELECT id, title, path, kind, hash, chunks, metadata, created, updated FROM _search_documents WHERE index_name = ")
            .bind(Value::Text(index.to_string()))
            .push(" ORDER BY updated DESC, id LIMIT ")
            .bind(Value::Int(limit))
            .push(" OFFSET ")
            .bind(Value::Int(offset));
        use ColType::{Int, Text};
        let rows = conn
            .query(&sql, &[Text, Text, Text, Text, Text, Int, Text, Text, Text])
            .await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let mut it = r.into_iter();
                let mut next = || it.next().unwrap_or(Value::Null);
                DocumentRow {
                    id: text(next()),
                    title: text(next()),
                    path: text(next()),
                    kind: text(next()),
                    hash: text(next()),
                    chunks: int(&next()),
                    metadata: serde_json::from_str(&text(next()))
                        .unwrap_or(serde_json::Value::Null),
                    created: text(next()),
                    updated: text(next()),
                }
            })
            .collect();
        let mut sql = Sql::new(dialect);
        sql.push("SELECT COUNT(*) FROM _search_documents WHERE index_name = ")
            .bind(Value::Text(index.to_string()));
        let total = conn.query(&sql, &[Int]).await?;
        Ok((items, total.first().and_then(|r| r.first()).map_or(0, int)))
    }

    /// Chunk ids and vectors of the index with ids above `after`, at most `limit`, in id
    /// order (chunks whose vector is not cached under `embedder` are left out).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn vectors(
        self,
        embedder: &str,
        after: u64,
        limit: i64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let index = self.name;
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push(
            "SELECT c.seq, v.vector FROM _search_chunks c JOIN _search_vectors v ON v.embedder = ",
        )
        .bind(Value::Text(embedder.to_string()))
        .push(" AND v.hash = c.hash WHERE c.index_name = ")
        .bind(Value::Text(index.to_string()))
        .push(" AND c.seq > ")
        .bind(Value::Int(i64::try_from(after).unwrap_or(i64::MAX)))
        .push(" ORDER BY c.seq LIMIT ")
        .bind(Value::Int(limit));
        let rows = conn.query(&sql, &[ColType::Int, ColType::Blob]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id = seq(&r[0]);
                match r.into_iter().nth(1) {
                    Some(Value::Blob(b)) => Some((id, b)),
                    _ => None,
                }
            })
            .collect())
    }

    /// Every chunk id of the index (to notice chunks deleted by another process).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn chunk_ids(self) -> Result<Vec<u64>, StoreError> {
        self.allowed(None).await
    }

    /// Chunk ids of the index that `restriction` allows (all when `None`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn allowed(self, restriction: Option<&Restriction>) -> Result<Vec<u64>, StoreError> {
        let index = self.name;
        let mut conn = self.store.db.read().await?;
        let sql = Restriction::chunk_ids(restriction, index, conn.dialect());
        let rows = conn.query(&sql, &[ColType::Int]).await?;
        Ok(rows.iter().map(|r| seq(&r[0])).collect())
    }

    /// The best chunks for `terms` by BM25 (FTS5 on SQLite, `tsvector` on PostgreSQL),
    /// `(chunk id, score)` best first. `terms` must be plain words (letters and digits).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn keyword(
        self,
        terms: &[String],
        k: usize,
        restriction: Option<&Restriction>,
    ) -> Result<Vec<(u64, f64)>, StoreError> {
        let index = self.name;
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.store.db.read().await?;
        keyword::search(conn.as_mut(), index, terms, k, restriction).await
    }

    /// Chunks by id, with their document's title and path, in the order asked.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn chunks(self, ids: &[u64]) -> Result<Vec<ChunkRow>, StoreError> {
        let index = self.name;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push(
            "SELECT c.seq, c.document_id, c.ordinal, c.heading, c.text, d.title, d.path FROM \
             _search_chunks c JOIN _search_documents d ON d.index_name = c.index_name AND d.id = \
             c.document_id WHERE c.index_name = ",
        )
        .bind(Value::Text(index.to_string()))
        .push(" AND c.seq IN ");
        bind_ids(&mut sql, ids);
        use ColType::{Int, Text};
        let rows: Vec<Row> = conn
            .query(&sql, &[Int, Text, Int, Text, Text, Text, Text])
            .await?;
        let mut by_id: HashMap<u64, ChunkRow> = rows
            .into_iter()
            .map(|r| {
                let mut it = r.into_iter();
                let mut next = || it.next().unwrap_or(Value::Null);
                let seq = seq(&next());
                (
                    seq,
                    ChunkRow {
                        seq,
                        document_id: text(next()),
                        ordinal: int(&next()),
                        heading: text(next()),
                        text: text(next()),
                        title: text(next()),
                        path: text(next()),
                    },
                )
            })
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// Compiles a search's `filter=` and the caller's access into a [`Restriction`]
    /// (`None`: every document).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] on key `filter` for a filter that does not compile,
    /// [`StoreError::Forbidden`] when the caller may not search the index,
    /// [`StoreError::CollectionNotFound`] for a collection-backed index whose collection is gone.
    pub fn restriction(
        self,
        scope: Scope<'_>,
        filter: Option<&str>,
        access: &Access,
    ) -> Result<Option<Restriction>, StoreError> {
        let index = self.name;
        let dialect = self.store.dialect();
        let lookup = self.store.lookup();
        let filter = filter.map(str::trim).filter(|f| !f.is_empty());
        // Document indexes filter on a fixed schema plus metadata keys; collection indexes
        // on the collection's fields.
        let (collection, rule, metadata) = match scope {
            Scope::Documents { rule } => {
                let c = documents_collection();
                let rule = match (access, rule.map(str::trim).filter(|r| !r.is_empty())) {
                    (Access::Caller(ctx), Some(rule)) => Some(
                        rule_sql(dialect, &c, rule, &lookup, ctx, Some(METADATA)).map_err(|e| {
                            StoreError::internal(format!(
                                "the rule of search index `{index}` does not compile: {e}"
                            ))
                        })?,
                    ),
                    _ => None,
                };
                (c, rule, Some(METADATA))
            }
            Scope::Collection(name) => {
                let c = self.store.collection(name)?;
                let rule = rule_for(dialect, &c, RuleOp::List, access, &lookup, None)?;
                (c, rule, None)
            }
        };
        let filter = filter
            .map(|f| filter_sql(dialect, &collection, f, &lookup, access, metadata).map(|c| c.sql))
            .transpose()?;
        if filter.is_none() && rule.is_none() {
            return Ok(None);
        }
        let mut sql = Sql::new(dialect);
        sql.push("document_id IN (SELECT id FROM ")
            .ident(&table(&collection)?);
        sql.push(" WHERE ");
        if matches!(scope, Scope::Documents { .. }) {
            sql.push("index_name = ")
                .bind(Value::Text(index.to_string()))
                .push(" AND ");
        }
        sql.push("(");
        match (filter, rule) {
            (Some(f), Some(r)) => {
                sql.push("(").append(f).push(") AND (").append(r).push(")");
            }
            (Some(f), None) | (None, Some(f)) => {
                sql.append(f);
            }
            (None, None) => {}
        }
        sql.push("))");
        Ok(Some(Restriction(sql)))
    }
}
