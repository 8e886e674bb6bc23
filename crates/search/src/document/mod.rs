//! Documents as the index sees them: a title and sections (heading path + body text), read
//! from markdown, text, HTML (navigation and boilerplate stripped) or PDF.
//!
//! # Layout
//! - [`parse`] dispatches on [`Format`]; [`parse_blocking`] runs it on the blocking pool with
//!   a panic guard and a timeout, as every caller reading files it does not control should.
//! - `html`, `markdown`, `text` and `pdf` each turn bytes into events for a [`SectionBuilder`]
//!   (`heading` / `paragraph`), which keeps the heading path and drops empty sections.
//!
//! Every format but PDF is read as UTF-8 with invalid bytes replaced (U+FFFD): a stray
//! Latin-1 byte should cost one character, not the document.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use crate::error::SearchError;

mod front_matter;
mod html;
mod markdown;
mod pdf;
mod text;

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
    /// Body text in reading order, split at headings. Sections are never empty.
    pub sections: Vec<Section>,
    /// Keys a user may filter on: a markdown file's front matter.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A run of body text under one heading path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    /// The headings above the text, outermost first (empty before the first heading).
    pub headings: Vec<String>,
    /// Paragraphs separated by a blank line (`\n\n`); a paragraph itself has no blank line
    /// except inside preformatted text.
    pub text: String,
}

/// Parses `bytes` as `format`. Parsing is CPU-bound and hostile input can make it slow
/// (deeply nested HTML is quadratic in html5ever) or panic (PDF): call [`parse_blocking`]
/// from async code, for every format.
///
/// # Errors
/// [`SearchError::Document`] (with `path` as given) when the bytes are not a readable
/// document of that format: a PDF that cannot be read, HTML or markdown nested deeper than
/// [`MAX_HTML_DEPTH`]. Other bytes are read lossily.
pub fn parse(path: &str, bytes: &[u8], format: Format) -> Result<Parsed, SearchError> {
    if format == Format::Pdf {
        return pdf::parse(bytes).map_err(|message| document_error(path, message));
    }
    let text = String::from_utf8_lossy(bytes);
    // Markdown passes its HTML blocks to the same parser, so it is checked too.
    if matches!(format, Format::Html | Format::Markdown) && nesting_exceeds(&text, MAX_HTML_DEPTH) {
        return Err(document_error(
            path,
            format!(
                "elements are nested more than {MAX_HTML_DEPTH} deep; this is not a page a \
                 browser would show sensibly: fix or remove it"
            ),
        ));
    }
    Ok(match format {
        Format::Markdown => markdown::parse(&text),
        Format::Html => html::parse(&text),
        Format::Text | Format::Pdf => text::parse(&text),
    })
}

/// Deepest element nesting accepted in HTML: the HTML parser's cost grows with the square of
/// the depth (100,000 levels take minutes), while real pages stay far below this.
pub const MAX_HTML_DEPTH: usize = 2000;

/// Whether the open elements of `html` nest deeper than `limit`, by a linear scan of tags
/// (void elements, self-closing tags and elements whose end tag is optional do not count).
fn nesting_exceeds(html: &str, limit: usize) -> bool {
    const UNCOUNTED: &[&str] = &[
        "area", "base", "br", "col", "colgroup", "dd", "dt", "embed", "hr", "img", "input", "li",
        "link", "meta", "option", "optgroup", "p", "param", "rp", "rt", "source", "tbody", "td",
        "tfoot", "th", "thead", "tr", "track", "wbr", "!", "?",
    ];
    let bytes = html.as_bytes();
    let mut depth: usize = 0;
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|b| *b == b'<') {
        let start = i + at + 1;
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b'>')
            .map_or(bytes.len(), |e| start + e);
        let tag = &html[start..end];
        i = end.min(bytes.len());
        if let Some(closing) = tag.strip_prefix('/') {
            let name = closing.trim().to_ascii_lowercase();
            if !UNCOUNTED.contains(&name.as_str()) {
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!' || *c == '?')
            .collect::<String>()
            .to_ascii_lowercase();
        let name = if name.starts_with('!') {
            "!"
        } else if name.starts_with('?') {
            "?"
        } else {
            name.as_str()
        };
        if name.is_empty() || tag.ends_with('/') || UNCOUNTED.contains(&name) {
            continue;
        }
        depth += 1;
        if depth > limit {
            return true;
        }
    }
    false
}

/// [`parse`] on Tokio's blocking pool, with a panic turned into an error and a time limit.
///
/// On timeout the blocking thread is left to finish on its own (a thread cannot be killed),
/// but its result is dropped and the caller moves on.
///
/// # Errors
/// [`SearchError::Document`] when parsing fails, panics or takes longer than `timeout`.
pub async fn parse_blocking(
    path: String,
    bytes: Vec<u8>,
    format: Format,
    timeout: Duration,
) -> Result<Parsed, SearchError> {
    let task_path = path.clone();
    let task = tokio::task::spawn_blocking(move || {
        // The closure only reads `bytes`, so a panic cannot leave shared state half-written.
        std::panic::catch_unwind(AssertUnwindSafe(|| parse(&task_path, &bytes, format)))
    });
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(Ok(parsed))) => parsed,
        Ok(Ok(Err(_)) | Err(_)) => {
            tracing::warn!(%path, ?format, "Document parser panicked.");
            Err(document_error(
                &path,
                "the parser crashed on this file; it is probably malformed: re-export or \
                 convert it (e.g. print to PDF again) and re-index, or remove it from the folder",
            ))
        }
        Err(_elapsed) => Err(document_error(
            &path,
            format!(
                "parsing took longer than {} s; the file is probably malformed or too large: \
                 split or re-export it, or remove it from the folder",
                timeout.as_secs_f32()
            ),
        )),
    }
}

