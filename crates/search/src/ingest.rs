//! Ingestion: documents (files, posted documents, records) to chunks with vectors, written
//! one document per transaction. A document whose bytes did not change is skipped without
//! parsing; a chunk whose text was embedded before reuses the cached vector.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brigade_store::Store;
use brigade_store::search_index::{ChunkInput, DocumentInput};
use sha2::{Digest, Sha256};

use crate::chunk::{ChunkConfig, chunk};
use crate::document::{self, Format};
use crate::embed::Purpose;
use crate::error::SearchError;
use crate::index::{Index, to_bytes};

/// Longest time one document may take to parse (PDFs are hostile input).
pub const PARSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// A document given directly (the API, a record).
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub title: Option<String>,
    pub path_or_url: String,
    pub format: Format,
    pub body: Vec<u8>,
    pub metadata: serde_json::Value,
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    /// Documents seen.
    pub documents: usize,
    /// Documents (re)indexed.
    pub indexed: usize,
    /// Documents unchanged since the last ingest.
    pub skipped: usize,
    /// Documents removed because their file is gone.
    pub deleted: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Chunks embedded (the rest came from the cache).
    pub embedded: usize,
    /// Documents that could not be read: `(id, reason)`.
    pub failed: Vec<(String, String)>,
}

/// Progress of a long ingest, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub chunks: usize,
}

fn sha256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn kind(format: Format) -> &'static str {
    match format {
        Format::Markdown => "markdown",
        Format::Text => "text",
        Format::Html => "html",
        Format::Pdf => "pdf",
    }
}

/// The text embedded for a chunk: its document title and heading give it context.
fn embed_text(title: &str, heading: &str, text: &str) -> String {
    let mut s = String::with_capacity(title.len() + heading.len() + text.len() + 2);
    s.push_str(title);
    if !heading.is_empty() && heading != title {
        s.push('\n');
        s.push_str(heading);
    }
    s.push('\n');
    s.push_str(text);
    s
}

/// Parses, chunks, embeds and stores one document; returns `(chunks, embedded)`.
pub(crate) async fn put(
    store: &Store,
    index: &Index,
    doc: NewDocument,
    hash: String,
) -> Result<(usize, usize), SearchError> {
    let format = doc.format;
    let parsed =
        document::parse_blocking(doc.path_or_url.clone(), doc.body, format, PARSE_TIMEOUT).await?;
    let title = doc
        .title
        .filter(|t| !t.trim().is_empty())
        .or(parsed.title.clone())
        .unwrap_or_else(|| fallback_title(&doc.path_or_url));
    let config = ChunkConfig {
        max_tokens: index.settings.max_tokens,
        overlap: index.settings.overlap,
    };
    let chunks = chunk(&parsed, &config);
    let texts: Vec<String> = chunks
        .iter()
        .map(|c| embed_text(&title, &c.heading, &c.text))
        .collect();
    let hashes: Vec<String> = texts.iter().map(|t| sha256(&[t.as_bytes()])).collect();
    let embedder = index.embedder.id().to_string();
    let mut cached = store
        .search_index(index.name())
        .cached_vectors(&embedder, &hashes)
        .await?;
    let mut missing: Vec<String> = Vec::new();
    let mut missing_hashes: Vec<String> = Vec::new();
    let mut asked: HashSet<&str> = HashSet::new();
    for (t, h) in texts.iter().zip(&hashes) {
        if !cached.contains_key(h) && asked.insert(h) {
            missing.push(t.clone());
            missing_hashes.push(h.clone());
        }
    }
    let mut new_vectors = Vec::with_capacity(missing.len());
    if !missing.is_empty() {
        let vectors = index.embedder.embed(&missing, Purpose::Document).await?;
        if vectors.len() != missing.len() {
            return Err(SearchError::embed(format!(
                "asked for {} vectors, got {}",
                missing.len(),
                vectors.len()
            )));
        }
        for (h, v) in missing_hashes.iter().zip(vectors) {
            let bytes = to_bytes(&v);
            cached.insert(h.clone(), bytes.clone());
            new_vectors.push((h.clone(), bytes));
        }
    }
    let input = DocumentInput {
        id: doc.id,
        title,
        path: doc.path_or_url,
        kind: kind(format).to_string(),
        hash,
        metadata: with_front_matter(doc.metadata, parsed.metadata),
        chunks: chunks
            .iter()
            .zip(&hashes)
            .map(|(c, h)| ChunkInput {
                ordinal: i64::try_from(c.ordinal).unwrap_or(i64::MAX),
                heading: c.heading.clone(),
                text: c.text.clone(),
                hash: h.clone(),
                tokens: i64::try_from(c.tokens).unwrap_or(i64::MAX),
            })
            .collect(),
    };
    let change = store
        .search_index(index.name())
        .put_document(&embedder, &input, &new_vectors)
        .await?;
    index.apply(&change, &|h| {
        cached.get(h).map(|b| crate::index::from_bytes(b))
    });
    Ok((input.chunks.len(), new_vectors.len()))
}

/// The metadata stored for a document: what was posted, plus front matter keys it does not
/// set.
fn with_front_matter(
    posted: serde_json::Value,
    front_matter: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    match posted {
        serde_json::Value::Null if front_matter.is_empty() => serde_json::Value::Null,
        serde_json::Value::Null => serde_json::Value::Object(front_matter),
        serde_json::Value::Object(mut map) => {
            for (k, v) in front_matter {
                map.entry(k).or_insert(v);
            }
            serde_json::Value::Object(map)
        }
        other => other,
    }
}

