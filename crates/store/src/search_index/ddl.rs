//! Tables of search indexes. Chunks, documents and cached vectors are plain tables on both
//! backends; keyword search uses each backend's own engine: one contentless FTS5 table per
//! index on SQLite (so BM25 statistics are per index); on PostgreSQL, an inverted index in a
//! plain table (`_search_postings`: lexeme → chunk, weighted term frequency, chunk length,
//! made from each chunk's `tsvector`) and per-index document frequencies (`_search_df`), from
//! which BM25 is computed in SQL.

use crate::error::StoreError;
use crate::sql::{Dialect, Ident};

/// System step 9 on SQLite.
pub(crate) const SQLITE: &str = "
CREATE TABLE IF NOT EXISTS _search_indexes (name TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL, chunks INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0,
    updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _search_documents (index_name TEXT NOT NULL, id TEXT NOT NULL,
    title TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, hash TEXT NOT NULL,
    metadata TEXT NOT NULL, chunks INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (index_name, id));
CREATE TABLE IF NOT EXISTS _search_chunks (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    index_name TEXT NOT NULL, document_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL, text TEXT NOT NULL, hash TEXT NOT NULL, tokens INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS _search_chunks_document ON _search_chunks (index_name, document_id);
CREATE TABLE IF NOT EXISTS _search_vectors (embedder TEXT NOT NULL, hash TEXT NOT NULL,
    vector BLOB NOT NULL, PRIMARY KEY (embedder, hash));";

/// System step 9 on PostgreSQL.
pub(crate) const POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS _search_indexes (name TEXT PRIMARY KEY NOT NULL, version BIGINT NOT NULL,
    fingerprint TEXT NOT NULL, chunks BIGINT NOT NULL DEFAULT 0, tokens BIGINT NOT NULL DEFAULT 0,
    updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _search_documents (index_name TEXT NOT NULL, id TEXT NOT NULL,
    title TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, hash TEXT NOT NULL,
    metadata TEXT NOT NULL, chunks BIGINT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (index_name, id));
CREATE TABLE IF NOT EXISTS _search_chunks (seq BIGSERIAL PRIMARY KEY,
    index_name TEXT NOT NULL, document_id TEXT NOT NULL, ordinal BIGINT NOT NULL,
    heading TEXT NOT NULL, text TEXT NOT NULL, hash TEXT NOT NULL, tokens BIGINT NOT NULL,
    tsv TSVECTOR NOT NULL);
CREATE INDEX IF NOT EXISTS _search_chunks_document ON _search_chunks (index_name, document_id);
CREATE TABLE IF NOT EXISTS _search_postings (index_name TEXT NOT NULL, lexeme TEXT NOT NULL,
    seq BIGINT NOT NULL, tf DOUBLE PRECISION NOT NULL, len BIGINT NOT NULL,
    PRIMARY KEY (index_name, lexeme, seq) INCLUDE (tf, len));
CREATE INDEX IF NOT EXISTS _search_postings_seq ON _search_postings (seq);
CREATE TABLE IF NOT EXISTS _search_df (index_name TEXT NOT NULL, lexeme TEXT NOT NULL,
    df BIGINT NOT NULL, PRIMARY KEY (index_name, lexeme));
CREATE TABLE IF NOT EXISTS _search_vectors (embedder TEXT NOT NULL, hash TEXT NOT NULL,
    vector BYTEA NOT NULL, PRIMARY KEY (embedder, hash));";

/// The FTS5 table of index `name` (SQLite).
pub(crate) fn fts_table(name: &str) -> Result<Ident, StoreError> {
    Ident::parse(&format!("_search_fts_{name}"))
        .map_err(|n| StoreError::invalid("index", format!("`{n}` is not a valid index name")))
}

/// Statements that create the per-index structures, if any.
pub(crate) fn create_index(dialect: Dialect, name: &str) -> Result<Option<String>, StoreError> {
    Ok(match dialect {
        Dialect::Sqlite => Some(format!(
            "CREATE VIRTUAL TABLE IF NOT EXISTS {} USING fts5(title, heading, text, content='', \
             contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2')",
            fts_table(name)?
        )),
        Dialect::Postgres => None,
    })
}

/// The PostgreSQL text-search configuration (stemming and stop words of English).
pub(crate) const PG_CONFIG: &str = "english";