fn document_error(path: &str, message: impl Into<String>) -> SearchError {
    SearchError::Document {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Collects headings and paragraphs into [`Parsed`] sections.
///
/// A heading of level `n` closes the current section and replaces every path entry of level
/// `n` or deeper, so `h2 A, h3 B, h3 C` gives paths `[A]`, `[A, B]`, `[A, C]`.
#[derive(Debug, Default)]
pub(crate) struct SectionBuilder {
    title: Option<String>,
    sections: Vec<Section>,
    path: Vec<(u8, String)>,
    text: String,
    metadata: serde_json::Map<String, serde_json::Value>,
}

impl SectionBuilder {
    /// Starts a new section under a heading of `level` (1 is outermost); blank headings are
    /// ignored.
    pub(crate) fn heading(&mut self, level: u8, heading: &str) {
        let heading = heading.trim();
        if heading.is_empty() {
            return;
        }
        self.close_section();
        self.path.retain(|(l, _)| *l < level);
        self.path.push((level, heading.to_string()));
    }

    /// Appends a paragraph to the current section; blank paragraphs are ignored.
    pub(crate) fn paragraph(&mut self, paragraph: &str) {
        // Leading blank lines go, the first line's indentation stays (preformatted text).
        let paragraph = paragraph.trim_end();
        if paragraph.is_empty() {
            return;
        }
        let indent = paragraph.len() - paragraph.trim_start().len();
        let paragraph = match paragraph[..indent].rfind('\n') {
            Some(newline) => &paragraph[newline + 1..],
            None => paragraph,
        };
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(paragraph);
    }

    /// Sets the title unless one is set already; a blank title is ignored.
    pub(crate) fn title(&mut self, title: &str) {
        let title = collapse_whitespace(title);
        if self.title.is_none() && !title.is_empty() {
            self.title = Some(title);
        }
    }

    /// Sets the document's metadata (front matter).
    pub(crate) fn metadata(&mut self, metadata: serde_json::Map<String, serde_json::Value>) {
        self.metadata = metadata;
    }

    pub(crate) fn has_title(&self) -> bool {
        self.title.is_some()
    }

    fn close_section(&mut self) {
        if !self.text.is_empty() {
            self.sections.push(Section {
                headings: self.path.iter().map(|(_, h)| h.clone()).collect(),
                text: std::mem::take(&mut self.text),
            });
        }
    }

    pub(crate) fn finish(mut self) -> Parsed {
        self.close_section();
        Parsed {
            title: self.title,
            sections: self.sections,
            metadata: self.metadata,
        }
    }
}

/// `s` with every run of whitespace replaced by one space, trimmed.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn pathological_nesting_is_refused_before_parsing() {
        let deep = "<div>".repeat(MAX_HTML_DEPTH + 1);
        assert!(super::nesting_exceeds(&deep, MAX_HTML_DEPTH));
        let err = super::parse("deep.html", deep.as_bytes(), Format::Html).unwrap_err();
        assert!(err.to_string().contains("nested more than"), "{err}");
        let err = super::parse("deep.md", deep.as_bytes(), Format::Markdown).unwrap_err();
        assert!(err.to_string().contains("nested more than"), "{err}");
        // Closed elements, void elements and optional end tags do not add up.
        let wide = "<div><p>x<br><img src=a /></div>".repeat(10_000) + &"<li>".repeat(5000);
        assert!(!super::nesting_exceeds(&wide, MAX_HTML_DEPTH));
        assert!(!super::nesting_exceeds("<!DOCTYPE html><?xml x?><a", 1));
    }

    use super::*;

    #[tokio::test]
    async fn parse_blocking_turns_bad_pdfs_into_document_errors() {
        let valid = crate::test_pdf::make_pdf(Some("T"), &[&[&["Some text here."]]]);
        let truncated = valid[..valid.len() - 40].to_vec();
        for bytes in [Vec::new(), b"\x00\xffnot a pdf at all".to_vec(), truncated] {
            let err = parse_blocking("a.pdf".into(), bytes, Format::Pdf, Duration::from_secs(10))
                .await
                .expect_err("a broken PDF");
            assert!(
                matches!(&err, SearchError::Document { path, .. } if path == "a.pdf"),
                "{err:?}"
            );
        }
        let parsed = parse_blocking("a.pdf".into(), valid, Format::Pdf, Duration::from_secs(10))
            .await
            .expect("a valid PDF");
        assert_eq!(parsed.sections[0].text, "Some text here.");
    }

    #[tokio::test]
    async fn parse_blocking_gives_up_after_the_timeout() {
        let html = "<p>word word word</p>".repeat(20_000).into_bytes();
        let err = parse_blocking(
            "big.html".into(),
            html,
            Format::Html,
            Duration::from_nanos(1),
        )
        .await
        .expect_err("too slow");
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_read_lossily() {
        for format in [Format::Text, Format::Markdown, Format::Html] {
            let parsed = parse("x", b"caf\xe9 au lait\n", format).expect("lossy");
            assert_eq!(parsed.sections[0].text, "caf\u{fffd} au lait", "{format:?}");
        }
    }

    #[test]
    fn a_deeper_heading_replaces_the_tail_of_the_path() {
        let mut b = SectionBuilder::default();
        for (level, heading) in [(2, "A"), (4, "B"), (3, "C"), (2, "D")] {
            b.heading(level, heading);
            b.paragraph(heading);
        }
        b.heading(1, "empty section is dropped");
        let paths: Vec<_> = b
            .finish()
            .sections
            .into_iter()
            .map(|s| s.headings.join(">"))
            .collect();
        assert_eq!(paths, vec!["A", "A>B", "A>C", "D"]);
    }
}
