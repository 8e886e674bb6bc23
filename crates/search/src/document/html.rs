//! HTML to sections: boilerplate and navigation dropped, headings kept as the path, blocks as
//! paragraphs and table rows as `cell | cell` lines.
//!
//! The DOM (html5ever via `scraper`) is walked with `ego_tree`'s iterative `traverse`, so a
//! 10,000-deep document costs no stack.

use ego_tree::NodeId;
use scraper::{ElementRef, Html, Node, node::Element};

use super::{Parsed, SectionBuilder, collapse_whitespace};

/// Elements dropped with everything inside them.
const DROPPED_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "canvas", "nav", "aside", "form", "button",
    "select", "textarea", "input", "iframe", "object", "embed", "audio", "video", "map", "dialog",
];

/// `role` values of navigation and page chrome.
const DROPPED_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
];

/// Whole `class` tokens and `id`s (case-insensitive) of navigation and boilerplate. Whole
/// tokens only: `navigation-guide` or `menu-item-price` are content.
const DROPPED_CLASSES: &[&str] = &[
    "nav",
    "navbar",
    "navbar-nav",
    "navigation",
    "navheader",
    "navfooter",
    "navbox",
    "nav-links",
    "menu",
    "menubar",
    "main-menu",
    "site-menu",
    "sidebar",
    "side-bar",
    "breadcrumb",
    "breadcrumbs",
    "footer",
    "site-footer",
    "page-footer",
    "site-header",
    "masthead",
    "cookie",
    "cookies",
    "cookie-banner",
    "cookie-consent",
    "cookie-notice",
    "skip-link",
    "skip-links",
    "skiplink",
    "skip-to-content",
    "pagination",
    "pager",
    "share",
    "social",
    "social-links",
    // A table of contents repeats the headings of the pages it links (the PostgreSQL manual's
    // chapter pages): navigation, not content.
    "toc",
];

/// Elements that end the paragraph before them and start a new one.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "body",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "hr",
    "html",
    "legend",
    "li",
    "main",
    "menu",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Whole `class` tokens of admonitions, whose heading ("Note", "Tip") is a label, not a
/// section: the text after the admonition belongs to the heading before it.
const ADMONITION_CLASSES: &[&str] = &["note", "tip", "warning", "caution", "important"];

/// Elements inside which `header` and `footer` belong to the content, not the page.
const LANDMARK_TAGS: &[&str] = &["article", "main", "section"];

/// Parses an HTML document.
pub(super) fn parse(source: &str) -> Parsed {
    let html = Html::parse_document(source);
    let mut walk = Walk::default();
    for edge in html.tree.root().traverse() {
        match edge {
            ego_tree::iter::Edge::Open(node) => {
                if walk.skipping.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Text(text) => walk.text(text),
                    Node::Element(element) => {
                        if element.name() == "title" {
                            if let Some(title) = ElementRef::wrap(node) {
                                walk.out.title(&title.text().collect::<String>());
                            }
                            walk.skipping = Some(node.id());
                        } else if walk.is_dropped(element) {
                            walk.skipping = Some(node.id());
                        } else {
                            walk.open(node.id(), element);
                        }
                    }
                    _ => {}
                }
            }
            ego_tree::iter::Edge::Close(node) => {
                if let Some(id) = walk.skipping {
                    if id == node.id() {
                        walk.skipping = None;
                    }
                    continue;
                }
                if let Node::Element(element) = node.value() {
                    walk.close(node.id(), element);
                }
            }
        }
    }
    walk.finish()
}

#[derive(Default)]
struct Walk {
    out: SectionBuilder,
    /// The dropped element whose subtree is being skipped.
    skipping: Option<NodeId>,
    /// The paragraph being collected.
    buf: String,
    /// Whitespace seen since the last character of `buf`.
    space: bool,
    /// The heading being collected: its level and text.
    heading: Option<(u8, String)>,
    first_h1: Option<String>,
    pre_depth: usize,
    cell_depth: usize,
    cells_in_row: usize,
    landmark_depth: usize,
    /// The open admonitions, innermost last.
    admonitions: Vec<NodeId>,
}

