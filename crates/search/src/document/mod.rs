//! Documents as the index sees them: a title and sections (heading path + body text), read
//! from markdown, text, HTML (navigation and boilerplate stripped) or PDF.
//! (Interim: text and markdown-by-lines only.)

use std::path::Path;

use crate::error::SearchError;

/// The formats an index reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Html,
    Pdf,
}

impl Format {
    /// The format of a file by its extension, `None` for files an index skips.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Format::from_name(&ext)
    }

    /// The format by name or extension (`markdown`, `md`, `text`, `txt`, `html`, `htm`, `pdf`).
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "md" | "markdown" => Format::Markdown,
            "txt" | "text" => Format::Text,
            "html" | "htm" => Format::Html,
            "pdf" => Format::Pdf,
            _ => return None,
        })
    }
}

/// A parsed document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The document's title (`<title>`, the first `#` heading, the PDF's title), if any.
    pub title: Option<String>,
    /// Body text in reading order, split at headings.
    pub sections: Vec<Section>,
}

/// A run of body text under one heading path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    /// The headings above the text, outermost first (empty before the first heading).
    pub headings: Vec<String>,
    /// Paragraphs separated by a blank line (`\n\n`).
    pub text: String,
}

/// Parses `bytes` as `format`. PDF parsing is CPU-bound: call it from `spawn_blocking`.
///
/// # Errors
/// [`SearchError::Document`] (with `path` as given) when the bytes are not a readable
/// document of that format.
pub fn parse(path: &str, bytes: &[u8], format: Format) -> Result<Parsed, SearchError> {
    let text = String::from_utf8_lossy(bytes);
    let _ = (path, format);
    let mut parsed = Parsed::default();
    let mut current = Section::default();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix('#') {
            if !current.text.trim().is_empty() {
                parsed.sections.push(std::mem::take(&mut current));
            }
            let h = h.trim_start_matches('#').trim().to_string();
            if parsed.title.is_none() {
                parsed.title = Some(h.clone());
            }
            current.headings = vec![h];
        } else {
            current.text.push_str(line);
            current.text.push('\n');
        }
    }
    if !current.text.trim().is_empty() {
        parsed.sections.push(current);
    }
    Ok(parsed)
}
