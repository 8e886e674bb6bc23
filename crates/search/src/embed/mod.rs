//! Embedders behind one trait: `builtin` (offline, shipped in the binary), `local:PATH` (a
//! sentence-transformers model directory run on the CPU) and `openai:MODEL` (any
//! OpenAI-compatible `/v1/embeddings`). Every embedder returns L2-normalised vectors, so a dot
//! product is the cosine similarity everywhere downstream.

use async_trait::async_trait;

use crate::error::SearchError;

pub mod builtin;
pub mod local;
pub mod openai;

/// What a text is embedded for; some models embed queries and passages differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Query,
    Document,
}

/// Turns texts into unit vectors.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// A stable identity that changes whenever the vectors would (model, version, dims): the
    /// embedding cache is keyed by it and by the text's hash.
    fn id(&self) -> &str;

    /// Embeds `texts` in order, one unit vector each, all of the same length.
    ///
    /// # Errors
    /// [`SearchError::Embed`] when the model cannot run or its server fails.
    async fn embed(&self, texts: &[String], purpose: Purpose)
    -> Result<Vec<Vec<f32>>, SearchError>;
}

/// Scales `v` to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}