impl Walk {
    fn is_dropped(&self, element: &Element) -> bool {
        let name = element.name();
        if matches!(name, "html" | "body" | "main" | "article") {
            return false;
        }
        if DROPPED_TAGS.contains(&name)
            || (matches!(name, "header" | "footer") && self.landmark_depth == 0)
            || element.attr("hidden").is_some()
            || element
                .attr("aria-hidden")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || element
                .attr("role")
                .is_some_and(|role| DROPPED_ROLES.iter().any(|r| role.eq_ignore_ascii_case(r)))
        {
            return true;
        }
        let boilerplate = |token: &str| {
            DROPPED_CLASSES
                .iter()
                .any(|c| token.eq_ignore_ascii_case(c))
        };
        element.classes().any(boilerplate) || element.id().is_some_and(boilerplate)
    }

    fn open(&mut self, id: NodeId, element: &Element) {
        let name = element.name();
        if LANDMARK_TAGS.contains(&name) {
            self.landmark_depth += 1;
        }
        if element
            .classes()
            .any(|c| ADMONITION_CLASSES.iter().any(|a| c.eq_ignore_ascii_case(a)))
        {
            self.admonitions.push(id);
        }
        if let Some(level) = heading_level(name) {
            if !self.admonitions.is_empty() {
                self.end_paragraph();
                return;
            }
            if self.heading.is_none() {
                self.end_paragraph();
                self.heading = Some((level, String::new()));
            }
            return;
        }
        match name {
            "td" | "th" => {
                if self.cell_depth == 0 {
                    if self.cells_in_row > 0 {
                        self.buf.push_str(" |");
                        self.space = true;
                    }
                    self.cells_in_row += 1;
                }
                self.cell_depth += 1;
            }
            "tr" if self.cell_depth == 0 => {
                self.end_paragraph();
                self.cells_in_row = 0;
            }
            "br" => self.line_break(),
            "pre" => {
                self.end_paragraph();
                self.pre_depth += 1;
            }
            _ if BLOCK_TAGS.contains(&name) => self.end_paragraph(),
            _ => {}
        }
    }

