//! Brigade's search and RAG: indexes over folders of documents or a collection's fields,
//! searched by keywords (the store's full-text index), by meaning (embeddings) or both
//! (reciprocal rank fusion), and questions answered from the best passages with their sources.
//!
//! # Layout
//! - [`document`]: markdown, text, HTML and PDF to a title and sections.
//! - [`chunk`]: sections to chunks within a token budget, with overlap.
//! - [`embed`]: the [`embed::Embedder`] trait and the builtin, local and OpenAI embedders.
//! - [`vector`]: the in-memory vector index (exact and HNSW).

pub mod chunk;
pub mod document;
pub mod embed;
pub mod error;
#[cfg(any(test, feature = "fake-openai"))]
pub mod fake_openai;
pub mod llm;
pub mod vector;

pub use error::SearchError;
