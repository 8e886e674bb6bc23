//! Markdown (CommonMark + tables, footnotes, definition lists) to sections with
//! `pulldown-cmark`: ATX and setext headings make the path, code blocks stay verbatim, links
//! and images keep their text, HTML blocks keep only their text, and a leading `---` YAML
//! front matter block gives the title (`title:`) and the document's metadata.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use scraper::{Html, Node};

use super::{Parsed, SectionBuilder, collapse_whitespace};

/// Parses a markdown document. Title: the front matter's `title:`, else the first `#` heading.
pub(super) fn parse(source: &str) -> Parsed {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_DEFINITION_LIST
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut out = SectionBuilder::default();
    let mut buf = String::new();
    let mut heading: Option<(u8, String)> = None;
    let mut first_h1: Option<String> = None;
    let mut front_matter: Option<String> = None;
    let mut html_block: Option<String> = None;
    let mut in_code = false;
    let mut cells_in_row = 0;

    for event in Parser::new_ext(source, options) {
        // Text goes to whichever of these is collecting.
        macro_rules! sink {
            () => {
                if let Some(front_matter) = &mut front_matter {
                    front_matter
                } else if let Some((_, text)) = &mut heading {
                    text
                } else if let Some(html) = &mut html_block {
                    html
                } else {
                    &mut buf
                }
            };
        }
        match event {
            Event::Start(Tag::MetadataBlock(_)) => front_matter = Some(String::new()),
            Event::End(TagEnd::MetadataBlock(_)) => {
                if let Some(yaml) = front_matter.take() {
                    let metadata = super::front_matter::parse(&yaml);
                    if let Some(serde_json::Value::String(title)) = metadata.get("title") {
                        out.title(title);
                    }
                    out.metadata(metadata);
                }
            }
            Event::Start(Tag::Heading { level, .. }) => {
                out.paragraph(&std::mem::take(&mut buf));
                heading = Some((heading_level(level), String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, text)) = heading.take() {
                    let text = collapse_whitespace(&text);
                    if level == 1 && first_h1.is_none() && !text.is_empty() {
                        first_h1 = Some(text.clone());
                    }
                    out.heading(level, &text);
                }
            }
            Event::Start(Tag::HtmlBlock) => {
                out.paragraph(&std::mem::take(&mut buf));
                html_block = Some(String::new());
            }
            Event::End(TagEnd::HtmlBlock) => {
                if let Some(html) = html_block.take() {
                    out.paragraph(&html_text(&html));
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                out.paragraph(&std::mem::take(&mut buf));
                in_code = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                out.paragraph(&std::mem::take(&mut buf));
                in_code = false;
            }
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                out.paragraph(&std::mem::take(&mut buf));
                cells_in_row = 0;
            }
            Event::Start(Tag::TableCell) => {
                if cells_in_row > 0 {
                    buf.push_str(" | ");
                }
                cells_in_row += 1;
            }
            Event::Start(
                Tag::Paragraph
                | Tag::Item
                | Tag::List(_)
                | Tag::BlockQuote(_)
                | Tag::Table(_)
                | Tag::FootnoteDefinition(_)
                | Tag::DefinitionListTitle
                | Tag::DefinitionListDefinition,
            )
            | Event::End(
                TagEnd::Paragraph
                | TagEnd::Item
                | TagEnd::List(_)
                | TagEnd::BlockQuote(_)
                | TagEnd::Table
                | TagEnd::TableHead
                | TagEnd::TableRow
                | TagEnd::FootnoteDefinition
                | TagEnd::DefinitionListTitle
                | TagEnd::DefinitionListDefinition,
            )
            | Event::Rule => out.paragraph(&std::mem::take(&mut buf)),
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text)
            | Event::Html(text) => sink!().push_str(&text),
            Event::SoftBreak if front_matter.is_none() && !in_code => sink!().push(' '),
            Event::SoftBreak | Event::HardBreak => sink!().push('\n'),
            // A tag like `<kbd>`: its text arrives as `Text`.
            Event::InlineHtml(_) => {}
            _ => {}
        }
    }
    out.paragraph(&buf);
    if !out.has_title()
        && let Some(h1) = first_h1
    {
        out.title(&h1);
    }
    out.finish()
}

/// The text of an HTML block, without scripts and styles.
fn html_text(html: &str) -> String {
    let fragment = Html::parse_fragment(html);
    let mut text = String::new();
    for node in fragment.tree.root().descendants() {
        if let Node::Text(t) = node.value() {
            let in_code = node.ancestors().any(|a| {
                a.value()
                    .as_element()
                    .is_some_and(|e| matches!(e.name(), "script" | "style"))
            });
            if !in_code {
                text.push_str(t);
                text.push(' ');
            }
        }
    }
    collapse_whitespace(&text)
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"---
title: "Brigade guide"
tags: [search]
---
Intro with a [link text](https://example.com) and `code`.

Setup
=====

Install it:

```sh
cargo install brigade
brigade init
```

Details
-------

- one
- two

| Key | Value |
|-----|-------|
| a   | 1     |

<div class="note"><p>Careful &amp; slow</p><script>alert(1)</script></div>

# Reference

### Flags
Use `--dir`.
"#;

    #[test]
    fn front_matter_setext_headings_code_and_html() {
        let parsed = parse(DOC);
        assert_eq!(parsed.title.as_deref(), Some("Brigade guide"));
        let paths: Vec<_> = parsed
            .sections
            .iter()
            .map(|s| s.headings.join(" > "))
            .collect();
        assert_eq!(
            paths,
            // `# Reference` has no text of its own: no section, but it heads the next one.
            vec!["", "Setup", "Setup > Details", "Reference > Flags"]
        );
        assert_eq!(parsed.sections[0].text, "Intro with a link text and code.");
        assert_eq!(
            parsed.sections[1].text,
            "Install it:\n\ncargo install brigade\nbrigade init"
        );
        assert_eq!(
            parsed.sections[2].text,
            "one\n\ntwo\n\nKey | Value\n\na | 1\n\nCareful & slow"
        );
        assert_eq!(parsed.sections[3].text, "Use --dir.");
        assert!(!parsed.sections.iter().any(|s| s.text.contains("tags")));
    }

    #[test]
    fn title_is_the_first_h1_without_front_matter() {
        let parsed = parse("Some text.\n\n## Not it\n\nx\n\n# Title\n\ny\n");
        assert_eq!(parsed.title.as_deref(), Some("Title"));
        let parsed = parse("just text\n");
        assert_eq!(parsed.title, None);
        assert_eq!(parsed.sections[0].text, "just text");
    }
}