    fn close(&mut self, id: NodeId, element: &Element) {
        let name = element.name();
        if self.admonitions.last() == Some(&id) {
            self.admonitions.pop();
        }
        if LANDMARK_TAGS.contains(&name) {
            self.landmark_depth = self.landmark_depth.saturating_sub(1);
        }
        if let Some(level) = heading_level(name) {
            if !self.admonitions.is_empty() {
                self.end_paragraph();
                return;
            }
            if self.heading.as_ref().is_some_and(|(l, _)| *l == level)
                && let Some((level, text)) = self.heading.take()
            {
                let text = collapse_whitespace(&text);
                if level == 1 && self.first_h1.is_none() && !text.is_empty() {
                    self.first_h1 = Some(text.clone());
                }
                self.out.heading(level, &text);
            }
            return;
        }
        match name {
            "td" | "th" => self.cell_depth = self.cell_depth.saturating_sub(1),
            "pre" => {
                self.end_paragraph();
                self.pre_depth = self.pre_depth.saturating_sub(1);
            }
            _ if BLOCK_TAGS.contains(&name) => self.end_paragraph(),
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if let Some((_, heading)) = &mut self.heading {
            heading.push_str(text);
            return;
        }
        if self.pre_depth > 0 && self.cell_depth == 0 {
            self.buf.push_str(text);
            self.space = false;
            return;
        }
        for c in text.chars() {
            if c.is_whitespace() {
                self.space = true;
            } else {
                if self.space && !self.buf.is_empty() && !self.buf.ends_with('\n') {
                    self.buf.push(' ');
                }
                self.space = false;
                self.buf.push(c);
            }
        }
    }

    fn line_break(&mut self) {
        if let Some((_, heading)) = &mut self.heading {
            heading.push(' ');
        } else if self.cell_depth > 0 {
            self.space = true;
        } else {
            self.buf.push('\n');
            self.space = false;
        }
    }

    /// Ends the paragraph at a block boundary; inside a table cell a boundary is a space, so
    /// a row stays one line.
    fn end_paragraph(&mut self) {
        if self.cell_depth > 0 {
            self.space = true;
            return;
        }
        if !self.buf.is_empty() {
            self.out.paragraph(&self.buf);
            self.buf.clear();
        }
        self.space = false;
    }

    fn finish(mut self) -> Parsed {
        self.cell_depth = 0;
        self.end_paragraph();
        if !self.out.has_title()
            && let Some(h1) = self.first_h1.take()
        {
            self.out.title(&h1);
        }
        self.out.finish()
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG_LIKE: &str = include_str!("../../tests/fixtures/pg-like.html");

    fn all_text(parsed: &Parsed) -> String {
        let mut all = String::new();
        for s in &parsed.sections {
            all.push_str(&s.headings.join(" > "));
            all.push('\n');
            all.push_str(&s.text);
            all.push('\n');
        }
        all
    }

    #[test]
    fn pg_manual_page_keeps_content_and_drops_navigation() {
        let parsed = parse(PG_LIKE);
        assert_eq!(
            parsed.title.as_deref(),
            Some("9.3. Mathematical Functions & Operators")
        );
        let all = all_text(&parsed);
        for gone in [
            "Prev",
            "Next",
            "Home",
            "Up",
            "cookies",
            "Site menu",
            "Hidden decoration",
            "Copyright",
            "tracking",
            "content:",
        ] {
            assert!(!all.contains(gone), "{gone:?} should be gone from:\n{all}");
        }
        let paths: Vec<Vec<&str>> = parsed
            .sections
            .iter()
            .map(|s| s.headings.iter().map(String::as_str).collect())
            .collect();
        let top = "9.3. Mathematical Functions and Operators";
        assert_eq!(
            paths,
            vec![
                vec![top],
                vec![top, "9.3.1. Random Functions"],
                vec![top, "9.3.2. Trigonometric Functions"],
                vec![top, "9.3.2. Trigonometric Functions", "9.3.2.1. Degrees"],
                vec![top, "9.3.3. Notes"],
            ]
        );
        let math = &parsed.sections[0].text;
        assert!(
            math.starts_with(
                "Mathematical operators are provided for many PostgreSQL types — see below.\n\n"
            ),
            "{math}"
        );
        assert!(
            math.contains("\n\nOperator | Description | Example\n\n"),
            "{math}"
        );
        assert!(
            math.contains("\n\n+ numeric_type | Addition | 2 + 3 → 5\n\n"),
            "{math}"
        );
        assert!(math.ends_with("\n\n- | Subtraction | 2 - 3 → -1"), "{math}");

        let random = &parsed.sections[1].text;
        assert!(
            random.contains("SELECT random();\n  random\n----------\n 0.897124"),
            "pre keeps its lines: {random}"
        );
        assert!(random.contains("navigation-heavy queries is real content"));
        assert!(random.contains("setseed(dbl)\n\nSets the seed"));
        assert_eq!(
            parsed.sections[3].text,
            "Functions ending in d take degrees.\n\nNote\n\nRadians are exact.\n\nAfter the note.",
            "an admonition's heading is a label, not a section"
        );
    }

    #[test]
    fn title_falls_back_to_the_first_h1_and_text_before_headings_has_no_path() {
        let parsed = parse(
            "<body><p>Intro &lt;here&gt;</p><h1>Guide</h1><p>One</p><h1>Other</h1><p>Two</p></body>",
        );
        assert_eq!(parsed.title.as_deref(), Some("Guide"));
        assert_eq!(parsed.sections[0].headings, Vec::<String>::new());
        assert_eq!(parsed.sections[0].text, "Intro <here>");
        assert_eq!(parsed.sections[2].headings, vec!["Other"]);
    }

    #[test]
    fn header_and_footer_inside_an_article_are_content() {
        let parsed = parse(
            "<header>Site</header><article><header><h1>Post</h1><p>By me</p></header>\
             <p>Body</p><footer>Posted in rust</footer></article><footer>Site footer</footer>",
        );
        assert_eq!(parsed.sections.len(), 1);
        assert_eq!(parsed.sections[0].text, "By me\n\nBody\n\nPosted in rust");
    }

    #[test]
    fn ten_thousand_levels_deep_does_not_overflow() {
        // Spans: html5ever's own cost is linear in their depth, where nested `div`s cost a
        // scope scan each (0.85 s at 10,000 levels in release, 28 s in a debug build).
        let depth = 10_000;
        let mut html = String::from("<html><body><h1>Deep</h1><div>");
        for _ in 0..depth {
            html.push_str("<span>");
        }
        html.push_str("bottom");
        for _ in 0..depth {
            html.push_str("</span>");
        }
        html.push_str("</div>");
        html.push_str("</body></html>");
        // A small stack, as a blocking-pool thread might have: recursion would overflow it.
        let parsed = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse(&html))
            .expect("spawn")
            .join()
            .expect("no stack overflow");
        assert_eq!(parsed.sections[0].text, "bottom");
    }
}

/// Measurements on a real corpus, run by hand in release:
/// `BRIGADE_HTML_CORPUS=/tmp/html cargo test --release -p brigade-search html_corpus -- --ignored --nocapture`.
#[cfg(test)]
mod corpus {
    use std::time::Instant;

