//! The `builtin` embedder: offline, deterministic, no download, thousands of chunks a second.
//!
//! A static token-embedding model distilled from all-MiniLM-L6-v2 the model2vec way: every
//! WordPiece token was run once through the transformer, its output mean-pooled, the table
//! reduced to [`DIMS`] dimensions by PCA and each row scaled by a SIF weight from the token's
//! frequency rank, so common tokens count less. A text's vector is the normalised sum of its
//! tokens' rows; no corpus statistics are involved, so a vector depends on its text alone.
//! `tools/builtin-embedder/` rebuilds the assets and records how this was chosen and measured.

use std::sync::LazyLock;

use async_trait::async_trait;

use super::{Embedder, Purpose, normalize};
use crate::error::SearchError;

mod wordpiece;

use wordpiece::WordPiece;

/// Dimensions of builtin vectors.
pub const DIMS: usize = 256;
/// The embedder's identity: it changes whenever the assets or the algorithm would change a
/// vector.
pub const ID: &str = "builtin-static-v1";

const VOCAB_SIZE: usize = 30_522;
const VOCAB: &str = include_str!("../../../assets/builtin/vocab.txt");
/// `b"BSE1"`, u32 vocab size, u32 dims (little-endian), vocab f32 row scales, then
/// vocab x dims int8 values; row i is `scale[i] * values[i]`.
const TABLE: &[u8] = include_bytes!("../../../assets/builtin/static-v1.bin");
const HEADER: usize = 12;
const _: () = assert!(TABLE.len() == HEADER + VOCAB_SIZE * (4 + DIMS));

struct Model {
    tokenizer: WordPiece,
    scales: Vec<f32>,
    values: &'static [u8],
}

static MODEL: LazyLock<Model> = LazyLock::new(|| {
    let body = &TABLE[HEADER..];
    let (scales, values) = body.split_at(VOCAB_SIZE * 4);
    Model {
        tokenizer: WordPiece::new(VOCAB),
        scales: scales
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        values,
    }
});

/// The builtin embedder.
#[derive(Debug, Default)]
pub struct Builtin;

/// Embeds one text into a unit vector of [`DIMS`] dimensions (all zeros when the text has no
/// token with a vector, e.g. when it is empty).
pub fn embed_one(text: &str) -> Vec<f32> {
    let model = &*MODEL;
    let mut v = vec![0.0f32; DIMS];
    model.tokenizer.tokenize(text, |id| {
        let i = id as usize;
        let (Some(&scale), Some(row)) = (
            model.scales.get(i),
            model.values.get(i * DIMS..(i + 1) * DIMS),
        ) else {
            return;
        };
        if scale == 0.0 {
            return;
        }
        for (x, &q) in v.iter_mut().zip(row) {
            *x += scale * f32::from(q.cast_signed());
        }
    });
    normalize(&mut v);
    v
}

/// Texts embedded on the calling task; more go to the blocking pool.
const INLINE_BATCH: usize = 64;

#[async_trait]
impl Embedder for Builtin {
    fn id(&self) -> &str {
        ID
    }

    /// A query or a short document is embedded in place (microseconds); a large batch — a
    /// long document's chunks — goes to the blocking pool so it does not stall the runtime.
    async fn embed(
        &self,
        texts: &[String],
        _purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, SearchError> {
        if texts.len() <= INLINE_BATCH {
            return Ok(texts.iter().map(|t| embed_one(t)).collect());
        }
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || texts.iter().map(|t| embed_one(t)).collect())
            .await
            .map_err(|e| SearchError::embed_from("the embedding task failed", e))
    }
}

#[cfg(test)]
mod tests;
