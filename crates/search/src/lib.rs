//! Brigade's search and RAG: indexes over folders of documents or a collection's fields,
//! searched by keywords (the store's full-text index), by meaning (embeddings) or both
//! (reciprocal rank fusion), and questions answered from the best passages with their sources.
//!
//! # Layout
//! - [`service`]: [`Search`], the verbs the API and CLI use.
//! - [`document`]: markdown, text, HTML and PDF to a title and sections.
//! - [`chunk`]: sections to chunks within a token budget, with overlap.
//! - [`embed`]: the [`embed::Embedder`] trait and the builtin, local and OpenAI embedders.
//! - [`index`]: one index at runtime, its in-memory vectors kept fresh from the store.
//! - [`vector`]: the in-memory vector index (exact and HNSW).
//! - [`ingest`], [`query`], [`rag`]: documents in, hits out, answers with sources.
//! - [`terms`], [`redact`], [`cache`]: query words and highlights, log redaction, the answer cache.
//! - [`llm`]: the client of an OpenAI-compatible chat API.

pub mod cache;
pub mod chunk;
pub mod document;
pub mod embed;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod fake_openai;
pub mod follow;
pub mod index;
pub mod ingest;
pub mod llm;
pub mod query;
pub mod rag;
pub mod redact;
pub mod service;
pub mod terms;
#[cfg(any(test, feature = "testing"))]
pub mod test_model;
#[cfg(any(test, feature = "testing"))]
pub mod test_pdf;
pub mod vector;
pub mod walk;

pub use error::SearchError;
pub use service::Search;
