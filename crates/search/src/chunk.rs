//! Chunking by structure: sections stay apart, paragraphs are packed up to a token limit,
//! and consecutive chunks of a section overlap. (Interim: words as tokens.)

use crate::document::Parsed;

/// `chunk = { max_tokens, overlap }` of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    pub max_tokens: usize,
    pub overlap: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 300,
            overlap: 40,
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// 0-based position in the document.
    pub ordinal: usize,
    /// The heading path, joined with ` > ` (empty when none).
    pub heading: String,
    /// The chunk's text.
    pub text: String,
}

/// Splits `doc` into chunks of at most `config.max_tokens` tokens.
pub fn chunk(doc: &Parsed, config: &ChunkConfig) -> Vec<Chunk> {
    let mut out = Vec::new();
    let max = config.max_tokens.max(1);
    let step = max.saturating_sub(config.overlap.min(max / 2)).max(1);
    for section in &doc.sections {
        let words: Vec<&str> = section.text.split_whitespace().collect();
        let mut start = 0;
        while start < words.len() {
            let end = (start + max).min(words.len());
            out.push(Chunk {
                ordinal: out.len(),
                heading: section.headings.join(" > "),
                text: words[start..end].join(" "),
            });
            if end == words.len() {
                break;
            }
            start += step;
        }
    }
    out
}
