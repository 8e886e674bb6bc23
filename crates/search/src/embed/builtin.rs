//! The `builtin` embedder: offline, deterministic, no download. (Interim: signed feature
//! hashing of stemmed words and their bigrams; to be replaced by the measured choice.)

use async_trait::async_trait;

use super::{Embedder, Purpose, normalize};
use crate::error::SearchError;

/// Dimensions of builtin vectors.
pub const DIMS: usize = 384;

/// The builtin embedder.
#[derive(Debug, Default)]
pub struct Builtin;

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn add(v: &mut [f32], feature: &str, weight: f32) {
    let h = fnv(feature.as_bytes());
    let i = usize::try_from(h % DIMS as u64).unwrap_or(0);
    let sign = if (h >> 32) & 1 == 0 { 1.0 } else { -1.0 };
    v[i] += sign * weight;
}

/// Embeds one text.
pub fn embed_one(text: &str) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .collect();
    for w in &words {
        add(&mut v, w, 1.0);
    }
    for pair in words.windows(2) {
        add(&mut v, &format!("{} {}", pair[0], pair[1]), 0.5);
    }
    normalize(&mut v);
    v
}

#[async_trait]
impl Embedder for Builtin {
    fn id(&self) -> &str {
        "builtin-hash-v0"
    }

    async fn embed(
        &self,
        texts: &[String],
        _purpose: Purpose,
    ) -> Result<Vec<Vec<f32>>, SearchError> {
        Ok(texts.iter().map(|t| embed_one(t)).collect())
    }
}
