//! PDF to one untitled section with `pdf-extract`: each page's text split into paragraphs on
//! blank lines, the lines of a paragraph joined with spaces (PDF line breaks are layout, not
//! structure), and a paragraph always ending at a page's end. Title: the document
//! information dictionary's `/Title`.
//!
//! PDFs are hostile input: `pdf-extract` can panic or loop on malformed files, so callers
//! go through [`super::parse_blocking`].

use pdf_extract::{Document, Object, PlainTextOutput, decode_text_string, output_doc_page};

use super::{Parsed, SectionBuilder, collapse_whitespace};

/// Parses a PDF; the error is a message for the user.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    if bytes.is_empty() {
        return Err("the file is empty, not a PDF".to_string());
    }
    let mut doc = Document::load_mem(bytes).map_err(|e| {
        format!("not a readable PDF ({e}); re-export it or remove it from the folder")
    })?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("the PDF is password-protected; save an unprotected copy to index it".into());
    }
    let mut out = SectionBuilder::default();
    if let Some(title) = title(&doc) {
        out.title(&title);
    }
    let pages = doc.get_pages();
    let mut failed = 0;
    let mut text_found = false;
    for &number in pages.keys() {
        let mut text = String::new();
        if let Err(e) = output_doc_page(&doc, &mut PlainTextOutput::new(&mut text), number) {
            tracing::debug!(page = number, error = %e, "PDF page unreadable, skipped.");
            failed += 1;
            continue;
        }
        for paragraph in text.split("\n\n") {
            let paragraph = collapse_whitespace(paragraph);
            text_found |= !paragraph.is_empty();
            out.paragraph(&paragraph);
        }
    }
    if !text_found {
        return Err(if pages.is_empty() {
            "the PDF has no pages; re-export it or remove it from the folder".to_string()
        } else if failed > 0 {
            format!(
                "none of the PDF's {} pages could be read; re-export it (e.g. print to PDF \
                 again) or remove it from the folder",
                pages.len()
            )
        } else {
            "the PDF has no extractable text (scanned pages?); run OCR on it first".to_string()
        });
    }
    Ok(out.finish())
}

/// The `/Title` of the document information dictionary, if any.
fn title(doc: &Document) -> Option<String> {
    let info = match doc.trailer.get(b"Info").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(dict) => dict,
        _ => return None,
    };
    decode_text_string(info.get(b"Title").ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pdf::make_pdf;

    #[test]
    fn pages_become_paragraphs_and_the_title_comes_from_the_info_dictionary() {
        let pdf = make_pdf(
            Some("Brigade Manual"),
            &[
                &[
                    &["Indexes make reads fast,", "and writes slower."],
                    &["Second paragraph."],
                ],
                &[&["Page two text."]],
            ],
        );
        let parsed = parse(&pdf).expect("a valid PDF");
        assert_eq!(parsed.title.as_deref(), Some("Brigade Manual"));
        assert_eq!(parsed.sections.len(), 1);
        assert!(parsed.sections[0].headings.is_empty());
        assert_eq!(
            parsed.sections[0].text,
            "Indexes make reads fast, and writes slower.\n\nSecond paragraph.\n\nPage two text."
        );
    }

    #[test]
    fn no_info_dictionary_means_no_title() {
        let parsed = parse(&make_pdf(None, &[&[&["Hello."]]])).expect("a valid PDF");
        assert_eq!(parsed.title, None);
        assert_eq!(parsed.sections[0].text, "Hello.");
    }

    #[test]
    fn broken_pdfs_are_errors() {
        let valid = make_pdf(Some("T"), &[&[&["Some text here."]]]);
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (name, bytes) in [
            ("empty", Vec::new()),
            ("garbage", garbage),
            ("truncated", valid[..valid.len() / 2].to_vec()),
            ("header only", b"%PDF-1.7\n".to_vec()),
            ("no text", make_pdf(None, &[&[]])),
        ] {
            let result = std::panic::catch_unwind(|| parse(&bytes));
            let result = result.unwrap_or_else(|_| panic!("{name}: parser panicked"));
            assert!(result.is_err(), "{name}: {result:?}");
        }
    }
}
