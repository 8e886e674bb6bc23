//! Plain text to one section: paragraphs split on blank lines, line breaks inside a paragraph
//! kept (they may be a list or code).
//!
//! Title: the first line when it stands alone (a blank line follows), is at most
//! [`MAX_TITLE_CHARS`] characters, does not end like a sentence or a lead-in (`.`, `,`, `;`,
//! `:`) and more text follows. It then becomes the section's heading rather than body text,
//! so chunks carry it. Otherwise there is no title (callers fall back to the file name).

use super::{Parsed, SectionBuilder};

/// The longest first line taken as a title.
const MAX_TITLE_CHARS: usize = 80;

/// Parses a text document.
pub(super) fn parse(source: &str) -> Parsed {
    let mut out = SectionBuilder::default();
    let mut paragraphs = paragraphs(source).peekable();
    if let Some(first) = paragraphs.peek()
        && is_title(first)
    {
        let title = first.clone();
        paragraphs.next();
        if paragraphs.peek().is_some() {
            out.title(&title);
            out.heading(1, &title);
        } else {
            out.paragraph(&title);
        }
    }
    for paragraph in paragraphs {
        out.paragraph(&paragraph);
    }
    out.finish()
}

fn is_title(paragraph: &str) -> bool {
    !paragraph.contains('\n')
        && paragraph.chars().count() <= MAX_TITLE_CHARS
        && !paragraph.ends_with(['.', ',', ';', ':'])
}

/// Paragraphs: runs of non-blank lines, each line with trailing whitespace removed.
fn paragraphs(source: &str) -> impl Iterator<Item = String> + '_ {
    let mut lines = source.lines().map(str::trim_end).peekable();
    std::iter::from_fn(move || {
        while lines.next_if(|l| l.is_empty()).is_some() {}
        let mut paragraph = String::new();
        while let Some(line) = lines.next_if(|l| !l.is_empty()) {
            if !paragraph.is_empty() {
                paragraph.push('\n');
            }
            paragraph.push_str(line);
        }
        (!paragraph.is_empty()).then_some(paragraph)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_first_line_alone_is_the_title_and_heading() {
        let parsed = parse("Release notes\r\n\r\nFirst paragraph\nwrapped.\n   \n\n\nSecond.\n");
        assert_eq!(parsed.title.as_deref(), Some("Release notes"));
        assert_eq!(parsed.sections.len(), 1);
        assert_eq!(parsed.sections[0].headings, vec!["Release notes"]);
        assert_eq!(
            parsed.sections[0].text,
            "First paragraph\nwrapped.\n\nSecond."
        );
    }

    #[test]
    fn no_title_from_a_sentence_a_long_line_or_a_lone_line() {
        for source in [
            "This is a sentence.\n\nMore.",
            "Dear reader,\n\nMore.",
            &format!("{}\n\nMore.", "long ".repeat(20)),
            "Title\nstill the first paragraph\n\nMore.",
            "Only a line",
        ] {
            let parsed = parse(source);
            assert_eq!(parsed.title, None, "{source:?}");
            assert!(parsed.sections[0].headings.is_empty());
        }
        assert_eq!(parse("").sections, vec![]);
    }
}