fn fallback_title(path: &str) -> String {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    if stem.is_empty() {
        path.to_string()
    } else {
        stem.to_string()
    }
}

/// The hash that decides whether a document changed.
pub(crate) fn document_hash(
    title: Option<&str>,
    body: &[u8],
    metadata: &serde_json::Value,
) -> String {
    sha256(&[
        title.unwrap_or("").as_bytes(),
        body,
        metadata.to_string().as_bytes(),
    ])
}

/// Ingests documents given directly, skipping unchanged ones.
///
/// # Errors
/// [`SearchError::Invalid`] for a document over [`MAX_DOCUMENT_BYTES`]; parse, embedder
/// and store errors of the first document that fails (earlier ones stay written).
pub async fn documents(
    store: &Store,
    index: &Index,
    docs: Vec<NewDocument>,
) -> Result<IngestReport, SearchError> {
    let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
    let known = store
        .search_index(index.name())
        .document_hashes(Some(&ids))
        .await?;
    let mut report = IngestReport {
        documents: docs.len(),
        ..IngestReport::default()
    };
    for doc in docs {
        let hash = document_hash(doc.title.as_deref(), &doc.body, &doc.metadata);
        if known.get(&doc.id) == Some(&hash) {
            report.skipped += 1;
            continue;
        }
        let (chunks, embedded) = put(store, index, doc, hash).await?;
        report.indexed += 1;
        report.chunks += chunks;
        report.embedded += embedded;
    }
    Ok(report)
}

pub use crate::walk::list_files;

/// The document id of a file: its path relative to the app directory (with `/`), or the
/// path as given when it is outside.
pub fn file_id(dir: &Path, file: &Path) -> String {
    let Ok(rel) = file.strip_prefix(dir) else {
        return file.to_string_lossy().into_owned();
    };
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Ingests `files`; when `complete` (the index's whole source), documents whose file is
/// gone are deleted. A file that cannot be read is reported and skipped, never fatal.
///
/// # Errors
/// Store and embedder errors.
pub async fn files(
    store: &Store,
    index: &Index,
    dir: &Path,
    files: &[PathBuf],
    complete: bool,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<IngestReport, SearchError> {
    let known = store
        .search_index(index.name())
        .document_hashes(None)
        .await?;
    let mut report = IngestReport {
        documents: files.len(),
        ..IngestReport::default()
    };
    let mut seen: HashSet<String> = HashSet::new();
    for (i, file) in files.iter().enumerate() {
        let id = file_id(dir, file);
        seen.insert(id.clone());
        let outcome = async {
            let Some(format) = Format::from_path(file) else {
                return Err(SearchError::Document {
                    path: id.clone(),
                    message: "unsupported file type; use .md, .txt, .html or .pdf".into(),
                });
            };
            let body = tokio::fs::read(file)
                .await
                .map_err(|e| SearchError::Document {
                    path: id.clone(),
                    message: e.to_string(),
                })?;
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(SearchError::Document {
                    path: id.clone(),
                    message: format!(
                        "{} bytes is over the {MAX_DOCUMENT_BYTES}-byte limit",
                        body.len()
                    ),
                });
            }
            let meta = serde_json::Value::Null;
            let hash = document_hash(None, &body, &meta);
            if known.get(&id) == Some(&hash) {
                return Ok(None);
            }
            let doc = NewDocument {
                id: id.clone(),
                title: None,
                path_or_url: id.clone(),
                format,
                body,
                metadata: meta,
            };
            put(store, index, doc, hash).await.map(Some)
        }
        .await;
        match outcome {
            Ok(None) => report.skipped += 1,
            Ok(Some((chunks, embedded))) => {
                report.indexed += 1;
                report.chunks += chunks;
                report.embedded += embedded;
            }
            Err(SearchError::Document { path, message }) => {
                tracing::warn!(index = index.name(), document = %path, "{message}");
                report.failed.push((path, message));
            }
            Err(e) => return Err(e),
        }
        progress(Progress {
            done: i + 1,
            total: files.len(),
            chunks: report.chunks,
        });
    }
    if complete {
        for id in known.keys().filter(|id| !seen.contains(*id)) {
            if let Some(change) = store.search_index(index.name()).delete_document(id).await? {
                // Keeps the in-memory vectors in step, as every other write does.
                index.apply(&change, &|_| None);
                report.deleted += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_titles_are_file_stems() {
        assert_eq!(fallback_title("docs/guide/intro.md"), "intro");
        assert_eq!(fallback_title("README"), "README");
    }

    #[test]
    fn embedded_text_carries_title_and_heading() {
        assert_eq!(embed_text("T", "H", "x"), "T\nH\nx");
        assert_eq!(embed_text("T", "T", "x"), "T\nx");
        assert_eq!(embed_text("T", "", "x"), "T\nx");
    }

    #[test]
    fn file_ids_are_relative_with_slashes() {
        let dir = Path::new("/app");
        assert_eq!(file_id(dir, Path::new("/app/docs/a.md")), "docs/a.md");
        assert_eq!(
            file_id(dir, Path::new("/elsewhere/b.md")),
            "/elsewhere/b.md"
        );
    }
}