    use crate::chunk::{ChunkConfig, chunk};

    #[test]
    #[ignore = "needs BRIGADE_HTML_CORPUS, a folder of .html files"]
    fn html_corpus() {
        let dir = std::env::var("BRIGADE_HTML_CORPUS").expect("BRIGADE_HTML_CORPUS");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "html"))
            .collect();
        files.sort();
        let sources: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|p| (p.display().to_string(), std::fs::read(p).expect("read")))
            .collect();
        let config = ChunkConfig::default();
        let started = Instant::now();
        let mut chunks = Vec::new();
        let mut sections = Vec::new();
        for (path, bytes) in &sources {
            let parsed =
                super::super::parse(path, bytes, super::super::Format::Html).expect("html");
            chunks.extend(
                chunk(&parsed, &config)
                    .into_iter()
                    .map(|c| (path.clone(), c)),
            );
            sections.extend(parsed.sections);
        }
        let elapsed = started.elapsed();
        if let Ok(out) = std::env::var("BRIGADE_SECTIONS_OUT") {
            let lines: Vec<String> = sections
                .iter()
                .map(|s| serde_json::json!({"headings": s.headings, "text": s.text}).to_string())
                .collect();
            std::fs::write(out, lines.join("\n")).expect("write sections");
        }
        let tokens: usize = chunks.iter().map(|(_, c)| c.tokens).sum();
        let max = chunks.iter().map(|(_, c)| c.tokens).max().unwrap_or(0);
        println!(
            "{} pages in {elapsed:.2?} ({:.0} pages/s), {} chunks, {:.1} tokens mean, {max} max",
            sources.len(),
            sources.len() as f64 / elapsed.as_secs_f64(),
            chunks.len(),
            tokens as f64 / chunks.len() as f64,
        );
        if let Ok(out) = std::env::var("BRIGADE_CHUNKS_OUT") {
            let lines: Vec<String> = chunks
                .iter()
                .map(|(path, c)| {
                    serde_json::json!({"path": path, "ordinal": c.ordinal, "heading": c.heading, "text": c.text, "tokens": c.tokens})
                        .to_string()
                })
                .collect();
            std::fs::write(out, lines.join("\n")).expect("write chunks");
        }
        // Nested `div`s are quadratic in html5ever: 0.85 s at 10,000 levels, 297 s at 100,000.
        let depth = 10_000;
        let html = format!(
            "{}x{}",
            "<div><span>".repeat(depth),
            "</span></div>".repeat(depth)
        );
        let started = Instant::now();
        let parsed = super::parse(&html);
        println!(
            "{depth} levels: {:.2?}, {:?}",
            started.elapsed(),
            parsed.sections[0].text
        );
        let page = &sources[sources.len() / 2].1;
        let mut big = Vec::new();
        while big.len() < 50 << 20 {
            big.extend_from_slice(page);
        }
        let started = Instant::now();
        let parsed =
            super::super::parse("big.html", &big, super::super::Format::Html).expect("html");
        let n = chunk(&parsed, &config).len();
        println!(
            "{} MB: {:.2?}, {n} chunks",
            big.len() >> 20,
            started.elapsed()
        );
    }
}
